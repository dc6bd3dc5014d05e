#include "kiln/pipelines/nn/layers.hpp"

namespace kiln::pipelines::nn {

void Linear::visit_params(ParamVisitor& v) {
  v.param("weight", &weight, {out, in});
  if (has_bias) v.param("bias", &bias, {out});
}

Conv::Conv(int dims, int64_t cin, int64_t cout, int64_t k, int s, int p, bool bias, int groups)
    : dims(dims), cin(cin), cout(cout), has_bias(bias) {
  KILN_ARG(dims >= 1 && dims <= 3, "nn::Conv", "dims must be 1, 2 or 3, got ", dims);
  KILN_ARG(groups > 0 && cin % groups == 0 && cout % groups == 0, "nn::Conv", "groups ", groups,
           " must divide ", cin, " and ", cout);
  kernel = {k, k, k};
  params = ops::ConvParams::same_pad(s, p, 1, groups);
}

void Conv::visit_params(ParamVisitor& v) {
  Shape w{cout, cin / params.groups};
  for (int i = 0; i < dims; ++i) w.push_back(kernel[i]);
  v.param("weight", &weight, w);
  if (has_bias) v.param("bias", &bias, {cout});
}

void GroupNorm::visit_params(ParamVisitor& v) {
  if (!affine) return;
  v.param("weight", &weight, {channels});
  v.param("bias", &bias, {channels});
}

void LayerNorm::visit_params(ParamVisitor& v) {
  if (!affine) return;
  v.param("weight", &weight, {dim});
  if (has_bias) v.param("bias", &bias, {dim});
}

void RMSNorm::visit_params(ParamVisitor& v) {
  if (affine) v.param("weight", &weight, {dim});
}

}  // namespace kiln::pipelines::nn
