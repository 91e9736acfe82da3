// bias_act: operator schemas (gemix_C::bias_act, gemix_C::bias_act_grad) and the CPU kernels.
// One pass over memory each: the forward reads x and writes y; the gradient reads dy and one of
// x or y and writes dx. Parallelised with at::parallel_for (OpenMP in PyTorch's builds).
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <ATen/ATen.h>

#include <cmath>

// Floating-point operations never trap here (PyTorch runs with exceptions masked), and telling GCC
// so lets it turn the selects of bias_act.h into vector blends: without it no loop vectorises.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "bias_act/bias_act.h"
#include "bias_act/bias_act_binding.h"

namespace gemix {
namespace bias_act {
namespace {

constexpr int64_t kGrain = 32768;  // elements per task: below this, threads cost more than they save

// Runs body(i, bias) over every element, with the bias of its channel. The tensor is dense and
// viewed as [outer, channels, inner]; inner == 1 is the channels_last case of dim=1.
template <typename T, typename Body>
void for_each_element(const Params& p, const T* b, Body body) {
  if (b == nullptr) {
    at::parallel_for(0, p.numel, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) body(i, T(0));
    });
    return;
  }
  const int64_t channels = p.channels, inner = p.inner;
  if (inner >= 16) {
    const int64_t rows = p.numel / inner;
    at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / inner), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const T bias = b[r % channels];
        const int64_t base = r * inner;
        for (int64_t j = 0; j < inner; ++j) body(base + j, bias);
      }
    });
  } else if (inner == 1) {
    // channels_last (the bias runs along the fastest axis): one vectorised sweep over the channels
    // of each pixel, the bias read as a vector; the generic loop below would run a 1-long inner loop.
    const int64_t outer = p.numel / channels;
    at::parallel_for(0, outer, std::max<int64_t>(1, kGrain / channels), [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        const int64_t base = o * channels;
#pragma omp simd
        for (int64_t c = 0; c < channels; ++c) body(base + c, b[c]);
      }
    });
  } else {
    const int64_t block = channels * inner;
    const int64_t outer = p.numel / block;
    at::parallel_for(0, outer, std::max<int64_t>(1, kGrain / block), [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        const int64_t base = o * block;
        for (int64_t c = 0; c < channels; ++c) {
          const T bias = b[c];
          for (int64_t j = 0; j < inner; ++j) body(base + c * inner + j, bias);
        }
      }
    });
  }
}

template <typename T, int A>
void forward_kernel(const Params& p) {
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.out);
  const Coefs<T> k(p);
  for_each_element<T>(p, static_cast<const T*>(p.b), [=](int64_t i, T bias) { y[i] = forward_element<A, T>(x[i], bias, k); });
}

template <typename T, int A, int ORDER, bool USE_Y, int CLAMP>
void grad_kernel_clamp(const Params& p) {
  const T* dy = static_cast<const T*>(p.dy);
  const T* x = static_cast<const T*>(p.x);
  const T* y = static_cast<const T*>(p.y);
  T* dx = static_cast<T*>(p.out);
  const Coefs<T> k(p);
  for_each_element<T>(p, static_cast<const T*>(p.b), [=](int64_t i, T bias) {
    dx[i] = grad_element<A, ORDER, USE_Y, T, CLAMP>(dy[i], USE_Y ? T(0) : x[i], bias, USE_Y ? y[i] : T(0), k);
  });
}

template <typename T, int A, int ORDER, bool USE_Y>
void grad_kernel(const Params& p) {
  if (p.clamp >= 0.0) grad_kernel_clamp<T, A, ORDER, USE_Y, 1>(p);
  else grad_kernel_clamp<T, A, ORDER, USE_Y, 0>(p);
}

template <typename T, int A>
void run(const Params& p) {
  if (p.order == 0) return forward_kernel<T, A>(p);
  if (p.use_y) {
    if (p.order == 1) return grad_kernel<T, A, 1, true>(p);
    return grad_kernel<T, A, 2, true>(p);
  }
  if (p.order == 1) return grad_kernel<T, A, 1, false>(p);
  return grad_kernel<T, A, 2, false>(p);
}

template <typename T>
void run_act(const Params& p) {
  switch (p.act) {
    case kLinear: return run<T, kLinear>(p);
    case kRelu: return run<T, kRelu>(p);
    case kLrelu: return run<T, kLrelu>(p);
    case kTanh: return run<T, kTanh>(p);
    case kSigmoid: return run<T, kSigmoid>(p);
    case kElu: return run<T, kElu>(p);
    case kSelu: return run<T, kSelu>(p);
    case kSoftplus: return run<T, kSoftplus>(p);
    case kSwish: return run<T, kSwish>(p);
  }
}

}  // namespace

namespace {

void check_cpu_dtype(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, what,
              " must be float32 or float64, got ", t.scalar_type());
}

void run_call(const Call& c) {
  if (c.out.numel() == 0) return;
  if (c.in.scalar_type() == at::kFloat) run_act<float>(c.p);
  else run_act<double>(c.p);
}

at::Tensor bias_act_cpu(const at::Tensor& x_in, const std::optional<at::Tensor>& b_in, int64_t dim, int64_t act,
                        double alpha, double gain, double clamp) {
  check_cpu_dtype(x_in, "bias_act (CPU): x");
  const Call c = prepare_forward(x_in, b_in, dim, act, alpha, gain, clamp);
  run_call(c);
  return c.out;
}

at::Tensor bias_act_grad_cpu(const at::Tensor& dy_in, const std::optional<at::Tensor>& x_in,
                             const std::optional<at::Tensor>& b_in, const std::optional<at::Tensor>& y_in, int64_t dim,
                             int64_t act, double alpha, double gain, double clamp, int64_t order) {
  check_cpu_dtype(dy_in, "bias_act_grad (CPU): dy");
  const Call c = prepare_grad(dy_in, x_in, b_in, y_in, dim, act, alpha, gain, clamp, order);
  run_call(c);
  return c.out;
}

}  // namespace
}  // namespace bias_act
}  // namespace gemix

TORCH_LIBRARY_FRAGMENT(gemix_C, m) {
  m.def("bias_act(Tensor x, Tensor? b, int dim, int act, float alpha, float gain, float clamp) -> Tensor");
  m.def(
      "bias_act_grad(Tensor dy, Tensor? x, Tensor? b, Tensor? y, int dim, int act, float alpha, float gain, "
      "float clamp, int order) -> Tensor");
}

TORCH_LIBRARY_IMPL(gemix_C, CPU, m) {
  m.impl("bias_act", &gemix::bias_act::bias_act_cpu);
  m.impl("bias_act_grad", &gemix::bias_act::bias_act_grad_cpu);
}
