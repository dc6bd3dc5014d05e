// libFuzzer target for the safetensors header parser: any input must either parse into a header
// whose every tensor lies inside the input, or fail with a kiln::Error of format_error /
// unsupported. Anything else (a crash, an ASan/UBSan report, another exception type, an
// invariant broken below) is a finding.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/error.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/io/safetensors.hpp"

namespace {

// Reads go here so the compiler cannot drop them.
volatile uint8_t g_sink;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// A header that parsed must describe readable tensors: build each one as the reader does (a
// view of the input bytes) and touch its first and last element, so ASan sees any range error.
void exercise(const kiln::io::SafetensorsHeader& h, const uint8_t* data, size_t size) {
  auto storage = kiln::Storage::borrow(const_cast<uint8_t*>(data), size, kiln::Device::cpu(),
                                       nullptr, /*read_only=*/true);
  uint64_t total = 0;
  for (const auto& e : h.tensors) {
    check(e.begin <= e.end && h.data_start + e.end <= size);
    check(static_cast<int64_t>(e.end - e.begin) == kiln::dtype_nbytes(e.dtype, e.numel));
    kiln::Tensor t = kiln::Tensor::from_storage(storage, h.data_start + e.begin, e.shape, e.dtype);
    check(t.numel() == e.numel);
    if (t.numel() > 0) {
      // Byte reads only: the input has no alignment guarantee (the reader copies misaligned
      // tensors; here only the bounds are under test).
      const auto* p = static_cast<const uint8_t*>(t.raw_data());
      g_sink = p[0];
      g_sink = p[t.nbytes() - 1];
    }
    total += e.end - e.begin;
  }

  // Round trip through the writer: same names, dtypes, shapes, metadata and bytes.
  if (total > (1u << 20)) return;
  std::map<std::string, kiln::Tensor> tensors;
  for (const auto& e : h.tensors) {
    kiln::Tensor t = kiln::Tensor::empty(e.shape, e.dtype);
    if (e.end > e.begin)
      std::memcpy(t.mutable_raw_data(), data + h.data_start + e.begin, e.end - e.begin);
    tensors.emplace(e.name, t);
  }
  std::vector<uint8_t> out = kiln::io::serialize_safetensors(tensors, h.metadata);
  auto h2 = kiln::io::parse_safetensors_header(out, "roundtrip");
  kiln::io::validate_safetensors_data(h2, out.size(), "roundtrip");
  check(h2.metadata == h.metadata && h2.tensors.size() == h.tensors.size());
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    const auto &a = h.tensors[i], &b = h2.tensors[i];
    check(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape);
    check(std::memcmp(data + h.data_start + a.begin, out.data() + h2.data_start + b.begin,
                      a.end - a.begin) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto h = kiln::io::parse_safetensors_header(std::span<const uint8_t>(data, size), "fuzz");
    kiln::io::validate_safetensors_data(h, size, "fuzz");
    exercise(h, data, size);
  } catch (const kiln::Error& e) {
    // Every rejection of user input must be one of these; internal/invalid_argument would mean
    // a check inside kiln caught what the parser should have.
    if (e.code() != kiln::Status::format_error && e.code() != kiln::Status::unsupported)
      std::abort();
  }
  return 0;
}
