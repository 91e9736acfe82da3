"""Helpers shared by test modules in several folders (``tests/`` is on ``sys.path`` through its conftest)."""

from __future__ import annotations


def error_chain(exc: BaseException) -> str:
    """All messages of an exception and its causes (config evaluation and the CLI wrap the real error)."""
    parts = []
    while exc is not None:
        parts.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(parts)


def small_generator(seed: int = 0, c_dim: int = 3):
    """A randomly initialised 16-px, 1-channel StyleGAN2 ``Generator`` small enough for many calls per test."""
    import torch

    from gemix_monai.networks import Generator

    torch.manual_seed(seed)
    return Generator(
        z_dim=8,
        c_dim=c_dim,
        w_dim=16,
        img_resolution=16,
        img_channels=1,
        mapping_kwargs=dict(num_layers=2),
        synthesis_kwargs=dict(channel_base=256, channel_max=16, num_fp16_res=0),
    )
