// bias_act: the CUDA kernels (bias_act_kernel.cu) bound to gemix_C::bias_act / bias_act_grad,
// launched on the current stream of the tensors' device.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <torch/library.h>

#include "bias_act/bias_act.h"
#include "bias_act/bias_act_binding.h"

namespace gemix {
namespace bias_act {

cudaError_t launch_bias_act(const Params& p, int dtype, cudaStream_t stream);  // bias_act_kernel.cu

namespace {

int dtype_code(at::ScalarType t, const char* op) {
  switch (t) {
    case at::kFloat: return 0;
    case at::kDouble: return 1;
    case at::kHalf: return 2;
    case at::kBFloat16: return 3;
    default: TORCH_CHECK(false, op, " (CUDA): x must be float16, bfloat16, float32 or float64, got ", t);
  }
  return -1;
}

void launch(const Params& p, int dtype, const at::Tensor& like, const char* op) {
  const cudaError_t err = launch_bias_act(p, dtype, c10::cuda::getCurrentCUDAStream(like.device().index()).stream());
  TORCH_CHECK(err == cudaSuccess, op, " (CUDA): kernel launch failed: ", cudaGetErrorString(err));
}

at::Tensor bias_act_cuda(const at::Tensor& x_in, const std::optional<at::Tensor>& b_in, int64_t dim, int64_t act,
                         double alpha, double gain, double clamp) {
  check_common(x_in, b_in, dim, act, "bias_act");
  const int dtype = dtype_code(x_in.scalar_type(), "bias_act");
  const c10::cuda::CUDAGuard guard(x_in.device());
  at::Tensor x = dense(x_in);
  at::Tensor b = b_in.has_value() ? b_in->contiguous() : at::Tensor();
  at::Tensor y = at::empty_like(x);
  if (x.numel() == 0) return y;
  Params p;
  p.x = x.data_ptr();
  p.b = b.defined() ? b.data_ptr() : nullptr;
  p.out = y.data_ptr();
  set_layout(p, x, b.defined(), dim);
  p.act = int(act);
  p.order = 0;
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
  launch(p, dtype, x, "bias_act");
  return y;
}

at::Tensor bias_act_grad_cuda(const at::Tensor& dy_in, const std::optional<at::Tensor>& x_in,
                              const std::optional<at::Tensor>& b_in, const std::optional<at::Tensor>& y_in, int64_t dim,
                              int64_t act, double alpha, double gain, double clamp, int64_t order) {
  TORCH_CHECK(order == 1 || order == 2, "bias_act_grad: order must be 1 or 2, got ", order);
  const bool use_y = !x_in.has_value();
  TORCH_CHECK(!use_y || y_in.has_value(), "bias_act_grad: needs x (derivative from the input) or y (from the output)");
  check_common(dy_in, b_in, dim, act, "bias_act_grad");
  const int dtype = dtype_code(dy_in.scalar_type(), "bias_act_grad");
  const c10::cuda::CUDAGuard guard(dy_in.device());
  const at::Tensor ref = dense(use_y ? *y_in : *x_in);
  TORCH_CHECK(ref.sizes() == dy_in.sizes(), "bias_act_grad: dy must have the shape of x, got ", dy_in.sizes(), " vs ",
              ref.sizes());
  TORCH_CHECK(ref.scalar_type() == dy_in.scalar_type(), "bias_act_grad: dy and x/y must share a dtype");
  at::Tensor dy = same_layout(dy_in, ref);
  at::Tensor b = b_in.has_value() ? b_in->contiguous() : at::Tensor();
  at::Tensor dx = at::empty_like(ref);
  if (ref.numel() == 0) return dx;
  Params p;
  p.dy = dy.data_ptr();
  p.x = use_y ? nullptr : ref.data_ptr();
  p.y = use_y ? ref.data_ptr() : nullptr;
  p.b = b.defined() ? b.data_ptr() : nullptr;
  p.out = dx.data_ptr();
  set_layout(p, ref, b.defined(), dim);
  p.act = int(act);
  p.order = int(order);
  p.use_y = use_y;
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
  launch(p, dtype, ref, "bias_act_grad");
  return dx;
}

}  // namespace
}  // namespace bias_act
}  // namespace gemix

TORCH_LIBRARY_IMPL(gemix_C, CUDA, m) {
  m.impl("bias_act", &gemix::bias_act::bias_act_cuda);
  m.impl("bias_act_grad", &gemix::bias_act::bias_act_grad_cuda);
}
