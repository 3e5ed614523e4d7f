// Fixed-point requantization (METHODS §9; gemmlowp fixedpoint.h, TFLite quantization_util.cc).
// Every function is total: where gemmlowp/TFLite leave a case undefined (signed overflow), lowbit
// saturates and says so.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/isa_namespace.h"

namespace lowbit {

struct QuantizedMultiplier {
  int32_t multiplier;  // Q31 mantissa M0 in [2^30, 2^31), or 0
  int32_t shift;       // real ≈ M0 · 2^(shift - 31); shift <= 0 means a right shift
};

LOWBIT_ISA_BEGIN

inline constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();
inline constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

inline int32_t saturate_int32(int64_t v) {
  return v < kInt32Min ? kInt32Min : (v > kInt32Max ? kInt32Max : static_cast<int32_t>(v));
}


// QuantizeMultiplier (TFLite). Domain: real >= 0 and finite (the caller checks).
// M0 = RHAZ(q · 2^31) with q = frexp mantissa in [0.5, 1); a rounding carry to 2^31 is folded into
// the shift; multipliers below 2^-32 flush to (0, 0). `single_rounding` also applies the
// TFLITE_SINGLE_ROUNDING clamp shift <= 30 (M0 = 2^31 - 1 there).
inline QuantizedMultiplier quantize_multiplier(double real, bool single_rounding = false) {
  if (real == 0.0) return {0, 0};
  int shift = 0;
  const double q = std::frexp(real, &shift);
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(1LL << 31)));
  if (q_fixed == (1LL << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) {
    shift = 0;
    q_fixed = 0;
  }
  if (single_rounding && shift > 30) {
    shift = 30;
    q_fixed = (1LL << 31) - 1;
  }
  return {static_cast<int32_t>(q_fixed), shift};
}

// SaturatingRoundingDoublingHighMul (ARM VQRDMULH): round(a·b / 2^31), ties toward +inf.
// Saturates only for a == b == INT32_MIN (the one overflowing case) to INT32_MAX.
// SRDHM(5, 2^30) = 3; SRDHM(-3, 2^30) = -1; SRDHM(-1, 2^30) = 0.
inline int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == kInt32Min && b == kInt32Min) return kInt32Max;
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
  return static_cast<int32_t>((ab + nudge) / (1LL << 31));  // '/' truncates toward zero
}

// RoundingDivideByPOT: x / 2^exponent, ties away from zero, exponent in [0, 31].
// (5,1) = 3; (-5,1) = -3; (INT32_MIN,31) = -1. Never overflows.
inline int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((1LL << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// MultiplyByQuantizedMultiplier, TFLite's default "double rounding":
//   RoundingDivideByPOT(SRDHM(x · 2^left, M0), right),  left = max(shift, 0), right = max(-shift, 0).
// Rounds twice (ties toward +inf, then away from zero). x · 2^left saturates to int32 where
// TFLite would overflow. shift must be in [-31, 31].
inline int32_t multiply_by_quantized_multiplier_double_rounding(int32_t x, int32_t multiplier,
                                                                int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  const int32_t shifted = saturate_int32(static_cast<int64_t>(x) * (1LL << left));
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right);
}

// TFLITE_SINGLE_ROUNDING: (x · M0 + 2^(total-1)) >> total with total = 31 - shift; one rounding,
// ties toward +inf on the exact product. shift must be in [-31, 30]; the result saturates to int32.
inline int32_t multiply_by_quantized_multiplier_single_rounding(int32_t x, int32_t multiplier,
                                                                int shift) {
  const int total = 31 - shift;
  const int64_t round = 1LL << (total - 1);
  const int64_t result = (static_cast<int64_t>(x) * multiplier + round) >> total;
  return saturate_int32(result);
}

LOWBIT_ISA_END
}  // namespace lowbit
