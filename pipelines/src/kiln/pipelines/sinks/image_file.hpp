// Image files at the edge: PNG through stb, written atomically (a temp file in the target's
// directory, then rename) so a crash or a bad input never leaves a partial file at `path`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace kiln::pipelines {

struct ImageU8 {
  int width = 0, height = 0, channels = 0;  // channels 1, 3 or 4
  std::vector<uint8_t> pixels;               // row-major, interleaved
};

// Writes `img` as PNG with tEXt chunks (key, value) — e.g. the generation parameters.
// Throws kiln::Error (io_error / invalid_argument) naming the path; never leaves a partial file.
void write_png(const std::string& path, const ImageU8& img,
               std::span<const std::pair<std::string, std::string>> text = {});

// Reads a PNG/JPEG/BMP into 8-bit pixels (channels as stored, or forced when `channels` > 0).
ImageU8 read_image(const std::string& path, int channels = 0);

}  // namespace kiln::pipelines
