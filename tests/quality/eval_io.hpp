// Inputs of kiln-quality: prompt files (JSON lines) and directories of scored images. Every
// error names the file (and line) and throws kiln::Error, never crashes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenes.hpp"

namespace kiln::quality {

// Parses a whole JSON file. Throws io_error (unreadable) or format_error (with the parser's
// byte position).
nlohmann::json read_json_file(const std::filesystem::path& path);

// One prompt per non-empty line: {"seed": uint, "caption": string, "scene": {...}} as written by
// `kiln-quality prompts` (and by `kiln-scenes --pack` as samples.jsonl). The scene is validated.
// Throws format_error "FILE:LINE: ..." for the first bad line.
std::vector<data::Sample> read_prompts(const std::filesystem::path& path);
// Writes samples in that format, atomically.
void write_prompts(const std::filesystem::path& path, const std::vector<data::Sample>& samples);

// An image to score: DIR/NNNNNN.png and the scene of DIR/NNNNNN.json ({"scene": {...}, ...} as
// kiln-scenes writes it).
struct ScoredImage {
  std::string stem;
  std::filesystem::path png;
  data::Scene scene;
};
// Every NNNNNN.png (six digits) of `dir` that has a NNNNNN.json, sorted by name; `skipped`
// counts the PNGs without one. Throws for a missing directory or a malformed JSON file.
std::vector<ScoredImage> list_scored_images(const std::filesystem::path& dir, int& skipped);

}  // namespace kiln::quality
