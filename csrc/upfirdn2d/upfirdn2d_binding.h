// upfirdn2d: argument checks, correlation taps and Params filling shared by the CPU and CUDA torch
// bindings; each binding adds only its device/dtype checks, its memory-layout choice and its launch.
#pragma once

#include <ATen/ATen.h>

#include <cmath>

#include "upfirdn2d/upfirdn2d.h"

namespace gemix {
namespace upfirdn2d {

struct Geometry {
  int64_t up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1;
  int64_t fw, fh, out_h, out_w;
};

// Device-independent checks; returns the output size (docs/maths.md §1.1) with the resampling arguments.
inline Geometry check_geometry(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x,
                               int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1) {
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(f.dim() == 1 || f.dim() == 2, "upfirdn2d: f must be 1-D (separable) or 2-D, got ", f.sizes());
  TORCH_CHECK(f.numel() > 0, "upfirdn2d: f must have at least one tap");
  TORCH_CHECK(up_x >= 1 && up_y >= 1 && down_x >= 1 && down_y >= 1, "upfirdn2d: up and down must be >= 1, got up=(", up_x,
              ", ", up_y, "), down=(", down_x, ", ", down_y, ")");
  Geometry g{up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, f.size(-1), f.size(0), 0, 0};
  g.out_h = output_size(x.size(2), up_y, pad_y0, pad_y1, g.fh, down_y);
  g.out_w = output_size(x.size(3), up_x, pad_x0, pad_x1, g.fw, down_x);
  TORCH_CHECK(g.out_h >= 1 && g.out_w >= 1, "upfirdn2d: the padding leaves an empty output (", g.out_h, "x", g.out_w, ")");
  return g;
}

// Correlation taps in `dtype`, contiguous: flipped unless flip_filter, times gain ** (ndim / 2).
inline at::Tensor correlation_taps(const at::Tensor& f, bool flip_filter, double gain, at::ScalarType dtype) {
  at::Tensor taps = f.detach().to(at::kDouble);
  if (!flip_filter) taps = taps.flip(f.dim() == 2 ? at::IntArrayRef{0, 1} : at::IntArrayRef{0});
  return (taps * std::pow(gain, f.dim() / 2.0)).to(dtype).contiguous();
}

// Everything of Params but the dtype code: pointers, sizes, strides (any: the kernels index with
// them), layout flag and resampling arguments.
inline Params make_params(const at::Tensor& x, const at::Tensor& y, const at::Tensor& taps, const Geometry& g,
                          bool separable, bool channels_last) {
  Params p;
  p.x = x.data_ptr();
  p.y = y.data_ptr();
  p.f = taps.data_ptr();
  p.n = x.size(0);
  p.c = x.size(1);
  p.in_h = x.size(2);
  p.in_w = x.size(3);
  p.out_h = g.out_h;
  p.out_w = g.out_w;
  for (int d = 0; d < 4; ++d) {
    p.sx[d] = x.stride(d);
    p.sy[d] = y.stride(d);
  }
  p.channels_last = channels_last;
  p.up_x = static_cast<int>(g.up_x);
  p.up_y = static_cast<int>(g.up_y);
  p.down_x = static_cast<int>(g.down_x);
  p.down_y = static_cast<int>(g.down_y);
  p.pad_x0 = static_cast<int>(g.pad_x0);
  p.pad_y0 = static_cast<int>(g.pad_y0);
  p.fw = static_cast<int>(g.fw);
  p.fh = static_cast<int>(g.fh);
  p.separable = separable;
  return p;
}

}  // namespace upfirdn2d
}  // namespace gemix
