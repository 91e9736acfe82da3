"""Import a built gemix_monai._C and check that every op has a CUDA kernel registered.

    python .ci/check_cuda_ops.py [path/to/_C*.so]

With a path, that file is loaded as ``gemix_monai._C`` (so a build kept out of the source tree can
be checked without installing it); without one, ``import gemix_monai._C``. No GPU is needed: the
dispatcher's registrations are read, no kernel runs. Exits non-zero, naming each op that lacks a
CUDA kernel, when any does, when the module says it was built without CUDA, or when an expected op
is not registered at all.
"""

from __future__ import annotations

import importlib.util
import sys

import torch

# The ops of csrc/; every one must have a CUDA kernel. An op registered under gemix_C:: that is not
# listed here is checked too, so a new op cannot ship CPU-only unnoticed.
EXPECTED = ("bias_act", "bias_act_grad", "upfirdn2d", "modulate_weight", "modulate_weight_backward")


def load(path: str | None):
    if path is None:
        import gemix_monai._C as module

        return module
    spec = importlib.util.spec_from_file_location("gemix_monai._C", path)
    if spec is None:
        raise SystemExit(f"check_cuda_ops: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    module = load(argv[1] if len(argv) > 1 else None)
    print(f"check_cuda_ops: loaded {module.__file__} with torch {torch.__version__} (CUDA {torch.version.cuda})")
    problems = []
    if not module.has_cuda():
        problems.append("gemix_monai._C.has_cuda() is False: the module was compiled without GEMIX_WITH_CUDA")
    registered = sorted(n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("gemix_C::"))
    for op in sorted(set(EXPECTED) | set(registered)):
        name = f"gemix_C::{op}"
        if op not in registered:
            problems.append(f"{name} is not registered at all (no schema)")
            continue
        cpu = torch._C._dispatch_has_kernel_for_dispatch_key(name, "CPU")
        cuda = torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA")
        print(f"check_cuda_ops: {name:34s} CPU {'yes' if cpu else 'NO '}  CUDA {'yes' if cuda else 'NO'}")
        if not cuda:
            problems.append(f"{name} has no CUDA kernel registered")
        if not cpu:
            problems.append(f"{name} has no CPU kernel registered")
    for p in problems:
        print(f"check_cuda_ops: FAIL {p}", file=sys.stderr)
    if not problems:
        print(f"check_cuda_ops: ok, all {len(registered)} gemix_C ops have CPU and CUDA kernels")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
