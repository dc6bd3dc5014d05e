// safetensors reader/writer: fixtures from the Python `safetensors` package read value-exactly,
// round trips of every dtype, zero-copy views, atomic writes, mapped-file errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "io_test_util.hpp"
#include "kiln/io/mapped_file.hpp"
#include "kiln/io/safetensors.hpp"

namespace kiln::test {
namespace {

using io::SafetensorsFile;

TEST(Safetensors, ReadsReferenceFixtureExactly) {
  auto f = SafetensorsFile::open(io_data("mixed.safetensors"));
  auto exp = read_json_file(io_data("mixed.expected.json"));
  const auto& tensors = exp["tensors"];
  std::vector<std::string> want_names;
  for (const auto& [k, v] : tensors.items()) want_names.push_back(k);
  EXPECT_EQ(f->names(), want_names);
  for (const auto& [name, e] : tensors.items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f->has(name));
    EXPECT_TRUE(matches_expected(f->get(name), e));
  }
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("source"), exp["metadata"]["source"].get<std::string>());
  EXPECT_EQ(f->metadata().size(), 2u);
}

TEST(Safetensors, SpotValuesOfFixture) {
  // A few values written out by hand so a broken expected.json cannot hide a decoder bug.
  auto f = SafetensorsFile::open(io_data("mixed.safetensors"));
  Tensor s = f->get("scalar");
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.item(), 2.5f);
  Tensor e = f->get("empty");
  EXPECT_EQ(e.shape(), Shape({0, 3}));
  EXPECT_EQ(e.numel(), 0);
  Tensor i = f->get("idx_i64");
  EXPECT_EQ(i.data<int64_t>()[2], (int64_t{1} << 53) + 1);
  Tensor f8 = f->get("w_f8_e4m3");
  EXPECT_EQ(f8.dtype(), DType::f8_e4m3);
  auto v = to_doubles(f8);
  EXPECT_EQ(v[3], 448.0);
  EXPECT_EQ(v[5], -std::ldexp(1.0, -9));  // smallest e4m3 subnormal
  EXPECT_EQ(v[6], 3.25);                  // 3.3 rounds to 3.25 in e4m3
  auto h = to_doubles(f->get("w_f16"));
  EXPECT_EQ(h[2], 65504.0);
  EXPECT_TRUE(std::signbit(h[4]));
  EXPECT_EQ(f->info("w_bf16").shape, Shape({3, 5}));
  EXPECT_EQ(f->info("w_bf16").dtype, DType::bf16);
  EXPECT_EQ(f->info("w_bf16").file, io_data("mixed.safetensors"));
}

TEST(Safetensors, ViewsAreZeroCopyReadOnlyAndOutliveTheReader) {
  Tensor t;
  const void* base = nullptr;
  {
    auto f = SafetensorsFile::open(io_data("mixed.safetensors"));
    t = f->get("w_f32");
    Tensor again = f->get("w_f32");
    EXPECT_EQ(t.raw_data(), again.raw_data());  // same bytes of the mapping
    EXPECT_EQ(t.storage(), again.storage());
    base = t.storage()->data();
    EXPECT_EQ(static_cast<size_t>(static_cast<const char*>(t.raw_data()) -
                                  static_cast<const char*>(base)),
              f->header().data_start + f->header().find("w_f32")->begin);
  }
  // The reader is gone; the view keeps the mapping alive.
  EXPECT_TRUE(t.storage()->read_only());
  EXPECT_EQ(to_doubles(t)[1], static_cast<double>(-1e30f));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 4, 0u);
  EXPECT_TRUE(throws_error([&] { t.mutable_raw_data(); }, Status::invalid_argument, {"read-only"}));
}

TEST(Safetensors, MissingTensorIsNotFound) {
  auto f = SafetensorsFile::open(io_data("mixed.safetensors"));
  EXPECT_FALSE(f->has("nope"));
  EXPECT_TRUE(
      throws_error([&] { f->get("nope"); }, Status::not_found, {"nope", "mixed.safetensors"}));
  EXPECT_TRUE(throws_error([&] { f->info("nope"); }, Status::not_found, {"nope"}));
}

// Round trip of every dtype with awkward sizes: bytes in == bytes out, values exact.
TEST(Safetensors, RoundTripEveryDType) {
  TempDir dir;
  std::map<std::string, Tensor> in;
  int k = 0;
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::f8_e5m2, DType::i8,
                  DType::u8, DType::i32, DType::i64, DType::boolean}) {
    // 33 and 7 elements: odd byte counts for 1- and 2-byte types, so alignment matters.
    Shape shape = (k % 2) ? Shape({3, 11}) : Shape({7});
    Tensor x = Tensor::empty(shape, t);
    auto* p = static_cast<uint8_t*>(x.mutable_raw_data());
    for (size_t i = 0; i < x.nbytes(); ++i) p[i] = static_cast<uint8_t>(i * 37 + k * 11 + 1);
    if (t == DType::boolean) {
      for (size_t i = 0; i < x.nbytes(); ++i) p[i] &= 1;
    }
    in[std::string("t_") + std::string(dtype_name(t))] = x;
    ++k;
  }
  in["zero_d"] = Tensor::from_f32(Shape{}, {-0.5f});
  in["empty"] = Tensor::empty({4, 0, 2}, DType::bf16);
  in["transposed"] = Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6}).transpose(0, 1);
  const auto path = dir.path / "rt.safetensors";
  io::save_safetensors(path, in, {{"b", "2"}, {"a", "1"}});

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->names().size(), in.size());
  EXPECT_EQ(f->metadata(), (std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(f->header().data_start % 8, 0u);
  for (const auto& [name, x] : in) {
    SCOPED_TRACE(name);
    Tensor y = f->get(name);
    EXPECT_EQ(y.dtype(), x.dtype());
    EXPECT_EQ(y.shape(), x.shape());
    // Written row-major: every tensor starts at a multiple of its element size, so it is a view.
    EXPECT_EQ(y.storage(), f->get(f->names()[0]).storage());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(y.raw_data()) % dtype_size(y.dtype()), 0u);
    Tensor xc = x.contiguous();
    ASSERT_EQ(y.nbytes(), xc.nbytes());
    if (xc.nbytes()) {
      EXPECT_EQ(std::memcmp(y.raw_data(), xc.raw_data(), xc.nbytes()), 0);
    }
  }
  EXPECT_EQ(to_doubles(f->get("transposed")), (std::vector<double>{1, 4, 2, 5, 3, 6}));
}

TEST(Safetensors, WriterIsDeterministicAndAtomic) {
  TempDir dir;
  std::map<std::string, Tensor> in{{"b", Tensor::from_f32({2}, {1, 2})},
                                   {"a", Tensor::from_f32({3}, {3, 4, 5}).to(DType::f16)}};
  auto bytes1 = io::serialize_safetensors(in, {{"k", "v"}});
  auto bytes2 = io::serialize_safetensors(in, {{"k", "v"}});
  EXPECT_EQ(bytes1, bytes2);
  // f32 ("b") before f16 ("a"): larger elements first keeps everything aligned without gaps.
  auto h = io::parse_safetensors_header(bytes1);
  EXPECT_EQ(h.find("b")->begin, 0u);
  EXPECT_EQ(h.find("a")->begin, 8u);
  EXPECT_EQ(bytes1.size(), h.data_start + 14);

  const auto path = dir.path / "w.safetensors";
  write_bytes(path, "old contents");
  io::save_safetensors(path, in, {{"k", "v"}});
  std::string on_disk = read_bytes(path);
  EXPECT_EQ(std::vector<uint8_t>(on_disk.begin(), on_disk.end()), bytes1);
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);  // no temporary left behind

  EXPECT_TRUE(
      throws_error([&] { io::save_safetensors(dir.path / "no" / "such" / "x.safetensors", in); },
                   Status::not_found, {"x.safetensors"}));
  EXPECT_TRUE(throws_error(
      [&] {
        io::save_safetensors(dir.path / "y.safetensors", {{"__metadata__", in["a"]}});
      },
      Status::invalid_argument, {"reserved"}));
  EXPECT_TRUE(throws_error(
      [&] {
        io::save_safetensors(dir.path / "z.safetensors", {{"u", Tensor()}});
      },
      Status::invalid_argument, {"'u'", "undefined"}));
  EXPECT_FALSE(std::filesystem::exists(dir.path / "z.safetensors"));
}

TEST(Safetensors, PythonWrittenAndKilnWrittenAgreeOnValues) {
  // Re-save the reference fixture with kiln and read it back: identical tensors and metadata.
  TempDir dir;
  auto ref = SafetensorsFile::open(io_data("mixed.safetensors"));
  std::map<std::string, Tensor> all;
  for (const auto& n : ref->names()) all[n] = ref->get(n);
  io::save_safetensors(dir.path / "copy.safetensors", all, ref->metadata());
  auto f = SafetensorsFile::open(dir.path / "copy.safetensors");
  auto exp = read_json_file(io_data("mixed.expected.json"));
  for (const auto& [name, e] : exp["tensors"].items()) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(matches_expected(f->get(name), e));
  }
  EXPECT_EQ(f->metadata(), ref->metadata());
}

TEST(MappedFile, ErrorsNameThePath) {
  TempDir dir;
  EXPECT_TRUE(throws_error([&] { io::MappedFile::open(dir.path / "absent.bin"); },
                           Status::not_found, {"absent.bin", "No such file"}));
  EXPECT_TRUE(throws_error([&] { io::MappedFile::open(dir.path); }, Status::io_error,
                           {dir.path.string(), "not a regular file"}));
  write_bytes(dir.path / "empty", "");
  auto m = io::MappedFile::open(dir.path / "empty");
  EXPECT_EQ(m->size(), 0u);
  EXPECT_EQ(m->storage()->nbytes(), 0u);
  write_bytes(dir.path / "abc", "abc");
  auto m2 = io::MappedFile::open(dir.path / "abc");
  ASSERT_EQ(m2->size(), 3u);
  EXPECT_EQ(m2->data()[2], 'c');
  auto s = m2->storage();
  m2.reset();  // the storage keeps the mapping alive
  EXPECT_EQ(static_cast<const char*>(s->data())[0], 'a');
  EXPECT_TRUE(s->read_only());
}

TEST(Safetensors, MisalignedTensorFromForeignWriterIsCopiedNotMisread) {
  // An f32 at data offset 1 (legal per the format, never produced by the reference writer).
  std::string header = R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("y":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  while ((8 + header.size()) % 8) header += ' ';
  std::string file(8, '\0');
  file[0] = static_cast<char>(header.size());
  file += header;
  file += '\x07';
  float v[2] = {1.5f, -2.0f};
  file.append(reinterpret_cast<const char*>(v), 8);
  TempDir dir;
  write_bytes(dir.path / "m.safetensors", file);
  auto f = SafetensorsFile::open(dir.path / "m.safetensors");
  Tensor y = f->get("y");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y.raw_data()) % 4, 0u);
  EXPECT_EQ(to_doubles(y), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(f->get("x").data<uint8_t>()[0], 7);
}

}  // namespace
}  // namespace kiln::test
