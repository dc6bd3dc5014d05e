#include "kiln/pipelines/sinks/image_file.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "kiln/core/error.hpp"

#ifdef KILN_HAVE_STB
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#endif

namespace kiln::pipelines {

namespace fs = std::filesystem;

namespace {

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0xffffffffu) {
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return crc;
}

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

// Inserts tEXt chunks right after IHDR (PNG spec 11.3.4.3: keyword 1-79 Latin-1 chars, NUL,
// text). stb writes no ancillary chunks, so the IHDR chunk ends at byte 8 + 25 = 33.
std::vector<uint8_t> add_text_chunks(const std::vector<uint8_t>& png,
                                     std::span<const std::pair<std::string, std::string>> text) {
  constexpr size_t kAfterIhdr = 33;
  if (text.empty() || png.size() < kAfterIhdr) return png;
  std::vector<uint8_t> out(png.begin(), png.begin() + kAfterIhdr);
  for (const auto& [key, value] : text) {
    KILN_ARG(!key.empty() && key.size() <= 79, "png", "text key '", key, "' must be 1-79 chars");
    std::vector<uint8_t> chunk = {'t', 'E', 'X', 't'};
    chunk.insert(chunk.end(), key.begin(), key.end());
    chunk.push_back(0);
    chunk.insert(chunk.end(), value.begin(), value.end());
    put_be32(out, static_cast<uint32_t>(chunk.size() - 4));
    out.insert(out.end(), chunk.begin(), chunk.end());
    put_be32(out, crc32(chunk.data(), chunk.size()) ^ 0xffffffffu);
  }
  out.insert(out.end(), png.begin() + kAfterIhdr, png.end());
  return out;
}

void write_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  KILN_CHECK(fs::is_directory(dir, ec), Status::io_error, path,
             "output directory '", dir.string(), "' does not exist");
  std::random_device rd;
  fs::path tmp = dir / ("." + target.filename().string() + ".tmp" + std::to_string(rd()));
  FILE* f = std::fopen(tmp.c_str(), "wb");
  KILN_CHECK(f, Status::io_error, path, "cannot create '", tmp.string(), "': ", std::strerror(errno));
  size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  bool ok = written == bytes.size() && std::fflush(f) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    fs::remove(tmp, ec);
    fail(Status::io_error, "short write (disk full?)", path);
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(Status::io_error, "cannot move the finished file into place: " + ec.message(), path);
  }
}

}  // namespace

#ifdef KILN_HAVE_STB

void write_png(const std::string& path, const ImageU8& img,
               std::span<const std::pair<std::string, std::string>> text) {
  KILN_ARG(img.width > 0 && img.height > 0, path, "image size ", img.width, "x", img.height,
           " is empty");
  KILN_ARG(img.channels == 1 || img.channels == 3 || img.channels == 4, path, "unsupported ",
           img.channels, "-channel image (1, 3 or 4)");
  KILN_ARG(img.pixels.size() == static_cast<size_t>(img.width) * img.height * img.channels, path,
           "pixel buffer holds ", img.pixels.size(), " bytes, expected ",
           static_cast<size_t>(img.width) * img.height * img.channels);
  std::vector<uint8_t> png;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  int ok = stbi_write_png_to_func(sink, &png, img.width, img.height, img.channels,
                                  img.pixels.data(), img.width * img.channels);
  KILN_CHECK(ok, Status::io_error, path, "PNG encoding failed");
  write_atomically(path, add_text_chunks(png, text));
}

ImageU8 read_image(const std::string& path, int channels) {
  KILN_ARG(channels >= 0 && channels <= 4, path, "cannot force ", channels, " channels");
  int w = 0, h = 0, c = 0;
  std::unique_ptr<uint8_t, void (*)(void*)> data(stbi_load(path.c_str(), &w, &h, &c, channels),
                                                 stbi_image_free);
  KILN_CHECK(data != nullptr, std::filesystem::exists(path) ? Status::format_error : Status::not_found, path,
             "cannot read image: ", stbi_failure_reason());
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.channels = channels ? channels : c;
  img.pixels.assign(data.get(), data.get() + static_cast<size_t>(w) * h * img.channels);
  return img;
}

#else

void write_png(const std::string& path, const ImageU8&,
               std::span<const std::pair<std::string, std::string>>) {
  fail(Status::unsupported, "PNG output needs kiln built with stb (KILN_STB=ON, libstb-dev)", path);
}
ImageU8 read_image(const std::string& path, int) {
  fail(Status::unsupported, "image input needs kiln built with stb (KILN_STB=ON, libstb-dev)", path);
}

#endif

}  // namespace kiln::pipelines
