// Depthwise tap sums, AVX2 (dwconv_s16.h): two taps per vpmaddwd. The int16 values of taps t and
// t + 1 at the same 16 outputs are interleaved (vpunpcklwd / vpunpckhwd) and multiplied by the
// broadcast weight pair (w[t], w[t + 1]): each int32 lane gets w[t]·src[t][q] + w[t+1]·src[t+1][q]
// exactly (|.| <= 130050; vpmaddwd saturates only for two (-32768)² products, impossible here).
// The unpacks work within 128-bit halves, so the accumulators hold outputs in the order
// [0..3 | 8..11] and [4..7 | 12..15]; the store puts them back in order. A 16-output block keeps
// its two accumulators in registers across all taps (one load-add-store per block, not per tap).
#include <immintrin.h>

#include "kernels/dwconv_s16.h"

#if !defined(__AVX2__)
#error "s16_dwconv_taps__avx2.cpp needs -mavx2"
#endif

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

// (w0, w1) in every 32-bit lane, w0 in the low half: vpmaddwd's operand for one tap pair.
inline __m256i weight_pair(int16_t w0, int16_t w1) {
  return _mm256_set1_epi32(static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(w1)) << 16) |
                                                static_cast<uint16_t>(w0)));
}

void s16_dwconv_taps__avx2(int32_t* acc, int64_t n, const int16_t* const* src, const int16_t* w, int64_t taps) {
  const int64_t pairs = taps / 2;
  int64_t q = 0;
  for (; q + 16 <= n; q += 16) {
    __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();  // outputs [0..3|8..11], [4..7|12..15]
    for (int64_t p = 0; p < pairs; ++p) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[2 * p] + q));
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[2 * p + 1] + q));
      const __m256i wp = weight_pair(w[2 * p], w[2 * p + 1]);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wp));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wp));
    }
    if (taps % 2 != 0) {  // the last tap alone: its pair partner has weight 0
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[taps - 1] + q));
      const __m256i wp = weight_pair(w[taps - 1], 0);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, a), wp));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, a), wp));
    }
    __m256i* out = reinterpret_cast<__m256i*>(acc + q);
    const __m256i first = _mm256_permute2x128_si256(lo, hi, 0x20);   // outputs 0..7
    const __m256i second = _mm256_permute2x128_si256(lo, hi, 0x31);  // outputs 8..15
    _mm256_storeu_si256(out, _mm256_add_epi32(_mm256_loadu_si256(out), first));
    _mm256_storeu_si256(out + 1, _mm256_add_epi32(_mm256_loadu_si256(out + 1), second));
  }
  dwconv_tap_sums_reference(acc, q, n, src, w, taps);
}

// The uint8 form: the bytes of taps t and t + 1 at 8 outputs are interleaved (vpunpcklbw, within
// 128 bits) and zero-extended to int16 pairs (vpmovzxbw), so vpmaddwd by the weight pair gives
// outputs in order, no final permute; 16 outputs per block, both accumulators starting at init.
void u8_dwconv_taps__avx2(int32_t* acc, int64_t n, const uint8_t* const* src, const int16_t* w, int64_t taps,
                          int32_t init) {
  const int64_t pairs = taps / 2;
  int64_t q = 0;
  for (; q + 16 <= n; q += 16) {
    __m256i lo = _mm256_set1_epi32(init), hi = lo;  // outputs 0..7, 8..15
    for (int64_t p = 0; p < pairs; ++p) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[2 * p] + q));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[2 * p + 1] + q));
      const __m256i wp = weight_pair(w[2 * p], w[2 * p + 1]);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)), wp));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)), wp));
    }
    if (taps % 2 != 0) {  // the last tap alone: its pair partner has weight 0
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src[taps - 1] + q));
      const __m256i wp = weight_pair(w[taps - 1], 0);
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, a)), wp));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, a)), wp));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + q), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + q + 8), hi);
  }
  dwconv_u8_tap_sums_reference(acc, q, n, src, w, taps, init);
}

}  // namespace
LOWBIT_ISA_END

namespace kernels {
const DwconvKernels& dwconv_kernels_avx2() {
  static const DwconvKernels table = {"avx2", "s16_dwconv_taps__avx2", &s16_dwconv_taps__avx2,
                                             "u8_dwconv_taps__avx2", &u8_dwconv_taps__avx2};
  return table;
}
}  // namespace kernels
}  // namespace lowbit
