#include "targets.hpp"

#include "kiln/core/error.hpp"

namespace kiln::quality {

std::vector<TargetResult> check_targets(const nlohmann::json& report,
                                        const nlohmann::json& targets,
                                        const std::string& targets_file) {
  KILN_CHECK(targets.is_object(), Status::format_error, targets_file,
             "expected a JSON object {\"dotted.path\": minimum}");
  std::vector<TargetResult> out;
  for (const auto& [key, value] : targets.items()) {
    if (!key.empty() && key[0] == '_') continue;
    KILN_CHECK(value.is_number(), Status::format_error, targets_file, "target \"", key,
               "\": the minimum must be a number, got ", value.dump());
    const nlohmann::json* node = &report;
    size_t start = 0;
    while (start <= key.size()) {
      const size_t dot = std::min(key.find('.', start), key.size());
      const std::string part = key.substr(start, dot - start);
      KILN_CHECK(node->is_object() && node->contains(part), Status::format_error, targets_file,
                 "target \"", key, "\": the report has no \"", part, "\" there");
      node = &(*node)[part];
      start = dot + 1;
    }
    KILN_CHECK(node->is_number(), Status::format_error, targets_file, "target \"", key,
               "\": the report's value is not a number: ", node->dump());
    TargetResult r{key, value.get<double>(), node->get<double>(), false};
    r.met = r.measured >= r.minimum;
    out.push_back(r);
  }
  return out;
}

}  // namespace kiln::quality
