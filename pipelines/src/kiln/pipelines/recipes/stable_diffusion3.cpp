#include "kiln/pipelines/recipes/stable_diffusion3.hpp"

#include <algorithm>
#include <cmath>
#include <span>

#include "kiln/io/diffusers.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/recipes/recipe_util.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::recipes {

namespace {
constexpr const char* kCtx = "stable_diffusion3";

}  // namespace

StableDiffusion3 StableDiffusion3::load(const std::filesystem::path& folder, Device device) {
  check_device(device);  // before any weight is read: "cuda:7 does not exist: ..."
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  StableDiffusion3 sd;
  sd.device_ = device;
  sd.tokenizer_ = load_component<text::ClipTokenizer>(f, "tokenizer");
  sd.tokenizer_2_ = load_component<text::ClipTokenizer>(f, "tokenizer_2");
  sd.text_encoder_ = load_component<models::ClipTextModel>(f, "text_encoder", device);
  sd.text_encoder_2_ = load_component<models::ClipTextModel>(f, "text_encoder_2", device);
  // SD3 ships without T5 too ([null, null] entries): diffusers then feeds zeros in its place.
  if (has_present_component(f, "text_encoder_3")) {
    KILN_CHECK(has_present_component(f, "tokenizer_3"), Status::format_error,
               (folder / "model_index.json").string(),
               "text_encoder_3 is set but tokenizer_3 is not");
    sd.tokenizer_3_ = load_component<text::T5Tokenizer>(f, "tokenizer_3");
    sd.text_encoder_3_ = load_component<models::T5EncoderModel>(f, "text_encoder_3", device);
  }
  sd.transformer_ = load_component<models::SD3Transformer2DModel>(f, "transformer", device);
  sd.vae_ = load_component<models::AutoencoderKL>(f, "vae", device);
  sd.schedule_cfg_ = samplers::ScheduleConfig::from_config(f.config("scheduler"));

  // The shapes the components must agree on (a mixed-up folder fails here, not mid-sampling).
  const std::string ctx = folder.string();
  const auto& tc = sd.transformer_->config();
  const auto& c1 = sd.text_encoder_->config();
  const auto& c2 = sd.text_encoder_2_->config();
  KILN_CHECK(
      sd.text_encoder_->with_projection() && sd.text_encoder_2_->with_projection(),
      Status::format_error, ctx,
      "text_encoder and text_encoder_2 must be CLIPTextModelWithProjection (text_projection)");
  KILN_CHECK(sd.schedule_cfg_.is_flow(), Status::format_error, ctx,
             "the scheduler is not a flow-matching scheduler (", sd.schedule_cfg_.class_name, ")");
  KILN_CHECK(c1.projection_dim + c2.projection_dim == tc.pooled_projection_dim,
             Status::format_error, ctx, "the CLIP projections (", c1.projection_dim, " + ",
             c2.projection_dim, ") do not match the transformer's pooled_projection_dim ",
             tc.pooled_projection_dim);
  KILN_CHECK(c1.hidden_size + c2.hidden_size <= tc.joint_attention_dim, Status::format_error, ctx,
             "the CLIP hidden sizes (", c1.hidden_size, " + ", c2.hidden_size,
             ") exceed the transformer's joint_attention_dim ", tc.joint_attention_dim);
  KILN_CHECK(!sd.text_encoder_3_ || sd.text_encoder_3_->config().d_model == tc.joint_attention_dim,
             Status::format_error, ctx, "text_encoder_3 d_model ",
             sd.text_encoder_3_ ? sd.text_encoder_3_->config().d_model : 0,
             " does not match the transformer's joint_attention_dim ", tc.joint_attention_dim);
  KILN_CHECK(sd.vae_->config.latent_channels == tc.in_channels, Status::format_error, ctx,
             "vae latent_channels ", sd.vae_->config.latent_channels,
             " does not match the transformer's in_channels ", tc.in_channels);
  return sd;
}

StableDiffusion3::TextEmbeds StableDiffusion3::encode_text(const std::string& prompt,
                                                           int max_sequence_length) const {
  check_max_sequence_length(max_sequence_length, kCtx);
  // _get_clip_prompt_embeds: both tokenizers pad to tokenizer (1)'s model_max_length;
  // hidden_states[-2] and the projected output (text_embeds).
  const int64_t clip_len = tokenizer_->model_max_length();
  auto clip = [&](const text::ClipTokenizer& tok, const models::ClipTextModel& enc) {
    std::vector<std::vector<int32_t>> ids{tok.encode_padded(prompt, clip_len)};
    models::ClipTextOutput out = enc.forward(ids, {.output_hidden_states = true});
    return std::pair{out.hidden_states[out.hidden_states.size() - 2], out.text_embeds};
  };
  auto [h1, p1] = clip(*tokenizer_, *text_encoder_);      // (1, 77, D1), (1, P1)
  auto [h2, p2] = clip(*tokenizer_2_, *text_encoder_2_);  // (1, 77, D2), (1, P2)
  const int64_t J = transformer_->config().joint_attention_dim;

  // _get_t5_prompt_embeds: (1, L, J); zeros without text_encoder_3.
  Tensor t5;
  if (text_encoder_3_) {
    std::vector<std::vector<int32_t>> ids{
        tokenizer_3_->encode_padded(prompt, max_sequence_length).ids};
    t5 = text_encoder_3_->forward(ids);
  } else {
    t5 = Tensor::zeros({1, max_sequence_length, J}, DType::f32, device_);
  }

  // torch.nn.functional.pad(clip, (0, J - (D1 + D2))), then cat with T5 on the sequence axis.
  const int64_t d = h1.size(2) + h2.size(2);
  Tensor parts[] = {h1, h2, Tensor::zeros({1, h1.size(1), J - d}, DType::f32, device_)};
  Tensor clip_states = ops::concat(parts, 2);  // (1, 77, J)
  Tensor seq[] = {clip_states, t5};
  Tensor pooled[] = {p1, p2};
  return {ops::concat(seq, 1), ops::concat(pooled, 1)};
}

int64_t StableDiffusion3::default_size() const {
  return transformer_->config().sample_size * vae_->downscale_factor();
}

int64_t StableDiffusion3::size_multiple() const {
  return vae_->downscale_factor() * transformer_->config().patch_size;
}

Tensor StableDiffusion3::generate(const ImageRequest& req, const Sd3Options& opt) const {
  check_steps_and_batch(req, kCtx);
  KILN_ARG(std::isfinite(req.guidance_scale), kCtx, "guidance_scale must be finite");
  const bool img2img = req.init_image.defined(), inpaint = req.mask.defined();
  if (img2img) check_flow_init_image(req, kCtx);
  const auto& tc = transformer_->config();
  const int64_t f = vae_->downscale_factor(), p = tc.patch_size;
  int64_t width = req.width > 0 ? req.width : default_size();
  int64_t height = req.height > 0 ? req.height : default_size();
  if (img2img) {  // the output takes the image's size (check_flow_init_image: the request agrees)
    width = req.init_image.size(3);
    height = req.init_image.size(2);
  }
  // check_inputs: the latent must split into whole patches.
  KILN_ARG(req.width >= 0 && req.height >= 0 && width > 0 && height > 0 && width % (f * p) == 0 &&
               height % (f * p) == 0,
           kCtx, "size ", width, "x", height, " is not a multiple of the VAE factor ", f,
           " x patch size ", p, " (", f * p, ")");
  const samplers::SamplerKind kind = samplers::sampler_from_name(req.sampler);
  KILN_ARG(is_flow_sampler(kind), kCtx, "sampler \"", req.sampler,
           "\" is not a flow-matching sampler (SD3 takes flow_euler, flow_heun or flow_unipc)");
  if (inpaint) check_flow_mask(req, kind, kCtx);
  const samplers::ScheduleKind sched_kind = samplers::schedule_from_name(req.schedule);
  check_max_sequence_length(opt.max_sequence_length, kCtx);
  const bool cfg = req.guidance_scale > 1.f;
  const int64_t B = req.batch;

  // Conditioning, negatives first when guiding (diffusers' cat order).
  TextEmbeds pos = encode_text(req.prompt, opt.max_sequence_length);
  Tensor states = repeat_batch(pos.states, B), pooled = repeat_batch(pos.pooled, B);
  if (cfg) {
    TextEmbeds neg = encode_text(req.negative_prompt, opt.max_sequence_length);
    Tensor s[] = {repeat_batch(neg.states, B), states};
    Tensor q[] = {repeat_batch(neg.pooled, B), pooled};
    states = ops::concat(s, 0);
    pooled = ops::concat(q, 0);
  }

  // (B, C, H/f, W/f) noise from the torch CPU generator; flow schedules start at sigma 1.
  const int64_t lh = height / f, lw = width / f;
  samplers::FlowShift shift;
  shift.image_seq_len = (lh / p) * (lw / p);  // read only with use_dynamic_shifting
  samplers::Schedule sched = samplers::make_schedule(
      schedule_cfg_, sched_kind, samplers::timestep_rule(kind), req.steps, shift);
  // img2img runs the tail of the schedule (get_timesteps + set_begin_index): sigmas[t_start:].
  const int t_start = img2img ? flow_img2img_first_step(req.steps, req.strength, kCtx) : 0;
  const std::span<const float> sigmas =
      std::span<const float>(sched.sigmas).subspan(static_cast<size_t>(t_start));
  rng::Generator gen = rng::Generator::torch_cpu(req.seed);
  Tensor x, x0, noise;
  if (img2img) {
    // prepare_latents, in its generator order: the posterior sample of the image batch first,
    // (z - shift_factor) * scaling_factor, repeated to the batch, then the noise;
    // scheduler.scale_noise at the first sigma s: s * noise + (1 - s) * x0. The inpaint
    // pipeline's strength 1 takes the noise as is, which this is (s = 1).
    FlowImageStart start = flow_image_start(*vae_, req.init_image.to(device_), B, sigmas[0], gen);
    x0 = start.x0;  // (B, C, H/f, W/f)
    noise = start.noise;
    x = start.x;
  } else {
    x = ops::scale(rng::randn({B, tc.in_channels, lh, lw}, gen).to(device_), sched.init_noise_sigma);
  }

  const float g = req.guidance_scale;
  samplers::ModelFn model = [&](const Tensor& x_in, float t) {
    Tensor in = cfg ? duplicate_for_cfg(x_in) : x_in;
    Tensor ts = Tensor::full({in.size(0)}, t, device_);
    Tensor v = transformer_->forward(in, states, pooled, ts);
    return cfg ? combine_cfg(v, g) : v;
  };
  samplers::Denoiser denoiser = samplers::wrap_model(model, schedule_cfg_, sched);
  samplers::SamplerContext ctx = sampler_context(req, gen);
  // Inpainting: the original, re-noised to the next sigma, outside the mask after each step.
  // prepare_mask_latents then also encodes the masked image with a posterior sample drawn after
  // the noise; a 16-channel transformer never reads it and flow_euler draws nothing more, so it
  // is skipped.
  if (inpaint)
    set_flow_inpaint_blend(ctx, x0, noise, latent_mask(req.mask.to(device_), lh, lw, B), sigmas);
  x = samplers::sample(kind, denoiser, x, sigmas, ctx);
  x = samplers::final_latents(x, sigmas.back(), schedule_cfg_);
  // latents / scaling_factor + shift_factor -> decode. StableDiffusion3InpaintPipeline decodes
  // latents / scaling_factor without adding shift_factor back (diffusers 0.42.1,
  // pipeline_stable_diffusion_3_inpaint.py, after the denoising loop); kiln reproduces it.
  if (inpaint)
    return vae_->decode(
        ops::div(x, Tensor::full({1, 1, 1, 1}, static_cast<float>(vae_->config.scaling_factor),
                                 device_)));
  return vae_->decode(vae_->from_latent(x));
}

}  // namespace kiln::pipelines::recipes
