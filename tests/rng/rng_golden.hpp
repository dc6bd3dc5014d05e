// Reader for the RNG goldens written by tests/reference/make_rng_goldens.py (its module doc
// describes the encoding): hex-encoded float32 / int64 bits, stored whole or as head / tail /
// strided samples + float64 sum + FNV-1a-64 over the words.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace kiln::test::rng {

inline nlohmann::json load_golden(const std::string& name) {
  const auto path = data_dir() / "rng" / name;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open golden " + path.string());
  return nlohmann::json::parse(f);
}

// "3f800000bf800000" -> {0x3f800000, 0xbf800000} for width 8; width 16 for int64.
inline std::vector<uint64_t> parse_hex_words(const std::string& s, size_t width) {
  if (s.size() % width != 0) throw std::runtime_error("hex string length not a multiple of width");
  std::vector<uint64_t> out(s.size() / width);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = std::stoull(s.substr(i * width, width), nullptr, 16);
  return out;
}

inline uint64_t fnv1a64(const std::vector<uint64_t>& words) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t w : words) h = (h ^ w) * 0x100000001b3ull;
  return h;
}

inline std::vector<int64_t> shape_of(const nlohmann::json& call) {
  return call.get<std::vector<int64_t>>();
}

inline int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// One golden array: which element indices are known and their words; plus hash and sum.
struct GoldenArray {
  int64_t numel = 0;
  bool full = false;
  std::vector<int64_t> index;  // element index of each known word
  std::vector<uint64_t> words;
  uint64_t fnv = 0;  // when !full
  double sum = 0;    // when !full
};

inline GoldenArray parse_array(const nlohmann::json& j) {
  GoldenArray g;
  g.numel = j.at("numel").get<int64_t>();
  const size_t width = j.at("dtype").get<std::string>() == "i64" ? 16 : 8;
  if (j.contains("full")) {
    g.full = true;
    g.words = parse_hex_words(j.at("full").get<std::string>(), width);
    for (int64_t i = 0; i < g.numel; ++i) g.index.push_back(i);
    return g;
  }
  const auto head = parse_hex_words(j.at("head").get<std::string>(), width);
  const auto tail = parse_hex_words(j.at("tail").get<std::string>(), width);
  const auto strided = parse_hex_words(j.at("strided").get<std::string>(), width);
  for (size_t i = 0; i < head.size(); ++i)
    g.index.push_back(static_cast<int64_t>(i)), g.words.push_back(head[i]);
  for (size_t i = 0; i < tail.size(); ++i)
    g.index.push_back(g.numel - static_cast<int64_t>(tail.size() - i)), g.words.push_back(tail[i]);
  const int64_t s = static_cast<int64_t>(strided.size());
  for (int64_t i = 0; i < s; ++i) g.index.push_back(i * g.numel / s), g.words.push_back(strided[i]);
  g.fnv = std::stoull(j.at("fnv1a64").get<std::string>(), nullptr, 16);
  g.sum = j.at("sum").get<double>();
  return g;
}

inline std::string case_name(const nlohmann::json& c) {
  std::string s =
      c.at("op").get<std::string>() + " seed=" + std::to_string(c.at("seed").get<uint64_t>());
  for (const auto& call : c.at("calls")) s += " " + call.dump();
  return s;
}

// Bit-exact check of a float32 output against its golden.
inline ::testing::AssertionResult bits_equal(const std::vector<float>& out, const GoldenArray& g) {
  if (static_cast<int64_t>(out.size()) != g.numel)
    return ::testing::AssertionFailure() << "numel " << out.size() << " vs " << g.numel;
  std::vector<uint64_t> words(out.size());
  for (size_t i = 0; i < out.size(); ++i) words[i] = f32_bits(out[i]);
  for (size_t k = 0; k < g.index.size(); ++k)
    if (words[g.index[k]] != g.words[k])
      return ::testing::AssertionFailure()
             << "element " << g.index[k] << ": " << out[g.index[k]] << " (0x" << std::hex
             << words[g.index[k]] << ") vs torch 0x" << g.words[k] << std::dec << " ("
             << f32_from_bits(static_cast<uint32_t>(g.words[k])) << ")";
  if (!g.full && fnv1a64(words) != g.fnv)
    return ::testing::AssertionFailure() << "FNV-1a hash of all " << g.numel << " values differs";
  return ::testing::AssertionSuccess();
}

}  // namespace kiln::test::rng
