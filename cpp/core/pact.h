// PACT (Choi et al. 2018; METHODS §3), one element at a time, over the op vocabulary of
// core/vmath.h (the scalar instantiation is the specification).
//
//   unsigned (activations after a ReLU):  lo = 0,  hi = α,  L = 2^k - 1 levels above 0
//   signed (PACT-style clip of both tails): lo = -α, hi = α, L = 2^(k-1) - 1 levels per side
//   yc = clamp(x, lo, hi)
//   y  = R(yc · inv_step) · step        inv_step = L / α,  step = α / L  (float32, computed once)
// Backward (STE through R; PACT drops the α inside the step on purpose):
//   dx   = dy  if lo <= x <= hi, else 0
//   dα_i = dy  if x >= α;  -dy if signed and x <= -α;  else 0
//   At x = α exactly both dx and dα_i receive dy, as the paper's two cases overlap there.
//   NaN x: y = NaN, dx = 0, no contribution to dα.
// α < 2^-23 (including α <= 0) is used as 2^-23; the gradient passes to α unchanged (the paper
// clamps α >= ε after each step). Non-finite α is an error in the op layer.
// Bits: unsigned k in [1, 16] (k = 1: levels {0, α}); signed k in [2, 16].
#pragma once
#include <cstdint>

#include "core/lsq.h"
#include "core/vmath.h"

namespace lowbit {

struct PactParams {
  float lo;
  float hi;
  float inv_step;
  float step;
};

LOWBIT_ISA_BEGIN

inline int64_t pact_levels(int64_t bits, bool is_signed) {
  return is_signed ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
}

inline PactParams make_pact_params(float alpha, int64_t bits, bool is_signed) {
  const float a = clamp_learnable_scale(alpha);
  const float levels = static_cast<float>(pact_levels(bits, is_signed));
  return {is_signed ? -a : 0.0f, a, levels / a, a / levels};
}

template <class O>
struct PactVec {
  typename O::F lo, hi, inv_step, step;
  explicit PactVec(const PactParams& p)
      : lo(O::set1(p.lo)), hi(O::set1(p.hi)), inv_step(O::set1(p.inv_step)), step(O::set1(p.step)) {}
};

// The scaled clipped input, ready for rounding: clamp(x, lo, hi) · inv_step.
template <class O>
inline typename O::F pact_scaled(typename O::F x, const PactVec<O>& p) {
  return O::mul(clamp_keep_nan_v<O>(x, p.lo, p.hi), p.inv_step);
}

template <class O>
inline typename O::F pact_output(typename O::F r, const PactVec<O>& p) {
  return O::mul(r, p.step);
}

template <class O>
struct PactGrads {
  typename O::F dx, dalpha;
};

template <class O, bool kSigned>
inline PactGrads<O> pact_grads(typename O::F x, typename O::F dy, const PactVec<O>& p) {
  const auto inside = O::both(O::le(p.lo, x), O::le(x, p.hi));
  auto dalpha = O::select_or_zero(O::ge(x, p.hi), dy);
  if constexpr (kSigned) dalpha = O::select(O::le(x, p.lo), O::neg(dy), dalpha);
  return {O::select_or_zero(inside, dy), dalpha};
}

LOWBIT_ISA_END
}  // namespace lowbit
