// upfirdn2d: the torch binding of the CUDA kernel (TORCH_LIBRARY_IMPL(gemix_C, CUDA)). Built only
// with CUDA (setup.py compiles *_cuda.cpp files then); the schema lives in upfirdn2d_cpu.cpp.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>

#include "upfirdn2d/upfirdn2d.h"
#include "upfirdn2d/upfirdn2d_binding.h"
#include "upfirdn2d/upfirdn2d_cuda.h"

namespace gemix {
namespace upfirdn2d {
namespace {

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x, int64_t down_y,
                          int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, bool flip_filter, double gain) {
  const Geometry g = check_geometry(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1);
  TORCH_CHECK(x.is_cuda(), "upfirdn2d: the CUDA kernel needs x on a CUDA device, got ", x.device());
  TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on x's device ", x.device(), ", got ", f.device());
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
              "upfirdn2d: the CUDA kernel supports x of dtype float32, float64, float16 and bfloat16, got ", dtype);

  const c10::cuda::CUDAGuard device_guard(x.device());
  const bool channels_last = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor y = at::empty({x.size(0), x.size(1), g.out_h, g.out_w},
                           x.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;

  // Taps in the accumulation type (float for the half types).
  const at::Tensor taps = correlation_taps(f, flip_filter, gain, dtype == at::kDouble ? at::kDouble : at::kFloat);
  Params p = make_params(x, y, taps, g, f.dim() == 1, channels_last);  // any strides: the kernels index with them
  p.dtype = dtype == at::kFloat ? kFloat32 : dtype == at::kDouble ? kFloat64 : dtype == at::kHalf ? kFloat16 : kBFloat16;
  const cudaError_t err = launch_upfirdn2d(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "upfirdn2d: CUDA kernel launch failed: ", cudaGetErrorString(err));
  return y;
}

}  // namespace
}  // namespace upfirdn2d
}  // namespace gemix

TORCH_LIBRARY_IMPL(gemix_C, CUDA, m) { m.impl("upfirdn2d", &gemix::upfirdn2d::upfirdn2d_cuda); }
