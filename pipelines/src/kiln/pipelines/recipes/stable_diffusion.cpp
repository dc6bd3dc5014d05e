#include "kiln/pipelines/recipes/stable_diffusion.hpp"

#include "kiln/io/diffusers.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/recipes/recipe_util.hpp"
#include "kiln/pipelines/recipes/sd_common.hpp"

namespace kiln::pipelines::recipes {

namespace {
constexpr const char* kCtx = "stable_diffusion";
}

StableDiffusion StableDiffusion::load(const std::filesystem::path& folder, Device device) {
  check_device(device);  // before any weight is read: "cuda:7 does not exist: ..."
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  StableDiffusion sd;
  sd.device_ = device;
  sd.tokenizer_ = load_component<text::ClipTokenizer>(f, "tokenizer");
  sd.text_encoder_ = load_component<models::ClipTextModel>(f, "text_encoder", device);
  sd.unet_ = load_component<models::UNet2DConditionModel>(f, "unet", device);
  sd.vae_ = load_component<models::AutoencoderKL>(f, "vae", device);
  sd.schedule_cfg_ = samplers::ScheduleConfig::from_config(f.config("scheduler"));
  sd.sample_size_ = f.config("unet").get_int_or("sample_size", 64);
  const auto& uc = sd.unet_->config();
  KILN_CHECK(uc.cross_attention_dim == sd.text_encoder_->config().hidden_size, Status::format_error,
             folder.string(), "unet cross_attention_dim ", uc.cross_attention_dim,
             " does not match the text encoder's hidden size ",
             sd.text_encoder_->config().hidden_size);
  return sd;
}

Tensor StableDiffusion::encode_text(const std::string& prompt) const {
  // tokenizer(padding="max_length", max_length=77, truncation=True) -> text_encoder(ids)[0]
  std::vector<std::vector<int32_t>> ids{tokenizer_->encode_padded(prompt)};
  return text_encoder_->forward(ids).last_hidden_state;  // (1, 77, D)
}

Tensor StableDiffusion::generate(const SdRequest& req) const {
  const SdParts parts{*unet_, *vae_, schedule_cfg_, default_size(), kCtx, device_};
  const SdPlan plan = plan_request(parts, req);
  const int64_t B = req.batch;
  // Text conditioning: (B, 77, D), negatives first when guiding (diffusers' cat order).
  Tensor pos = encode_text(req.prompt);
  SdConditioning cond;
  cond.text = repeat_batch(pos, B);
  if (plan.cfg) {
    Tensor neg = encode_text(req.negative_prompt);
    Tensor both[] = {neg.expand({B, neg.size(1), neg.size(2)}), cond.text};
    cond.text = ops::concat(both, 0);
  }
  return denoise_and_decode(parts, req, plan, cond);
}

}  // namespace kiln::pipelines::recipes
