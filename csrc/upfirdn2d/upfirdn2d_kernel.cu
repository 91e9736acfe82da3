// upfirdn2d: CUDA kernels and their host launcher. Torch-free: CUDA headers and upfirdn2d.h only.
//
// Two kernels, both polyphase (an output visits only the taps that hit input samples, never the
// zeros inserted by upsampling) and both computing only kept outputs:
//
// * tile<T, UP, DOWN, TAPS>: for NCHW-like layouts (unit stride along W) and the combinations
//   StyleGAN2 uses (up or down 2 with 4-tap or 12-tap filters, plain 4-tap filtering). A block
//   loads the input patch behind a 32x32 output tile into shared memory (coalesced, zeros outside
//   the image) and the taps into shared memory, then each thread computes outputs from there with
//   fully unrolled tap loops.
// * generic<T>: one output per thread (grid-stride) for every other case and for channels_last
//   (channels vary fastest across threads, so reads and writes stay coalesced).
//
// T is float, double, __half or __nv_bfloat16; half types accumulate in float.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "upfirdn2d/upfirdn2d.h"
#include "upfirdn2d/upfirdn2d_cuda.h"

namespace gemix {
namespace upfirdn2d {
namespace {

template <typename T>
struct Accum {
  using type = float;
};
template <>
struct Accum<double> {
  using type = double;
};

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_acc(typename Accum<T>::type v);
template <>
__device__ __forceinline__ float from_acc<float>(float v) { return v; }
template <>
__device__ __forceinline__ double from_acc<double>(double v) { return v; }
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

constexpr int kTile = 32;        // output tile: kTile x kTile
constexpr int kTileThreads = 256;
constexpr int kGenericThreads = 256;

// Input rows (or columns) behind kTile consecutive outputs: the multiples of UP among the
// (kTile - 1) * DOWN + TAPS consecutive positions those outputs' taps reach.
template <int UP, int DOWN, int TAPS>
struct TileShape {
  static constexpr int in = ((kTile - 1) * DOWN + TAPS - 1) / UP + 1;
  static constexpr int pitch = in + 1;  // +1: fewer shared-memory bank conflicts between rows
};

template <typename T, int UP, int DOWN, int TAPS>
__global__ void __launch_bounds__(kTileThreads) tile_kernel(Params p, int64_t tiles_x) {
  using A = typename Accum<T>::type;
  using Shape = TileShape<UP, DOWN, TAPS>;
  static_assert(sizeof(A) * (Shape::in * Shape::pitch + TAPS * TAPS) <= 48 * 1024, "tile exceeds static shared memory");
  __shared__ A patch[Shape::in][Shape::pitch];
  __shared__ A taps[TAPS][TAPS];

  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const A* f = static_cast<const A*>(p.f);
  const int tid = threadIdx.x;

  // The 2-D taps, expanded from the separable 1-D ones when needed.
  for (int i = tid; i < TAPS * TAPS; i += blockDim.x) {
    const int ky = i / TAPS, kx = i % TAPS;
    taps[ky][kx] = p.separable ? f[ky] * f[kx] : f[ky * TAPS + kx];
  }

  const int64_t tile_y = blockIdx.x / tiles_x, tile_x = blockIdx.x % tiles_x;
  const int64_t oy0 = tile_y * kTile, ox0 = tile_x * kTile;
  // First input row/column any output of the tile reads: ceil((o0 * DOWN - pad0) / UP).
  const int64_t iy0 = floor_div(oy0 * DOWN - p.pad_y0 + UP - 1, UP);
  const int64_t ix0 = floor_div(ox0 * DOWN - p.pad_x0 + UP - 1, UP);
  const int64_t planes = p.n * p.c;

  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const int64_t n = plane / p.c, c = plane % p.c;
    const T* xp = x + n * p.sx[0] + c * p.sx[1];
    T* yp = y + n * p.sy[0] + c * p.sy[1];

    __syncthreads();  // the previous plane's patch is no longer read
    for (int i = tid; i < Shape::in * Shape::in; i += blockDim.x) {
      const int ry = i / Shape::in, rx = i % Shape::in;
      const int64_t iy = iy0 + ry, ix = ix0 + rx;
      A v = A(0);
      if (iy >= 0 && iy < p.in_h && ix >= 0 && ix < p.in_w) v = to_acc(xp[iy * p.sx[2] + ix * p.sx[3]]);
      patch[ry][rx] = v;
    }
    __syncthreads();

    for (int i = tid; i < kTile * kTile; i += blockDim.x) {
      const int64_t oy = oy0 + i / kTile, ox = ox0 + i % kTile;
      if (oy >= p.out_h || ox >= p.out_w) continue;
      const int64_t py = oy * DOWN - p.pad_y0, px = ox * DOWN - p.pad_x0;  // position of tap 0
      const int ky0 = static_cast<int>(pos_mod(-py, UP)), kx0 = static_cast<int>(pos_mod(-px, UP));
      const int ry0 = static_cast<int>((py + ky0) / UP - iy0), rx0 = static_cast<int>((px + kx0) / UP - ix0);
      A s = A(0);
#pragma unroll
      for (int jy = 0; jy < (TAPS + UP - 1) / UP; ++jy) {
        const int ky = ky0 + jy * UP;
        if (ky < TAPS) {
#pragma unroll
          for (int jx = 0; jx < (TAPS + UP - 1) / UP; ++jx) {
            const int kx = kx0 + jx * UP;
            if (kx < TAPS) s += taps[ky][kx] * patch[ry0 + jy][rx0 + jx];
          }
        }
      }
      yp[oy * p.sy[2] + ox * p.sy[3]] = from_acc<T>(s);
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kGenericThreads) generic_kernel(Params p) {
  using A = typename Accum<T>::type;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const A* f = static_cast<const A*>(p.f);
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t n, c, oy, ox, rest = idx;
    if (p.channels_last) {  // idx runs over [n, oy, ox, c]
      c = rest % p.c;
      rest /= p.c;
      ox = rest % p.out_w;
      rest /= p.out_w;
      oy = rest % p.out_h;
      n = rest / p.out_h;
    } else {  // idx runs over [n, c, oy, ox]
      ox = rest % p.out_w;
      rest /= p.out_w;
      oy = rest % p.out_h;
      rest /= p.out_h;
      c = rest % p.c;
      n = rest / p.c;
    }
    const T* xp = x + n * p.sx[0] + c * p.sx[1];
    const int64_t py = oy * p.down_y - p.pad_y0, px = ox * p.down_x - p.pad_x0;
    A s = A(0);
    for (int64_t ky = pos_mod(-py, p.up_y); ky < p.fh; ky += p.up_y) {
      const int64_t iy = (py + ky) / p.up_y;  // exact: py + ky is a multiple of up_y
      if (py + ky < 0) continue;
      if (iy >= p.in_h) break;
      const A fy = p.separable ? f[ky] : A(0);
      for (int64_t kx = pos_mod(-px, p.up_x); kx < p.fw; kx += p.up_x) {
        const int64_t ix = (px + kx) / p.up_x;
        if (px + kx < 0) continue;
        if (ix >= p.in_w) break;
        const A w = p.separable ? fy * f[kx] : f[ky * p.fw + kx];
        s += w * to_acc(xp[iy * p.sx[2] + ix * p.sx[3]]);
      }
    }
    y[n * p.sy[0] + c * p.sy[1] + oy * p.sy[2] + ox * p.sy[3]] = from_acc<T>(s);
  }
}

template <typename T, int UP, int DOWN, int TAPS>
cudaError_t launch_tile(const Params& p, cudaStream_t stream) {
  const int64_t tiles_x = (p.out_w + kTile - 1) / kTile, tiles_y = (p.out_h + kTile - 1) / kTile;
  const int64_t planes = p.n * p.c;
  if (tiles_x * tiles_y > 0x7fffffffLL) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(tiles_x * tiles_y), static_cast<unsigned>(planes < 65535 ? planes : 65535));
  tile_kernel<T, UP, DOWN, TAPS><<<grid, kTileThreads, 0, stream>>>(p, tiles_x);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch_typed(const Params& p, cudaStream_t stream) {
  const bool square = p.up_x == p.up_y && p.down_x == p.down_y && p.fw == p.fh;
  // The tile kernel reads rows of the patch with unit stride: NCHW-like layouts only.
  if (square && !p.channels_last && p.sx[3] == 1 && p.sy[3] == 1) {
    const int up = p.up_x, down = p.down_x, taps = p.fw;
    if (up == 1 && down == 1 && taps == 4) return launch_tile<T, 1, 1, 4>(p, stream);
    if (up == 2 && down == 1 && taps == 4) return launch_tile<T, 2, 1, 4>(p, stream);
    if (up == 1 && down == 2 && taps == 4) return launch_tile<T, 1, 2, 4>(p, stream);
    if (up == 2 && down == 1 && taps == 12) return launch_tile<T, 2, 1, 12>(p, stream);
    if (up == 1 && down == 2 && taps == 12) return launch_tile<T, 1, 2, 12>(p, stream);
  }
  const int64_t total = p.n * p.c * p.out_h * p.out_w;
  int64_t blocks = (total + kGenericThreads - 1) / kGenericThreads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;  // grid-stride beyond this
  generic_kernel<T><<<static_cast<unsigned>(blocks), kGenericThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_upfirdn2d(const Params& p, cudaStream_t stream) {
  if (p.n * p.c * p.out_h * p.out_w == 0) return cudaSuccess;
  if (p.up_x < 1 || p.up_y < 1 || p.down_x < 1 || p.down_y < 1 || p.fw < 1 || p.fh < 1) return cudaErrorInvalidValue;
  if (p.separable && p.fw != p.fh) return cudaErrorInvalidValue;
  switch (p.dtype) {
    case kFloat32: return launch_typed<float>(p, stream);
    case kFloat64: return launch_typed<double>(p, stream);
    case kFloat16: return launch_typed<__half>(p, stream);
    case kBFloat16: return launch_typed<__nv_bfloat16>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace upfirdn2d
}  // namespace gemix
