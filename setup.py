"""Builds ``gemix_monai._C``: the C++ CPU kernels always, the CUDA kernels when possible.

Layout of ``csrc/`` (one folder per op):

* ``*.cu``          torch-free CUDA kernels and their host launchers (compile with plain nvcc);
* ``*_cuda.cpp``    torch bindings that call those launchers (CUDA builds only);
* every other ``*.cpp``: CPU kernels, CPU bindings and the module itself (always built).

CUDA is built when PyTorch itself is a CUDA build and a CUDA toolkit is found, or when
``FORCE_CUDA=1`` (which fails, saying why, when either is missing). The toolkit is the first folder
holding both ``bin/nvcc`` and ``include/cuda_runtime.h`` among: ``$CUDA_HOME``, ``$CUDA_PATH``, the
folders above ``nvcc`` on the PATH (its real path first, so a launcher script or link elsewhere is
looked through), ``/usr/local/cuda``, then ``/usr/local/cuda-X.Y`` newest first. torch's own guess
(the folder above the first ``nvcc`` on the PATH) misses the headers when that ``nvcc`` is a
launcher outside the toolkit, e.g. ``/usr/local/bin/nvcc``.
Build with ``pip install --no-build-isolation -e .`` so the installed torch is used.
"""

import glob
import os
import re
import shutil

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _sources(pattern):
    return sorted(
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "csrc", "**", pattern), recursive=True)
    )


def _is_toolkit(folder):
    return os.path.isfile(os.path.join(folder, "bin", "nvcc")) and os.path.isfile(
        os.path.join(folder, "include", "cuda_runtime.h")
    )


def _toolkit_candidates(system_root="/usr/local"):
    """Folders that may be the CUDA toolkit, in the order they are tried (duplicates kept out)."""
    candidates = [os.environ[var] for var in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(var)]
    nvcc = shutil.which("nvcc")
    if nvcc:
        for path in (os.path.realpath(nvcc), os.path.abspath(nvcc)):
            folder = os.path.dirname(os.path.dirname(path))  # <toolkit>/bin/nvcc
            while True:
                candidates.append(folder)
                parent = os.path.dirname(folder)
                if parent == folder:
                    break
                folder = parent

    def version(path):
        return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))

    candidates.append(os.path.join(system_root, "cuda"))
    candidates += sorted(glob.glob(os.path.join(system_root, "cuda-*")), key=version, reverse=True)
    seen, ordered = set(), []
    for c in candidates:
        if c not in seen:
            seen.add(c)
            ordered.append(c)
    return ordered


def find_cuda_home(system_root="/usr/local"):
    """(toolkit folder or None, the folders tried)."""
    tried = _toolkit_candidates(system_root)
    return next((c for c in tried if _is_toolkit(c)), None), tried


def _extensions():
    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    cuda_home, tried = find_cuda_home()
    if cuda_home is not None:
        # torch.utils.cpp_extension reads CUDA_HOME once, when imported: set it before, and its
        # module attribute after, in case something imported it first.
        os.environ["CUDA_HOME"] = cuda_home
    elif force_cuda:
        raise SystemExit(
            "gemix_monai: FORCE_CUDA=1 but no CUDA toolkit was found (a folder holding bin/nvcc and "
            f"include/cuda_runtime.h); tried: {', '.join(tried) or 'nothing'}. Set CUDA_HOME to the toolkit folder, "
            "e.g. CUDA_HOME=/usr/local/cuda-13.0."
        )

    import torch
    import torch.utils.cpp_extension as cpp_extension
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    if cuda_home is not None:
        cpp_extension.CUDA_HOME = cuda_home
    if force_cuda and torch.version.cuda is None:
        raise SystemExit(
            f"gemix_monai: FORCE_CUDA=1 but the installed torch {torch.__version__} is a CPU build (torch.version.cuda is None): "
            "install a CUDA build of torch first, and build with pip's --no-build-isolation so that it is used."
        )
    with_cuda = force_cuda or (torch.version.cuda is not None and cuda_home is not None)
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
    where = (
        f", CUDA toolkit {cuda_home}, TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '(torch default)')}"
        if with_cuda
        else ""
    )
    print(
        f"gemix_monai: building _C with {'CPU and CUDA' if with_cuda else 'CPU'} kernels ({len(ext.sources)} sources{where})"
    )
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
