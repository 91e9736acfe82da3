"""The networks' soft-label check: :func:`gemix_monai.mixing.labels.as_soft_labels` (one validator, one tolerance).

The generator and the discriminator are conditioned on *soft labels*: float vectors ``[K]`` with
non-negative entries summing to 1 (a one-hot vector is a hard label). Anything else would put the
label embedding outside the convex hull of the class embeddings the networks were trained on, so
it is refused with an error that names the argument and the offending row.
"""

from gemix_monai.mixing.labels import SIMPLEX_ATOL, as_soft_labels

__all__ = ["as_soft_labels", "SIMPLEX_ATOL"]
