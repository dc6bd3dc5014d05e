#include "kiln/io/weight_source.hpp"

#include <algorithm>
#include <array>

#include "kiln/core/error.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/io/sharded.hpp"

namespace kiln::io {

std::string join_names(const std::vector<std::string>& names, size_t limit) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i) s += ", ";
    s += names[i];
  }
  if (names.size() > limit) s += str(" and ", names.size() - limit, " more");
  return s;
}

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::shared_ptr<WeightSource> open_file(const std::filesystem::path& p) {
  if (ends_with(p.filename().string(), ".json")) return ShardedWeights::open(p);
  // Anything else is tried as safetensors: the header check names a pickle/zip/PNG for what
  // it is, which is a better message than refusing by extension.
  return SafetensorsFile::open(p);
}

}  // namespace

std::shared_ptr<WeightSource> open_weights(const std::filesystem::path& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  KILN_CHECK(std::filesystem::exists(st), Status::not_found, path.string(),
             "no such file or directory");
  if (!std::filesystem::is_directory(st)) return open_file(path);

  // Ref: diffusers ModelMixin.from_pretrained (model files) and transformers (model.*).
  static constexpr std::array<std::string_view, 2> kStems = {"diffusion_pytorch_model", "model"};
  std::vector<std::filesystem::path> singles, indexes;
  for (auto stem : kStems) {
    auto single = path / (std::string(stem) + ".safetensors");
    auto index = path / (std::string(stem) + ".safetensors.index.json");
    if (std::filesystem::is_regular_file(single, ec))
      singles.push_back(single);
    else if (std::filesystem::is_regular_file(index, ec))
      indexes.push_back(index);
  }
  const size_t stems_found = singles.size() + indexes.size();
  if (stems_found == 1) return open_file(singles.empty() ? indexes[0] : singles[0]);

  std::vector<std::string> listing;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    auto n = e.path().filename().string();
    if (ends_with(n, ".safetensors") || ends_with(n, ".json") || ends_with(n, ".bin") ||
        ends_with(n, ".ckpt") || ends_with(n, ".pt") || ends_with(n, ".gguf"))
      listing.push_back(n);
  }
  std::sort(listing.begin(), listing.end());
  const std::string found = listing.empty() ? "no weight files" : "found: " + join_names(listing);
  KILN_CHECK(stems_found != 0, Status::not_found, path.string(),
             "directory holds none of diffusion_pytorch_model.safetensors, model.safetensors or "
             "their .safetensors.index.json forms (",
             found, ")");
  fail(Status::invalid_argument,
       str("directory holds weights under both diffusion_pytorch_model and model stems; pass the "
           "file to use (",
           found, ")"),
       path.string());
}

}  // namespace kiln::io
