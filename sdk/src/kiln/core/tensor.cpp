#include "kiln/core/tensor.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kiln/core/copy.hpp"
#include "kiln/cuda/cuda_ops.hpp"

namespace kiln {

namespace {
void check_not_block(DType t, const char* op) {
  KILN_ARG(dtype_info(t).block_elems == 1, op, "block-quantized ", dtype_name(t),
           " tensors cannot be viewed element-wise");
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.numel_ = shape_numel(shape);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  t.storage_ = Storage::allocate(static_cast<size_t>(dtype_nbytes(dtype, t.numel_)), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cpu()) {
    std::memset(t.storage_->data(), 0, t.nbytes());
  } else {
    std::vector<char> z(t.nbytes(), 0);
    copy_bytes(t.storage_->data(), device, z.data(), Device::cpu(), z.size());
  }
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, DType::f32, Device::cpu());
  std::fill_n(static_cast<float*>(t.storage_->data()), t.numel_, value);
  return t.to(device);
}

Tensor Tensor::from_f32(const Shape& shape, std::span<const float> values) {
  Tensor t = empty(shape, DType::f32);
  KILN_ARG(static_cast<int64_t>(values.size()) == t.numel_, "tensor", "shape ", shape.str(),
           " needs ", t.numel_, " values, got ", values.size());
  if (!values.empty()) std::memcpy(t.storage_->data(), values.data(), values.size() * 4);
  return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, size_t byte_offset,
                            const Shape& shape, DType dtype) {
  KILN_ARG(storage != nullptr, "tensor", "null storage");
  Tensor t;
  t.numel_ = shape_numel(shape);
  size_t need = static_cast<size_t>(dtype_nbytes(dtype, t.numel_));
  KILN_ARG(byte_offset <= storage->nbytes() && need <= storage->nbytes() - byte_offset, "tensor",
           "view of ", need, " bytes at offset ", byte_offset, " exceeds storage of ",
           storage->nbytes(), " bytes");
  t.storage_ = std::move(storage);
  t.byte_offset_ = byte_offset;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::size(int dim) const { return shape_[normalize_dim(dim, ndim(), "size")]; }
int64_t Tensor::stride(int dim) const { return strides_[normalize_dim(dim, ndim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (int i = ndim() - 1; i >= 0; --i) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expect) return false;
    expect *= shape_[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype_)) + " " + shape_.str() + " " + device().str();
}

const void* Tensor::raw_data() const {
  KILN_ARG(defined(), "tensor", "access to an undefined tensor");
  return static_cast<const char*>(storage_->data()) + byte_offset_;
}

void* Tensor::mutable_raw_data() {
  KILN_ARG(defined(), "tensor", "access to an undefined tensor");
  KILN_ARG(!storage_->read_only(), "tensor",
           "tensor is backed by read-only storage (a mapped weight file); clone() it first");
  return static_cast<char*>(storage_->data()) + byte_offset_;
}

void Tensor::check_elementwise(const char* op) const {
  KILN_ARG(defined(), op, "undefined tensor");
  check_not_block(dtype_, op);
}

Tensor Tensor::view(const Shape& shape) const {
  check_elementwise("view");
  KILN_ARG(is_contiguous(), "view", "view of a non-contiguous tensor ", str(),
           "; use reshape()");
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      KILN_ARG(infer < 0, "view", "more than one -1 in ", shape.str());
      infer = i;
    } else {
      KILN_ARG(s[i] >= 0, "view", "negative size in ", shape.str());
      known *= s[i];
    }
  }
  if (infer >= 0) {
    KILN_ARG(known > 0 && numel_ % known == 0, "view", "cannot infer -1 in ", shape.str(),
             " for ", numel_, " elements");
    s[infer] = numel_ / known;
  }
  KILN_ARG(shape_numel(s) == numel_, "view", "shape ", shape.str(), " has a different element count than ",
           shape_.str());
  Tensor t = *this;
  t.shape_ = s;
  t.strides_ = contiguous_strides(s);
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::permute(std::span<const int> dims) const {
  check_elementwise("permute");
  KILN_ARG(static_cast<int>(dims.size()) == ndim(), "permute", "got ", dims.size(),
           " dims for a tensor of rank ", ndim());
  bool seen[kMaxDims] = {};
  Tensor t = *this;
  for (int i = 0; i < ndim(); ++i) {
    int d = normalize_dim(dims[i], ndim(), "permute");
    KILN_ARG(!seen[d], "permute", "dim ", d, " repeated");
    seen[d] = true;
    t.shape_[i] = shape_[d];
    t.strides_[i] = strides_[d];
  }
  return t;
}

Tensor Tensor::transpose(int a, int b) const {
  check_elementwise("transpose");
  a = normalize_dim(a, ndim(), "transpose");
  b = normalize_dim(b, ndim(), "transpose");
  Tensor t = *this;
  std::swap(t.shape_[a], t.shape_[b]);
  std::swap(t.strides_[a], t.strides_[b]);
  return t;
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end, int64_t step) const {
  check_elementwise("slice");
  dim = normalize_dim(dim, ndim(), "slice");
  KILN_ARG(step > 0, "slice", "step must be positive, got ", step);
  int64_t n = shape_[dim];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Tensor t = *this;
  t.shape_[dim] = (end - start + step - 1) / step;
  t.strides_[dim] = strides_[dim] * step;
  t.byte_offset_ += static_cast<size_t>(start * strides_[dim] * dtype_size(dtype_));
  t.numel_ = shape_numel(t.shape_);
  return t;
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  int d = normalize_dim(dim, ndim(), "narrow");
  KILN_ARG(start >= 0 && length >= 0 && start + length <= shape_[d], "narrow", "range [", start,
           ", ", start + length, ") out of bounds for dim ", d, " of size ", shape_[d]);
  return slice(d, start, start + length);
}

Tensor Tensor::select(int dim, int64_t index) const {
  int d = normalize_dim(dim, ndim(), "select");
  KILN_ARG(index >= -shape_[d] && index < shape_[d], "select", "index ", index,
           " out of range for dim ", d, " of size ", shape_[d]);
  if (index < 0) index += shape_[d];
  Tensor t = narrow(d, index, 1);
  t.shape_.erase(d);
  t.strides_.erase(d);
  return t;
}

Tensor Tensor::unsqueeze(int dim) const {
  check_elementwise("unsqueeze");
  int d = normalize_dim(dim, ndim() + 1, "unsqueeze");
  Tensor t = *this;
  int64_t st = d < ndim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(d, 1);
  t.strides_.insert(d, st);
  return t;
}

Tensor Tensor::squeeze(int dim) const {
  check_elementwise("squeeze");
  int d = normalize_dim(dim, ndim(), "squeeze");
  KILN_ARG(shape_[d] == 1, "squeeze", "dim ", d, " has size ", shape_[d], ", not 1");
  Tensor t = *this;
  t.shape_.erase(d);
  t.strides_.erase(d);
  return t;
}

Tensor Tensor::expand(const Shape& shape) const {
  check_elementwise("expand");
  KILN_ARG(shape.size() >= ndim(), "expand", "cannot expand ", shape_.str(), " to ", shape.str());
  Tensor t = *this;
  t.shape_ = shape;
  t.strides_ = Dims::filled(shape.size(), 0);
  int lead = shape.size() - ndim();
  for (int i = 0; i < shape.size(); ++i) {
    int j = i - lead;
    if (j < 0) continue;
    if (shape_[j] == shape[i]) {
      t.strides_[i] = strides_[j];
    } else {
      KILN_ARG(shape_[j] == 1, "expand", "cannot expand ", shape_.str(), " to ", shape.str());
    }
  }
  t.numel_ = shape_numel(shape);
  return t;
}

Tensor Tensor::flatten(int start_dim, int end_dim) const {
  if (ndim() == 0) return reshape({1});
  int s = normalize_dim(start_dim, ndim(), "flatten");
  int e = normalize_dim(end_dim, ndim(), "flatten");
  KILN_ARG(s <= e, "flatten", "start dim ", s, " after end dim ", e);
  Shape out;
  for (int i = 0; i < s; ++i) out.push_back(shape_[i]);
  int64_t m = 1;
  for (int i = s; i <= e; ++i) m *= shape_[i];
  out.push_back(m);
  for (int i = e + 1; i < ndim(); ++i) out.push_back(shape_[i]);
  return reshape(out);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  KILN_ARG(defined(), "clone", "undefined tensor");
  Tensor t = empty(shape_, dtype_, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  KILN_ARG(defined(), "to", "undefined tensor");
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device device) const {
  KILN_ARG(defined(), "to", "undefined tensor");
  if (device == this->device()) return *this;
  Tensor src = contiguous();
  Tensor t = empty(shape_, dtype_, device);
  copy_bytes(t.mutable_raw_data(), device, src.raw_data(), src.device(), src.nbytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  KILN_ARG(defined() && src.defined(), "copy", "undefined tensor");
  KILN_ARG(device() == src.device(), "copy", "source on ", src.device().str(),
           ", destination on ", device().str(), "; move with to(device) first");
  if (dtype_ == src.dtype_ && shape_ == src.shape_ && is_contiguous() && src.is_contiguous()) {
    copy_bytes(mutable_raw_data(), device(), src.raw_data(), src.device(), nbytes());
    return;
  }
  check_elementwise("copy");
  src.check_elementwise("copy");
  Tensor s = src.shape_ == shape_ ? src : src.expand(shape_);
  if (device().is_cuda()) {  // kernels/cuda/cast.cu: f32/f16/bf16, any strides
    cuda_ops::copy_cast(*this, s);
    return;
  }
  strided_copy_cast(mutable_raw_data(), dtype_, shape_, strides_, s.raw_data(), s.dtype_,
                    s.strides_);
}

float Tensor::item() const {
  KILN_ARG(numel_ == 1, "item", "item() of a tensor with ", numel_, " elements");
  Tensor t = to(Device::cpu()).to(DType::f32).contiguous();
  return *t.data<float>();
}

}  // namespace kiln
