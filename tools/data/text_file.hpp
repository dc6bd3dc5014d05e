// Whole-file text output for the data tools (kiln-scenes, kiln-quality).
#pragma once

#include <filesystem>
#include <string>

namespace kiln::data {

// Writes `text` to `path` atomically (a temp file next to it, then rename), so an interrupted
// run never leaves a partial file. Throws kiln::Error (io_error) naming the path.
void write_text_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace kiln::data
