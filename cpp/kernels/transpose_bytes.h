// Byte-matrix transposes shared by the int8 GEMM epilogue (channel-major output) and int8_conv2d
// (NCHW input gathered into pixel rows). Plain C++ on uint64 lanes; in the ISA namespace because
// the ISA translation units and the ops file compile it with different flags (isa_namespace.h).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/isa_namespace.h"

namespace lowbit {
LOWBIT_ISA_BEGIN

// dst[c·ldd + r] = src[r·lds + c] for r, c < 8 (one-byte codes): three rounds of byte, 16-bit and
// 32-bit block swaps between pairs of rows held in uint64 (little-endian byte order), about one
// operation per byte instead of a load and a store per byte.
template <typename Out>
inline void transpose_8x8_bytes(const Out* src, int64_t lds, Out* dst, int64_t ldd) {
  static_assert(sizeof(Out) == 1);
  uint64_t r[8];
  for (int i = 0; i < 8; ++i) std::memcpy(&r[i], src + i * lds, 8);
  auto swap = [&](int i, int j, int bits, uint64_t mask) {
    const uint64_t t = ((r[i] >> bits) ^ r[j]) & mask;
    r[j] ^= t;
    r[i] ^= t << bits;
  };
  for (int i = 0; i < 8; i += 2) swap(i, i + 1, 8, 0x00FF00FF00FF00FFull);
  for (int i : {0, 1, 4, 5}) swap(i, i + 2, 16, 0x0000FFFF0000FFFFull);
  for (int i = 0; i < 4; ++i) swap(i, i + 4, 32, 0x00000000FFFFFFFFull);
  for (int i = 0; i < 8; ++i) std::memcpy(dst + i * ldd, &r[i], 8);
}

// dst[3i + j] = plane_j[i] for i < n, j < 3: three planes of one-byte codes (an RGB image's NCHW
// channels) to pixel-interleaved (channels-last) order. SSE2, which every x86-64 CPU has: 16
// pixels per step widened to 4-byte (c0, c1, c2, 0) groups by byte and 16-bit unpacks, each group
// stored as 4 bytes at dst + 3i; its fourth byte lands on the next pixel's first, which the next
// store writes, so the vector loop stops while a pixel is left for the scalar tail. Writes exactly
// the 3n bytes of dst.
inline void interleave_3_planes(const uint8_t* p0, const uint8_t* p1, const uint8_t* p2, uint8_t* dst, int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
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
#endif
  for (; i < n; ++i) {
    dst[3 * i] = p0[i];
    dst[3 * i + 1] = p1[i];
    dst[3 * i + 2] = p2[i];
  }
}

LOWBIT_ISA_END
}  // namespace lowbit
