// Linked when kiln is built without CUDA. No CUDA tensor can be allocated then, but a borrowed
// storage may still claim a CUDA device: every entry point answers "unsupported".
#include "kiln/cuda/cuda_ops.hpp"

namespace kiln::cuda_ops {

namespace {
[[noreturn]] void no_cuda(const char* op) {
  fail(Status::unsupported, "CUDA tensors need a CUDA build of kiln (configure with KILN_CUDA=ON)",
       op);
}
}  // namespace

Stream op_stream(Device d) { return Stream{d, nullptr}; }
void copy_cast(Tensor&, const Tensor&) { no_cuda("copy"); }
Tensor unary(const char* op, UnaryOp, const Tensor&, float, float) { no_cuda(op); }
Tensor binary(const char* op, BinaryOp, const Tensor&, const Tensor&, const Shape&) { no_cuda(op); }
Tensor where(const Tensor&, const Tensor&, const Tensor&, const Shape&) { no_cuda("where"); }
Tensor softmax_last_dim(const Tensor&) { no_cuda("softmax"); }
Tensor layer_norm(const Tensor&, const Tensor&, const Tensor&, float) { no_cuda("layer_norm"); }
Tensor rms_norm(const Tensor&, const Tensor&, float) { no_cuda("rms_norm"); }
Tensor group_norm(const Tensor&, int, const Tensor&, const Tensor&, float) {
  no_cuda("group_norm");
}

Tensor matmul(const Tensor&, const Tensor&, const Shape&) { no_cuda("matmul"); }
Tensor linear(const Tensor&, const Tensor&, const Tensor&) { no_cuda("linear"); }

Tensor conv(const Tensor&, const Tensor&, const Tensor&, const ops::ConvParams&, const Shape&) {
  no_cuda("conv");
}
Tensor conv_transpose(const Tensor&, const Tensor&, const Tensor&, const ops::ConvTransposeParams&,
                      const Shape&) {
  no_cuda("conv_transpose");
}
Tensor pad(const Tensor&, std::span<const int64_t>, std::span<const int64_t>, ops::PadMode, float) {
  no_cuda("pad");
}
Tensor interpolate(const Tensor&, std::span<const int64_t>, ops::InterpMode, bool) {
  no_cuda("interpolate");
}
Tensor concat(std::span<const Tensor>, int, const Shape&) { no_cuda("concat"); }
Tensor embedding(const Tensor&, const Tensor&) { no_cuda("embedding"); }
Tensor apply_rope(const Tensor&, const Tensor&, const Tensor&, bool, int) {
  no_cuda("apply_rope");
}
Tensor reduce(const char* op, Reduction, const Tensor&, std::span<const bool>) { no_cuda(op); }
Tensor attention(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                 const AttentionOptions&, Tensor*) {
  no_cuda("attention");
}

}  // namespace kiln::cuda_ops
