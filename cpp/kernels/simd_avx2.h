// 8-lane float vector on AVX2 + FMA + F16C. Each operation reproduces the cpp/core scalar
// function bit for bit (tests/test_isa_paths.py and tests/cpp check it), including NaN and the
// sign of zero.
#pragma once
#if !defined(__AVX2__) || !defined(__F16C__)
#error "simd_avx2.h needs -mavx2 -mf16c"
#endif
#include <immintrin.h>

#include "core/affine.h"
#include "core/float16.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

struct VecAvx2 {
  static constexpr int kLanes = 8;
  static constexpr const char* kName = "avx2";
  using F = __m256;
  using M = __m256;  // all-ones / all-zeros lanes

  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static F load(const Half* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static F load(const BFloat16* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static void store(Half* p, F v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  // Round to nearest even on the 16 dropped bits; NaN -> 0x7FC0 (as float_to_bfloat16).
  static void store(BFloat16* p, F v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i bias = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, bias), 16);
    const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7FC0), is_nan);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0b1000);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static F set1(float v) { return _mm256_set1_ps(v); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  // maxps(a, b) = a > b ? a : b, which returns b when either is NaN: the scalar contract.
  static F max_keep_nan(F lo, F v) { return _mm256_max_ps(lo, v); }
  static F min_keep_nan(F hi, F v) { return _mm256_min_ps(hi, v); }
  // minps(x, acc) = x < acc ? x : acc: a NaN x leaves acc untouched.
  static F min_ignore_nan(F x, F acc) { return _mm256_min_ps(x, acc); }
  static F max_ignore_nan(F x, F acc) { return _mm256_max_ps(x, acc); }
  static M le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M both(M a, M b) { return _mm256_and_ps(a, b); }
  // m ? v : +0 (a select: never NaN).
  static F select_or_zero(M m, F v) { return _mm256_and_ps(m, v); }
  // v · (m ? 1 : 0), a multiply like ste_apply (keeps -0 and NaN as PyTorch's dY * mask).
  static F mul_by_mask(M m, F v) { return _mm256_mul_ps(v, _mm256_and_ps(m, _mm256_set1_ps(1.0f))); }
  static F copysign(F magnitude, F sign_source) {
    const F sign_mask = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sign_mask, magnitude), _mm256_and_ps(sign_mask, sign_source));
  }
  template <Rounding R>
  static F round(F v) {
    if constexpr (R == Rounding::HalfEven) {
      return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else if constexpr (R == Rounding::Floor) {
      return _mm256_round_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    } else if constexpr (R == Rounding::Ceil) {
      return _mm256_round_ps(v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
    } else if constexpr (R == Rounding::HalfAway) {
      // trunc, then step one away from zero when the dropped part is >= 0.5 (exact subtraction).
      const F t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const F frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
      const F step = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ),
                                   _mm256_set1_ps(1.0f));
      return copysign(_mm256_add_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), t), step), v);
    } else {
      static_assert(R == Rounding::HalfUp, "stochastic rounding has no vector form");
      const F f = _mm256_round_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const F up = _mm256_cmp_ps(_mm256_sub_ps(v, f), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
      return copysign(_mm256_add_ps(f, _mm256_and_ps(up, _mm256_set1_ps(1.0f))), v);
    }
  }
  static float reduce_min(F v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
  static float reduce_max(F v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
};

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
