// Sharded checkpoints, open_weights() path resolution, diffusers folders and config getters.
#include <gtest/gtest.h>

#include "io_test_util.hpp"
#include "kiln/io/diffusers.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/io/sharded.hpp"

namespace kiln::test {
namespace {

namespace fs = std::filesystem;

TEST(Sharded, ReadsReferenceShardsExactly) {
  auto w = io::ShardedWeights::open(io_data("sharded/model.safetensors.index.json"));
  EXPECT_EQ(w->names(), (std::vector<std::string>{"a.weight", "b.weight", "c.bias"}));
  EXPECT_EQ(w->shards().size(), 2u);
  EXPECT_EQ(w->index_metadata()["total_size"].get<int64_t>(), 16 + 6 + 4);
  auto exp = read_json_file(io_data("sharded/expected.json"));
  for (const auto& [name, e] : exp.items()) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(w->has(name));
    EXPECT_TRUE(matches_expected(w->get(name), e));
  }
  EXPECT_EQ(w->info("c.bias").file.filename(), "model-00002-of-00002.safetensors");
  EXPECT_EQ(w->info("a.weight").shape, Shape({2, 2}));
  EXPECT_EQ(to_doubles(w->get("c.bias")), (std::vector<double>{1.0, -3.0}));
  EXPECT_TRUE(throws_error([&] { w->get("zz"); }, Status::not_found, {"zz", "index.json"}));
}

// Copies the reference sharded set into a temp dir and rewrites its index.
struct ShardedCopy {
  TempDir dir;
  ShardedCopy() {
    for (auto& e : fs::directory_iterator(io_data("sharded")))
      fs::copy_file(e.path(), dir.path / e.path().filename());
  }
  fs::path index() const { return dir.path / "model.safetensors.index.json"; }
  void write_index(const nlohmann::json& j) const { write_bytes(index(), j.dump()); }
  nlohmann::json read_index() const { return read_json_file(index()); }
};

TEST(Sharded, MissingShardIsNotFound) {
  ShardedCopy c;
  fs::remove(c.dir.path / "model-00002-of-00002.safetensors");
  EXPECT_TRUE(throws_error([&] { io::ShardedWeights::open(c.index()); }, Status::not_found,
                           {"model-00002-of-00002.safetensors", "missing"}));
}

TEST(Sharded, ListedTensorAbsentFromItsShard) {
  ShardedCopy c;
  auto j = c.read_index();
  j["weight_map"]["ghost.weight"] = "model-00001-of-00002.safetensors";
  j["weight_map"]["ghost2.weight"] = "model-00002-of-00002.safetensors";
  c.write_index(j);
  EXPECT_TRUE(throws_error(
      [&] { io::ShardedWeights::open(c.index()); }, Status::format_error,
      {"2 tensor(s) listed in the index are missing", "ghost.weight", "ghost2.weight"}));
}

TEST(Sharded, ShardWithUnlistedOrMisassignedTensors) {
  ShardedCopy c;
  auto j = c.read_index();
  j["weight_map"].erase("b.weight");
  c.write_index(j);
  EXPECT_TRUE(throws_error(
      [&] { io::ShardedWeights::open(c.index()); }, Status::format_error,
      {"not assigned to that shard", "b.weight (in model-00001-of-00002.safetensors)"}));
  // Listed, but in the other shard: both directions are reported.
  j["weight_map"]["b.weight"] = "model-00002-of-00002.safetensors";
  c.write_index(j);
  EXPECT_TRUE(throws_error([&] { io::ShardedWeights::open(c.index()); }, Status::format_error,
                           {"missing from their shard", "b.weight"}));
}

TEST(Sharded, MalformedIndex) {
  ShardedCopy c;
  write_bytes(c.index(), "{not json");
  EXPECT_TRUE(throws_error([&] { io::ShardedWeights::open(c.index()); }, Status::format_error,
                           {"index.json", "not valid JSON"}));
  c.write_index({{"metadata", {}}});
  EXPECT_TRUE(throws_error([&] { io::ShardedWeights::open(c.index()); }, Status::format_error,
                           {"no \"weight_map\""}));
  c.write_index({{"weight_map", {{"a.weight", 3}}}});
  EXPECT_TRUE(throws_error([&] { io::ShardedWeights::open(c.index()); }, Status::format_error,
                           {"'a.weight'", "expected a shard file name"}));
  c.write_index({{"weight_map", {{"a.weight", "../../etc/passwd"}}}});
  EXPECT_TRUE(throws_error([&] { io::ShardedWeights::open(c.index()); }, Status::format_error,
                           {"relative path inside"}));
}

TEST(OpenWeights, ResolvesFilesIndexesAndDirectories) {
  auto single = io::open_weights(io_data("mixed.safetensors"));
  EXPECT_TRUE(single->has("w_bf16"));
  EXPECT_NE(dynamic_cast<io::SafetensorsFile*>(single.get()), nullptr);

  auto sharded = io::open_weights(io_data("sharded/model.safetensors.index.json"));
  EXPECT_NE(dynamic_cast<io::ShardedWeights*>(sharded.get()), nullptr);
  // A directory with only the index form.
  auto by_dir = io::open_weights(io_data("sharded"));
  EXPECT_NE(dynamic_cast<io::ShardedWeights*>(by_dir.get()), nullptr);
  EXPECT_EQ(by_dir->names().size(), 3u);

  auto unet = io::open_weights(io_data("tiny_pipe/unet"));
  EXPECT_EQ(fs::path(unet->describe()).filename(), "diffusion_pytorch_model.safetensors");
  auto te = io::open_weights(io_data("tiny_pipe/text_encoder"));
  EXPECT_EQ(fs::path(te->describe()).filename(), "model.safetensors");

  EXPECT_TRUE(throws_error([] { io::open_weights(io_data("no_such_thing")); }, Status::not_found,
                           {"no_such_thing"}));
  EXPECT_TRUE(throws_error([] { io::open_weights(io_data("tiny_pipe/unet/config.json")); },
                           Status::format_error, {"weight_map"}));
}

TEST(OpenWeights, DirectoryPrefersSingleFileAndReportsAmbiguityOrNothing) {
  TempDir dir;
  io::save_safetensors(dir.path / "diffusion_pytorch_model.safetensors",
                       {{"x", Tensor::from_f32({1}, {1})}});
  fs::copy_file(io_data("sharded/model.safetensors.index.json"),
                dir.path / "diffusion_pytorch_model.safetensors.index.json");
  auto w = io::open_weights(dir.path);  // the single file wins over the index of the same stem
  EXPECT_EQ(w->names(), std::vector<std::string>{"x"});

  io::save_safetensors(dir.path / "model.safetensors", {{"y", Tensor::from_f32({1}, {2})}});
  EXPECT_TRUE(throws_error([&] { io::open_weights(dir.path); }, Status::invalid_argument,
                           {"both", "diffusion_pytorch_model.safetensors", "model.safetensors"}));

  TempDir empty;
  write_bytes(empty.path / "diffusion_pytorch_model.bin", "x");
  write_bytes(empty.path / "notes.txt", "x");
  EXPECT_TRUE(throws_error([&] { io::open_weights(empty.path); }, Status::not_found,
                           {"holds none of", "found: diffusion_pytorch_model.bin"}));
}

TEST(Diffusers, ParsesModelIndexAndComponents) {
  auto f = io::DiffusersFolder::open(io_data("tiny_pipe"));
  EXPECT_EQ(f.class_name(), "KilnTinyPipeline");
  EXPECT_EQ(f.diffusers_version(), "0.31.0");
  std::vector<std::string> names;
  for (const auto& c : f.components()) names.push_back(c.name);
  EXPECT_EQ(names, (std::vector<std::string>{"feature_extractor", "safety_checker", "scheduler",
                                             "text_encoder", "unet"}));
  EXPECT_FALSE(f.component("safety_checker").present());
  EXPECT_FALSE(f.component("feature_extractor").present());
  EXPECT_EQ(f.component("unet").library, "diffusers");
  EXPECT_EQ(f.component("unet").class_name, "UNet2DConditionModel");
  EXPECT_EQ(f.component("text_encoder").library, "transformers");
  EXPECT_EQ(f.options()["requires_safety_checker"], false);
  EXPECT_FALSE(f.options().contains("_name_or_path"));
  EXPECT_TRUE(f.has_component("unet"));
  EXPECT_FALSE(f.has_component("vae"));
  EXPECT_TRUE(throws_error([&] { f.component("vae"); }, Status::not_found,
                           {"no component \"vae\"", "unet", "model_index.json"}));
  EXPECT_TRUE(throws_error([&] { f.weights("safety_checker"); }, Status::invalid_argument,
                           {"\"safety_checker\" is null"}));

  auto unet = f.weights("unet");
  EXPECT_EQ(unet->info("proj_in.weight").shape, Shape({8, 5}));
  EXPECT_EQ(unet->info("proj_in.weight").dtype, DType::f16);
  auto sched = f.config("scheduler");
  EXPECT_EQ(sched.file().filename(), "scheduler_config.json");
  EXPECT_EQ(sched.get_int("num_train_timesteps"), 1000);
  EXPECT_EQ(sched.get_string("beta_schedule"), "scaled_linear");
  EXPECT_DOUBLE_EQ(sched.get_float("beta_start"), 0.00085);
  EXPECT_EQ(f.weights("text_encoder")->get("embeddings.weight").shape(), Shape({2, 4}));
}

TEST(Diffusers, ConfigGettersNameFileAndKey) {
  auto f = io::DiffusersFolder::open(io_data("tiny_pipe"));
  auto cfg = f.config("unet");
  EXPECT_EQ(cfg.get_int("in_channels"), 5);
  EXPECT_EQ(cfg.get_int_list("block_out_channels"), (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(cfg.get_string_list("down_block_types"),
            (std::vector<std::string>{"DownBlock2D", "CrossAttnDownBlock2D"}));
  EXPECT_DOUBLE_EQ(cfg.get_float("norm_eps"), 1e-5);
  EXPECT_DOUBLE_EQ(cfg.get_float("sample_size"), 8.0);  // an integer is a valid float
  EXPECT_TRUE(cfg.get_bool("use_linear_projection"));
  EXPECT_FALSE(cfg.has("cross_attention_dim"));  // null counts as not set
  EXPECT_EQ(cfg.get_int_or("cross_attention_dim", 77), 77);
  EXPECT_EQ(cfg.get_int_or("layers_per_block", 2), 2);
  EXPECT_EQ(cfg.get_string_or("act_fn", "gelu"), "silu");
  EXPECT_EQ(cfg.json()["_class_name"], "UNet2DConditionModel");

  EXPECT_TRUE(throws_error([&] { cfg.get_int("layers_per_block"); }, Status::not_found,
                           {"unet/config.json", "\"layers_per_block\" is missing"}));
  EXPECT_TRUE(throws_error([&] { cfg.get_int("cross_attention_dim"); }, Status::not_found,
                           {"\"cross_attention_dim\" is null"}));
  EXPECT_TRUE(throws_error([&] { cfg.get_int("norm_eps"); }, Status::format_error,
                           {"unet/config.json", "\"norm_eps\" must be an integer, got number"}));
  EXPECT_TRUE(throws_error([&] { cfg.get_int("act_fn"); }, Status::format_error, {"got string"}));
  EXPECT_TRUE(
      throws_error([&] { cfg.get_bool("in_channels"); }, Status::format_error, {"a boolean"}));
  EXPECT_TRUE(throws_error([&] { cfg.get_int_list("down_block_types"); }, Status::format_error,
                           {"a list of integers"}));
  EXPECT_TRUE(throws_error([&] { cfg.get_string_or("in_channels", "x"); }, Status::format_error,
                           {"\"in_channels\" must be a string"}));
}

TEST(Diffusers, MalformedModelIndex) {
  TempDir dir;
  EXPECT_TRUE(throws_error([&] { io::DiffusersFolder::open(dir.path); }, Status::not_found,
                           {"model_index.json"}));
  auto idx = dir.path / "model_index.json";
  write_bytes(idx, R"({"unet": ["diffusers", "UNet2DConditionModel"]})");
  EXPECT_TRUE(throws_error([&] { io::DiffusersFolder::open(dir.path); }, Status::format_error,
                           {"model_index.json", "missing \"_class_name\""}));
  write_bytes(idx, R"({"_class_name": "P", "unet": ["diffusers"]})");
  EXPECT_TRUE(throws_error([&] { io::DiffusersFolder::open(dir.path); }, Status::format_error,
                           {"component \"unet\" must be [library, class]"}));
  write_bytes(idx, R"([1])");
  EXPECT_TRUE(throws_error([&] { io::DiffusersFolder::open(dir.path); }, Status::format_error,
                           {"expected an object"}));
  write_bytes(idx, R"({"_class_name": "P", "vae": ["diffusers", "AutoencoderKL"]})");
  auto f = io::DiffusersFolder::open(dir.path);
  EXPECT_TRUE(throws_error([&] { f.config("vae"); }, Status::not_found, {"no config.json"}));
  EXPECT_TRUE(throws_error([&] { f.weights("vae"); }, Status::not_found, {"vae"}));
}

}  // namespace
}  // namespace kiln::test
