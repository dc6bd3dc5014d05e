// Quality targets: minimums on numbers of a yardstick report, so CI (and later acceleration
// work) can gate on adherence and fidelity. A targets file is a JSON object
//   {"candidate.adherence.background": 0.7, "psnr_db.min": 100, "_comment": "..."}
// whose keys are dotted paths into report.json (keys starting with "_" are comments) and whose
// values are the least acceptable value of that number.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kiln::quality {

struct TargetResult {
  std::string path;
  double minimum = 0, measured = 0;
  bool met = false;
};

// Evaluates every target. Throws kiln::Error (format_error) naming `targets_file` and the key
// for a value that is not a number, or a path that does not lead to a number in the report.
std::vector<TargetResult> check_targets(const nlohmann::json& report,
                                        const nlohmann::json& targets,
                                        const std::string& targets_file);

}  // namespace kiln::quality
