// Diffusers folder layout (what `DiffusionPipeline.save_pretrained` writes):
//   model_index.json   {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.31.0",
//                       "unet": ["diffusers", "UNet2DConditionModel"], "safety_checker": [null,
//                       null], "requires_safety_checker": true, ...}
//   <component>/config.json (scheduler/: scheduler_config.json), weights found by open_weights().
// Ref: diffusers pipeline_utils.py (DiffusionPipeline.save_pretrained / from_pretrained).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/io/weight_source.hpp"

namespace kiln::io {

// A component's config.json with typed getters whose errors name the file and the key. Absent
// and JSON null are the same thing ("not set"): diffusers writes null for unset options.
class ComponentConfig {
 public:
  // Reads and parses `file`: not_found / io_error / format_error (invalid JSON, not an object).
  static ComponentConfig load(const std::filesystem::path& file);
  ComponentConfig(nlohmann::json j, std::filesystem::path file);

  const nlohmann::json& json() const { return json_; }
  const std::filesystem::path& file() const { return file_; }
  bool has(std::string_view key) const;  // present and not null

  // Required: Status::not_found when absent/null, format_error when of the wrong type.
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;  // integers are accepted
  bool get_bool(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::vector<int64_t> get_int_list(std::string_view key) const;
  std::vector<double> get_float_list(std::string_view key) const;
  std::vector<std::string> get_string_list(std::string_view key) const;
  // Optional: `fallback` when absent/null; format_error when present with the wrong type.
  int64_t get_int_or(std::string_view key, int64_t fallback) const;
  double get_float_or(std::string_view key, double fallback) const;
  bool get_bool_or(std::string_view key, bool fallback) const;
  std::string get_string_or(std::string_view key, std::string fallback) const;

  // A component loader's check of "_class_name" (absent is accepted: hand-written configs):
  // another class is Status::invalid_argument — the folder holds a different component than the
  // one asked for (e.g. a VAE folder given to the U-Net), the caller's mistake. Every model
  // loader reports it through this one check, so the status is the same for all of them.
  void expect_class(std::string_view expected) const;

 private:
  const nlohmann::json& require(std::string_view key) const;
  [[noreturn]] void wrong_type(std::string_view key, const char* expected) const;

  nlohmann::json json_;
  std::filesystem::path file_;
};

struct ComponentSpec {
  std::string name;        // "unet"
  std::string library;     // "diffusers", "transformers"; empty for a null component
  std::string class_name;  // "UNet2DConditionModel"; empty for a null component
  bool present() const { return !class_name.empty(); }
};

class DiffusersFolder {
 public:
  // Reads `dir`/model_index.json. not_found when it is missing; format_error (naming the file
  // and the key) when `_class_name` is missing or a component entry is not [library, class].
  static DiffusersFolder open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const std::string& class_name() const { return class_name_; }
  const std::string& diffusers_version() const { return version_; }             // empty when absent
  const std::vector<ComponentSpec>& components() const { return components_; }  // sorted by name
  // Pipeline options that are neither metadata ("_...") nor components, e.g.
  // {"requires_safety_checker": true}.
  const nlohmann::json& options() const { return options_; }
  const nlohmann::json& model_index() const { return index_; }

  // Listed (null or not). component() throws not_found listing the known components.
  bool has_component(std::string_view name) const;
  const ComponentSpec& component(std::string_view name) const;
  std::filesystem::path component_dir(std::string_view name) const;
  // <component>/config.json, or scheduler_config.json for schedulers. Throws for a null
  // component (invalid_argument) or a missing file (not_found).
  ComponentConfig config(std::string_view name) const;
  // open_weights(component_dir(name)).
  std::shared_ptr<WeightSource> weights(std::string_view name) const;

 private:
  const ComponentSpec& present_component(std::string_view name) const;

  std::filesystem::path dir_;
  std::string class_name_, version_;
  std::vector<ComponentSpec> components_;
  nlohmann::json options_ = nlohmann::json::object();
  nlohmann::json index_;
};

}  // namespace kiln::io
