// 16-lane float vector on AVX-512 F/BW/VL/DQ. Mirrors simd_avx2.h operation by operation; the
// same contract: bit-equal to the cpp/core scalar functions.
#pragma once
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__)
#error "simd_avx512.h needs -mavx512f -mavx512bw -mavx512dq"
#endif
#include <immintrin.h>

#include "core/affine.h"
#include "core/float16.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

struct VecAvx512 {
  static constexpr int kLanes = 16;
  static constexpr const char* kName = "avx512";
  using F = __m512;
  using M = __mmask16;

  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static F load(const Half* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static F load(const BFloat16* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static void store(Half* p, F v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  static void store(BFloat16* p, F v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
    const __mmask16 is_nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, is_nan, _mm512_set1_epi32(0x7FC0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
  }
  static F set1(float v) { return _mm512_set1_ps(v); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F max_keep_nan(F lo, F v) { return _mm512_max_ps(lo, v); }
  static F min_keep_nan(F hi, F v) { return _mm512_min_ps(hi, v); }
  static F min_ignore_nan(F x, F acc) { return _mm512_min_ps(x, acc); }
  static F max_ignore_nan(F x, F acc) { return _mm512_max_ps(x, acc); }
  static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M both(M a, M b) { return static_cast<M>(a & b); }
  static F select_or_zero(M m, F v) { return _mm512_maskz_mov_ps(m, v); }
  static F mul_by_mask(M m, F v) { return _mm512_mul_ps(v, _mm512_maskz_mov_ps(m, _mm512_set1_ps(1.0f))); }
  static F copysign(F magnitude, F sign_source) {
    const F sign_mask = _mm512_set1_ps(-0.0f);
    return _mm512_or_ps(_mm512_andnot_ps(sign_mask, magnitude), _mm512_and_ps(sign_mask, sign_source));
  }
  template <Rounding R>
  static F round(F v) {
    if constexpr (R == Rounding::HalfEven) {
      return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else if constexpr (R == Rounding::Floor) {
      return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    } else if constexpr (R == Rounding::Ceil) {
      return _mm512_roundscale_ps(v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    } else if constexpr (R == Rounding::HalfAway) {
      const F t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const F frac = _mm512_andnot_ps(_mm512_set1_ps(-0.0f), _mm512_sub_ps(v, t));
      const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
      const F step = _mm512_maskz_mov_ps(up, _mm512_set1_ps(1.0f));
      return copysign(_mm512_add_ps(_mm512_andnot_ps(_mm512_set1_ps(-0.0f), t), step), v);
    } else {
      static_assert(R == Rounding::HalfUp, "stochastic rounding has no vector form");
      const F f = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(v, f), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
      return copysign(_mm512_add_ps(f, _mm512_maskz_mov_ps(up, _mm512_set1_ps(1.0f))), v);
    }
  }
  static float reduce_min(F v) { return _mm512_reduce_min_ps(v); }
  static float reduce_max(F v) { return _mm512_reduce_max_ps(v); }
};

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
