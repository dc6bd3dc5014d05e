#include "kiln/core/storage.hpp"

namespace kiln {

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  check_device(device);
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = backend_for(device).allocate(device.index, nbytes);
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->owned_ = true;
  return s;
}

std::shared_ptr<Storage> Storage::borrow(void* data, size_t nbytes, Device device,
                                         std::shared_ptr<const void> keepalive, bool read_only) {
  std::shared_ptr<Storage> s(new Storage());
  s->data_ = data;
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->read_only_ = read_only;
  s->keepalive_ = std::move(keepalive);
  return s;
}

Storage::~Storage() {
  if (owned_ && data_) backend_for(device_).deallocate(device_.index, data_, nbytes_);
}

}  // namespace kiln
