// C ABI: seeded noise (kiln_noise_*).
#include <cstring>

#include "capi_common.hpp"
#include "kiln/core/shape.hpp"
#include "kiln/rng/generator.hpp"

using namespace kiln;

extern "C" {

KILN_API kiln_noise_params kiln_noise_default_params(void) {
  kiln_noise_params p{};
  p.struct_size = sizeof(kiln_noise_params);
  p.seed = 0;
  p.rng = KILN_RNG_TORCH_CPU;
  p.cuda_sm_count = 132;
  return p;
}

KILN_API kiln_status kiln_noise_generate(kiln_runtime* rt, const kiln_noise_params* params,
                                         const int64_t* shape, int ndim, float* out,
                                         size_t out_len) {
  return capi::guard([&] {
    const char* fn = "kiln_noise_generate";
    capi::need(rt, fn, "rt");
    capi::need(params, fn, "params");
    capi::need(out, fn, "out");
    KILN_ARG(params->struct_size >= offsetof(kiln_noise_params, rng) + sizeof(kiln_rng) &&
                 params->struct_size <= sizeof(kiln_noise_params),
             fn, "params->struct_size ", params->struct_size, " is not a known size");
    kiln_noise_params p = kiln_noise_default_params();
    std::memcpy(&p, params, params->struct_size);
    KILN_ARG(ndim >= 0 && ndim <= kMaxDims, fn, "ndim ", ndim, " out of range [0, ", kMaxDims, "]");
    if (ndim > 0) capi::need(shape, fn, "shape");
    Shape s(std::span<const int64_t>(shape, static_cast<size_t>(ndim)));
    const int64_t n = shape_numel(s);
    KILN_ARG(static_cast<uint64_t>(n) == out_len, fn, "out_len ", out_len,
             " does not match the shape's ", n, " elements ", s.str());
    rng::Generator g = [&] {
      switch (p.rng) {
        case KILN_RNG_TORCH_CPU: return rng::Generator::torch_cpu(p.seed);
        case KILN_RNG_TORCH_CUDA: {
          KILN_ARG(p.cuda_sm_count > 0 && p.cuda_sm_count <= 1024, fn, "cuda_sm_count ",
                   p.cuda_sm_count, " out of range [1, 1024]");
          rng::CudaLaunchParams lp;
          lp.sm_count = p.cuda_sm_count;
          return rng::Generator::philox_cuda(p.seed, lp);
        }
      }
      fail(Status::invalid_argument, str("unknown rng ", static_cast<int>(p.rng)), fn);
    }();
    Tensor t = rng::randn(s, g);
    if (n) std::memcpy(out, t.data<float>(), static_cast<size_t>(n) * sizeof(float));
  });
}

}  // extern "C"
