// Helpers shared by the model-family and recipe parity tests (tests/pipelines): image
// postprocessing and PSNR against diffusers' goldens, rel-L2 checks against golden tensors,
// fixture JSON and folder copies, state_dict key-tree digests. Built on kiln_runtime only, so
// it lives in kiln_test_support; nothing here includes a kiln/pipelines header.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "kiln/core/tensor.hpp"
#include "kiln/io/module.hpp"
#include "test_support.hpp"

namespace kiln::test {

// (B, 3, H, W) in [-1, 1] -> (B, H, W, 3) in [0, 1], diffusers' postprocess before uint8.
Tensor postprocess_image(const Tensor& img);
// 10 log10(1 / MSE) for values in [0, 1]; 200 dB when the two are equal.
double psnr(const Tensor& a, const Tensor& b);
// PSNR of a decoded (B, 3, H, W) image, postprocessed, against a diffusers output_type="np"
// golden (B, H, W, 3); 0 dB, with a failure, when the shapes differ.
double golden_psnr(const Tensor& decoded, const Tensor& golden);

// kiln sampler name for a diffusers scheduler class ("unknown" when it has none).
const char* sampler_for_scheduler(const std::string& diffusers_class);

// Succeeds when `actual` has `golden`'s shape, no NaN/inf where it has none, and rel L2 <=
// `tol`; prints (and records as a gtest XML property) the rel L2 under `name`.
::testing::AssertionResult matches_golden(const Tensor& actual, const Tensor& golden,
                                          const std::string& name, double tol);

// A JSON fixture file; throws std::runtime_error naming it when it cannot be opened.
nlohmann::json read_json(const std::filesystem::path& path);
// Writes `bytes` to `path` verbatim (binary).
void write_file(const std::filesystem::path& path, const std::string& bytes);
// Recursive copy of tests/data/<name> to tmp/<as> (default: the same name); returns it.
std::filesystem::path copy_fixture(const TempDir& tmp, const std::string& name,
                                   const std::string& as = "");

// Control characters as \x.. so a failing token comparison stays readable.
std::string escape_controls(const std::string& s);

// EXPECTs that `model`'s parameter tree equals `want` = {keys, params, fnv1a64}: the count of
// keys, of elements, and the FNV-1a 64 hash of the sorted "key a,b,c\n" lines, as the fixture
// scripts compute them from diffusers' state_dict (tests/reference/fixture_util.py).
void expect_key_tree(io::Module& model, const nlohmann::json& want);

}  // namespace kiln::test
