#include "kiln/pipelines/recipes/stable_diffusion3.hpp"

#include <cmath>

#include "kiln/io/diffusers.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/rng/generator.hpp"

namespace kiln::pipelines::recipes {

namespace {
constexpr const char* kCtx = "stable_diffusion3";

// A component listed with a class in model_index.json (absent and [null, null] both mean no).
bool present(const io::DiffusersFolder& f, std::string_view name) {
  return f.has_component(name) && f.component(name).present();
}

// Flow-matching samplers (the schedules they take: flow, or UniPC's flow sigmas).
bool is_flow_sampler(samplers::SamplerKind kind) {
  const samplers::TimestepRule r = samplers::timestep_rule(kind);
  return r == samplers::TimestepRule::flow || r == samplers::TimestepRule::flow_unipc;
}

// (1, S, D) -> (B, S, D) and (1, D) -> (B, D): num_images_per_prompt copies of one prompt.
Tensor repeat_batch(const Tensor& t, int64_t batch) {
  Shape s = t.shape();
  s[0] = batch;
  return t.expand(s).contiguous();
}
}  // namespace

StableDiffusion3 StableDiffusion3::load(const std::filesystem::path& folder) {
  io::DiffusersFolder f = io::DiffusersFolder::open(folder);
  StableDiffusion3 sd;
  sd.tokenizer_ = std::make_shared<const text::ClipTokenizer>(
      text::ClipTokenizer::load(f.component_dir("tokenizer")));
  sd.tokenizer_2_ = std::make_shared<const text::ClipTokenizer>(
      text::ClipTokenizer::load(f.component_dir("tokenizer_2")));
  sd.text_encoder_ = std::make_shared<const models::ClipTextModel>(
      models::ClipTextModel::load(f.component_dir("text_encoder")));
  sd.text_encoder_2_ = std::make_shared<const models::ClipTextModel>(
      models::ClipTextModel::load(f.component_dir("text_encoder_2")));
  // SD3 ships without T5 too ([null, null] entries): diffusers then feeds zeros in its place.
  if (present(f, "text_encoder_3")) {
    KILN_CHECK(present(f, "tokenizer_3"), Status::format_error,
               (folder / "model_index.json").string(),
               "text_encoder_3 is set but tokenizer_3 is not");
    sd.tokenizer_3_ = std::make_shared<const text::T5Tokenizer>(
        text::T5Tokenizer::load(f.component_dir("tokenizer_3")));
    sd.text_encoder_3_ = std::make_shared<const models::T5EncoderModel>(
        models::T5EncoderModel::load(f.component_dir("text_encoder_3")));
  }
  sd.transformer_ = std::make_shared<const models::SD3Transformer2DModel>(
      models::SD3Transformer2DModel::load(f.component_dir("transformer")));
  sd.vae_ = std::make_shared<const models::AutoencoderKL>(
      models::AutoencoderKL::load(f.component_dir("vae")));
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
  KILN_ARG(max_sequence_length >= 1 && max_sequence_length <= 512, kCtx, "max_sequence_length ",
           max_sequence_length, " out of range [1, 512]");
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
    t5 = Tensor::zeros({1, max_sequence_length, J});
  }

  // torch.nn.functional.pad(clip, (0, J - (D1 + D2))), then cat with T5 on the sequence axis.
  const int64_t d = h1.size(2) + h2.size(2);
  Tensor parts[] = {h1, h2, Tensor::zeros({1, h1.size(1), J - d})};
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
  KILN_ARG(req.steps >= 1 && req.steps <= samplers::kMaxSteps, kCtx, "steps ", req.steps,
           " out of range [1, ", samplers::kMaxSteps, "]");
  KILN_ARG(req.batch >= 1 && req.batch <= 64, kCtx, "batch ", req.batch, " out of range [1, 64]");
  KILN_ARG(std::isfinite(req.guidance_scale), kCtx, "guidance_scale must be finite");
  const auto& tc = transformer_->config();
  const int64_t f = vae_->downscale_factor(), p = tc.patch_size;
  const int64_t width = req.width > 0 ? req.width : default_size();
  const int64_t height = req.height > 0 ? req.height : default_size();
  // check_inputs: the latent must split into whole patches.
  KILN_ARG(req.width >= 0 && req.height >= 0 && width % (f * p) == 0 && height % (f * p) == 0, kCtx,
           "size ", width, "x", height, " is not a multiple of the VAE factor ", f,
           " x patch size ", p, " (", f * p, ")");
  const samplers::SamplerKind kind = samplers::sampler_from_name(req.sampler);
  KILN_ARG(is_flow_sampler(kind), kCtx, "sampler \"", req.sampler,
           "\" is not a flow-matching sampler (SD3 takes flow_euler, flow_heun or flow_unipc)");
  const samplers::ScheduleKind sched_kind = samplers::schedule_from_name(req.schedule);
  KILN_ARG(opt.max_sequence_length >= 1 && opt.max_sequence_length <= 512, kCtx,
           "max_sequence_length ", opt.max_sequence_length, " out of range [1, 512]");
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
  rng::Generator gen = rng::Generator::torch_cpu(req.seed);
  Tensor x = ops::scale(rng::randn({B, tc.in_channels, lh, lw}, gen), sched.init_noise_sigma);

  const float g = req.guidance_scale;
  samplers::ModelFn model = [&](const Tensor& x_in, float t) {
    Tensor in = x_in;
    if (cfg) {
      Tensor two[] = {x_in, x_in};
      in = ops::concat(two, 0);
    }
    Tensor ts = Tensor::full({in.size(0)}, t);
    Tensor v = transformer_->forward(in, states, pooled, ts);
    if (!cfg) return v;
    auto halves = ops::chunk(v, 2, 0);  // uncond + g * (text - uncond)
    return ops::add(halves[0], ops::scale(ops::sub(halves[1], halves[0]), g));
  };
  samplers::Denoiser denoiser = samplers::wrap_model(model, schedule_cfg_, sched);
  samplers::SamplerContext ctx;
  ctx.gen = &gen;
  ctx.progress = req.progress;
  ctx.cancel = req.cancel;
  x = samplers::sample(kind, denoiser, x, sched.sigmas, ctx);
  x = samplers::final_latents(x, sched.sigmas.back(), schedule_cfg_);
  // latents / scaling_factor + shift_factor -> decode
  return vae_->decode(vae_->from_latent(x));
}

}  // namespace kiln::pipelines::recipes
