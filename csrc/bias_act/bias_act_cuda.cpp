// bias_act: the CUDA kernels (bias_act_kernel.cu) bound to gemix_C::bias_act / bias_act_grad,
// launched on the current stream of the tensors' device.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "common/dtype_code.h"

#include "bias_act/bias_act.h"
#include "bias_act/bias_act_binding.h"

namespace gemix {
namespace bias_act {

cudaError_t launch_bias_act(const Params& p, int dtype, cudaStream_t stream);  // bias_act_kernel.cu

namespace {

int dtype_code(at::ScalarType t, const char* op) { return cuda_dtype_code(t, op, "x"); }

void launch(const Params& p, int dtype, const at::Tensor& like, const char* op) {
  const cudaError_t err = launch_bias_act(p, dtype, c10::cuda::getCurrentCUDAStream(like.device().index()).stream());
  TORCH_CHECK(err == cudaSuccess, op, " (CUDA): kernel launch failed: ", cudaGetErrorString(err));
}

at::Tensor bias_act_cuda(const at::Tensor& x_in, const std::optional<at::Tensor>& b_in, int64_t dim, int64_t act,
                         double alpha, double gain, double clamp) {
  const int dtype = dtype_code(x_in.scalar_type(), "bias_act");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const Call c = prepare_forward(x_in, b_in, dim, act, alpha, gain, clamp);
  if (c.out.numel() > 0) launch(c.p, dtype, c.in, "bias_act");
  return c.out;
}

at::Tensor bias_act_grad_cuda(const at::Tensor& dy_in, const std::optional<at::Tensor>& x_in,
                              const std::optional<at::Tensor>& b_in, const std::optional<at::Tensor>& y_in, int64_t dim,
                              int64_t act, double alpha, double gain, double clamp, int64_t order) {
  const int dtype = dtype_code(dy_in.scalar_type(), "bias_act_grad");
  const c10::cuda::CUDAGuard guard(dy_in.device());
  const Call c = prepare_grad(dy_in, x_in, b_in, y_in, dim, act, alpha, gain, clamp, order);
  if (c.out.numel() > 0) launch(c.p, dtype, c.in, "bias_act_grad");
  return c.out;
}

}  // namespace
}  // namespace bias_act
}  // namespace gemix

TORCH_LIBRARY_IMPL(gemix_C, CUDA, m) {
  m.impl("bias_act", &gemix::bias_act::bias_act_cuda);
  m.impl("bias_act_grad", &gemix::bias_act::bias_act_grad_cuda);
}
