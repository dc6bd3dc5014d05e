#include "kiln/pipelines/loaders/renamed_weights.hpp"

#include <algorithm>
#include <numeric>

#include "kiln/core/error.hpp"

namespace kiln::pipelines::loaders {

// ---------------------------------------------------------------- RenameTable

RenameTable& RenameTable::add(Rule r) {
  KILN_CHECK(!r.from.empty(), Status::internal, "RenameTable", "empty pattern");
  rules_.push_back(std::move(r));
  return *this;
}

RenameTable& RenameTable::rename(std::string from, std::string to) {
  return add({std::move(from), {std::move(to)}, TensorOp::identity, {}});
}

RenameTable& RenameTable::split(std::string from, std::vector<std::string> to,
                                std::vector<int> parts) {
  if (parts.empty()) parts.assign(to.size(), 1);
  KILN_CHECK(parts.size() == to.size() && to.size() >= 2, Status::internal, "RenameTable",
             "split of ", from, " needs one part per target");
  return add({std::move(from), std::move(to), TensorOp::rows, std::move(parts)});
}

RenameTable& RenameTable::swap_halves(std::string from, std::string to) {
  return add({std::move(from), {std::move(to)}, TensorOp::swap_halves, {}});
}

RenameTable& RenameTable::conv1x1_to_linear(std::string from, std::string to) {
  return add({std::move(from), {std::move(to)}, TensorOp::conv1x1_to_linear, {}});
}

RenameTable& RenameTable::transpose(std::string from, std::string to) {
  return add({std::move(from), {std::move(to)}, TensorOp::transpose, {}});
}

RenameTable& RenameTable::ignore(std::string from) {
  return add({std::move(from), {}, TensorOp::identity, {}});
}

// ---------------------------------------------------------------- matching

int match_pattern(std::string_view pattern, std::string_view key,
                  std::vector<std::string>& numbers) {
  numbers.clear();
  size_t k = 0;
  for (size_t p = 0; p < pattern.size();) {
    if (pattern.compare(p, 2, "{}") == 0) {
      const size_t start = k;
      while (k < key.size() && key[k] >= '0' && key[k] <= '9') ++k;
      if (k == start) return -1;
      numbers.emplace_back(key.substr(start, k - start));
      p += 2;
    } else {
      if (k >= key.size() || key[k] != pattern[p]) return -1;
      ++k;
      ++p;
    }
  }
  return static_cast<int>(k);
}

namespace {

std::string substitute(std::string_view target, const std::vector<std::string>& numbers) {
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target.compare(i, 2, "{}") == 0 && n < numbers.size()) {
      out += numbers[n++];
      ++i;
    } else {
      out += target[i];
    }
  }
  return out;
}

const char* op_name(TensorOp op) {
  switch (op) {
    case TensorOp::identity:
      return "identity";
    case TensorOp::rows:
      return "split";
    case TensorOp::swap_halves:
      return "swap_halves";
    case TensorOp::conv1x1_to_linear:
      return "conv1x1_to_linear";
    case TensorOp::transpose:
      return "transpose";
  }
  return "?";
}

Shape mapped_shape(const TensorMapping& m, const Shape& s) {
  switch (m.op) {
    case TensorOp::identity:
    case TensorOp::swap_halves:
      return s;
    case TensorOp::rows: {
      Shape r = s;
      r[0] = m.count;
      return r;
    }
    case TensorOp::conv1x1_to_linear:
      return s.size() == 4 && s[2] == 1 && s[3] == 1 ? Shape{s[0], s[1]} : s;
    case TensorOp::transpose:
      return Shape{s[1], s[0]};
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------- RenamedWeights

std::shared_ptr<RenamedWeights> RenamedWeights::make(std::shared_ptr<const io::WeightSource> base,
                                                     std::string prefix, const RenameTable& table,
                                                     std::string component) {
  std::shared_ptr<RenamedWeights> w(new RenamedWeights());
  w->base_ = std::move(base);
  w->prefix_ = std::move(prefix);
  w->component_ = std::move(component);
  const std::string ctx = w->describe();

  std::vector<std::string> numbers;
  std::vector<std::string> clashes;
  size_t seen = 0;
  auto put = [&](std::string name, TensorMapping m) {
    auto [it, fresh] = w->map_.emplace(name, m);
    if (!fresh) clashes.push_back(str(name, " <- ", it->second.source, " and ", m.source));
  };
  for (const std::string& key : w->base_->names()) {
    if (key.compare(0, w->prefix_.size(), w->prefix_) != 0) continue;
    ++seen;
    const std::string_view local = std::string_view(key).substr(w->prefix_.size());
    const RenameTable::Rule* rule = nullptr;
    int used = -1;
    for (const auto& r : table.rules()) {
      used = match_pattern(r.from, local, numbers);
      if (used >= 0) {
        rule = &r;
        break;
      }
    }
    if (!rule) {  // no rule: keep the name so io::bind lists it as unexpected
      put(std::string(local), {key, TensorOp::identity, 0, 0});
      continue;
    }
    if (rule->to.empty()) {
      w->ignored_.push_back(key);
      continue;
    }
    const std::string_view rest = local.substr(static_cast<size_t>(used));
    const io::TensorInfo info = w->base_->info(key);
    if (rule->op == TensorOp::rows) {
      const int total = std::accumulate(rule->parts.begin(), rule->parts.end(), 0);
      const int64_t rows = info.shape.size() ? info.shape[0] : 0;
      KILN_CHECK(info.shape.size() >= 1 && rows % total == 0, Status::format_error, ctx, key, " ",
                 info.shape.str(), " cannot be split into ", rule->to.size(), " parts in ratio ",
                 total, " along dim 0");
      int64_t offset = 0;
      for (size_t i = 0; i < rule->to.size(); ++i) {
        const int64_t count = rows / total * rule->parts[i];
        put(substitute(rule->to[i], numbers) + std::string(rest),
            {key, TensorOp::rows, offset, count});
        offset += count;
      }
      continue;
    }
    if (rule->op == TensorOp::transpose)
      KILN_CHECK(info.shape.size() == 2, Status::format_error, ctx, key, " ", info.shape.str(),
                 " is not 2-D, cannot transpose");
    if (rule->op == TensorOp::swap_halves)
      KILN_CHECK(info.shape.size() >= 1 && info.shape[0] % 2 == 0, Status::format_error, ctx, key,
                 " ", info.shape.str(), " has no two halves along dim 0");
    put(substitute(rule->to[0], numbers) + std::string(rest), {key, rule->op, 0, 0});
  }
  KILN_CHECK(seen > 0, Status::not_found, ctx, "no tensor name starts with \"", w->prefix_, "\"");
  KILN_CHECK(clashes.empty(), Status::format_error, ctx,
             "two source tensors map to one name: ", io::join_names(clashes));
  return w;
}

std::string RenamedWeights::describe() const {
  return str(base_->describe(), " [", prefix_.empty() ? std::string("*") : prefix_ + "*", " as ",
             component_, "]");
}

std::vector<std::string> RenamedWeights::names() const {
  std::vector<std::string> n;
  n.reserve(map_.size());
  for (const auto& [k, v] : map_) n.push_back(k);
  return n;
}

bool RenamedWeights::has(std::string_view name) const {
  return map_.find(name) != map_.end();
}

const TensorMapping& RenamedWeights::mapping(std::string_view name) const {
  auto it = map_.find(name);
  KILN_CHECK(it != map_.end(), Status::not_found, describe(), "no tensor named ", name);
  return it->second;
}

io::TensorInfo RenamedWeights::info(std::string_view name) const {
  const TensorMapping& m = mapping(name);
  io::TensorInfo i = base_->info(m.source);
  i.shape = mapped_shape(m, i.shape);
  return i;
}

Tensor RenamedWeights::get(std::string_view name) const {
  const TensorMapping& m = mapping(name);
  const Tensor t = base_->get(m.source);
  // Every op is a view or a same-dtype copy (f16/bf16/fp8 copies go through f32, exactly), so the
  // one dtype conversion stays in io::bind.
  switch (m.op) {
    case TensorOp::identity:
      return t;
    case TensorOp::rows:
      return t.narrow(0, m.offset, m.count).contiguous();
    case TensorOp::swap_halves: {
      const int64_t h = t.size(0) / 2;
      Tensor out = Tensor::empty(t.shape(), t.dtype());
      Tensor lo = out.narrow(0, 0, h), hi = out.narrow(0, h, h);
      lo.copy_from(t.narrow(0, h, h));
      hi.copy_from(t.narrow(0, 0, h));
      return out;
    }
    case TensorOp::conv1x1_to_linear:
      return t.reshape(mapped_shape(m, t.shape()));
    case TensorOp::transpose:
      return t.transpose(0, 1).contiguous();
  }
  fail(Status::internal, str("unknown op ", op_name(m.op)), describe());
}

}  // namespace kiln::pipelines::loaders
