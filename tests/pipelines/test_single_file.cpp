// Single-file checkpoints in their original layouts (tests/data/single_file, written by
// tests/reference/make_single_file_fixtures.py from the tiny diffusers fixtures and read back
// by diffusers' own converters there): family/config detection, and components equal to the
// diffusers-folder loads of the same weights — every parameter bit for bit (after the same f16
// rounding where the single file stores f16) and therefore every output exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/loaders/single_file.hpp"
#include "test_support.hpp"

namespace kiln::test {
namespace {

namespace ld = pipelines::loaders;
namespace md = pipelines::models;
using Json = nlohmann::json;

std::filesystem::path sf(const std::string& name) {
  return data_dir() / "single_file" / name;
}

Json folder_config(const std::string& dir) {
  std::ifstream f(data_dir() / dir / "config.json");
  return Json::parse(f);
}

// An in-memory WeightSource: tensors, or names and shapes only (get() then gives zeros).
class MemoryWeights final : public io::WeightSource {
 public:
  std::map<std::string, Tensor, std::less<>> tensors;
  std::map<std::string, Shape, std::less<>> shapes;
  std::vector<std::string> names() const override {
    std::vector<std::string> n;
    for (const auto& [k, _] : tensors) n.push_back(k);
    for (const auto& [k, _] : shapes) n.push_back(k);
    std::sort(n.begin(), n.end());
    return n;
  }
  bool has(std::string_view n) const override {
    return tensors.find(n) != tensors.end() || shapes.find(n) != shapes.end();
  }
  io::TensorInfo info(std::string_view n) const override {
    if (auto it = tensors.find(n); it != tensors.end())
      return {it->second.dtype(), it->second.shape(), {}};
    auto it = shapes.find(n);
    KILN_CHECK(it != shapes.end(), Status::not_found, "memory", "no tensor ", n);
    return {DType::f16, it->second, {}};
  }
  Tensor get(std::string_view n) const override {
    if (auto it = tensors.find(n); it != tensors.end()) return it->second;
    return Tensor::zeros(info(n).shape, DType::f16);
  }
  std::string describe() const override { return "memory"; }
};

std::shared_ptr<MemoryWeights> copy_of(const io::WeightSource& src) {
  auto m = std::make_shared<MemoryWeights>();
  for (const auto& n : src.names()) m->tensors[n] = src.get(n);
  return m;
}

// Rounds every parameter through `dtype`, as storing the folder's f32 weights in f16 does.
void round_params(io::Module& m, DType dtype) {
  for (auto& p : io::collect_params(m))
    if (p.slot->defined()) *p.slot = p.slot->to(dtype).to(DType::f32);
}

// Every parameter of `a` equals the same-named one of `b`, bit for bit.
::testing::AssertionResult same_params(io::Module& a, io::Module& b) {
  auto pa = io::collect_params(a), pb = io::collect_params(b);
  if (pa.size() != pb.size())
    return ::testing::AssertionFailure() << pa.size() << " vs " << pb.size() << " params";
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor &x = *pa[i].slot, &y = *pb[i].slot;
    if (pa[i].name != pb[i].name || x.defined() != y.defined())
      return ::testing::AssertionFailure() << pa[i].name << " vs " << pb[i].name;
    if (!x.defined()) continue;
    if (!(x.shape() == y.shape()) || x.dtype() != y.dtype())
      return ::testing::AssertionFailure() << pa[i].name << ": " << x.str() << " vs " << y.str();
    const Tensor cx = x.contiguous(), cy = y.contiguous();
    if (std::memcmp(cx.raw_data(), cy.raw_data(), cx.nbytes()) != 0)
      return ::testing::AssertionFailure() << pa[i].name << " differs";
  }
  return ::testing::AssertionSuccess() << pa.size() << " params";
}

::testing::AssertionResult identical(const Tensor& a, const Tensor& b) {
  if (!(a.shape() == b.shape()))
    return ::testing::AssertionFailure() << a.str() << " vs " << b.str();
  const auto x = to_doubles(a), y = to_doubles(b);
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i] != y[i])
      return ::testing::AssertionFailure() << "element " << i << ": " << x[i] << " vs " << y[i];
  return ::testing::AssertionSuccess();
}

// The config fields the weights determine, compared with the diffusers folder's.
void expect_fields(const Json& detected, const Json& folder,
                   std::initializer_list<const char*> keys) {
  for (const char* k : keys) EXPECT_EQ(detected.value(k, Json()), folder.value(k, Json())) << k;
}

Json pick(const Json& j, std::initializer_list<const char*> keys) {
  Json o = Json::object();
  for (const char* k : keys) o[k] = j[k];
  return o;
}

// Fields the weights cannot tell (see single_file.hpp), taken from the folders' configs.
ld::SingleFileOptions sd15_options() {
  ld::SingleFileOptions o;
  o.config_overrides["unet"] =
      pick(folder_config("unet/sd15"), {"attention_head_dim", "norm_num_groups", "sample_size"});
  o.config_overrides["vae"] =
      pick(folder_config("vae/sd_tiny"), {"norm_num_groups", "sample_size", "scaling_factor"});
  o.config_overrides["text_encoder"] =
      pick(folder_config("clip/text_encoder"), {"num_attention_heads", "eos_token_id"});
  return o;
}

// ---------------------------------------------------------------- SD1.x

TEST(SingleFileSd, DetectsFamilyAndConfig) {
  const auto ckpt = ld::SingleFileCheckpoint::open(sf("sd15.safetensors"));
  EXPECT_EQ(ckpt.family(), "sd1");
  EXPECT_EQ(ckpt.variant(), "");
  ASSERT_EQ(ckpt.components().size(), 3u);
  EXPECT_TRUE(ckpt.unclaimed().empty());
  const Json unet = folder_config("unet/sd15");
  expect_fields(ckpt.component("unet").config, unet,
                {"in_channels", "out_channels", "block_out_channels", "layers_per_block",
                 "down_block_types", "up_block_types", "mid_block_type", "cross_attention_dim",
                 "use_linear_projection", "transformer_layers_per_block"});
  EXPECT_EQ(ckpt.component("unet").config["attention_head_dim"], 8);  // SD1's, not the tiny one's
  expect_fields(
      ckpt.component("vae").config, folder_config("vae/sd_tiny"),
      {"in_channels", "out_channels", "latent_channels", "block_out_channels", "layers_per_block",
       "use_quant_conv", "use_post_quant_conv", "mid_block_add_attention", "scaling_factor"});
  expect_fields(ckpt.component("text_encoder").config, folder_config("clip/text_encoder"),
                {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "max_position_embeddings", "hidden_act", "eos_token_id"});
  EXPECT_NE(ckpt.notes().at(0).find("prediction type"), std::string::npos);
}

TEST(SingleFileSd, UnetEqualsFolderLoad) {
  const auto ckpt = ld::SingleFileCheckpoint::open(sf("sd15.safetensors"), sd15_options());
  auto single = ld::load_unet(ckpt);
  auto folder = md::UNet2DConditionModel::load(data_dir() / "unet/sd15");  // stored f16 too
  EXPECT_TRUE(same_params(single, folder));
  const Tensor x = random_tensor({2, 4, 10, 14}, 1), ehs = random_tensor({2, 7, 24}, 2);
  const Tensor t = Tensor::from_f32({2}, {999.f, 17.f});
  EXPECT_TRUE(identical(single.forward(x, t, ehs), folder.forward(x, t, ehs)));
}

TEST(SingleFileSd, VaeEqualsFolderLoad) {
  const auto ckpt = ld::SingleFileCheckpoint::open(sf("sd15.safetensors"), sd15_options());
  auto single = ld::load_vae(ckpt);
  auto folder = md::AutoencoderKL::load(data_dir() / "vae/sd_tiny");
  round_params(folder, DType::f16);
  EXPECT_TRUE(same_params(single, folder));
  const Tensor img = random_tensor({1, 3, 16, 24}, 3), z = random_tensor({2, 4, 3, 5}, 4);
  EXPECT_TRUE(identical(single.encode(img).mean, folder.encode(img).mean));
  EXPECT_TRUE(identical(single.decode(z), folder.decode(z)));
}

TEST(SingleFileSd, ClipEqualsFolderLoad) {
  const auto ckpt = ld::SingleFileCheckpoint::open(sf("sd15.safetensors"), sd15_options());
  auto single = ld::load_clip_text(ckpt, "text_encoder");
  auto folder = md::ClipTextModel::load(data_dir() / "clip/text_encoder");
  round_params(folder, DType::f16);
  EXPECT_TRUE(same_params(single, folder));
  const std::vector<std::vector<int32_t>> ids = {{672, 5, 99, 301, 2, 1, 1},
                                                 {672, 44, 2, 1, 1, 1, 1}};
  const auto a = single.forward(ids), b = folder.forward(ids);
  EXPECT_TRUE(identical(a.last_hidden_state, b.last_hidden_state));
  EXPECT_TRUE(identical(a.pooled, b.pooled));
}

// ---------------------------------------------------------------- SD2 / SDXL / inpainting
// layouts.json: names and shapes of the original layouts of the other U-Net fixtures with the
// VAE and OpenCLIP / CLIP-L text encoders; weights are zeros. Binding proves that the tables map
// every original key onto the module tree (strict accounting) with the right shapes.

std::shared_ptr<MemoryWeights> layout(const std::string& name) {
  static const Json all = [] {
    std::ifstream f(sf("layouts.json"));
    return Json::parse(f);
  }();
  auto m = std::make_shared<MemoryWeights>();
  for (const auto& [k, v] : all.at(name).items())
    m->shapes[k] = Shape(std::span<const int64_t>(v.get<std::vector<int64_t>>()));
  return m;
}

struct LayoutCase {
  const char* name;
  const char* family;
  const char* variant;
  std::vector<std::string> components;
};

class SingleFileLayouts : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(SingleFileLayouts, DetectsAndBindsEveryKey) {
  const LayoutCase& c = GetParam();
  const Json unet = folder_config(std::string("unet/") + c.name);
  ld::SingleFileOptions o;
  o.config_overrides["unet"] = pick(unet, {"attention_head_dim", "norm_num_groups"});
  if (unet["addition_time_embed_dim"].is_number())
    o.config_overrides["unet"]["addition_time_embed_dim"] = unet["addition_time_embed_dim"];
  o.config_overrides["vae"] = pick(folder_config("vae/sd_tiny"), {"norm_num_groups"});
  const auto ckpt = ld::SingleFileCheckpoint::from_source(layout(c.name), o);
  EXPECT_EQ(ckpt.family(), c.family);
  EXPECT_EQ(ckpt.variant(), c.variant);
  std::vector<std::string> names;
  for (const auto& comp : ckpt.components()) names.push_back(comp.name);
  EXPECT_EQ(names, c.components);
  expect_fields(ckpt.component("unet").config, unet,
                {"in_channels", "block_out_channels", "layers_per_block", "down_block_types",
                 "up_block_types", "cross_attention_dim", "use_linear_projection",
                 "transformer_layers_per_block", "projection_class_embeddings_input_dim"});
  EXPECT_NO_THROW(ld::load_unet(ckpt));
  EXPECT_NO_THROW(ld::load_vae(ckpt));
  for (const auto& comp : ckpt.components()) {
    if (comp.name.rfind("text_encoder", 0) != 0) continue;
    // Tiny encoders: hidden 32 / 16 with 4 heads.
    ld::SingleFileOptions o2 = o;
    o2.config_overrides[comp.name] = {{"num_attention_heads", 4}};
    const auto again = ld::SingleFileCheckpoint::from_source(layout(c.name), o2);
    EXPECT_NO_THROW(ld::load_clip_text(again, comp.name)) << comp.name;
  }
  EXPECT_TRUE(ckpt.unclaimed().empty()) << ckpt.unclaimed().front();
}

INSTANTIATE_TEST_SUITE_P(
    All, SingleFileLayouts,
    ::testing::Values(LayoutCase{"sd2", "sd2", "", {"unet", "vae", "text_encoder"}},
                      LayoutCase{
                          "sdxl", "sdxl", "", {"unet", "vae", "text_encoder", "text_encoder_2"}},
                      LayoutCase{"inpaint", "sd1", "inpainting", {"unet", "vae", "text_encoder"}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(SingleFileSd, OpenClipSplitsAndTransposes) {
  // SDXL's OpenCLIP: in_proj_weight (3D, D) -> q/k/v (D, D); text_projection (D, P) -> (P, D).
  const auto ckpt = ld::SingleFileCheckpoint::from_source(layout("sdxl"));
  const auto& w = *ckpt.component("text_encoder_2").weights;
  EXPECT_EQ(w.info("text_model.encoder.layers.1.self_attn.k_proj.weight").shape, (Shape{16, 16}));
  EXPECT_EQ(w.info("text_model.encoder.layers.1.self_attn.v_proj.bias").shape, (Shape{16}));
  EXPECT_EQ(w.info("text_projection.weight").shape, (Shape{16, 16}));
  EXPECT_EQ(w.mappings().at("text_model.encoder.layers.1.self_attn.v_proj.weight").offset, 32);
  EXPECT_EQ(ckpt.component("text_encoder_2").config["num_hidden_layers"], 2);
  // SD2 drops OpenCLIP's last resblock (diffusers' SD2 text_encoder is the penultimate stack).
  const auto sd2 = ld::SingleFileCheckpoint::from_source(layout("sd2"));
  EXPECT_EQ(sd2.component("text_encoder").config["num_hidden_layers"], 1);
  EXPECT_FALSE(sd2.component("text_encoder").weights->has("text_projection.weight"));
}

// ---------------------------------------------------------------- Flux

// The RoPE axes split is not in the weights; the tiny model's (4, 6, 6) replaces Flux's.
ld::SingleFileOptions flux_options() {
  ld::SingleFileOptions o;
  o.config_overrides["transformer"] = pick(folder_config("flux/dev"), {"axes_dims_rope"});
  return o;
}

TEST(SingleFileFlux, DetectsDevAndEqualsFolderLoad) {
  const auto ckpt = ld::SingleFileCheckpoint::open(sf("flux_dev.safetensors"), flux_options());
  EXPECT_EQ(ckpt.family(), "flux");
  EXPECT_EQ(ckpt.variant(), "dev");
  expect_fields(ckpt.component("transformer").config, folder_config("flux/dev"),
                {"patch_size", "in_channels", "out_channels", "num_layers", "num_single_layers",
                 "attention_head_dim", "num_attention_heads", "joint_attention_dim",
                 "pooled_projection_dim", "guidance_embeds"});
  EXPECT_TRUE(ckpt.unclaimed().empty());
  auto single = ld::load_flux_transformer(ckpt);
  auto folder = md::FluxTransformer2DModel::load(data_dir() / "flux/dev");  // bf16 in both
  EXPECT_TRUE(same_params(single, folder));
  const int64_t h = 3, w = 5, s = 6;
  const Tensor x = random_tensor({2, h * w, 16}, 5), ctx = random_tensor({2, s, 32}, 6);
  const Tensor pooled = random_tensor({2, 32}, 7), t = Tensor::from_f32({2}, {1.f, 0.25f});
  const Tensor g = Tensor::from_f32({2}, {3.5f, 1.f});
  const Tensor img_ids = md::flux::latent_image_ids(h, w), txt_ids = md::flux::text_ids(s);
  EXPECT_TRUE(identical(single.forward(x, ctx, pooled, t, img_ids, txt_ids, g),
                        folder.forward(x, ctx, pooled, t, img_ids, txt_ids, g)));
}

TEST(SingleFileFlux, SchnellAndPrefixedLayouts) {
  // Without guidance_in the file is schnell; ComfyUI re-saves prefix model.diffusion_model.
  auto src = io::SafetensorsFile::open(sf("flux_dev.safetensors"));
  auto m = std::make_shared<MemoryWeights>();
  for (const auto& n : src->names())
    if (n.rfind("guidance_in.", 0) != 0) m->tensors["model.diffusion_model." + n] = src->get(n);
  const auto ckpt = ld::SingleFileCheckpoint::from_source(m, flux_options());
  EXPECT_EQ(ckpt.variant(), "schnell");
  EXPECT_EQ(ckpt.component("transformer").config["guidance_embeds"], false);
  EXPECT_NO_THROW(ld::load_flux_transformer(ckpt));
}

TEST(SingleFileFlux, Fp8StorageConvertsOnLoad) {
  // The same file with every tensor stored as float8_e4m3fn: the splits and the half swap work
  // on the stored bytes, io::bind widens to f32 once; equal to the folder load rounded to fp8.
  auto src = io::SafetensorsFile::open(sf("flux_dev.safetensors"));
  auto m = std::make_shared<MemoryWeights>();
  for (const auto& n : src->names()) m->tensors[n] = src->get(n).to(DType::f8_e4m3);
  const auto ckpt = ld::SingleFileCheckpoint::from_source(m, flux_options());
  EXPECT_EQ(
      ckpt.component("transformer").weights->info("transformer_blocks.0.attn.to_k.weight").dtype,
      DType::f8_e4m3);
  auto single = ld::load_flux_transformer(ckpt);
  auto folder = md::FluxTransformer2DModel::load(data_dir() / "flux/dev");
  round_params(folder, DType::f8_e4m3);
  EXPECT_TRUE(same_params(single, folder));
}

// ---------------------------------------------------------------- SD3 / SD3.5

class SingleFileSd3 : public ::testing::TestWithParam<const char*> {};

TEST_P(SingleFileSd3, DetectsAndEqualsFolderLoad) {
  const std::string name = GetParam();
  const Json folder_cfg = folder_config("sd3/" + name);
  ld::SingleFileOptions o;
  o.config_overrides["transformer"] =
      pick(folder_cfg, {"sample_size", "attention_head_dim", "num_attention_heads"});
  const auto ckpt = ld::SingleFileCheckpoint::open(sf(name + ".safetensors"), o);
  EXPECT_EQ(ckpt.family(), "sd3");
  EXPECT_EQ(ckpt.variant(), name);
  expect_fields(ckpt.component("transformer").config, folder_cfg,
                {"patch_size", "in_channels", "num_layers", "joint_attention_dim",
                 "caption_projection_dim", "pooled_projection_dim", "out_channels",
                 "pos_embed_max_size", "dual_attention_layers", "qk_norm"});
  if (name == "sd35")  // the qk-norm width gives the head size
    expect_fields(
        ld::SingleFileCheckpoint::open(sf(name + ".safetensors")).component("transformer").config,
        folder_cfg, {"attention_head_dim", "num_attention_heads"});
  EXPECT_TRUE(ckpt.unclaimed().empty());
  auto single = ld::load_sd3_transformer(ckpt);
  auto folder = md::SD3Transformer2DModel::load(data_dir() / ("sd3/" + name));
  if (name == "sd3") round_params(folder, DType::f16);  // the fixture stores sd3 in f16
  EXPECT_TRUE(same_params(single, folder));
  const Tensor x = random_tensor({2, 4, 12, 8}, 8), ctx = random_tensor({2, 5, 32}, 9);
  const Tensor pooled = random_tensor({2, 32}, 10), t = Tensor::from_f32({2}, {500.f, 3.f});
  EXPECT_TRUE(identical(single.forward(x, ctx, pooled, t), folder.forward(x, ctx, pooled, t)));
}

INSTANTIATE_TEST_SUITE_P(All, SingleFileSd3, ::testing::Values("sd3", "sd35"));

// ---------------------------------------------------------------- one component alone

TEST(SingleFileSd, StandaloneVaeAndUnetOnlyFiles) {
  // A VAE saved alone (no first_stage_model. prefix), e.g. vae-ft-mse-840000-ema-pruned.
  auto src = io::SafetensorsFile::open(sf("sd15.safetensors"));
  auto vae_only = std::make_shared<MemoryWeights>();
  const std::string vp = "first_stage_model.";
  for (const auto& n : src->names())
    if (n.rfind(vp, 0) == 0) vae_only->tensors[n.substr(vp.size())] = src->get(n);
  ld::SingleFileOptions o;
  o.config_overrides["vae"] = pick(folder_config("vae/sd_tiny"), {"norm_num_groups"});
  const auto vckpt = ld::SingleFileCheckpoint::from_source(vae_only, o);
  EXPECT_EQ(vckpt.family(), "sd_vae");
  auto single = ld::load_vae(vckpt);
  auto folder = md::AutoencoderKL::load(data_dir() / "vae/sd_tiny");
  round_params(folder, DType::f16);
  EXPECT_TRUE(same_params(single, folder));
  // A U-Net without text encoders: SDXL by its added-conditioning projection.
  auto unet_only = std::make_shared<MemoryWeights>();
  const auto sdxl = layout("sdxl");
  for (const auto& [k, v] : sdxl->shapes)
    if (k.rfind("model.diffusion_model.", 0) == 0) unet_only->shapes[k] = v;
  const auto uckpt = ld::SingleFileCheckpoint::from_source(unet_only);
  EXPECT_EQ(uckpt.family(), "sdxl");
  EXPECT_EQ(uckpt.components().size(), 1u);
}

TEST(SingleFileSd3Bundle, VaeAndClipsOfAllInOneFiles) {
  // sd3_medium_incl_clips-style: the transformer plus first_stage_model.* (LDM VAE) and
  // text_encoders.clip_l/clip_g.transformer.* (transformers names, with projection); the VAE
  // and CLIP-L here are the SD1 fixture's, re-prefixed.
  auto m = copy_of(*io::SafetensorsFile::open(sf("sd35.safetensors")));
  auto sd15 = io::SafetensorsFile::open(sf("sd15.safetensors"));
  const std::string vp = "first_stage_model.", cp = "cond_stage_model.transformer.";
  for (const auto& n : sd15->names()) {
    if (n.rfind(vp, 0) == 0) m->tensors[n] = sd15->get(n);
    if (n.rfind(cp, 0) == 0)
      m->tensors["text_encoders.clip_l.transformer." + n.substr(cp.size())] = sd15->get(n);
  }
  m->tensors["text_encoders.clip_l.transformer.text_projection.weight"] =
      Tensor::zeros({32, 32}, DType::f16);
  m->tensors["text_encoders.t5xxl.transformer.shared.weight"] = Tensor::zeros({4, 4});
  ld::SingleFileOptions o = sd15_options();
  o.config_overrides.erase("unet");
  o.config_overrides["transformer"] = pick(folder_config("sd3/sd35"), {"sample_size"});
  const auto ckpt = ld::SingleFileCheckpoint::from_source(m, o);
  std::vector<std::string> names;
  for (const auto& c : ckpt.components()) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"transformer", "vae", "text_encoder"}));
  EXPECT_EQ(ckpt.component("vae").config["shift_factor"], 0.0609);
  EXPECT_EQ(ckpt.component("text_encoder").class_name, "CLIPTextModelWithProjection");
  EXPECT_EQ(ckpt.unclaimed(),
            (std::vector<std::string>{"text_encoders.t5xxl.transformer.shared.weight"}));
  auto vae = ld::load_vae(ckpt);
  auto folder = md::AutoencoderKL::load(data_dir() / "vae/sd_tiny");
  round_params(folder, DType::f16);
  EXPECT_TRUE(same_params(vae, folder));
  const auto te = ld::load_clip_text(ckpt, "text_encoder");
  EXPECT_TRUE(te.with_projection());
}

// ---------------------------------------------------------------- errors

TEST(SingleFileErrors, UnknownCheckpointListsWhatWasLookedFor) {
  auto m = std::make_shared<MemoryWeights>();
  m->tensors["some.other.weight"] = Tensor::zeros({2, 2});
  EXPECT_TRUE(
      throws_error([&] { ld::SingleFileCheckpoint::from_source(m); }, Status::format_error,
                   {"not a single-file checkpoint", "model.diffusion_model.input_blocks.0.0.weight",
                    "double_blocks.0.img_attn.norm.key_norm.scale",
                    "joint_blocks.0.x_block.attn.qkv.weight", "some.other.weight"}));
}

TEST(SingleFileErrors, MissingAndExtraTensorsAreListed) {
  auto m = copy_of(*io::SafetensorsFile::open(sf("flux_dev.safetensors")));
  m->tensors.erase("single_blocks.1.linear2.weight");
  m->tensors["double_blocks.0.img_attn.extra.weight"] = Tensor::zeros({2});
  const auto ckpt = ld::SingleFileCheckpoint::from_source(m, flux_options());
  EXPECT_TRUE(throws_error([&] { ld::load_flux_transformer(ckpt); }, Status::format_error,
                           {"single_transformer_blocks.1.proj_out.weight",
                            "double_blocks.0.img_attn.extra.weight", "as transformer"}));
}

TEST(SingleFileErrors, BadShapesAndNames) {
  auto m = copy_of(*io::SafetensorsFile::open(sf("sd35.safetensors")));
  // A fused qkv whose rows are not a multiple of 3.
  m->tensors["model.diffusion_model.joint_blocks.0.x_block.attn.qkv.bias"] = Tensor::zeros({47});
  EXPECT_TRUE(throws_error([&] { ld::SingleFileCheckpoint::from_source(m); }, Status::format_error,
                           {"joint_blocks.0.x_block.attn.qkv.bias", "cannot be split"}));
  const auto ok = ld::SingleFileCheckpoint::open(sf("sd35.safetensors"));
  EXPECT_TRUE(throws_error([&] { ok.component("unet"); }, Status::not_found, {"transformer"}));
  EXPECT_TRUE(throws_error([&] { ld::load_unet(ok); }, Status::not_found, {"unet"}));
  ld::SingleFileOptions o;
  o.config_overrides["vae"] = Json::object();
  EXPECT_TRUE(throws_error([&] { ld::SingleFileCheckpoint::open(sf("sd35.safetensors"), o); },
                           Status::invalid_argument, {"vae"}));
}

TEST(SingleFileErrors, RenamedWeightsPatterns) {
  std::vector<std::string> n;
  EXPECT_EQ(ld::match_pattern("double_blocks.{}.img.", "double_blocks.12.img.weight", n), 21);
  EXPECT_EQ(n, (std::vector<std::string>{"12"}));
  EXPECT_EQ(ld::match_pattern("double_blocks.{}.img.", "double_blocks.x.img.weight", n), -1);
  EXPECT_EQ(ld::match_pattern("input_blocks.1.", "input_blocks.10.0.weight", n), -1);
}

// ---------------------------------------------------------------- describe

TEST(SingleFileDescribe, CountsPerComponent) {
  const auto d = ld::describe_checkpoint(sf("sd15.safetensors"));
  EXPECT_EQ(d.family, "sd1");
  ASSERT_EQ(d.components.size(), 3u);
  const auto& unet = d.components[0];
  EXPECT_EQ(unet.name, "unet");
  EXPECT_EQ(unet.tensors, 326u);  // the diffusers folder's key count
  EXPECT_EQ(unet.parameters, 303420);
  EXPECT_EQ(unet.dtypes.at("f16"), 326u);
  const auto f = ld::describe_checkpoint(sf("flux_dev.safetensors"));
  EXPECT_EQ(f.components.at(0).dtypes.begin()->first, "bf16");
  EXPECT_EQ(f.components.at(0).tensors, 80u);  // split qkv/linear1 counted as diffusers tensors
}

}  // namespace
}  // namespace kiln::test
