// The operation vocabulary the estimator specifications (lsq.h, pact.h, qil.h, soft_quant.h) are
// written in, and the transcendental functions they need, written once over that vocabulary.
//
// Why a vocabulary instead of plain float code: the estimator kernels run on scalar, AVX2 and
// AVX-512 paths that must agree bit for bit (values *and* the parameter-gradient sums). Writing
// each per-element formula once as a template over an "ops" type O, and instantiating it with
// ScalarOps here and with the vector types of cpp/kernels/estimator_simd.h, makes the scalar code
// the specification and every vector path the same sequence of IEEE operations by construction.
// The vector types only have to implement each *primitive* below with the same semantics, which
// tests/test_estimators_isa.py checks end to end.
//
// Contract of the primitives (O = ScalarOps; vector types lane by lane):
//   add/sub/mul/div  IEEE float32, round to nearest even. No implicit fused multiply-add: the
//                    estimator translation units are compiled with -ffp-contract=off.
//   fma(a, b, c)     a·b + c rounded once (explicit; only where a reference computes it so).
//   neg, abs,        sign-bit operations (neg flips, abs clears, copysign transplants); exact,
//   copysign         also for NaN and ±0.
//   floor, rne       exact; NaN stays NaN; ±0 keeps its sign.
//   max_keep_nan(lo, v) = lo > v ? lo : v    (returns v when either is NaN, like maxps(lo, v))
//   min_keep_nan(hi, v) = hi < v ? hi : v
//   lt, le, gt, ge   ordered comparisons: false when either operand is NaN.
//   select(m, a, b)  m ? a : b;  select_or_zero(m, v) = m ? v : +0.
//   pow2i(n)         2^n for an integral n in [-126, 127]; a NaN n counts as 0.
//   frexp(x, &e)     for a positive normal x: m in [0.5, 1) and integral e with x = m·2^e.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/rounding.h"

namespace lowbit {
LOWBIT_ISA_BEGIN

struct ScalarOps {
  using F = float;
  using M = bool;

  static F set1(float v) { return v; }
  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F div(F a, F b) { return a / b; }
  static F fma(F a, F b, F c) { return std::fma(a, b, c); }
  static F neg(F a) { return -a; }
  static F abs(F a) { return std::fabs(a); }
  static F copysign(F magnitude, F sign_source) { return std::copysign(magnitude, sign_source); }
  static F floor(F a) { return std::floor(a); }
  static F rne(F a) { return round_half_even(a); }
  static F max_keep_nan(F lo, F v) { return lo > v ? lo : v; }
  static F min_keep_nan(F hi, F v) { return hi < v ? hi : v; }
  static M lt(F a, F b) { return a < b; }
  static M le(F a, F b) { return a <= b; }
  static M gt(F a, F b) { return a > b; }
  static M ge(F a, F b) { return a >= b; }
  static M is_nan(F a) { return a != a; }
  static M both(M a, M b) { return a && b; }
  static M either(M a, M b) { return a || b; }
  static F select(M m, F a, F b) { return m ? a : b; }
  static F select_or_zero(M m, F v) { return m ? v : 0.0f; }
  static F pow2i(F n) {
    const int32_t e = (n != n) ? 0 : static_cast<int32_t>(n);
    const uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
    float r;
    std::memcpy(&r, &bits, sizeof r);
    return r;
  }
  static F frexp(F x, F* exponent) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    *exponent = static_cast<float>(static_cast<int32_t>((u >> 23) & 0xFFu) - 126);
    const uint32_t m = (u & 0x807FFFFFu) | 0x3F000000u;
    float r;
    std::memcpy(&r, &m, sizeof r);
    return r;
  }
};

// Clamp v into [lo, hi]; NaN stays NaN.
template <class O>
inline typename O::F clamp_keep_nan_v(typename O::F v, typename O::F lo, typename O::F hi) {
  return O::min_keep_nan(hi, O::max_keep_nan(lo, v));
}

// ---- exp ------------------------------------------------------------------------------------
// exp(x) for x in [-87.33, 88]: Cody–Waite reduction x = n·ln2 + r (ln2 split in two so n·C1 is
// exact), degree-6 minimax polynomial on |r| <= ln2/2 (Cephes expf), scale by 2^n. Relative error
// <= 2 ulp on that domain. Outside it the argument is clamped first: below -87.33 the result is
// exp(-87.33) ≈ 1.2e-38 instead of a denormal or 0, above 88 it is exp(88) ≈ 1.65e38 instead of
// Inf, which every caller here (logistic, tanh) maps to its saturated value anyway. NaN -> NaN.
template <class O>
inline typename O::F exp_poly(typename O::F x) {
  using F = typename O::F;
  x = clamp_keep_nan_v<O>(x, O::set1(-87.33654f), O::set1(88.0f));
  const F n = O::floor(O::add(O::mul(x, O::set1(1.44269504088896341f)), O::set1(0.5f)));
  F r = O::sub(x, O::mul(n, O::set1(0.693359375f)));
  r = O::sub(r, O::mul(n, O::set1(-2.12194440e-4f)));
  const F z = O::mul(r, r);
  F y = O::set1(1.9875691500e-4f);
  y = O::add(O::mul(y, r), O::set1(1.3981999507e-3f));
  y = O::add(O::mul(y, r), O::set1(8.3334519073e-3f));
  y = O::add(O::mul(y, r), O::set1(4.1665795894e-2f));
  y = O::add(O::mul(y, r), O::set1(1.6666665459e-1f));
  y = O::add(O::mul(y, r), O::set1(5.0000001201e-1f));
  y = O::add(O::add(O::mul(y, z), r), O::set1(1.0f));
  return O::mul(y, O::pow2i(n));
}

// ---- log ------------------------------------------------------------------------------------
// Natural log for a positive *normal* x (Cephes logf): x = m·2^e with m in [sqrt(1/2), sqrt(2)),
// degree-8 polynomial in m - 1, ln2 split in two. Relative error <= 2 ulp. Callers clamp x to a
// positive normal floor first (QIL clamps u >= 2^-20). NaN -> NaN.
template <class O>
inline typename O::F log_poly(typename O::F x) {
  using F = typename O::F;
  F e;
  F m = O::frexp(x, &e);
  const auto small = O::lt(m, O::set1(0.707106781186547524f));
  e = O::select(small, O::sub(e, O::set1(1.0f)), e);
  m = O::select(small, O::sub(O::add(m, m), O::set1(1.0f)), O::sub(m, O::set1(1.0f)));
  const F z = O::mul(m, m);
  F y = O::set1(7.0376836292e-2f);
  y = O::add(O::mul(y, m), O::set1(-1.1514610310e-1f));
  y = O::add(O::mul(y, m), O::set1(1.1676998740e-1f));
  y = O::add(O::mul(y, m), O::set1(-1.2420140846e-1f));
  y = O::add(O::mul(y, m), O::set1(1.4249322787e-1f));
  y = O::add(O::mul(y, m), O::set1(-1.6668057665e-1f));
  y = O::add(O::mul(y, m), O::set1(2.0000714765e-1f));
  y = O::add(O::mul(y, m), O::set1(-2.4999993993e-1f));
  y = O::add(O::mul(y, m), O::set1(3.3333331174e-1f));
  y = O::mul(O::mul(y, m), z);
  y = O::add(y, O::mul(e, O::set1(-2.12194440e-4f)));
  y = O::sub(y, O::mul(z, O::set1(0.5f)));
  F r = O::add(m, y);
  r = O::add(r, O::mul(e, O::set1(0.693359375f)));
  return O::select(O::is_nan(x), x, r);
}

// ---- tanh -----------------------------------------------------------------------------------
// Cephes tanhf: odd polynomial for |x| < 0.625 (relative error <= 2 ulp, no cancellation near 0),
// 1 - 2/(exp(2|x|) + 1) with the sign of x elsewhere (saturates to exactly ±1 for |x| > 9.01).
// NaN -> NaN.
template <class O>
inline typename O::F tanh_poly(typename O::F x) {
  using F = typename O::F;
  const F a = O::abs(x);
  const F z = O::mul(x, x);
  F p = O::set1(-5.70498872745e-3f);
  p = O::add(O::mul(p, z), O::set1(2.06390887954e-2f));
  p = O::add(O::mul(p, z), O::set1(-5.37397155531e-2f));
  p = O::add(O::mul(p, z), O::set1(1.33314422036e-1f));
  p = O::add(O::mul(p, z), O::set1(-3.33332819422e-1f));
  p = O::add(O::mul(O::mul(p, z), x), x);
  const F e = exp_poly<O>(O::add(a, a));
  const F big = O::copysign(O::sub(O::set1(1.0f), O::div(O::set1(2.0f), O::add(e, O::set1(1.0f)))), x);
  return O::select(O::lt(a, O::set1(0.625f)), p, big);
}

// ---- logistic -------------------------------------------------------------------------------
// g = 1/(1 + exp(-v)) and its complement 1 - g computed as exp(-v)·g, which keeps full relative
// precision where g is close to 1 (the plain subtraction would cancel). Both in [0, 1]; NaN -> NaN.
template <class O>
struct Logistic {
  typename O::F g, one_minus_g;
};

template <class O>
inline Logistic<O> logistic_poly(typename O::F v) {
  const auto e = exp_poly<O>(O::neg(v));
  const auto g = O::div(O::set1(1.0f), O::add(O::set1(1.0f), e));
  return {g, O::mul(e, g)};
}

LOWBIT_ISA_END
}  // namespace lowbit
