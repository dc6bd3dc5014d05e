// pad, interpolate, concat, embedding, apply_rope and the reductions on CUDA against the CPU ops (the
// reference) on fresh random inputs, plus the checks that need no GPU (can_implement, errors
// before dispatch). GPU tests skip without a device.
//
// Poisoning: before each CUDA op the test frees a 0xFF-filled block of the output's size, which
// the allocator usually hands to the op's output (NaN in every float type), so an element the
// kernel forgets to write shows up (see test_cuda_ops.cpp).
//
// Tolerances:
//  - pad, concat, embedding, apply_rope, nearest/nearest_exact interpolate, amax/amin: exact
//    (bitwise) —
//    they move values; the index arithmetic is the CPU's, operation for operation.
//  - bilinear interpolate: exact — the taps and weights come from the same float operations
//    (explicitly rounded on the device, no FMA contraction), blended in the CPU's order.
//  - sum/mean: f32 accumulation on the device against the CPU's double sums. The worst-case
//    error of any summation order of n terms is (n - 1) u sum|x| (Higham 2002, eq. 4.4; u =
//    2^-24), plus the CPU's final rounding to f32 (u |result|) and, for mean, one division
//    (u |result|): per output (n + 2) u sum|x|.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "cuda/embedding.hpp"
#include "cuda/reduce.hpp"
#include "cuda/resample.hpp"
#include "cuda/rope.hpp"
#include "kiln/core/device.hpp"
#include "kiln/core/storage.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/ops/ops.hpp"
#include "cuda_test_util.hpp"
#include "test_support.hpp"

using namespace kiln;
using namespace kiln::cuda_test;
namespace kc = kiln::kernels::cuda;

namespace {

// Bitwise equality of a CUDA result with the CPU reference (same dtype and shape); a NaN matches
// any NaN (the sign and payload of 0/0 differ between x86's default NaN and CUDA's).
::testing::AssertionResult identical(const Tensor& gpu, const Tensor& cpu) {
  if (!(gpu.shape() == cpu.shape()) || gpu.dtype() != cpu.dtype())
    return ::testing::AssertionFailure() << "got " << gpu.str() << ", expected " << cpu.str();
  const Tensor g = gpu.to(Device::cpu()).contiguous();
  const Tensor c = cpu.contiguous();
  const size_t es = static_cast<size_t>(dtype_nbytes(c.dtype(), 1));
  const auto* pg = static_cast<const unsigned char*>(g.raw_data());
  const auto* pc = static_cast<const unsigned char*>(c.raw_data());
  const std::vector<double> vg = test::to_doubles(g), vc = test::to_doubles(c);
  int64_t bad = 0, first = -1;
  for (int64_t i = 0; i < c.numel(); ++i)
    if (std::memcmp(pg + i * es, pc + i * es, es) != 0 &&
        !(std::isnan(vg[i]) && std::isnan(vc[i])) && bad++ == 0)
      first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << c.numel() << " elements differ; first at "
                                       << first << ": cuda " << vg[first] << " cpu " << vc[first];
}

// |gpu - cpu| <= bound elementwise (f32 tensors of one shape); NaN matches NaN only.
::testing::AssertionResult within(const Tensor& gpu, const Tensor& cpu, const Tensor& bound) {
  if (!(gpu.shape() == cpu.shape()))
    return ::testing::AssertionFailure() << "shape " << gpu.shape().str() << " vs " << cpu.shape().str();
  const std::vector<double> g = test::to_doubles(gpu.to(Device::cpu()));
  const std::vector<double> c = test::to_doubles(cpu), b = test::to_doubles(bound);
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < c.size(); ++i) {
    const bool ok = std::isnan(c[i]) || std::isnan(g[i]) ? std::isnan(c[i]) && std::isnan(g[i])
                                                         : std::fabs(g[i] - c[i]) <= b[i];
    if (!ok && bad++ == 0) first = static_cast<int64_t>(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << c.size() << " elements differ; first at "
                                       << first << ": cuda " << g[first] << " cpu " << c[first]
                                       << " bound " << b[first];
}

// Runs `op` on CPU inputs and on their CUDA copies (views applied inside `op` on each side)
// and expects bitwise-equal results.
void check_exact(const std::vector<Tensor>& inputs,
                 const std::function<Tensor(const std::vector<Tensor>&)>& op, const std::string& what) {
  SCOPED_TRACE(what);
  std::vector<Tensor> dev;
  for (const Tensor& t : inputs) dev.push_back(t.to(kGpu));
  const Tensor ref = op(inputs);
  poison_next_allocation(ref.nbytes());
  const Tensor out = op(dev);
  EXPECT_TRUE(out.device().is_cuda());
  EXPECT_TRUE(out.is_contiguous());
  EXPECT_TRUE(identical(out, ref));
}

// f32 tensor of `shape` whose storage claims to be on cuda:0 (host memory, never dereferenced
// by the code under test: every call below throws before a kernel would run).
Tensor fake_cuda(const Shape& shape, DType dtype = DType::f32) {
  auto buf = std::make_shared<std::vector<char>>(static_cast<size_t>(dtype_nbytes(dtype, shape_numel(shape))) + 64);
  auto st = Storage::borrow(buf->data(), buf->size(), Device::cuda(0), buf, false);
  return Tensor::from_storage(st, 0, shape, dtype);
}

}  // namespace

// ---------------------------------------------------------------------------- no GPU needed

TEST(CudaLayoutCanImplement, Kernels) {
  float dummy[4];
  kc::PadParams p;
  p.x = p.y = dummy;
  p.ndim = 1;
  p.in_shape[0] = 3;
  p.x_stride[0] = 1;
  p.lo[0] = 2;
  p.mode = kc::PadKind::reflect;
  EXPECT_EQ(kc::can_implement(p), "");
  p.lo[0] = 3;
  EXPECT_NE(kc::can_implement(p).find("reflect"), std::string::npos);
  p.mode = kc::PadKind::circular;
  p.lo[0] = 4;
  EXPECT_NE(kc::can_implement(p).find("circular"), std::string::npos);
  p.mode = kc::PadKind::constant;
  p.lo[0] = -5;
  EXPECT_NE(kc::can_implement(p).find("negative"), std::string::npos);

  kc::InterpParams ip;
  ip.x = ip.y = dummy;
  ip.planes = 1;
  ip.in[0] = 2;
  ip.mode = kc::InterpKind::bilinear;
  EXPECT_NE(kc::can_implement(ip).find("bilinear"), std::string::npos);
  ip.mode = kc::InterpKind::nearest;
  EXPECT_EQ(kc::can_implement(ip), "");

  kc::EmbeddingParams ep;
  ep.table = ep.ids = dummy;
  ep.out = dummy;
  ep.vocab = 2, ep.dim = 2;
  EXPECT_NE(kc::can_implement(ep).find("flag"), std::string::npos);

  kc::ReduceParams rp;
  rp.x = dummy;
  rp.out = dummy;
  rp.kind = kc::ReduceKind::max;
  rp.inner_ndim = 1;
  rp.inner_shape[0] = 0;
  EXPECT_NE(kc::can_implement(rp).find("identity"), std::string::npos);
  rp.kind = kc::ReduceKind::sum;
  EXPECT_EQ(kc::can_implement(rp), "");
}

// The ops validate before dispatching: the same invalid_argument on a (fake) CUDA tensor as
// on the CPU.
TEST(CudaLayoutDispatch, ValidationPrecedesDispatch) {
  const Tensor h = test::random_tensor({2, 3, 4}, 1);
  const Tensor d = fake_cuda({2, 3, 4});
  for (const Tensor* x : {&h, &d}) {
    const int64_t too_big[] = {4, 0};
    EXPECT_TRUE(test::throws_error([&] { ops::pad(*x, too_big, ops::PadMode::reflect); },
                                   Status::invalid_argument, {"[pad]", "reflect padding (4, 0)"}));
    const int64_t size[] = {5, 5};
    EXPECT_TRUE(test::throws_error(
        [&] { ops::interpolate(*x, size, ops::InterpMode::nearest); }, Status::invalid_argument,
        {"[interpolate]", "out_size has 2 entries"}));
    const int twice[] = {1, -2};
    EXPECT_TRUE(test::throws_error([&] { ops::sum(*x, twice); }, Status::invalid_argument,
                                   {"[sum]", "listed twice"}));
    const Tensor parts[] = {*x, x->slice(1, 0, 2).slice(2, 0, 3)};
    EXPECT_TRUE(test::throws_error([&] { ops::concat(parts, 1); }, Status::invalid_argument,
                                   {"[concat]", "tensor 1", "in dim 2"}));
    EXPECT_TRUE(test::throws_error([&] { ops::embedding(x->select(0, 0), x->select(0, 1)); },
                                   Status::invalid_argument, {"[embedding]", "ids must be i32 or i64"}));
  }
  // Mixed devices are the caller's error, also for concat's list.
  const Tensor mixed[] = {h, d};
  EXPECT_TRUE(test::throws_error([&] { ops::concat(mixed, 0); }, Status::invalid_argument,
                                 {"[concat]", "cpu", "cuda:0"}));
}

// ---------------------------------------------------------------------------- GPU

TEST(CudaLayout, PadEveryMode) {
  REQUIRE_GPU();
  struct Case {
    Shape shape;
    std::vector<int64_t> pads;
  };
  // Pads are (lo, hi) from the last dim; sizes odd, pads asymmetric, up to size - 1 (reflect).
  const std::vector<Case> cases = {{{3, 5, 7}, {2, 3}},
                                   {{2, 3, 5, 7}, {1, 2, 3, 0}},
                                   {{1, 2, 4, 5, 3}, {1, 1, 0, 2, 3, 1}},
                                   {{3, 33, 9}, {0, 8}},
                                   {{2, 1, 1, 1}, {0, 0, 0, 0}}};
  const ops::PadMode modes[] = {ops::PadMode::zeros, ops::PadMode::reflect, ops::PadMode::replicate,
                                ops::PadMode::circular};
  uint64_t seed = 1000;
  for (ops::PadMode mode : modes) {
    for (const Case& c : cases) {
      const Tensor x = test::random_tensor(c.shape, seed++);
      const std::string what = "pad mode " + std::to_string(static_cast<int>(mode)) + " " + c.shape.str();
      check_exact({x}, [&](const std::vector<Tensor>& in) { return ops::pad(in[0], c.pads, mode, 0.f); }, what);
    }
    // A transposed (non-contiguous) input, read through its strides.
    const Tensor x = test::random_tensor({2, 3, 9, 6}, seed++);
    const std::vector<int64_t> pads = {2, 1, 0, 3};
    check_exact({x}, [&](const std::vector<Tensor>& in) { return ops::pad(in[0].transpose(2, 3), pads, mode); },
                "pad of a transposed view, mode " + std::to_string(static_cast<int>(mode)));
  }
  // Constant padding: any rank, a fill value, negative pads (crops); circular crops too.
  const Tensor x = test::random_tensor({4, 6, 7}, seed++);
  const std::vector<int64_t> p1 = {3, -2, 1, 2, -1, 1};
  check_exact({x}, [&](const std::vector<Tensor>& in) { return ops::pad(in[0], p1, ops::PadMode::zeros, 1.5f); },
              "constant 1.5 with crops, 3 dims");
  const std::vector<int64_t> p2 = {-2, 3};
  check_exact({x}, [&](const std::vector<Tensor>& in) { return ops::pad(in[0], p2, ops::PadMode::circular); },
              "circular with a crop");
  // f16/bf16 on CUDA: the same bits as padding the f32 values and rounding.
  for (DType dt : {DType::f16, DType::bf16}) {
    const std::vector<int64_t> pads = {2, 1, 1, 2};
    const Tensor xs = test::random_tensor({2, 3, 5, 7}, seed++);
    const Tensor ref = ops::pad(xs, pads, ops::PadMode::reflect).to(dt);
    EXPECT_TRUE(identical(ops::pad(xs.to(dt).to(kGpu), pads, ops::PadMode::reflect), ref))
        << dtype_name(dt);
  }
}

TEST(CudaLayout, InterpolateEveryMode) {
  REQUIRE_GPU();
  struct Case {
    Shape shape;
    std::vector<int64_t> size;
  };
  // Up and down by non-integer factors (7 -> 12, 13 -> 5), exactly 2x (the nearest fast path),
  // identity, and to/from size 1.
  const std::vector<Case> nearest_cases = {{{3, 5, 7}, {12}},          {{2, 3, 13}, {5}},
                                           {{2, 3, 7, 9}, {12, 5}},    {{1, 4, 5, 6}, {10, 12}},
                                           {{2, 2, 9, 9}, {9, 9}},     {{1, 3, 1, 5}, {3, 1}},
                                           {{1, 2, 3, 5, 7}, {5, 4, 11}}};
  uint64_t seed = 2000;
  for (ops::InterpMode mode : {ops::InterpMode::nearest, ops::InterpMode::nearest_exact}) {
    for (const Case& c : nearest_cases) {
      const Tensor x = test::random_tensor(c.shape, seed++);
      check_exact({x},
                  [&](const std::vector<Tensor>& in) { return ops::interpolate(in[0], c.size, mode); },
                  "nearest" + std::string(mode == ops::InterpMode::nearest_exact ? "_exact " : " ") +
                      c.shape.str());
    }
  }
  const std::vector<Case> bilinear_cases = {{{2, 3, 7, 9}, {12, 5}},  {{1, 4, 4, 4}, {8, 8}},
                                            {{1, 2, 1, 5}, {3, 7}},   {{2, 3, 13, 11}, {5, 6}},
                                            {{3, 2, 6, 10}, {6, 10}}, {{1, 1, 5, 5}, {1, 1}},
                                            {{1, 3, 33, 17}, {64, 31}}};
  for (bool ac : {false, true}) {
    for (const Case& c : bilinear_cases) {
      const Tensor x = test::random_tensor(c.shape, seed++);
      check_exact({x},
                  [&](const std::vector<Tensor>& in) {
                    return ops::interpolate(in[0], c.size, ops::InterpMode::bilinear, ac);
                  },
                  "bilinear align_corners " + std::to_string(ac) + " " + c.shape.str());
    }
  }
  const Tensor x = test::random_tensor({2, 3, 9, 7}, seed++);
  const std::vector<int64_t> size = {11, 4};
  check_exact({x},
              [&](const std::vector<Tensor>& in) {
                return ops::interpolate(in[0].transpose(2, 3), size, ops::InterpMode::bilinear);
              },
              "bilinear of a transposed view");
}

TEST(CudaLayout, Concat) {
  REQUIRE_GPU();
  uint64_t seed = 3000;
  const Tensor a = test::random_tensor({3, 5, 7}, seed++);
  const Tensor b = test::random_tensor({3, 2, 7}, seed++);
  const Tensor c = test::random_tensor({3, 1, 7}, seed++);
  const Tensor e = test::random_tensor({3, 0, 7}, seed++);
  check_exact({a, b, e, c},
              [](const std::vector<Tensor>& in) { return ops::concat(in, 1); }, "concat dim 1");
  const Tensor a2 = test::random_tensor({3, 5, 4}, seed++);
  check_exact({a, a2}, [](const std::vector<Tensor>& in) { return ops::concat(in, -1); }, "concat last dim");
  check_exact({a, a}, [](const std::vector<Tensor>& in) { return ops::concat(in, 0); }, "concat dim 0");
  // Views go through the strided copy.
  const Tensor t = test::random_tensor({3, 7, 5}, seed++);
  check_exact({a, t},
              [](const std::vector<Tensor>& in) {
                const Tensor parts[] = {in[0], in[1].transpose(1, 2).slice(1, 1, 4)};
                return ops::concat(parts, 1);
              },
              "concat of views");
  // Half and integer dtypes.
  check_exact({a.to(DType::bf16), b.to(DType::bf16)},
              [](const std::vector<Tensor>& in) { return ops::concat(in, 1); }, "concat bf16");
  Tensor i1 = Tensor::empty({2, 3}, DType::i64), i2 = Tensor::empty({2, 2}, DType::i64);
  for (int k = 0; k < 6; ++k) i1.mutable_data<int64_t>()[k] = (int64_t{1} << 40) + k;
  for (int k = 0; k < 4; ++k) i2.mutable_data<int64_t>()[k] = -k;
  check_exact({i1, i2}, [](const std::vector<Tensor>& in) { return ops::concat(in, 1); }, "concat i64");
}

TEST(CudaLayout, Embedding) {
  REQUIRE_GPU();
  const int64_t V = 50, D = 33;
  const Tensor table = test::random_tensor({V, D}, 4000);
  Tensor ids = Tensor::empty({3, 7}, DType::i64);
  for (int i = 0; i < 21; ++i) ids.mutable_data<int64_t>()[i] = (i * 17 + 3) % V;
  ids.mutable_data<int64_t>()[20] = V - 1;
  for (DType tdt : {DType::f32, DType::f16, DType::bf16}) {
    for (DType idt : {DType::i64, DType::i32}) {
      Tensor id = ids;
      if (idt == DType::i32) {
        id = Tensor::empty({3, 7}, DType::i32);
        for (int i = 0; i < 21; ++i) id.mutable_data<int32_t>()[i] = static_cast<int32_t>(ids.data<int64_t>()[i]);
      }
      const std::string what = "embedding " + std::string(dtype_name(tdt)) + " " + std::string(dtype_name(idt));
      check_exact({table.to(tdt), id},
                  [](const std::vector<Tensor>& in) { return ops::embedding(in[0], in[1]); }, what);
      check_exact({table.to(tdt), id},
                  [](const std::vector<Tensor>& in) { return ops::embedding(in[0], in[1].transpose(0, 1)); },
                  what + " transposed ids");
    }
  }
  // A sliced table (row stride > D) is read in place.
  check_exact({table, ids},
              [](const std::vector<Tensor>& in) { return ops::embedding(in[0].slice(1, 2, 30), in[1]); },
              "embedding of a sliced table");
  // Out-of-range ids: the first one in flat order is named, on both devices alike.
  Tensor bad = ids.clone();
  bad.mutable_data<int64_t>()[9] = V + 27;
  bad.mutable_data<int64_t>()[4] = -3;
  for (Device dev : {Device::cpu(), kGpu}) {
    const Tensor t = table.to(dev), b = bad.to(dev);
    EXPECT_TRUE(test::throws_error([&] { ops::embedding(t, b); }, Status::invalid_argument,
                                   {"[embedding]", "id -3 at flat index 4", "[0, 50)"}))
        << dev.str();
  }
  Tensor bad32 = Tensor::empty({2, 2}, DType::i32);
  const int32_t vals[] = {1, 2, 50, 0};
  std::memcpy(bad32.mutable_raw_data(), vals, sizeof vals);
  EXPECT_TRUE(test::throws_error([&] { ops::embedding(table.to(kGpu), bad32.to(kGpu)); },
                                 Status::invalid_argument, {"id 50 at flat index 2"}));
}

TEST(CudaLayout, Reductions) {
  REQUIRE_GPU();
  struct Case {
    Shape shape;
    std::vector<int> dims;
  };
  // Last dim (rows, warp path), a large last dim (block path), leading dims (columns path),
  // mixed sets, all dims (empty list), single-element dims.
  const std::vector<Case> cases = {{{3, 5, 7}, {2}},      {{3, 5, 7}, {0}},     {{3, 5, 7}, {1, 2}},
                                   {{3, 5, 7}, {0, 2}},   {{3, 5, 7}, {}},      {{4, 4097}, {1}},
                                   {{2, 33, 77}, {0, 1}}, {{2, 3, 5, 7}, {1, 3}}, {{1, 9000}, {}},
                                   {{5, 1, 3}, {1}},      {{2, 3, 4, 5, 6}, {0, 2, 4}}};
  enum { kSum, kMean, kMax, kMin };
  auto run = [](int kind, const Tensor& x, std::span<const int> dims, bool keep) {
    switch (kind) {
      case kSum: return ops::sum(x, dims, keep);
      case kMean: return ops::mean(x, dims, keep);
      case kMax: return ops::amax(x, dims, keep);
      default: return ops::amin(x, dims, keep);
    }
  };
  uint64_t seed = 5000;
  for (int kind : {kSum, kMean, kMax, kMin}) {
    for (const Case& c : cases) {
      for (int view = 0; view < 2; ++view) {  // 0: contiguous, 1: a transposed view of it
        const Tensor x = test::random_tensor(c.shape, seed++, -1.f, 1.f);
        const int nd = static_cast<int>(c.shape.size());
        auto arg = [&](const Tensor& t) { return view && nd >= 2 ? t.transpose(0, nd - 1) : t; };
        const std::span<const int> dims(c.dims);
        const bool keep = (seed % 3) == 0;
        SCOPED_TRACE("reduce " + std::to_string(kind) + " " + c.shape.str() + " view " + std::to_string(view));
        const Tensor ref = run(kind, arg(x), dims, keep);
        const Tensor xd = x.to(kGpu);
        poison_next_allocation(ref.nbytes());
        const Tensor got = run(kind, arg(xd), dims, keep);
        ASSERT_TRUE(got.device().is_cuda());
        if (kind == kMax || kind == kMin) {
          EXPECT_TRUE(identical(got, ref));
          continue;
        }
        // Per output (n + 2) u sum|x| (header comment); the mean's sum|x| is divided by n too.
        const int64_t n = std::max<int64_t>(1, x.numel() / std::max<int64_t>(1, ref.numel()));
        Tensor bound = ops::sum(abs_host(arg(x)), dims, keep);
        if (kind == kMean) bound = ops::scale(bound, 1.f / static_cast<float>(n));
        bound = ops::scale(bound, static_cast<float>(n + 2) * std::ldexp(1.f, -24), 1e-30f);
        EXPECT_TRUE(within(got, ref, bound));
        // Deterministic: a second run gives the same bits.
        EXPECT_TRUE(identical(run(kind, arg(xd), dims, keep), got.to(Device::cpu())));
      }
    }
  }
  // NaN propagates through amax/amin (and sum), as on the CPU.
  Tensor x = test::random_tensor({4, 37}, seed++);
  x.mutable_data<float>()[40] = std::numeric_limits<float>::quiet_NaN();
  const int last[] = {1};
  check_exact({x}, [&](const std::vector<Tensor>& in) { return ops::amax(in[0], last); }, "amax with NaN");
  check_exact({x}, [&](const std::vector<Tensor>& in) { return ops::amin(in[0], last); }, "amin with NaN");
  // Sum over an empty dim is 0, its mean NaN.
  const Tensor empty = Tensor::zeros({3, 0});
  check_exact({empty}, [&](const std::vector<Tensor>& in) { return ops::sum(in[0], last); }, "sum of nothing");
  check_exact({empty}, [&](const std::vector<Tensor>& in) { return ops::mean(in[0], last); }, "mean of nothing");
}

// apply_rope: both layouts, (B, H, L, D) and (B, L, H, D) memory, a permuted view, odd sizes;
// the table computed on the host and copied (positions are host metadata). Bit-identical: the
// kernel rounds each product and the sum as the CPU loop does (no FMA).
TEST(CudaLayout, ApplyRope) {
  REQUIRE_GPU();
  uint64_t seed = 900;
  const int axes[] = {8, 12, 14};  // sum 34 = head dim, as Flux's (16, 56, 56) on a small scale
  for (const auto layout : {ops::RopeLayout::interleaved, ops::RopeLayout::split_half}) {
    for (const int64_t L : {1, 33, 77}) {
      Tensor ids = Tensor::empty({L, 3}, DType::f32);
      float* p = ids.mutable_data<float>();
      for (int64_t i = 0; i < 3 * L; ++i) p[i] = static_cast<float>((i * 7) % 41);
      const ops::RopeTable host = ops::rope_table(ids, axes, 10000.f);
      const ops::RopeTable dev{host.cos.to(kGpu), host.sin.to(kGpu)};
      auto run = [&](const Tensor& x, int seq_dim) {
        const bool on_gpu = x.device().is_cuda();
        return ops::apply_rope(x, on_gpu ? dev : host, layout, seq_dim);
      };
      const Tensor bhld = test::random_tensor({2, 3, L, 34}, seed++, -4.f, 4.f);
      check_exact({bhld}, [&](const std::vector<Tensor>& in) { return run(in[0], 2); }, "B,H,L,D");
      const Tensor blhd = test::random_tensor({2, L, 5, 34}, seed++, -4.f, 4.f);
      check_exact({blhd}, [&](const std::vector<Tensor>& in) { return run(in[0], 1); }, "B,L,H,D");
      // (B, L, H, D) memory viewed as (B, H, L, D): made contiguous first on both devices.
      check_exact({blhd},
                  [&](const std::vector<Tensor>& in) { return run(in[0].transpose(1, 2), 2); },
                  "permuted view");
    }
  }
  // Mixed devices are the caller's mistake.
  const Tensor x = test::random_tensor({1, 1, 4, 8}, seed++).to(kGpu);
  const ops::RopeTable host = ops::rope_table_1d(Tensor::from_f32({4}, {0.f, 1.f, 2.f, 3.f}), 8, 10000.f);
  test::expect_error([&] { ops::apply_rope(x, host, ops::RopeLayout::interleaved); },
                     Status::invalid_argument, "inputs on");
}

TEST(CudaLayoutCanImplement, Rope) {
  kc::RopeParams p;
  float dummy[4] = {};
  p.x = dummy, p.cos = dummy + 1, p.sin = dummy + 2, p.out = dummy + 3;
  p.rows = 2, p.head_dim = 4, p.seq_len = 2;
  EXPECT_EQ(kc::can_implement(p), "");
  p.head_dim = 3;
  EXPECT_NE(kc::can_implement(p).find("odd"), std::string::npos);
  p.head_dim = 4;
  p.out = dummy;
  EXPECT_NE(kc::can_implement(p).find("aliases"), std::string::npos);
  p.out = dummy + 3;
  p.seq_len = 0;
  EXPECT_NE(kc::can_implement(p).find("empty table"), std::string::npos);
}
