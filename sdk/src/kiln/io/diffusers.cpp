#include "kiln/io/diffusers.hpp"

#include <algorithm>
#include <cmath>

#include "kiln/core/error.hpp"
#include "kiln/io/mapped_file.hpp"

namespace kiln::io {

namespace {

using Json = nlohmann::json;

Json read_json(const std::filesystem::path& path) {
  auto f = MappedFile::open(path);
  Json j;
  try {
    const char* p = reinterpret_cast<const char*>(f->data());
    j = Json::parse(p, p + f->size());
  } catch (const Json::exception& ex) {
    fail(Status::format_error, str("not valid JSON: ", std::string(ex.what()).substr(0, 240)),
         path.string());
  }
  KILN_CHECK(j.is_object(), Status::format_error, path.string(), "top level is a JSON ",
             j.type_name(), ", expected an object");
  return j;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ComponentConfig

ComponentConfig ComponentConfig::load(const std::filesystem::path& file) {
  return ComponentConfig(read_json(file), file);
}

ComponentConfig::ComponentConfig(nlohmann::json j, std::filesystem::path file)
    : json_(std::move(j)), file_(std::move(file)) {
  KILN_CHECK(json_.is_object(), Status::format_error, file_.string(), "config is a JSON ",
             json_.type_name(), ", expected an object");
}

bool ComponentConfig::has(std::string_view key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

const Json& ComponentConfig::require(std::string_view key) const {
  auto it = json_.find(key);
  KILN_CHECK(it != json_.end() && !it->is_null(), Status::not_found, file_.string(),
             "config key \"", key, "\" is ", it == json_.end() ? "missing" : "null");
  return *it;
}

void ComponentConfig::wrong_type(std::string_view key, const char* expected) const {
  const Json& v = json_.at(std::string(key));
  fail(Status::format_error,
       str("config key \"", key, "\" must be ", expected, ", got ", v.type_name(), " ",
           v.dump().substr(0, 60)),
       file_.string());
}

int64_t ComponentConfig::get_int(std::string_view key) const {
  const Json& v = require(key);
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      wrong_type(key, "an integer that fits in 64 bits");
    return v.get<int64_t>();
  }
  wrong_type(key, "an integer");
}

double ComponentConfig::get_float(std::string_view key) const {
  const Json& v = require(key);
  if (!v.is_number()) wrong_type(key, "a number");
  return v.get<double>();
}

bool ComponentConfig::get_bool(std::string_view key) const {
  const Json& v = require(key);
  if (!v.is_boolean()) wrong_type(key, "a boolean");
  return v.get<bool>();
}

std::string ComponentConfig::get_string(std::string_view key) const {
  const Json& v = require(key);
  if (!v.is_string()) wrong_type(key, "a string");
  return v.get<std::string>();
}

std::vector<int64_t> ComponentConfig::get_int_list(std::string_view key) const {
  const Json& v = require(key);
  if (!v.is_array()) wrong_type(key, "a list of integers");
  std::vector<int64_t> out;
  for (const auto& e : v) {
    if (!e.is_number_integer() ||
        (e.is_number_unsigned() && e.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)))
      wrong_type(key, "a list of integers");
    out.push_back(e.get<int64_t>());
  }
  return out;
}

std::vector<double> ComponentConfig::get_float_list(std::string_view key) const {
  const Json& v = require(key);
  if (!v.is_array()) wrong_type(key, "a list of numbers");
  std::vector<double> out;
  for (const auto& e : v) {
    if (!e.is_number()) wrong_type(key, "a list of numbers");
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<std::string> ComponentConfig::get_string_list(std::string_view key) const {
  const Json& v = require(key);
  if (!v.is_array()) wrong_type(key, "a list of strings");
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) wrong_type(key, "a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

int64_t ComponentConfig::get_int_or(std::string_view key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}
double ComponentConfig::get_float_or(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}
bool ComponentConfig::get_bool_or(std::string_view key, bool fallback) const {
  return has(key) ? get_bool(key) : fallback;
}
std::string ComponentConfig::get_string_or(std::string_view key, std::string fallback) const {
  return has(key) ? get_string(key) : fallback;
}

void ComponentConfig::expect_class(std::string_view expected) const {
  if (!has("_class_name")) return;
  const std::string cls = get_string("_class_name");
  KILN_CHECK(cls == expected, Status::invalid_argument, file_.string(), "_class_name is \"", cls,
             "\", expected \"", expected, "\" (this folder holds another component)");
}

// ---------------------------------------------------------------------------------------------
// DiffusersFolder

DiffusersFolder DiffusersFolder::open(const std::filesystem::path& dir) {
  const auto file = dir / "model_index.json";
  DiffusersFolder f;
  f.dir_ = dir;
  f.index_ = read_json(file);
  const std::string ctx = file.string();

  auto cn = f.index_.find("_class_name");
  KILN_CHECK(cn != f.index_.end(), Status::format_error, ctx, "missing \"_class_name\"");
  KILN_CHECK(cn->is_string(), Status::format_error, ctx, "\"_class_name\" is a JSON ",
             cn->type_name(), ", expected a string");
  f.class_name_ = cn->get<std::string>();
  if (auto v = f.index_.find("_diffusers_version"); v != f.index_.end()) {
    KILN_CHECK(v->is_string(), Status::format_error, ctx, "\"_diffusers_version\" is a JSON ",
               v->type_name(), ", expected a string");
    f.version_ = v->get<std::string>();
  }

  for (const auto& [key, v] : f.index_.items()) {
    if (!key.empty() && key[0] == '_') continue;  // metadata: _class_name, _name_or_path, ...
    if (v.is_null()) {
      f.components_.push_back({key, "", ""});
      continue;
    }
    if (!v.is_array()) {
      f.options_[key] = v;
      continue;
    }
    KILN_CHECK(v.size() == 2 && (v[0].is_string() || v[0].is_null()) &&
                   (v[1].is_string() || v[1].is_null()) && (v[0].is_null() == v[1].is_null()),
               Status::format_error, ctx, "component \"", key,
               "\" must be [library, class] or [null, null], got ", v.dump().substr(0, 80));
    ComponentSpec c{key, "", ""};
    if (!v[0].is_null()) {
      c.library = v[0].get<std::string>();
      c.class_name = v[1].get<std::string>();
      KILN_CHECK(!c.class_name.empty(), Status::format_error, ctx, "component \"", key,
                 "\" has an empty class name");
    }
    f.components_.push_back(std::move(c));
  }
  std::sort(f.components_.begin(), f.components_.end(),
            [](const ComponentSpec& a, const ComponentSpec& b) { return a.name < b.name; });
  return f;
}

bool DiffusersFolder::has_component(std::string_view name) const {
  return std::any_of(components_.begin(), components_.end(),
                     [&](const ComponentSpec& c) { return c.name == name; });
}

const ComponentSpec& DiffusersFolder::component(std::string_view name) const {
  for (const auto& c : components_)
    if (c.name == name) return c;
  std::vector<std::string> known;
  for (const auto& c : components_) known.push_back(c.name);
  fail(Status::not_found, str("no component \"", name, "\" (components: ", join_names(known), ")"),
       (dir_ / "model_index.json").string());
}

const ComponentSpec& DiffusersFolder::present_component(std::string_view name) const {
  const ComponentSpec& c = component(name);
  KILN_CHECK(c.present(), Status::invalid_argument, (dir_ / "model_index.json").string(),
             "component \"", name, "\" is null in this pipeline");
  return c;
}

std::filesystem::path DiffusersFolder::component_dir(std::string_view name) const {
  return dir_ / std::string(component(name).name);
}

ComponentConfig DiffusersFolder::config(std::string_view name) const {
  present_component(name);
  const auto d = component_dir(name);
  std::error_code ec;
  for (const char* f : {"config.json", "scheduler_config.json"})
    if (std::filesystem::is_regular_file(d / f, ec)) return ComponentConfig::load(d / f);
  fail(Status::not_found,
       str("component \"", name, "\" has no config.json or scheduler_config.json"), d.string());
}

std::shared_ptr<WeightSource> DiffusersFolder::weights(std::string_view name) const {
  present_component(name);
  return open_weights(component_dir(name));
}

}  // namespace kiln::io
