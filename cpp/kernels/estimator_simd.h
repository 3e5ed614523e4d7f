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

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
