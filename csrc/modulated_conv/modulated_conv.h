// Modulation/demodulation of StyleGAN2's convolution weights: parameters shared by the CPU
// (modulated_conv_cpu.cpp) and CUDA (modulated_conv_kernel.cu) kernels. Plain C++, no torch.
//
//   forward:  d[n,o] = demodulate ? 1/sqrt(Σ_{i,r} (weight[o,i,r]·styles[n,i])² + eps) : 1
//             w[n,o,i,r] = weight[o,i,r] · styles[n,i] · d[n,o]          (r runs over kh·kw)
//   backward, with G = dL/dw, gd = dL/dd and E[n,o] = (Σ_{i,r} G·weight·styles + gd) · d³
//             (E = 0 without demodulation):
//             dweight[o,i,r] = Σ_n styles[n,i] · (G[n,o,i,r]·d[n,o] − E[n,o]·weight[o,i,r]·styles[n,i])
//             dstyles[n,i]   = Σ_{o,r} G[n,o,i,r]·weight[o,i,r]·d[n,o] − styles[n,i]·Σ_o E[n,o]·Σ_r weight[o,i,r]²
#pragma once

#include <cstdint>

namespace gemix {
namespace modulated_conv {

struct ModParams {
  const void* weight = nullptr;  // [O, I, R]
  const void* styles = nullptr;  // [N, I]
  void* w = nullptr;             // forward out: [N, O, I, R]
  void* d = nullptr;             // forward out: [N, O]
  // backward
  const void* grad_w = nullptr;  // [N, O, I, R]
  const void* grad_d = nullptr;  // [N, O]
  const void* d_in = nullptr;    // [N, O] (the forward's d)
  void* grad_weight = nullptr;   // [O, I, R]
  void* grad_styles = nullptr;   // [N, I]
  void* e = nullptr;             // workspace [N, O], in the accumulation type
  int64_t n = 0, o = 0, i = 0, r = 0;
  bool demodulate = true;
  double eps = 1e-8;
};

}  // namespace modulated_conv
}  // namespace gemix
