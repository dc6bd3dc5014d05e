// kiln-scenes: writes a procedural, captioned dataset.
//   kiln-scenes --count N --seed S --size 64 --out DIR
// Sample i (0-based) uses seed S + i and is written as DIR/<i, 6 digits>.{png,txt,json}:
// the image, its caption (one line) and {"seed", "size", "caption", "scene"} for scoring.
// Every file is written atomically (temp file + rename), so an interrupted run leaves only
// whole samples. Keep train and test seed ranges apart (e.g. train from 0, test from 10^9).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "kiln/core/error.hpp"
#include "scenes.hpp"

namespace fs = std::filesystem;

namespace {

void write_text_atomic(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      kiln::fail(kiln::Status::io_error, "cannot write file", tmp.string());
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    kiln::fail(kiln::Status::io_error, "cannot rename into place: " + ec.message(), path.string());
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kiln-scenes: procedural captioned shape scenes (PNG + caption + scene JSON)"};
  int count = 16, size = 64;
  uint64_t seed = 0;
  std::string out;
  kiln::data::SceneOptions options;
  app.add_option("--count", count, "number of samples")->check(CLI::Range(1, 100000000));
  app.add_option("--seed", seed, "seed of the first sample; sample i uses seed + i");
  app.add_option("--size", size, "image side in pixels (16..4096)");
  app.add_option("--out", out, "output directory (created)")->required();
  app.add_option("--max-objects", options.max_objects, "object groups per scene, 1..3");
  app.add_option("--max-count", options.max_count, "copies per group, 1..3");
  CLI11_PARSE(app, argc, argv);

  try {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) kiln::fail(kiln::Status::io_error, "cannot create directory: " + ec.message(), out);
    for (int i = 0; i < count; ++i) {
      uint64_t s = seed + static_cast<uint64_t>(i);
      kiln::data::Scene scene = kiln::data::sample_scene(s, options);
      std::string text = kiln::data::caption(scene, s);
      kiln::data::ImageU8 img = kiln::data::render(scene, size);
      char stem[32];
      std::snprintf(stem, sizeof stem, "%06d", i);
      fs::path base = fs::path(out) / stem;
      nlohmann::json sample = {
          {"seed", s}, {"size", size}, {"caption", text}, {"scene", kiln::data::to_json(scene)}};
      write_text_atomic(fs::path(base) += ".json", sample.dump(1) + "\n");
      write_text_atomic(fs::path(base) += ".txt", text + "\n");
      std::pair<std::string, std::string> meta[] = {{"caption", text}, {"seed", std::to_string(s)}};
      kiln::pipelines::write_png((fs::path(base) += ".png").string(), img, meta);
    }
  } catch (const kiln::Error& e) {
    std::cerr << "kiln-scenes: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
