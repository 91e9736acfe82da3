// bias_act: parameters and per-element maths shared by the CPU (bias_act_cpu.cpp) and CUDA
// (bias_act_kernel.cu) kernels. Plain C++ (no torch): every function is usable on host and device.
//
//   forward:         y  = clamp(act(x + b[c]) * gain, -clamp, clamp)
//   grad, order 1:   dx = dy * gain * act'(x + b[c])  * mask
//   grad, order 2:   dx = dy * gain * act''(x + b[c]) * mask,    mask = (clamp < 0 || |y| < clamp)
//
// The grad reads the derivative off y (use_y: linear, relu, lrelu with alpha >= 0, whose second
// derivative is zero) or recomputes it from x and b (every other activation).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GEMIX_HD __host__ __device__ __forceinline__
#else
#define GEMIX_HD inline
#endif

namespace gemix {
namespace bias_act {

// Must match gemix_monai/ops/bias_act.py ACTIVATIONS[*].code.
enum Act : int {
  kLinear = 0,
  kRelu = 1,
  kLrelu = 2,
  kTanh = 3,
  kSigmoid = 4,
  kElu = 5,
  kSelu = 6,
  kSoftplus = 7,
  kSwish = 8,
  kNumActs = 9,
};

// The tensor layout the kernels see: x (and y, dy, dx) dense in memory, viewed as
// [outer, channels, inner] around the bias dimension (inner = the bias dimension's stride).
struct Params {
  const void* x = nullptr;   // input (forward) / x (grad, may be null when use_y)
  const void* b = nullptr;   // bias [channels] or null
  const void* y = nullptr;   // grad only: forward output (for use_y and the clamp mask), may be null
  const void* dy = nullptr;  // grad only: incoming gradient
  void* out = nullptr;       // y (forward) or dx (grad)
  int64_t numel = 0;
  int64_t channels = 1;  // size of the bias dimension (1 without bias)
  int64_t inner = 1;     // memory stride of the bias dimension
  int act = kLinear;
  int order = 0;  // 0 forward, 1 first derivative, 2 second derivative
  bool use_y = false;
  double alpha = 0.0;
  double gain = 1.0;
  double clamp = -1.0;  // < 0: no clamping
};

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

template <typename S>
GEMIX_HD S exp_(S v);
template <>
GEMIX_HD float exp_<float>(float v) { return expf(v); }
template <>
GEMIX_HD double exp_<double>(double v) { return exp(v); }
template <typename S>
GEMIX_HD S tanh_(S v);
template <>
GEMIX_HD float tanh_<float>(float v) { return tanhf(v); }
template <>
GEMIX_HD double tanh_<double>(double v) { return tanh(v); }
template <typename S>
GEMIX_HD S log1p_(S v);
template <>
GEMIX_HD float log1p_<float>(float v) { return log1pf(v); }
template <>
GEMIX_HD double log1p_<double>(double v) { return log1p(v); }

template <typename S>
GEMIX_HD S sigmoid_(S z) {
  // no overflow for either sign of z
  if (z >= S(0)) return S(1) / (S(1) + exp_<S>(-z));
  const S e = exp_<S>(z);
  return e / (S(1) + e);
}

// act(z)
template <int A, typename S>
GEMIX_HD S activate(S z, S alpha) {
  if constexpr (A == kLinear) return z;
  if constexpr (A == kRelu) return z > S(0) ? z : S(0);
  if constexpr (A == kLrelu) return z >= S(0) ? z : z * alpha;
  if constexpr (A == kTanh) return tanh_<S>(z);
  if constexpr (A == kSigmoid) return sigmoid_<S>(z);
  if constexpr (A == kElu) return z >= S(0) ? z : exp_<S>(z) - S(1);
  if constexpr (A == kSelu) return z >= S(0) ? S(kSeluScale) * z : S(kSeluScale * kSeluAlpha) * (exp_<S>(z) - S(1));
  if constexpr (A == kSoftplus) return (z > S(0) ? z : S(0)) + log1p_<S>(exp_<S>(z > S(0) ? -z : z));
  if constexpr (A == kSwish) return z * sigmoid_<S>(z);
  return z;
}

// act'(z) (ORDER 1) or act''(z) (ORDER 2) from z.
template <int A, int ORDER, typename S>
GEMIX_HD S derivative_from_x(S z, S alpha) {
  if constexpr (A == kLinear) return ORDER == 1 ? S(1) : S(0);
  if constexpr (A == kRelu) return ORDER == 1 ? (z > S(0) ? S(1) : S(0)) : S(0);
  if constexpr (A == kLrelu) return ORDER == 1 ? (z > S(0) ? S(1) : alpha) : S(0);
  if constexpr (A == kTanh) {
    const S t = tanh_<S>(z);
    return ORDER == 1 ? S(1) - t * t : S(-2) * t * (S(1) - t * t);
  }
  if constexpr (A == kSigmoid) {
    const S s = sigmoid_<S>(z);
    return ORDER == 1 ? s * (S(1) - s) : s * (S(1) - s) * (S(1) - S(2) * s);
  }
  if constexpr (A == kElu) return z >= S(0) ? (ORDER == 1 ? S(1) : S(0)) : exp_<S>(z);
  if constexpr (A == kSelu) return z >= S(0) ? (ORDER == 1 ? S(kSeluScale) : S(0)) : S(kSeluScale * kSeluAlpha) * exp_<S>(z);
  if constexpr (A == kSoftplus) {
    const S s = sigmoid_<S>(z);
    return ORDER == 1 ? s : s * (S(1) - s);
  }
  if constexpr (A == kSwish) {
    const S s = sigmoid_<S>(z);
    return ORDER == 1 ? s + z * s * (S(1) - s) : s * (S(1) - s) * (S(2) + z * (S(1) - S(2) * s));
  }
  return S(0);
}

// act'(z) from the output y (use_y activations only; their act'' is zero): the sign of
// y * gain is the sign of z.
template <int A, typename S>
GEMIX_HD S derivative_from_y(S y, S gain, S alpha) {
  if constexpr (A == kRelu) return y * gain > S(0) ? S(1) : S(0);
  if constexpr (A == kLrelu) return y * gain > S(0) ? S(1) : alpha;
  return S(1);
}

// One element of the forward pass.
template <int A, typename S>
GEMIX_HD S forward_element(S x, S b, const Params& p) {
  S y = activate<A, S>(x + b, S(p.alpha)) * S(p.gain);
  if (p.clamp >= 0.0) {
    const S c = S(p.clamp);
    y = y > c ? c : (y < -c ? -c : y);
  }
  return y;
}

// One element of the gradient (ORDER 1 or 2). USE_Y: derivative and mask from y, x unused.
template <int A, int ORDER, bool USE_Y, typename S>
GEMIX_HD S grad_element(S dy, S x, S b, S y, const Params& p) {
  S d;
  bool pass = true;
  if constexpr (USE_Y) {
    d = ORDER == 1 ? derivative_from_y<A, S>(y, S(p.gain), S(p.alpha)) : S(0);
    if (p.clamp >= 0.0) pass = (y < S(p.clamp)) && (y > -S(p.clamp));
  } else {
    const S z = x + b;
    d = derivative_from_x<A, ORDER, S>(z, S(p.alpha));
    if (p.clamp >= 0.0) {
      const S u = activate<A, S>(z, S(p.alpha)) * S(p.gain);
      pass = (u < S(p.clamp)) && (u > -S(p.clamp));
    }
  }
  return pass ? dy * S(p.gain) * d : S(0);
}

}  // namespace bias_act
}  // namespace gemix
