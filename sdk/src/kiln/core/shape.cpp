#include "kiln/core/shape.hpp"

#include <limits>

#include "kiln/core/error.hpp"

namespace kiln {

Dims::Dims(std::initializer_list<int64_t> v) : Dims(std::span<const int64_t>(v.begin(), v.size())) {}

Dims::Dims(std::span<const int64_t> v) {
  KILN_ARG(v.size() <= static_cast<size_t>(kMaxDims), "shape", "shape has ", v.size(),
           " dims, at most ", kMaxDims, " are supported");
  n_ = static_cast<int>(v.size());
  for (int i = 0; i < n_; ++i) d_[i] = v[i];
}

Dims Dims::filled(int n, int64_t value) {
  KILN_ARG(n >= 0 && n <= kMaxDims, "shape", "rank ", n, " out of range [0, ", kMaxDims, "]");
  Dims d;
  d.n_ = n;
  for (int i = 0; i < n; ++i) d.d_[i] = value;
  return d;
}

void Dims::push_back(int64_t v) {
  KILN_ARG(n_ < kMaxDims, "shape", "cannot exceed ", kMaxDims, " dims");
  d_[n_++] = v;
}

void Dims::insert(int pos, int64_t v) {
  KILN_ARG(n_ < kMaxDims, "shape", "cannot exceed ", kMaxDims, " dims");
  KILN_ARG(pos >= 0 && pos <= n_, "shape", "insert position ", pos, " out of range");
  for (int i = n_; i > pos; --i) d_[i] = d_[i - 1];
  d_[pos] = v;
  ++n_;
}

void Dims::erase(int pos) {
  KILN_ARG(pos >= 0 && pos < n_, "shape", "erase position ", pos, " out of range");
  for (int i = pos; i + 1 < n_; ++i) d_[i] = d_[i + 1];
  --n_;
}

std::string Dims::str() const {
  std::string s = "(";
  for (int i = 0; i < n_; ++i) {
    if (i) s += ", ";
    s += std::to_string(d_[i]);
  }
  return s + ")";
}

int64_t shape_numel(const Shape& s) {
  // The product of the non-zero dims is checked too: it is what contiguous_strides() multiplies
  // up, so an empty (0, 2^62, 2^62) must not pass.
  int64_t nonzero = 1;
  bool empty = false;
  for (int i = 0; i < s.size(); ++i) {
    KILN_ARG(s[i] >= 0, "shape", "negative dimension ", s[i], " in ", s.str());
    if (s[i] == 0) {
      empty = true;
      continue;
    }
    KILN_ARG(nonzero <= std::numeric_limits<int64_t>::max() / s[i], "shape",
             "element count of ", s.str(), " overflows");
    nonzero *= s[i];
  }
  return empty ? 0 : nonzero;
}

Strides contiguous_strides(const Shape& s) {
  Strides st = Dims::filled(s.size(), 1);
  int64_t acc = 1;
  for (int i = s.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i] > 0 ? s[i] : 1;
  }
  return st;
}

int normalize_dim(int dim, int ndim, const char* ctx) {
  int d = dim < 0 ? dim + ndim : dim;
  KILN_ARG(d >= 0 && d < ndim, ctx, "dim ", dim, " out of range for a tensor of rank ", ndim);
  return d;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* ctx) {
  int n = a.size() > b.size() ? a.size() : b.size();
  Shape out = Dims::filled(n, 1);
  for (int i = 0; i < n; ++i) {
    int ia = a.size() - n + i, ib = b.size() - n + i;
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    KILN_ARG(da == db || da == 1 || db == 1, ctx, "shapes ", a.str(), " and ", b.str(),
             " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace kiln
