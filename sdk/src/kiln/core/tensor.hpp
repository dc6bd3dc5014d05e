// Tensor: a typed, strided view of a Storage. Views (slice, permute, transpose, reshape of a
// contiguous tensor, expand/broadcast, select, squeeze/unsqueeze) share storage and never copy;
// contiguous(), clone(), to() copy. Shapes are at most kMaxDims (6) dims; strides are in
// elements. Block-quantized dtypes are only ever contiguous and are not viewed element-wise.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kiln/core/dtype.hpp"
#include "kiln/core/error.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/core/storage.hpp"

namespace kiln {

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() == false

  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  // Copies `values` (f32) into a new CPU tensor of `shape`; sizes must agree.
  static Tensor from_f32(const Shape& shape, std::span<const float> values);
  static Tensor from_f32(const Shape& shape, std::initializer_list<float> values) {
    return from_f32(shape, std::span<const float>(values.begin(), values.size()));
  }
  // A view over existing storage (e.g. a weight in an mmap); checks the byte range fits.
  static Tensor from_storage(std::shared_ptr<Storage> storage, size_t byte_offset,
                             const Shape& shape, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  int ndim() const { return shape_.size(); }
  const Shape& shape() const { return shape_; }
  const Strides& strides() const { return strides_; }
  int64_t size(int dim) const;    // negative dims count from the end
  int64_t stride(int dim) const;
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(dtype_nbytes(dtype_, numel_)); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t byte_offset() const { return byte_offset_; }
  std::string str() const;  // "f32 (2, 3) cpu"

  // Raw pointer to element 0. mutable_data() refuses read-only (file-backed) storage.
  const void* raw_data() const;
  void* mutable_raw_data();
  template <typename T> const T* data() const { check_type<T>(); return static_cast<const T*>(raw_data()); }
  template <typename T> T* mutable_data() { check_type<T>(); return static_cast<T*>(mutable_raw_data()); }

  // ---- views (no copy) ----
  Tensor view(const Shape& shape) const;             // requires contiguous; one dim may be -1
  Tensor reshape(const Shape& shape) const;          // view when possible, else a copy
  Tensor permute(std::span<const int> dims) const;
  Tensor permute(std::initializer_list<int> dims) const {
    return permute(std::span<const int>(dims.begin(), dims.size()));
  }
  Tensor transpose(int a, int b) const;
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;  // python-style clamp
  Tensor narrow(int dim, int64_t start, int64_t length) const;               // exact, checked
  Tensor select(int dim, int64_t index) const;                               // drops `dim`
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  Tensor expand(const Shape& shape) const;  // broadcast: size-1 dims get stride 0
  Tensor flatten(int start_dim = 0, int end_dim = -1) const;

  // ---- copies ----
  Tensor contiguous() const;  // returns *this when already contiguous
  Tensor clone() const;
  Tensor to(DType dtype) const;    // dtype cast (cast.cpp); returns *this when equal
  Tensor to(Device device) const;  // copies to another device; returns *this when equal
  // Copies `src` (broadcastable, any dtype) into this tensor's elements.
  void copy_from(const Tensor& src);

  float item() const;  // single-element tensor of a float type -> f32

 private:
  template <typename T>
  void check_type() const {
    KILN_CHECK(dtype_ == dtype_of<T>(), Status::invalid_argument, "tensor",
               "accessing ", dtype_name(dtype_), " tensor as ", dtype_name(dtype_of<T>()));
  }
  void check_elementwise(const char* op) const;

  std::shared_ptr<Storage> storage_;
  size_t byte_offset_ = 0;
  Shape shape_;
  Strides strides_;
  int64_t numel_ = 0;
  DType dtype_ = DType::f32;
};

template <> inline const uint16_t* Tensor::data<uint16_t>() const {
  KILN_CHECK(dtype_ == DType::f16 || dtype_ == DType::bf16, Status::invalid_argument, "tensor",
             "accessing ", dtype_name(dtype_), " tensor as 16-bit float");
  return static_cast<const uint16_t*>(raw_data());
}
template <> inline uint16_t* Tensor::mutable_data<uint16_t>() {
  KILN_CHECK(dtype_ == DType::f16 || dtype_ == DType::bf16, Status::invalid_argument, "tensor",
             "accessing ", dtype_name(dtype_), " tensor as 16-bit float");
  return static_cast<uint16_t*>(mutable_raw_data());
}

}  // namespace kiln
