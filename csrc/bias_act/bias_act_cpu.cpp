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

at::Tensor bias_act_cpu(const at::Tensor& x_in, const std::optional<at::Tensor>& b_in, int64_t dim, int64_t act,
                        double alpha, double gain, double clamp) {
  check_common(x_in, b_in, dim, act, "bias_act");
  TORCH_CHECK(x_in.scalar_type() == at::kFloat || x_in.scalar_type() == at::kDouble,
              "bias_act (CPU): x must be float32 or float64, got ", x_in.scalar_type());
  at::Tensor x = dense(x_in);
  at::Tensor b = b_in.has_value() ? b_in->contiguous() : at::Tensor();
  at::Tensor y = at::empty_like(x);
  if (x.numel() == 0) return y;
  Params p;
  p.x = x.data_ptr();
  p.b = b.defined() ? b.data_ptr() : nullptr;
  p.out = y.data_ptr();
  set_layout(p, x, b.defined(), dim);
  p.act = int(act);
  p.order = 0;
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
  if (x.scalar_type() == at::kFloat) run_act<float>(p);
  else run_act<double>(p);
  return y;
}

at::Tensor bias_act_grad_cpu(const at::Tensor& dy_in, const std::optional<at::Tensor>& x_in,
                             const std::optional<at::Tensor>& b_in, const std::optional<at::Tensor>& y_in, int64_t dim,
                             int64_t act, double alpha, double gain, double clamp, int64_t order) {
  TORCH_CHECK(order == 1 || order == 2, "bias_act_grad: order must be 1 or 2, got ", order);
  const bool use_y = !x_in.has_value();
  TORCH_CHECK(!use_y || y_in.has_value(), "bias_act_grad: needs x (derivative from the input) or y (from the output)");
  check_common(dy_in, b_in, dim, act, "bias_act_grad");
  TORCH_CHECK(dy_in.scalar_type() == at::kFloat || dy_in.scalar_type() == at::kDouble,
              "bias_act_grad (CPU): dy must be float32 or float64, got ", dy_in.scalar_type());
  const at::Tensor ref = dense(use_y ? *y_in : *x_in);
  TORCH_CHECK(ref.sizes() == dy_in.sizes(), "bias_act_grad: dy must have the shape of x, got ", dy_in.sizes(), " vs ",
              ref.sizes());
  TORCH_CHECK(ref.scalar_type() == dy_in.scalar_type(), "bias_act_grad: dy and x/y must share a dtype");
  at::Tensor dy = same_layout(dy_in, ref);
  at::Tensor b = b_in.has_value() ? b_in->contiguous() : at::Tensor();
  at::Tensor dx = at::empty_like(ref);
  if (ref.numel() == 0) return dx;
  Params p;
  p.dy = dy.data_ptr();
  p.x = use_y ? nullptr : ref.data_ptr();
  p.y = use_y ? ref.data_ptr() : nullptr;
  p.b = b.defined() ? b.data_ptr() : nullptr;
  p.out = dx.data_ptr();
  set_layout(p, ref, b.defined(), dim);
  p.act = int(act);
  p.order = int(order);
  p.use_y = use_y;
  p.alpha = alpha;
  p.gain = gain;
  p.clamp = clamp;
  if (ref.scalar_type() == at::kFloat) run_act<float>(p);
  else run_act<double>(p);
  return dx;
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
