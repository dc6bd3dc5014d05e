// Sharded safetensors checkpoints: "<stem>.safetensors.index.json" =
//   {"metadata": {...}, "weight_map": {tensor name: shard file name}}
// next to the shard files (Ref: huggingface transformers/diffusers save_pretrained sharding).
// Opening maps every shard and parses its header (no tensor data is read), and checks that the
// index and the shards agree exactly, so a bad download fails at open, not mid-run.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/io/safetensors.hpp"
#include "kiln/io/weight_source.hpp"

namespace kiln::io {

class ShardedWeights final : public WeightSource {
 public:
  // Throws not_found when the index or a shard file is missing; format_error when the index is
  // malformed, a listed tensor is absent from its shard, or a shard holds a tensor the index
  // does not assign to it (each message lists the offending names).
  static std::shared_ptr<ShardedWeights> open(const std::filesystem::path& index_path);

  const nlohmann::json& index_metadata() const { return metadata_; }  // null when absent
  const std::vector<std::shared_ptr<SafetensorsFile>>& shards() const { return shards_; }

  std::vector<std::string> names() const override;
  bool has(std::string_view name) const override;
  TensorInfo info(std::string_view name) const override;
  Tensor get(std::string_view name) const override;
  std::string describe() const override { return index_path_.string(); }

 private:
  ShardedWeights() = default;
  const SafetensorsFile& shard_of(std::string_view name) const;

  std::filesystem::path index_path_;
  nlohmann::json metadata_;
  std::vector<std::shared_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t, std::less<>> where_;  // tensor -> index into shards_
};

}  // namespace kiln::io
