// Every malformed safetensors input is a Status::format_error naming the file and the problem;
// none may crash or read out of bounds (the fuzz target checks the same code under ASan).
#include <gtest/gtest.h>

#include "io_test_util.hpp"
#include "kiln/io/safetensors.hpp"

namespace kiln::test {
namespace {

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A file with `header` as its JSON and `data_bytes` zero bytes of data.
std::string file_with(const std::string& header, size_t data_bytes = 0) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

struct Case {
  const char* what;
  std::string bytes;
  std::vector<std::string> message;  // substrings the message must contain
  Status status = Status::format_error;
};

std::vector<Case> cases() {
  const std::string ok_entry = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::string png = "\x89PNG\r\n\x1a\n";
  png += std::string("\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0", 21);
  return {
      {"empty file", "", {"0 bytes", "too short"}},
      {"shorter than 8 bytes", std::string("\x05\0\0", 3), {"3 bytes", "too short"}},
      {"header longer than file", le64(100) + "{}", {"header length 100", "exceeds the 2 bytes"}},
      {"absurd header length", le64(uint64_t{1} << 62) + "{}", {"exceeds the limit"}},
      {"header just over 100 MB", le64(100'000'001) + "{}", {"exceeds the limit of 100000000"}},
      {"header not JSON", file_with("{\"a\": nope}"), {"not valid JSON"}},
      {"header truncated JSON", file_with("{\"a\": {\"dtype\""), {"not valid JSON"}},
      {"header invalid UTF-8", file_with("{\"\xff\xfe\": 1}"), {"not valid JSON"}},
      {"header is an array", file_with("[1,2]"), {"header is a JSON array, expected an object"}},
      {"header is a number", file_with("42"), {"JSON number"}},
      {"entry not an object", file_with(R"({"a": 3})"), {"tensor 'a'", "expected an object"}},
      {"missing dtype",
       file_with(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor 'a'", "missing \"dtype\""}},
      {"missing shape",
       file_with(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4),
       {"tensor 'a'", "missing \"shape\""}},
      {"missing data_offsets",
       file_with(R"({"a":{"dtype":"F32","shape":[1]}})", 4),
       {"tensor 'a'", "missing \"data_offsets\""}},
      {"dtype not a string",
       file_with(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4),
       {"\"dtype\" is a JSON number"}},
      {"unknown dtype",
       file_with(R"({"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", 4),
       {"tensor 'a'", "unknown dtype \"F17\""}},
      {"spec dtype kiln lacks",
       file_with(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8),
       {"dtype F64 is not supported"},
       Status::unsupported},
      {"negative dim",
       file_with(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
       {"shape[0] = -2 is negative"}},
      {"fractional dim",
       file_with(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}})", 10),
       {"shape[0] must be a non-negative integer, got 2.5"}},
      {"string dim",
       file_with(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8),
       {"shape[0] must be a non-negative integer, got string"}},
      {"shape not an array",
       file_with(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8),
       {"\"shape\" is a JSON number"}},
      {"huge dim",
       file_with(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,8]}})", 8),
       {"is too large"}},
      {"numel overflow",
       file_with(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                 8),
       {"tensor 'a'", "overflows"}},
      {"byte size overflow",
       file_with(R"({"a":{"dtype":"I64","shape":[2305843009213693952],"data_offsets":[0,8]}})", 8),
       {"overflows"}},
      {"rank too large",
       file_with(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4),
       {"rank 7"},
       Status::unsupported},
      {"offsets not a pair",
       file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
       {"array of 2 integers"}},
      {"offsets not integers",
       file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,"8"]}})", 8),
       {"data_offsets[1] must be a non-negative integer"}},
      {"offsets negative",
       file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8),
       {"data_offsets[0] = -8 is negative"}},
      {"offsets decreasing",
       file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
       {"end before they begin"}},
      {"byte size != numel * dtype size",
       file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,6]}})", 8),
       {"span 6 bytes but F32 (2) needs 8"}},
      {"offsets past the data",
       file_with("{" + ok_entry + "}", 7),
       {"tensor 'a'", "run past the end of the 7-byte data section"}},
      {"offsets far past the data",
       file_with(
           R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[18446744073709551611,18446744073709551615]}})",
           8),
       {"is too large"}},
      {"overlapping tensors",
       file_with("{" + ok_entry + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
       {"tensors 'a' [0, 8) and 'b' [4, 12) overlap"}},
      {"identical ranges",
       file_with("{" + ok_entry + R"(,"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8),
       {"overlap"}},
      {"metadata not an object",
       file_with(R"({"__metadata__":[1]})"),
       {"\"__metadata__\" is a JSON array"}},
      {"metadata value not a string",
       file_with(R"({"__metadata__":{"k":1}})"),
       {"\"__metadata__\" value for \"k\" is a JSON number"}},
      {"PNG file", png, {"PNG image"}},
      {"text file", "hello, this is a text file\n", {"text file"}},
      {"JSON file", R"({"weight_map": {"a": "b.safetensors"}})", {"JSON text file"}},
      {"zip (torch .pt)",
       std::string("PK\x03\x04\x14\0\0\0\0\0", 10) + std::string(32, 'x'),
       {"zip archive"}},
      {"pickle (torch .bin)",
       std::string("\x80\x02}q\0(X\x05\0\0\0", 11) + std::string(32, 'y'),
       {"pickle"}},
  };
}

TEST(SafetensorsMalformed, EveryCaseIsAClearErrorNamingTheFile) {
  TempDir dir;
  int i = 0;
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.what);
    const auto path = dir.path / ("case" + std::to_string(i++) + ".safetensors");
    write_bytes(path, c.bytes);
    auto parts = c.message;
    parts.push_back(path.filename().string());
    EXPECT_TRUE(throws_error([&] { io::SafetensorsFile::open(path); }, c.status, parts));
  }
}

TEST(SafetensorsMalformed, PureParserAgreesAndNeverReadsPastTheSpan) {
  for (const auto& c : cases()) {
    SCOPED_TRACE(c.what);
    // Exactly-sized heap copy: ASan builds catch any read one past the end.
    std::vector<uint8_t> bytes(c.bytes.begin(), c.bytes.end());
    std::span<const uint8_t> span(bytes);
    EXPECT_TRUE(throws_error(
        [&] {
          auto h = io::parse_safetensors_header(span, "buf");
          io::validate_safetensors_data(h, span.size(), "buf");
        },
        c.status, {"[buf]"}));
  }
}

TEST(SafetensorsMalformed, ValidEdgeCasesAreAccepted) {
  // Header padded with spaces, an empty header object, empty tensors at the same offset, a gap
  // before the data (tolerated: reading never depends on the data being contiguous).
  auto h =
      io::parse_safetensors_header(std::vector<uint8_t>{'\x02', 0, 0, 0, 0, 0, 0, 0, '{', '}'});
  EXPECT_TRUE(h.tensors.empty());
  std::string hdr = R"({"e":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},)"
                    R"("f":{"dtype":"F16","shape":[0],"data_offsets":[4,4]},)"
                    R"("g":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}    )";
  std::string file = file_with(hdr, 4);
  std::vector<uint8_t> bytes(file.begin(), file.end());
  auto h2 = io::parse_safetensors_header(bytes);
  io::validate_safetensors_data(h2, bytes.size());
  ASSERT_EQ(h2.tensors.size(), 3u);
  EXPECT_EQ(h2.find("e")->shape, Shape({0, 5}));
  EXPECT_EQ(h2.find("g")->end, 4u);
  EXPECT_EQ(h2.find("zz"), nullptr);
  EXPECT_EQ(h2.data_start, 8 + hdr.size());
  // A shape whose non-zero dims would overflow is refused even next to a zero dim: strides are
  // products of trailing dims and must stay representable.
  std::string big =
      file_with(R"({"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})");
  std::vector<uint8_t> bb(big.begin(), big.end());
  EXPECT_TRUE(
      throws_error([&] { io::parse_safetensors_header(bb); }, Status::format_error, {"overflows"}));
}

}  // namespace
}  // namespace kiln::test
