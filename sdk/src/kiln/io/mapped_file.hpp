// Read-only memory mapping of a whole file. Weight tensors are views into it (zero-copy), so
// the mapping is held by shared_ptr and every Storage made from it keeps it alive: a Tensor
// obtained from a checkpoint stays valid after the reader that produced it is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

#include "kiln/core/storage.hpp"

namespace kiln::io {

class MappedFile : public std::enable_shared_from_this<MappedFile> {
 public:
  // Maps `path` read-only. Throws Status::not_found when the file does not exist and
  // Status::io_error when it cannot be opened, stat'ed or mapped (or is a directory); the
  // message names the path and the OS reason. An empty file maps to size() == 0, data() == null.
  static std::shared_ptr<const MappedFile> open(const std::filesystem::path& path);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

  // The whole mapping as read-only CPU Storage whose keep-alive is this mapping.
  std::shared_ptr<Storage> storage() const;

 private:
  MappedFile() = default;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kiln::io
