// run_component (kiln run-component): the component picked from config.json, inputs found by
// the reference forward's argument names, outputs equal to the goldens the parity tests use.
#include <gtest/gtest.h>

#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/run_component.hpp"
#include "pipeline_test_util.hpp"
#include "test_support.hpp"

using namespace kiln;
using kiln::pipelines::run_component;
using kiln::pipelines::RunComponentOptions;

namespace {

// Runs `component` on case `prefix` of `golden` and compares output `out_name` with
// `<prefix>out`.
void check_case(const char* component, const char* golden, const char* prefix,
                const char* out_name) {
  test::TempDir tmp;
  const auto dir = test::data_dir();
  RunComponentOptions opt;
  opt.prefix = prefix;
  auto names = run_component(dir / component, dir / golden, tmp.path / "out.safetensors", opt);
  ASSERT_FALSE(names.empty());
  auto out = io::SafetensorsFile::open(tmp.path / "out.safetensors");
  auto ref = io::SafetensorsFile::open(dir / golden);
  EXPECT_TRUE(test::matches_golden(out->get(out_name), ref->get(std::string(prefix) + "out"),
                                   std::string(component) + " " + prefix, 1e-5))
      << component;
}

}  // namespace

TEST(RunComponent, UNetSd3AndFluxMatchTheirGoldens) {
  check_case("unet/sd15", "unet/sd15.io.safetensors", "cfg.", "sample");
  check_case("sd3/sd3", "sd3/sd3.io.safetensors", "two.", "sample");
  check_case("flux/dev", "flux/dev.io.safetensors", "b2.", "sample");
}

TEST(RunComponent, MissingInputsAndUnknownClassesAreNamed) {
  test::TempDir tmp;
  const auto dir = test::data_dir();
  EXPECT_TRUE(test::throws_error(
      [&] {
        run_component(dir / "unet/sd15", dir / "unet/sd15.io.safetensors",
                      tmp.path / "o.safetensors");
      },
      Status::not_found, {"is missing", "cfg.sample"}));
  EXPECT_TRUE(test::throws_error(
      [&] {
        run_component(dir / "sd15_pipe/scheduler", dir / "unet/sd15.io.safetensors",
                      tmp.path / "o.safetensors");
      },
      Status::not_found, {"config.json"}));
  EXPECT_FALSE(std::filesystem::exists(tmp.path / "o.safetensors"));
}
