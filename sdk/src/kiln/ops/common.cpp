#include "kiln/ops/ops.hpp"

namespace kiln::ops {

Device common_device(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
    } else if (!(t->device() == first->device())) {
      fail(Status::invalid_argument,
           str("inputs on ", first->device().str(), " and ", t->device().str(),
               "; move them to one device with to(device)"),
           op);
    }
  }
  return first ? first->device() : Device::cpu();
}

void require_cpu(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Device d = common_device(op, tensors);
  if (!d.is_cpu()) fail(Status::unsupported, str("no ", d.str(), " kernel for this op yet"), op);
}

void require_f32(const char* op, const char* arg, const Tensor& t, int ndim) {
  KILN_ARG(t.defined(), op, arg, " is undefined");
  KILN_ARG(t.dtype() == DType::f32, op, arg, " is ", dtype_name(t.dtype()),
           ", expected f32 (cast with .to(DType::f32))");
  if (ndim >= 0)
    KILN_ARG(t.ndim() == ndim, op, arg, " has ", t.ndim(), " dims ", t.shape().str(),
             ", expected ", ndim);
}

void require_f32_or_cuda_half(const char* op, const char* arg, const Tensor& t, Device dev) {
  if (dev.is_cuda() && t.defined() && (t.dtype() == DType::f16 || t.dtype() == DType::bf16))
    return;
  require_f32(op, arg, t);
}

}  // namespace kiln::ops
