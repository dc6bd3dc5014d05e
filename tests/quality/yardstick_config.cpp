#include "yardstick_config.hpp"

#include "eval_io.hpp"
#include "kiln/core/error.hpp"

namespace kiln::quality {

RenderConfig parse_render_config(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) fail(Status::format_error, "a render config must be a JSON object", origin);
  RenderConfig c;
  auto bad = [&](const std::string& key, const char* what) {
    fail(Status::format_error, str("key '", key, "' must be ", what), origin);
  };
  for (const auto& [key, v] : j.items()) {
    if (key == "sampler" || key == "schedule" || key == "negative_prompt") {
      if (!v.is_string()) bad(key, "a string");
      (key == "sampler"    ? c.sampler
       : key == "schedule" ? c.schedule
                           : c.negative_prompt) = v.get<std::string>();
    } else if (key == "steps") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 10000)
        bad(key, "an integer in 1..10000");
      c.steps = v.get<int>();
    } else if (key == "cfg") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 100)
        bad(key, "a number in 0..100");
      c.cfg = v.get<double>();
    } else if (key == "eta") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1)
        bad(key, "a number in 0..1");
      c.eta = v.get<double>();
    } else {
      fail(Status::format_error,
           str("unknown key '", key,
               "' (known: sampler, schedule, steps, cfg, eta, negative_prompt)"),
           origin);
    }
  }
  return c;
}

RenderConfig load_render_config(const std::filesystem::path& path) {
  return parse_render_config(read_json_file(path), path.string());
}

nlohmann::json to_json(const RenderConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  if (c.sampler) j["sampler"] = *c.sampler;
  if (c.schedule) j["schedule"] = *c.schedule;
  if (c.steps) j["steps"] = *c.steps;
  if (c.cfg) j["cfg"] = *c.cfg;
  if (c.eta) j["eta"] = *c.eta;
  if (c.negative_prompt) j["negative_prompt"] = *c.negative_prompt;
  return j;
}

}  // namespace kiln::quality
