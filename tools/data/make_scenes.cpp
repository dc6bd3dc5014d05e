// kiln-scenes: writes a procedural, captioned dataset.
//   kiln-scenes --count N --seed S --size 64 --out DIR
// Sample i (0-based) uses seed S + i and is written as DIR/<i, 6 digits>.{png,txt,json}:
// the image, its caption (one line) and {"seed", "size", "caption", "scene"} for scoring.
// Every file is written atomically (temp file + rename), so an interrupted run leaves only
// whole samples. Keep train and test seed ranges apart (e.g. train from 0, test from 10^9).
//
//   kiln-scenes --count N --seed S --size 64 --out DIR --pack
// writes the same samples packed for training instead: DIR/images.u8 (N x size x size x 3
// bytes, RGB, row-major, sample after sample), DIR/captions.txt (line i: caption of sample i),
// DIR/samples.jsonl (line i: {"seed", "caption", "scene"} of sample i) and DIR/pack.json
// ({"count", "size", "channels": 3, "dtype": "uint8", "layout": "NHWC", "first_seed"}), each
// written atomically; pack.json last, so its presence means the pack is complete.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>

#include "kiln/core/error.hpp"
#include "scenes.hpp"
#include "text_file.hpp"

namespace fs = std::filesystem;
using kiln::data::write_text_atomic;

int main(int argc, char** argv) {
  CLI::App app{"kiln-scenes: procedural captioned shape scenes (PNG + caption + scene JSON)"};
  int count = 16, size = 64;
  uint64_t seed = 0;
  std::string out;
  bool pack = false;
  kiln::data::SceneOptions options;
  app.add_option("--count", count, "number of samples")->check(CLI::Range(1, 100000000));
  app.add_option("--seed", seed, "seed of the first sample; sample i uses seed + i");
  app.add_option("--size", size, "image side in pixels (16..4096)");
  app.add_option("--out", out, "output directory (created)")->required();
  app.add_option("--max-objects", options.max_objects, "object groups per scene, 1..3");
  app.add_option("--max-count", options.max_count, "copies per group, 1..3");
  app.add_flag("--pack", pack, "write images.u8 + captions.txt + samples.jsonl + pack.json");
  CLI11_PARSE(app, argc, argv);

  try {
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) kiln::fail(kiln::Status::io_error, "cannot create directory: " + ec.message(), out);
    std::string packed, captions, lines;
    for (int i = 0; i < count; ++i) {
      const kiln::data::Sample s = kiln::data::make_sample(seed + static_cast<uint64_t>(i), options);
      const kiln::data::ImageU8 img = kiln::data::render(s.scene, size);
      if (pack) {
        packed.append(img.pixels.begin(), img.pixels.end());
        captions += s.caption + "\n";
        lines += kiln::data::to_json(s).dump() + "\n";
        continue;
      }
      char stem[32];
      std::snprintf(stem, sizeof stem, "%06d", i);
      fs::path base = fs::path(out) / stem;
      nlohmann::json sample = kiln::data::to_json(s);
      sample["size"] = size;
      write_text_atomic(fs::path(base) += ".json", sample.dump(1) + "\n");
      write_text_atomic(fs::path(base) += ".txt", s.caption + "\n");
      std::pair<std::string, std::string> meta[] = {{"caption", s.caption},
                                                    {"seed", std::to_string(s.seed)}};
      kiln::pipelines::write_png((fs::path(base) += ".png").string(), img, meta);
    }
    if (pack) {
      write_text_atomic(fs::path(out) / "images.u8", packed);
      write_text_atomic(fs::path(out) / "captions.txt", captions);
      write_text_atomic(fs::path(out) / "samples.jsonl", lines);
      nlohmann::json info = {{"count", count},    {"size", size},      {"channels", 3},
                             {"dtype", "uint8"}, {"layout", "NHWC"}, {"first_seed", seed}};
      write_text_atomic(fs::path(out) / "pack.json", info.dump(1) + "\n");
    }
  } catch (const kiln::Error& e) {
    std::cerr << "kiln-scenes: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
