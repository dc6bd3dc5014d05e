// Modules and weight binding. A model's C++ structure mirrors the checkpoint's key tree
// (diffusers names): each module declares its parameters and children in visit_params(), and
// bind() fills them from a WeightSource with strict accounting — every declared parameter must
// be found with the declared shape and every source tensor must be used exactly once; otherwise
// one error lists all missing keys, all unexpected keys and all shape mismatches (diffusers only
// warns about unexpected keys; a silently unused weight is a wrong model).
//
//   struct Attention : Module {
//     int64_t dim;
//     Tensor to_q_weight, to_out_bias;
//     void visit_params(ParamVisitor& v) override {
//       v.param("to_q.weight", &to_q_weight, {dim, dim});
//       v.optional_param("to_out.0.bias", &to_out_bias, {dim});
//     }
//   };
//   struct Block : Module { Attention attn1; void visit_params(ParamVisitor& v) override {
//     v.child("attn1", attn1); } };
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/core/device.hpp"
#include "kiln/core/dtype.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/io/weight_source.hpp"

namespace kiln::io {

class Module;

struct ParamDecl {
  std::string name;  // full dotted name: "down_blocks.0.attentions.1.to_q.weight"
  Tensor* slot = nullptr;
  Shape shape;
  bool optional = false;  // may be absent from the checkpoint (the slot is then left undefined)
};

class ParamVisitor {
 public:
  virtual ~ParamVisitor() = default;
  void param(std::string_view name, Tensor* slot, const Shape& shape) {
    declare(name, slot, shape, false);
  }
  void optional_param(std::string_view name, Tensor* slot, const Shape& shape) {
    declare(name, slot, shape, true);
  }
  // Visits `m` with "<prefix><name>." prepended to its names.
  void child(std::string_view name, Module& m);
  const std::string& prefix() const { return prefix_; }

 protected:
  virtual void on_param(ParamDecl decl) = 0;

 private:
  void declare(std::string_view name, Tensor* slot, const Shape& shape, bool optional);
  std::string prefix_;
};

class Module {
 public:
  virtual ~Module() = default;
  virtual void visit_params(ParamVisitor& v) = 0;
};

// All parameters of `m` in declaration order.
std::vector<ParamDecl> collect_params(Module& m);

// Ordered rewrite rules applied to each *source* key before matching, for checkpoints whose
// layout differs from the module tree (original single-file SD keys, foreign trainers). Rules run
// in order, each on the result of the previous one.
class KeyMap {
 public:
  // "model.diffusion_model." -> "" : replaces a leading `from` with `to`.
  KeyMap& rename_prefix(std::string from, std::string to);
  // ".attn.qkv." -> ".attn.to_qkv." : replaces every occurrence of `from` (non-empty).
  KeyMap& replace(std::string from, std::string to);
  // Declares that source keys starting with `prefix` (after earlier rules) are deliberately
  // unused, e.g. "model_ema." in a training checkpoint. Without it they are unexpected keys.
  KeyMap& ignore_prefix(std::string prefix);

  // The rewritten key, or nullopt when an ignore rule drops it.
  std::optional<std::string> apply(std::string_view key) const;
  bool empty() const { return rules_.empty(); }

 private:
  enum class Kind { prefix, substring, ignore };
  struct Rule {
    Kind kind;
    std::string from, to;
  };
  std::vector<Rule> rules_;
};

struct BindOptions {
  // nullopt: every weight keeps its stored dtype (zero-copy views of the mapping).
  // A float dtype: floating-point weights stored in another float dtype (f16, bf16, fp8, ...)
  // are converted to it on load; integer weights are never converted.
  std::optional<DType> float_dtype;
  Device device = Device::cpu();  // weights are copied there when it is not the CPU
  const KeyMap* key_map = nullptr;
};

struct BindReport {
  size_t bound = 0;            // parameters filled
  size_t optional_absent = 0;  // optional parameters the source does not have
  size_t ignored = 0;          // source keys dropped by KeyMap::ignore_prefix
  size_t converted = 0;        // weights whose dtype was converted
};

// Binds every parameter of `m` from `src`. On any mismatch nothing is assigned and a
// Status::format_error lists (first 20 of each, with counts) the missing keys, unexpected keys,
// keys that two source tensors map to, and shape mismatches; the context is src.describe().
// A module that declares the same name twice is a kiln bug (Status::internal).
BindReport bind(Module& m, const WeightSource& src, const BindOptions& opt = {});

// Moves every bound parameter of `m` to `device` (Tensor::to: a copy, or the tensor itself when
// it is there already). All copies are made before any slot is replaced, so a failure (out of
// device memory, a device that does not exist) leaves the module as it was. Returns the bytes
// copied. How a pipeline loaded on the CPU (weights mapped, zero-copy) moves to a GPU.
size_t to_device(Module& m, Device device);

}  // namespace kiln::io
