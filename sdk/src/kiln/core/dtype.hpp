// Element types. Compute on the CPU is f32; every other floating type is a storage type
// converted on load or on the fly (cast.cpp). Block-quantized types (a block of `block_elems`
// values packed into `block_bytes` with its scales) have room in the table: they are added
// by the quantization work without changing code that only asks for nbytes().
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace kiln {

enum class DType : uint8_t {
  f32,
  f16,
  bf16,
  f8_e4m3,  // OCP "fn" variant (torch.float8_e4m3fn): no inf, max 448, 0x7f/0xff = NaN
  f8_e5m2,  // IEEE-like: inf at 0x7c, max finite 57344
  i8,
  u8,
  i32,
  i64,
  boolean,
  count_  // keep last
};

struct DTypeInfo {
  std::string_view name;              // kiln's name: "f32", "bf16", ...
  std::string_view safetensors_name;  // "F32", "BF16", "F8_E4M3", ...
  int block_elems;                    // 1 for scalar types
  int block_bytes;                    // bytes of one block (element size for scalar types)
  bool is_float;
};

const DTypeInfo& dtype_info(DType t);
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
inline int dtype_size(DType t) { return dtype_info(t).block_bytes; }  // scalar types only
// Bytes needed for `numel` elements; throws if numel is not a whole number of blocks.
int64_t dtype_nbytes(DType t, int64_t numel);
// Parses "f32"/"float32"/"F32" (kiln, torch or safetensors spelling); throws on unknown.
DType parse_dtype(std::string_view s);
// safetensors spelling -> DType; returns false for a type kiln does not know.
bool dtype_from_safetensors(std::string_view s, DType* out);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::u8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::i64; }
template <> constexpr DType dtype_of<bool>() { return DType::boolean; }

// ---- scalar conversions (exact, round-to-nearest-even, torch's overflow conventions) ----

inline uint32_t f32_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float f32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

float f8e4m3_to_f32(uint8_t v);
float f8e5m2_to_f32(uint8_t v);
// Out-of-range values become NaN (e4m3) / inf (e5m2), as torch's .to(float8_*) does.
uint8_t f32_to_f8e4m3(float f);
uint8_t f32_to_f8e5m2(float f);

}  // namespace kiln
