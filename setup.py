"""Builds ``gemix_monai._C``: the C++ CPU kernels always, the CUDA kernels when possible.

Layout of ``csrc/`` (one folder per op):

* ``*.cu``          torch-free CUDA kernels and their host launchers (compile with plain nvcc);
* ``*_cuda.cpp``    torch bindings that call those launchers (CUDA builds only);
* every other ``*.cpp``: CPU kernels, CPU bindings and the module itself (always built).

CUDA is built when PyTorch itself is a CUDA build and nvcc is found, or when ``FORCE_CUDA=1``.
Build with ``pip install --no-build-isolation -e .`` so the installed torch is used.
"""

import glob
import os

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "csrc", "**", pattern), recursive=True))


def _extensions():
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    with_cuda = force_cuda or (torch.version.cuda is not None and CUDA_HOME is not None)
    cpp_all = _sources("*.cpp")
    cuda_bindings = [s for s in cpp_all if s.endswith("_cuda.cpp")]
    cpu_sources = [s for s in cpp_all if s not in cuda_bindings]
    include_dirs = [os.path.join(ROOT, "csrc")]
    cxx_flags = ["-O3", "-std=c++20"]
    if os.name != "nt":
        cxx_flags += ["-fopenmp"]
    if with_cuda:
        ext = CUDAExtension(
            name="gemix_monai._C",
            sources=cpu_sources + cuda_bindings + _sources("*.cu"),
            include_dirs=include_dirs,
            define_macros=[("GEMIX_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--use_fast_math", "-std=c++20"]},
            extra_link_args=["-fopenmp"] if os.name != "nt" else [],
        )
    else:
        ext = CppExtension(
            name="gemix_monai._C",
            sources=cpu_sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags},
            extra_link_args=["-fopenmp"] if os.name != "nt" else [],
        )
    print(f"gemix_monai: building _C with {'CPU and CUDA' if with_cuda else 'CPU'} kernels ({len(ext.sources)} sources)")
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
