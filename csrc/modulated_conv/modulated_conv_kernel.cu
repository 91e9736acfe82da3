// Modulation/demodulation: CUDA kernels and host launchers. Torch-free (CUDA headers +
// modulated_conv.h); csrc/modulated_conv/modulated_conv_cuda.cpp binds them to the dispatcher.
// float16/bfloat16 read and write in their type and accumulate in float; float/double in their own.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "modulated_conv/modulated_conv.h"

namespace gemix {
namespace modulated_conv {
namespace {

constexpr int kThreads = 256;

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename T>
__device__ __forceinline__ typename Acc<T>::type ld(const T* p, int64_t i) {
  return static_cast<typename Acc<T>::type>(p[i]);
}
template <>
__device__ __forceinline__ float ld<__half>(const __half* p, int64_t i) {
  return __half2float(p[i]);
}
template <>
__device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
template <typename T>
__device__ __forceinline__ T cvt(typename Acc<T>::type v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half cvt<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Sum over the block; every thread gets the total.
template <typename A>
__device__ A block_sum(A v) {
  __shared__ A shared[kThreads / 32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  A total = 0;
  if (threadIdx.x < 32) {
    total = threadIdx.x < kThreads / 32 ? shared[threadIdx.x] : A(0);
    for (int off = 16; off > 0; off >>= 1) total += __shfl_down_sync(0xffffffffu, total, off);
    if (threadIdx.x == 0) shared[0] = total;
  }
  __syncthreads();
  total = shared[0];
  __syncthreads();
  return total;
}

// One block per (n, o): d[n,o] from a block reduction, then w[n,o,:,:] written coalesced.
template <typename T>
__global__ void modulate_kernel(ModParams p) {
  using A = typename Acc<T>::type;
  const T* weight = static_cast<const T*>(p.weight);
  const T* styles = static_cast<const T*>(p.styles);
  T* w = static_cast<T*>(p.w);
  T* d = static_cast<T*>(p.d);
  const int64_t no = blockIdx.x, n = no / p.o, o = no % p.o, IR = p.i * p.r;
  A scale = 1;
  if (p.demodulate) {
    A sum = 0;
    for (int64_t k = threadIdx.x; k < IR; k += blockDim.x) {
      const A v = ld(weight, o * IR + k) * ld(styles, n * p.i + k / p.r);
      sum += v * v;
    }
    sum = block_sum(sum);
    scale = A(1) / sqrt(sum + A(p.eps));
  }
  if (threadIdx.x == 0) d[no] = cvt<T>(scale);
  for (int64_t k = threadIdx.x; k < IR; k += blockDim.x)
    w[no * IR + k] = cvt<T>(ld(weight, o * IR + k) * ld(styles, n * p.i + k / p.r) * scale);
}

// One block per (n, o): E[n,o] = (Σ_{i,r} G·weight·styles + gd) · d³.
template <typename T>
__global__ void e_kernel(ModParams p) {
  using A = typename Acc<T>::type;
  const T* weight = static_cast<const T*>(p.weight);
  const T* styles = static_cast<const T*>(p.styles);
  const T* gw = static_cast<const T*>(p.grad_w);
  const T* gd = static_cast<const T*>(p.grad_d);
  const T* d = static_cast<const T*>(p.d_in);
  A* e = static_cast<A*>(p.e);
  const int64_t no = blockIdx.x, n = no / p.o, o = no % p.o, IR = p.i * p.r;
  A sum = 0;
  for (int64_t k = threadIdx.x; k < IR; k += blockDim.x)
    sum += ld(gw, no * IR + k) * ld(weight, o * IR + k) * ld(styles, n * p.i + k / p.r);
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    const A dn = ld(d, no);
    e[no] = p.demodulate ? (sum + ld(gd, no)) * dn * dn * dn : A(0);
  }
}

// One thread per (o, i, r): dweight, summing over the batch.
template <typename T>
__global__ void grad_weight_kernel(ModParams p) {
  using A = typename Acc<T>::type;
  const T* weight = static_cast<const T*>(p.weight);
  const T* styles = static_cast<const T*>(p.styles);
  const T* gw = static_cast<const T*>(p.grad_w);
  const T* d = static_cast<const T*>(p.d_in);
  const A* e = static_cast<const A*>(p.e);
  T* gweight = static_cast<T*>(p.grad_weight);
  const int64_t IR = p.i * p.r, total = p.o * IR;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total; k += int64_t(blockDim.x) * gridDim.x) {
    const int64_t o = k / IR, ir = k % IR, i = ir / p.r;
    const A wv = ld(weight, k);
    A acc = 0;
    for (int64_t n = 0; n < p.n; ++n) {
      const A s = ld(styles, n * p.i + i);
      acc += s * (ld(gw, (n * p.o + o) * IR + ir) * ld(d, n * p.o + o) - e[n * p.o + o] * wv * s);
    }
    gweight[k] = cvt<T>(acc);
  }
}

// One block per (n, i): dstyles, reducing over (o, r).
template <typename T>
__global__ void grad_styles_kernel(ModParams p) {
  using A = typename Acc<T>::type;
  const T* weight = static_cast<const T*>(p.weight);
  const T* styles = static_cast<const T*>(p.styles);
  const T* gw = static_cast<const T*>(p.grad_w);
  const T* d = static_cast<const T*>(p.d_in);
  const A* e = static_cast<const A*>(p.e);
  T* gstyles = static_cast<T*>(p.grad_styles);
  const int64_t ni = blockIdx.x, n = ni / p.i, i = ni % p.i, IR = p.i * p.r;
  A acc = 0, esq = 0;
  for (int64_t o = threadIdx.x; o < p.o; o += blockDim.x) {
    A row = 0, sq = 0;
    for (int64_t r = 0; r < p.r; ++r) {
      const A wv = ld(weight, o * IR + i * p.r + r);
      row += ld(gw, (n * p.o + o) * IR + i * p.r + r) * wv;
      sq += wv * wv;
    }
    acc += row * ld(d, n * p.o + o);
    esq += e[n * p.o + o] * sq;
  }
  acc = block_sum(acc);
  esq = block_sum(esq);
  if (threadIdx.x == 0) gstyles[ni] = cvt<T>(acc - ld(styles, ni) * esq);
}

unsigned grid_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return unsigned(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

template <typename T>
cudaError_t forward_typed(const ModParams& p, cudaStream_t stream) {
  if (p.n * p.o == 0) return cudaSuccess;
  modulate_kernel<T><<<unsigned(p.n * p.o), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <typename T>
cudaError_t backward_typed(const ModParams& p, cudaStream_t stream) {
  if (p.n * p.o > 0) {
    e_kernel<T><<<unsigned(p.n * p.o), kThreads, 0, stream>>>(p);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (p.o * p.i * p.r > 0) {
    grad_weight_kernel<T><<<grid_for(p.o * p.i * p.r), kThreads, 0, stream>>>(p);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  if (p.n * p.i > 0) grad_styles_kernel<T><<<unsigned(p.n * p.i), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

// dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16. The backward's workspace p.e holds double
// for float64 and float otherwise.
cudaError_t launch_modulate(const ModParams& p, int dtype, cudaStream_t stream) {
  switch (dtype) {
    case 0: return forward_typed<float>(p, stream);
    case 1: return forward_typed<double>(p, stream);
    case 2: return forward_typed<__half>(p, stream);
    case 3: return forward_typed<__nv_bfloat16>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_modulate_backward(const ModParams& p, int dtype, cudaStream_t stream) {
  switch (dtype) {
    case 0: return backward_typed<float>(p, stream);
    case 1: return backward_typed<double>(p, stream);
    case 2: return backward_typed<__half>(p, stream);
    case 3: return backward_typed<__nv_bfloat16>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace modulated_conv
}  // namespace gemix
