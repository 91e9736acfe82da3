"""The fast path of issue 14: lean eager dispatch gives the registered ops' numbers exactly; switches."""

import os

import pytest
import torch

from gemix_monai import fast
from gemix_monai.ops import bias_act, setup_filter, upfirdn2d
from gemix_monai.ops._ext import get_extension

HAS_CPP = (
    get_extension() is not None and hasattr(torch.ops.gemix_C, "bias_act") and hasattr(torch.ops.gemix_C, "upfirdn2d")
)
requires_cpp = pytest.mark.skipif(not HAS_CPP, reason="the C++ extension is not built")


def _chain(level: str, act: str, memory_format=torch.contiguous_format):
    os.environ["GEMIX_FAST"] = level
    torch.manual_seed(0)
    x = torch.randn(2, 6, 12, 12, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_(True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    f = setup_filter([1, 3, 3, 1]).double()
    y = bias_act(x, b, act=act, clamp=1.5, impl="cpp")
    y = upfirdn2d(y, f, up=2, padding=(2, 1, 2, 1), gain=4)
    y = upfirdn2d(y, f, down=2, padding=1)
    gx, gb = torch.autograd.grad((y**2).sum(), [x, b], create_graph=True)  # R1-style double backward
    ggx, ggb = torch.autograd.grad(gx.square().sum() + gb.sum(), [x, b], allow_unused=True)
    return [t for t in (y, gx, gb, ggx, ggb) if t is not None]


@requires_cpp
@pytest.mark.parametrize("act", ["lrelu", "linear", "tanh"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_lean_dispatch_is_bit_identical_to_the_registered_ops(monkeypatch, act, memory_format):
    monkeypatch.setenv("GEMIX_FAST", "0")
    old = _chain("0", act, memory_format)
    new = _chain("auto", act, memory_format)
    assert len(old) == len(new)
    for a, b in zip(old, new):
        assert torch.equal(a, b)


def test_fast_levels_follow_the_environment_and_the_option(monkeypatch):
    # the default trains on the fast path since issue 19 (more kimg per CPU-hour at equal audit numbers)
    monkeypatch.delenv("GEMIX_FAST", raising=False)
    assert fast.fast_level() == 2 and fast.exact_fast() and fast.training_fast()
    monkeypatch.setenv("GEMIX_FAST", "exact")
    assert fast.fast_level() == 1 and fast.exact_fast() and not fast.training_fast()
    monkeypatch.setenv("GEMIX_FAST", "fastest")
    with pytest.raises(ValueError, match="GEMIX_FAST must be 0, exact, auto or 1, got 'fastest'"):
        fast.fast_level()
    monkeypatch.setenv("GEMIX_FAST", "0")
    assert fast.fast_level() == 0 and not fast.exact_fast()
    assert fast.training_fast(True)  # the option wins
    monkeypatch.setenv("GEMIX_FAST", "1")
    assert fast.fast_level() == 2 and fast.training_fast() and not fast.training_fast(False)


def test_bf16_math_context_restores_float32_and_is_a_noop_without_native_bf16():
    conv = torch.backends.mkldnn.conv
    before = conv.fp32_precision
    with fast.cpu_bf16_math(True) as on:
        assert on == fast.cpu_has_native_bf16()
        if on:
            assert conv.fp32_precision == "bf16"
    assert conv.fp32_precision == before
    with fast.cpu_bf16_math(False) as on:
        assert not on and conv.fp32_precision == before


def test_gan_option_fast_is_validated():
    from gemix_monai.engines.gan import GanTrainingOptions

    assert GanTrainingOptions(fast=True).to_dict()["fast"] is True
    with pytest.raises(ValueError, match="fast"):
        GanTrainingOptions(fast="yes")
