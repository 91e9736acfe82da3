// upfirdn2d: the operator schema gemix_C::upfirdn2d and its CPU kernel (float32, float64).
//
// The image is processed one output row at a time. An output row is a weighted sum of the
// horizontally filtered input rows its vertical taps reach (zero rows inserted by upsampling
// are never touched); a separable filter filters each input row once into a small ring buffer
// (horizontal pass), then combines rows with whole-row multiply-adds (vertical pass). Only kept
// outputs are computed (downsampling), and upsampling is polyphase: each output phase reads the
// input samples its taps actually hit, never the inserted zeros.
//
// Layouts: NCHW images are processed plane by plane (a pixel is one value); channels_last images
// sample by sample, a pixel being the C contiguous channel values, so every inner loop runs over
// contiguous memory. Work is split over (image, block of output rows) with at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "upfirdn2d/upfirdn2d.h"
#include "upfirdn2d/upfirdn2d_binding.h"

namespace gemix {
namespace upfirdn2d {
namespace {

// Which input samples each output of one axis reads: for output o, the pairs (tap k, input
// index j) in taps[start[o] .. start[o + 1]). Built once per call; shared by every row/plane.
struct TapTable {
  std::vector<int64_t> start;
  std::vector<int64_t> tap;
  std::vector<int64_t> src;

  TapTable(int64_t in, int64_t out, int64_t up, int64_t down, int64_t pad0, int64_t taps) : start(out + 1, 0) {
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t k = 0; k < taps; ++k) {
        const int64_t j = source_index(o, k, in, up, down, pad0);
        if (j >= 0) {
          tap.push_back(k);
          src.push_back(j);
        }
      }
      start[o + 1] = static_cast<int64_t>(tap.size());
    }
  }
};

// One axis of the horizontal (along-row) problem.
struct RowAxis {
  int64_t in, out, up, down, pad0, taps;
  int64_t vc;  // values per pixel: 1 (NCHW plane) or C (channels_last)
  // up == 1: the padded row is buffered at positions [0, out_span), position i = input i - pad0.
  int64_t span_up1() const { return (out - 1) * down + taps; }
  // down == 1, up > 1: input indices [jlo, jhi] are buffered.
  int64_t jlo() const { return floor_div(-pad0, up); }
  int64_t jhi() const { return floor_div(out - 1 + taps - 1 - pad0, up); }
};

// Copies input samples [first, first + count) of a row (zero outside [0, in)) into buf.
template <typename T>
inline void load_padded(const T* row, int64_t in, int64_t first, int64_t count, T* buf) {
  const int64_t lo = std::clamp<int64_t>(-first, 0, count);            // zeros before the row
  const int64_t hi = std::clamp<int64_t>(in - first, lo, count);       // end of the copied part
  std::fill(buf, buf + lo, T(0));
  std::copy(row + first + lo, row + first + hi, buf + lo);
  std::fill(buf + hi, buf + count, T(0));
}

// out[o] = sum_k g[k] * buf[o * DOWN + k]: the up == 1 case. With the tap count known at compile
// time the tap loop unrolls and each output is written once; otherwise tap by tap over the row.
template <typename T, int DOWN, int TAPS>
inline void fir_down(const T* buf, const T* g, int64_t taps, int64_t out, int64_t down_rt, T* dst) {
  const int64_t down = DOWN > 0 ? DOWN : down_rt;
  if constexpr (TAPS > 0) {
    T gk[TAPS];
    for (int k = 0; k < TAPS; ++k) gk[k] = g[k];
#pragma omp simd
    for (int64_t o = 0; o < out; ++o) {
      T s = T(0);
      for (int k = 0; k < TAPS; ++k) s += gk[k] * buf[o * down + k];
      dst[o] = s;
    }
  } else {
    for (int64_t o = 0; o < out; ++o) dst[o] = T(0);
    for (int64_t k = 0; k < taps; ++k) {
      const T gk = g[k];
      const T* src = buf + k;
#pragma omp simd
      for (int64_t o = 0; o < out; ++o) dst[o] += gk * src[o * down];
    }
  }
}

template <typename T, int DOWN>
inline void fir_down_taps(const T* buf, const T* g, int64_t taps, int64_t out, int64_t down_rt, T* dst) {
  switch (taps) {
    case 2: fir_down<T, DOWN, 2>(buf, g, taps, out, down_rt, dst); break;
    case 3: fir_down<T, DOWN, 3>(buf, g, taps, out, down_rt, dst); break;
    case 4: fir_down<T, DOWN, 4>(buf, g, taps, out, down_rt, dst); break;
    default: fir_down<T, DOWN, 0>(buf, g, taps, out, down_rt, dst); break;
  }
}

// Horizontal pass of one row (pixel = one value): dst[0 .. out) from row[0 .. in).
// scratch holds at least span_up1() or (jhi - jlo + 1) + out values.
template <typename T>
void row_pass_scalar(const T* row, const T* g, const RowAxis& a, const TapTable& table, T* scratch, T* dst) {
  if (a.up == 1) {
    const int64_t span = a.span_up1();
    load_padded(row, a.in, -a.pad0, span, scratch);
    switch (a.down) {
      case 1: fir_down_taps<T, 1>(scratch, g, a.taps, a.out, 1, dst); break;
      case 2: fir_down_taps<T, 2>(scratch, g, a.taps, a.out, 2, dst); break;
      case 4: fir_down_taps<T, 4>(scratch, g, a.taps, a.out, 4, dst); break;
      default: fir_down<T, 0, 0>(scratch, g, a.taps, a.out, a.down, dst); break;
    }
    return;
  }
  if (a.down == 1) {
    // Polyphase upsampling: outputs o = up * q + r of phase r are a short FIR over consecutive
    // input samples; accumulate each phase contiguously, then interleave.
    const int64_t jlo = a.jlo(), count = a.jhi() - jlo + 1;
    T* buf = scratch;
    T* acc = scratch + count;
    load_padded(row, a.in, jlo, count, buf);
    for (int64_t r = 0; r < a.up && r < a.out; ++r) {
      const int64_t nq = (a.out - r + a.up - 1) / a.up;
      for (int64_t q = 0; q < nq; ++q) acc[q] = T(0);
      for (int64_t k = pos_mod(a.pad0 - r, a.up); k < a.taps; k += a.up) {
        const T gk = g[k];
        const T* src = buf + ((r + k - a.pad0) / a.up - jlo);  // r + k - pad0 is a multiple of up
#pragma omp simd
        for (int64_t q = 0; q < nq; ++q) acc[q] += gk * src[q];
      }
      for (int64_t q = 0; q < nq; ++q) dst[q * a.up + r] = acc[q];
    }
    return;
  }
  // up > 1 and down > 1 together (rare): the precomputed table.
  for (int64_t o = 0; o < a.out; ++o) {
    T s = T(0);
    for (int64_t t = table.start[o]; t < table.start[o + 1]; ++t) s += g[table.tap[t]] * row[table.src[t]];
    dst[o] = s;
  }
}

// Horizontal pass of one row whose pixels are vc contiguous values (channels_last).
template <typename T>
void row_pass_vector(const T* row, const T* g, const RowAxis& a, const TapTable& table, T* dst) {
  const int64_t vc = a.vc;
  for (int64_t o = 0; o < a.out; ++o) {
    T* d = dst + o * vc;
    const int64_t t0 = table.start[o], t1 = table.start[o + 1];
    if (t0 == t1) {
      for (int64_t v = 0; v < vc; ++v) d[v] = T(0);
      continue;
    }
    {
      const T gk = g[table.tap[t0]];
      const T* s = row + table.src[t0] * vc;
#pragma omp simd
      for (int64_t v = 0; v < vc; ++v) d[v] = gk * s[v];
    }
    for (int64_t t = t0 + 1; t < t1; ++t) {
      const T gk = g[table.tap[t]];
      const T* s = row + table.src[t] * vc;
#pragma omp simd
      for (int64_t v = 0; v < vc; ++v) d[v] += gk * s[v];
    }
  }
}

template <typename T>
inline void row_pass(const T* row, const T* g, const RowAxis& a, const TapTable& table, T* scratch, T* dst) {
  if (a.vc == 1)
    row_pass_scalar(row, g, a, table, scratch, dst);
  else
    row_pass_vector(row, g, a, table, dst);
}

constexpr int64_t kMinParallelWork = 1 << 16;  // multiply-adds per parallel chunk, at least

// NCHW images with short rows are processed kChannelBlock planes at a time, gathered into a
// channels_last buffer: the inner loops then run over channels instead of a handful of pixels.
constexpr int64_t kChannelBlock = 16;
constexpr int64_t kShortRow = 32;

// Separable filter, no upsampling, downsampling by >= 2 on both axes, NCHW planes with rows of
// at least kShortRow pixels (downsample2d, the discriminator's skip and conv paths, ADA's
// decimation): vertical pass first. Each output row is the tap-weighted sum of the input rows its
// vertical taps reach, over whole contiguous rows (vectorised), followed by ONE strided horizontal
// pass; the ring-buffer order would run the strided horizontal pass on every input row, i.e.
// `down_y` times as often, and the strided loads are the slow part.
template <typename T>
void run_down_vertical_first(const Params& p, const TapTable& vtable) {
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const T* f = static_cast<const T*>(p.f);
  const RowAxis ax{p.in_w, p.out_w, 1, p.down_x, p.pad_x0, p.fw, 1};
  const int64_t span = ax.span_up1();
  const int64_t planes = p.n * p.c;
  const int64_t plane_work = std::max<int64_t>(1, p.out_h * (p.in_w * p.fh + p.out_w * p.fw));
  const int64_t grain = std::max<int64_t>(1, (kMinParallelWork + plane_work - 1) / plane_work);
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> col(p.in_w), buf(span);
    for (int64_t plane = begin; plane < end; ++plane) {
      const T* xi = x + plane * p.in_h * p.in_w;
      T* yi = y + plane * p.out_h * p.out_w;
      for (int64_t oy = 0; oy < p.out_h; ++oy) {
        T* dst = yi + oy * p.out_w;
        const int64_t t0 = vtable.start[oy], t1 = vtable.start[oy + 1];
        if (t0 == t1) {
          std::fill(dst, dst + p.out_w, T(0));
          continue;
        }
        T* c = col.data();
        const int64_t w = p.in_w;
        int64_t t = t0;
        if (t1 - t0 >= 2) {
          const T g0 = f[vtable.tap[t0]], g1 = f[vtable.tap[t0 + 1]];
          const T* s0 = xi + vtable.src[t0] * w;
          const T* s1 = xi + vtable.src[t0 + 1] * w;
#pragma omp simd
          for (int64_t i = 0; i < w; ++i) c[i] = g0 * s0[i] + g1 * s1[i];
          t += 2;
        } else {
          const T g0 = f[vtable.tap[t0]];
          const T* s0 = xi + vtable.src[t0] * w;
#pragma omp simd
          for (int64_t i = 0; i < w; ++i) c[i] = g0 * s0[i];
          t += 1;
        }
        for (; t + 1 < t1; t += 2) {
          const T g0 = f[vtable.tap[t]], g1 = f[vtable.tap[t + 1]];
          const T* s0 = xi + vtable.src[t] * w;
          const T* s1 = xi + vtable.src[t + 1] * w;
#pragma omp simd
          for (int64_t i = 0; i < w; ++i) c[i] += g0 * s0[i] + g1 * s1[i];
        }
        for (; t < t1; ++t) {
          const T g0 = f[vtable.tap[t]];
          const T* s0 = xi + vtable.src[t] * w;
#pragma omp simd
          for (int64_t i = 0; i < w; ++i) c[i] += g0 * s0[i];
        }
        load_padded(c, w, -p.pad_x0, span, buf.data());
        switch (p.down_x) {
          case 2: fir_down_taps<T, 2>(buf.data(), f, p.fw, p.out_w, 2, dst); break;
          case 4: fir_down_taps<T, 4>(buf.data(), f, p.fw, p.out_w, 4, dst); break;
          default: fir_down<T, 0, 0>(buf.data(), f, p.fw, p.out_w, p.down_x, dst); break;
        }
      }
    }
  });
}

template <typename T>
void run(const Params& p) {
  const bool blocked = !p.channels_last && p.c >= kChannelBlock / 2 && p.in_w < kShortRow && p.out_w < 2 * kShortRow;
  const int64_t vc_max = p.channels_last ? p.c : blocked ? std::min(kChannelBlock, p.c) : 1;
  const int64_t channel_blocks = blocked ? (p.c + kChannelBlock - 1) / kChannelBlock : 1;
  const int64_t images = p.channels_last ? p.n : blocked ? p.n * channel_blocks : p.n * p.c;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const T* f = static_cast<const T*>(p.f);

  const RowAxis ax_max{p.in_w, p.out_w, p.up_x, p.down_x, p.pad_x0, p.fw, vc_max};
  const TapTable htable = (vc_max > 1 || (p.up_x > 1 && p.down_x > 1))
                              ? TapTable(p.in_w, p.out_w, p.up_x, p.down_x, p.pad_x0, p.fw)
                              : TapTable(0, 0, 1, 1, 0, 0);
  const TapTable vtable(p.in_h, p.out_h, p.up_y, p.down_y, p.pad_y0, p.fh);
  if (p.separable && !p.channels_last && !blocked && p.up_x == 1 && p.up_y == 1 && p.down_x >= 2 && p.down_y >= 2) {
    run_down_vertical_first<T>(p, vtable);
    return;
  }
  const int64_t out_row_max = p.out_w * vc_max;
  const int64_t scratch_size = std::max<int64_t>(ax_max.span_up1(), ax_max.jhi() - ax_max.jlo() + 1 + p.out_w) + out_row_max;

  // Enough tasks to keep every thread busy; whole images when there are many.
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t blocks =
      (blocked || images >= 4 * threads) ? 1 : std::min<int64_t>(p.out_h, (4 * threads + images - 1) / images);
  const int64_t rows_per_block = (p.out_h + blocks - 1) / blocks;
  const int64_t ring_rows = p.separable ? p.fh : 0;

  // Small problems run on the calling thread: waking the pool costs more than they take.
  const int64_t task_work = std::max<int64_t>(1, rows_per_block * out_row_max * std::max(1, p.fh / p.up_y));
  const int64_t grain = std::max<int64_t>(1, (kMinParallelWork + task_work - 1) / task_work);
  at::parallel_for(0, images * blocks, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(scratch_size);
    std::vector<T> ring(ring_rows * out_row_max);
    std::vector<int64_t> tag(ring_rows, -1);
    std::vector<T> gathered(blocked ? p.in_h * p.in_w * vc_max : 0);
    std::vector<T> result(blocked ? p.out_h * p.out_w * vc_max : 0);
    int64_t ring_image = -1;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t image = task / blocks, block = task % blocks;
      const int64_t oy0 = block * rows_per_block, oy1 = std::min(p.out_h, oy0 + rows_per_block);
      int64_t vc = vc_max, c0 = 0, n = 0;
      const T* xi;
      T* yi;
      if (blocked) {
        n = image / channel_blocks;
        c0 = (image % channel_blocks) * kChannelBlock;
        vc = std::min(kChannelBlock, p.c - c0);
        const int64_t hw = p.in_h * p.in_w;
        for (int64_t ch = 0; ch < vc; ++ch) {
          const T* plane = x + (n * p.c + c0 + ch) * hw;
          for (int64_t i = 0; i < hw; ++i) gathered[i * vc + ch] = plane[i];
        }
        xi = gathered.data();
        yi = result.data();
      } else {
        const int64_t vc_image = p.channels_last ? p.c : 1;
        xi = x + image * p.in_h * p.in_w * vc_image;
        yi = y + image * p.out_h * p.out_w * vc_image;
      }
      const RowAxis ax{p.in_w, p.out_w, p.up_x, p.down_x, p.pad_x0, p.fw, vc};
      const int64_t in_row = p.in_w * vc, out_row = p.out_w * vc;
      if (ring_image != image) {
        std::fill(tag.begin(), tag.end(), -1);
        ring_image = image;
      }
      for (int64_t oy = oy0; oy < oy1; ++oy) {
        T* dst = yi + oy * out_row;
        const int64_t t0 = vtable.start[oy], t1 = vtable.start[oy + 1];
        if (t0 == t1) {
          std::fill(dst, dst + out_row, T(0));
          continue;
        }
        if (p.separable) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t iy = vtable.src[t], slot = iy % ring_rows;
            if (tag[slot] != iy) {
              row_pass(xi + iy * in_row, f, ax, htable, scratch.data(), ring.data() + slot * out_row);
              tag[slot] = iy;
            }
          }
          const auto ring_row = [&](int64_t t) { return ring.data() + (vtable.src[t] % ring_rows) * out_row; };
          const int64_t count = t1 - t0;
          if (count >= 2) {  // the first two rows in one sweep: one write of dst instead of two
            const T g0 = f[vtable.tap[t0]], g1 = f[vtable.tap[t0 + 1]];
            const T* s0 = ring_row(t0);
            const T* s1 = ring_row(t0 + 1);
#pragma omp simd
            for (int64_t i = 0; i < out_row; ++i) dst[i] = g0 * s0[i] + g1 * s1[i];
          } else {
            const T g0 = f[vtable.tap[t0]];
            const T* s0 = ring_row(t0);
#pragma omp simd
            for (int64_t i = 0; i < out_row; ++i) dst[i] = g0 * s0[i];
          }
          int64_t t = t0 + std::min<int64_t>(count, 2);
          for (; t + 1 < t1; t += 2) {
            const T g0 = f[vtable.tap[t]], g1 = f[vtable.tap[t + 1]];
            const T* s0 = ring_row(t);
            const T* s1 = ring_row(t + 1);
#pragma omp simd
            for (int64_t i = 0; i < out_row; ++i) dst[i] += g0 * s0[i] + g1 * s1[i];
          }
          for (; t < t1; ++t) {
            const T gk = f[vtable.tap[t]];
            const T* s = ring_row(t);
#pragma omp simd
            for (int64_t i = 0; i < out_row; ++i) dst[i] += gk * s[i];
          }
        } else {
          // 2-D taps: the horizontal pass of each reached input row with that tap row, summed.
          T* tmp = scratch.data() + (scratch_size - out_row_max);
          row_pass(xi + vtable.src[t0] * in_row, f + vtable.tap[t0] * p.fw, ax, htable, scratch.data(), dst);
          for (int64_t t = t0 + 1; t < t1; ++t) {
            row_pass(xi + vtable.src[t] * in_row, f + vtable.tap[t] * p.fw, ax, htable, scratch.data(), tmp);
#pragma omp simd
            for (int64_t i = 0; i < out_row; ++i) dst[i] += tmp[i];
          }
        }
      }
      if (blocked) {  // scatter the block back into its NCHW planes
        const int64_t hw = p.out_h * p.out_w;
        for (int64_t ch = 0; ch < vc; ++ch) {
          T* plane = y + (n * p.c + c0 + ch) * hw;
          for (int64_t i = 0; i < hw; ++i) plane[i] = result[i * vc + ch];
        }
      }
    }
  });
}

at::Tensor upfirdn2d_cpu(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x, int64_t down_y,
                         int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1, bool flip_filter, double gain) {
  const Geometry g = check_geometry(x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1);
  TORCH_CHECK(x.device().is_cpu(), "upfirdn2d: the CPU kernel needs x on the CPU, got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "upfirdn2d: the CPU kernel supports x of dtype float32 and float64, got ", x.scalar_type());

  // The kernel handles NCHW and channels_last; any other layout is made contiguous first.
  at::Tensor xin = x;
  at::MemoryFormat format = at::MemoryFormat::Contiguous;
  if (!x.is_contiguous()) {
    if (x.is_contiguous(at::MemoryFormat::ChannelsLast))
      format = at::MemoryFormat::ChannelsLast;
    else
      xin = x.contiguous();
  }
  at::Tensor y = at::empty({x.size(0), x.size(1), g.out_h, g.out_w}, x.options().memory_format(format));
  if (y.numel() == 0) return y;

  // Taps in x's dtype (the CPU kernels accumulate in it).
  const at::Tensor taps = correlation_taps(f, flip_filter, gain, x.scalar_type());
  Params p = make_params(xin, y, taps, g, f.dim() == 1, format == at::MemoryFormat::ChannelsLast);
  p.dtype = x.scalar_type() == at::kDouble ? kFloat64 : kFloat32;
  if (p.dtype == kFloat64)
    run<double>(p);
  else
    run<float>(p);
  return y;
}

}  // namespace
}  // namespace upfirdn2d
}  // namespace gemix

TORCH_LIBRARY_FRAGMENT(gemix_C, m) {
  m.def(
      "upfirdn2d(Tensor x, Tensor f, int up_x, int up_y, int down_x, int down_y, int pad_x0, int pad_x1, int pad_y0, "
      "int pad_y1, bool flip_filter, float gain) -> Tensor");
}

TORCH_LIBRARY_IMPL(gemix_C, CPU, m) { m.impl("upfirdn2d", &gemix::upfirdn2d::upfirdn2d_cpu); }
