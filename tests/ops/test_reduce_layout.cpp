#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kiln/ops/ops.hpp"
#include "test_support.hpp"

using namespace kiln;

TEST(Reduce, SumMeanMaxOverDimSets) {
  const int64_t A = 3, B = 7, C = 33;
  Tensor x = test::random_tensor({A, B, C}, 1);
  auto xd = test::to_doubles(x);
  int dims[] = {0, 2};
  std::vector<double> s(B, 0), mx(B, -1e9);
  for (int a = 0; a < A; ++a)
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < C; ++c) {
        double v = xd[(a * B + b) * C + c];
        s[b] += v;
        mx[b] = std::max(mx[b], v);
      }
  EXPECT_TRUE(test::all_close(ops::sum(x, dims), s, 1e-5, 1e-6));
  std::vector<double> m(B);
  for (int b = 0; b < B; ++b) m[b] = s[b] / (A * C);
  Tensor mk = ops::mean(x, dims, true);
  EXPECT_EQ(mk.shape(), Shape({1, B, 1}));
  EXPECT_TRUE(test::all_close(mk, m, 1e-6, 1e-6));
  EXPECT_TRUE(test::all_close(ops::amax(x, dims), mx, 0, 0));
  // No dims: everything.
  double total = 0;
  for (double v : xd) total += v;
  EXPECT_TRUE(test::all_close(ops::sum(x, {}), {total}, 1e-4, 1e-6));
  int bad[] = {1, -2};
  EXPECT_THROW(ops::sum(x, bad), Error);
  int out_of_range[] = {3};
  EXPECT_THROW(ops::mean(x, out_of_range), Error);
}

TEST(Layout, ConcatSplitChunkRoundTrip) {
  Tensor a = test::random_tensor({2, 3, 5}, 1), b = test::random_tensor({2, 4, 5}, 2);
  Tensor both[] = {a, b.transpose(0, 0)};
  Tensor c = ops::concat(both, 1);
  EXPECT_EQ(c.shape(), Shape({2, 7, 5}));
  int64_t sizes[] = {3, 4};
  auto parts = ops::split(c, sizes, 1);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].storage(), c.storage());  // views
  EXPECT_TRUE(test::all_close(parts[0], test::to_doubles(a), 0, 0));
  EXPECT_TRUE(test::all_close(parts[1], test::to_doubles(b), 0, 0));
  // torch.chunk(7 along dim, 3) -> 3, 3, 1
  auto ch = ops::chunk(c, 3, 1);
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch[2].size(1), 1);
  // torch.chunk(5, 4) -> sizes 2, 2, 1 (only three chunks)
  EXPECT_EQ(ops::chunk(a, 4, 2).size(), 3u);
  // More chunks than elements: one element each (the ceil division must not overflow).
  EXPECT_EQ(ops::chunk(a, std::numeric_limits<int64_t>::max(), 2).size(), 5u);
  // Concat of permuted (non-contiguous) inputs.
  Tensor p = a.permute({2, 1, 0});  // (5, 3, 2)
  Tensor pp[] = {p, p};
  Tensor cc = ops::concat(pp, 2);
  auto pd = test::to_doubles(p), cd = test::to_doubles(cc);
  EXPECT_EQ(cd[0], pd[0]);
  EXPECT_EQ(cd[2], pd[0]);
  EXPECT_EQ(cd[3], pd[1]);
  Tensor mismatch[] = {a, test::random_tensor({3, 3, 5}, 3)};
  EXPECT_THROW(ops::concat(mismatch, 1), Error);
  int64_t wrong[] = {3, 3};
  EXPECT_THROW(ops::split(c, wrong, 1), Error);
}

TEST(Layout, EmbeddingGathersRowsAndRejectsBadIds) {
  Tensor table = test::random_tensor({7, 5}, 3);
  auto td = test::to_doubles(table);
  Tensor ids = Tensor::empty({2, 3}, DType::i64);
  const int64_t picks[] = {6, 0, 3, 3, 1, 6};
  for (int i = 0; i < 6; ++i) ids.mutable_data<int64_t>()[i] = picks[i];
  std::vector<double> ref;
  for (int64_t id : picks)
    for (int d = 0; d < 5; ++d) ref.push_back(td[id * 5 + d]);
  Tensor out = ops::embedding(table.to(DType::bf16), ids.to(DType::i32));
  EXPECT_EQ(out.shape(), Shape({2, 3, 5}));
  auto bf = test::to_doubles(table.to(DType::bf16));
  std::vector<double> ref_bf;
  for (int64_t id : picks)
    for (int d = 0; d < 5; ++d) ref_bf.push_back(bf[id * 5 + d]);
  EXPECT_TRUE(test::all_close(out, ref_bf, 0, 0));
  EXPECT_TRUE(test::all_close(ops::embedding(table, ids), ref, 0, 0));
  ids.mutable_data<int64_t>()[4] = 7;
  test::expect_error([&] { ops::embedding(table, ids); }, "id 7 at flat index 4");
  ids.mutable_data<int64_t>()[4] = -1;
  test::expect_error([&] { ops::embedding(table, ids); }, "id -1");
  test::expect_error([&] { ops::embedding(table, ids.to(DType::f32)); }, "i32 or i64");
}
