// Shape and strides: at most kMaxDims dims, stored inline (no heap). Strides are in elements.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

namespace kiln {

constexpr int kMaxDims = 6;

class Dims {
 public:
  Dims() = default;
  Dims(std::initializer_list<int64_t> v);
  explicit Dims(std::span<const int64_t> v);
  static Dims filled(int n, int64_t value);

  int size() const { return n_; }
  bool empty() const { return n_ == 0; }
  int64_t operator[](int i) const { return d_[i]; }
  int64_t& operator[](int i) { return d_[i]; }
  const int64_t* begin() const { return d_.data(); }
  const int64_t* end() const { return d_.data() + n_; }
  std::span<const int64_t> span() const { return {d_.data(), static_cast<size_t>(n_)}; }
  void push_back(int64_t v);
  void insert(int pos, int64_t v);
  void erase(int pos);
  int64_t back() const { return d_[n_ - 1]; }

  friend bool operator==(const Dims& a, const Dims& b) {
    if (a.n_ != b.n_) return false;
    for (int i = 0; i < a.n_; ++i)
      if (a.d_[i] != b.d_[i]) return false;
    return true;
  }
  std::string str() const;  // "(2, 3, 4)"

 private:
  std::array<int64_t, kMaxDims> d_{};
  int n_ = 0;
};

using Shape = Dims;
using Strides = Dims;

int64_t shape_numel(const Shape& s);  // throws on negative dims or overflow
Strides contiguous_strides(const Shape& s);
// Normalises a possibly negative dim index against ndim; throws naming `ctx` when out of range.
int normalize_dim(int dim, int ndim, const char* ctx);
// NumPy broadcasting of two shapes; throws naming `ctx` when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* ctx);

}  // namespace kiln
