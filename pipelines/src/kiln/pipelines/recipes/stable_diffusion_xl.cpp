#include "kiln/pipelines/recipes/stable_diffusion_xl.hpp"

#include <vector>

#include "kiln/io/diffusers.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/recipes/recipe_util.hpp"
#include "kiln/pipelines/recipes/sd_common.hpp"

namespace kiln::pipelines::recipes {

namespace {

constexpr const char* kCtx = "stable_diffusion_xl";
constexpr int64_t kTimeIds = 6;  // original_size (2) + crops_coords_top_left (2) + target_size (2)

}  // namespace

StableDiffusionXL StableDiffusionXL::load(const std::filesystem::path& folder, Device device) {
  check_device(device);  // before any weight is read: "cuda:7 does not exist: ..."
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  StableDiffusionXL xl;
  xl.device_ = device;
  if (has_present_component(f, "text_encoder")) {
    xl.tokenizer_ = load_component<text::ClipTokenizer>(f, "tokenizer");
    xl.text_encoder_ = load_component<models::ClipTextModel>(f, "text_encoder", device);
  }
  xl.tokenizer_2_ = load_component<text::ClipTokenizer>(f, "tokenizer_2");
  xl.text_encoder_2_ = load_component<models::ClipTextModel>(f, "text_encoder_2", device);
  xl.unet_ = load_component<models::UNet2DConditionModel>(f, "unet", device);
  xl.vae_ = load_component<models::AutoencoderKL>(f, "vae", device);
  xl.schedule_cfg_ = samplers::ScheduleConfig::from_config(f.config("scheduler"));
  xl.sample_size_ = f.config("unet").get_int_or("sample_size", 128);
  const auto& opt = f.options();
  if (opt.contains("force_zeros_for_empty_prompt"))
    xl.force_zeros_ = opt.at("force_zeros_for_empty_prompt").get<bool>();

  const auto& uc = xl.unet_->config();
  const auto& c2 = xl.text_encoder_2_->config();
  const std::string where = folder.string();
  KILN_CHECK(xl.text_encoder_2_->with_projection(), Status::format_error, where,
             "text_encoder_2 must be a CLIPTextModelWithProjection (its pooled text_embeds "
             "condition the U-Net)");
  KILN_CHECK(uc.text_time, Status::format_error, where,
             "unet has no addition_embed_type \"text_time\": not an SDXL U-Net");
  const int64_t d1 = xl.text_encoder_ ? xl.text_encoder_->config().hidden_size : 0;
  KILN_CHECK(uc.cross_attention_dim == d1 + c2.hidden_size, Status::format_error, where,
             "unet cross_attention_dim ", uc.cross_attention_dim,
             " does not match the text encoders' hidden sizes ", d1, " + ", c2.hidden_size);
  const int64_t added = kTimeIds * uc.addition_time_embed_dim + c2.projection_dim;
  KILN_CHECK(uc.projection_class_embeddings_input_dim == added, Status::format_error, where,
             "unet projection_class_embeddings_input_dim ",
             uc.projection_class_embeddings_input_dim, " != 6 time ids x addition_time_embed_dim ",
             uc.addition_time_embed_dim, " + text_encoder_2 projection_dim ", c2.projection_dim,
             " (an aesthetic-score refiner U-Net is not supported)");
  return xl;
}

StableDiffusionXL::TextEmbeds StableDiffusionXL::encode_text(const std::string& prompt) const {
  // Each tokenizer(padding="max_length", max_length=77, truncation=True) ->
  // text_encoder(ids, output_hidden_states=True).hidden_states[-2]; pooled from the last one.
  models::ClipTextOptions opt;
  opt.output_hidden_states = true;
  std::vector<Tensor> states;
  TextEmbeds out;
  if (text_encoder_) {
    std::vector<std::vector<int32_t>> ids{tokenizer_->encode_padded(prompt)};
    auto o = text_encoder_->forward(ids, opt);
    states.push_back(o.hidden_states[o.hidden_states.size() - 2]);
  }
  std::vector<std::vector<int32_t>> ids{tokenizer_2_->encode_padded(prompt)};
  auto o = text_encoder_2_->forward(ids, opt);
  states.push_back(o.hidden_states[o.hidden_states.size() - 2]);
  out.pooled = o.text_embeds;
  out.states = states.size() == 1 ? states[0] : ops::concat(states, -1);
  return out;
}

Tensor StableDiffusionXL::generate(const ImageRequest& req) const {
  const SdParts parts{*unet_, *vae_, schedule_cfg_, default_size(), kCtx, device_};
  const SdPlan plan = plan_request(parts, req);
  const int64_t B = req.batch;

  TextEmbeds pos = encode_text(req.prompt);
  // add_time_ids = (original_size + crops_coords_top_left + target_size), original = target =
  // the output size; negative_original_size/target_size default to the same.
  const float h = static_cast<float>(plan.height), w = static_cast<float>(plan.width);
  Tensor ids =
      repeat_batch(Tensor::from_f32({1, kTimeIds}, {h, w, 0.f, 0.f, h, w}).to(device_), B);
  SdConditioning cond;
  cond.text = repeat_batch(pos.states, B);
  cond.added.text_embeds = repeat_batch(pos.pooled, B);
  cond.added.time_ids = ids;
  if (plan.cfg) {
    TextEmbeds neg;
    if (req.negative_prompt.empty() && force_zeros_) {
      neg.states = Tensor::zeros(pos.states.shape(), DType::f32, device_);
      neg.pooled = Tensor::zeros(pos.pooled.shape(), DType::f32, device_);
    } else {
      neg = encode_text(req.negative_prompt);
    }
    Tensor text[] = {repeat_batch(neg.states, B), cond.text};
    Tensor pooled[] = {repeat_batch(neg.pooled, B), cond.added.text_embeds};
    Tensor both_ids[] = {ids, ids};
    cond.text = ops::concat(text, 0);
    cond.added.text_embeds = ops::concat(pooled, 0);
    cond.added.time_ids = ops::concat(both_ids, 0);
  }
  return denoise_and_decode(parts, req, plan, cond);
}

}  // namespace kiln::pipelines::recipes
