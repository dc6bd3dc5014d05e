// A block of bytes on one device. Owned (allocated through the device backend) or borrowed
// (an mmap of a weight file, a caller's buffer) with a keep-alive handle; borrowed storage from
// a file is read-only and any attempt to write through it is refused by Tensor.
#pragma once

#include <cstddef>
#include <memory>

#include "kiln/core/device.hpp"

namespace kiln {

class Storage {
 public:
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
  // Wraps memory owned elsewhere; `keepalive` holds that owner (e.g. the file mapping).
  static std::shared_ptr<Storage> borrow(void* data, size_t nbytes, Device device,
                                         std::shared_ptr<const void> keepalive, bool read_only);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool read_only() const { return read_only_; }

 private:
  Storage() = default;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool owned_ = false;
  bool read_only_ = false;
  std::shared_ptr<const void> keepalive_;
};

}  // namespace kiln
