#include "kiln/pipelines/bench.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "kiln/core/error.hpp"
#include "kiln/core/parallel.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/cuda/cuda_memory.hpp"
#include "kiln/io/diffusers.hpp"
#include "kiln/io/module.hpp"
#include "kiln/ops/ops.hpp"
#include "kiln/pipelines/models/flux_transformer.hpp"
#include "kiln/pipelines/models/unet2d_condition.hpp"

namespace kiln::pipelines::bench {

namespace {

constexpr const char* kCtx = "bench";
using nlohmann::json;

// ---------------------------------------------------------------- random data

// Counter-based uniform [-bound, bound): element i of stream `seed` is a SplitMix64 hash of
// (seed, i), so filling is parallel and the values do not depend on the thread count. Weights of
// billions of elements (Flux: 11.9e9) are made in seconds; their values only have to be finite
// and of a sane scale for a timing.
Tensor random_tensor(const Shape& shape, DType dtype, Device device, uint64_t seed, float bound) {
  Tensor t = Tensor::empty(shape, DType::f32);
  float* p = t.mutable_data<float>();
  const uint64_t base = seed * 0x9E3779B97F4A7C15ull;
  parallel_for(t.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      uint64_t z = base + static_cast<uint64_t>(i) * 0xD1B54A32D192ED03ull;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      const float u = static_cast<float>(z >> 40) * 0x1p-24f;  // [0, 1)
      p[i] = (2.f * u - 1.f) * bound;
    }
  });
  return t.to(dtype).to(device);
}

// Fills every parameter of `m` with random values of `dtype` on `device`: matrices and conv
// kernels uniform in +-1/sqrt(fan_in) (torch's default init bound for Linear/Conv, so
// activations keep their scale through deep stacks), vectors (biases, norm weights) in +-0.02.
// Returns the parameter count.
int64_t bind_random(io::Module& m, DType dtype, Device device) {
  int64_t count = 0;
  uint64_t seed = 1000;
  for (const io::ParamDecl& p : io::collect_params(m)) {
    const int64_t n = shape_numel(p.shape);
    const int64_t fan_in = p.shape.size() >= 2 ? n / p.shape[0] : 0;
    const float bound = fan_in > 0 ? 1.f / std::sqrt(static_cast<float>(fan_in)) : 0.02f;
    *p.slot = random_tensor(p.shape, dtype, device, seed++, bound);
    count += n;
  }
  return count;
}

// ---------------------------------------------------------------- parameters

int64_t get_int(const json& params, const char* key) {
  const json& v = params.at(key);
  if (v.is_boolean()) return v.get<bool>() ? 1 : 0;
  return v.get<int64_t>();
}

// A workload prepared on its device: `step` runs one iteration.
struct Prepared {
  std::function<void()> step;
  double flops = 0;        // per iteration; 0 = not counted (components)
  int64_t parameters = 0;  // components: weights bound
  std::string label;       // "attention 1x12x32760x128 causal"
};

using Builder = Prepared (*)(const Spec&);

Prepared build_attention(const Spec& s) {
  const json& q = s.params;
  const int64_t B = get_int(q, "batch"), H = get_int(q, "heads"), Lq = get_int(q, "seq"),
                Lk = get_int(q, "seq_k"), D = get_int(q, "head_dim");
  const bool causal = get_int(q, "causal") != 0;
  auto qt = std::make_shared<Tensor>(random_tensor({B, H, Lq, D}, s.dtype, s.device, 1, 1.f));
  auto kt = std::make_shared<Tensor>(random_tensor({B, H, Lk, D}, s.dtype, s.device, 2, 1.f));
  auto vt = std::make_shared<Tensor>(random_tensor({B, H, Lk, D}, s.dtype, s.device, 3, 1.f));
  ops::AttentionParams ap;
  ap.causal = causal;
  Prepared p;
  p.step = [qt, kt, vt, ap] { (void)ops::attention(*qt, *kt, *vt, {}, ap); };
  p.flops = attention_flops(B, H, Lq, Lk, D, causal);
  p.label = str("attention ", B, "x", H, "x", Lq, Lk != Lq ? str("x", Lk) : "", "x", D,
                causal ? " causal" : "");
  return p;
}

Prepared build_gemm(const Spec& s) {
  const json& q = s.params;
  const int64_t M = get_int(q, "m"), N = get_int(q, "n"), K = get_int(q, "k"),
                batch = get_int(q, "batch");
  const Shape sa = batch > 1 ? Shape{batch, M, K} : Shape{M, K};
  const Shape sb = batch > 1 ? Shape{batch, K, N} : Shape{K, N};
  const float bound = 1.f / std::sqrt(static_cast<float>(std::max<int64_t>(K, 1)));
  auto a = std::make_shared<Tensor>(random_tensor(sa, s.dtype, s.device, 1, 1.f));
  auto b = std::make_shared<Tensor>(random_tensor(sb, s.dtype, s.device, 2, bound));
  Prepared p;
  p.step = [a, b] { (void)ops::matmul(*a, *b); };
  p.flops = gemm_flops(M, N, K, batch);
  p.label = str("gemm ", batch > 1 ? str(batch, "x") : "", M, "x", N, "x", K);
  return p;
}

Prepared build_conv2d(const Spec& s) {
  const json& q = s.params;
  const int64_t N = get_int(q, "batch"), Cin = get_int(q, "cin"), Cout = get_int(q, "cout"),
                H = get_int(q, "height"), W = get_int(q, "width"), k = get_int(q, "kernel"),
                stride = get_int(q, "stride"), groups = get_int(q, "groups");
  int64_t pad = get_int(q, "padding");
  if (pad < 0) pad = k / 2;  // -1: 'same' for odd kernels at stride 1
  KILN_ARG(k > 0 && stride > 0 && groups > 0 && Cin % groups == 0 && Cout % groups == 0, kCtx,
           "conv2d needs kernel, stride, groups > 0 and cin, cout divisible by groups");
  const int64_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
  KILN_ARG(Ho > 0 && Wo > 0, kCtx, "conv2d output would be empty (", Ho, "x", Wo, ")");
  const float bound = 1.f / std::sqrt(static_cast<float>(Cin / groups * k * k));
  auto x = std::make_shared<Tensor>(random_tensor({N, Cin, H, W}, s.dtype, s.device, 1, 1.f));
  auto w = std::make_shared<Tensor>(
      random_tensor({Cout, Cin / groups, k, k}, s.dtype, s.device, 2, bound));
  auto b = std::make_shared<Tensor>(random_tensor({Cout}, s.dtype, s.device, 3, 0.02f));
  const ops::ConvParams cp = ops::ConvParams::same_pad(
      static_cast<int>(stride), static_cast<int>(pad), 1, static_cast<int>(groups));
  Prepared p;
  p.step = [x, w, b, cp] { (void)ops::conv(*x, *w, *b, cp); };
  p.flops = conv2d_flops(N, Cout, Ho, Wo, Cin, groups, k, k);
  p.label = str("conv2d ", N, "x", Cin, "x", H, "x", W, " -> ", Cout, " k", k, " s", stride,
                groups > 1 ? str(" g", groups) : "");
  return p;
}

// A U-Net at a released config (keys as in the diffusers config.json; what is not given is
// diffusers' default) with random weights; CFG batch: latent (batch, 4, height/8, width/8),
// text (batch, text_seq, cross_attention_dim); SDXL also text_embeds (batch, 1280) and time_ids
// (batch, 6). Inputs in the spec's dtype on its device, timestep f32 (as the pipelines pass it).
Prepared build_unet(const Spec& s, const json& config, const char* name) {
  const json& q = s.params;
  const int64_t B = get_int(q, "batch"), H = get_int(q, "height"), W = get_int(q, "width"),
                S = get_int(q, "text_seq");
  KILN_ARG(H % 8 == 0 && W % 8 == 0 && H > 0 && W > 0, kCtx, name,
           " height and width must be positive multiples of 8, got ", H, "x", W);
  const models::UNet2DConditionConfig cfg =
      models::UNet2DConditionConfig::from_json(io::ComponentConfig(config, str(name, ".json")));
  auto unet = std::make_shared<models::UNet2DConditionModel>(cfg);
  Prepared p;
  p.parameters = bind_random(*unet, s.dtype, s.device);
  auto x = std::make_shared<Tensor>(
      random_tensor({B, cfg.in_channels, H / 8, W / 8}, s.dtype, s.device, 1, 1.f));
  auto ctx = std::make_shared<Tensor>(
      random_tensor({B, S, cfg.cross_attention_dim}, s.dtype, s.device, 2, 1.f));
  auto t = std::make_shared<Tensor>(Tensor::full({B}, 981.f).to(s.device));
  auto added = std::make_shared<models::UNetAddedConditions>();
  if (cfg.text_time) {
    const int64_t pooled =
        cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim;
    added->text_embeds = random_tensor({B, pooled}, s.dtype, s.device, 3, 1.f);
    // (original h, w, crop top, left, target h, w), as StableDiffusionXLPipeline builds them.
    std::vector<float> ids;
    for (int64_t i = 0; i < B; ++i)
      ids.insert(ids.end(), {float(H), float(W), 0.f, 0.f, float(H), float(W)});
    added->time_ids = Tensor::from_f32({B, 6}, ids).to(s.device);
  }
  p.step = [unet, x, ctx, t, added] { (void)unet->forward(*x, *t, *ctx, *added); };
  p.label = str(name, " ", H, "x", W, " batch ", B);
  return p;
}

Prepared build_unet_sd15(const Spec& s) {
  // runwayml/stable-diffusion-v1-5 unet/config.json (the rest are diffusers' defaults).
  const json cfg = {{"_class_name", "UNet2DConditionModel"},
                    {"block_out_channels", {320, 640, 1280, 1280}},
                    {"cross_attention_dim", 768},
                    {"attention_head_dim", 8},
                    {"layers_per_block", 2},
                    {"norm_num_groups", 32},
                    {"sample_size", 64}};
  return build_unet(s, cfg, "unet-sd15");
}

Prepared build_unet_sdxl(const Spec& s) {
  // stabilityai/stable-diffusion-xl-base-1.0 unet/config.json.
  const json cfg = {
      {"_class_name", "UNet2DConditionModel"},
      {"block_out_channels", {320, 640, 1280}},
      {"attention_head_dim", {5, 10, 20}},
      {"down_block_types", {"DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"}},
      {"up_block_types", {"CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"}},
      {"transformer_layers_per_block", {1, 2, 10}},
      {"cross_attention_dim", 2048},
      {"use_linear_projection", true},
      {"addition_embed_type", "text_time"},
      {"addition_time_embed_dim", 256},
      {"projection_class_embeddings_input_dim", 2816},
      {"layers_per_block", 2},
      {"sample_size", 128}};
  return build_unet(s, cfg, "unet-sdxl");
}

// FLUX.1-dev's transformer (config of black-forest-labs/FLUX.1-dev; the struct's defaults are
// those sizes) at height x width: the 16-channel latent (height/8, width/8) packed into
// (height/16 * width/16) tokens of 64, text_seq T5 tokens of 4096, CLIP pooled 768, sigma 1,
// guidance 3.5. No CFG (guidance-distilled): batch 1 by default. layers / single_layers (19 / 38)
// can be lowered to time part of the stack or to fit a smaller device.
Prepared build_flux(const Spec& s) {
  const json& q = s.params;
  const int64_t B = get_int(q, "batch"), H = get_int(q, "height"), W = get_int(q, "width"),
                S = get_int(q, "text_seq");
  KILN_ARG(H % 16 == 0 && W % 16 == 0 && H > 0 && W > 0, kCtx,
           "flux height and width must be positive multiples of 16, got ", H, "x", W);
  models::FluxTransformerConfig cfg;
  cfg.guidance_embeds = get_int(q, "guidance") != 0;
  cfg.num_layers = static_cast<int>(get_int(q, "layers"));
  cfg.num_single_layers = static_cast<int>(get_int(q, "single_layers"));
  auto flux = std::make_shared<models::FluxTransformer2DModel>(cfg);
  Prepared p;
  p.parameters = bind_random(*flux, s.dtype, s.device);
  const int64_t h = H / 16, w = W / 16;
  auto x = std::make_shared<Tensor>(
      random_tensor({B, h * w, cfg.in_channels}, s.dtype, s.device, 1, 1.f));
  auto ctx = std::make_shared<Tensor>(
      random_tensor({B, S, cfg.joint_attention_dim}, s.dtype, s.device, 2, 1.f));
  auto pooled = std::make_shared<Tensor>(
      random_tensor({B, cfg.pooled_projection_dim}, s.dtype, s.device, 3, 1.f));
  auto t = std::make_shared<Tensor>(Tensor::full({B}, 1.f).to(s.device));
  auto g = std::make_shared<Tensor>(cfg.guidance_embeds ? Tensor::full({B}, 3.5f).to(s.device)
                                                        : Tensor());
  auto img_ids = std::make_shared<Tensor>(models::flux::latent_image_ids(h, w).to(s.device));
  auto txt_ids = std::make_shared<Tensor>(models::flux::text_ids(S).to(s.device));
  p.step = [flux, x, ctx, pooled, t, g, img_ids, txt_ids] {
    (void)flux->forward(*x, *ctx, *pooled, *t, *img_ids, *txt_ids, *g);
  };
  p.label = str("flux ", cfg.guidance_embeds ? "dev " : "schnell ", H, "x", W,
                B > 1 ? str(" batch ", B) : "",
                cfg.num_layers != 19 || cfg.num_single_layers != 38
                    ? str(" ", cfg.num_layers, "+", cfg.num_single_layers, " blocks")
                    : "");
  return p;
}

struct Workload {
  const char* name;
  Builder build;
  json defaults;
};

// Defaults: attention is issue 5's target shape (Wan2.1-1.3B self-attention at 480p, 81
// frames); gemm a square 4096^3; conv2d SD1.5's 320-channel 3x3 at 64^2 with the CFG batch; the
// components at the resolutions DESIGN.md quotes PyTorch for.
const std::vector<Workload>& workloads() {
  // One workload per entry reads better than one parameter per line.
  // clang-format off
  static const std::vector<Workload> w = {
      {"attention", build_attention,
       {{"batch", 1}, {"heads", 12}, {"seq", 32760}, {"seq_k", 0}, {"head_dim", 128},
        {"causal", false}}},
      {"gemm", build_gemm, {{"m", 4096}, {"n", 4096}, {"k", 4096}, {"batch", 1}}},
      {"conv2d", build_conv2d,
       {{"batch", 2}, {"cin", 320}, {"cout", 320}, {"height", 64}, {"width", 64}, {"kernel", 3},
        {"stride", 1}, {"padding", -1}, {"groups", 1}}},
      {"unet-sd15", build_unet_sd15,
       {{"batch", 2}, {"height", 512}, {"width", 512}, {"text_seq", 77}}},
      {"unet-sdxl", build_unet_sdxl,
       {{"batch", 2}, {"height", 1024}, {"width", 1024}, {"text_seq", 77}}},
      {"flux", build_flux,
       {{"batch", 1}, {"height", 1024}, {"width", 1024}, {"text_seq", 512}, {"guidance", true},
        {"layers", 19}, {"single_layers", 38}}},
  };
  // clang-format on
  return w;
}

const Workload& find_workload(const std::string& name) {
  std::string known;
  for (const Workload& w : workloads()) {
    if (name == w.name) return w;
    known += (known.empty() ? "" : ", ") + std::string(w.name);
  }
  fail(Status::invalid_argument, str("unknown workload '", name, "' (", known, ")"), kCtx);
}

// ---------------------------------------------------------------- memory

// Linux /proc/self/status field in bytes ("VmHWM:  123456 kB"), 0 when unreadable.
size_t proc_status_bytes(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(key.size())) * 1024;
  return 0;
}

// Resets the process's peak RSS (VmHWM) to the current RSS (Linux >= 4.0); false if refused.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  return static_cast<bool>(f.flush());
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

double attention_flops(int64_t batch, int64_t heads, int64_t seq_q, int64_t seq_k, int64_t head_dim,
                       bool causal) {
  const double f = 4.0 * static_cast<double>(batch) * heads * seq_q * seq_k * head_dim;
  return causal ? f / 2 : f;
}

double gemm_flops(int64_t m, int64_t n, int64_t k, int64_t batch) {
  return 2.0 * static_cast<double>(m) * n * k * batch;
}

double conv2d_flops(int64_t n, int64_t cout, int64_t hout, int64_t wout, int64_t cin,
                    int64_t groups, int64_t kh, int64_t kw) {
  return 2.0 * static_cast<double>(n) * cout * hout * wout * (cin / groups) * kh * kw;
}

std::vector<std::string> workload_names() {
  std::vector<std::string> names;
  for (const Workload& w : workloads()) names.emplace_back(w.name);
  return names;
}

json workload_defaults(const std::string& workload) {
  return find_workload(workload).defaults;
}

Spec parse_spec(const std::string& spec_json) {
  json j = json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  KILN_ARG(j.is_object(), kCtx, "the spec must be a JSON object, got: ", spec_json);
  static const char* kFields[] = {"workload", "device", "dtype", "warmup", "iters", "params"};
  for (const auto& [key, value] : j.items())
    KILN_ARG(std::find(std::begin(kFields), std::end(kFields), key) != std::end(kFields), kCtx,
             "unknown spec field '", key, "' (workload, device, dtype, warmup, iters, params)");
  KILN_ARG(j.contains("workload") && j["workload"].is_string(), kCtx,
           "the spec needs \"workload\": a string");
  Spec s;
  s.workload = j["workload"].get<std::string>();
  const Workload& w = find_workload(s.workload);
  if (j.contains("device")) {
    KILN_ARG(j["device"].is_string(), kCtx, "\"device\" must be a string such as \"cuda:0\"");
    s.device = Device::parse(j["device"].get<std::string>());
  }
  s.dtype = s.device.is_cuda() ? DType::bf16 : DType::f32;
  if (j.contains("dtype")) {
    KILN_ARG(j["dtype"].is_string(), kCtx, "\"dtype\" must be a string (f32, bf16, f16)");
    const std::string d = j["dtype"].get<std::string>();
    KILN_ARG(d == "f32" || d == "bf16" || d == "f16", kCtx, "dtype '", d,
             "' is not one of f32, bf16, f16");
    s.dtype = parse_dtype(d);
  }
  auto count = [&](const char* key, int& out, int lo) {
    if (!j.contains(key)) return;
    KILN_ARG(
        j[key].is_number_integer() && j[key].get<int64_t>() >= lo && j[key].get<int64_t>() <= 10000,
        kCtx, "\"", key, "\" must be an integer in [", lo, ", 10000], got ", j[key].dump());
    out = j[key].get<int>();
  };
  count("warmup", s.warmup, 0);
  count("iters", s.iters, 1);
  s.params = w.defaults;
  if (j.contains("params")) {
    KILN_ARG(j["params"].is_object(), kCtx, "\"params\" must be a JSON object");
    for (const auto& [key, value] : j["params"].items()) {
      if (!s.params.contains(key)) {
        std::string known;
        for (const auto& [k, v] : w.defaults.items()) known += (known.empty() ? "" : ", ") + k;
        fail(Status::invalid_argument,
             str(s.workload, " has no parameter '", key, "' (", known, ")"), kCtx);
      }
      const bool flag = s.params[key].is_boolean();
      if (flag && value.is_number_integer() && (value == 0 || value == 1)) {
        s.params[key] = value == 1;
        continue;
      }
      KILN_ARG(flag ? value.is_boolean() : value.is_number_integer(), kCtx, s.workload, " ", key,
               " must be ", flag ? "true/false (or 1/0)" : "an integer", ", got ", value.dump());
      s.params[key] = value;
    }
  }
  for (const auto& [key, value] : s.params.items()) {
    if (value.is_boolean()) continue;
    const int64_t v = value.get<int64_t>();
    // -1 is "derive it" for padding; seq_k 0 is "same as seq"; a Flux stack may lack a kind.
    const int64_t lo = key == "padding"                                              ? -1
                       : key == "seq_k" || key == "layers" || key == "single_layers" ? 0
                                                                                     : 1;
    KILN_ARG(v >= lo, kCtx, s.workload, " ", key, " must be >= ", lo, ", got ", v);
  }
  if (s.workload == "attention" && s.params["seq_k"] == 0) s.params["seq_k"] = s.params["seq"];
  if (s.workload == "conv2d" && s.params["padding"] == -1)
    s.params["padding"] = s.params["kernel"].get<int64_t>() / 2;
  return s;
}

json run(const Spec& s) {
  check_device(s.device);
  const bool cuda = s.device.is_cuda();
  const size_t rss_before = proc_status_bytes("VmRSS");
  const bool rss_reset = !cuda && reset_peak_rss();

  Prepared p = find_workload(s.workload).build(s);

  // Peaks count what is held from here on: weights, inputs and every activation of the timed
  // iterations (torch.cuda.reset_peak_memory_stats at the same point in the companion script).
  if (cuda) cuda_reset_peak_memory_stats(s.device);
  DeviceBackend& backend = backend_for(s.device);
  // The stream this thread's device work is ordered on (today the legacy default stream, where
  // cuda_ops::op_stream launches every kernel).
  const Stream stream = cuda ? cuda_current_stream(s.device) : Stream{s.device, nullptr};
  for (int i = 0; i < s.warmup; ++i) p.step();
  backend.synchronize(stream);

  std::vector<double> ms(static_cast<size_t>(s.iters));
  if (cuda) {
    // Events around each iteration, all read after the last one: the host queues ahead and
    // never stalls the device between iterations.
    std::vector<CudaEvent> start, stop;
    start.reserve(ms.size());
    stop.reserve(ms.size());
    for (int i = 0; i < s.iters; ++i) {
      start.emplace_back(s.device);
      stop.emplace_back(s.device);
    }
    for (int i = 0; i < s.iters; ++i) {
      start[i].record(stream);
      p.step();
      stop[i].record(stream);
    }
    for (int i = 0; i < s.iters; ++i) ms[i] = CudaEvent::elapsed_ms(start[i], stop[i]);
  } else {
    for (int i = 0; i < s.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      p.step();
      ms[i] =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  }

  json r;
  r["workload"] = s.workload;
  r["label"] = p.label;
  r["device"] = s.device.str();
  r["device_name"] = backend.describe(s.device.index);
  r["dtype"] = std::string(dtype_name(s.dtype));
  r["params"] = s.params;
  r["warmup"] = s.warmup;
  r["iters"] = s.iters;
  r["times_ms"] = ms;
  const double med = median(ms);
  r["median_ms"] = med;
  r["min_ms"] = *std::min_element(ms.begin(), ms.end());
  double sum = 0;
  for (double v : ms) sum += v;
  r["mean_ms"] = sum / static_cast<double>(ms.size());
  if (p.flops > 0) {
    r["flops"] = p.flops;
    r["tflops"] = med > 0 ? p.flops / (med * 1e-3) / 1e12 : 0.0;
  } else {
    r["flops"] = nullptr;  // components: no FLOP count (it would need a per-op counter)
    r["tflops"] = nullptr;
  }
  if (p.parameters > 0) r["parameters"] = p.parameters;
  if (cuda) {
    const CudaMemoryStats m = cuda_memory_stats(s.device);
    r["peak_allocated_bytes"] = m.peak_allocated_bytes;
    r["peak_reserved_bytes"] = m.peak_reserved_bytes;
  } else {
    // Max RSS over the run minus the RSS before the inputs were made. When the kernel refuses
    // to reset the peak (no /proc/self/clear_refs), an earlier, higher peak of the process
    // would hide this one: then it is flagged.
    const size_t hwm = proc_status_bytes("VmHWM");
    r["peak_rss_delta_bytes"] = hwm > rss_before ? hwm - rss_before : 0;
    r["peak_rss_reset"] = rss_reset;
  }
  return r;
}

}  // namespace kiln::pipelines::bench
