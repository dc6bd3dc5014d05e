// Render configuration of a yardstick run (candidate or reference), read from JSON:
//   {"sampler": "euler", "schedule": "karras", "steps": 20, "cfg": 5.0, "eta": 0.0,
//    "negative_prompt": ""}
// Every key is optional (absent = the model's default, as `kiln render` without that flag).
// Unknown keys and wrong types are errors naming the key and the file, so a typo ("step") never
// silently measures the defaults.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kiln::quality {

struct RenderConfig {
  std::optional<std::string> sampler, schedule, negative_prompt;
  std::optional<int> steps;
  std::optional<double> cfg, eta;
};

// `origin` names the source in errors (a file path). Throws kiln::Error (format_error).
RenderConfig parse_render_config(const nlohmann::json& j, const std::string& origin);
RenderConfig load_render_config(const std::filesystem::path& path);
nlohmann::json to_json(const RenderConfig& c);

}  // namespace kiln::quality
