"""Custom ops of StyleGAN2: upfirdn2d, fused bias+activation, modulated convolution.

Each op has a pure-PyTorch reference, a C++ CPU kernel and a CUDA kernel behind one function;
see ``gemix_monai.ops._ext`` for how the implementation is chosen (``impl=`` / ``GEMIX_OPS``).
"""
