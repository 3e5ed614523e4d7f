// The op vocabulary of cpp/core/vmath.h on each kernel path. The estimator specifications in
// cpp/core (lsq.h, pact.h, qil.h, soft_quant.h, vmath.h) are templates over such an "ops" type;
// instantiated with EScalar they are the scalar reference, with EAvx2 / EAvx512 the vector paths.
// Every primitive here reproduces core's ScalarOps lane by lane, bit for bit (NaN, ±0 included);
// the vector types reuse load/store/add/sub/mul/round of simd_avx2.h / simd_avx512.h.
//
// Include after the translation unit's simd_*.h header; the vector types exist only in the
// translation unit compiled for their ISA.
#pragma once
#include <cstdint>

#include "core/float16.h"
#include "core/vmath.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

struct EScalar : ScalarOps {
  static constexpr int kLanes = 1;
  static constexpr const char* kName = "scalar";
  template <typename T>
  static F load(const T* p) { return load_as_float(p); }
  template <typename T>
  static void store(T* p, F v) { store_from_float(p, v); }
};

#if defined(LOWBIT_ESTIMATOR_AVX2)
struct EAvx2 : VecAvx2 {
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F neg(F a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static F floor(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static F rne(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M gt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M is_nan(F a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static M either(M a, M b) { return _mm256_or_ps(a, b); }
  static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  // Integral n in [-126, 127] converts exactly under any rounding; NaN lanes count as 0.
  static F pow2i(F n) {
    const __m256 clean = _mm256_andnot_ps(is_nan(n), n);
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(clean), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static F frexp(F x, F* exponent) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i biased = _mm256_and_si256(_mm256_srli_epi32(u, 23), _mm256_set1_epi32(0xFF));
    *exponent = _mm256_cvtepi32_ps(_mm256_sub_epi32(biased, _mm256_set1_epi32(126)));
    const __m256i m = _mm256_or_si256(_mm256_and_si256(u, _mm256_set1_epi32(static_cast<int32_t>(0x807FFFFFu))),
                                      _mm256_set1_epi32(0x3F000000));
    return _mm256_castsi256_ps(m);
  }
};
#endif

#if defined(LOWBIT_ESTIMATOR_AVX512)
struct EAvx512 : VecAvx512 {
  static F div(F a, F b) { return _mm512_div_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F neg(F a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
  static F abs(F a) { return _mm512_andnot_ps(_mm512_set1_ps(-0.0f), a); }
  static F floor(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
  static F rne(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M is_nan(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static M either(M a, M b) { return static_cast<M>(a | b); }
  static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }
  static F pow2i(F n) {
    const __m512 clean = _mm512_maskz_mov_ps(static_cast<__mmask16>(~is_nan(n)), n);
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(clean), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static F frexp(F x, F* exponent) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i biased = _mm512_and_si512(_mm512_srli_epi32(u, 23), _mm512_set1_epi32(0xFF));
    *exponent = _mm512_cvtepi32_ps(_mm512_sub_epi32(biased, _mm512_set1_epi32(126)));
    const __m512i m = _mm512_or_si512(_mm512_and_si512(u, _mm512_set1_epi32(static_cast<int32_t>(0x807FFFFFu))),
                                      _mm512_set1_epi32(0x3F000000));
    return _mm512_castsi512_ps(m);
  }
};
#endif

// U independent vectors of E handled as one: every primitive is E's, applied to each of the U
// members in turn, so each lane still sees exactly E's (and hence ScalarOps') operation sequence.
// Why: the estimator formulas are long dependency chains (a polynomial exp, a division, the
// sum over thresholds), ~100 cycles from x to y. One vector at a time leaves the core waiting on
// latency: the reorder window holds little more than one element vector's chain. Writing the
// same code over U vectors puts U independent chains side by side in program order, which the
// core overlaps; results are unchanged bit for bit.
template <class E, int U>
struct Multi {
  static_assert(U >= 1, "Multi needs at least one member vector");
  static constexpr int kLanes = E::kLanes * U;
  static constexpr int kMembers = U;
  static constexpr const char* kName = E::kName;
  using Member = E;
  struct F {
    typename E::F v[U];
  };
  struct M {
    typename E::M v[U];
  };

  template <typename T>
  static F load(const T* p) {
    F r;
    for (int u = 0; u < U; ++u) r.v[u] = E::load(p + u * E::kLanes);
    return r;
  }
  template <typename T>
  static void store(T* p, F a) {
    for (int u = 0; u < U; ++u) E::store(p + u * E::kLanes, a.v[u]);
  }
  static F set1(float a) {
    F r;
    const typename E::F s = E::set1(a);
    for (int u = 0; u < U; ++u) r.v[u] = s;
    return r;
  }

#define LOWBIT_MULTI_1(R, name, T1)                          \
  static R name(T1 a) {                                      \
    R r;                                                     \
    for (int u = 0; u < U; ++u) r.v[u] = E::name(a.v[u]);    \
    return r;                                                \
  }
#define LOWBIT_MULTI_2(R, name, T1, T2)                              \
  static R name(T1 a, T2 b) {                                        \
    R r;                                                             \
    for (int u = 0; u < U; ++u) r.v[u] = E::name(a.v[u], b.v[u]);    \
    return r;                                                        \
  }
#define LOWBIT_MULTI_3(R, name, T1, T2, T3)                                  \
  static R name(T1 a, T2 b, T3 c) {                                          \
    R r;                                                                     \
    for (int u = 0; u < U; ++u) r.v[u] = E::name(a.v[u], b.v[u], c.v[u]);   \
    return r;                                                                \
  }
  LOWBIT_MULTI_2(F, add, F, F)
  LOWBIT_MULTI_2(F, sub, F, F)
  LOWBIT_MULTI_2(F, mul, F, F)
  LOWBIT_MULTI_2(F, div, F, F)
  LOWBIT_MULTI_3(F, fma, F, F, F)
  LOWBIT_MULTI_1(F, neg, F)
  LOWBIT_MULTI_1(F, abs, F)
  LOWBIT_MULTI_2(F, copysign, F, F)
  LOWBIT_MULTI_1(F, floor, F)
  LOWBIT_MULTI_1(F, rne, F)
  LOWBIT_MULTI_2(F, max_keep_nan, F, F)
  LOWBIT_MULTI_2(F, min_keep_nan, F, F)
  LOWBIT_MULTI_2(M, lt, F, F)
  LOWBIT_MULTI_2(M, le, F, F)
  LOWBIT_MULTI_2(M, gt, F, F)
  LOWBIT_MULTI_2(M, ge, F, F)
  LOWBIT_MULTI_1(M, is_nan, F)
  LOWBIT_MULTI_2(M, both, M, M)
  LOWBIT_MULTI_2(M, either, M, M)
  LOWBIT_MULTI_3(F, select, M, F, F)
  LOWBIT_MULTI_2(F, select_or_zero, M, F)
  LOWBIT_MULTI_1(F, pow2i, F)
#undef LOWBIT_MULTI_1
#undef LOWBIT_MULTI_2
#undef LOWBIT_MULTI_3
  static F frexp(F x, F* exponent) {
    F r;
    for (int u = 0; u < U; ++u) r.v[u] = E::frexp(x.v[u], &exponent->v[u]);
    return r;
  }
};

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
