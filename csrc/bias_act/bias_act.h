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

#include <cmath>
#include <cstdint>
#include <cstring>

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

#if !defined(__CUDA_ARCH__)
// Host float exp/tanh written so that compilers vectorise the element loops (libm's expf/tanhf are
// opaque calls): exp by range reduction n = round(v / ln2), a degree-6 polynomial on
// [-ln2/2, ln2/2] and a scale by 2^n through the exponent bits; within 2 ulp of expf.
inline float host_expf(float v) {
  v = v > 88.7f ? 88.7f : v;
  v = v < -87.3f ? -87.3f : v;  // NaN passes both comparisons unchanged
  const float n = (v * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  float r = v - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float q = 1.9875691500e-4f;
  q = q * r + 1.3981999507e-3f;
  q = q * r + 8.3334519073e-3f;
  q = q * r + 4.1665795894e-2f;
  q = q * r + 1.6666665459e-1f;
  q = q * r + 5.0000001201e-1f;
  q = q * r * r + r + 1.f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof(scale));
  return q * scale;
}

// tanh: an odd polynomial below |v| = 0.625 (where 1 - 2/(e^2v + 1) would cancel), else through exp.
inline float host_tanhf(float v) {
  const float a = v < 0.f ? -v : v;
  const float z = v * v;
  const float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
                       3.33332819422e-1f) * z * v + v;
  const float big = 1.f - 2.f / (host_expf(2.f * a) + 1.f);
  return a < 0.625f ? small : (v < 0.f ? -big : big);
}
#endif

template <typename S>
GEMIX_HD S exp_(S v);
template <>
GEMIX_HD float exp_<float>(float v) {
#if defined(__CUDA_ARCH__)
  return expf(v);
#else
  return host_expf(v);
#endif
}
template <>
GEMIX_HD double exp_<double>(double v) { return exp(v); }
template <typename S>
GEMIX_HD S tanh_(S v);
template <>
GEMIX_HD float tanh_<float>(float v) {
#if defined(__CUDA_ARCH__)
  return tanhf(v);
#else
  return host_tanhf(v);
#endif
}
template <>
GEMIX_HD double tanh_<double>(double v) { return tanh(v); }
template <typename S>
GEMIX_HD S log1p_(S v);
template <>
GEMIX_HD float log1p_<float>(float v) { return log1pf(v); }
template <>
GEMIX_HD double log1p_<double>(double v) { return log1p(v); }

// Every function below evaluates all of its cases and then selects (no data-dependent branches),
// so the CPU loops vectorise and CUDA warps do not diverge.

template <typename S>
GEMIX_HD S min0_(S z) {
  return z < S(0) ? z : S(0);
}

template <typename S>
GEMIX_HD S sigmoid_(S z) {
  const S e = exp_<S>(-(z < S(0) ? -z : z));  // e^{-|z|}: no overflow for either sign
  const S s = S(1) / (S(1) + e);
  return z >= S(0) ? s : e * s;
}

// act(z)
template <int A, typename S>
GEMIX_HD S activate(S z, S alpha) {
  if constexpr (A == kLinear) return z;
  if constexpr (A == kRelu) return z > S(0) ? z : S(0);
  if constexpr (A == kLrelu) {
    const S neg = z * alpha;
    return z >= S(0) ? z : neg;
  }
  if constexpr (A == kTanh) return tanh_<S>(z);
  if constexpr (A == kSigmoid) return sigmoid_<S>(z);
  if constexpr (A == kElu) {
    const S neg = exp_<S>(min0_(z)) - S(1);
    return z >= S(0) ? z : neg;
  }
  if constexpr (A == kSelu) {
    const S neg = S(kSeluScale * kSeluAlpha) * (exp_<S>(min0_(z)) - S(1));
    return z >= S(0) ? S(kSeluScale) * z : neg;
  }
  if constexpr (A == kSoftplus) return (z > S(0) ? z : S(0)) + log1p_<S>(exp_<S>(-(z < S(0) ? -z : z)));
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
  if constexpr (A == kElu) {
    const S e = exp_<S>(min0_(z));
    return z >= S(0) ? (ORDER == 1 ? S(1) : S(0)) : e;
  }
  if constexpr (A == kSelu) {
    const S e = S(kSeluScale * kSeluAlpha) * exp_<S>(min0_(z));
    return z >= S(0) ? (ORDER == 1 ? S(kSeluScale) : S(0)) : e;
  }
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

// The scalar parameters in the math type, hoisted out of the element loops.
// Without clamping, clamp is +infinity and no_clamp is set: both keep the loops free of branches.
template <typename S>
struct Coefs {
  S alpha, gain, clamp;
  bool no_clamp;
  GEMIX_HD explicit Coefs(const Params& p)
      : alpha(S(p.alpha)), gain(S(p.gain)), clamp(p.clamp >= 0.0 ? S(p.clamp) : S(INFINITY)), no_clamp(p.clamp < 0.0) {}
};

// One element of the forward pass.
template <int A, typename S>
GEMIX_HD S forward_element(S x, S b, const Coefs<S>& k) {
  S y = activate<A, S>(x + b, k.alpha) * k.gain;
  y = y > k.clamp ? k.clamp : y;
  return y < -k.clamp ? -k.clamp : y;  // NaN stays NaN
}

// One element of the gradient (ORDER 1 or 2). USE_Y: derivative and mask from y, x unused.
// CLAMP: 0 no clamping, 1 clamping, -1 read it from k at run time (the CPU loops are instantiated
// per case so that no branch remains inside them).
template <int A, int ORDER, bool USE_Y, typename S, int CLAMP = -1>
GEMIX_HD S grad_element(S dy, S x, S b, S y, const Coefs<S>& k) {
  S d;
  bool pass;
  if constexpr (USE_Y) {
    d = ORDER == 1 ? derivative_from_y<A, S>(y, k.gain, k.alpha) : S(0);
    pass = k.no_clamp | ((y < k.clamp) & (y > -k.clamp));
  } else {
    const S z = x + b;
    d = derivative_from_x<A, ORDER, S>(z, k.alpha);
    if constexpr (A == kLinear || A == kRelu || A == kLrelu) {
      const S u = activate<A, S>(z, k.alpha) * k.gain;
      pass = k.no_clamp | ((u < k.clamp) & (u > -k.clamp));
    } else {
      // act(z) costs a transcendental here: skip it when nothing is clamped
      if constexpr (CLAMP == 0) {
        pass = true;
      } else if constexpr (CLAMP == 1) {
        const S u = activate<A, S>(z, k.alpha) * k.gain;
        pass = (u < k.clamp) & (u > -k.clamp);
      } else {
        pass = k.no_clamp;
        if (!k.no_clamp) {
          const S u = activate<A, S>(z, k.alpha) * k.gain;
          pass = (u < k.clamp) & (u > -k.clamp);
        }
      }
    }
  }
  const S g = dy * k.gain * d;
  return pass ? g : S(0);
}

}  // namespace bias_act
}  // namespace gemix
