#include "kiln/core/copy.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include "kiln/core/error.hpp"
#include "kiln/core/parallel.hpp"

namespace kiln {

namespace {
template <typename I>
I saturate(float v) {
  if (std::isnan(v)) return 0;
  float t = std::trunc(v);
  if (t <= static_cast<float>(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (t >= static_cast<float>(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(t);
}
template <typename T> T ld(const void* p) { T v; std::memcpy(&v, p, sizeof(T)); return v; }
template <typename T> void st(void* p, T v) { std::memcpy(p, &v, sizeof(T)); }
bool is_int(DType t) { return !dtype_info(t).is_float; }
}  // namespace

float load_as_f32(const void* p, DType t) {
  switch (t) {
    case DType::f32: return ld<float>(p);
    case DType::f16: return f16_to_f32(ld<uint16_t>(p));
    case DType::bf16: return bf16_to_f32(ld<uint16_t>(p));
    case DType::f8_e4m3: return f8e4m3_to_f32(ld<uint8_t>(p));
    case DType::f8_e5m2: return f8e5m2_to_f32(ld<uint8_t>(p));
    case DType::i8: return ld<int8_t>(p);
    case DType::u8: return ld<uint8_t>(p);
    case DType::i32: return static_cast<float>(ld<int32_t>(p));
    case DType::i64: return static_cast<float>(ld<int64_t>(p));
    case DType::boolean: return ld<uint8_t>(p) ? 1.f : 0.f;
    default: break;
  }
  fail(Status::unsupported, str("cannot load ", dtype_name(t), " element-wise"), "copy");
}

void store_from_f32(void* p, DType t, float v) {
  switch (t) {
    case DType::f32: st(p, v); return;
    case DType::f16: st(p, f32_to_f16(v)); return;
    case DType::bf16: st(p, f32_to_bf16(v)); return;
    case DType::f8_e4m3: st(p, f32_to_f8e4m3(v)); return;
    case DType::f8_e5m2: st(p, f32_to_f8e5m2(v)); return;
    case DType::i8: st(p, saturate<int8_t>(v)); return;
    case DType::u8: st(p, saturate<uint8_t>(v)); return;
    case DType::i32: st(p, saturate<int32_t>(v)); return;
    case DType::i64: st(p, saturate<int64_t>(v)); return;
    case DType::boolean: st<uint8_t>(p, v != 0.f ? 1 : 0); return;
    default: break;
  }
  fail(Status::unsupported, str("cannot store ", dtype_name(t), " element-wise"), "copy");
}

int64_t load_as_i64(const void* p, DType t) {
  switch (t) {
    case DType::i8: return ld<int8_t>(p);
    case DType::u8: return ld<uint8_t>(p);
    case DType::i32: return ld<int32_t>(p);
    case DType::i64: return ld<int64_t>(p);
    case DType::boolean: return ld<uint8_t>(p) ? 1 : 0;
    default: return saturate<int64_t>(load_as_f32(p, t));
  }
}

void store_from_i64(void* p, DType t, int64_t v) {
  auto clamp = [](int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); };
  switch (t) {
    case DType::i8: st(p, static_cast<int8_t>(clamp(v, -128, 127))); return;
    case DType::u8: st(p, static_cast<uint8_t>(clamp(v, 0, 255))); return;
    case DType::i32:
      st(p, static_cast<int32_t>(clamp(v, std::numeric_limits<int32_t>::min(),
                                        std::numeric_limits<int32_t>::max())));
      return;
    case DType::i64: st(p, v); return;
    case DType::boolean: st<uint8_t>(p, v != 0 ? 1 : 0); return;
    default: store_from_f32(p, t, static_cast<float>(v)); return;
  }
}

void convert_to_f32(float* dst, const void* src, DType t, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    switch (t) {
      case DType::f32: std::memcpy(dst + b, static_cast<const float*>(src) + b, (e - b) * 4); break;
      case DType::f16: {
        auto s = static_cast<const uint16_t*>(src);
        for (int64_t i = b; i < e; ++i) dst[i] = f16_to_f32(s[i]);
        break;
      }
      case DType::bf16: {
        auto s = static_cast<const uint16_t*>(src);
        for (int64_t i = b; i < e; ++i) dst[i] = bf16_to_f32(s[i]);
        break;
      }
      default: {
        int sz = dtype_size(t);
        auto s = static_cast<const char*>(src);
        for (int64_t i = b; i < e; ++i) dst[i] = load_as_f32(s + i * sz, t);
      }
    }
  });
}

void convert_from_f32(void* dst, DType t, const float* src, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    switch (t) {
      case DType::f32: std::memcpy(static_cast<float*>(dst) + b, src + b, (e - b) * 4); break;
      case DType::f16: {
        auto d = static_cast<uint16_t*>(dst);
        for (int64_t i = b; i < e; ++i) d[i] = f32_to_f16(src[i]);
        break;
      }
      case DType::bf16: {
        auto d = static_cast<uint16_t*>(dst);
        for (int64_t i = b; i < e; ++i) d[i] = f32_to_bf16(src[i]);
        break;
      }
      default: {
        int sz = dtype_size(t);
        auto d = static_cast<char*>(dst);
        for (int64_t i = b; i < e; ++i) store_from_f32(d + i * sz, t, src[i]);
      }
    }
  });
}

void strided_copy_cast(void* dst, DType dst_t, const Shape& shape, const Strides& dst_strides,
                       const void* src, DType src_t, const Strides& src_strides) {
  const int nd = shape.size();
  const int64_t numel = shape_numel(shape);
  if (numel == 0) return;
  const int dsz = dtype_size(dst_t), ssz = dtype_size(src_t);
  const bool int_path = is_int(dst_t) && is_int(src_t);
  // Innermost dim is handled as a run; the outer index space is split across threads.
  const int64_t inner = nd ? shape[nd - 1] : 1;
  const int64_t ds_in = nd ? dst_strides[nd - 1] : 1, ss_in = nd ? src_strides[nd - 1] : 1;
  const int64_t outer = numel / inner;
  auto* d0 = static_cast<char*>(dst);
  auto* s0 = static_cast<const char*>(src);
  parallel_for(outer, std::max<int64_t>(1, (1 << 15) / inner), [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t rem = o, doff = 0, soff = 0;
      for (int k = nd - 2; k >= 0; --k) {
        int64_t idx = rem % shape[k];
        rem /= shape[k];
        doff += idx * dst_strides[k];
        soff += idx * src_strides[k];
      }
      char* dp = d0 + doff * dsz;
      const char* sp = s0 + soff * ssz;
      if (dst_t == src_t && ds_in == 1 && ss_in == 1) {
        std::memcpy(dp, sp, inner * dsz);
      } else if (dst_t == DType::f32 && ds_in == 1 && ss_in == 1) {
        convert_to_f32(reinterpret_cast<float*>(dp), sp, src_t, inner);
      } else if (dst_t == src_t) {
        for (int64_t i = 0; i < inner; ++i) std::memcpy(dp + i * ds_in * dsz, sp + i * ss_in * ssz, dsz);
      } else if (int_path) {
        for (int64_t i = 0; i < inner; ++i)
          store_from_i64(dp + i * ds_in * dsz, dst_t, load_as_i64(sp + i * ss_in * ssz, src_t));
      } else {
        for (int64_t i = 0; i < inner; ++i)
          store_from_f32(dp + i * ds_in * dsz, dst_t, load_as_f32(sp + i * ss_in * ssz, src_t));
      }
    }
  });
}

}  // namespace kiln
