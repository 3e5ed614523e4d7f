// QIL (Jung et al., CVPR 2019; METHODS §5): interval transformer + discretizer, one element at a
// time, over the op vocabulary of core/vmath.h (the scalar instantiation is the specification).
//
// Weights (weight=true), a = |w|, σ = sign(w) (+1 for +0 and -0):
// Activations (weight=false), a = x, σ = 1:
//   A = 0.5/d,  B = -0.5·c/d + 0.5        (float32, per block)
//   a <  c - d:   t = 0                   (pruned)
//   a >  c + d:   t = 1                   (clipped)
//   otherwise:    u = clamp(A·a + B, 0, 1),  t = u^γ
//   y = σ · R(t · qD) / qD                qD = 2^(bits-1) - 1 (weights), 2^bits - 1 (activations)
// u^γ is exp(γ·ln(max(u, 2^-20))) with the polynomial exp/log of core/vmath.h, and exactly 0 for
// u <= 0, when a γ tensor is given ("power" form); without one (activations, as in the paper, or
// γ fixed at 1) t = u exactly.
//
// Backward (STE through R), inside [c - d, c + d] only; every gradient is 0 in the pruned and
// clipped regions (also dx: QIL does not pass gradient to pruned or clipped weights):
//   g = dt/du = γ·t_c/u_c with u_c = max(u, 2^-20), t_c = u_c^γ   (= 1 in the linear form)
//   dx   = (dy·g)·A
//   dc_i = ((dy·g)·σ)·(-0.5/d)
//   dd_i = ((dy·g)·σ)·((c - a)·(0.5/d²))
//   dγ_i = (dy·σ)·(t_c·ln u_c),  0 where u <= 0
//   NaN x: y = NaN, no gradient.
// Parameters (documented clamps): d < 2^-23 is used as 2^-23, γ < 2^-23 as 2^-23, and c < d as d
// (the pruning threshold c - d stays >= 0); gradients are evaluated at the clamped values and
// passed to the raw parameters unchanged. Non-finite c, d or γ is an error in the op layer.
#pragma once
#include <cstdint>

#include "core/lsq.h"
#include "core/vmath.h"

namespace lowbit {

inline constexpr float kQilMinU = 9.5367431640625e-07f;  // 2^-20

struct QilParams {
  float c;
  float lo;        // c - d
  float hi;        // c + d
  float a;         // 0.5 / d
  float b;         // -0.5·c/d + 0.5
  float gamma;
  float qd;
  float dc_coef;   // -0.5 / d
  float dd_coef;   // 0.5 / d²
};

LOWBIT_ISA_BEGIN

inline int64_t qil_levels(int64_t bits, bool weight) {
  return weight ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
}

inline QilParams make_qil_params(float c, float d, float gamma, int64_t bits, bool weight) {
  const float dd = clamp_learnable_scale(d);
  const float cc = c >= dd ? c : dd;
  const float g = clamp_learnable_scale(gamma);
  return {cc,
          cc - dd,
          cc + dd,
          0.5f / dd,
          -0.5f * cc / dd + 0.5f,
          g,
          static_cast<float>(qil_levels(bits, weight)),
          -0.5f / dd,
          0.5f / (dd * dd)};
}

template <class O>
struct QilVec {
  typename O::F c, lo, hi, a, b, gamma, qd, dc_coef, dd_coef;
  explicit QilVec(const QilParams& p)
      : c(O::set1(p.c)), lo(O::set1(p.lo)), hi(O::set1(p.hi)), a(O::set1(p.a)), b(O::set1(p.b)),
        gamma(O::set1(p.gamma)), qd(O::set1(p.qd)), dc_coef(O::set1(p.dc_coef)), dd_coef(O::set1(p.dd_coef)) {}
};

// Everything the forward and backward share for one element.
template <class O>
struct QilState {
  typename O::F a;      // |w| or x
  typename O::F sign;   // ±1
  typename O::M pruned, clipped, inside;
  typename O::F u;      // clamp(A·a + B, 0, 1)
  typename O::F t;      // u^γ (0 for u <= 0) or u
  typename O::F slope;  // dt/du
  typename O::F log_u;  // ln(u_c), power form only
};

template <class O, bool kWeight, bool kPower>
inline QilState<O> qil_state(typename O::F x, const QilVec<O>& p) {
  using F = typename O::F;
  QilState<O> s;
  const F one = O::set1(1.0f);
  if constexpr (kWeight) {
    s.a = O::abs(x);
    s.sign = O::select(O::lt(x, O::set1(0.0f)), O::neg(one), one);
  } else {
    s.a = x;
    s.sign = one;
  }
  s.pruned = O::lt(s.a, p.lo);
  s.clipped = O::gt(s.a, p.hi);
  s.inside = O::both(O::ge(s.a, p.lo), O::le(s.a, p.hi));
  s.u = clamp_keep_nan_v<O>(O::add(O::mul(p.a, s.a), p.b), O::set1(0.0f), one);
  if constexpr (kPower) {
    const F uc = O::max_keep_nan(O::set1(kQilMinU), s.u);
    s.log_u = log_poly<O>(uc);
    const F tc = exp_poly<O>(O::mul(p.gamma, s.log_u));
    const auto positive = O::gt(s.u, O::set1(0.0f));
    // NaN u must stay NaN in t: select on "u <= 0" rather than on "u > 0".
    s.t = O::select(O::le(s.u, O::set1(0.0f)), O::set1(0.0f), tc);
    s.slope = O::div(O::mul(p.gamma, tc), uc);
    s.log_u = O::select_or_zero(positive, O::mul(tc, s.log_u));  // now t_c·ln(u_c), 0 for u <= 0
  } else {
    s.t = s.u;
    s.slope = one;
    s.log_u = O::set1(0.0f);
  }
  return s;
}

// The value to round (t·qD) and, from its rounding r, the output.
template <class O>
inline typename O::F qil_scaled(const QilState<O>& s, const QilVec<O>& p) {
  return O::mul(s.t, p.qd);
}

template <class O>
inline typename O::F qil_output(const QilState<O>& s, typename O::F r, const QilVec<O>& p) {
  const auto inner = O::mul(s.sign, O::div(r, p.qd));
  return O::select(s.pruned, O::set1(0.0f), O::select(s.clipped, s.sign, inner));
}

template <class O>
struct QilGrads {
  typename O::F dx, dc, dd, dgamma;
};

template <class O>
inline QilGrads<O> qil_grads(const QilState<O>& s, typename O::F dy, const QilVec<O>& p) {
  // Select last: outside the interval the products may be 0·Inf (|w| = Inf) and must not leak.
  const auto gi = O::mul(dy, s.slope);
  const auto gs = O::mul(gi, s.sign);
  return {O::select_or_zero(s.inside, O::mul(gi, p.a)), O::select_or_zero(s.inside, O::mul(gs, p.dc_coef)),
          O::select_or_zero(s.inside, O::mul(gs, O::mul(O::sub(p.c, s.a), p.dd_coef))),
          O::select_or_zero(s.inside, O::mul(O::mul(dy, s.sign), s.log_u))};
}

LOWBIT_ISA_END
}  // namespace lowbit
