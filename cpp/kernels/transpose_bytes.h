// Byte-matrix transposes shared by the int8 GEMM epilogue (channel-major output) and int8_conv2d
// (NCHW input gathered into pixel rows). SSE2, the x86-64 baseline, so the scalar kernel path and
// the ops file use them too; in the ISA namespace because the ISA translation units and the ops
// file compile it with different flags (isa_namespace.h).
#pragma once
#include <cstdint>
#include <cstring>

#if !defined(__SSE2__)
#error "transpose_bytes.h needs SSE2 (every x86-64 compiler enables it)"
#endif
#include <emmintrin.h>

#include "core/isa_namespace.h"

namespace lowbit {
LOWBIT_ISA_BEGIN

// dst[c·ldd + r] = src[r·lds + c] for r, c < 8 (one-byte codes): byte, 16-bit and 32-bit unpacks
// of the eight 8-byte rows, 16 shuffles for 64 bytes instead of a load and a store per byte.
template <typename Out>
inline void transpose_8x8_bytes(const Out* src, int64_t lds, Out* dst, int64_t ldd) {
  static_assert(sizeof(Out) == 1);
  auto row = [&](int i) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + i * lds)); };
  // t: rows (0,1), (2,3), (4,5), (6,7) interleaved by byte; u: by 2-byte pairs, columns 0-3 / 4-7.
  const __m128i t0 = _mm_unpacklo_epi8(row(0), row(1)), t1 = _mm_unpacklo_epi8(row(2), row(3));
  const __m128i t2 = _mm_unpacklo_epi8(row(4), row(5)), t3 = _mm_unpacklo_epi8(row(6), row(7));
  const __m128i u0 = _mm_unpacklo_epi16(t0, t1), u1 = _mm_unpackhi_epi16(t0, t1);
  const __m128i u2 = _mm_unpacklo_epi16(t2, t3), u3 = _mm_unpackhi_epi16(t2, t3);
  // v_i holds output rows 2i and 2i + 1 (columns 2i, 2i + 1 of the input).
  const __m128i v[4] = {_mm_unpacklo_epi32(u0, u2), _mm_unpackhi_epi32(u0, u2), _mm_unpacklo_epi32(u1, u3),
                        _mm_unpackhi_epi32(u1, u3)};
  for (int i = 0; i < 4; ++i) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + 2 * i * ldd), v[i]);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + (2 * i + 1) * ldd), _mm_unpackhi_epi64(v[i], v[i]));
  }
}

// dst[3i + j] = plane_j[i] for i < n, j < 3: three planes of one-byte codes (an RGB image's NCHW
// channels) to pixel-interleaved (channels-last) order. 16 pixels per step are widened to 4-byte
// (c0, c1, c2, 0) groups by byte and 16-bit unpacks, each group stored as 4 bytes at dst + 3i; its
// fourth byte lands on the next pixel's first, which the next store writes, so the vector loop
// stops while a pixel is left for the scalar tail. Writes exactly the 3n bytes of dst.
inline void interleave_3_planes(const uint8_t* p0, const uint8_t* p1, const uint8_t* p2, uint8_t* dst, int64_t n) {
  int64_t i = 0;
  const __m128i zero = _mm_setzero_si128();
  for (; i + 17 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p0 + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p1 + i));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p2 + i));
    const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
    const __m128i c_lo = _mm_unpacklo_epi8(c, zero), c_hi = _mm_unpackhi_epi8(c, zero);
    const __m128i groups[4] = {_mm_unpacklo_epi16(ab_lo, c_lo), _mm_unpackhi_epi16(ab_lo, c_lo),
                               _mm_unpacklo_epi16(ab_hi, c_hi), _mm_unpackhi_epi16(ab_hi, c_hi)};
    uint8_t* out = dst + 3 * i;
    for (int g = 0; g < 4; ++g) {
      __m128i v = groups[g];
      for (int q = 0; q < 4; ++q, out += 3) {
        const int32_t pixel = _mm_cvtsi128_si32(v);
        std::memcpy(out, &pixel, 4);
        v = _mm_srli_si128(v, 4);
      }
    }
  }
  for (; i < n; ++i) {
    dst[3 * i] = p0[i];
    dst[3 * i + 1] = p1[i];
    dst[3 * i + 2] = p2[i];
  }
}

LOWBIT_ISA_END
}  // namespace lowbit
