"""The one-time self-check of the compiled kernels against the reference (gemix_monai/ops/_selfcheck.py),
exercised on the CPU with the C++ kernels: the real kernels pass, an injected wrong kernel is an
error naming the op, path, dtype, case and error size, at that call and every later one; the
reference path never runs it; it runs once per key, also with several threads at once."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from gemix_monai.ops import OpSelfCheckError, _selfcheck, bias_act, modulated_conv2d, setup_filter, upfirdn2d
from gemix_monai.ops._ext import get_extension

HAS_KERNELS = get_extension() is not None and all(
    hasattr(torch.ops.gemix_C, name)
    for name in ("bias_act", "bias_act_grad", "modulate_weight", "modulate_weight_backward", "upfirdn2d")
)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
requires_kernels = pytest.mark.skipif(not HAS_KERNELS, reason="the C++ extension with every kernel is not built")

TAIL = " Its results would be wrong: set GEMIX_OPS=ref to use the reference path (docs/design.md, section ops)."


@pytest.fixture
def fresh(monkeypatch):
    """No check run yet in this process, the check switched on."""
    monkeypatch.setattr(_selfcheck, "_passed", set())
    monkeypatch.setattr(_selfcheck, "_failed", {})
    monkeypatch.delenv("GEMIX_OPS_SELFCHECK", raising=False)
    monkeypatch.delenv("GEMIX_OPS", raising=False)
    return _selfcheck


def _call_each_op(impl="cpp", dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=dtype)
    f = setup_filter([1, 3, 3, 1])
    upfirdn2d(x, f, up=2, padding=2, impl=impl)
    bias_act(x, torch.zeros(3, dtype=dtype), act="lrelu", impl=impl)
    weight = torch.randn(4, 3, 3, 3, generator=g, dtype=dtype)
    styles = torch.rand(2, 3, generator=g, dtype=dtype) + 0.5
    modulated_conv2d(x, weight, styles, padding=1, fused=True, impl=impl)


def _wrong(monkeypatch, name, change):
    """Replace the raw kernel torch.ops.gemix_C.<name> by ``change(real kernel's output)``."""
    real = getattr(torch.ops.gemix_C, name)

    def wrong(*args):
        return change(real(*args))

    monkeypatch.setattr(torch.ops.gemix_C, name, wrong)


@requires_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_real_cpp_kernels_pass_and_each_key_is_remembered(fresh, dtype):
    _call_each_op(dtype=dtype)
    assert fresh._passed == {
        ("upfirdn2d", "cpp", "cpu", dtype),
        ("bias_act", "cpp", "cpu", dtype),
        ("modulated_conv2d", "cpp", "cpu", dtype),
    }
    assert fresh._failed == {}


@requires_kernels
def test_every_compared_output_is_far_inside_its_tolerance():
    results = _selfcheck.run_selfcheck("cpu")
    assert {r.op for r in results} == {"upfirdn2d", "bias_act", "modulated_conv2d"}
    assert {r.dtype for r in results} == {torch.float32, torch.float64}
    assert len(results) == 2 * (6 + 29 + 8)
    for r in results:
        assert r.ok and r.error <= r.tolerance / 100, (r.op, r.dtype, r.case, r.error, r.tolerance)


@requires_kernels
def test_a_wrong_forward_kernel_is_an_error_naming_op_path_dtype_case_and_size(fresh, monkeypatch):
    _wrong(monkeypatch, "upfirdn2d", lambda y: y + 0.5)
    x = torch.randn(1, 2, 8, 8)
    expected = (
        "upfirdn2d: the compiled cpp kernel (gemix_C.upfirdn2d) disagrees with the pure-PyTorch reference for "
        "float32 on cpu, case forward up=2 separable: max abs error 0.5 where at most 6.64e-05 is allowed "
        "(0.0001 x max |reference| 0.664)." + TAIL
    )
    for _ in range(2):  # at the first call and at every later one: never a silent second try
        with pytest.raises(OpSelfCheckError) as caught:
            upfirdn2d(x, setup_filter([1, 3, 3, 1]), up=2, padding=2)
        assert str(caught.value) == expected
    assert ("upfirdn2d", "cpp", "cpu", torch.float32) not in fresh._passed
    upfirdn2d(x, setup_filter([1, 3, 3, 1]), impl="ref")  # the way around
    with pytest.raises(OpSelfCheckError, match=r"for float64 on cpu, .*\(1e-07 x max"):  # each dtype its own check
        upfirdn2d(x.double(), setup_filter([1, 3, 3, 1]), up=2, padding=2)


@requires_kernels
def test_a_wrong_gradient_kernel_is_found_before_any_backward_runs(fresh, monkeypatch):
    _wrong(monkeypatch, "bias_act_grad", lambda dx: dx * 1.5)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    with pytest.raises(OpSelfCheckError) as caught:
        bias_act(x, None, act="lrelu", impl="cpp")  # a forward call, no gradient asked
    assert str(caught.value) == (
        "bias_act: the compiled cpp kernel (gemix_C.bias_act/gemix_C.bias_act_grad) disagrees with the "
        "pure-PyTorch reference for float64 on cpu, case gradient order 1 linear: max abs error 0.995 where at "
        "most 1.99e-07 is allowed (1e-07 x max |reference| 1.99)." + TAIL
    )


@requires_kernels
def test_a_wrong_second_order_or_backward_kernel_is_found(fresh, monkeypatch):
    real = torch.ops.gemix_C.bias_act_grad

    def wrong_order_2(dy, x, b, y, dim, act, alpha, gain, clamp, order):
        out = real(dy, x, b, y, dim, act, alpha, gain, clamp, order)
        return out * -1 if order == 2 else out

    monkeypatch.setattr(torch.ops.gemix_C, "bias_act_grad", wrong_order_2)
    with pytest.raises(OpSelfCheckError, match=r"case gradient order 2 tanh: max abs error 2\.88 "):
        bias_act(torch.randn(2, 3), None, act="tanh", impl="cpp")
    _wrong(monkeypatch, "modulate_weight_backward", lambda grads: (grads[0], grads[1] * 0))
    weight, styles = torch.randn(4, 3, 3, 3), torch.rand(2, 3) + 0.5
    with pytest.raises(OpSelfCheckError, match=r"^modulated_conv2d: .*case gradient styles demodulate: max abs error"):
        modulated_conv2d(torch.randn(2, 3, 6, 6), weight, styles, fused=True, impl="cpp")


@requires_kernels
def test_a_kernel_that_raises_or_returns_the_wrong_shape_fails_the_check(fresh, monkeypatch):
    def broken(*args):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nmore")

    monkeypatch.setattr(torch.ops.gemix_C, "modulate_weight", broken)
    with pytest.raises(OpSelfCheckError) as caught:
        modulated_conv2d(torch.randn(1, 3, 6, 6), torch.randn(4, 3, 3, 3), torch.rand(1, 3) + 0.5, impl="cpp")
    assert str(caught.value).startswith(
        "modulated_conv2d: the compiled cpp kernel (gemix_C.modulate_weight/gemix_C.modulate_weight_backward) "
        "disagrees with the pure-PyTorch reference for float32 on cpu, case (the first): raised RuntimeError: "
        "CUDA error: no kernel image is available for execution on the device."
    )
    _wrong(monkeypatch, "upfirdn2d", lambda y: y[:, :, 1:])
    with pytest.raises(OpSelfCheckError, match=r"case forward up=2 separable: output of shape \(2, 3, 13, 12\)"):
        upfirdn2d(torch.randn(1, 1, 4, 4), None, impl="cpp")


@requires_kernels
def test_a_nan_from_the_kernel_fails_the_check(fresh, monkeypatch):
    _wrong(monkeypatch, "upfirdn2d", lambda y: y * float("nan"))
    with pytest.raises(OpSelfCheckError, match="max abs error nan where at most"):
        upfirdn2d(torch.randn(1, 1, 4, 4), None, impl="cpp")


@requires_kernels
def test_gemix_ops_selfcheck_0_skips_the_check_and_other_values_are_refused(fresh, monkeypatch):
    _wrong(monkeypatch, "upfirdn2d", lambda y: y + 0.5)
    monkeypatch.setenv("GEMIX_OPS_SELFCHECK", "0")
    upfirdn2d(torch.randn(1, 1, 4, 4), None, impl="cpp")
    assert fresh._passed == set() and fresh._failed == {}
    monkeypatch.setenv("GEMIX_OPS_SELFCHECK", "no")
    with pytest.raises(ValueError, match=r"GEMIX_OPS_SELFCHECK must be 0 .* or 1 .*, got 'no'"):
        upfirdn2d(torch.randn(1, 1, 4, 4), None, impl="cpp")


@requires_kernels
def test_the_reference_path_and_unsupported_dtypes_never_run_it(fresh, monkeypatch):
    ran = []
    monkeypatch.setattr(_selfcheck, "_first_failure", lambda *key: ran.append(key))
    _call_each_op(impl="ref")
    monkeypatch.setenv("GEMIX_OPS", "ref")
    _call_each_op(impl=None)
    monkeypatch.delenv("GEMIX_OPS")
    _call_each_op(impl=None, dtype=torch.float16)  # auto: no float16 C++ kernels, the reference runs
    assert ran == [] and fresh._passed == set()


@requires_kernels
def test_it_runs_once_per_key_also_with_threads_and_never_recurses(fresh, monkeypatch):
    calls = []
    real_first_failure = _selfcheck._first_failure

    def counting(op, path, device, dtype):
        calls.append(op)
        # a public op called from inside a check (as a careless case might) must not check again
        upfirdn2d(torch.randn(1, 1, 4, 4), None, impl="cpp")
        time.sleep(0.05)  # let the other threads pile up on the lock
        return real_first_failure(op, path, device, dtype)

    monkeypatch.setattr(_selfcheck, "_first_failure", counting)
    errors = []

    def work():
        try:
            bias_act(torch.randn(2, 3), torch.zeros(3), act="relu", impl="cpp")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and calls == ["bias_act"]
    assert fresh._passed == {("bias_act", "cpp", "cpu", torch.float32)}
    for _ in range(3):
        bias_act(torch.randn(2, 3), torch.zeros(3), act="relu", impl="cpp")
    assert calls == ["bias_act"]


@requires_kernels
def test_it_runs_under_no_grad_inference_mode_and_autocast(fresh):
    with torch.inference_mode():
        _call_each_op(dtype=torch.float64)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        _call_each_op(dtype=torch.float32)
    assert len(fresh._passed) == 6 and fresh._failed == {}


@requires_kernels
def test_a_fake_tensor_mode_postpones_the_check(fresh, monkeypatch):
    from torch._subclasses.fake_tensor import FakeTensorMode

    monkeypatch.setenv("GEMIX_FAST", "0")  # the registered op (with its fake kernel), not the lean eager twin

    mode = FakeTensorMode()
    x, f = mode.from_tensor(torch.randn(1, 2, 6, 6)), mode.from_tensor(setup_filter([1, 3, 3, 1]))
    with mode:
        y = upfirdn2d(x, f, up=2, padding=2, impl="cpp")
    assert tuple(y.shape) == (1, 2, 13, 13) and fresh._passed == set()
    upfirdn2d(torch.randn(1, 2, 6, 6), None, impl="cpp")
    assert fresh._passed == {("upfirdn2d", "cpp", "cpu", torch.float32)}


@requires_kernels
def test_the_command_line_report_lists_every_output(capsys):
    assert _selfcheck._main(["--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "selfcheck: 86 of 86 outputs within tolerance on cpu" in out
    assert "FAIL" not in out


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_the_cuda_kernels_pass_their_selfcheck(dtype):
    from gemix_monai.ops._ext import has_cuda_kernels

    assert has_cuda_kernels(), "gemix_monai._C was built without CUDA kernels on a machine with a GPU"
    results = _selfcheck.run_selfcheck("cuda", dtypes=(dtype,))
    bad = [(r.op, r.case, r.error, r.tolerance, r.problem) for r in results if not r.ok]
    assert bad == []
