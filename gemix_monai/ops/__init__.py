"""Custom ops of StyleGAN2: upfirdn2d, fused bias+activation, modulated convolution.

Each op has a pure-PyTorch reference, a C++ CPU kernel and a CUDA kernel behind one function;
see ``gemix_monai.ops._ext`` for how the implementation is chosen (``impl=`` / ``GEMIX_OPS``) and
``gemix_monai.ops._selfcheck`` for the one-time check of each compiled kernel against the reference.
"""

from gemix_monai.ops._selfcheck import OpSelfCheckError
from gemix_monai.ops.bias_act import ACTIVATIONS, bias_act
from gemix_monai.ops.modulated_conv import modulated_conv2d
from gemix_monai.ops.upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
