// AutoencoderKL parity with diffusers on tiny random configs (tests/data/vae, written by
// tests/reference/make_vae_fixtures.py): encode (mean, logvar, a seeded sample), decode, tiled
// decode and tiled encode with the config's and with hand-set tile sizes; loading f32/bf16/f16
// folders; strict key accounting; input and config validation; latent scaling.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/rng/generator.hpp"
#include "pipeline_test_util.hpp"

namespace kiln::test {
namespace {

using pipelines::models::AutoencoderKL;
using pipelines::models::AutoencoderKLConfig;
using pipelines::models::LatentDist;
using pipelines::models::VaeTiling;

// f32 against diffusers in f32: the only differences are summation orders (conv GEMMs,
// group-norm statistics, attention softmax).
constexpr double kRelL2 = 1e-5;

std::filesystem::path vae_dir(const std::string& name) {
  return data_dir() / "vae" / name;
}

const io::SafetensorsFile& goldens() {
  static const auto f = io::SafetensorsFile::open(vae_dir("goldens.safetensors"));
  return *f;
}

Tensor golden(const std::string& name) {
  return goldens().get(name);
}

const AutoencoderKL& model(const std::string& name) {
  static std::map<std::string, AutoencoderKL> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, AutoencoderKL::load(vae_dir(name))).first;
  return it->second;
}

::testing::AssertionResult matches(const Tensor& actual, const std::string& golden_name) {
  return matches_golden(actual, golden(golden_name), golden_name, kRelL2);
}

int64_t meta_int(const std::string& key) {
  return std::stoll(goldens().metadata().at(key));
}

// ------------------------------------------------------------------ config and loading

TEST(AutoencoderKL, ConfigFromDiffusersFolders) {
  const auto& sd = model("sd_tiny").config;
  EXPECT_EQ(sd.latent_channels, 4);
  EXPECT_EQ(sd.block_out_channels, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(sd.downscale_factor(), 2);
  EXPECT_DOUBLE_EQ(sd.scaling_factor, 0.18215);
  EXPECT_FALSE(sd.shift_factor.has_value());
  EXPECT_TRUE(sd.use_quant_conv && sd.use_post_quant_conv);
  EXPECT_TRUE(model("sd_tiny").quant_conv.has_value());

  const auto& flux = model("flux_tiny");
  EXPECT_EQ(flux.config.latent_channels, 16);
  EXPECT_EQ(flux.downscale_factor(), 4);
  ASSERT_TRUE(flux.config.shift_factor.has_value());
  EXPECT_DOUBLE_EQ(*flux.config.shift_factor, 0.1159);
  EXPECT_FALSE(flux.quant_conv.has_value() || flux.post_quant_conv.has_value());
  // Stored in bf16, widened on load.
  EXPECT_EQ(flux.encoder.conv_in.weight.dtype(), DType::f32);
  EXPECT_EQ(model("noattn_tiny").decoder.conv_out.weight.dtype(), DType::f32);
  EXPECT_FALSE(model("noattn_tiny").decoder.mid_block.attention.has_value());
}

TEST(AutoencoderKL, ParameterNamesAreDiffusersKeys) {
  AutoencoderKL m(model("sd_tiny").config);
  auto params = io::collect_params(m);
  auto src = io::open_weights(vae_dir("sd_tiny"));
  EXPECT_EQ(params.size(), src->names().size());
  std::vector<std::string> names;
  for (const auto& p : params) names.push_back(p.name);
  for (const char* key : {"encoder.conv_in.weight", "encoder.down_blocks.0.resnets.0.norm1.weight",
                          "encoder.down_blocks.0.downsamplers.0.conv.weight",
                          "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
                          "decoder.mid_block.attentions.0.to_q.weight",
                          "decoder.mid_block.attentions.0.group_norm.bias",
                          "decoder.up_blocks.0.upsamplers.0.conv.weight", "quant_conv.weight",
                          "post_quant_conv.bias"})
    EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << key;
}

// ------------------------------------------------------------------ parity

class Parity : public ::testing::TestWithParam<const char*> {};

TEST_P(Parity, Encode) {
  const std::string n = GetParam();
  LatentDist d = model(n).encode(golden(n + ".encode.x"));
  EXPECT_TRUE(matches(d.mean, n + ".encode.mean"));
  EXPECT_TRUE(matches(d.logvar, n + ".encode.logvar"));
  EXPECT_EQ(d.mode().storage(), d.mean.storage());
}

TEST_P(Parity, Decode) {
  const std::string n = GetParam();
  EXPECT_TRUE(matches(model(n).decode(golden(n + ".decode.z")), n + ".decode.out"));
}

INSTANTIATE_TEST_SUITE_P(Vae, Parity, ::testing::Values("sd_tiny", "flux_tiny", "noattn_tiny"));

TEST(AutoencoderKL, SampleMatchesTorchCpuGenerator) {
  // DiagonalGaussianDistribution.sample(generator=torch.Generator().manual_seed(42)).
  LatentDist d = model("sd_tiny").encode(golden("sd_tiny.encode.x"));
  auto gen = rng::Generator::torch_cpu(42);
  EXPECT_TRUE(matches(d.sample(gen), "sd_tiny.encode.sample_seed42"));
}

class TiledParity : public ::testing::TestWithParam<const char*> {};

TEST_P(TiledParity, DecodeWithConfigTiles) {
  const std::string n = GetParam();
  const auto& m = model(n);
  EXPECT_EQ(m.config.sample_size, meta_int(n + ".tile_sample_min_size"));
  Tensor z = golden(n + ".tiled_decode.z");
  // enable_tiling(): z is larger than a tile, so decode() tiles it.
  EXPECT_TRUE(matches(m.decode(z, VaeTiling{}), n + ".tiled_decode.out"));
  EXPECT_TRUE(matches(m.tiled_decode(z), n + ".tiled_decode.out"));
  // The tiles and blends matter: the plain decode of the same latents is clearly different.
  Tensor plain = m.decode(z);
  ASSERT_EQ(plain.shape(), golden(n + ".tiled_decode.out").shape());
  EXPECT_GT(compare(plain, to_doubles(golden(n + ".tiled_decode.out"))).rel_l2, 1e-2);
}

TEST_P(TiledParity, DecodeWithHandSetTiles) {
  const std::string n = GetParam();
  VaeTiling t;
  t.sample_min_size = meta_int(n + ".custom_tile_sample_min_size");
  t.latent_min_size = meta_int(n + ".custom_tile_latent_min_size");
  // Several tiles per axis, a last tile row of one latent row, and (for these sizes) an output
  // taller than h * factor, exactly as diffusers produces it.
  EXPECT_TRUE(matches(model(n).decode(golden(n + ".tiled_decode_custom.z"), t),
                      n + ".tiled_decode_custom.out"));
}

TEST_P(TiledParity, Encode) {
  const std::string n = GetParam();
  LatentDist d = model(n).encode(golden(n + ".tiled_encode.x"), VaeTiling{});
  EXPECT_TRUE(matches(d.mean, n + ".tiled_encode.mean"));
  EXPECT_TRUE(matches(d.logvar, n + ".tiled_encode.logvar"));
}

INSTANTIATE_TEST_SUITE_P(Vae, TiledParity, ::testing::Values("sd_tiny", "flux_tiny"));

TEST(AutoencoderKL, TilingLeavesInputsThatFitOneTileAlone) {
  const auto& m = model("sd_tiny");
  Tensor z = golden("sd_tiny.decode.z");  // 7x5 latents <= 8-latent tiles
  Diff d = compare(m.decode(z, VaeTiling{}), to_doubles(m.decode(z)));
  EXPECT_EQ(d.max_abs, 0.0);
  Tensor x = golden("sd_tiny.encode.x");  // 12x10 pixels <= 16-pixel tiles
  d = compare(m.encode(x, VaeTiling{}).mean, to_doubles(m.encode(x).mean));
  EXPECT_EQ(d.max_abs, 0.0);
}

// ------------------------------------------------------------------ latent scaling

TEST(AutoencoderKL, LatentScalingAsPipelines) {
  Tensor z = random_tensor({1, 16, 3, 2}, 7, -3.f, 3.f);
  const auto& flux = model("flux_tiny");
  // SD3/Flux: (z - shift) * scale; decode side latents / scale + shift.
  Tensor lat = flux.to_latent(z);
  std::vector<double> zv = to_doubles(z), want(zv.size()), back(zv.size());
  const float sh = 0.1159f, sc = 0.3611f;
  for (size_t i = 0; i < zv.size(); ++i) want[i] = (static_cast<float>(zv[i]) - sh) * sc;
  EXPECT_TRUE(all_close(lat, want, 0, 0));
  EXPECT_TRUE(all_close(flux.from_latent(lat), zv, 1e-6, 1e-6));

  Tensor z4 = z.narrow(1, 0, 4).contiguous();
  const auto& sd = model("sd_tiny");
  std::vector<double> z4v = to_doubles(z4), w4(z4v.size());
  for (size_t i = 0; i < z4v.size(); ++i) w4[i] = static_cast<float>(z4v[i]) * 0.18215f;
  EXPECT_TRUE(all_close(sd.to_latent(z4), w4, 0, 0));
  for (size_t i = 0; i < z4v.size(); ++i) w4[i] = static_cast<float>(z4v[i]) / 0.18215f;
  EXPECT_TRUE(all_close(sd.from_latent(z4), w4, 0, 0));

  // SDXL-style latents_mean / latents_std (per channel).
  AutoencoderKLConfig c = sd.config;
  c.latents_mean = {0.5, -0.25, 0.0, 1.0};
  c.latents_std = {2.0, 0.5, 1.0, 4.0};
  AutoencoderKL m(c);
  Tensor s = m.to_latent(z4);
  std::vector<double> sv = to_doubles(s);
  const int64_t plane = 3 * 2;
  for (size_t i = 0; i < z4v.size(); ++i) {
    const size_t ch = i / plane;
    const float t = (static_cast<float>(z4v[i]) - static_cast<float>(c.latents_mean[ch])) *
                    static_cast<float>(c.scaling_factor);
    EXPECT_EQ(sv[i], static_cast<double>(t / static_cast<float>(c.latents_std[ch])));
  }
  EXPECT_TRUE(all_close(m.from_latent(s), z4v, 1e-6, 1e-6));
}

// ------------------------------------------------------------------ strict loading

void write_component(const std::filesystem::path& dir, const std::map<std::string, Tensor>& w) {
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(vae_dir("sd_tiny") / "config.json", dir / "config.json");
  io::save_safetensors(dir / "diffusion_pytorch_model.safetensors", w);
}

TEST(AutoencoderKL, MissingAndUnexpectedKeysAreListed) {
  auto src = io::SafetensorsFile::open(vae_dir("sd_tiny") / "diffusion_pytorch_model.safetensors");
  std::map<std::string, Tensor> w;
  for (const auto& n : src->names()) w[n] = src->get(n);
  w.erase("decoder.mid_block.attentions.0.to_k.bias");
  w["decoder.mid_block.attentions.0.query.weight"] = Tensor::zeros({16, 16});
  TempDir tmp;
  write_component(tmp.path / "vae", w);
  try {
    AutoencoderKL::load(tmp.path / "vae");
    FAIL() << "expected a binding error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Status::format_error);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("1 missing: decoder.mid_block.attentions.0.to_k.bias"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("1 unexpected: decoder.mid_block.attentions.0.query.weight"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("diffusion_pytorch_model.safetensors"), std::string::npos) << msg;
  }
}

TEST(AutoencoderKL, WrongShapeIsReported) {
  auto src = io::SafetensorsFile::open(vae_dir("sd_tiny") / "diffusion_pytorch_model.safetensors");
  std::map<std::string, Tensor> w;
  for (const auto& n : src->names()) w[n] = src->get(n);
  w["quant_conv.weight"] = Tensor::zeros({8, 8, 3, 3});
  TempDir tmp;
  write_component(tmp.path / "vae", w);
  try {
    AutoencoderKL::load(tmp.path / "vae");
    FAIL() << "expected a binding error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quant_conv.weight: expected (8, 8, 1, 1)"),
              std::string::npos)
        << e.what();
  }
}

// ------------------------------------------------------------------ validation

template <typename F>
std::string error_of(F f, Status expected = Status::invalid_argument) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), expected) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

TEST(AutoencoderKL, BadInputsAreClearErrors) {
  const auto& flux = model("flux_tiny");  // downscale factor 4
  std::string e = error_of([&] { flux.encode(Tensor::zeros({1, 4, 32, 32})); });
  EXPECT_TRUE(contains(e, "has 4 channels, expected (B, 3, H, W)")) << e;
  e = error_of([&] { flux.encode(Tensor::zeros({1, 3, 30, 32})); });
  EXPECT_TRUE(contains(e, "image size 30x32 is not a multiple of 4")) << e;
  e = error_of([&] { flux.tiled_encode(Tensor::zeros({1, 3, 32, 34})); });
  EXPECT_TRUE(contains(e, "is not a multiple of 4")) << e;
  e = error_of([&] { flux.encode(Tensor::zeros({3, 32, 32})); });
  EXPECT_TRUE(contains(e, "AutoencoderKL.encode")) << e;
  e = error_of([&] { flux.decode(Tensor::zeros({1, 4, 8, 8})); });
  EXPECT_TRUE(contains(e, "have 4 channels, expected (B, 16, h, w)")) << e;
  e = error_of([&] { model("sd_tiny").decode(Tensor::zeros({1, 16, 8, 8}), VaeTiling{}); });
  EXPECT_TRUE(contains(e, "expected (B, 4, h, w)")) << e;
  e = error_of([&] { flux.decode(Tensor::zeros({1, 16, 8, 8}, DType::f16)); });
  EXPECT_TRUE(contains(e, "latents")) << e;
  VaeTiling bad;
  bad.overlap_factor = 1.0;
  e = error_of([&] { flux.tiled_decode(Tensor::zeros({1, 16, 8, 8}), bad); });
  EXPECT_TRUE(contains(e, "overlap_factor")) << e;
  bad = VaeTiling{};
  bad.sample_min_size = 2;  // smaller than one latent (4 px)
  e = error_of([&] { flux.tiled_decode(Tensor::zeros({1, 16, 8, 8}), bad); });
  EXPECT_TRUE(contains(e, "smaller than one latent")) << e;
}

TEST(AutoencoderKL, BadConfigsAreRefused) {
  auto parse = [](nlohmann::json j) {
    return AutoencoderKLConfig::from_json(io::ComponentConfig(std::move(j), "vae/config.json"));
  };
  std::ifstream f(vae_dir("sd_tiny") / "config.json");
  const nlohmann::json base = nlohmann::json::parse(f);

  auto j = base;
  j["_class_name"] = "AutoencoderKLWan";  // another class: the caller's folder is not this one
  std::string e = error_of([&] { parse(j); }, Status::invalid_argument);
  EXPECT_TRUE(contains(e, "vae/config.json") && contains(e, "AutoencoderKLWan")) << e;
  j = base;
  j["up_block_types"][0] = "AttnUpDecoderBlock2D";
  e = error_of([&] { parse(j); }, Status::unsupported);
  EXPECT_TRUE(contains(e, "AttnUpDecoderBlock2D")) << e;
  j = base;
  j["down_block_types"] = {"DownEncoderBlock2D"};
  e = error_of([&] { parse(j); }, Status::format_error);
  EXPECT_TRUE(contains(e, "down_block_types has 1 entries")) << e;
  j = base;
  j["norm_num_groups"] = 3;
  e = error_of([&] { parse(j); }, Status::format_error);
  EXPECT_TRUE(contains(e, "not a positive multiple of norm_num_groups 3")) << e;
  j = base;
  j["act_fn"] = "gelu";
  error_of([&] { parse(j); }, Status::unsupported);
  j = base;
  j["latents_mean"] = {0.1, 0.2, 0.3, 0.4};
  e = error_of([&] { parse(j); }, Status::format_error);
  EXPECT_TRUE(contains(e, "set together")) << e;
  j = base;
  j["sample_size"] = {24, 32};  // a list: diffusers tiles with the first entry
  EXPECT_EQ(parse(j).sample_size, 24);
}

}  // namespace
}  // namespace kiln::test
