// Byte-matrix transposes shared by the int8 GEMM epilogue (channel-major output) and int8_conv2d
// (NCHW input gathered into pixel rows). Plain C++ on uint64 lanes; in the ISA namespace because
// the ISA translation units and the ops file compile it with different flags (isa_namespace.h).
#pragma once
#include <cstdint>
#include <cstring>

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

LOWBIT_ISA_END
}  // namespace lowbit
