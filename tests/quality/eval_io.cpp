#include "eval_io.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "kiln/core/error.hpp"
#include "text_file.hpp"

namespace kiln::quality {

namespace fs = std::filesystem;

nlohmann::json read_json_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(Status::io_error, "cannot open file", path.string());
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    fail(Status::format_error, str("malformed JSON: ", e.what()), path.string());
  }
}

std::vector<data::Sample> read_prompts(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(Status::io_error, "cannot open prompt file", path.string());
  std::vector<data::Sample> out;
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = str(path.string(), ":", n);
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      if (!j.is_object()) fail(Status::format_error, "a prompt line must be a JSON object", where);
      for (const char* key : {"seed", "caption", "scene"})
        if (!j.contains(key)) fail(Status::format_error, str("missing field '", key, "'"), where);
      if (!j["seed"].is_number_unsigned())
        fail(Status::format_error, "'seed' must be a non-negative integer", where);
      if (!j["caption"].is_string())
        fail(Status::format_error, "'caption' must be a string", where);
      data::Sample s;
      s.seed = j["seed"].get<uint64_t>();
      s.caption = j["caption"].get<std::string>();
      s.scene = data::from_json(j["scene"]);
      out.push_back(std::move(s));
    } catch (const nlohmann::json::exception& e) {
      fail(Status::format_error, str("malformed JSON: ", e.what()), where);
    } catch (const Error& e) {
      if (e.context() == where) throw;
      fail(Status::format_error, e.what(), where);
    }
  }
  if (out.empty()) fail(Status::format_error, "no prompts in file", path.string());
  return out;
}

void write_prompts(const fs::path& path, const std::vector<data::Sample>& samples) {
  std::string text;
  for (const data::Sample& s : samples) text += data::to_json(s).dump() + "\n";
  data::write_text_atomic(path, text);
}

std::vector<ScoredImage> list_scored_images(const fs::path& dir, int& skipped) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(Status::io_error, "not a directory", dir.string());
  std::vector<fs::path> pngs;
  for (const auto& e : fs::directory_iterator(dir)) {
    const fs::path& p = e.path();
    std::string stem = p.stem().string();
    if (p.extension() == ".png" && stem.size() == 6 &&
        std::all_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; }))
      pngs.push_back(p);
  }
  std::sort(pngs.begin(), pngs.end());
  std::vector<ScoredImage> out;
  skipped = 0;
  for (const fs::path& png : pngs) {
    fs::path meta = png;
    meta.replace_extension(".json");
    if (!fs::exists(meta)) {
      ++skipped;
      continue;
    }
    nlohmann::json j = read_json_file(meta);
    if (!j.is_object() || !j.contains("scene"))
      fail(Status::format_error, "missing field 'scene'", meta.string());
    try {
      out.push_back({png.stem().string(), png, data::from_json(j["scene"])});
    } catch (const Error& e) {
      fail(Status::format_error, e.what(), meta.string());
    }
  }
  return out;
}

}  // namespace kiln::quality
