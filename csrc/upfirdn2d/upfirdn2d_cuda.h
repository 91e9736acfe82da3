// upfirdn2d: the host launcher of the CUDA kernels (upfirdn2d_kernel.cu), called by the torch
// binding (upfirdn2d_cuda.cpp). Torch-free.
#pragma once

#include <cuda_runtime.h>

#include "upfirdn2d/upfirdn2d.h"

namespace gemix {
namespace upfirdn2d {

// Launches the kernel for p on `stream` (p.x, p.y and p.f on the current device); returns the
// launch's error (cudaSuccess when it was queued). The kernel runs asynchronously.
cudaError_t launch_upfirdn2d(const Params& p, cudaStream_t stream);

}  // namespace upfirdn2d
}  // namespace gemix
