#include "text_file.hpp"

#include <fstream>

#include "kiln/core/error.hpp"

namespace kiln::data {

void write_text_atomic(const std::filesystem::path& path, const std::string& text) {
  namespace fs = std::filesystem;
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      fail(Status::io_error, "cannot write file", tmp.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    fail(Status::io_error, "cannot rename into place: " + ec.message(), path.string());
  }
}

}  // namespace kiln::data
