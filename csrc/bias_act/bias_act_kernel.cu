// bias_act: CUDA kernels and their host launchers. Torch-free (CUDA headers + bias_act.h), so it
// compiles with plain nvcc; csrc/bias_act/bias_act_cuda.cpp binds it to the dispatcher.
//
// One element per thread-iteration of a grid-stride loop, vectorised: each thread moves
// kVec elements with one 16-byte load/store when the pointers are 16-byte aligned (the common
// case for freshly allocated tensors), otherwise the scalar loop. float16 and bfloat16 compute in
// float; float and double in their own precision.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "bias_act/bias_act.h"

namespace gemix {
namespace bias_act {
namespace {

template <typename T>
struct MathType {
  using type = T;
};
template <>
struct MathType<__half> {
  using type = float;
};
template <>
struct MathType<__nv_bfloat16> {
  using type = float;
};

template <typename T>
__device__ __forceinline__ typename MathType<T>::type to_math(T v) {
  return v;
}
template <>
__device__ __forceinline__ float to_math<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_math<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_math(typename MathType<T>::type v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_math<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_math<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// 16 bytes of T.
template <typename T>
struct alignas(16) Pack {
  static constexpr int kVec = 16 / sizeof(T);
  T v[kVec];
};

// Unsigned 32-bit division by a runtime constant with a multiply and a shift (valid for
// numerators and divisors below 2^31): the channel of an element costs two of these per pack
// instead of two 64-bit divisions per element.
struct FastDiv {
  uint32_t divisor = 1, magic = 0, shift = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t d) : divisor(d) {
    while (shift < 32 && (uint64_t(1) << shift) < d) ++shift;
    magic = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, magic) + n) >> shift; }
};

struct Channel {
  FastDiv inner, channels;
};

// The channel of element i: (i / inner) % channels, plus the position within its run of inner.
template <bool SMALL>
__device__ __forceinline__ void locate(int64_t i, const Params& p, const Channel& ch, int64_t& c, int64_t& r) {
  if constexpr (SMALL) {
    const uint32_t q = ch.inner.div(uint32_t(i));
    r = int64_t(uint32_t(i) - q * ch.inner.divisor);
    c = int64_t(q - ch.channels.div(q) * ch.channels.divisor);
  } else {
    const int64_t q = i / p.inner;
    r = i - q * p.inner;
    c = q % p.channels;
  }
}

// ORDER 0: forward; 1/2: gradient of that order.
template <typename T, int A, int ORDER, bool USE_Y>
__device__ __forceinline__ T element(const Coefs<typename MathType<T>::type>& p, typename MathType<T>::type bias, T xv, T yv, T dyv) {
  using S = typename MathType<T>::type;
  if constexpr (ORDER == 0) {
    return from_math<T>(forward_element<A, S>(to_math<T>(xv), bias, p));
  } else {
    return from_math<T>(grad_element<A, ORDER, USE_Y, S>(to_math<T>(dyv), USE_Y ? S(0) : to_math<T>(xv), bias,
                                                          USE_Y ? to_math<T>(yv) : S(0), p));
  }
}

template <typename T, int A, int ORDER, bool USE_Y, bool VEC, bool SMALL>
__global__ void bias_act_kernel(Params p, Channel ch) {
  using S = typename MathType<T>::type;
  const T* x = static_cast<const T*>(p.x);
  const T* y = static_cast<const T*>(p.y);
  const T* dy = static_cast<const T*>(p.dy);
  const T* b = static_cast<const T*>(p.b);
  T* out = static_cast<T*>(p.out);
  const Coefs<S> coefs(p);
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  constexpr bool kReadsX = ORDER == 0 || !USE_Y;
  constexpr bool kReadsY = ORDER != 0 && USE_Y;
  constexpr bool kReadsDy = ORDER != 0;
  int64_t start = 0;
  if constexpr (VEC) {
    constexpr int kVec = Pack<T>::kVec;
    const int64_t packs = p.numel / kVec;
    for (int64_t k = tid; k < packs; k += stride) {
      Pack<T> px, py, pd, po;
      if constexpr (kReadsX) px = reinterpret_cast<const Pack<T>*>(x)[k];
      if constexpr (kReadsY) py = reinterpret_cast<const Pack<T>*>(y)[k];
      if constexpr (kReadsDy) pd = reinterpret_cast<const Pack<T>*>(dy)[k];
      int64_t c = 0, r = 0;
      if (b != nullptr) locate<SMALL>(k * kVec, p, ch, c, r);
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        const S bias = b != nullptr ? to_math<T>(b[c]) : S(0);
        po.v[j] = element<T, A, ORDER, USE_Y>(coefs, bias, kReadsX ? px.v[j] : T(), kReadsY ? py.v[j] : T(),
                                              kReadsDy ? pd.v[j] : T());
        if (++r == p.inner) {
          r = 0;
          if (++c == p.channels) c = 0;
        }
      }
      reinterpret_cast<Pack<T>*>(out)[k] = po;
    }
    start = packs * kVec;  // the tail that does not fill a pack
  }
  for (int64_t i = start + tid; i < p.numel; i += stride) {
    int64_t c = 0, r = 0;
    if (b != nullptr) locate<SMALL>(i, p, ch, c, r);
    const S bias = b != nullptr ? to_math<T>(b[c]) : S(0);
    out[i] = element<T, A, ORDER, USE_Y>(coefs, bias, kReadsX ? x[i] : T(), kReadsY ? y[i] : T(), kReadsDy ? dy[i] : T());
  }
}

bool aligned16(const void* ptr) { return ptr == nullptr || (reinterpret_cast<uintptr_t>(ptr) % 16) == 0; }

template <typename T, int A, int ORDER, bool USE_Y>
cudaError_t launch_typed(const Params& p, cudaStream_t stream) {
  if (p.numel == 0) return cudaSuccess;
  constexpr int kThreads = 256;
  int device = 0, sms = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  const bool vec = aligned16(p.x) && aligned16(p.y) && aligned16(p.dy) && aligned16(p.out);
  const int64_t work = vec ? (p.numel + Pack<T>::kVec - 1) / Pack<T>::kVec : p.numel;
  // enough blocks to fill the GPU several times over, no more: the grid-stride loop does the rest
  const int64_t wanted = (work + kThreads - 1) / kThreads;
  const int blocks = int(wanted < int64_t(sms) * 16 ? (wanted > 0 ? wanted : 1) : int64_t(sms) * 16);
  const bool small = p.numel < (int64_t(1) << 31);
  Channel ch;
  if (small) ch = Channel{FastDiv(uint32_t(p.inner)), FastDiv(uint32_t(p.channels))};
  if (vec && small) bias_act_kernel<T, A, ORDER, USE_Y, true, true><<<blocks, kThreads, 0, stream>>>(p, ch);
  else if (vec) bias_act_kernel<T, A, ORDER, USE_Y, true, false><<<blocks, kThreads, 0, stream>>>(p, ch);
  else if (small) bias_act_kernel<T, A, ORDER, USE_Y, false, true><<<blocks, kThreads, 0, stream>>>(p, ch);
  else bias_act_kernel<T, A, ORDER, USE_Y, false, false><<<blocks, kThreads, 0, stream>>>(p, ch);
  return cudaGetLastError();
}

template <typename T, int A>
cudaError_t launch_act(const Params& p, cudaStream_t stream) {
  if (p.order == 0) return launch_typed<T, A, 0, false>(p, stream);
  if (p.use_y) {
    // act'' of the use_y activations is zero: order 2 is the same kernel returning zeros
    return p.order == 1 ? launch_typed<T, A, 1, true>(p, stream) : launch_typed<T, A, 2, true>(p, stream);
  }
  return p.order == 1 ? launch_typed<T, A, 1, false>(p, stream) : launch_typed<T, A, 2, false>(p, stream);
}

template <typename T>
cudaError_t launch_dtype(const Params& p, cudaStream_t stream) {
  switch (p.act) {
    case kLinear: return launch_act<T, kLinear>(p, stream);
    case kRelu: return launch_act<T, kRelu>(p, stream);
    case kLrelu: return launch_act<T, kLrelu>(p, stream);
    case kTanh: return launch_act<T, kTanh>(p, stream);
    case kSigmoid: return launch_act<T, kSigmoid>(p, stream);
    case kElu: return launch_act<T, kElu>(p, stream);
    case kSelu: return launch_act<T, kSelu>(p, stream);
    case kSoftplus: return launch_act<T, kSoftplus>(p, stream);
    case kSwish: return launch_act<T, kSwish>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

// dtype: 0 float32, 1 float64, 2 float16, 3 bfloat16 (see bias_act_cuda.cpp).
cudaError_t launch_bias_act(const Params& p, int dtype, cudaStream_t stream) {
  switch (dtype) {
    case 0: return launch_dtype<float>(p, stream);
    case 1: return launch_dtype<double>(p, stream);
    case 2: return launch_dtype<__half>(p, stream);
    case 3: return launch_dtype<__nv_bfloat16>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace bias_act
}  // namespace gemix
