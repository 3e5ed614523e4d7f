// Scalar float <-> half / bfloat16 conversions, bit-compatible with c10::Half / c10::BFloat16
// (and with F16C's vcvtps2ph in round-to-nearest-even mode) for every finite and infinite
// input. Kernels stay torch-free by carrying 16-bit floats as their bit patterns.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/isa_namespace.h"

namespace lowbit {

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

LOWBIT_ISA_BEGIN


inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Exact: every half is a float.
inline float half_to_float(Half h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1Fu;
  const uint32_t man = h.bits & 0x3FFu;
  if (exp == 0x1F) return bits_float(sign | 0x7F800000u | (man << 13));  // Inf / NaN (payload kept)
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
  // Subnormal or zero: man * 2^-24, exact in float.
  const float mag = static_cast<float>(man) * (1.0f / 16777216.0f);
  return (sign != 0) ? -mag : mag;
}

// Round to nearest, ties to even; overflow to ±Inf; NaN stays NaN (quiet, top payload bits kept
// as F16C does).
inline Half float_to_half(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return {static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu))};
  if (a >= 0x477FF000u) return {static_cast<uint16_t>(sign | 0x7C00u)};  // >= 65520: rounds to Inf
  if (a < 0x38800000u) {
    // Result is subnormal (or zero): let the FPU round |f| * 2^24 ... via the magic-add trick:
    // adding 0.5f aligns the half subnormal grid (2^-24) to float's ulp at 0.5 (2^-24). RNE.
    const float r = bits_float(a) + 0.5f;
    return {static_cast<uint16_t>(sign | static_cast<uint16_t>(float_bits(r) - 0x3F000000u))};
  }
  // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
  const uint32_t odd = (a >> 13) & 1u;
  const uint32_t r = (a + 0xC8000FFFu + odd) >> 13;  // 0xC8000000 = (15 - 127) << 23
  return {static_cast<uint16_t>(sign | static_cast<uint16_t>(r))};
}

inline float bfloat16_to_float(BFloat16 b) { return bits_float(static_cast<uint32_t>(b.bits) << 16); }

// Round to nearest, ties to even (c10::BFloat16's round_to_nearest_even); NaN -> 0x7FC0.
inline BFloat16 float_to_bfloat16(float f) {
  if (f != f) return {0x7FC0u};
  const uint32_t u = float_bits(f);
  const uint32_t rounding_bias = ((u >> 16) & 1u) + 0x7FFFu;
  return {static_cast<uint16_t>((u + rounding_bias) >> 16)};
}

// Uniform load/store so templated kernels read any supported element type as float.
inline float load_as_float(const float* p) { return *p; }
inline float load_as_float(const Half* p) { return half_to_float(*p); }
inline float load_as_float(const BFloat16* p) { return bfloat16_to_float(*p); }
inline void store_from_float(float* p, float v) { *p = v; }
inline void store_from_float(Half* p, float v) { *p = float_to_half(v); }
inline void store_from_float(BFloat16* p, float v) { *p = float_to_bfloat16(v); }

LOWBIT_ISA_END
}  // namespace lowbit
