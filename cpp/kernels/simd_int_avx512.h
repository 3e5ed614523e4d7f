// 16-lane int32 vector on AVX-512 F/BW with the gemmlowp fixed-point operations. Mirrors
// simd_int_avx2.h operation by operation (same contract: equal to cpp/core/fixed_point.h lane by
// lane for every input); AVX-512 has the 64-bit arithmetic shifts and mask registers AVX2 lacks.
#pragma once
#if !defined(__AVX512F__) || !defined(__AVX512BW__)
#error "simd_int_avx512.h needs -mavx512f -mavx512bw"
#endif
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "core/fixed_point.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

struct VecI32Avx512 {
  static constexpr int kLanes = 16;
  static constexpr const char* kName = "avx512";
  using I = __m512i;

  static I load(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store(int32_t* p, I v) { _mm512_storeu_si512(p, v); }
  static I set1(int32_t v) { return _mm512_set1_epi32(v); }
  static I add(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I sub_sat(I a, I b) {
    const __m512i r = _mm512_sub_epi32(a, b);
    const __m512i overflow = _mm512_and_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(a, r));
    const __mmask16 m = _mm512_cmplt_epi32_mask(overflow, _mm512_setzero_si512());
    const __m512i saturated = _mm512_xor_si512(_mm512_set1_epi32(kInt32Max), _mm512_srai_epi32(a, 31));
    return _mm512_mask_mov_epi32(r, m, saturated);
  }
  static I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
  static I min(I a, I b) { return _mm512_min_epi32(a, b); }
  static I max(I a, I b) { return _mm512_max_epi32(a, b); }

  // srdhm for lanes where a and b are not both INT32_MIN (its one saturating case).
  static I srdhm_unsaturated(I a, I b) {
    const __m512i nudge = _mm512_set1_epi64(int64_t{1} << 30);
    const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(a, b), nudge);
    const __m512i odd = _mm512_add_epi64(
        _mm512_mul_epi32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(b, 32)), nudge);
    return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
  }
  static I srdhm(I a, I b) {
    const __m512i min = _mm512_set1_epi32(kInt32Min);
    const __mmask16 both_min = _mm512_cmpeq_epi32_mask(a, min) & _mm512_cmpeq_epi32_mask(b, min);
    return _mm512_mask_mov_epi32(srdhm_unsaturated(a, b), both_min, _mm512_set1_epi32(kInt32Max));
  }

  static I rounding_divide_by_pot(I x, I exponent) {
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, exponent), one);
    const __m512i remainder = _mm512_and_si512(x, mask);
    const __mmask16 negative = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
    const __m512i threshold = _mm512_mask_add_epi32(_mm512_srli_epi32(mask, 1), negative,
                                                    _mm512_srli_epi32(mask, 1), one);
    const __mmask16 round_up = _mm512_cmpgt_epi32_mask(remainder, threshold);
    const __m512i shifted = _mm512_srav_epi32(x, exponent);
    return _mm512_mask_add_epi32(shifted, round_up, shifted, one);
  }

  static I saturating_shift_left(I x, I left) {
    const __m512i shifted = _mm512_sllv_epi32(x, left);
    const __mmask16 kept = _mm512_cmpeq_epi32_mask(_mm512_srav_epi32(shifted, left), x);
    const __mmask16 negative = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
    const __m512i saturated = _mm512_mask_mov_epi32(_mm512_set1_epi32(kInt32Max), negative,
                                                    _mm512_set1_epi32(kInt32Min));
    return _mm512_mask_mov_epi32(saturated, kept, shifted);
  }

  static I mbqm_double(I x, I multiplier, I shift) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i left = _mm512_max_epi32(shift, zero);
    const __m512i right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
    return rounding_divide_by_pot(srdhm(saturating_shift_left(x, left), multiplier), right);
  }
  // See VecI32Avx2::right_shift_only / mbqm_double_right.
  static bool right_shift_only(I multiplier, I shift) {
    return (_mm512_cmpgt_epi32_mask(shift, _mm512_setzero_si512()) |
            _mm512_cmpeq_epi32_mask(multiplier, _mm512_set1_epi32(kInt32Min))) == 0;
  }
  static I mbqm_double_right(I x, I multiplier, I right) {
    return rounding_divide_by_pot(srdhm_unsaturated(x, multiplier), right);
  }

  static __m512i single_rounding_even_lanes(__m512i x, __m512i multiplier, __m512i total) {
    const __m512i t = _mm512_and_si512(total, _mm512_set1_epi64(0xFFFFFFFF));
    const __m512i round = _mm512_sllv_epi64(_mm512_set1_epi64(1), _mm512_sub_epi64(t, _mm512_set1_epi64(1)));
    const __m512i p = _mm512_add_epi64(_mm512_mul_epi32(x, multiplier), round);
    __m512i r = _mm512_srav_epi64(p, t);
    r = _mm512_min_epi64(r, _mm512_set1_epi64(kInt32Max));
    r = _mm512_max_epi64(r, _mm512_set1_epi64(kInt32Min));
    return r;
  }

  static I mbqm_single(I x, I multiplier, I shift) {
    const __m512i total = _mm512_sub_epi32(_mm512_set1_epi32(31), shift);
    const __m512i even = single_rounding_even_lanes(x, multiplier, total);
    const __m512i odd = single_rounding_even_lanes(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(multiplier, 32),
                                                   _mm512_srli_epi64(total, 32));
    return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  }

  template <typename Code>
  static I load_widen(const Code* p) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (std::is_signed_v<Code>) {
      return _mm512_cvtepi8_epi32(bytes);
    } else {
      return _mm512_cvtepu8_epi32(bytes);
    }
  }
  static I shift_left(I x, int bits) { return _mm512_slli_epi32(x, static_cast<unsigned>(bits)); }
  template <typename Code>
  static void store_narrow(Code* p, I v) {
    if constexpr (sizeof(Code) == 4) {
      store(reinterpret_cast<int32_t*>(p), v);
    } else if constexpr (sizeof(Code) == 2) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
    } else {
      static_assert(sizeof(Code) == 1);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
    }
  }
};

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
