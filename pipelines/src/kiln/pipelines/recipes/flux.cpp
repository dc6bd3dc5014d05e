#include "kiln/pipelines/recipes/flux.hpp"

#include <algorithm>
#include <cmath>
#include <span>

#include "kiln/io/diffusers.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/recipes/recipe_util.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::recipes {

namespace {
constexpr const char* kCtx = "flux";

}  // namespace

Flux Flux::load(const std::filesystem::path& folder, Device device) {
  check_device(device);  // before any weight is read: "cuda:7 does not exist: ..."
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  Flux fx;
  fx.device_ = device;
  fx.tokenizer_ = load_component<text::ClipTokenizer>(f, "tokenizer");
  fx.text_encoder_ = load_component<models::ClipTextModel>(f, "text_encoder", device);
  fx.tokenizer_2_ = load_component<text::T5Tokenizer>(f, "tokenizer_2");
  fx.text_encoder_2_ = load_component<models::T5EncoderModel>(f, "text_encoder_2", device);
  fx.transformer_ = load_component<models::FluxTransformer2DModel>(f, "transformer", device);
  fx.vae_ = load_component<models::AutoencoderKL>(f, "vae", device);
  fx.schedule_cfg_ = samplers::ScheduleConfig::from_config(f.config("scheduler"));

  // The shapes the components must agree on (a mixed-up folder fails here, not mid-sampling).
  const std::string ctx = folder.string();
  const auto& tc = fx.transformer_->config();
  KILN_CHECK(fx.schedule_cfg_.is_flow(), Status::format_error, ctx,
             "the scheduler is not a flow-matching scheduler (", fx.schedule_cfg_.class_name, ")");
  KILN_CHECK(fx.text_encoder_->config().hidden_size == tc.pooled_projection_dim,
             Status::format_error, ctx, "text_encoder hidden_size ",
             fx.text_encoder_->config().hidden_size,
             " does not match the transformer's pooled_projection_dim ", tc.pooled_projection_dim);
  KILN_CHECK(fx.text_encoder_2_->config().d_model == tc.joint_attention_dim, Status::format_error,
             ctx, "text_encoder_2 d_model ", fx.text_encoder_2_->config().d_model,
             " does not match the transformer's joint_attention_dim ", tc.joint_attention_dim);
  KILN_CHECK(tc.patch_size == 1 && fx.vae_->config.latent_channels * 4 == tc.in_channels,
             Status::format_error, ctx, "the transformer's in_channels ", tc.in_channels,
             " (patch_size ", tc.patch_size, ") is not 4 x the vae latent_channels ",
             fx.vae_->config.latent_channels, " (2x2-packed latents)");
  return fx;
}

Flux::TextEmbeds Flux::encode_text(const std::string& prompt, int max_sequence_length) const {
  check_max_sequence_length(max_sequence_length, kCtx);
  // _get_clip_prompt_embeds: pooler_output of the padded 77 tokens.
  std::vector<std::vector<int32_t>> clip_ids{tokenizer_->encode_padded(prompt)};
  Tensor pooled = text_encoder_->forward(clip_ids).pooled;  // (1, 768)
  // _get_t5_prompt_embeds: last hidden state, no attention mask (padding attends, as diffusers).
  std::vector<std::vector<int32_t>> t5_ids{
      tokenizer_2_->encode_padded(prompt, max_sequence_length).ids};
  return {text_encoder_2_->forward(t5_ids), pooled};  // (1, L, 4096), (1, 768)
}

samplers::Schedule Flux::flux_schedule(int steps, int64_t image_seq_len) const {
  KILN_ARG(steps >= 1 && steps <= samplers::kMaxSteps, kCtx, "steps ", steps, " out of range [1, ",
           samplers::kMaxSteps, "]");
  // FluxPipeline: sigmas = np.linspace(1.0, 1 / n, n) (f64), which set_timesteps casts to f32 and
  // shifts with NumPy float32 arithmetic (Python scalars do not widen an f32 array):
  //   dynamic: exp(mu) / (exp(mu) + (1 / s - 1)),  static: shift * s / (1 + (shift - 1) * s).
  // FlowMatchEulerDiscreteScheduler's own default (make_schedule) spans linspace(1, 1/1000)
  // instead, so the two differ.
  const auto& c = schedule_cfg_;
  const auto em = static_cast<float>(std::exp(samplers::flow_mu(c, image_seq_len)));
  const auto shift = static_cast<float>(c.shift), shift_m1 = static_cast<float>(c.shift - 1);
  const double stop = 1.0 / steps, step = steps > 1 ? (stop - 1.0) / (steps - 1) : 0.0;
  samplers::Schedule s;
  for (int i = 0; i < steps; ++i) {
    // np.linspace: i * step + start, the last entry set to stop exactly.
    const double lin = (i == steps - 1 && steps > 1) ? stop : static_cast<double>(i) * step + 1.0;
    const auto t = static_cast<float>(lin);
    const float sigma =
        c.use_dynamic_shifting ? em / (em + (1.f / t - 1.f)) : shift * t / (1.f + shift_m1 * t);
    s.sigmas.push_back(sigma);
    s.timesteps.push_back(sigma * static_cast<float>(c.num_train_timesteps));
  }
  s.sigmas.push_back(0.f);
  s.init_noise_sigma = 1.f;
  return s;
}

Tensor Flux::generate(const ImageRequest& req, const FluxOptions& opt) const {
  check_steps_and_batch(req, kCtx);
  KILN_ARG(std::isfinite(req.guidance_scale), kCtx, "guidance_scale must be finite");
  const bool img2img = req.init_image.defined(), inpaint = req.mask.defined();
  if (img2img) check_flow_init_image(req, kCtx);
  const auto& tc = transformer_->config();
  const int64_t f = vae_->downscale_factor();
  int64_t width = req.width > 0 ? req.width : default_size();
  int64_t height = req.height > 0 ? req.height : default_size();
  if (img2img) {  // the output takes the image's size (check_flow_init_image: the request agrees)
    width = req.init_image.size(3);
    height = req.init_image.size(2);
  }
  // Packing needs an even latent size; diffusers rounds down with a warning, we refuse.
  KILN_ARG(req.width >= 0 && req.height >= 0 && width > 0 && height > 0 && width % (2 * f) == 0 &&
               height % (2 * f) == 0,
           kCtx, "size ", width, "x", height, " is not a multiple of 2 x the VAE factor ", f, " (",
           2 * f, ")");
  const samplers::SamplerKind kind = samplers::sampler_from_name(req.sampler);
  KILN_ARG(is_flow_sampler(kind), kCtx, "sampler \"", req.sampler,
           "\" is not a flow-matching sampler (Flux takes flow_euler, flow_heun or flow_unipc)");
  if (inpaint) check_flow_mask(req, kind, kCtx);
  const samplers::ScheduleKind sched_kind = samplers::schedule_from_name(req.schedule);
  check_max_sequence_length(opt.max_sequence_length, kCtx);
  const int64_t B = req.batch;

  TextEmbeds te = encode_text(req.prompt, opt.max_sequence_length);
  const Tensor states = repeat_batch(te.states, B), pooled = repeat_batch(te.pooled, B);
  const Tensor txt_ids = models::flux::text_ids(states.size(1));  // (L, 3) zeros

  const int64_t lh = height / f, lw = width / f;
  const Tensor img_ids = models::flux::latent_image_ids(lh / 2, lw / 2);
  const int64_t seq_len = (lh / 2) * (lw / 2);  // packed tokens

  // FluxPipeline passes its own sigmas, except for schedulers with use_flow_sigmas (UniPC).
  const samplers::TimestepRule rule = samplers::timestep_rule(kind);
  samplers::Schedule sched;
  if (sched_kind == samplers::ScheduleKind::model_default && rule == samplers::TimestepRule::flow) {
    sched = flux_schedule(req.steps, seq_len);
  } else {
    samplers::FlowShift shift;
    shift.mu = samplers::flow_mu(schedule_cfg_, seq_len);
    sched = samplers::make_schedule(schedule_cfg_, sched_kind, rule, req.steps, shift);
  }

  // img2img runs the tail of the schedule (get_timesteps + set_begin_index): sigmas[t_start:].
  const int t_start = img2img ? flow_img2img_first_step(req.steps, req.strength, kCtx) : 0;
  const std::span<const float> sigmas =
      std::span<const float>(sched.sigmas).subspan(static_cast<size_t>(t_start));

  // prepare_latents: (B, C, H/f, W/f) torch CPU noise, packed to (B, (H/2f)(W/2f), 4C). img2img
  // draws in its generator order: the posterior sample of the image batch first,
  // (z - shift_factor) * scaling_factor, repeated to the batch, then the noise;
  // scheduler.scale_noise at the first sigma s: s * noise + (1 - s) * x0, packed after (the
  // inpaint pipeline too, at any strength).
  rng::Generator gen = rng::Generator::torch_cpu(req.seed);
  Tensor x, x0, noise;
  if (img2img) {
    FlowImageStart start = flow_image_start(*vae_, req.init_image.to(device_), B, sigmas[0], gen);
    x0 = start.x0;  // (B, C, H/f, W/f)
    noise = start.noise;
    x = models::flux::pack_latents(start.x);
  } else {
    x = models::flux::pack_latents(rng::randn({B, tc.in_channels / 4, lh, lw}, gen).to(device_));
  }

  // Distilled guidance: torch.full([1], guidance_scale).expand(B), only for guidance_embeds.
  const Tensor guidance =
      tc.guidance_embeds ? Tensor::full({B}, req.guidance_scale, device_) : Tensor{};
  samplers::ModelFn model = [&](const Tensor& x_in, float t) {
    // The pipeline passes timestep / 1000 (f32 division); the model multiplies it back.
    Tensor ts = Tensor::full({x_in.size(0)}, t / 1000.f, device_);
    return transformer_->forward(x_in, states, pooled, ts, img_ids, txt_ids, guidance);
  };
  samplers::Denoiser denoiser = samplers::wrap_model(model, schedule_cfg_, sched);
  samplers::SamplerContext ctx = sampler_context(req, gen);
  if (inpaint) {
    // The blend runs on packed tokens, as FluxInpaintPipeline: image latents, noise and the mask
    // (repeated over the C channels, (B, C, H/f, W/f)) packed to (B, L, 4C). Its masked image
    // latents (a posterior sample drawn after the noise) are never read by a 4C-channel
    // transformer and flow_euler draws nothing more, so they are skipped.
    const Tensor m = latent_mask(req.mask.to(device_), lh, lw, B);
    const Tensor mask = models::flux::pack_latents(m.expand(x0.shape()).contiguous());
    set_flow_inpaint_blend(ctx, models::flux::pack_latents(x0), models::flux::pack_latents(noise),
                           mask, sigmas);
  }
  x = samplers::sample(kind, denoiser, x, sigmas, ctx);
  x = samplers::final_latents(x, sigmas.back(), schedule_cfg_);
  // _unpack_latents, latents / scaling_factor + shift_factor -> decode
  Tensor latents = models::flux::unpack_latents(x, height, width, f);
  return vae_->decode(vae_->from_latent(latents));
}

}  // namespace kiln::pipelines::recipes
