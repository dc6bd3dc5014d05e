#include "kiln/io/safetensors.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "kiln/core/error.hpp"

namespace kiln::io {

namespace {

using json = nlohmann::json;

// Data types the safetensors spec defines that kiln has no DType for: a file using them is
// well-formed, so it is refused as unsupported, not as malformed.
constexpr std::string_view kSpecOnlyDTypes[] = {"F64",     "I16",     "U16",     "U32", "U64",
                                                "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",  "C64"};

// A hint for the most common mistake: handing the loader some other kind of file.
std::string sniff_file_kind(std::span<const uint8_t> b) {
  auto starts = [&](std::string_view magic) {
    return b.size() >= magic.size() && std::memcmp(b.data(), magic.data(), magic.size()) == 0;
  };
  if (starts("\x89PNG")) return " (this is a PNG image, not a safetensors file)";
  if (starts("\xff\xd8\xff")) return " (this is a JPEG image, not a safetensors file)";
  if (starts("GGUF")) return " (this is a GGUF file, not a safetensors file)";
  if (starts("PK\x03\x04"))
    return " (this is a zip archive, e.g. a PyTorch .pt/.ckpt pickle checkpoint; convert it to "
           "safetensors)";
  if (b.size() >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5)
    return " (this is a Python pickle, e.g. a PyTorch .bin checkpoint; convert it to safetensors)";
  if (!b.empty() && (b[0] == '{' || b[0] == '['))
    return " (this looks like a JSON text file, not a safetensors file)";
  size_t n = std::min<size_t>(b.size(), 8);
  bool text = n > 0;
  for (size_t i = 0; i < n; ++i)
    text = text && ((b[i] >= 0x20 && b[i] < 0x7f) || b[i] == '\n' || b[i] == '\r' || b[i] == '\t');
  if (text) return " (this looks like a text file, not a safetensors file)";
  return "";
}

template <typename... Args>
[[noreturn]] void bad(std::string_view label, Args&&... parts) {
  fail(Status::format_error, str(std::forward<Args>(parts)...), std::string(label));
}

std::string json_type(const json& j) {
  return j.type_name();
}

// Reads a JSON integer that must be >= 0 and fit in int64; `what` names it for the message.
int64_t non_negative_int(const json& j, std::string_view label, const std::string& what) {
  if (j.is_number_unsigned()) {
    uint64_t v = j.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad(label, what, " = ", v, " is too large");
    return static_cast<int64_t>(v);
  }
  if (j.is_number_integer()) {
    int64_t v = j.get<int64_t>();
    if (v < 0) bad(label, what, " = ", v, " is negative");
    return v;
  }
  if (j.is_number_float()) bad(label, what, " must be a non-negative integer, got ", j.dump());
  bad(label, what, " must be a non-negative integer, got ", json_type(j));
}

SafetensorsEntry parse_entry(const std::string& name, const json& v, std::string_view label) {
  const std::string who = "tensor '" + name + "'";
  if (!v.is_object()) bad(label, who, ": entry is a JSON ", json_type(v), ", expected an object");
  SafetensorsEntry e;
  e.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end()) bad(label, who, ": missing \"dtype\"");
  if (!dt->is_string())
    bad(label, who, ": \"dtype\" is a JSON ", json_type(*dt), ", expected a string");
  const auto& dname = dt->get_ref<const std::string&>();
  if (!dtype_from_safetensors(dname, &e.dtype)) {
    for (auto s : kSpecOnlyDTypes)
      if (dname == s)
        fail(Status::unsupported, str(who, ": dtype ", dname, " is not supported by kiln"),
             std::string(label));
    bad(label, who, ": unknown dtype \"", dname.substr(0, 64), "\"");
  }
  const int64_t esize = dtype_size(e.dtype);

  auto sh = v.find("shape");
  if (sh == v.end()) bad(label, who, ": missing \"shape\"");
  if (!sh->is_array())
    bad(label, who, ": \"shape\" is a JSON ", json_type(*sh), ", expected an array");
  if (sh->size() > static_cast<size_t>(kMaxDims))
    fail(Status::unsupported,
         str(who, ": rank ", sh->size(), " exceeds kiln's maximum of ", kMaxDims),
         std::string(label));
  // The product of the non-zero dims must fit in int64 (and in bytes), so that strides and byte
  // sizes computed from this shape later can never overflow.
  int64_t nonzero_product = 1;
  bool has_zero = false;
  for (size_t i = 0; i < sh->size(); ++i) {
    int64_t d = non_negative_int((*sh)[i], label, str(who, ": shape[", i, "]"));
    e.shape.push_back(d);
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (nonzero_product > std::numeric_limits<int64_t>::max() / esize / d)
      bad(label, who, ": element count of shape ", sh->dump(), " overflows");
    nonzero_product *= d;
  }
  e.numel = has_zero ? 0 : nonzero_product;

  auto off = v.find("data_offsets");
  if (off == v.end()) bad(label, who, ": missing \"data_offsets\"");
  if (!off->is_array() || off->size() != 2)
    bad(label, who, ": \"data_offsets\" must be an array of 2 integers, got ",
        off->dump().substr(0, 80));
  int64_t b = non_negative_int((*off)[0], label, who + ": data_offsets[0]");
  int64_t en = non_negative_int((*off)[1], label, who + ": data_offsets[1]");
  if (en < b) bad(label, who, ": data_offsets [", b, ", ", en, "] end before they begin");
  e.begin = static_cast<uint64_t>(b);
  e.end = static_cast<uint64_t>(en);
  const int64_t need = e.numel * esize;  // cannot overflow: checked above
  if (en - b != need)
    bad(label, who, ": data_offsets [", b, ", ", en, "] span ", en - b, " bytes but ",
        dtype_info(e.dtype).safetensors_name, " ", e.shape.str(), " needs ", need);
  return e;
}

}  // namespace

const SafetensorsEntry* SafetensorsHeader::find(std::string_view name) const {
  auto it =
      std::lower_bound(tensors.begin(), tensors.end(), name,
                       [](const SafetensorsEntry& e, std::string_view n) { return e.name < n; });
  return (it != tensors.end() && it->name == name) ? &*it : nullptr;
}

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> bytes, std::string_view label) {
  if (bytes.size() < 8)
    bad(label, "file is ", bytes.size(),
        " bytes, too short for the 8-byte safetensors header length", sniff_file_kind(bytes));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];  // little-endian, whatever the host
  if (n > kMaxSafetensorsHeaderBytes)
    bad(label, "header length ", n, " exceeds the limit of ", kMaxSafetensorsHeaderBytes, " bytes",
        sniff_file_kind(bytes));
  if (n > bytes.size() - 8)
    bad(label, "header length ", n, " exceeds the ", bytes.size() - 8,
        " bytes that follow it (truncated file?)", sniff_file_kind(bytes));

  SafetensorsHeader h;
  h.header_bytes = n;
  h.data_start = 8 + n;

  json j;
  try {
    const char* p = reinterpret_cast<const char*>(bytes.data() + 8);
    j = json::parse(p, p + n);
  } catch (const json::exception& ex) {
    // nlohmann quotes the offending token, which may be long binary junk: cap the message.
    bad(label, "header is not valid JSON: ", std::string(ex.what()).substr(0, 240),
        sniff_file_kind(bytes));
  }
  if (!j.is_object()) bad(label, "header is a JSON ", json_type(j), ", expected an object");

  h.tensors.reserve(j.size());
  for (const auto& [key, value] : j.items()) {
    if (key == "__metadata__") {
      if (!value.is_object())
        bad(label, "\"__metadata__\" is a JSON ", json_type(value),
            ", expected an object of strings");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          bad(label, "\"__metadata__\" value for \"", mk, "\" is a JSON ", json_type(mv),
              ", expected a string");
        h.metadata.emplace(mk, mv.get<std::string>());
      }
      continue;
    }
    h.tensors.push_back(parse_entry(key, value, label));
  }
  // nlohmann's default object is a std::map, so entries come sorted; sort anyway so find()'s
  // binary search does not depend on that.
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.name < b.name; });

  // Overlap check in offset order. Empty tensors occupy no bytes and cannot overlap.
  std::vector<const SafetensorsEntry*> by_offset;
  by_offset.reserve(h.tensors.size());
  for (const auto& e : h.tensors)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    const auto* cur = by_offset[i];
    if (cur->begin < prev->end)
      bad(label, "tensors '", prev->name, "' [", prev->begin, ", ", prev->end, ") and '", cur->name,
          "' [", cur->begin, ", ", cur->end, ") overlap");
  }
  return h;
}

void validate_safetensors_data(const SafetensorsHeader& h, uint64_t file_size,
                               std::string_view label) {
  if (file_size < h.data_start)
    bad(label, "file of ", file_size, " bytes ends inside its ", h.data_start, "-byte header");
  const uint64_t data_bytes = file_size - h.data_start;
  for (const auto& e : h.tensors)
    if (e.end > data_bytes)
      bad(label, "tensor '", e.name, "' data_offsets [", e.begin, ", ", e.end,
          "] run past the end of the ", data_bytes, "-byte data section (truncated file?)");
}

// ---------------------------------------------------------------------------------------------
// Reader

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->file_ = MappedFile::open(path);
  const std::string label = path.string();
  f->header_ = parse_safetensors_header(f->file_->bytes(), label);
  validate_safetensors_data(f->header_, f->file_->size(), label);
  f->storage_ = f->file_->storage();
  return f;
}

const SafetensorsEntry& SafetensorsFile::entry(std::string_view name) const {
  const SafetensorsEntry* e = header_.find(name);
  KILN_CHECK(e != nullptr, Status::not_found, path().string(), "no tensor named '", name, "'");
  return *e;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& e : header_.tensors) out.push_back(e.name);
  return out;
}

bool SafetensorsFile::has(std::string_view name) const {
  return header_.find(name) != nullptr;
}

TensorInfo SafetensorsFile::info(std::string_view name) const {
  const auto& e = entry(name);
  return {e.dtype, e.shape, path()};
}

Tensor SafetensorsFile::get(std::string_view name) const {
  const auto& e = entry(name);
  const size_t offset = static_cast<size_t>(header_.data_start + e.begin);
  // The mapping is page-aligned, so the file offset decides the alignment of the view.
  if (offset % static_cast<size_t>(dtype_size(e.dtype)) == 0)
    return Tensor::from_storage(storage_, offset, e.shape, e.dtype);
  Tensor t = Tensor::empty(e.shape, e.dtype);
  if (e.end > e.begin) std::memcpy(t.mutable_raw_data(), file_->data() + offset, e.end - e.begin);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

struct WritePlan {
  std::string header;                                              // JSON plus space padding
  std::vector<const std::pair<const std::string, Tensor>*> order;  // data order
};

WritePlan plan_write(const std::map<std::string, Tensor>& tensors,
                     const std::map<std::string, std::string>& metadata) {
  WritePlan p;
  for (const auto& kv : tensors) {
    KILN_ARG(kv.first != "__metadata__", "save_safetensors", "\"__metadata__\" is reserved");
    KILN_ARG(kv.second.defined(), "save_safetensors", "tensor '", kv.first, "' is undefined");
    KILN_CHECK(!dtype_info(kv.second.dtype()).safetensors_name.empty() &&
                   dtype_info(kv.second.dtype()).block_elems == 1,
               Status::unsupported, "save_safetensors", "tensor '", kv.first, "' has dtype ",
               dtype_name(kv.second.dtype()), " which safetensors cannot store");
    p.order.push_back(&kv);
  }
  // Larger elements first: every element size is a power of two, so each tensor then starts
  // at a multiple of its own element size without padding between tensors (the reference
  // reader rejects gaps).
  std::stable_sort(p.order.begin(), p.order.end(), [](auto* a, auto* b) {
    return dtype_size(a->second.dtype()) > dtype_size(b->second.dtype());
  });

  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (auto* kv : p.order) {
    const Tensor& t = kv->second;
    json shape = json::array();
    for (int64_t d : t.shape()) shape.push_back(d);
    uint64_t nb = t.nbytes();
    h[kv->first] = {{"dtype", dtype_info(t.dtype()).safetensors_name},
                    {"shape", shape},
                    {"data_offsets", {offset, offset + nb}}};
    offset += nb;
  }
  try {
    p.header = h.dump();
  } catch (const json::exception& ex) {
    fail(Status::invalid_argument, str("tensor name or metadata is not valid UTF-8: ", ex.what()),
         "save_safetensors");
  }
  // Pad with spaces (allowed by the format) so the data section starts 8-byte aligned.
  p.header.append((8 - (8 + p.header.size()) % 8) % 8, ' ');
  return p;
}

void write_plan(const WritePlan& p, const std::function<void(const void*, size_t)>& sink) {
  uint8_t len[8];
  uint64_t n = p.header.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  sink(len, 8);
  sink(p.header.data(), p.header.size());
  for (auto* kv : p.order) {
    // One tensor at a time on the host, so a device-resident model is staged piecewise.
    Tensor t = kv->second.to(Device::cpu()).contiguous();
    if (t.nbytes() > 0) sink(t.raw_data(), t.nbytes());
  }
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const std::map<std::string, Tensor>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  WritePlan p = plan_write(tensors, metadata);
  std::vector<uint8_t> out;
  write_plan(p, [&](const void* d, size_t n) {
    auto* b = static_cast<const uint8_t*>(d);
    out.insert(out.end(), b, b + n);
  });
  return out;
}

void save_safetensors(const std::filesystem::path& path,
                      const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  WritePlan p = plan_write(tensors, metadata);
  const std::string ctx = path.string();
  // Same directory as the target so rename() is atomic (same filesystem).
  std::filesystem::path tmp = path;
  tmp += str(".tmp.", ::getpid());
  // Until the rename succeeds, any failure (ours or a tensor's to(cpu)) closes and removes the
  // temporary file so no partial output is left behind.
  struct TempFile {
    std::filesystem::path path;
    int fd = -1;
    bool committed = false;
    ~TempFile() {
      if (fd >= 0) ::close(fd);
      if (!committed) ::unlink(path.c_str());
    }
  } tf{tmp};
  tf.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (tf.fd < 0) {
    tf.committed = true;  // nothing was created
    fail(errno == ENOENT ? Status::not_found : Status::io_error,
         str("cannot create ", tmp.string(), ": ", std::strerror(errno)), ctx);
  }
  auto os_fail = [&](const char* what) {
    fail(Status::io_error, str(what, " ", tmp.string(), ": ", std::strerror(errno)), ctx);
  };
  write_plan(p, [&](const void* d, size_t n) {
    auto* b = static_cast<const char*>(d);
    while (n > 0) {
      ssize_t w = ::write(tf.fd, b, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) os_fail("cannot write");
      b += w;
      n -= static_cast<size_t>(w);
    }
  });
  if (::fsync(tf.fd) != 0) os_fail("cannot fsync");
  int fd = tf.fd;
  tf.fd = -1;
  if (::close(fd) != 0) os_fail("cannot close");
  if (::rename(tmp.c_str(), path.c_str()) != 0) os_fail("cannot rename");
  tf.committed = true;
}

}  // namespace kiln::io
