#include "kiln/pipelines/recipes/stable_diffusion.hpp"

#include "kiln/io/diffusers.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::recipes {

namespace {
constexpr const char* kCtx = "stable_diffusion";
}

StableDiffusion StableDiffusion::load(const std::filesystem::path& folder) {
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  StableDiffusion sd;
  sd.tokenizer_ = std::make_shared<const text::ClipTokenizer>(
      text::ClipTokenizer::load(f.component_dir("tokenizer")));
  sd.text_encoder_ = std::make_shared<const models::ClipTextModel>(
      models::ClipTextModel::load(f.component_dir("text_encoder")));
  sd.unet_ = std::make_shared<const models::UNet2DConditionModel>(
      models::UNet2DConditionModel::load(f.component_dir("unet")));
  sd.vae_ = std::make_shared<const models::AutoencoderKL>(
      models::AutoencoderKL::load(f.component_dir("vae")));
  sd.schedule_cfg_ = samplers::ScheduleConfig::from_config(f.config("scheduler"));
  sd.sample_size_ = f.config("unet").get_int_or("sample_size", 64);
  const auto& uc = sd.unet_->config();
  KILN_CHECK(uc.cross_attention_dim == sd.text_encoder_->config().hidden_size,
             Status::format_error, folder.string(), "unet cross_attention_dim ",
             uc.cross_attention_dim, " does not match the text encoder's hidden size ",
             sd.text_encoder_->config().hidden_size);
  return sd;
}

Tensor StableDiffusion::encode_text(const std::string& prompt) const {
  // tokenizer(padding="max_length", max_length=77, truncation=True) -> text_encoder(ids)[0]
  std::vector<std::vector<int32_t>> ids{tokenizer_->encode_padded(prompt)};
  return text_encoder_->forward(ids).last_hidden_state;  // (1, 77, D)
}

Tensor StableDiffusion::generate(const SdRequest& req) const {
  KILN_ARG(req.steps >= 1 && req.steps <= 10000, kCtx, "steps ", req.steps, " out of range [1, 10000]");
  KILN_ARG(req.batch >= 1 && req.batch <= 64, kCtx, "batch ", req.batch, " out of range [1, 64]");
  const int64_t f = vae_->downscale_factor();
  const int64_t width = req.width > 0 ? req.width : sample_size_ * f;
  const int64_t height = req.height > 0 ? req.height : sample_size_ * f;
  KILN_ARG(width % f == 0 && height % f == 0, kCtx, "size ", width, "x", height,
           " is not a multiple of the VAE factor ", f);
  const samplers::SamplerKind kind = samplers::sampler_from_name(req.sampler);
  const samplers::ScheduleKind sched_kind = samplers::schedule_from_name(req.schedule);
  const bool cfg = req.guidance_scale > 1.f;
  const int64_t B = req.batch;

  // Text conditioning: (B, 77, D), negatives first when guiding (diffusers' cat order).
  Tensor pos = encode_text(req.prompt);
  Tensor cond = pos.expand({B, pos.size(1), pos.size(2)}).contiguous();
  if (cfg) {
    Tensor neg = encode_text(req.negative_prompt);
    Tensor both[] = {neg.expand({B, neg.size(1), neg.size(2)}), cond};
    cond = ops::concat(both, 0);
  }

  samplers::Schedule sched = samplers::make_schedule(schedule_cfg_, sched_kind,
                                                     samplers::timestep_rule(kind), req.steps);
  rng::Generator gen = rng::Generator::torch_cpu(req.seed);
  const int64_t C = unet_->config().in_channels;
  Tensor x = ops::scale(rng::randn({B, C, height / f, width / f}, gen), sched.init_noise_sigma);

  const float g = req.guidance_scale;
  samplers::ModelFn model = [&](const Tensor& x_in, float t) {
    Tensor in = x_in;
    if (cfg) {
      Tensor two[] = {x_in, x_in};
      in = ops::concat(two, 0);
    }
    Tensor ts = Tensor::full({in.size(0)}, t);
    Tensor out = unet_->forward(in, ts, cond);
    if (!cfg) return out;
    auto halves = ops::chunk(out, 2, 0);  // uncond + g * (text - uncond)
    return ops::add(halves[0], ops::scale(ops::sub(halves[1], halves[0]), g));
  };
  samplers::Denoiser denoiser = samplers::wrap_model(model, schedule_cfg_, sched);
  samplers::SamplerContext ctx;
  ctx.gen = &gen;
  ctx.progress = req.progress;
  ctx.cancel = req.cancel;
  samplers::SamplerOptions opts;
  opts.eta = req.eta;
  x = samplers::sample(kind, denoiser, x, sched.sigmas, ctx, opts);
  x = samplers::final_latents(x, sched.sigmas.back(), schedule_cfg_);
  return vae_->decode(vae_->from_latent(x));
}

}  // namespace kiln::pipelines::recipes
