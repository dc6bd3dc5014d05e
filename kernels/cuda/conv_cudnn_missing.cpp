// Built instead of conv_cudnn.cpp when cuDNN is not found (or KILN_CUDNN=OFF): can_implement
// (conv_cudnn_common.cpp) refuses every case with the reason, so this launcher is never reached.
#include "cuda/conv_cudnn.hpp"

namespace kiln::kernels::cuda {

bool conv_cudnn_built() { return false; }

ConvCudnnStatus launch_conv_cudnn(const ConvCudnnParams& p, int, const std::function<void*(size_t)>&,
                                  cudaStream_t) {
  return {ConvCudnnStatus::Kind::not_supported, can_implement(p)};
}

}  // namespace kiln::kernels::cuda
