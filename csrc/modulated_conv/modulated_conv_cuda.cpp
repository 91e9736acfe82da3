// Modulation/demodulation: the CUDA kernels (modulated_conv_kernel.cu) bound to
// gemix_C::modulate_weight / modulate_weight_backward on the current stream.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "common/dtype_code.h"

#include "modulated_conv/modulated_conv.h"

namespace gemix {
namespace modulated_conv {

// modulated_conv_kernel.cu
cudaError_t launch_modulate(const ModParams& p, int dtype, cudaStream_t stream);
cudaError_t launch_modulate_backward(const ModParams& p, int dtype, cudaStream_t stream);
// modulated_conv_cpu.cpp
ModParams make_forward_params(const at::Tensor& weight, const at::Tensor& styles, bool demodulate, double eps,
                              at::Tensor& w, at::Tensor& d);
ModParams make_backward_params(const at::Tensor& grad_w, const at::Tensor& grad_d, const at::Tensor& weight,
                               const at::Tensor& styles, const at::Tensor& d, bool demodulate, at::Tensor& grad_weight,
                               at::Tensor& grad_styles, at::Tensor& e, at::ScalarType acc);

namespace {

int dtype_code(at::ScalarType t, const char* op) { return cuda_dtype_code(t, op, "weight"); }

std::tuple<at::Tensor, at::Tensor> modulate_weight_cuda(const at::Tensor& weight_in, const at::Tensor& styles_in,
                                                        bool demodulate, double eps) {
  const int dtype = dtype_code(weight_in.scalar_type(), "modulate_weight");
  const c10::cuda::CUDAGuard guard(weight_in.device());
  const at::Tensor weight = weight_in.contiguous(), styles = styles_in.contiguous();
  at::Tensor w, d;
  const ModParams p = make_forward_params(weight, styles, demodulate, eps, w, d);
  const cudaError_t err = launch_modulate(p, dtype, c10::cuda::getCurrentCUDAStream(weight.device().index()).stream());
  TORCH_CHECK(err == cudaSuccess, "modulate_weight (CUDA): kernel launch failed: ", cudaGetErrorString(err));
  return {w, d};
}

std::tuple<at::Tensor, at::Tensor> modulate_weight_backward_cuda(const at::Tensor& grad_w, const at::Tensor& grad_d,
                                                                 const at::Tensor& weight_in,
                                                                 const at::Tensor& styles_in, const at::Tensor& d,
                                                                 bool demodulate) {
  const int dtype = dtype_code(weight_in.scalar_type(), "modulate_weight_backward");
  const c10::cuda::CUDAGuard guard(weight_in.device());
  const at::Tensor weight = weight_in.contiguous(), styles = styles_in.contiguous();
  const at::Tensor gw = grad_w.contiguous().to(weight.scalar_type()), gd = grad_d.contiguous().to(weight.scalar_type());
  const at::Tensor dc = d.contiguous().to(weight.scalar_type());
  at::Tensor grad_weight, grad_styles, e;
  const at::ScalarType acc = weight.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const ModParams p = make_backward_params(gw, gd, weight, styles, dc, demodulate, grad_weight, grad_styles, e, acc);
  const cudaError_t err =
      launch_modulate_backward(p, dtype, c10::cuda::getCurrentCUDAStream(weight.device().index()).stream());
  TORCH_CHECK(err == cudaSuccess, "modulate_weight_backward (CUDA): kernel launch failed: ", cudaGetErrorString(err));
  return {grad_weight, grad_styles};
}

}  // namespace
}  // namespace modulated_conv
}  // namespace gemix

TORCH_LIBRARY_IMPL(gemix_C, CUDA, m) {
  m.impl("modulate_weight", &gemix::modulated_conv::modulate_weight_cuda);
  m.impl("modulate_weight_backward", &gemix::modulated_conv::modulate_weight_backward_cuda);
}
