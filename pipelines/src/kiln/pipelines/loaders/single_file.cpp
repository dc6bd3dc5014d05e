#include "kiln/pipelines/loaders/single_file.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include "kiln/core/error.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/loaders/family.hpp"

namespace kiln::pipelines::loaders {

using Json = nlohmann::json;

// ---------------------------------------------------------------- helpers for the rules

Shape KeyView::shape(std::string_view local, std::string_view why) const {
  const std::string key = prefix_ + std::string(local);
  KILN_CHECK(src_.has(key), Status::format_error, src_.describe(), "expected tensor ", key,
             why.empty() ? "" : " (", why, why.empty() ? "" : ")", " is missing");
  return src_.info(key).shape;
}

namespace {

// Sorted names of a source, computed once per source (names() copies).
std::vector<std::string> names_with(const io::WeightSource& src, std::string_view prefix) {
  std::vector<std::string> out;
  for (auto& n : src.names())
    if (n.compare(0, prefix.size(), prefix) == 0) out.push_back(std::move(n));
  return out;
}

}  // namespace

int KeyView::count(std::string_view head) const {
  const std::string p = prefix_ + std::string(head);
  int n = 0;
  for (const auto& name : names_with(src_, p)) {
    size_t i = p.size(), j = i;
    while (j < name.size() && std::isdigit(static_cast<unsigned char>(name[j]))) ++j;
    if (j == i || j >= name.size() || name[j] != '.') continue;
    n = std::max(n, std::stoi(name.substr(i, j - i)) + 1);
  }
  return n;
}

bool has_prefix(const io::WeightSource& src, std::string_view prefix) {
  const auto names = src.names();
  auto it = std::lower_bound(names.begin(), names.end(), prefix,
                             [](const std::string& a, std::string_view b) { return a < b; });
  return it != names.end() && it->compare(0, prefix.size(), prefix) == 0;
}

void apply_overrides(Json& config, const std::string& name, const SingleFileOptions& options) {
  auto it = options.config_overrides.find(name);
  if (it == options.config_overrides.end()) return;
  KILN_CHECK(it->second.is_object(), Status::invalid_argument, "single-file config override",
             "the override for \"", name, "\" must be a JSON object, got ", it->second.dump());
  for (const auto& [k, v] : it->second.items())
    if (k.empty() || k[0] != '_') config[k] = v;  // _class_name, _diffusers_version: ours stay
}

SingleFileComponent make_component(const std::shared_ptr<const io::WeightSource>& src,
                                   std::string name, std::string class_name, Json config,
                                   const std::string& prefix, const RenameTable& table,
                                   const SingleFileOptions& options) {
  apply_overrides(config, name, options);
  SingleFileComponent c;
  c.weights = RenamedWeights::make(src, prefix, table, name);
  c.name = std::move(name);
  c.class_name = std::move(class_name);
  c.config = std::move(config);
  return c;
}

io::ComponentConfig SingleFileComponent::component_config() const {
  return io::ComponentConfig(config, weights ? weights->describe() + " config" : name);
}

// ---------------------------------------------------------------- detection

namespace {

// The family registry: a new family adds one entry and its rules file.
const std::array<const FamilyRules*, 4>& families() {
  static const std::array<const FamilyRules*, 4> f = {&sd_family(), &flux_family(), &sd3_family(),
                                                      &sd_vae_family()};
  return f;
}

}  // namespace

SingleFileCheckpoint SingleFileCheckpoint::open(const std::filesystem::path& path,
                                                const SingleFileOptions& options) {
  return from_source(io::SafetensorsFile::open(path), options);
}

SingleFileCheckpoint SingleFileCheckpoint::from_source(std::shared_ptr<const io::WeightSource> src,
                                                       const SingleFileOptions& options) {
  KILN_CHECK(src != nullptr, Status::invalid_argument, "SingleFileCheckpoint", "no source");
  for (const FamilyRules* f : families()) {
    if (!f->detect(*src)) continue;
    FamilyBuild b = f->build(src, options);
    SingleFileCheckpoint c;
    c.source_ = std::move(src);
    c.family_ = std::move(b.family);
    c.variant_ = std::move(b.variant);
    c.notes_ = std::move(b.notes);
    c.components_ = std::move(b.components);
    std::set<std::string> known;
    for (const auto& comp : c.components_) known.insert(comp.name);
    for (const auto& [name, _] : options.config_overrides)
      KILN_CHECK(known.count(name), Status::invalid_argument, c.source_->describe(),
                 "config override for \"", name, "\", which this ", c.family_,
                 " checkpoint does not have");
    return c;
  }
  std::string looked;
  for (const FamilyRules* f : families()) looked += str("\n  ", f->name, ": ", f->signature);
  const auto names = src->names();
  fail(Status::format_error,
       str("not a single-file checkpoint kiln recognises; looked for", looked, "\n  the file has ",
           names.size(), " tensors: ", io::join_names(names, 8),
           names.empty() ? "" : "\n  (a diffusers folder is loaded by folder, not by file)"),
       src->describe());
}

bool SingleFileCheckpoint::has(std::string_view name) const {
  return std::any_of(components_.begin(), components_.end(),
                     [&](const SingleFileComponent& c) { return c.name == name; });
}

const SingleFileComponent& SingleFileCheckpoint::component(std::string_view name) const {
  for (const auto& c : components_)
    if (c.name == name) return c;
  std::vector<std::string> have;
  for (const auto& c : components_) have.push_back(c.name);
  fail(Status::not_found,
       str("no component \"", name, "\" in this ", family_, " checkpoint (it has ",
           io::join_names(have), ")"),
       source_->describe());
}

std::vector<std::string> SingleFileCheckpoint::unclaimed() const {
  std::set<std::string> used;
  for (const auto& c : components_) {
    for (const auto& [_, m] : c.weights->mappings()) used.insert(m.source);
    used.insert(c.weights->ignored().begin(), c.weights->ignored().end());
  }
  std::vector<std::string> out;
  for (auto& n : source_->names())
    if (!used.count(n)) out.push_back(std::move(n));
  return out;
}

// ---------------------------------------------------------------- models

namespace {

const SingleFileComponent& typed(const SingleFileCheckpoint& ckpt, std::string_view name,
                                 std::initializer_list<std::string_view> classes) {
  const SingleFileComponent& c = ckpt.component(name);
  const bool ok = std::any_of(classes.begin(), classes.end(),
                              [&](std::string_view k) { return c.class_name == k; });
  KILN_CHECK(ok, Status::invalid_argument, c.weights->describe(), "component \"", name, "\" is a ",
             c.class_name, ", not a ", *classes.begin());
  return c;
}

template <typename M>
void bind_f32(M& m, const SingleFileComponent& c) {
  io::BindOptions opt;
  opt.float_dtype = DType::f32;  // f16/bf16/fp8 storage widens once, here
  io::bind(m, *c.weights, opt);
}

}  // namespace

models::UNet2DConditionModel load_unet(const SingleFileCheckpoint& ckpt) {
  const auto& c = typed(ckpt, "unet", {"UNet2DConditionModel"});
  models::UNet2DConditionModel m(models::UNet2DConditionConfig::from_json(c.component_config()));
  bind_f32(m, c);
  return m;
}

models::AutoencoderKL load_vae(const SingleFileCheckpoint& ckpt) {
  const auto& c = typed(ckpt, "vae", {"AutoencoderKL"});
  return models::AutoencoderKL::from_weights(
      models::AutoencoderKLConfig::from_json(c.component_config()), *c.weights);
}

models::ClipTextModel load_clip_text(const SingleFileCheckpoint& ckpt, std::string_view name) {
  const auto& c = typed(ckpt, name, {"CLIPTextModel", "CLIPTextModelWithProjection"});
  const auto cfg = models::ClipTextConfig::from(c.component_config());
  models::ClipTextModel m(cfg, c.class_name == "CLIPTextModelWithProjection");
  bind_f32(m, c);
  return m;
}

models::FluxTransformer2DModel load_flux_transformer(const SingleFileCheckpoint& ckpt) {
  const auto& c = typed(ckpt, "transformer", {"FluxTransformer2DModel"});
  models::FluxTransformer2DModel m(models::FluxTransformerConfig::from_json(c.component_config()));
  bind_f32(m, c);
  return m;
}

models::SD3Transformer2DModel load_sd3_transformer(const SingleFileCheckpoint& ckpt) {
  const auto& c = typed(ckpt, "transformer", {"SD3Transformer2DModel"});
  const auto cfg = models::SD3TransformerConfig::from_json(c.component_config());
  models::SD3Transformer2DModel m(cfg);
  bind_f32(m, c);
  // As SD3Transformer2DModel::load: the buffer is computed when a file lacks it.
  if (cfg.pos_embed_max_size > 0 && !m.pos_embed.pos_embed.defined())
    m.pos_embed.pos_embed =
        models::sd3::sincos_pos_embed_2d(cfg.inner_dim(), cfg.pos_embed_max_size,
                                         cfg.pos_embed_max_size, m.pos_embed.base_size)
            .unsqueeze(0);
  return m;
}

// ---------------------------------------------------------------- describe

CheckpointDescription describe_checkpoint(const std::filesystem::path& path) {
  const SingleFileCheckpoint ckpt = SingleFileCheckpoint::open(path);
  CheckpointDescription d;
  d.path = path;
  d.family = ckpt.family();
  d.variant = ckpt.variant();
  d.notes = ckpt.notes();
  d.unclaimed_tensors = ckpt.unclaimed().size();
  for (const auto& c : ckpt.components()) {
    ComponentSummary s;
    s.name = c.name;
    s.class_name = c.class_name;
    s.config = c.config;
    for (const auto& n : c.weights->names()) {
      const io::TensorInfo i = c.weights->info(n);
      ++s.tensors;
      s.parameters += shape_numel(i.shape);
      ++s.dtypes[std::string(dtype_name(i.dtype))];
    }
    d.components.push_back(std::move(s));
  }
  return d;
}

}  // namespace kiln::pipelines::loaders
