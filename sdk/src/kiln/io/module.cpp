#include "kiln/io/module.hpp"

#include <map>
#include <set>

#include "kiln/core/error.hpp"

namespace kiln::io {

void ParamVisitor::declare(std::string_view name, Tensor* slot, const Shape& shape, bool optional) {
  KILN_CHECK(slot != nullptr, Status::internal, "module", "parameter '", prefix_, name,
             "' has no slot");
  on_param(ParamDecl{prefix_ + std::string(name), slot, shape, optional});
}

void ParamVisitor::child(std::string_view name, Module& m) {
  const size_t keep = prefix_.size();
  prefix_.append(name);
  prefix_.push_back('.');
  // Restore the prefix even when a child throws, so a caught error leaves the visitor usable.
  struct Restore {
    std::string& s;
    size_t n;
    ~Restore() { s.resize(n); }
  } restore{prefix_, keep};
  m.visit_params(*this);
}

std::vector<ParamDecl> collect_params(Module& m) {
  struct Collector : ParamVisitor {
    std::vector<ParamDecl> out;
    void on_param(ParamDecl d) override { out.push_back(std::move(d)); }
  } c;
  m.visit_params(c);
  return std::move(c.out);
}

// ---------------------------------------------------------------------------------------------
// KeyMap

KeyMap& KeyMap::rename_prefix(std::string from, std::string to) {
  rules_.push_back({Kind::prefix, std::move(from), std::move(to)});
  return *this;
}

KeyMap& KeyMap::replace(std::string from, std::string to) {
  KILN_ARG(!from.empty(), "KeyMap", "replace() needs a non-empty substring");
  rules_.push_back({Kind::substring, std::move(from), std::move(to)});
  return *this;
}

KeyMap& KeyMap::ignore_prefix(std::string prefix) {
  rules_.push_back({Kind::ignore, std::move(prefix), {}});
  return *this;
}

std::optional<std::string> KeyMap::apply(std::string_view key) const {
  std::string k(key);
  for (const auto& r : rules_) {
    const bool starts = k.compare(0, r.from.size(), r.from) == 0;
    switch (r.kind) {
      case Kind::ignore:
        if (starts) return std::nullopt;
        break;
      case Kind::prefix:
        if (starts) k.replace(0, r.from.size(), r.to);
        break;
      case Kind::substring: {
        std::string out;
        size_t pos = 0;
        for (size_t hit; (hit = k.find(r.from, pos)) != std::string::npos;
             pos = hit + r.from.size())
          out.append(k, pos, hit - pos).append(r.to);
        k = out.append(k, pos, std::string::npos);
        break;
      }
    }
  }
  return k;
}

// ---------------------------------------------------------------------------------------------
// bind

BindReport bind(Module& m, const WeightSource& src, const BindOptions& opt) {
  const std::string ctx = src.describe();
  std::vector<ParamDecl> decls = collect_params(m);

  std::set<std::string_view> declared;
  for (const auto& d : decls)
    KILN_CHECK(declared.insert(d.name).second, Status::internal, "module", "parameter '", d.name,
               "' is declared twice");

  BindReport rep;
  // Module name -> source key, after the key map.
  std::map<std::string, std::string, std::less<>> target;
  std::vector<std::string> collisions;
  for (const auto& name : src.names()) {
    std::optional<std::string> mapped =
        opt.key_map ? opt.key_map->apply(name) : std::optional(name);
    if (!mapped) {
      ++rep.ignored;
      continue;
    }
    auto [it, inserted] = target.emplace(*mapped, name);
    if (!inserted)
      collisions.push_back(str("'", it->second, "' and '", name, "' -> '", *mapped, "'"));
  }

  auto shown = [](const std::string& module_name, const std::string& source_name) {
    return module_name == source_name ? module_name : str(source_name, " (as ", module_name, ")");
  };

  std::vector<std::string> missing, mismatched;
  std::set<std::string_view> used;
  std::vector<std::pair<Tensor*, std::string>> plan;  // slot <- source key
  std::vector<Tensor*> absent_optional;
  for (const auto& d : decls) {
    auto it = target.find(d.name);
    if (it == target.end()) {
      if (d.optional)
        absent_optional.push_back(d.slot);
      else
        missing.push_back(d.name);
      continue;
    }
    used.insert(it->first);
    TensorInfo ti = src.info(it->second);
    if (!(ti.shape == d.shape)) {
      mismatched.push_back(
          str(shown(d.name, it->second), ": expected ", d.shape.str(), ", got ", ti.shape.str()));
      continue;
    }
    plan.emplace_back(d.slot, it->second);
  }
  std::vector<std::string> unexpected;
  for (const auto& [mod_name, src_name] : target)
    if (!used.count(mod_name)) unexpected.push_back(shown(mod_name, src_name));

  if (!missing.empty() || !unexpected.empty() || !mismatched.empty() || !collisions.empty()) {
    std::string msg = str("checkpoint does not match the module (", decls.size(), " parameters, ",
                          target.size(), " source tensors)");
    auto section = [&](const char* what, const std::vector<std::string>& v) {
      if (!v.empty()) msg += str("\n  ", v.size(), " ", what, ": ", join_names(v));
    };
    section("missing", missing);
    section("unexpected", unexpected);
    section("shape mismatches", mismatched);
    section("source keys mapping to the same name", collisions);
    fail(Status::format_error, msg, ctx);
  }

  // Load everything before assigning anything: a failure (e.g. out of device memory) leaves
  // the module as it was.
  std::vector<Tensor> loaded;
  loaded.reserve(plan.size());
  for (const auto& [slot, key] : plan) {
    Tensor t = src.get(key);
    if (opt.float_dtype && t.dtype() != *opt.float_dtype && dtype_info(t.dtype()).is_float) {
      t = t.to(*opt.float_dtype);
      ++rep.converted;
    }
    if (!(t.device() == opt.device)) t = t.to(opt.device);
    loaded.push_back(std::move(t));
  }
  for (size_t i = 0; i < plan.size(); ++i) *plan[i].first = std::move(loaded[i]);
  for (Tensor* slot : absent_optional) *slot = Tensor();
  rep.bound = plan.size();
  rep.optional_absent = absent_optional.size();
  return rep;
}

size_t to_device(Module& m, Device device) {
  check_device(device);
  std::vector<ParamDecl> decls = collect_params(m);
  std::vector<Tensor> moved(decls.size());
  size_t bytes = 0;
  for (size_t i = 0; i < decls.size(); ++i) {
    const Tensor& t = *decls[i].slot;
    if (!t.defined() || t.device() == device) continue;
    moved[i] = t.to(device);
    bytes += t.nbytes();
  }
  for (size_t i = 0; i < decls.size(); ++i)
    if (moved[i].defined()) *decls[i].slot = std::move(moved[i]);
  return bytes;
}

}  // namespace kiln::io
