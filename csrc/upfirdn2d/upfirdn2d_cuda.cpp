// upfirdn2d: the torch binding of the CUDA kernel (TORCH_LIBRARY_IMPL(gemix_C, CUDA)). Built only
// with CUDA (setup.py compiles *_cuda.cpp files then); the schema lives in upfirdn2d_cpu.cpp.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>

#include "upfirdn2d/upfirdn2d.h"
#include "upfirdn2d/upfirdn2d_cuda.h"

namespace gemix {
namespace upfirdn2d {
namespace {

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x, int64_t down_y,
                          int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, bool flip_filter, double gain) {
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(x.is_cuda(), "upfirdn2d: the CUDA kernel needs x on a CUDA device, got ", x.device());
  TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on x's device ", x.device(), ", got ", f.device());
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16,
              "upfirdn2d: the CUDA kernel supports x of dtype float32, float64, float16 and bfloat16, got ", dtype);
  TORCH_CHECK(f.dim() == 1 || f.dim() == 2, "upfirdn2d: f must be 1-D (separable) or 2-D, got ", f.sizes());
  TORCH_CHECK(f.numel() > 0, "upfirdn2d: f must have at least one tap");
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up and down must be >= 1");
  const int64_t fw = f.size(-1), fh = f.size(0);
  const int64_t out_h = output_size(x.size(2), up_y, pad_y0, pad_y1, fh, down_y);
  const int64_t out_w = output_size(x.size(3), up_x, pad_x0, pad_x1, fw, down_x);
  TORCH_CHECK(out_h >= 1 && out_w >= 1, "upfirdn2d: the padding leaves an empty output (", out_h, "x", out_w, ")");

  const c10::cuda::CUDAGuard device_guard(x.device());
  const bool channels_last = !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor y = at::empty({x.size(0), x.size(1), out_h, out_w},
                           x.options().memory_format(channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;

  // Correlation taps in the accumulation type: flipped unless flip_filter, times gain ** (ndim / 2).
  const auto acc = dtype == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor taps = f.detach().to(at::kDouble);
  if (!flip_filter) taps = taps.flip(f.dim() == 2 ? at::IntArrayRef{0, 1} : at::IntArrayRef{0});
  taps = (taps * std::pow(gain, f.dim() / 2.0)).to(acc).contiguous();

  Params p;
  p.x = x.data_ptr();  // any strides: the kernels index with them
  p.y = y.data_ptr();
  p.f = taps.data_ptr();
  p.dtype = dtype == at::kFloat ? kFloat32 : dtype == at::kDouble ? kFloat64 : dtype == at::kHalf ? kFloat16 : kBFloat16;
  p.n = x.size(0);
  p.c = x.size(1);
  p.in_h = x.size(2);
  p.in_w = x.size(3);
  p.out_h = out_h;
  p.out_w = out_w;
  for (int d = 0; d < 4; ++d) {
    p.sx[d] = x.stride(d);
    p.sy[d] = y.stride(d);
  }
  p.channels_last = channels_last;
  p.up_x = static_cast<int>(up_x);
  p.up_y = static_cast<int>(up_y);
  p.down_x = static_cast<int>(down_x);
  p.down_y = static_cast<int>(down_y);
  p.pad_x0 = static_cast<int>(pad_x0);
  p.pad_y0 = static_cast<int>(pad_y0);
  p.fw = static_cast<int>(fw);
  p.fh = static_cast<int>(fh);
  p.separable = f.dim() == 1;
  const cudaError_t err = launch_upfirdn2d(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "upfirdn2d: CUDA kernel launch failed: ", cudaGetErrorString(err));
  return y;
}

}  // namespace
}  // namespace upfirdn2d
}  // namespace gemix

TORCH_LIBRARY_IMPL(gemix_C, CUDA, m) { m.impl("upfirdn2d", &gemix::upfirdn2d::upfirdn2d_cuda); }
