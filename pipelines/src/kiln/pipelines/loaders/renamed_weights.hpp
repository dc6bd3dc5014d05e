// RenamedWeights: one component of a single-file checkpoint presented as the diffusers key tree
// the module expects, built from a declarative RenameTable. Key renames are resolved once, at
// construction, over the checkpoint's names and shapes; tensor surgery (splitting a fused qkv,
// swapping shift/scale halves, 1x1 conv -> linear, transposing) runs lazily in get(), on the
// stored dtype, so io::bind still does the one dtype conversion and strict key accounting.
//
//   RenameTable t;
//   t.rename("double_blocks.{}.img_mod.lin.", "transformer_blocks.{}.norm1.linear.")
//    .split("double_blocks.{}.img_attn.qkv.", {"transformer_blocks.{}.attn.to_q.",
//           "transformer_blocks.{}.attn.to_k.", "transformer_blocks.{}.attn.to_v."});
//   auto w = RenamedWeights::make(file, "model.diffusion_model.", t, "transformer");
//   w->get("transformer_blocks.0.attn.to_k.weight");  // rows [D, 2D) of ...img_attn.qkv.weight
//
// Patterns: a rule's `from` matches the start of a source key (after the component prefix is
// removed); "{}" matches a decimal number, and the numbers are substituted, in order, into the
// "{}" of each target. The unmatched rest of the key ("weight", "bias", "") is appended to the
// target. The first matching rule wins. Keys no rule matches keep their name, so io::bind
// reports them as unexpected instead of dropping them (diffusers drops them silently).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/io/weight_source.hpp"

namespace kiln::pipelines::loaders {

enum class TensorOp {
  identity,
  rows,               // rows [offset, offset + count) of dim 0 (a part of a fused projection)
  swap_halves,        // (shift, scale) -> (scale, shift) along dim 0; diffusers swap_scale_shift
  conv1x1_to_linear,  // (O, I, 1, 1) -> (O, I); other ranks unchanged
  transpose,          // 2-D (A, B) -> (B, A)
};

class RenameTable {
 public:
  RenameTable& rename(std::string from, std::string to);
  // One fused tensor -> several, split along dim 0 in proportion to `parts` (default: equal).
  // Flux single blocks: {q, k, v, proj_mlp} with parts {1, 1, 1, 4} (mlp_ratio 4).
  RenameTable& split(std::string from, std::vector<std::string> to, std::vector<int> parts = {});
  RenameTable& swap_halves(std::string from, std::string to);
  RenameTable& conv1x1_to_linear(std::string from, std::string to);
  RenameTable& transpose(std::string from, std::string to);
  // Source keys deliberately unused (a buffer, a layer diffusers drops, EMA copies).
  RenameTable& ignore(std::string from);

  struct Rule {
    std::string from;
    std::vector<std::string> to;  // empty for ignore
    TensorOp op = TensorOp::identity;
    std::vector<int> parts;
  };
  const std::vector<Rule>& rules() const { return rules_; }
  size_t size() const { return rules_.size(); }

 private:
  RenameTable& add(Rule r);
  std::vector<Rule> rules_;
};

// Where one diffusers tensor comes from.
struct TensorMapping {
  std::string source;  // full source key
  TensorOp op = TensorOp::identity;
  int64_t offset = 0, count = 0;  // rows only
};

class RenamedWeights final : public io::WeightSource {
 public:
  // The keys of `base` that start with `prefix`, renamed by `table`. Throws Status::format_error
  // when two source tensors map to one name, a split does not divide the rows, or an op does
  // not fit the tensor's rank; not_found when no key starts with `prefix`.
  static std::shared_ptr<RenamedWeights> make(std::shared_ptr<const io::WeightSource> base,
                                              std::string prefix, const RenameTable& table,
                                              std::string component);

  std::vector<std::string> names() const override;
  bool has(std::string_view name) const override;
  io::TensorInfo info(std::string_view name) const override;
  Tensor get(std::string_view name) const override;
  std::string describe() const override;

  const std::map<std::string, TensorMapping, std::less<>>& mappings() const { return map_; }
  const std::vector<std::string>& ignored() const { return ignored_; }  // source keys
  const std::string& prefix() const { return prefix_; }

 private:
  RenamedWeights() = default;
  const TensorMapping& mapping(std::string_view name) const;

  std::shared_ptr<const io::WeightSource> base_;
  std::string prefix_, component_;
  std::map<std::string, TensorMapping, std::less<>> map_;
  std::vector<std::string> ignored_;
};

// Matches `pattern` ("double_blocks.{}.img_attn.") against the start of `key`; on success
// fills `numbers` and returns the length of `key` the pattern consumed, else -1. Exposed for
// tests.
int match_pattern(std::string_view pattern, std::string_view key,
                  std::vector<std::string>& numbers);

}  // namespace kiln::pipelines::loaders
