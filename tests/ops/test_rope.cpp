// Rotary embedding vs double references. Tables: the same float64 computation as diffusers'
// get_1d_rotary_pos_embed (freqs_dtype float64), rounded once to f32, so at most half an ulp
// apart (|cos| <= 1: atol 6e-8). apply_rope: two f32 products and a sum of O(1) values,
// atol 3e-7.
#include <cmath>
#include <string>
#include <vector>

#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

namespace kiln {
namespace {

// (L, sum(dims)/2) reference cos and sin for positions pos[l][a].
void table_ref(const std::vector<std::vector<double>>& pos, const std::vector<int>& dims,
               double theta, std::vector<double>* cos, std::vector<double>* sin) {
  int total = 0;
  for (int d : dims) total += d / 2;
  cos->assign(pos.size() * total, 0);
  sin->assign(pos.size() * total, 0);
  for (size_t l = 0; l < pos.size(); ++l) {
    int col = 0;
    for (size_t a = 0; a < dims.size(); ++a)
      for (int i = 0; i < dims[a] / 2; ++i, ++col) {
        const double freq = 1.0 / std::pow(theta, 2.0 * i / dims[a]);
        (*cos)[l * total + col] = std::cos(pos[l][a] * freq);
        (*sin)[l * total + col] = std::sin(pos[l][a] * freq);
      }
  }
}

TEST(Rope, Table1d) {
  for (int dim : {2, 8, 64, 128}) {
    SCOPED_TRACE(dim);
    const int64_t L = 77;
    // Integer positions (i64) and fractional ones (f32, e.g. interpolated positions).
    Tensor ipos = Tensor::empty({L}, DType::i64);
    for (int64_t l = 0; l < L; ++l) ipos.mutable_data<int64_t>()[l] = l * 53;  // up to 4028
    const Tensor fpos = test::random_tensor({L}, 1, -10.f, 500.f);
    for (const Tensor& p : {ipos, fpos}) {
      const auto pv = test::to_doubles(p);
      std::vector<std::vector<double>> pos;
      for (double v : pv) pos.push_back({v});
      std::vector<double> c, s;
      table_ref(pos, {dim}, 10000.0, &c, &s);
      const ops::RopeTable t = ops::rope_table_1d(p, dim, 10000.f);
      ASSERT_EQ(t.cos.shape(), Shape({L, dim / 2}));
      EXPECT_TRUE(test::all_close(t.cos, c, 6e-8, 0));
      EXPECT_TRUE(test::all_close(t.sin, s, 6e-8, 0));
    }
  }
}

// Flux: ids (L, 3) with axes_dims (16, 56, 56), theta 10000; Wan-like (44, 42, 42) too.
TEST(Rope, TableMultiAxis) {
  for (const std::vector<int>& dims :
       {std::vector<int>{16, 56, 56}, std::vector<int>{44, 42, 42}, std::vector<int>{2}}) {
    const int64_t L = 33, A = static_cast<int64_t>(dims.size());
    Tensor ids = Tensor::empty({L, A}, DType::i64);
    for (int64_t l = 0; l < L; ++l)
      for (int64_t a = 0; a < A; ++a) ids.mutable_data<int64_t>()[l * A + a] = (l * (a + 3)) % 64;
    std::vector<std::vector<double>> pos(L, std::vector<double>(A));
    for (int64_t l = 0; l < L; ++l)
      for (int64_t a = 0; a < A; ++a) pos[l][a] = static_cast<double>((l * (a + 3)) % 64);
    std::vector<double> c, s;
    table_ref(pos, dims, 10000.0, &c, &s);
    const ops::RopeTable t = ops::rope_table(ids, dims, 10000.f);
    EXPECT_TRUE(test::all_close(t.cos, c, 6e-8, 0));
    EXPECT_TRUE(test::all_close(t.sin, s, 6e-8, 0));
    // f32 ids give the same table (diffusers converts ids with .float()).
    const ops::RopeTable tf = ops::rope_table(ids.to(DType::f32), dims, 10000.f);
    EXPECT_TRUE(test::all_close(tf.cos, test::to_doubles(t.cos), 0, 0));
  }
}

// out for pair (i0, i1) of each row: (x0 c - x1 s, x0 s + x1 c).
std::vector<double> apply_ref(const Tensor& x, const ops::RopeTable& t, ops::RopeLayout layout,
                              int seq_dim) {
  const auto xv = test::to_doubles(x), cv = test::to_doubles(t.cos), sv = test::to_doubles(t.sin);
  const int64_t D = x.size(3), half = D / 2;
  std::vector<double> r(xv.size());
  for (int64_t b = 0; b < x.size(0); ++b)
    for (int64_t p1 = 0; p1 < x.size(1); ++p1)
      for (int64_t p2 = 0; p2 < x.size(2); ++p2) {
        const int64_t l = seq_dim == 1 ? p1 : p2;
        const int64_t base = ((b * x.size(1) + p1) * x.size(2) + p2) * D;
        for (int64_t i = 0; i < half; ++i) {
          const bool il = layout == ops::RopeLayout::interleaved;
          const int64_t i0 = il ? 2 * i : i, i1 = il ? 2 * i + 1 : i + half;
          const double c = cv[l * half + i], s = sv[l * half + i];
          r[base + i0] = xv[base + i0] * c - xv[base + i1] * s;
          r[base + i1] = xv[base + i0] * s + xv[base + i1] * c;
        }
      }
  return r;
}

TEST(Rope, Apply) {
  for (auto layout : {ops::RopeLayout::interleaved, ops::RopeLayout::split_half})
    for (int seq_dim : {1, 2})
      for (int64_t D : {2, 8, 40, 128}) {
        SCOPED_TRACE(::testing::Message() << "layout " << static_cast<int>(layout) << " seq_dim "
                                          << seq_dim << " D " << D);
        const int64_t L = 33, H = 3;
        const Shape s = seq_dim == 2 ? Shape{2, H, L, D} : Shape{2, L, H, D};
        const Tensor x = test::random_tensor(s, 40 + D);
        Tensor pos = Tensor::empty({L}, DType::i64);
        for (int64_t l = 0; l < L; ++l) pos.mutable_data<int64_t>()[l] = 7 * l;
        const ops::RopeTable t = ops::rope_table_1d(pos, static_cast<int>(D), 10000.f);
        const Tensor out = ops::apply_rope(x, t, layout, seq_dim);
        ASSERT_EQ(out.shape(), s);
        EXPECT_TRUE(test::all_close(out, apply_ref(x, t, layout, seq_dim), 3e-7, 0));
      }
  // A strided input: (B, L, H, D) viewed as (B, H, L, D) with seq_dim 2.
  const Tensor xs = test::random_tensor({1, 31, 4, 16}, 50).transpose(1, 2);
  const ops::RopeTable t = ops::rope_table_1d(test::random_tensor({31}, 51, 0.f, 100.f), 16, 500.f);
  EXPECT_TRUE(test::all_close(ops::apply_rope(xs, t, ops::RopeLayout::interleaved, 2),
                              apply_ref(xs.contiguous(), t, ops::RopeLayout::interleaved, 2), 3e-7,
                              0));
}

// Rotation preserves each pair's norm and position 0 is the identity.
TEST(Rope, Properties) {
  const Tensor x = test::random_tensor({1, 2, 5, 8}, 60);
  const ops::RopeTable t = ops::rope_table_1d(Tensor::zeros({5}, DType::i64), 8, 10000.f);
  EXPECT_TRUE(test::all_close(ops::apply_rope(x, t, ops::RopeLayout::split_half),
                              test::to_doubles(x), 0, 0));
}

using test::expect_error;

TEST(Rope, Validation) {
  const Tensor pos = Tensor::zeros({5}, DType::i64);
  expect_error([&] { ops::rope_table_1d(pos, 7, 10000.f); }, "[rope_table_1d] dim 7");
  expect_error(
      [&] {
        ops::rope_table_1d(pos.reshape({5, 1}), 8, 10000.f);
      },
      "[rope_table_1d] positions has shape (5, 1)");
  const std::vector<int> dims{4, 4};
  expect_error(
      [&] {
        ops::rope_table(Tensor::zeros({5, 3}, DType::i64), dims, 10000.f);
      },
      "[rope_table] axes_dims has 2 entries");
  const ops::RopeTable t = ops::rope_table_1d(pos, 8, 10000.f);
  expect_error(
      [&] {
        ops::apply_rope(test::random_tensor({1, 2, 6, 8}, 1), t, ops::RopeLayout::interleaved);
      },
      "[apply_rope] table.cos has shape (5, 4)");
  expect_error(
      [&] {
        ops::apply_rope(test::random_tensor({1, 2, 5, 8}, 1), t, ops::RopeLayout::interleaved, 3);
      },
      "[apply_rope] seq_dim 3");
}

}  // namespace
}  // namespace kiln
