#include "kiln/rng/generator.hpp"

namespace kiln::rng {

Generator Generator::torch_cpu(uint64_t seed, TorchCpuKernel kernel) {
  return Generator(TorchCpuGenerator(seed), kernel);
}

Generator Generator::philox_cuda(uint64_t seed, CudaLaunchParams params) {
  return Generator(PhiloxCudaGenerator(seed, params), TorchCpuKernel::avx2);
}

RngConvention Generator::convention() const {
  return std::holds_alternative<TorchCpuGenerator>(impl_) ? RngConvention::torch_cpu
                                                          : RngConvention::philox_cuda;
}

uint64_t Generator::seed() const {
  return std::visit([](const auto& g) { return g.seed(); }, impl_);
}

void Generator::manual_seed(uint64_t seed) {
  std::visit([seed](auto& g) { g.manual_seed(seed); }, impl_);
}

std::string Generator::str() const {
  if (const auto* g = std::get_if<TorchCpuGenerator>(&impl_))
    return kiln::str("torch_cpu(seed=", g->seed(),
                     ", kernel=", kernel_ == TorchCpuKernel::avx2 ? "avx2" : "scalar", ")");
  const auto& g = std::get<PhiloxCudaGenerator>(impl_);
  return kiln::str("philox_cuda(seed=", g.seed(), ", offset=", g.offset(),
                   ", sm_count=", g.params().sm_count, ")");
}

void Generator::randn(std::span<float> out) {
  if (auto* g = std::get_if<TorchCpuGenerator>(&impl_))
    g->randn(out, kernel_);
  else
    std::get<PhiloxCudaGenerator>(impl_).randn(out);
}

void Generator::rand(std::span<float> out) {
  std::visit([out](auto& g) { g.rand(out); }, impl_);
}

Tensor randn(const Shape& shape, Generator& gen) {
  Tensor t = Tensor::empty(shape, DType::f32);
  gen.randn(std::span<float>(t.mutable_data<float>(), static_cast<size_t>(t.numel())));
  return t;
}

Tensor rand(const Shape& shape, Generator& gen) {
  Tensor t = Tensor::empty(shape, DType::f32);
  gen.rand(std::span<float>(t.mutable_data<float>(), static_cast<size_t>(t.numel())));
  return t;
}

}  // namespace kiln::rng
