// safetensors reading and writing.
//
// Ref: huggingface/safetensors README, "Format": 8 bytes little-endian u64 N, then N bytes of
// UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}
// (the header may be padded with spaces), then the data section; offsets are relative to the
// start of the data section, tensors are row-major and little-endian.
//
// Reading maps the file once and parses the header once; tensors are zero-copy views of the
// mapping made on request. Every malformed input is a Status::format_error naming the file and
// the problem; nothing in a file can make the reader read out of bounds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/io/mapped_file.hpp"
#include "kiln/io/weight_source.hpp"

namespace kiln::io {

// The header refuses lengths above this (the reference implementation's limit is the same
// order: 100 MB); a real header is a few hundred KB even for 10k-tensor checkpoints.
constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  int64_t numel = 0;
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
};

struct SafetensorsHeader {
  uint64_t header_bytes = 0;              // N, the JSON length
  uint64_t data_start = 0;                // 8 + N: file offset of the data section
  std::vector<SafetensorsEntry> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;

  // nullptr when absent. Binary search over the sorted entries.
  const SafetensorsEntry* find(std::string_view name) const;
};

// Parses and checks the header at the start of `file_bytes` (at least the 8-byte length and
// the JSON; normally the whole file). Pure: no I/O, no allocation proportional to anything but
// the header. Checks everything the header alone can tell: length, JSON, every entry's dtype,
// shape (rank <= kMaxDims, integers >= 0, no numel overflow), data_offsets (two integers,
// begin <= end, end - begin == numel * dtype size) and that no two tensors overlap. `label`
// (normally the path) is the error context.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file_bytes,
                                           std::string_view label = "<memory>");

// Checks that every tensor of `h` lies inside a file of `file_size` bytes (i.e. within the
// data section of length file_size - data_start). Throws Status::format_error otherwise.
void validate_safetensors_data(const SafetensorsHeader& h, uint64_t file_size,
                               std::string_view label = "<memory>");

// A mapped .safetensors file. Thread-safe after open (everything is const).
class SafetensorsFile final : public WeightSource {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);

  const SafetensorsHeader& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const std::filesystem::path& path() const { return file_->path(); }

  std::vector<std::string> names() const override;
  bool has(std::string_view name) const override;
  TensorInfo info(std::string_view name) const override;
  // A read-only view of the mapping (no copy). A tensor whose offset is not a multiple of its
  // element size (only a non-reference writer produces that) is copied into aligned memory,
  // because typed access to it would be undefined behaviour.
  Tensor get(std::string_view name) const override;
  std::string describe() const override { return path().string(); }

 private:
  SafetensorsFile() = default;
  const SafetensorsEntry& entry(std::string_view name) const;

  std::shared_ptr<const MappedFile> file_;
  std::shared_ptr<Storage> storage_;
  SafetensorsHeader header_;
};

// Writes `tensors` (any device, any strides; each written row-major) and `metadata` to `path`
// atomically: the bytes go to "<path>.tmp.<pid>" which is renamed over `path` only once fully
// written and flushed, so a crash never leaves a truncated checkpoint. The output is
// deterministic: header keys sorted, data ordered by (element size descending, name) so every
// tensor starts at a multiple of its element size, and the header padded with spaces so the
// data section starts at a multiple of 8 (as the reference writer does).
void save_safetensors(const std::filesystem::path& path,
                      const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// The same bytes, in memory (for tests and for callers that stream elsewhere).
std::vector<uint8_t> serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                           const std::map<std::string, std::string>& metadata = {});

}  // namespace kiln::io
