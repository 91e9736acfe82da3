"""Class-conditional StyleGAN2-ADA networks conditioned on soft labels (docs/maths.md §2).

* :class:`Generator` — ``G(z, c)`` with ``c`` any point of the label simplex, plus the user API
  (:meth:`Generator.from_checkpoint`, :meth:`Generator.generate`, :meth:`Generator.save_checkpoint`);
* :class:`Discriminator` — residual, minibatch-std, projection conditioning on ``c``;
* :class:`AugmentPipe` — adaptive discriminator augmentation with strength ``p``;
* :func:`get_preset` — architectures and training hyper-parameters by resolution (``"tiny"``, ``"32"``…``"256"``).
"""

from gemix_monai.networks.augment import AUGMENT_PRESETS, AugmentPipe
from gemix_monai.networks.discriminator import Discriminator
from gemix_monai.networks.generator import GENERATOR_FORMAT, Generator
from gemix_monai.networks.labels import as_soft_labels
from gemix_monai.networks.mapping import MappingNetwork
from gemix_monai.networks.presets import PRESET_NAMES, get_preset
from gemix_monai.networks.synthesis import SynthesisNetwork

__all__ = [
    "AUGMENT_PRESETS",
    "AugmentPipe",
    "Discriminator",
    "GENERATOR_FORMAT",
    "Generator",
    "MappingNetwork",
    "PRESET_NAMES",
    "SynthesisNetwork",
    "as_soft_labels",
    "get_preset",
]
