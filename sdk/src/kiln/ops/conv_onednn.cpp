#include "kiln/ops/conv_onednn.hpp"

#ifdef KILN_HAVE_DNNL

#include <dnnl.hpp>
#include <unordered_map>

#include "kiln/core/error.hpp"
#include <map>
#include <mutex>
#include <string>

namespace kiln::ops::detail {

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

memory::dims dims_of(const Shape& s) { return memory::dims(s.begin(), s.end()); }

tag plain_tag(int rank) { return rank == 3 ? tag::ncw : rank == 4 ? tag::nchw : tag::ncdhw; }
tag weight_tag(int rank, bool grouped) {
  if (grouped) return rank == 3 ? tag::goiw : rank == 4 ? tag::goihw : tag::goidhw;
  return rank == 3 ? tag::oiw : rank == 4 ? tag::oihw : tag::oidhw;
}

// One primitive per geometry, built once: creating a primitive JIT-compiles a kernel (~ms).
struct Prim {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward conv;
};

std::string key_of(const OnednnConvArgs& a) {
  std::string k = a.x_shape.str() + a.w_shape.str() + (a.bias ? "b" : "-");
  for (int i = 0; i < 3; ++i)
    k += str(",", a.stride[i], ":", a.pad_lo[i], ":", a.pad_hi[i], ":", a.dilation[i]);
  return k + str("g", a.groups);
}

const Prim& primitive_for(const OnednnConvArgs& a) {
  static std::mutex mu;
  static std::map<std::string, Prim> cache;
  const std::string key = key_of(a);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  const int rank = a.x_shape.size(), sp = rank - 2;
  memory::dims wd = dims_of(a.w_shape);
  if (a.groups > 1) {  // (Cout, Cin/g, K...) -> (g, Cout/g, Cin/g, K...)
    wd[0] /= a.groups;
    wd.insert(wd.begin(), a.groups);
  }
  memory::dims strides, dil, pl, pr;
  for (int d = 0; d < sp; ++d) {
    strides.push_back(a.stride[d]);
    dil.push_back(a.dilation[d] - 1);  // oneDNN counts dilation from 0
    pl.push_back(a.pad_lo[d]);
    pr.push_back(a.pad_hi[d]);
  }
  const auto f32 = memory::data_type::f32;
  memory::desc x_md(dims_of(a.x_shape), f32, tag::any), y_md(dims_of(a.y_shape), f32, tag::any);
  memory::desc w_md(wd, f32, tag::any);
  memory::desc b_md = a.bias ? memory::desc({a.w_shape[0]}, f32, tag::x) : memory::desc();
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                    dnnl::algorithm::convolution_direct, x_md, w_md, b_md, y_md,
                                    strides, dil, pl, pr);
  dnnl::convolution_forward::primitive_desc pd(d, cpu_engine());
  Prim p{pd, dnnl::convolution_forward(pd)};
  return cache.emplace(key, std::move(p)).first->second;
}

}  // namespace

bool conv_onednn(const OnednnConvArgs& a) {
  const int rank = a.x_shape.size();
  if (rank < 3 || rank > 5) return false;
  try {
    const Prim& p = primitive_for(a);
    dnnl::engine& eng = cpu_engine();
    dnnl::stream s(eng);
    const auto f32 = memory::data_type::f32;
    memory::dims wd = dims_of(a.w_shape);
    if (a.groups > 1) {
      wd[0] /= a.groups;
      wd.insert(wd.begin(), a.groups);
    }
    // User memory in plain NC(D)HW / (g)oi(d)hw; reordered to the primitive's blocked layouts.
    memory x_user({dims_of(a.x_shape), f32, plain_tag(rank)}, eng, const_cast<float*>(a.x));
    memory w_user({wd, f32, weight_tag(rank, a.groups > 1)}, eng, const_cast<float*>(a.w));
    memory y_user({dims_of(a.y_shape), f32, plain_tag(rank)}, eng, a.y);
    auto in = [&](const memory& user, const memory::desc& want) {
      if (user.get_desc() == want) return user;
      memory m(want, eng);
      dnnl::reorder(user, m).execute(s, const_cast<memory&>(user), m);
      return m;
    };
    memory x_m = in(x_user, p.pd.src_desc());
    memory w_m = in(w_user, p.pd.weights_desc());
    const bool y_direct = p.pd.dst_desc() == y_user.get_desc();
    memory y_m = y_direct ? y_user : memory(p.pd.dst_desc(), eng);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x_m}, {DNNL_ARG_WEIGHTS, w_m}, {DNNL_ARG_DST, y_m}};
    if (a.bias)
      args.emplace(DNNL_ARG_BIAS, memory({{a.w_shape[0]}, f32, tag::x}, eng, const_cast<float*>(a.bias)));
    p.conv.execute(s, args);
    if (!y_direct) dnnl::reorder(y_m, y_user).execute(s, y_m, y_user);
    s.wait();
    return true;
  } catch (const dnnl::error&) {
    return false;  // unimplemented case: the caller's own path handles it
  }
}

}  // namespace kiln::ops::detail

#else

namespace kiln::ops::detail {
bool conv_onednn(const OnednnConvArgs&) { return false; }
}  // namespace kiln::ops::detail

#endif
