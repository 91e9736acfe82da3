"""Per-sample losses of conditional StyleGAN2-ADA (docs/maths.md §2 "Losses", "ADA").

Every function returns *per-sample* values (shape ``[N]``) and leaves the reduction to the
trainer: the trainer divides sums by the global batch size, so a global batch split into
micro-batches, or across processes, gives the gradient of the same global mean.

Notation: ``G`` maps ``(z [N, z_dim], c [N, K])`` to images ``[N, C, R, R]`` in [-1, 1];
``D`` maps ``(img, c)`` to logits ``[N, 1]``; ``augment`` is the ADA pipeline (or ``None``)
applied to every image D sees, reals and fakes alike, so D never learns the augmentations
as a property of the real distribution.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "generator_images",
    "generator_main_loss",
    "path_length_penalty",
    "discriminator_main_loss",
    "r1_penalty",
]


def _run_d(D, augment: Callable | None, img: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    if augment is not None:
        img = augment(img)
    return D(img, c).reshape(img.shape[0])


def generator_images(G, z: torch.Tensor, c: torch.Tensor, style_mixing_prob: float = 0.0) -> torch.Tensor:
    """``G(z, c)`` with optional style mixing regularisation.

    With probability ``style_mixing_prob`` (one draw per call) the layers from a random cutoff
    onwards take their styles from a second latent drawn with the same label, which keeps
    adjacent styles from becoming correlated.
    """
    ws = G.mapping(z, c)
    if style_mixing_prob > 0 and ws.shape[1] > 1:
        if torch.rand((), device=ws.device) < style_mixing_prob:
            cutoff = int(torch.randint(1, ws.shape[1], (), device=ws.device))
            ws_mix = G.mapping(torch.randn_like(z), c)
            ws = torch.cat([ws[:, :cutoff], ws_mix[:, cutoff:]], dim=1)
    return G.synthesis(ws)


def generator_main_loss(G, D, augment, z, c, style_mixing_prob: float = 0.0):
    """Non-saturating logistic generator loss ``softplus(-D(aug(G(z, c)), c))``.

    Returns ``(loss [N], fake_logits [N])``.
    """
    fake = generator_images(G, z, c, style_mixing_prob)
    logits = _run_d(D, augment, fake, c)
    return F.softplus(-logits), logits.detach()


def path_length_penalty(G, z, c, pl_mean: torch.Tensor):
    """Path-length regularisation ``(‖J_wᵀ y‖₂ − a)²`` with ``y ~ N(0, I)/√(H·W)``.

    ``J_w`` is the Jacobian of the synthesis network w.r.t. the per-layer latents ``ws``;
    ``a`` is ``pl_mean``, the running mean of the lengths *before* this step (the trainer
    updates it after the phase with the mean over the whole global batch, so the penalty does
    not depend on how the batch is split). Returns ``(penalty [N], lengths [N])``; the penalty
    is differentiable twice through the synthesis network.
    """
    ws = G.mapping(z, c)
    img = G.synthesis(ws)
    noise = torch.randn_like(img) / (img.shape[2] * img.shape[3]) ** 0.5
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    return (lengths - pl_mean).square(), lengths.detach()


def discriminator_main_loss(G, D, augment, real_img, real_c, z, gen_c):
    """Discriminator logistic loss ``softplus(D(fake)) + softplus(−D(real))`` per sample.

    Fakes are generated without a graph into G. Returns
    ``(loss [N], real_logits [N], fake_logits [N])``; ``sign(real_logits)`` feeds ADA.
    """
    with torch.no_grad():
        fake = G(z, gen_c)
    fake_logits = _run_d(D, augment, fake, gen_c)
    real_logits = _run_d(D, augment, real_img.detach(), real_c)
    loss = F.softplus(fake_logits) + F.softplus(-real_logits)
    return loss, real_logits.detach(), fake_logits.detach()


def r1_penalty(D, augment, real_img, real_c):
    """R1 gradient penalty ``‖∇_x D(aug(x), c)‖²`` per sample (the trainer applies ``γ/2``).

    The gradient is taken w.r.t. the un-augmented real image, through the differentiable
    augmentation, with ``create_graph=True`` so the penalty itself can be back-propagated
    into D (double backward through the network ops and the augmentation).
    Returns ``(penalty [N], real_logits [N])``.
    """
    x = real_img.detach().requires_grad_(True)
    logits = _run_d(D, augment, x, real_c)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)), logits.detach()
