// The parts of the cuDNN convolution launcher that need no cuDNN: argument checks, the plan
// key and descriptions. Built with or without cuDNN (conv_cudnn.cpp / conv_cudnn_missing.cpp).
#include <climits>
#include <functional>

#include "cuda/conv_cudnn.hpp"

namespace kiln::kernels::cuda {

namespace {

std::string dims_str(const int64_t* v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += 'x';
    s += std::to_string(v[i]);
  }
  return s;
}
std::string dims_str(const int* v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += 'x';
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace

std::string describe(const ConvCudnnParams& p) {
  const int s = p.spatial >= 1 && p.spatial <= 3 ? p.spatial : 0;
  return std::string(elem_type_name(p.type)) + (p.transpose ? " conv_transpose" : " conv") +
         " N=" + std::to_string(p.n) + " C=" + std::to_string(p.c_in) + "->" +
         std::to_string(p.c_out) + " in " + dims_str(p.in, s) + " out " + dims_str(p.out, s) +
         " kernel " + dims_str(p.kernel, s) + " stride " + dims_str(p.stride, s) + " pad " +
         dims_str(p.pad, s) + " dilation " + dims_str(p.dilation, s) + " groups " +
         std::to_string(p.groups);
}

std::string can_implement(const ConvCudnnParams& p) {
  if (!conv_cudnn_built())
    return "this build of kiln has no cuDNN (configure with KILN_CUDNN=ON and cuDNN 9 "
           "installed: cudnn.h and libcudnn.so.9)";
  if (p.spatial < 1 || p.spatial > 3) return "spatial dims must be 1, 2 or 3";
  if (p.groups < 1 || p.c_in % p.groups || p.c_out % p.groups)
    return "groups " + std::to_string(p.groups) + " must divide both channel counts";
  // cuDNN's legacy API takes int dims and strides: every tensor below 2^31 elements.
  int64_t x_n = p.n * p.c_in, y_n = p.n * p.c_out;
  int64_t w_n = (p.transpose ? p.c_in * (p.c_out / p.groups) : p.c_out * (p.c_in / p.groups));
  for (int d = 0; d < p.spatial; ++d) {
    if (p.in[d] < 1 || p.out[d] < 1 || p.kernel[d] < 1) return "empty spatial dim";
    if (p.stride[d] < 1 || p.dilation[d] < 1 || p.pad[d] < 0) return "bad stride/dilation/pad";
    x_n *= p.in[d], y_n *= p.out[d], w_n *= p.kernel[d];
  }
  if (p.n < 1 || p.c_in < 1 || p.c_out < 1) return "empty batch or channels";
  if (x_n > INT_MAX || y_n > INT_MAX || w_n > INT_MAX)
    return "a tensor of 2^31 elements or more (cuDNN's legacy API indexes with int; split the "
           "batch)";
  if (!p.x || !p.w || !p.y) return "null pointer";
  return {};
}

ConvCudnnKey conv_cudnn_key(const ConvCudnnParams& p, int device) {
  ConvCudnnKey k;
  k.device = device;
  k.type = p.type;
  k.transpose = p.transpose;
  k.spatial = p.spatial;
  k.n = p.n, k.c_in = p.c_in, k.c_out = p.c_out, k.groups = p.groups;
  for (int d = 0; d < 3; ++d) {
    const bool used = d < p.spatial;
    k.in[d] = used ? p.in[d] : 1;
    k.out[d] = used ? p.out[d] : 1;
    k.kernel[d] = used ? p.kernel[d] : 1;
    k.stride[d] = used ? p.stride[d] : 1;
    k.pad[d] = used ? p.pad[d] : 0;
    k.dilation[d] = used ? p.dilation[d] : 1;
  }
  k.workspace_limit = p.workspace_limit;
  return k;
}

size_t ConvCudnnKeyHash::operator()(const ConvCudnnKey& k) const {
  size_t h = 0;
  auto mix = [&h](int64_t v) {
    h ^= std::hash<int64_t>()(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  };
  mix(k.device), mix(static_cast<int>(k.type)), mix(k.transpose), mix(k.spatial);
  mix(k.n), mix(k.c_in), mix(k.c_out), mix(k.groups);
  for (int d = 0; d < 3; ++d) {
    mix(k.in[d]), mix(k.out[d]), mix(k.kernel[d]);
    mix(k.stride[d]), mix(k.pad[d]), mix(k.dilation[d]);
  }
  mix(static_cast<int64_t>(k.workspace_limit));
  return h;
}

}  // namespace kiln::kernels::cuda
