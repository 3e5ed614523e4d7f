// Soft (differentiable-staircase) estimators, one element at a time, over the op vocabulary of
// core/vmath.h (the scalar instantiation is the specification): DSQ (METHODS §6.1) and the
// sigmoid staircase of Quantization Networks (§6.2).
//
// ---- DSQ ---------------------------------------------------------------------------------------
// Per block (float32, computed once from l, u, α):  L = 2^b - 1,  Δ = (u - l)/L,  inv_Δ = 1/Δ,
//   α_c = clamp(α, 1e-4, 0.5),  s = 1/(1 - α_c),  K = ln(2/α_c - 1)   (k·Δ in the paper's terms)
// Per element:
//   v = (x - l)·inv_Δ,   i = min(floor(max(v, 0)), L - 1),   e = v - (i + 0.5) ∈ [-0.5, 0.5]
//   t = tanh(K·e),       h = i + (s·t + 1)·0.5               (Q_S = l + Δ·h inside [l, u])
//   mode "hard": y = l + Δ·clamp(R(v), 0, L)   — the paper's sgn form is round-to-nearest on v;
//                writing it as R(v) makes exact midpoints follow R (half to even) instead of
//                landing on the midpoint itself, and gives stochastic rounding a meaning.
//   mode "soft": y = l if x < l;  u if x > u;  l + Δ·h otherwise
// Backward, both modes: the derivative of Q_S (i held constant), inside l <= x <= u:
//   h' = 0.5·s·K·(1 - t²),   ρ = v/L
//   dx   = dy·h'
//   dl_i = dy·((1 - h/L) - h'·(1 - ρ)),   du_i = dy·(h/L - h'·ρ)
//   dα_i = dy·(0.5·Δ·(t·s² + (s·(1 - t²))·(e·dK))),   dK = dK/dα = -2/(α_c(2 - α_c))
// outside: x < l: dl_i = dy;  x > u: du_i = dy;  everything else 0. NaN x: y = NaN, no gradient.
// α outside [1e-4, 0.5] is clamped (METHODS: α → 0 makes k → ∞); its gradient is evaluated at the
// clamped value and passed on unchanged. u <= l, or non-finite l, u, α, is an error.
//
// ---- Sigmoid staircase (Quantization Networks) -------------------------------------------------
// Levels y_0 < ... < y_n (steps s_i = y_i - y_{i-1}), thresholds b_1..b_n (fixed), learnable α, β,
// temperature T > 0:
//   soft: y = α·(y_0 + Σ_i s_i·g_i),  g_i = σ(T·(β·x - b_i))
//   hard: y = α·(y_0 + Σ_i s_i·[β·x > b_i])          (the unit step A(v) = [v > 0], inference)
// y_0 stands for the paper's "-o": for symmetric levels y_0 = -½Σs_i; for levels starting at 0
// (the official activation module) there is no offset. σ is evaluated without the official
// code's clamp of its argument to [-10, 10] (core/vmath.h's logistic cannot overflow); that clamp
// moves outputs by at most 4.6e-5·s_i.
// Backward (both modes: the soft staircase's derivative at temperature T):
//   S' = Σ_i s_i·g_i·(1 - g_i)
//   dx = dy·((α·β·T)·S'),   dα_i = dy·(y_0 + Σ_i s_i·g_i),   dβ_i = dy·((α·T)·(x·S'))
// (correct for any steps s_i; the official SigmoidT.backward's (s_i g_i)(1 - s_i g_i) is right
// only for s_i = 1.) Sums over i run in threshold order.
// Evaluation of g_i = 1/(1 + e_i), e_i = exp(-T·(β·x - b_i)), with 1 - g_i = e_i·g_i (vmath.h's
// logistic): thresholds are cut, in order, into groups whose span T·(b_last - b_first) is at
// most kSigmoidGroupSpan; each group has a centre m (float, midway between its ends) and each
// threshold a ratio c_i = exp(T·(b_i - m)) (float64 math, rounded once, per call). Per element
// one exponential per group, E_m = exp_poly(-(T·(β·x - m))), and per threshold
//   e_i = min(E_m·c_i, FLT_MAX)
// (a ternary staircase at usual temperatures is one group: one exp instead of two). A group of
// one threshold has m = b_i, c_i = 1, e_i = exp_poly(-(T·(β·x - b_i))): the direct form. The
// factorisation moves the rounding of the argument from T·(β·x - b_i) to T·(β·x - m), which is
// at most (span/2)·2^-23 larger in absolute terms: e_i within ~1e-6 relative of the direct
// form (g_i within 2.5e-7 absolute). Outside exp_poly's clamp range the e_i saturate like the
// direct form's (g_i = 1 or 0 to below 1e-30).
// Non-finite x: NaN gives y = NaN and no gradient; ±Inf gives the saturated level, dα_i as
// above, and dx = dβ_i = 0.
// α or β < 2^-23 (including <= 0) is used as 2^-23 with the gradient passed on unchanged.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/lsq.h"
#include "core/vmath.h"

namespace lowbit {

inline constexpr float kDsqMinAlpha = 1e-4f;
inline constexpr float kDsqMaxAlpha = 0.5f;

struct DsqParams {
  float lower;
  float upper;
  float delta;
  float inv_delta;
  float levels;       // L
  float last_index;   // L - 1
  float inv_levels;   // 1/L
  float s;
  float k;            // K
  float dx_coef;      // 0.5·s·K
  float da_coef;      // 0.5·Δ
  float s_squared;    // ds/dα
  float dk_dalpha;
};

// Maximal T·(b_last - b_first) of a group of thresholds sharing one exponential (see above).
inline constexpr double kSigmoidGroupSpan = 16.0;

struct SigmoidParams {
  float alpha;
  float beta;
  float temperature;
  float y0;
  float dx_coef;  // α·β·T
  float db_coef;  // α·T
  const float* steps;       // s_1..s_n
  const float* thresholds;  // b_1..b_n
  int32_t n;
  // Threshold groups (make_sigmoid_groups): group j covers thresholds [ends[j-1], ends[j]).
  const float* ratios;        // c_1..c_n
  const float* centers;       // m_1..m_groups
  const int32_t* group_ends;  // ends[0..groups)
  int32_t groups;
};

LOWBIT_ISA_BEGIN

inline DsqParams make_dsq_params(float lower, float upper, float alpha, int64_t bits) {
  const float L = static_cast<float>((int64_t{1} << bits) - 1);
  const float delta = (upper - lower) / L;
  const float a = alpha < kDsqMinAlpha ? kDsqMinAlpha : (alpha > kDsqMaxAlpha ? kDsqMaxAlpha : alpha);
  const double ad = a;
  const float s = static_cast<float>(1.0 / (1.0 - ad));
  const float k = static_cast<float>(std::log(2.0 / ad - 1.0));
  return {lower,
          upper,
          delta,
          1.0f / delta,
          L,
          L - 1.0f,
          1.0f / L,
          s,
          k,
          static_cast<float>(0.5 * static_cast<double>(s) * static_cast<double>(k)),
          0.5f * delta,
          static_cast<float>(1.0 / ((1.0 - ad) * (1.0 - ad))),
          static_cast<float>(-2.0 / (ad * (2.0 - ad)))};
}

template <class O>
struct DsqVec {
  typename O::F lower, upper, delta, inv_delta, levels, last_index, inv_levels, s, k, dx_coef, da_coef, s_squared,
      dk_dalpha;
  explicit DsqVec(const DsqParams& p)
      : lower(O::set1(p.lower)), upper(O::set1(p.upper)), delta(O::set1(p.delta)), inv_delta(O::set1(p.inv_delta)),
        levels(O::set1(p.levels)), last_index(O::set1(p.last_index)), inv_levels(O::set1(p.inv_levels)),
        s(O::set1(p.s)), k(O::set1(p.k)), dx_coef(O::set1(p.dx_coef)), da_coef(O::set1(p.da_coef)),
        s_squared(O::set1(p.s_squared)), dk_dalpha(O::set1(p.dk_dalpha)) {}
};

template <class O>
inline typename O::F dsq_scaled(typename O::F x, const DsqVec<O>& p) {
  return O::mul(O::sub(x, p.lower), p.inv_delta);
}

// Hard output from the rounding r of v.
template <class O>
inline typename O::F dsq_hard_output(typename O::F r, const DsqVec<O>& p) {
  return O::add(p.lower, O::mul(p.delta, clamp_keep_nan_v<O>(r, O::set1(0.0f), p.levels)));
}

template <class O>
struct DsqSoft {
  typename O::F e, t, h;
};

template <class O>
inline DsqSoft<O> dsq_soft_state(typename O::F v, const DsqVec<O>& p) {
  const auto i = O::min_keep_nan(p.last_index, O::floor(O::max_keep_nan(O::set1(0.0f), v)));
  const auto e = O::sub(v, O::add(i, O::set1(0.5f)));
  const auto t = tanh_poly<O>(O::mul(p.k, e));
  const auto h = O::add(i, O::mul(O::add(O::mul(p.s, t), O::set1(1.0f)), O::set1(0.5f)));
  return {e, t, h};
}

template <class O>
inline typename O::F dsq_soft_output(typename O::F x, const DsqSoft<O>& st, const DsqVec<O>& p) {
  const auto qs = O::add(p.lower, O::mul(p.delta, st.h));
  return O::select(O::lt(x, p.lower), p.lower, O::select(O::gt(x, p.upper), p.upper, qs));
}

template <class O>
struct DsqGrads {
  typename O::F dx, dlower, dupper, dalpha;
};

template <class O>
inline DsqGrads<O> dsq_grads(typename O::F x, typename O::F v, const DsqSoft<O>& st, typename O::F dy,
                             const DsqVec<O>& p) {
  using F = typename O::F;
  const F one = O::set1(1.0f);
  const auto below = O::lt(x, p.lower);
  const auto above = O::gt(x, p.upper);
  const auto inside = O::both(O::ge(x, p.lower), O::le(x, p.upper));
  const F omt = O::sub(one, O::mul(st.t, st.t));
  const F hp = O::mul(p.dx_coef, omt);
  const F rho = O::mul(v, p.inv_levels);
  const F h_over_l = O::mul(st.h, p.inv_levels);
  const F dl_in = O::mul(dy, O::sub(O::sub(one, h_over_l), O::mul(hp, O::sub(one, rho))));
  const F du_in = O::mul(dy, O::sub(h_over_l, O::mul(hp, rho)));
  const F da_in = O::mul(dy, O::mul(p.da_coef, O::add(O::mul(st.t, p.s_squared),
                                                       O::mul(O::mul(p.s, omt), O::mul(st.e, p.dk_dalpha)))));
  return {O::select_or_zero(inside, O::mul(dy, hp)),
          O::select(inside, dl_in, O::select_or_zero(below, dy)),
          O::select(inside, du_in, O::select_or_zero(above, dy)),
          O::select_or_zero(inside, da_in)};
}

// ---- sigmoid staircase -----------------------------------------------------------------------

// Cuts the n non-decreasing thresholds into groups (see the file comment) and writes each
// threshold's ratio and each group's centre and end; ratios, centers and group_ends hold n
// values each. Returns the number of groups. Depends on temperature and thresholds only, so it
// runs once per call, shared by every parameter block.
inline int32_t make_sigmoid_groups(float temperature, const float* thresholds, int32_t n, float* ratios,
                                   float* centers, int32_t* group_ends) {
  const double t = temperature;
  int32_t groups = 0;
  for (int32_t first = 0; first < n;) {
    int32_t end = first + 1;
    while (end < n && t * (static_cast<double>(thresholds[end]) - thresholds[first]) <= kSigmoidGroupSpan) ++end;
    const float m = end - first == 1
                        ? thresholds[first]
                        : static_cast<float>(0.5 * (static_cast<double>(thresholds[first]) + thresholds[end - 1]));
    for (int32_t i = first; i < end; ++i) {
      ratios[i] = static_cast<float>(std::exp(t * (static_cast<double>(thresholds[i]) - m)));
    }
    centers[groups] = m;
    group_ends[groups] = end;
    ++groups;
    first = end;
  }
  return groups;
}

// steps, thresholds and the group tables (make_sigmoid_groups) must outlive the params.
inline SigmoidParams make_sigmoid_params(float alpha, float beta, float temperature, float y0, const float* steps,
                                         const float* thresholds, int32_t n, const float* ratios,
                                         const float* centers, const int32_t* group_ends, int32_t groups) {
  const float a = clamp_learnable_scale(alpha);
  const float b = clamp_learnable_scale(beta);
  return {a,     b, temperature, y0,     a * b * temperature, a * temperature, steps, thresholds, n,
          ratios, centers, group_ends, groups};
}

template <class O>
struct SigmoidSums {
  typename O::F bx;     // β·x
  typename O::F level;  // y_0 + Σ s_i·g_i   (or the hard staircase)
  typename O::F slope;  // S' = Σ s_i·g_i·(1 - g_i)
};

template <class O, bool kHard, bool kSlope>
inline SigmoidSums<O> sigmoid_sums(typename O::F x, const SigmoidParams& p) {
  using F = typename O::F;
  SigmoidSums<O> r;
  r.bx = O::mul(O::set1(p.beta), x);
  const F T = O::set1(p.temperature);
  F level = O::set1(p.y0);
  F slope = O::set1(0.0f);
  if constexpr (kHard) {
    for (int32_t i = 0; i < p.n; ++i) {
      level = O::add(level, O::select_or_zero(O::gt(r.bx, O::set1(p.thresholds[i])), O::set1(p.steps[i])));
    }
  } else {
    const F one = O::set1(1.0f);
    const F e_max = O::set1(std::numeric_limits<float>::max());
    int32_t i = 0;
    for (int32_t j = 0; j < p.groups; ++j) {
      const F e_m = exp_poly<O>(O::neg(O::mul(T, O::sub(r.bx, O::set1(p.centers[j])))));
      for (; i < p.group_ends[j]; ++i) {
        const F e = O::min_keep_nan(e_max, O::mul(e_m, O::set1(p.ratios[i])));
        const F g = O::div(one, O::add(one, e));
        const F s = O::set1(p.steps[i]);
        level = O::add(level, O::mul(s, g));
        if constexpr (kSlope) slope = O::add(slope, O::mul(s, O::mul(g, O::mul(e, g))));
      }
    }
  }
  // The hard staircase of a NaN input is NaN, like every other lowbit fake quantizer.
  if constexpr (kHard) level = O::select(O::is_nan(x), x, level);
  r.level = level;
  r.slope = slope;
  return r;
}

template <class O>
inline typename O::F sigmoid_output(const SigmoidSums<O>& s, const SigmoidParams& p) {
  return O::mul(O::set1(p.alpha), s.level);
}

template <class O>
struct SigmoidGrads {
  typename O::F dx, dalpha, dbeta;
};

// sums: the soft sums with kSlope = true.
template <class O>
inline SigmoidGrads<O> sigmoid_grads(typename O::F x, const SigmoidSums<O>& s, typename O::F dy,
                                     const SigmoidParams& p) {
  const auto finite_x = O::lt(O::abs(x), O::set1(std::numeric_limits<float>::infinity()));
  const auto number_x = O::le(x, x);  // false only for NaN
  return {O::select_or_zero(finite_x, O::mul(dy, O::mul(O::set1(p.dx_coef), s.slope))),
          O::select_or_zero(number_x, O::mul(dy, s.level)),
          O::select_or_zero(finite_x, O::mul(dy, O::mul(O::set1(p.db_coef), O::mul(x, s.slope))))};
}

LOWBIT_ISA_END
}  // namespace lowbit
