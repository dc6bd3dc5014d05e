#include "kiln/io/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kiln/core/error.hpp"

namespace kiln::io {

namespace {

// Closes the descriptor on every path out of open(); the mapping outlives it (POSIX keeps a
// mapping valid after close).
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void fail_errno(int err, const char* what, const std::filesystem::path& path) {
  Status s = (err == ENOENT || err == ENOTDIR) ? Status::not_found : Status::io_error;
  fail(s, str(what, ": ", std::strerror(err)), path.string());
}

}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(errno, "cannot open file", path);
  FdGuard guard{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) fail_errno(errno, "cannot stat file", path);
  KILN_CHECK(S_ISREG(st.st_mode), Status::io_error, path.string(),
             "not a regular file (a directory or device was given where a file was expected)");

  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  // mmap of length 0 is EINVAL; an empty file is legal and simply has no bytes.
  if (m->size_ == 0) return m;

  void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) fail_errno(errno, "cannot mmap file", path);
  m->data_ = static_cast<const uint8_t*>(p);
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::shared_ptr<Storage> MappedFile::storage() const {
  // Storage's data pointer is non-const for owned buffers; read_only=true makes Tensor refuse
  // writes, and the pages are PROT_READ anyway.
  return Storage::borrow(const_cast<uint8_t*>(data_), size_, Device::cpu(), shared_from_this(),
                         /*read_only=*/true);
}

}  // namespace kiln::io
