// Portable C++ stand-ins for the AVX-512 F/BW/VNNI intrinsics the integer kernels use, so their
// *logic* (lane order, masks, shift counts, the VNNI offset correction) runs on CPUs without
// AVX-512: test_avx512_emulated.cpp compiles the real kernel sources against these definitions
// and compares them with the scalar path. It checks the algorithms, not the instruction encodings
// or the compiler's AVX-512 code generation; those are covered where the hardware exists.
//
// Every function follows Intel's pseudo-code for the intrinsic of the same name. They live in
// namespace lowbit, so inside the kernels (namespace lowbit::...) unqualified calls find them
// before the global declarations of <immintrin.h>.
#pragma once
#include <immintrin.h>  // 128/256-bit types and the AVX2 helpers the kernels also use

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace lowbit {

union __m512i {
  int8_t s8[64];
  uint8_t u8[64];
  int16_t s16[32];
  int32_t i32[16];
  uint32_t u32[16];
  int64_t i64[8];
  uint64_t u64[8];
};
using __mmask16 = uint16_t;

namespace emu {
template <typename F>
inline __m512i map32(F f) {
  __m512i r;
  for (int i = 0; i < 16; ++i) r.i32[i] = f(i);
  return r;
}
template <typename F>
inline __m512i map64(F f) {
  __m512i r;
  for (int i = 0; i < 8; ++i) r.i64[i] = f(i);
  return r;
}
template <typename F>
inline __mmask16 mask32(F f) {
  __mmask16 m = 0;
  for (int i = 0; i < 16; ++i) m = static_cast<__mmask16>(m | (f(i) ? 1u << i : 0u));
  return m;
}
inline int32_t wrap32(int64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v))); }
}  // namespace emu

inline __m512i _mm512_setzero_si512() { return emu::map32([](int) { return 0; }); }
inline __m512i _mm512_set1_epi32(int32_t v) { return emu::map32([=](int) { return v; }); }
inline __m512i _mm512_set1_epi64(int64_t v) { return emu::map64([=](int) { return v; }); }
inline __m512i _mm512_loadu_si512(const void* p) {
  __m512i r;
  std::memcpy(&r, p, 64);
  return r;
}
inline void _mm512_storeu_si512(void* p, __m512i v) { std::memcpy(p, &v, 64); }
inline void _mm512_store_si512(void* p, __m512i v) { std::memcpy(p, &v, 64); }

inline __m512i _mm512_add_epi32(__m512i a, __m512i b) {
  return emu::map32([&](int i) { return emu::wrap32(int64_t{a.i32[i]} + b.i32[i]); });
}
inline __m512i _mm512_sub_epi32(__m512i a, __m512i b) {
  return emu::map32([&](int i) { return emu::wrap32(int64_t{a.i32[i]} - b.i32[i]); });
}
inline __m512i _mm512_mullo_epi32(__m512i a, __m512i b) {
  return emu::map32([&](int i) { return emu::wrap32(int64_t{a.i32[i]} * b.i32[i]); });
}
inline __m512i _mm512_add_epi64(__m512i a, __m512i b) {
  return emu::map64([&](int i) { return static_cast<int64_t>(a.u64[i] + b.u64[i]); });
}
inline __m512i _mm512_sub_epi64(__m512i a, __m512i b) {
  return emu::map64([&](int i) { return static_cast<int64_t>(a.u64[i] - b.u64[i]); });
}
inline __m512i _mm512_and_si512(__m512i a, __m512i b) { return emu::map64([&](int i) { return a.i64[i] & b.i64[i]; }); }
inline __m512i _mm512_xor_si512(__m512i a, __m512i b) { return emu::map64([&](int i) { return a.i64[i] ^ b.i64[i]; }); }
inline __m512i _mm512_min_epi32(__m512i a, __m512i b) { return emu::map32([&](int i) { return std::min(a.i32[i], b.i32[i]); }); }
inline __m512i _mm512_max_epi32(__m512i a, __m512i b) { return emu::map32([&](int i) { return std::max(a.i32[i], b.i32[i]); }); }
inline __m512i _mm512_min_epi64(__m512i a, __m512i b) { return emu::map64([&](int i) { return std::min(a.i64[i], b.i64[i]); }); }
inline __m512i _mm512_max_epi64(__m512i a, __m512i b) { return emu::map64([&](int i) { return std::max(a.i64[i], b.i64[i]); }); }

// Signed 32x32 -> 64 multiply of the even (low) 32-bit halves of each 64-bit lane.
inline __m512i _mm512_mul_epi32(__m512i a, __m512i b) {
  return emu::map64([&](int i) { return int64_t{a.i32[2 * i]} * int64_t{b.i32[2 * i]}; });
}

// Shifts: counts >= the lane width give 0 (logical/left) or the sign fill (arithmetic).
inline __m512i _mm512_slli_epi32(__m512i a, unsigned n) {
  return emu::map32([&](int i) { return n > 31 ? 0 : static_cast<int32_t>(a.u32[i] << n); });
}
inline __m512i _mm512_srli_epi32(__m512i a, unsigned n) {
  return emu::map32([&](int i) { return n > 31 ? 0 : static_cast<int32_t>(a.u32[i] >> n); });
}
inline __m512i _mm512_srai_epi32(__m512i a, unsigned n) {
  return emu::map32([&](int i) { return a.i32[i] >> std::min(n, 31u); });
}
inline __m512i _mm512_slli_epi64(__m512i a, unsigned n) {
  return emu::map64([&](int i) { return n > 63 ? 0 : static_cast<int64_t>(a.u64[i] << n); });
}
inline __m512i _mm512_srli_epi64(__m512i a, unsigned n) {
  return emu::map64([&](int i) { return n > 63 ? 0 : static_cast<int64_t>(a.u64[i] >> n); });
}
inline __m512i _mm512_sllv_epi32(__m512i a, __m512i c) {
  return emu::map32([&](int i) { return c.u32[i] > 31 ? 0 : static_cast<int32_t>(a.u32[i] << c.u32[i]); });
}
inline __m512i _mm512_srav_epi32(__m512i a, __m512i c) {
  return emu::map32([&](int i) { return a.i32[i] >> std::min<uint32_t>(c.u32[i], 31); });
}
inline __m512i _mm512_sllv_epi64(__m512i a, __m512i c) {
  return emu::map64([&](int i) { return c.u64[i] > 63 ? 0 : static_cast<int64_t>(a.u64[i] << c.u64[i]); });
}
inline __m512i _mm512_srav_epi64(__m512i a, __m512i c) {
  return emu::map64([&](int i) { return a.i64[i] >> std::min<uint64_t>(c.u64[i], 63); });
}

inline __mmask16 _mm512_cmpeq_epi32_mask(__m512i a, __m512i b) { return emu::mask32([&](int i) { return a.i32[i] == b.i32[i]; }); }
inline __mmask16 _mm512_cmpgt_epi32_mask(__m512i a, __m512i b) { return emu::mask32([&](int i) { return a.i32[i] > b.i32[i]; }); }
inline __mmask16 _mm512_cmplt_epi32_mask(__m512i a, __m512i b) { return emu::mask32([&](int i) { return a.i32[i] < b.i32[i]; }); }
inline __m512i _mm512_mask_mov_epi32(__m512i src, __mmask16 k, __m512i a) {
  return emu::map32([&](int i) { return (k >> i) & 1 ? a.i32[i] : src.i32[i]; });
}
inline __m512i _mm512_mask_blend_epi32(__mmask16 k, __m512i a, __m512i b) {
  return emu::map32([&](int i) { return (k >> i) & 1 ? b.i32[i] : a.i32[i]; });
}
inline __m512i _mm512_mask_add_epi32(__m512i src, __mmask16 k, __m512i a, __m512i b) {
  return emu::map32([&](int i) { return (k >> i) & 1 ? emu::wrap32(int64_t{a.i32[i]} + b.i32[i]) : src.i32[i]; });
}

inline __m512i _mm512_cvtepu8_epi32(__m128i v) {
  uint8_t b[16];
  std::memcpy(b, &v, 16);
  return emu::map32([&](int i) { return int32_t{b[i]}; });
}
inline __m512i _mm512_cvtepi8_epi32(__m128i v) {
  int8_t b[16];
  std::memcpy(b, &v, 16);
  return emu::map32([&](int i) { return int32_t{b[i]}; });
}
// Truncating narrowings (vpmovdb / vpmovdw).
inline __m128i _mm512_cvtepi32_epi8(__m512i a) {
  int8_t b[16];
  for (int i = 0; i < 16; ++i) b[i] = static_cast<int8_t>(a.i32[i]);
  __m128i r;
  std::memcpy(&r, b, 16);
  return r;
}
inline __m256i _mm512_cvtepi32_epi16(__m512i a) {
  int16_t h[16];
  for (int i = 0; i < 16; ++i) h[i] = static_cast<int16_t>(a.i32[i]);
  __m256i r;
  std::memcpy(&r, h, 32);
  return r;
}

// vpdpbusd: per lane, 4 u8 (from a) × s8 (from b) products added to src, wrapping.
inline __m512i _mm512_dpbusd_epi32(__m512i src, __m512i a, __m512i b) {
  return emu::map32([&](int i) {
    int64_t sum = src.i32[i];
    for (int j = 0; j < 4; ++j) sum += int64_t{a.u8[4 * i + j]} * int64_t{b.s8[4 * i + j]};
    return emu::wrap32(sum);
  });
}

}  // namespace lowbit
