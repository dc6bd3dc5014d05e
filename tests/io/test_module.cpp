// Module binding: a small module tree mirroring a real torch state_dict (tests/data/io/tiny_pipe/
// unet, written by make_io_fixtures.py from an nn.Module), strict key accounting, optional
// parameters, dtype conversion on load and rename tables.
#include <gtest/gtest.h>

#include "io_test_util.hpp"
#include "kiln/io/module.hpp"
#include "kiln/io/safetensors.hpp"

namespace kiln::test {
namespace {

using io::BindOptions;
using io::KeyMap;
using io::Module;
using io::ParamVisitor;

struct Linear : Module {
  int64_t in, out;
  bool has_bias, bias_optional;
  Tensor weight, bias;
  Linear(int64_t i, int64_t o, bool b = true, bool opt = false)
      : in(i), out(o), has_bias(b), bias_optional(opt) {}
  void visit_params(ParamVisitor& v) override {
    v.param("weight", &weight, {out, in});
    if (bias_optional)
      v.optional_param("bias", &bias, {out});
    else if (has_bias)
      v.param("bias", &bias, {out});
  }
};

struct LayerNorm : Module {
  int64_t dim;
  Tensor weight, bias;
  explicit LayerNorm(int64_t d) : dim(d) {}
  void visit_params(ParamVisitor& v) override {
    v.param("weight", &weight, {dim});
    v.param("bias", &bias, {dim});
  }
};

// Ref: TinyMLP / Block in tests/reference/make_io_fixtures.py.
struct Block : Module {
  LayerNorm norm{8};
  Linear fc1{8, 16};
  Linear fc2;
  explicit Block(bool fc2_bias_optional = false) : fc2(16, 8, false, fc2_bias_optional) {}
  void visit_params(ParamVisitor& v) override {
    v.child("norm", norm);
    v.child("fc1", fc1);
    v.child("fc2", fc2);
  }
};

struct TinyMLP : Module {
  Linear proj_in{5, 8};
  std::vector<Block> blocks;
  Linear proj_out{8, 3};
  explicit TinyMLP(bool fc2_bias_optional = false) : blocks(2, Block(fc2_bias_optional)) {}
  void visit_params(ParamVisitor& v) override {
    v.child("proj_in", proj_in);
    for (size_t i = 0; i < blocks.size(); ++i) v.child(str("blocks.", i), blocks[i]);
    v.child("proj_out", proj_out);
  }
};

std::filesystem::path unet_file() {
  return io_data("tiny_pipe/unet/diffusion_pytorch_model.safetensors");
}

// name -> module slot, via the same visitor bind() uses.
std::map<std::string, Tensor*> slots(Module& m) {
  std::map<std::string, Tensor*> out;
  for (auto& d : io::collect_params(m)) out[d.name] = d.slot;
  return out;
}

TEST(Module, CollectsDottedNamesInDeclarationOrder) {
  TinyMLP m;
  auto decls = io::collect_params(m);
  ASSERT_EQ(decls.size(), 14u);
  EXPECT_EQ(decls[0].name, "proj_in.weight");
  EXPECT_EQ(decls[0].shape, Shape({8, 5}));
  EXPECT_EQ(decls[2].name, "blocks.0.norm.weight");
  EXPECT_EQ(decls[6].name, "blocks.0.fc2.weight");
  EXPECT_EQ(decls[7].name, "blocks.1.norm.weight");
  EXPECT_EQ(decls[13].name, "proj_out.bias");
  EXPECT_EQ(decls[13].slot, &m.proj_out.bias);
}

TEST(Module, BindsTorchStateDictKeepingStorageDType) {
  auto src = io::SafetensorsFile::open(unet_file());
  TinyMLP m;
  auto rep = io::bind(m, *src);
  EXPECT_EQ(rep.bound, 14u);
  EXPECT_EQ(rep.converted, 0u);
  EXPECT_EQ(m.blocks[1].fc1.weight.dtype(), DType::f16);
  EXPECT_TRUE(m.blocks[1].fc1.weight.storage()->read_only());  // a view of the mapping
  auto exp = read_json_file(io_data("tiny_pipe/unet_expected.json"));
  for (auto& [name, slot] : slots(m)) {
    SCOPED_TRACE(name);
    EXPECT_TRUE(matches_expected(*slot, exp.at(name)));
  }
}

TEST(Module, ConvertsFloatWeightsOnLoad) {
  auto src = io::SafetensorsFile::open(unet_file());
  TinyMLP m;
  BindOptions opt;
  opt.float_dtype = DType::f32;
  auto rep = io::bind(m, *src, opt);
  EXPECT_EQ(rep.converted, 14u);
  auto exp = read_json_file(io_data("tiny_pipe/unet_expected.json"));
  for (auto& [name, slot] : slots(m)) {
    SCOPED_TRACE(name);
    ASSERT_EQ(slot->dtype(), DType::f32);
    std::vector<double> want = exp.at(name)["values"];
    EXPECT_EQ(to_doubles(*slot), want);  // f16 -> f32 is exact
  }
  EXPECT_FALSE(m.proj_in.weight.storage()->read_only());
}

// A one-parameter module, for dtype cases.
struct One : Module {
  Shape shape;
  Tensor w;
  explicit One(Shape s) : shape(s) {}
  void visit_params(ParamVisitor& v) override { v.param("w", &w, shape); }
};

TEST(Module, ConvertsFp8AndBf16ButNeverIntegers) {
  TempDir dir;
  Tensor f8 = Tensor::from_f32({4}, {1.0f, -0.5f, 448.0f, 0.01171875f}).to(DType::f8_e4m3);
  io::save_safetensors(dir.path / "f8.safetensors", {{"w", f8}});
  One m({4});
  BindOptions opt;
  opt.float_dtype = DType::f32;
  io::bind(m, *io::SafetensorsFile::open(dir.path / "f8.safetensors"), opt);
  EXPECT_EQ(to_doubles(m.w), (std::vector<double>{1.0, -0.5, 448.0, 0.01171875}));

  Tensor bf = Tensor::from_f32({2}, {3.0f, -1.0f / 3}).to(DType::bf16);
  io::save_safetensors(dir.path / "bf.safetensors", {{"w", bf}});
  One m2({2});
  io::bind(m2, *io::SafetensorsFile::open(dir.path / "bf.safetensors"), opt);
  EXPECT_EQ(m2.w.dtype(), DType::f32);
  EXPECT_EQ(to_doubles(m2.w)[1], static_cast<double>(bf16_to_f32(f32_to_bf16(-1.0f / 3))));

  Tensor ids = Tensor::empty({3}, DType::i64);
  for (int i = 0; i < 3; ++i) ids.mutable_data<int64_t>()[i] = int64_t{1} << (40 + i);
  io::save_safetensors(dir.path / "i.safetensors", {{"w", ids}});
  One m3({3});
  auto rep = io::bind(m3, *io::SafetensorsFile::open(dir.path / "i.safetensors"), opt);
  EXPECT_EQ(rep.converted, 0u);
  EXPECT_EQ(m3.w.dtype(), DType::i64);
  EXPECT_EQ(m3.w.data<int64_t>()[2], int64_t{1} << 42);
}

// A checkpoint derived from the fixture with `edit` applied to its tensor map.
template <typename F>
std::shared_ptr<io::SafetensorsFile> edited(const TempDir& dir, F&& edit) {
  auto ref = io::SafetensorsFile::open(unet_file());
  std::map<std::string, Tensor> t;
  for (const auto& n : ref->names()) t[n] = ref->get(n);
  edit(t);
  io::save_safetensors(dir.path / "edited.safetensors", t);
  return io::SafetensorsFile::open(dir.path / "edited.safetensors");
}

TEST(Module, ErrorListsMissingUnexpectedAndMismatchedAndAssignsNothing) {
  TempDir dir;
  auto src = edited(dir, [](auto& t) {
    t.erase("proj_out.bias");
    t.erase("blocks.1.fc1.weight");
    t["extra.weight"] = Tensor::zeros({2});
    t["blocks.0.fc2.bias"] = Tensor::zeros({8});
    t["proj_in.weight"] = Tensor::zeros({8, 6});
  });
  TinyMLP m;
  EXPECT_TRUE(throws_error([&] { io::bind(m, *src); }, Status::format_error,
                           {"edited.safetensors", "checkpoint does not match the module",
                            "2 missing: blocks.1.fc1.weight, proj_out.bias",
                            "2 unexpected: blocks.0.fc2.bias, extra.weight",
                            "1 shape mismatches: proj_in.weight: expected (8, 5), got (8, 6)"}));
  // All-or-nothing: the parameters that did match were not assigned either.
  EXPECT_FALSE(m.blocks[0].norm.weight.defined());
  EXPECT_FALSE(m.proj_out.weight.defined());
}

struct Wide : Module {
  std::vector<Tensor> w = std::vector<Tensor>(30);
  void visit_params(ParamVisitor& v) override {
    for (size_t i = 0; i < w.size(); ++i) v.param(str("p", 100 + i), &w[i], {1});
  }
};

TEST(Module, LongListsAreCappedWithCounts) {
  Wide m;
  auto src = io::SafetensorsFile::open(io_data("mixed.safetensors"));
  try {
    io::bind(m, *src);
    FAIL() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("30 missing: p100, p101"), std::string::npos) << msg;
    EXPECT_NE(msg.find("p119 and 10 more"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("p120"), std::string::npos) << msg;
    EXPECT_NE(msg.find("10 unexpected: "), std::string::npos) << msg;
  }
}

TEST(Module, OptionalParameters) {
  auto src = io::SafetensorsFile::open(unet_file());
  TinyMLP m(/*fc2_bias_optional=*/true);
  m.blocks[0].fc2.bias = Tensor::zeros({8});  // stale value is cleared
  auto rep = io::bind(m, *src);
  EXPECT_EQ(rep.bound, 14u);
  EXPECT_EQ(rep.optional_absent, 2u);
  EXPECT_FALSE(m.blocks[0].fc2.bias.defined());

  TempDir dir;
  auto with_bias = edited(dir, [](auto& t) {
    t["blocks.1.fc2.bias"] = Tensor::from_f32({8}, {1, 2, 3, 4, 5, 6, 7, 8});
  });
  TinyMLP m2(true);
  rep = io::bind(m2, *with_bias);
  EXPECT_EQ(rep.bound, 15u);
  EXPECT_EQ(rep.optional_absent, 1u);
  EXPECT_EQ(to_doubles(m2.blocks[1].fc2.bias)[7], 8.0);
  // An optional parameter present with the wrong shape is still an error.
  auto bad = edited(dir, [](auto& t) { t["blocks.1.fc2.bias"] = Tensor::zeros({9}); });
  TinyMLP m3(true);
  EXPECT_TRUE(throws_error([&] { io::bind(m3, *bad); }, Status::format_error,
                           {"blocks.1.fc2.bias: expected (8), got (9)"}));
}

TEST(KeyMap, RulesApplyInOrder) {
  KeyMap km;
  km.rename_prefix("model.diffusion_model.", "")
      .replace(".mlp.", ".ff.")
      .ignore_prefix("ema.")
      .rename_prefix("ff", "FF");
  EXPECT_EQ(km.apply("model.diffusion_model.a.mlp.b.mlp.w"), "a.ff.b.ff.w");
  EXPECT_EQ(km.apply("x.model.diffusion_model.y"), "x.model.diffusion_model.y");  // prefix only
  EXPECT_EQ(km.apply("ema.a"), std::nullopt);
  EXPECT_EQ(km.apply("ff.w"), "FF.w");
  EXPECT_EQ(KeyMap().replace("a", "aa").apply("aba"), "aabaa");  // no re-scan of replacements
  EXPECT_TRUE(
      throws_error([] { KeyMap().replace("", "x"); }, Status::invalid_argument, {"non-empty"}));
}

TEST(KeyMap, BindsAForeignLayout) {
  // The fixture's tensors under another trainer's names, plus an EMA copy to be ignored.
  TempDir dir;
  auto src = edited(dir, [](auto& t) {
    std::map<std::string, Tensor> out;
    for (auto& [k, v] : t) {
      std::string n = k;
      if (n.rfind("blocks.", 0) == 0) n = "layers." + n.substr(7);
      n = "net." + n;
      auto pos = n.find(".fc1.");
      if (pos != std::string::npos) n.replace(pos, 5, ".mlp_in.");
      out[n] = v;
      out["ema." + n] = v;
    }
    t = out;
  });
  KeyMap km;
  km.ignore_prefix("ema.")
      .rename_prefix("net.", "")
      .rename_prefix("layers.", "blocks.")
      .replace(".mlp_in.", ".fc1.");
  TinyMLP m;
  BindOptions opt;
  opt.key_map = &km;
  auto rep = io::bind(m, *src, opt);
  EXPECT_EQ(rep.bound, 14u);
  EXPECT_EQ(rep.ignored, 14u);
  auto exp = read_json_file(io_data("tiny_pipe/unet_expected.json"));
  EXPECT_TRUE(matches_expected(m.blocks[1].fc1.weight, exp.at("blocks.1.fc1.weight")));

  // Without the ignore rule, the EMA copies are unexpected keys shown with their mapped name.
  KeyMap partial;
  partial.rename_prefix("net.", "")
      .rename_prefix("layers.", "blocks.")
      .replace(".mlp_in.", ".fc1.");
  opt.key_map = &partial;
  TinyMLP m2;
  EXPECT_TRUE(throws_error(
      [&] { io::bind(m2, *src, opt); }, Status::format_error,
      {"14 unexpected", "ema.net.layers.0.mlp_in.bias (as ema.net.layers.0.fc1.bias)"}));
}

TEST(KeyMap, TwoSourceKeysOntoOneNameIsAnError) {
  TempDir dir;
  auto src = edited(dir, [](auto& t) { t["old.proj_in.weight"] = t["proj_in.weight"]; });
  KeyMap km;
  km.rename_prefix("old.", "");
  BindOptions opt;
  opt.key_map = &km;
  TinyMLP m;
  EXPECT_TRUE(throws_error([&] { io::bind(m, *src, opt); }, Status::format_error,
                           {"1 source keys mapping to the same name",
                            "'old.proj_in.weight' and 'proj_in.weight' -> 'proj_in.weight'"}));
}

struct Dup : Module {
  Tensor a, b;
  void visit_params(ParamVisitor& v) override {
    v.param("x", &a, {1});
    v.param("x", &b, {1});
  }
};

TEST(Module, DuplicateDeclarationIsAnInternalError) {
  Dup m;
  auto src = io::SafetensorsFile::open(io_data("mixed.safetensors"));
  EXPECT_TRUE(
      throws_error([&] { io::bind(m, *src); }, Status::internal, {"'x' is declared twice"}));
}

}  // namespace
}  // namespace kiln::test
