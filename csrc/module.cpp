// The Python module gemix_monai._C. Importing it registers every kernel of csrc/ with the
// dispatcher as torch.ops.gemix_C.* (each op folder adds its schemas with TORCH_LIBRARY_FRAGMENT
// and its CPU/CUDA kernels with TORCH_LIBRARY_IMPL), so this file only reports how it was built.
#include <torch/extension.h>

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gemix-monai custom ops: upfirdn2d, bias_act, modulated convolution";
  m.def("has_cuda", []() {
#ifdef GEMIX_WITH_CUDA
    return true;
#else
    return false;
#endif
  });
}
