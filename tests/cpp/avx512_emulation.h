// Portable C++ stand-ins for the AVX-512 F/BW/DQ/VNNI intrinsics the kernels use, so their
// *logic* (lane order, masks, shift counts, the VNNI offset correction, NaN and signed-zero
// handling of min/max, compare predicates, rounding modes, half conversions, the horizontal
// reductions) runs on CPUs without AVX-512: test_avx512_emulated*.cpp compile the real kernel
// sources against these definitions and compare them with the scalar path, bit for bit.
// Covered: the integer kernels (requant_avx512.cpp, qx8s8_gemm_8x32c4__avx512vnni.cpp) and the
// float kernels (affine_avx512.cpp over simd_avx512.h's VecAvx512, estimator_avx512.cpp over
// estimator_simd.h's EAvx512). Not covered: the instruction encodings and the compiler's AVX-512
// code generation (register allocation, EVEX forms, what GCC makes of the real intrinsics); those
// are tested where the hardware exists (test_kernels / test_estimators / test_int8_kernels and
// the pytest ISA-path tests run every path the CPU has).
//
// Every function follows Intel's pseudo-code for the intrinsic of the same name (Intel Intrinsics
// Guide / SDM vol. 2); each has a short contract. The integer ops are written per lane in C++.
// The float ops whose per-lane pseudo-code is the same as that of the 256-bit AVX/FMA/F16C
// instruction run as two 256-bit halves on that instruction (see the float section); masks,
// masked moves and GCC's horizontal reductions are built explicitly. MXCSR is at its default
// (round to nearest even, no FTZ/DAZ), as everywhere in lowbit.
// The functions live in namespace lowbit, so inside the kernels (namespace lowbit::...)
// unqualified calls find them before the global declarations of <immintrin.h>.
//
// Build requirements (tests/cpp/CMakeLists.txt): the including TU is compiled with the AVX2 flags
// (-mavx2 -mfma -mf16c) and -ffp-contract=off, like the real kernel objects.
#pragma once
#include <immintrin.h>  // 128/256-bit types and the AVX2 helpers the kernels also use

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

// Without __OPTIMIZE__ (-O0) GCC defines the immediate-operand intrinsics as macros, which would
// expand before the functions below are found.
#undef _mm512_slli_epi32
#undef _mm512_srli_epi32
#undef _mm512_srai_epi32
#undef _mm512_slli_epi64
#undef _mm512_srli_epi64
#undef _mm512_roundscale_ps
#undef _mm512_cmp_ps_mask
#undef _mm512_cvtps_ph

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

// All-zero / broadcast / unaligned 64-byte load and store (VPXORD, VPBROADCASTB/D/Q, VMOVDQU32).
inline __m512i _mm512_setzero_si512() { return emu::map32([](int) { return 0; }); }
inline __m512i _mm512_set1_epi8(char v) {
  __m512i r;
  std::memset(r.s8, static_cast<unsigned char>(v), sizeof(r.s8));
  return r;
}
inline __m512i _mm512_set1_epi32(int32_t v) { return emu::map32([=](int) { return v; }); }
inline __m512i _mm512_set1_epi64(int64_t v) { return emu::map64([=](int) { return v; }); }
inline __m512i _mm512_loadu_si512(const void* p) {
  __m512i r;
  std::memcpy(&r, p, 64);
  return r;
}
inline void _mm512_storeu_si512(void* p, __m512i v) { std::memcpy(p, &v, 64); }
inline void _mm512_store_si512(void* p, __m512i v) { std::memcpy(p, &v, 64); }

// VPADDD / VPSUBD / VPMULLD / VPADDQ / VPSUBQ: per lane, wrapping (the low 32 / 64 bits).
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
// VPANDQ / VPXORQ: bitwise. VPMINSD/VPMAXSD/VPMINSQ/VPMAXSQ: signed per-lane min / max.
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

// VPCMPD into a mask: bit i = signed comparison of lane i.
inline __mmask16 _mm512_cmpeq_epi32_mask(__m512i a, __m512i b) { return emu::mask32([&](int i) { return a.i32[i] == b.i32[i]; }); }
inline __mmask16 _mm512_cmpgt_epi32_mask(__m512i a, __m512i b) { return emu::mask32([&](int i) { return a.i32[i] > b.i32[i]; }); }
inline __mmask16 _mm512_cmplt_epi32_mask(__m512i a, __m512i b) { return emu::mask32([&](int i) { return a.i32[i] < b.i32[i]; }); }
// Masked moves: mask_mov lane i = k[i] ? a[i] : src[i]; mask_blend lane i = k[i] ? b[i] : a[i];
// mask_add lane i = k[i] ? a[i] + b[i] (wrapping) : src[i].
inline __m512i _mm512_mask_mov_epi32(__m512i src, __mmask16 k, __m512i a) {
  return emu::map32([&](int i) { return (k >> i) & 1 ? a.i32[i] : src.i32[i]; });
}
inline __m512i _mm512_mask_blend_epi32(__mmask16 k, __m512i a, __m512i b) {
  return emu::map32([&](int i) { return (k >> i) & 1 ? b.i32[i] : a.i32[i]; });
}
inline __m512i _mm512_mask_add_epi32(__m512i src, __mmask16 k, __m512i a, __m512i b) {
  return emu::map32([&](int i) { return (k >> i) & 1 ? emu::wrap32(int64_t{a.i32[i]} + b.i32[i]) : src.i32[i]; });
}

// VPMOVZXBD / VPMOVSXBD: 16 bytes zero- / sign-extended to 32-bit lanes.
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

// ---- float: __m512 (16 x f32) ---------------------------------------------------------------
// Every per-lane float operation below runs as two 256-bit halves on the AVX / FMA / F16C
// instruction of the same name, because Intel's per-lane pseudo-code of the AVX-512 (EVEX) form
// is the same as that of the 256-bit (VEX) form: VADDPS..VDIVPS and VFMADD (IEEE op rounded under
// MXCSR, the x86 NaN rules), VMINPS/VMAXPS, VCMPPS (the same 32 predicates; EVEX writes bit i of
// a mask where VEX writes lane i of a vector), VRNDSCALEPS with M = imm[7:4] = 0 is VROUNDPS
// (imm[1:0] direction, imm[2] MXCSR, imm[3] no precision exception), VCVTPS2DQ / VCVTDQ2PS,
// VCVTPH2PS / VCVTPS2PH, and the bitwise ops. Masks and masked moves are the AVX-512-only part:
// they are built from / expanded into such per-lane results explicitly. The emu::*_reference
// functions spell out the pseudo-code per lane; test_avx512_emulated_affine.cpp checks the
// halves against them on special values (NaN, ±0, ±Inf, ties, subnormals, huge values).
// (Per-lane C++ for every op would be self-evidently independent of the hardware, but it made the
// flattened estimator TU take 12 minutes to compile instead of ~1.5.)

union __m512 {
  float f32[16];
  uint32_t u32[16];
  int32_t i32[16];
  __m256 h[2];  // lanes 0-7, lanes 8-15
};

namespace emu {
inline __m512 join(__m256 lo, __m256 hi) {
  __m512 r;
  r.h[0] = lo;
  r.h[1] = hi;
  return r;
}
// Lane i of the result = all ones where bit (8·half + i) of k is set, else zero.
inline __m256 mask_lanes(__mmask16 k, int half) {
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i kk = _mm256_set1_epi32((k >> (8 * half)) & 0xFF);
  return _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(kk, bit), bit));
}
// Bit i of the mask = sign bit of lane i (an all-ones / all-zeros compare result).
inline __mmask16 mask_of(__m256 lo, __m256 hi) {
  return static_cast<__mmask16>(_mm256_movemask_ps(lo) | (_mm256_movemask_ps(hi) << 8));
}

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- Intel's per-lane pseudo-code, written out (the reference the halves are checked against)

// MIN / MAX of VMINPS / VMAXPS: the second operand unless the first is strictly less (greater).
// So a NaN in EITHER operand gives the SECOND operand, and so does a pair of zeros of any signs.
inline float min_reference(float a, float b) { return a < b ? a : b; }
inline float max_reference(float a, float b) { return a > b ? a : b; }

// VCMPPS predicate imm8[4:0] (the _CMP_* constants). Bit 4 only flips the signalling behaviour
// (an exception flag, not the result), so predicates p and p + 16 give the same answer.
// "O" predicates are false and "U" predicates true when either operand is NaN.
inline bool cmp_reference(float a, float b, int imm) {
  const bool unordered = std::isnan(a) || std::isnan(b);
  switch (imm & 0x0F) {
    case 0x00: return !unordered && a == b;    // EQ_OQ
    case 0x01: return !unordered && a < b;     // LT_OS
    case 0x02: return !unordered && a <= b;    // LE_OS
    case 0x03: return unordered;               // UNORD_Q
    case 0x04: return unordered || a != b;     // NEQ_UQ
    case 0x05: return unordered || !(a < b);   // NLT_US
    case 0x06: return unordered || !(a <= b);  // NLE_US
    case 0x07: return !unordered;              // ORD_Q
    case 0x08: return unordered || a == b;     // EQ_UQ
    case 0x09: return unordered || !(a >= b);  // NGE_US
    case 0x0A: return unordered || !(a > b);   // NGT_US
    case 0x0B: return false;                   // FALSE_OQ
    case 0x0C: return !unordered && a != b;    // NEQ_OQ
    case 0x0D: return !unordered && a >= b;    // GE_OS
    case 0x0E: return !unordered && a > b;     // GT_OS
    default: return true;                      // TRUE_UQ
  }
}

// Integral value, ties to even, independent of the C rounding mode. |x| >= 2^23 (and ±Inf) is
// already integral; x - trunc(x) is exact below 2^23. A zero result keeps the sign of x.
inline float round_half_even_reference(float x) {
  if (!(std::fabs(x) < 8388608.0f)) return x;
  const float t = std::trunc(x);
  const float d = std::fabs(x - t);
  const bool odd = std::fmod(t, 2.0f) != 0.0f;
  const float r = (d > 0.5f || (d == 0.5f && odd)) ? t + std::copysign(1.0f, x) : t;
  return std::copysign(r, x);
}

// RoundToIntegerSP of VRNDSCALEPS with M = 0: direction imm8[1:0] (0 nearest-even, 1 down, 2 up,
// 3 toward zero) unless imm8[2] selects MXCSR.RC (the current C rounding mode here); a NaN comes
// back quieted (QNaN(src)); ±0 and ±Inf unchanged; a zero result has the sign of the input.
inline float roundscale_reference(float x, int imm) {
  if (std::isnan(x)) return from_bits(bits(x) | 0x00400000u);
  if (imm & 0x04) return std::nearbyint(x);
  switch (imm & 0x03) {
    case 0: return round_half_even_reference(x);
    case 1: return std::floor(x);
    case 2: return std::ceil(x);
    default: return std::trunc(x);
  }
}
}  // namespace emu

// 64-byte unaligned load / store (no alignment requirement, like VMOVUPS).
inline __m512 _mm512_loadu_ps(const void* p) {
  __m512 r;
  std::memcpy(&r, p, 64);
  return r;
}
inline void _mm512_storeu_ps(void* p, __m512 v) { std::memcpy(p, &v, 64); }
// Every lane = v.
inline __m512 _mm512_set1_ps(float v) { return emu::join(_mm256_set1_ps(v), _mm256_set1_ps(v)); }
// Bit casts (no instruction).
inline __m512i _mm512_castps_si512(__m512 v) {
  __m512i r;
  std::memcpy(&r, &v, 64);
  return r;
}
inline __m512 _mm512_castsi512_ps(__m512i v) {
  __m512 r;
  std::memcpy(&r, &v, 64);
  return r;
}

// VADDPS / VSUBPS / VMULPS / VDIVPS (halves): IEEE single precision per lane under MXCSR; a NaN
// operand propagates (the first source's if both), an invalid operation gives the default NaN.
inline __m512 _mm512_add_ps(__m512 a, __m512 b) { return emu::join(_mm256_add_ps(a.h[0], b.h[0]), _mm256_add_ps(a.h[1], b.h[1])); }
inline __m512 _mm512_sub_ps(__m512 a, __m512 b) { return emu::join(_mm256_sub_ps(a.h[0], b.h[0]), _mm256_sub_ps(a.h[1], b.h[1])); }
inline __m512 _mm512_mul_ps(__m512 a, __m512 b) { return emu::join(_mm256_mul_ps(a.h[0], b.h[0]), _mm256_mul_ps(a.h[1], b.h[1])); }
inline __m512 _mm512_div_ps(__m512 a, __m512 b) { return emu::join(_mm256_div_ps(a.h[0], b.h[0]), _mm256_div_ps(a.h[1], b.h[1])); }
// VFMADD (halves): a·b + c per lane with ONE rounding.
inline __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c) {
  return emu::join(_mm256_fmadd_ps(a.h[0], b.h[0], c.h[0]), _mm256_fmadd_ps(a.h[1], b.h[1], c.h[1]));
}
// VMINPS / VMAXPS (halves): per lane emu::min_reference / max_reference - NOT IEEE minNum: a NaN
// in EITHER operand yields the SECOND operand, and so does a pair of zeros (min(-0, +0) = +0).
inline __m512 _mm512_min_ps(__m512 a, __m512 b) { return emu::join(_mm256_min_ps(a.h[0], b.h[0]), _mm256_min_ps(a.h[1], b.h[1])); }
inline __m512 _mm512_max_ps(__m512 a, __m512 b) { return emu::join(_mm256_max_ps(a.h[0], b.h[0]), _mm256_max_ps(a.h[1], b.h[1])); }

// VANDPS / VANDNPS / VORPS / VXORPS (AVX512DQ; halves): bitwise; andnot(a, b) = ~a & b.
inline __m512 _mm512_and_ps(__m512 a, __m512 b) { return emu::join(_mm256_and_ps(a.h[0], b.h[0]), _mm256_and_ps(a.h[1], b.h[1])); }
inline __m512 _mm512_andnot_ps(__m512 a, __m512 b) {
  return emu::join(_mm256_andnot_ps(a.h[0], b.h[0]), _mm256_andnot_ps(a.h[1], b.h[1]));
}
inline __m512 _mm512_or_ps(__m512 a, __m512 b) { return emu::join(_mm256_or_ps(a.h[0], b.h[0]), _mm256_or_ps(a.h[1], b.h[1])); }
inline __m512 _mm512_xor_ps(__m512 a, __m512 b) { return emu::join(_mm256_xor_ps(a.h[0], b.h[0]), _mm256_xor_ps(a.h[1], b.h[1])); }
// VPORD: bitwise or of 32-bit lanes.
inline __m512i _mm512_or_si512(__m512i a, __m512i b) { return emu::map32([&](int i) { return a.i32[i] | b.i32[i]; }); }

// VCMPPS into a mask: bit i = predicate imm (any of the 32 _CMP_* values, emu::cmp_reference) on
// lane i. VEX VCMPPS takes the same 32 predicates; the switch gives it its immediate.
inline __mmask16 _mm512_cmp_ps_mask(__m512 a, __m512 b, const int imm) {
  __m256 lo, hi;
  switch (imm & 0x1F) {
#define LOWBIT_EMU_CMP(p)                   \
  case p:                                   \
    lo = _mm256_cmp_ps(a.h[0], b.h[0], p);  \
    hi = _mm256_cmp_ps(a.h[1], b.h[1], p);  \
    break;
    LOWBIT_EMU_CMP(0) LOWBIT_EMU_CMP(1) LOWBIT_EMU_CMP(2) LOWBIT_EMU_CMP(3) LOWBIT_EMU_CMP(4) LOWBIT_EMU_CMP(5)
    LOWBIT_EMU_CMP(6) LOWBIT_EMU_CMP(7) LOWBIT_EMU_CMP(8) LOWBIT_EMU_CMP(9) LOWBIT_EMU_CMP(10) LOWBIT_EMU_CMP(11)
    LOWBIT_EMU_CMP(12) LOWBIT_EMU_CMP(13) LOWBIT_EMU_CMP(14) LOWBIT_EMU_CMP(15) LOWBIT_EMU_CMP(16) LOWBIT_EMU_CMP(17)
    LOWBIT_EMU_CMP(18) LOWBIT_EMU_CMP(19) LOWBIT_EMU_CMP(20) LOWBIT_EMU_CMP(21) LOWBIT_EMU_CMP(22) LOWBIT_EMU_CMP(23)
    LOWBIT_EMU_CMP(24) LOWBIT_EMU_CMP(25) LOWBIT_EMU_CMP(26) LOWBIT_EMU_CMP(27) LOWBIT_EMU_CMP(28) LOWBIT_EMU_CMP(29)
    LOWBIT_EMU_CMP(30) default: LOWBIT_EMU_CMP(31)
#undef LOWBIT_EMU_CMP
  }
  return emu::mask_of(lo, hi);
}
// VMOVAPS with a zeroing mask: lane i = k[i] ? a[i] : +0.0 (all bits zero).
inline __m512 _mm512_maskz_mov_ps(__mmask16 k, __m512 a) {
  return emu::join(_mm256_and_ps(emu::mask_lanes(k, 0), a.h[0]), _mm256_and_ps(emu::mask_lanes(k, 1), a.h[1]));
}
// VBLENDMPS: lane i = k[i] ? b[i] : a[i] (a set bit selects the SECOND vector).
inline __m512 _mm512_mask_blend_ps(__mmask16 k, __m512 a, __m512 b) {
  return emu::join(_mm256_blendv_ps(a.h[0], b.h[0], emu::mask_lanes(k, 0)),
                   _mm256_blendv_ps(a.h[1], b.h[1], emu::mask_lanes(k, 1)));
}

// VRNDSCALEPS (halves, as VROUNDPS): per lane emu::roundscale_reference. M = imm[7:4] (rounding
// to 2^-M steps) has no VROUNDPS form and is not used by lowbit: it aborts rather than return a
// wrong value.
inline __m512 _mm512_roundscale_ps(__m512 a, const int imm) {
  __m256 lo, hi;
  switch (imm) {
#define LOWBIT_EMU_ROUND(p)               \
  case p:                                 \
    lo = _mm256_round_ps(a.h[0], p);      \
    hi = _mm256_round_ps(a.h[1], p);      \
    break;
    LOWBIT_EMU_ROUND(0) LOWBIT_EMU_ROUND(1) LOWBIT_EMU_ROUND(2) LOWBIT_EMU_ROUND(3) LOWBIT_EMU_ROUND(4)
    LOWBIT_EMU_ROUND(5) LOWBIT_EMU_ROUND(6) LOWBIT_EMU_ROUND(7) LOWBIT_EMU_ROUND(8) LOWBIT_EMU_ROUND(9)
    LOWBIT_EMU_ROUND(10) LOWBIT_EMU_ROUND(11) LOWBIT_EMU_ROUND(12) LOWBIT_EMU_ROUND(13) LOWBIT_EMU_ROUND(14)
    LOWBIT_EMU_ROUND(15)
#undef LOWBIT_EMU_ROUND
    default:
      std::fprintf(stderr, "avx512_emulation.h: _mm512_roundscale_ps with imm 0x%X (M != 0) is not emulated\n", imm);
      std::abort();
  }
  return emu::join(lo, hi);
}

// VCVTPS2DQ (halves): round under MXCSR.RC (nearest-even); NaN and values outside
// [-2^31, 2^31) give the "integer indefinite" 0x80000000.
inline __m512i _mm512_cvtps_epi32(__m512 a) {
  const __m256i h[2] = {_mm256_cvtps_epi32(a.h[0]), _mm256_cvtps_epi32(a.h[1])};
  __m512i r;
  std::memcpy(&r, h, 64);
  return r;
}
// VCVTDQ2PS (halves): int32 -> float rounded under MXCSR.RC (exact below 2^24 in magnitude).
inline __m512 _mm512_cvtepi32_ps(__m512i a) {
  __m256i h[2];
  std::memcpy(h, &a, 64);
  return emu::join(_mm256_cvtepi32_ps(h[0]), _mm256_cvtepi32_ps(h[1]));
}
// VPMOVZXWD: 16 u16 zero-extended to 32-bit lanes.
inline __m512i _mm512_cvtepu16_epi32(__m256i v) {
  uint16_t h[16];
  std::memcpy(h, &v, 32);
  return emu::map32([&](int i) { return int32_t{h[i]}; });
}

// VCVTPH2PS / VCVTPS2PH (halves, F16C): Convert_FP16_To_FP32 (exact) / Convert_FP32_To_FP16
// rounded per imm - here _MM_FROUND_TO_NEAREST_INT - with overflow to ±Inf, subnormal results,
// and NaN kept quiet with the top bits of its payload.
inline __m512 _mm512_cvtph_ps(__m256i h) {
  __m128i half[2];
  std::memcpy(half, &h, 32);
  return emu::join(_mm256_cvtph_ps(half[0]), _mm256_cvtph_ps(half[1]));
}
inline __m256i _mm512_cvtps_ph(__m512 a, const int imm) {
  if (imm != _MM_FROUND_TO_NEAREST_INT) {
    std::fprintf(stderr, "avx512_emulation.h: _mm512_cvtps_ph with imm %d is not emulated\n", imm);
    std::abort();
  }
  const __m128i h[2] = {_mm256_cvtps_ph(a.h[0], _MM_FROUND_TO_NEAREST_INT),
                        _mm256_cvtps_ph(a.h[1], _MM_FROUND_TO_NEAREST_INT)};
  __m256i r;
  std::memcpy(&r, h, 32);
  return r;
}

// _mm512_reduce_min_ps / _mm512_reduce_max_ps are not instructions: they are GCC 12's sequences
// in avx512fintrin.h (__MM512_REDUCE_OP), which is what the real build runs. The same steps in
// the same operand order here (each a VMINPS / VMAXPS, so which NaN or which zero survives
// matches): T3 = op(lanes 8-15, lanes 0-7); T6 = op(T3[4..7], T3[0..3]);
// T8 = op(T6, T6 shuffled {2,3,0,1}); T10 = op(T8, T8 shuffled {1,0,1,0}); result T10[0].
namespace emu {
template <__m256 (*Op256)(__m256, __m256), __m128 (*Op128)(__m128, __m128)>
inline float gcc12_reduce(__m512 a) {
  const __m256 t3 = Op256(a.h[1], a.h[0]);
  const __m128 t6 = Op128(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3));
  const __m128 t8 = Op128(t6, _mm_shuffle_ps(t6, t6, _MM_SHUFFLE(1, 0, 3, 2)));   // {2, 3, 0, 1}
  const __m128 t10 = Op128(t8, _mm_shuffle_ps(t8, t8, _MM_SHUFFLE(0, 1, 0, 1)));  // {1, 0, 1, 0}
  return _mm_cvtss_f32(t10);
}
inline __m256 min256(__m256 a, __m256 b) { return _mm256_min_ps(a, b); }
inline __m256 max256(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
inline __m128 min128(__m128 a, __m128 b) { return _mm_min_ps(a, b); }
inline __m128 max128(__m128 a, __m128 b) { return _mm_max_ps(a, b); }
}  // namespace emu
inline float _mm512_reduce_min_ps(__m512 a) { return emu::gcc12_reduce<emu::min256, emu::min128>(a); }
inline float _mm512_reduce_max_ps(__m512 a) { return emu::gcc12_reduce<emu::max256, emu::max128>(a); }

}  // namespace lowbit
