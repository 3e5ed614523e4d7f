// Requantization of one int32 accumulator to an output code (METHODS §9.2-9.3): the single
// specification that the requantize op, every SIMD requantize kernel and every GEMM/conv epilogue
// reproduce bit for bit. Built on the fixed-point primitives of core/fixed_point.h.
//
//   r   = MultiplyByQuantizedMultiplier(acc, M0, shift)     "double" (TFLite default) or "single"
//   out = clamp(zero_point + r, qmin, qmax)                  the sum taken exactly (no int32 wrap)
//
// The clamp also expresses fused ReLU / ReLU6 (qmin = max(qmin, Z_out), qmax = min(qmax, Z_out +
// RHAZ(6 / S_out))). Vector kernels compute the same value as clamp(r, qmin - z, qmax - z) + z
// (bounds clipped to int32), which never overflows and equals the exact form for every input.
#pragma once
#include <cstdint>

#include "core/fixed_point.h"
#include "core/isa_namespace.h"

namespace lowbit {

// One parameter set of a requantization block. shift is in [-31, 31] ("double") or [-31, 30]
// ("single"); the op layer checks it. qmin <= zero_point <= qmax.
struct RequantParams {
  int32_t multiplier;
  int32_t shift;
  int32_t zero_point;
  int32_t qmin;
  int32_t qmax;
};

// Integer-only addition of two quantized tensors (TFLite ADD for int8/uint8): each input is
// centred, shifted left by left_shift bits for headroom, rescaled to the common scale 2·max(Sa, Sb)
// by a multiplier < 1 (shift <= 0), summed, and requantized to the output.
//   ya = MBQM((a - za) · 2^left_shift, a_multiplier, a_shift)       (likewise yb)
//   out = clamp(out_zero_point + MBQM(ya + yb, out_multiplier, out_shift), qmin, qmax)
// With left_shift <= 22 and a_shift, b_shift <= 0, |ya|, |yb| <= 255·2^22, so every intermediate
// fits in int32 (the op layer checks those ranges).
struct QuantizedAddParams {
  int32_t a_zero_point, b_zero_point;
  int32_t a_multiplier, a_shift, b_multiplier, b_shift;
  int32_t out_multiplier, out_shift, out_zero_point;
  int32_t qmin, qmax, left_shift;
};

enum class RequantRounding : int32_t {
  Double = 0,  // SRDHM (ties toward +inf) then RoundingDivideByPOT (ties away from zero): TFLite default
  Single = 1,  // one rounding of the exact product, ties toward +inf: TFLITE_SINGLE_ROUNDING, ruy
};
inline constexpr int kNumRequantRoundings = 2;

LOWBIT_ISA_BEGIN

inline int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift,
                                                RequantRounding rounding) {
  return rounding == RequantRounding::Double
             ? multiply_by_quantized_multiplier_double_rounding(x, multiplier, shift)
             : multiply_by_quantized_multiplier_single_rounding(x, multiplier, shift);
}

// Domain: any int32 acc; parameters as documented on RequantParams. Total: never overflows.
inline int32_t requantize_one(int32_t acc, int32_t multiplier, int32_t shift, int32_t zero_point,
                              int32_t qmin, int32_t qmax, RequantRounding rounding) {
  const int64_t r = static_cast<int64_t>(multiply_by_quantized_multiplier(acc, multiplier, shift, rounding)) +
                    zero_point;
  return static_cast<int32_t>(r < qmin ? qmin : (r > qmax ? qmax : r));
}

inline int32_t requantize_one(int32_t acc, const RequantParams& p, RequantRounding rounding) {
  return requantize_one(acc, p.multiplier, p.shift, p.zero_point, p.qmin, p.qmax, rounding);
}

inline int32_t quantized_add_one(int32_t a, int32_t b, const QuantizedAddParams& p, RequantRounding rounding) {
  const int32_t ya = multiply_by_quantized_multiplier((a - p.a_zero_point) * (1 << p.left_shift), p.a_multiplier,
                                                     p.a_shift, rounding);
  const int32_t yb = multiply_by_quantized_multiplier((b - p.b_zero_point) * (1 << p.left_shift), p.b_multiplier,
                                                     p.b_shift, rounding);
  return requantize_one(ya + yb, p.out_multiplier, p.out_shift, p.out_zero_point, p.qmin, p.qmax, rounding);
}

LOWBIT_ISA_END
}  // namespace lowbit
