// kiln::rng::Generator: the seeded noise source a request owns and passes to samplers.
//
// A user's seed means "the noise torch would give with this seed", and torch gives different
// noise on the CPU and on CUDA, so the generator is chosen by convention, not by where kiln runs:
//
//   auto g = Generator::torch_cpu(42);        // == torch.randn(shape, generator=
//                                             //      torch.Generator().manual_seed(42))
//   auto g = Generator::philox_cuda(42);      // == the same on device='cuda' (H100 mapping)
//   Tensor x = randn({1, 4, 64, 64}, g);      // f32 CPU tensor; g advances like torch's
//   Tensor y = randn({1, 4, 64, 64}, g);      // == a second torch.randn on the same generator
//
// torch_cpu is bit-exact (TorchCpuKernel::avx2 = torch on x86 with AVX2/AVX-512, ::scalar =
// ATEN_CPU_CAPABILITY=default or non-x86). philox_cuda is bit-exact in its Philox words and
// rand(), and matches torch CUDA's randn to float rounding (the GPU's __sincosf); its mapping
// of elements to Philox streams depends on the GPU's SM count (CudaLaunchParams).
// Results are always CPU f32 tensors; a caller moves them to its device.
//
// Not thread-safe; copyable (a copy continues the same stream independently).
#pragma once

#include <cstdint>
#include <string>
#include <variant>

#include "kiln/core/shape.hpp"
#include "kiln/core/tensor.hpp"
#include "kiln/rng/philox.hpp"
#include "kiln/rng/torch_cpu_randn.hpp"

namespace kiln::rng {

enum class RngConvention : uint8_t { torch_cpu, philox_cuda };

class Generator {
 public:
  static Generator torch_cpu(uint64_t seed, TorchCpuKernel kernel = TorchCpuKernel::avx2);
  static Generator philox_cuda(uint64_t seed, CudaLaunchParams params = {});

  RngConvention convention() const;
  uint64_t seed() const;
  void manual_seed(uint64_t seed);  // restarts the stream, as torch's manual_seed
  std::string str() const;          // "torch_cpu(seed=42, kernel=avx2)"

  // The underlying engines, for saving/restoring state (TorchCpuGenerator::state(),
  // PhiloxCudaGenerator::offset()). Null when the convention differs.
  TorchCpuGenerator* as_torch_cpu() { return std::get_if<TorchCpuGenerator>(&impl_); }
  PhiloxCudaGenerator* as_philox_cuda() { return std::get_if<PhiloxCudaGenerator>(&impl_); }
  TorchCpuKernel torch_cpu_kernel() const { return kernel_; }

  void randn(std::span<float> out);  // standard normal, torch element order
  void rand(std::span<float> out);   // uniform [0, 1)

 private:
  Generator(std::variant<TorchCpuGenerator, PhiloxCudaGenerator> impl, TorchCpuKernel kernel)
      : impl_(std::move(impl)), kernel_(kernel) {}
  std::variant<TorchCpuGenerator, PhiloxCudaGenerator> impl_;
  TorchCpuKernel kernel_ = TorchCpuKernel::avx2;
};

// New contiguous f32 CPU tensors of `shape` filled as torch.randn / torch.rand would.
Tensor randn(const Shape& shape, Generator& gen);
Tensor rand(const Shape& shape, Generator& gen);

}  // namespace kiln::rng
