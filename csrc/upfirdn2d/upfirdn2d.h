// upfirdn2d: the parameters shared by the CPU (upfirdn2d_cpu.cpp) and CUDA (upfirdn2d_kernel.cu)
// kernels, and the index maths both use. Plain C++ (no torch): usable on host and device.
//
// For each channel: upsample by `up` (insert up-1 zeros after every pixel), pad by pad0 on the
// leading side (the trailing padding only decides the output size), correlate with the taps `f`
// (the bindings flip the user's filter unless flip_filter, and fold the gain in), keep every
// `down`-th output. Along one axis, output o and tap k read the upsampled, padded signal at
//
//     p = o * down + k - pad0,   which is input sample p / up when p >= 0, p % up == 0, p / up < in,
//
// and zero otherwise; polyphase kernels visit only the taps k that hit input samples.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GEMIX_UFD_HD __host__ __device__ __forceinline__
#else
#define GEMIX_UFD_HD inline
#endif

namespace gemix {
namespace upfirdn2d {

// Element types of x / y. The CPU kernel supports kFloat32 and kFloat64; the CUDA kernel all four
// (kFloat16 and kBFloat16 accumulate in float).
enum DType : int { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

struct Params {
  const void* x = nullptr;  // input [n, c, in_h, in_w] with strides sx (elements)
  void* y = nullptr;        // output [n, c, out_h, out_w] with strides sy (elements)
  // Correlation taps in the accumulation type (double for kFloat64, float otherwise), on the
  // kernel's device: [fh][fw] row-major, or, when `separable`, [fw] used along both axes
  // (then fh == fw, and the 2-D filter is the outer product).
  const void* f = nullptr;
  int dtype = kFloat32;
  int64_t n = 0, c = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t sx[4] = {0, 0, 0, 0};  // strides of x: n, c, h, w
  int64_t sy[4] = {0, 0, 0, 0};  // strides of y: n, c, h, w
  bool channels_last = false;    // x and y dense NHWC (else dense NCHW on the CPU; any strides on CUDA)
  int up_x = 1, up_y = 1, down_x = 1, down_y = 1;
  int pad_x0 = 0, pad_y0 = 0;
  int fw = 1, fh = 1;
  bool separable = false;
};

// floor(a / b) for b > 0 and any sign of a.
GEMIX_UFD_HD int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// a mod b in [0, b) for b > 0 and any sign of a.
GEMIX_UFD_HD int64_t pos_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

// The input sample read by output o through tap k along one axis, or -1 where that is a zero.
GEMIX_UFD_HD int64_t source_index(int64_t o, int64_t k, int64_t in, int64_t up, int64_t down, int64_t pad0) {
  int64_t p = o * down + k - pad0;
  if (p < 0 || p % up != 0) return -1;
  p /= up;
  return p < in ? p : -1;
}

// Output size along one axis (docs/maths.md §1.1): (in * up + pad0 + pad1 - taps + down) // down.
GEMIX_UFD_HD int64_t output_size(int64_t in, int64_t up, int64_t pad0, int64_t pad1, int64_t taps, int64_t down) {
  return floor_div(in * up + pad0 + pad1 - taps + down, down);
}

}  // namespace upfirdn2d
}  // namespace gemix
