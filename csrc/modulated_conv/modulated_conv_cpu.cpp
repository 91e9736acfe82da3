// Modulation/demodulation: operator schemas (gemix_C::modulate_weight, modulate_weight_backward)
// and the CPU kernels (float32/float64, accumulating in double).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "modulated_conv/modulated_conv.h"

namespace gemix {
namespace modulated_conv {
namespace {

template <typename T>
void forward_cpu(const ModParams& p) {
  const T* weight = static_cast<const T*>(p.weight);
  const T* styles = static_cast<const T*>(p.styles);
  T* w = static_cast<T*>(p.w);
  T* d = static_cast<T*>(p.d);
  const int64_t I = p.i, R = p.r, O = p.o;
  at::parallel_for(0, p.n * O, 1, [&](int64_t begin, int64_t end) {
    for (int64_t no = begin; no < end; ++no) {
      const int64_t n = no / O, o = no % O;
      const T* wo = weight + o * I * R;
      const T* sn = styles + n * I;
      double scale = 1.0;
      if (p.demodulate) {
        double sum = 0.0;
        for (int64_t i = 0; i < I; ++i) {
          double sq = 0.0;
          for (int64_t r = 0; r < R; ++r) sq += double(wo[i * R + r]) * double(wo[i * R + r]);
          sum += sq * double(sn[i]) * double(sn[i]);
        }
        scale = 1.0 / std::sqrt(sum + p.eps);
      }
      d[no] = T(scale);
      T* out = w + no * I * R;
      for (int64_t i = 0; i < I; ++i) {
        const T f = T(double(sn[i]) * scale);
        for (int64_t r = 0; r < R; ++r) out[i * R + r] = wo[i * R + r] * f;
      }
    }
  });
}

template <typename T>
void backward_cpu(const ModParams& p) {
  const T* weight = static_cast<const T*>(p.weight);
  const T* styles = static_cast<const T*>(p.styles);
  const T* gw = static_cast<const T*>(p.grad_w);
  const T* gd = static_cast<const T*>(p.grad_d);
  const T* d = static_cast<const T*>(p.d_in);
  T* gweight = static_cast<T*>(p.grad_weight);
  T* gstyles = static_cast<T*>(p.grad_styles);
  double* e = static_cast<double*>(p.e);
  const int64_t N = p.n, O = p.o, I = p.i, R = p.r, IR = I * R;
  // E[n,o]
  at::parallel_for(0, N * O, 1, [&](int64_t begin, int64_t end) {
    for (int64_t no = begin; no < end; ++no) {
      if (!p.demodulate) {
        e[no] = 0.0;
        continue;
      }
      const int64_t n = no / O, o = no % O;
      double acc = 0.0;
      for (int64_t i = 0; i < I; ++i) {
        double row = 0.0;
        for (int64_t r = 0; r < R; ++r) row += double(gw[no * IR + i * R + r]) * double(weight[o * IR + i * R + r]);
        acc += row * double(styles[n * I + i]);
      }
      const double dn = double(d[no]);
      e[no] = (acc + double(gd[no])) * dn * dn * dn;
    }
  });
  // dweight[o,i,r]
  at::parallel_for(0, O, 1, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      for (int64_t i = 0; i < I; ++i) {
        for (int64_t r = 0; r < R; ++r) {
          const double wv = double(weight[o * IR + i * R + r]);
          double acc = 0.0;
          for (int64_t n = 0; n < N; ++n) {
            const double s = double(styles[n * I + i]);
            acc += s * (double(gw[(n * O + o) * IR + i * R + r]) * double(d[n * O + o]) - e[n * O + o] * wv * s);
          }
          gweight[o * IR + i * R + r] = T(acc);
        }
      }
    }
  });
  // dstyles[n,i]
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t i = 0; i < I; ++i) {
        double acc = 0.0, esq = 0.0;
        for (int64_t o = 0; o < O; ++o) {
          double row = 0.0, sq = 0.0;
          for (int64_t r = 0; r < R; ++r) {
            const double wv = double(weight[o * IR + i * R + r]);
            row += double(gw[(n * O + o) * IR + i * R + r]) * wv;
            sq += wv * wv;
          }
          acc += row * double(d[n * O + o]);
          esq += e[n * O + o] * sq;
        }
        gstyles[n * I + i] = T(acc - double(styles[n * I + i]) * esq);
      }
    }
  });
}

void check_inputs(const at::Tensor& weight, const at::Tensor& styles, const char* op) {
  TORCH_CHECK(weight.dim() == 4, op, ": weight must be [O, I, kh, kw], got ", weight.sizes());
  TORCH_CHECK(styles.dim() == 2 && styles.size(1) == weight.size(1), op, ": styles must be [N, I=", weight.size(1),
              "], got ", styles.sizes());
  TORCH_CHECK(styles.scalar_type() == weight.scalar_type(), op, ": styles and weight must share a dtype");
  TORCH_CHECK(styles.device() == weight.device(), op, ": styles and weight must be on one device");
}

}  // namespace

// Shapes and pointers for both devices (used by modulated_conv_cuda.cpp too).
ModParams make_forward_params(const at::Tensor& weight, const at::Tensor& styles, bool demodulate, double eps,
                              at::Tensor& w, at::Tensor& d) {
  check_inputs(weight, styles, "modulate_weight");
  const int64_t N = styles.size(0), O = weight.size(0), I = weight.size(1), R = weight.size(2) * weight.size(3);
  w = at::empty({N, O, I, weight.size(2), weight.size(3)}, weight.options());
  d = at::empty({N, O}, weight.options());
  ModParams p;
  p.weight = weight.data_ptr();
  p.styles = styles.data_ptr();
  p.w = w.data_ptr();
  p.d = d.data_ptr();
  p.n = N, p.o = O, p.i = I, p.r = R;
  p.demodulate = demodulate;
  p.eps = eps;
  return p;
}

ModParams make_backward_params(const at::Tensor& grad_w, const at::Tensor& grad_d, const at::Tensor& weight,
                               const at::Tensor& styles, const at::Tensor& d, bool demodulate, at::Tensor& grad_weight,
                               at::Tensor& grad_styles, at::Tensor& e, at::ScalarType acc) {
  check_inputs(weight, styles, "modulate_weight_backward");
  const int64_t N = styles.size(0), O = weight.size(0), I = weight.size(1), R = weight.size(2) * weight.size(3);
  TORCH_CHECK(grad_w.numel() == N * O * I * R && grad_d.numel() == N * O && d.numel() == N * O,
              "modulate_weight_backward: gradient shapes do not match weight and styles");
  grad_weight = at::empty_like(weight);
  grad_styles = at::empty_like(styles);
  e = at::empty({N, O}, weight.options().dtype(acc));
  ModParams p;
  p.weight = weight.data_ptr();
  p.styles = styles.data_ptr();
  p.grad_w = grad_w.data_ptr();
  p.grad_d = grad_d.data_ptr();
  p.d_in = d.data_ptr();
  p.grad_weight = grad_weight.data_ptr();
  p.grad_styles = grad_styles.data_ptr();
  p.e = e.data_ptr();
  p.n = N, p.o = O, p.i = I, p.r = R;
  p.demodulate = demodulate;
  return p;
}

namespace {

std::tuple<at::Tensor, at::Tensor> modulate_weight_cpu(const at::Tensor& weight_in, const at::Tensor& styles_in,
                                                       bool demodulate, double eps) {
  TORCH_CHECK(weight_in.scalar_type() == at::kFloat || weight_in.scalar_type() == at::kDouble,
              "modulate_weight (CPU): weight must be float32 or float64, got ", weight_in.scalar_type());
  const at::Tensor weight = weight_in.contiguous(), styles = styles_in.contiguous();
  at::Tensor w, d;
  const ModParams p = make_forward_params(weight, styles, demodulate, eps, w, d);
  if (w.numel() > 0) {
    if (weight.scalar_type() == at::kFloat) forward_cpu<float>(p);
    else forward_cpu<double>(p);
  }
  return {w, d};
}

std::tuple<at::Tensor, at::Tensor> modulate_weight_backward_cpu(const at::Tensor& grad_w, const at::Tensor& grad_d,
                                                                const at::Tensor& weight_in, const at::Tensor& styles_in,
                                                                const at::Tensor& d, bool demodulate) {
  TORCH_CHECK(weight_in.scalar_type() == at::kFloat || weight_in.scalar_type() == at::kDouble,
              "modulate_weight_backward (CPU): weight must be float32 or float64, got ", weight_in.scalar_type());
  const at::Tensor weight = weight_in.contiguous(), styles = styles_in.contiguous();
  const at::Tensor gw = grad_w.contiguous().to(weight.scalar_type()), gd = grad_d.contiguous().to(weight.scalar_type());
  const at::Tensor dc = d.contiguous().to(weight.scalar_type());
  at::Tensor grad_weight, grad_styles, e;
  const ModParams p = make_backward_params(gw, gd, weight, styles, dc, demodulate, grad_weight, grad_styles, e, at::kDouble);
  if (weight.scalar_type() == at::kFloat) backward_cpu<float>(p);
  else backward_cpu<double>(p);
  return {grad_weight, grad_styles};
}

}  // namespace
}  // namespace modulated_conv
}  // namespace gemix

TORCH_LIBRARY_FRAGMENT(gemix_C, m) {
  m.def("modulate_weight(Tensor weight, Tensor styles, bool demodulate, float eps) -> (Tensor, Tensor)");
  m.def(
      "modulate_weight_backward(Tensor grad_w, Tensor grad_d, Tensor weight, Tensor styles, Tensor d, bool demodulate) "
      "-> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gemix_C, CPU, m) {
  m.impl("modulate_weight", &gemix::modulated_conv::modulate_weight_cpu);
  m.impl("modulate_weight_backward", &gemix::modulated_conv::modulate_weight_backward_cpu);
}
