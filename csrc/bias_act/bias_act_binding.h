// bias_act: argument checks and layout handling shared by the CPU and CUDA torch bindings.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "bias_act/bias_act.h"

namespace gemix {
namespace bias_act {

// x itself when it is dense in memory (any permutation of dimensions), else a contiguous copy.

inline at::Tensor dense(const at::Tensor& t) { return t.is_non_overlapping_and_dense() ? t : t.contiguous(); }

// `t` in the memory layout (strides) of `like`.
inline at::Tensor same_layout(const at::Tensor& t, const at::Tensor& like) {
  if (t.strides() == like.strides()) return t;
  at::Tensor out = at::empty_like(like);
  out.copy_(t);
  return out;
}

inline void check_common(const at::Tensor& x, const std::optional<at::Tensor>& b, int64_t dim, int64_t act, const char* op) {
  TORCH_CHECK(act >= 0 && act < kNumActs, op, ": act code must be in [0, ", int(kNumActs), "), got ", act);
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least one dimension");
  TORCH_CHECK(dim >= 0 && dim < x.dim(), op, ": dim must be in [0, ", x.dim(), "), got ", dim);
  if (b.has_value()) {
    TORCH_CHECK(b->dim() == 1 && b->size(0) == x.size(dim), op, ": b must be 1-D of length x.shape[", dim, "] = ",
                x.size(dim), ", got ", b->sizes());
    TORCH_CHECK(b->scalar_type() == x.scalar_type(), op, ": b must have x's dtype ", x.scalar_type(), ", got ",
                b->scalar_type());
    TORCH_CHECK(b->device() == x.device(), op, ": b must be on x's device");
  }
}

// Fills the layout fields of p for a dense tensor `like` (the bias runs along dim).
inline void set_layout(Params& p, const at::Tensor& like, bool has_bias, int64_t dim) {
  p.numel = like.numel();
  if (has_bias && like.size(dim) > 1) {
    p.channels = like.size(dim);
    p.inner = like.stride(dim);
  } else {  // no bias, or a single channel: the bias (if any) is one number
    p.channels = 1;
    p.inner = std::max<int64_t>(p.numel, 1);
  }
}


}  // namespace bias_act
}  // namespace gemix
