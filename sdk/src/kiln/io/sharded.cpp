#include "kiln/io/sharded.hpp"

#include <fstream>
#include <iterator>
#include <set>

#include "kiln/core/error.hpp"
#include "kiln/io/mapped_file.hpp"

namespace kiln::io {

namespace {

using json = nlohmann::json;

// Reads a JSON file through the mapping (one code path for not_found / io_error messages).
json read_json_file(const std::filesystem::path& path) {
  auto f = MappedFile::open(path);
  try {
    const char* p = reinterpret_cast<const char*>(f->data());
    return json::parse(p, p + f->size());
  } catch (const json::exception& ex) {
    fail(Status::format_error, str("not valid JSON: ", std::string(ex.what()).substr(0, 240)),
         path.string());
  }
}

// A shard name must stay inside the index's directory: a plain relative path with no "..".
bool is_safe_relative(const std::filesystem::path& p) {
  if (p.empty() || p.is_absolute()) return false;
  for (const auto& part : p)
    if (part == "..") return false;
  return true;
}

}  // namespace

std::shared_ptr<ShardedWeights> ShardedWeights::open(const std::filesystem::path& index_path) {
  const std::string ctx = index_path.string();
  json idx = read_json_file(index_path);
  KILN_CHECK(idx.is_object(), Status::format_error, ctx, "index is a JSON ", idx.type_name(),
             ", expected an object with \"weight_map\"");
  auto wm = idx.find("weight_map");
  KILN_CHECK(wm != idx.end(), Status::format_error, ctx, "index has no \"weight_map\"");
  KILN_CHECK(wm->is_object(), Status::format_error, ctx, "\"weight_map\" is a JSON ",
             wm->type_name(), ", expected an object");

  std::shared_ptr<ShardedWeights> w(new ShardedWeights());
  w->index_path_ = index_path;
  if (auto md = idx.find("metadata"); md != idx.end()) w->metadata_ = *md;

  const auto dir = index_path.parent_path();
  std::map<std::string, size_t> shard_ids;  // file name -> index into shards_
  for (const auto& [name, file] : wm->items()) {
    KILN_CHECK(file.is_string(), Status::format_error, ctx, "\"weight_map\" entry for '", name,
               "' is a JSON ", file.type_name(), ", expected a shard file name");
    const auto& fname = file.get_ref<const std::string&>();
    KILN_CHECK(is_safe_relative(fname), Status::format_error, ctx, "shard name '", fname, "' for '",
               name, "' must be a relative path inside the index's directory");
    auto [it, inserted] = shard_ids.emplace(fname, w->shards_.size());
    if (inserted) w->shards_.push_back(nullptr);
    w->where_.emplace(name, it->second);
  }

  for (const auto& [fname, id] : shard_ids) {
    const auto p = dir / fname;
    KILN_CHECK(std::filesystem::exists(p), Status::not_found, ctx, "shard '", fname,
               "' listed in the index is missing (looked for ", p.string(), ")");
    w->shards_[id] = SafetensorsFile::open(p);
  }

  // Both directions of the accounting, all offenders listed.
  std::vector<std::string> absent, unlisted;
  for (const auto& [name, id] : w->where_)
    if (!w->shards_[id]->has(name))
      absent.push_back(name + " (in " + w->shards_[id]->path().filename().string() + ")");
  for (const auto& [fname, id] : shard_ids)
    for (const auto& e : w->shards_[id]->header().tensors) {
      auto it = w->where_.find(e.name);
      if (it == w->where_.end() || it->second != id)
        unlisted.push_back(e.name + " (in " + fname + ")");
    }
  KILN_CHECK(absent.empty(), Status::format_error, ctx, absent.size(),
             " tensor(s) listed in the index are missing from their shard: ", join_names(absent));
  KILN_CHECK(
      unlisted.empty(), Status::format_error, ctx, unlisted.size(),
      " tensor(s) in shards are not assigned to that shard by the index: ", join_names(unlisted));
  return w;
}

const SafetensorsFile& ShardedWeights::shard_of(std::string_view name) const {
  auto it = where_.find(name);
  KILN_CHECK(it != where_.end(), Status::not_found, index_path_.string(), "no tensor named '", name,
             "'");
  return *shards_[it->second];
}

std::vector<std::string> ShardedWeights::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

bool ShardedWeights::has(std::string_view name) const {
  return where_.find(name) != where_.end();
}
TensorInfo ShardedWeights::info(std::string_view name) const {
  return shard_of(name).info(name);
}
Tensor ShardedWeights::get(std::string_view name) const {
  return shard_of(name).get(name);
}

}  // namespace kiln::io
