// 8-lane int32 vector on AVX2 with the gemmlowp fixed-point operations. Each operation equals the
// cpp/core/fixed_point.h scalar function lane by lane, bit for bit, for every int32 input
// (tests/test_requantize.py runs every kernel path against the scalar one at the edges: INT32_MIN,
// INT32_MAX, exact ties, every shift).
//
// AVX2 has no 32x32 -> high-32 signed multiply and no 64-bit arithmetic shift, so:
//  * SRDHM forms the exact 64-bit products of the even and odd lanes with vpmuldq, adds 2^30 and
//    takes bits 31..62. That equals floor((a·b + 2^30) / 2^31), which is gemmlowp's
//    (a·b + nudge) / 2^31 with truncation (see METHODS §9.2), whenever the result fits in int32,
//    i.e. always except a == b == INT32_MIN, which is blended to INT32_MAX.
//  * The single-rounding path needs (x·M + 2^(t-1)) >> t arithmetically on 64 bits: done as
//    ~((~p) >>> t) for negative p (logical shifts only), then saturated to int32.
#pragma once
#if !defined(__AVX2__)
#error "simd_int_avx2.h needs -mavx2"
#endif
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "core/fixed_point.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

struct VecI32Avx2 {
  static constexpr int kLanes = 8;
  static constexpr const char* kName = "avx2";
  using I = __m256i;

  static I load(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(int32_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I set1(int32_t v) { return _mm256_set1_epi32(v); }
  static I add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
  // a - b saturated to int32: it overflowed iff a and b differ in sign and the result's sign is b's.
  static I sub_sat(I a, I b) {
    const __m256i r = _mm256_sub_epi32(a, b);
    const __m256i overflow = _mm256_srai_epi32(_mm256_and_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(a, r)), 31);
    const __m256i saturated = _mm256_xor_si256(_mm256_set1_epi32(kInt32Max), _mm256_srai_epi32(a, 31));
    return _mm256_blendv_epi8(r, saturated, overflow);
  }
  static I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }  // low 32 bits: wraps
  static I min(I a, I b) { return _mm256_min_epi32(a, b); }
  static I max(I a, I b) { return _mm256_max_epi32(a, b); }

  // srdhm for lanes where a and b are not both INT32_MIN (its one saturating case).
  static I srdhm_unsaturated(I a, I b) {
    const __m256i nudge = _mm256_set1_epi64x(int64_t{1} << 30);
    const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(a, b), nudge);
    const __m256i odd = _mm256_add_epi64(
        _mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32)), nudge);
    // Bits 31..62: into the low half of each 64-bit lane (even) or the high half (odd).
    return _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  }
  static I srdhm(I a, I b) {
    const __m256i min = _mm256_set1_epi32(kInt32Min);
    const __m256i both_min = _mm256_and_si256(_mm256_cmpeq_epi32(a, min), _mm256_cmpeq_epi32(b, min));
    return _mm256_blendv_epi8(srdhm_unsaturated(a, b), _mm256_set1_epi32(kInt32Max), both_min);
  }

  // Per-lane exponent in [0, 31]; ties away from zero.
  static I rounding_divide_by_pot(I x, I exponent) {
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, exponent), one);  // 2^31 - 1 for e = 31
    const __m256i remainder = _mm256_and_si256(x, mask);
    const __m256i negative = _mm256_cmpgt_epi32(_mm256_setzero_si256(), x);        // -1 where x < 0
    const __m256i threshold = _mm256_sub_epi32(_mm256_srli_epi32(mask, 1), negative);
    const __m256i round_up = _mm256_cmpgt_epi32(remainder, threshold);               // both >= 0
    return _mm256_sub_epi32(_mm256_srav_epi32(x, exponent), round_up);
  }

  // x · 2^left saturated to int32, left in [0, 31] per lane.
  static I saturating_shift_left(I x, I left) {
    const __m256i shifted = _mm256_sllv_epi32(x, left);
    const __m256i kept = _mm256_cmpeq_epi32(_mm256_srav_epi32(shifted, left), x);
    const __m256i saturated = _mm256_xor_si256(_mm256_set1_epi32(kInt32Max),
                                               _mm256_cmpgt_epi32(_mm256_setzero_si256(), x));
    return _mm256_blendv_epi8(saturated, shifted, kept);
  }

  static I mbqm_double(I x, I multiplier, I shift) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i left = _mm256_max_epi32(shift, zero);
    const __m256i right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
    return rounding_divide_by_pot(srdhm(saturating_shift_left(x, left), multiplier), right);
  }
  // True when every lane has shift <= 0 and multiplier != INT32_MIN: then mbqm_double equals
  // mbqm_double_right(x, multiplier, -shift), which skips the left shift and the SRDHM saturation.
  static bool right_shift_only(I multiplier, I shift) {
    const __m256i needs_full = _mm256_or_si256(_mm256_cmpgt_epi32(shift, _mm256_setzero_si256()),
                                               _mm256_cmpeq_epi32(multiplier, _mm256_set1_epi32(kInt32Min)));
    return _mm256_testz_si256(needs_full, needs_full);
  }
  // mbqm_double for lanes with shift = -right <= 0 and multiplier != INT32_MIN (right_shift_only).
  static I mbqm_double_right(I x, I multiplier, I right) {
    return rounding_divide_by_pot(srdhm_unsaturated(x, multiplier), right);
  }

  // (int64(x)·M + 2^(t-1)) >> t, t = 31 - shift in [1, 62], saturated to int32; the even lanes'
  // 64-bit work happens in place, the odd lanes' after moving them down by 32 bits.
  static __m256i single_rounding_even_lanes(__m256i x, __m256i multiplier, __m256i total) {
    const __m256i t = _mm256_and_si256(total, _mm256_set1_epi64x(0xFFFFFFFF));
    const __m256i round = _mm256_sllv_epi64(_mm256_set1_epi64x(1), _mm256_sub_epi64(t, _mm256_set1_epi64x(1)));
    const __m256i p = _mm256_add_epi64(_mm256_mul_epi32(x, multiplier), round);
    const __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
    __m256i r = _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(p, sign), t), sign);
    const __m256i hi = _mm256_set1_epi64x(kInt32Max), lo = _mm256_set1_epi64x(kInt32Min);
    r = _mm256_blendv_epi8(r, hi, _mm256_cmpgt_epi64(r, hi));
    r = _mm256_blendv_epi8(r, lo, _mm256_cmpgt_epi64(lo, r));
    return r;  // the result is the low 32 bits of each 64-bit lane
  }

  static I mbqm_single(I x, I multiplier, I shift) {
    const __m256i total = _mm256_sub_epi32(_mm256_set1_epi32(31), shift);
    const __m256i even = single_rounding_even_lanes(x, multiplier, total);
    const __m256i odd = single_rounding_even_lanes(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(multiplier, 32),
                                                   _mm256_srli_epi64(total, 32));
    return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  }

  // kLanes bytes widened to int32 lanes (zero- or sign-extended by the code type).
  template <typename Code>
  static I load_widen(const Code* p) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    if constexpr (std::is_signed_v<Code>) {
      return _mm256_cvtepi8_epi32(bytes);
    } else {
      return _mm256_cvtepu8_epi32(bytes);
    }
  }
  static I shift_left(I x, int bits) { return _mm256_slli_epi32(x, bits); }
  // Values are already inside the code type's range: keep the low byte(s) of each lane.
  template <typename Code>
  static void store_narrow(Code* p, I v) {
    if constexpr (sizeof(Code) == 4) {
      store(reinterpret_cast<int32_t*>(p), v);
    } else if constexpr (sizeof(Code) == 2) {
      const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
      const __m256i packed = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(v, pick), 0b1000);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
    } else {
      static_assert(sizeof(Code) == 1);
      const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
      const __m256i packed = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, pick),
                                                         _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
    }
  }
};

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
