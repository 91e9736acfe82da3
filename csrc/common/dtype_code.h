// The dtype code the torch-free CUDA launchers of bias_act and modulated_conv take
// (0 float32, 1 float64, 2 float16, 3 bfloat16), with the error a binding raises for any other.
#pragma once

#include <ATen/ATen.h>

namespace gemix {

inline int cuda_dtype_code(at::ScalarType t, const char* op, const char* arg) {
  switch (t) {
    case at::kFloat: return 0;
    case at::kDouble: return 1;
    case at::kHalf: return 2;
    case at::kBFloat16: return 3;
    default: TORCH_CHECK(false, op, " (CUDA): ", arg, " must be float16, bfloat16, float32 or float64, got ", t);
  }
  return -1;
}

}  // namespace gemix
