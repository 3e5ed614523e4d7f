// Uniform affine quantization of one element (METHODS §1.1, §1.4): the single specification that
// every fake-quant, quantize and dequantize kernel (scalar or SIMD) must reproduce bit for bit.
//
//   code      qf = z + R(x · inv_scale)       inv_scale = 1.0f / scale (float32), as PyTorch/FBGEMM
//   clamp     q  = min(qmax, max(qmin, qf))   NaN passes through (comparisons are false)
//   fake      y  = (q - z) · scale
//   STE mask  integer: qmin <= qf <= qmax     (PyTorch: the mask is taken after rounding)
//             real:    lo <= x <= hi          lo = (qmin - z)·scale, hi = (qmax - z)·scale (TensorRT)
//
// Non-finite inputs (documented contract, tested): ±Inf saturates to the qmax/qmin level with a
// zero gradient; NaN stays NaN in fake quantization (gradient 0) and becomes the zero point in
// integer quantization, where NaN cannot be represented.
#pragma once
#include <cstdint>

#include "core/rounding.h"

namespace lowbit {

// Per-block parameters, pre-converted to float once per call. Exact for integer ranges and zero
// points within ±2^24 (lowbit's ranges are at most 16 bits).
struct AffineParams {
  float scale;
  float inv_scale;
  float zero_point;
  float qmin;
  float qmax;
  float real_lo;  // (qmin - z) · scale, the real-domain clip edges of ste="real"
  float real_hi;
};

LOWBIT_ISA_BEGIN


inline AffineParams make_affine_params(float scale, int32_t zero_point, int64_t qmin, int64_t qmax) {
  const float z = static_cast<float>(zero_point);
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  return {scale, 1.0f / scale, z, lo, hi, (lo - z) * scale, (hi - z) * scale};
}

// Order matters for NaN: `lo > v ? lo : v` returns v when v is NaN (as _mm*_max_ps(lo, v) does).
inline float clamp_keep_nan(float v, float lo, float hi) {
  const float a = lo > v ? lo : v;
  return hi < a ? hi : a;
}

inline float affine_code_unclamped(float x, const AffineParams& p, Rounding mode) {
  return p.zero_point + round_by(mode, x * p.inv_scale);
}

inline float affine_code_unclamped_stochastic(float x, const AffineParams& p, float u) {
  return p.zero_point + round_stochastic(x * p.inv_scale, u);
}

inline float fake_quantize_from_code(float qf, const AffineParams& p) {
  return (clamp_keep_nan(qf, p.qmin, p.qmax) - p.zero_point) * p.scale;
}

// Applies an STE mask to an incoming gradient by *multiplying* with 0/1, as PyTorch's dY * mask
// does, so masked entries are -0 for a negative dy and NaN for a non-finite dy, bit for bit.
inline float ste_apply(float dy, bool pass) { return dy * (pass ? 1.0f : 0.0f); }

inline bool ste_integer_mask(float qf, const AffineParams& p) { return p.qmin <= qf && qf <= p.qmax; }
inline bool ste_real_mask(float x, const AffineParams& p) { return p.real_lo <= x && x <= p.real_hi; }

// Integer code for quantize_affine: NaN maps to the zero point.
inline int32_t affine_code_to_int(float qf, const AffineParams& p) {
  if (qf != qf) return static_cast<int32_t>(p.zero_point);
  return static_cast<int32_t>(clamp_keep_nan(qf, p.qmin, p.qmax));
}

LOWBIT_ISA_END
}  // namespace lowbit
