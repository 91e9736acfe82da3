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


// One checked kernel call: the dense tensors the kernel reads and writes (kept alive here) and the
// Params that point into them. The bindings add only what differs per device (dtype set, launch).
struct Call {
  at::Tensor in, dy, b, out;
  Params p;
};

inline void set_scalars(Params& p, int64_t act, double alpha, double gain, double clamp, int64_t order) {
  p.act = int(act);
  p.order = int(order);
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
}

inline Call prepare_forward(const at::Tensor& x_in, const std::optional<at::Tensor>& b_in, int64_t dim, int64_t act,
                            double alpha, double gain, double clamp) {
  check_common(x_in, b_in, dim, act, "bias_act");
  Call c;
  c.in = dense(x_in);
  c.b = b_in.has_value() ? b_in->contiguous() : at::Tensor();
  c.out = at::empty_like(c.in);
  c.p.x = c.in.data_ptr();
  c.p.b = c.b.defined() ? c.b.data_ptr() : nullptr;
  c.p.out = c.out.data_ptr();
  set_layout(c.p, c.in, c.b.defined(), dim);
  set_scalars(c.p, act, alpha, gain, clamp, 0);
  return c;
}

// The derivative is taken from x, or from y when x is absent (activations whose derivative the
// output determines); `in` is that tensor and dy is brought to its memory layout.
inline Call prepare_grad(const at::Tensor& dy_in, const std::optional<at::Tensor>& x_in,
                         const std::optional<at::Tensor>& b_in, const std::optional<at::Tensor>& y_in, int64_t dim,
                         int64_t act, double alpha, double gain, double clamp, int64_t order) {
  TORCH_CHECK(order == 1 || order == 2, "bias_act_grad: order must be 1 or 2, got ", order);
  const bool use_y = !x_in.has_value();
  TORCH_CHECK(!use_y || y_in.has_value(), "bias_act_grad: needs x (derivative from the input) or y (from the output)");
  check_common(dy_in, b_in, dim, act, "bias_act_grad");
  Call c;
  c.in = dense(use_y ? *y_in : *x_in);
  TORCH_CHECK(c.in.sizes() == dy_in.sizes(), "bias_act_grad: dy must have the shape of x, got ", dy_in.sizes(), " vs ",
              c.in.sizes());
  TORCH_CHECK(c.in.scalar_type() == dy_in.scalar_type(), "bias_act_grad: dy and x/y must share a dtype");
  c.dy = same_layout(dy_in, c.in);
  c.b = b_in.has_value() ? b_in->contiguous() : at::Tensor();
  c.out = at::empty_like(c.in);
  c.p.dy = c.dy.data_ptr();
  c.p.x = use_y ? nullptr : c.in.data_ptr();
  c.p.y = use_y ? c.in.data_ptr() : nullptr;
  c.p.b = c.b.defined() ? c.b.data_ptr() : nullptr;
  c.p.out = c.out.data_ptr();
  c.p.use_y = use_y;
  set_layout(c.p, c.in, c.b.defined(), dim);
  set_scalars(c.p, act, alpha, gain, clamp, order);
  return c;
}

}  // namespace bias_act
}  // namespace gemix
