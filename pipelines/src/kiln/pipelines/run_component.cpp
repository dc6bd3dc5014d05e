#include "kiln/pipelines/run_component.hpp"

#include <map>

#include "kiln/io/diffusers.hpp"
#include "kiln/io/safetensors.hpp"
#include "kiln/pipelines/models/autoencoder_kl.hpp"
#include "kiln/pipelines/models/clip_text.hpp"
#include "kiln/pipelines/models/flux_transformer.hpp"
#include "kiln/pipelines/models/sd3_transformer.hpp"
#include "kiln/pipelines/models/t5_encoder.hpp"
#include "kiln/pipelines/models/unet2d_condition.hpp"

namespace kiln::pipelines {

namespace {

constexpr const char* kCtx = "run-component";

// Input tensors by name, converted to f32 (ids keep their integer dtype).
class Inputs {
 public:
  Inputs(const std::filesystem::path& path, std::string prefix)
      : file_(io::SafetensorsFile::open(path)), prefix_(std::move(prefix)), path_(path) {}
  bool has(const std::string& name) const { return file_->has(prefix_ + name); }
  Tensor get(const std::string& name, bool integer = false) const {
    const std::string key = prefix_ + name;
    if (!file_->has(key)) {
      std::string present;
      for (const auto& n : file_->names()) present += (present.empty() ? "" : ", ") + n;
      fail(Status::not_found,
           str("input '", key,
               "' is missing (the file holds: ", present.empty() ? "nothing" : present, ")"),
           path_.string());
    }
    Tensor t = file_->get(key);
    return integer ? t.to(DType::i64).contiguous() : t.to(DType::f32).contiguous();
  }
  Tensor optional(const std::string& name) const { return has(name) ? get(name) : Tensor(); }

 private:
  std::shared_ptr<io::SafetensorsFile> file_;
  std::string prefix_;
  std::filesystem::path path_;
};

}  // namespace

std::vector<std::string> run_component(const std::filesystem::path& dir,
                                       const std::filesystem::path& inputs_path,
                                       const std::filesystem::path& outputs,
                                       const RunComponentOptions& opt) {
  const io::ComponentConfig cfg = io::ComponentConfig::load(dir / "config.json");
  std::string cls = cfg.get_string_or("_class_name", "");
  if (cls.empty() && cfg.has("architectures")) {
    auto arch = cfg.get_string_list("architectures");
    if (!arch.empty()) cls = arch.front();
  }
  const Inputs in(inputs_path, opt.prefix);
  std::map<std::string, Tensor> out;
  if (cls == "UNet2DConditionModel") {
    auto m = models::UNet2DConditionModel::load(dir);
    models::UNetAddedConditions added;
    added.text_embeds = in.optional("text_embeds");
    added.time_ids = in.optional("time_ids");
    added.timestep_cond = in.optional("timestep_cond");
    out["sample"] =
        m.forward(in.get("sample"), in.get("timestep"), in.get("encoder_hidden_states"), added);
  } else if (cls == "AutoencoderKL") {
    auto m = models::AutoencoderKL::load(dir);
    if (opt.mode == "encode") {
      auto d = m.encode(in.get("sample"));
      out["mean"] = d.mean;
      out["logvar"] = d.logvar;
    } else {
      KILN_ARG(opt.mode.empty() || opt.mode == "decode", kCtx, "mode '", opt.mode,
               "' is not encode or decode");
      out["sample"] = m.decode(in.get("latent"));
    }
  } else if (cls == "CLIPTextModel" || cls == "CLIPTextModelWithProjection") {
    auto m = models::ClipTextModel::load(dir);
    auto r = m.forward(in.get("input_ids", true), {.output_hidden_states = true});
    out["last_hidden_state"] = r.last_hidden_state;
    out["penultimate_hidden_state"] = r.hidden_states[r.hidden_states.size() - 2];
    out["pooler_output"] = r.pooled;
    if (r.text_embeds.defined()) out["text_embeds"] = r.text_embeds;
  } else if (cls == "T5EncoderModel") {
    auto m = models::T5EncoderModel::load(dir);
    Tensor mask = in.has("attention_mask") ? in.get("attention_mask", true) : Tensor();
    out["last_hidden_state"] = m.forward(in.get("input_ids", true), mask);
  } else if (cls == "SD3Transformer2DModel") {
    auto m = models::SD3Transformer2DModel::load(dir);
    out["sample"] = m.forward(in.get("hidden_states"), in.get("encoder_hidden_states"),
                              in.get("pooled_projections"), in.get("timestep"));
  } else if (cls == "FluxTransformer2DModel") {
    auto m = models::FluxTransformer2DModel::load(dir);
    out["sample"] = m.forward(in.get("hidden_states"), in.get("encoder_hidden_states"),
                              in.get("pooled_projections"), in.get("timestep"), in.get("img_ids"),
                              in.get("txt_ids"), in.optional("guidance"));
  } else {
    fail(Status::unsupported,
         str("component class '", cls,
             "' cannot be run (UNet2DConditionModel, AutoencoderKL, "
             "CLIPTextModel, CLIPTextModelWithProjection, T5EncoderModel, SD3Transformer2DModel, "
             "FluxTransformer2DModel)"),
         (dir / "config.json").string());
  }
  io::save_safetensors(outputs, out, {{"component", cls}});
  std::vector<std::string> names;
  for (const auto& [k, v] : out) names.push_back(k);
  return names;
}

}  // namespace kiln::pipelines
