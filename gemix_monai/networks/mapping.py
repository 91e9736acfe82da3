"""The mapping network: latent ``z`` and soft label ``c`` to the intermediate latents ``w``."""

from __future__ import annotations

import torch
from torch import nn

from gemix_monai.networks.labels import as_soft_labels
from gemix_monai.networks.layers import FullyConnectedLayer, normalize_2nd_moment
from gemix_monai.utils import check_truncation_psi

__all__ = ["MappingNetwork", "check_truncation_psi"]


class MappingNetwork(nn.Module):
    """``w = MLP(concat(norm2(z), norm2(embed(c))))``, broadcast to ``num_ws`` copies (docs/maths.md §2).

    ``embed`` is one affine layer ``c ↦ E c + b``. On the simplex (``Σ c_k = 1``) this equals
    ``Σ c_k (E e_k + b)``: a soft label is embedded at the matching convex combination of the class
    embeddings, so "70 % pneumonia, 30 % normal" conditions the generator on the point 70 % of the
    way from the normal to the pneumonia embedding — the class manifold that GeMix samples. ``norm2``
    only rescales that point.

    Args:
        z_dim: latent size; 0 for a label-only mapping (the discriminator's ``cmap``).
        c_dim: number of classes K (>= 1).
        w_dim: output size.
        num_ws: copies of ``w`` to output ([N, num_ws, w_dim]); ``None`` outputs [N, w_dim].
        num_layers: fully connected layers of the MLP, 1..8 (2 in the StyleGAN2-ADA presets).
        embed_features: size of the label embedding; default ``w_dim``.
        layer_features: width of the hidden layers; default ``w_dim``.
        activation: hidden-layer activation. Default ``"lrelu"``.
        lr_multiplier: learning-rate multiplier of the MLP. Default 0.01.
        w_avg_beta: decay of the running average ``w_avg`` used for truncation, updated when the
            forward pass is called with ``update_emas=True``; ``None`` disables tracking. Default 0.995.

    Shapes: ``z`` [N, z_dim], ``c`` [N, c_dim] (rows on the simplex) → ``ws`` [N, num_ws, w_dim].
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ):
        super().__init__()
        if z_dim < 0 or c_dim < 1 or w_dim < 1:
            raise ValueError(
                f"MappingNetwork: need z_dim >= 0, c_dim >= 1, w_dim >= 1, got z_dim={z_dim}, c_dim={c_dim}, w_dim={w_dim}"
            )
        if not 1 <= num_layers <= 8:
            raise ValueError(f"MappingNetwork: num_layers must be in 1..8, got {num_layers}")
        if num_ws is not None and num_ws < 1:
            raise ValueError(f"MappingNetwork: num_ws must be >= 1 or None, got {num_ws}")
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = int(z_dim), int(c_dim), int(w_dim), num_ws
        self.num_layers = int(num_layers)
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if embed_features is None else int(embed_features)
        layer_features = w_dim if layer_features is None else int(layer_features)

        self.embed = FullyConnectedLayer(c_dim, embed_features)
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        self.layers = nn.ModuleList(
            FullyConnectedLayer(features[i], features[i + 1], activation=activation, lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor | None,
        c,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        check_labels: bool = True,
    ) -> torch.Tensor:
        """Map ``z`` [N, z_dim] and soft labels ``c`` [N, c_dim] to ``ws`` [N, num_ws, w_dim].

        ``truncation_psi`` < 1 pulls ``w`` towards ``w_avg`` (``w_avg + ψ (w − w_avg)``) in the first
        ``truncation_cutoff`` of the ``num_ws`` copies (all when ``None``): ψ = 0 gives ``w_avg``.
        ``update_emas=True`` moves ``w_avg`` towards this batch's mean ``w`` (training only).
        ``check_labels=False`` skips the simplex check (its one device synchronisation) for callers
        that validated ``c`` already.
        """
        if truncation_psi != 1 and not torch.compiler.is_compiling():
            truncation_psi = check_truncation_psi(truncation_psi)
        ref = self.embed.weight
        c = as_soft_labels(
            c, self.c_dim, name="c", device=ref.device, check=check_labels and not torch.compiler.is_compiling()
        )
        parts = []
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            if z.shape[0] != c.shape[0]:
                raise ValueError(f"z and c must have the same batch size, got {z.shape[0]} and {c.shape[0]}")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        parts.append(normalize_2nd_moment(self.embed(c)))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)

        if update_emas and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError(
                    "truncation_psi != 1 needs w_avg, but this mapping network was built with w_avg_beta=None"
                )
            if self.num_ws is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
                if cutoff < 0:
                    raise ValueError(f"truncation_cutoff must be >= 0 or None, got {truncation_cutoff}")
                x = torch.cat([self.w_avg.lerp(x[:, :cutoff], truncation_psi), x[:, cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, num_layers={self.num_layers}"
