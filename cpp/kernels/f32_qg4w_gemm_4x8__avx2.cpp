// int4 weight-only GEMM, AVX2 + FMA. Layout and arithmetic contract in int4_weight.h.
//
// Per 8-k tile one 32-byte weight load (8 channels × 8 k) and, per row, one 8-float activation
// load; nibble j of the 8 words is channel j over those 8 k, so 8 weights cost one nibble
// extraction (shared by the rows of a micro-tile) and one vfmadd per row, into a chain whose lanes
// are the contract's k % 8 lanes. At the end of a group each chain is reduced with
// vhaddps/vperm2f128 in the contract's tree order, scaled back by its power of two and combined
// with the group's scale and zero point.
//
// Extraction variants (int4_weight.h proves each bit-identical to the scalar reference under the
// conditions the op checks): "subnormal" = one vpand per 8 weights and no conversion at all (the
// default for ordinary activations); "cvt16" = vpand + vcvtdq2ps (under DAZ, or rows with an
// exponent spread > 79); "shift" = vpsrld + vpand + vcvtdq2ps (NaN/Inf/subnormal/|x| >= 2^64).
// On Zen 1 vcvtdq2ps ymm issues once per 2 cycles, which made it the bottleneck of the old kernel
// (and+cvt+fma ≈ 3 cycles per 8 weights against and+fma ≈ 1.25).
//
// Micro-tiles (rows × channels per pass over a group's weights), chosen by the rows left:
//   1 × 8 (GEMV, LLM decode): 8 independent FMA chains, one activation load per 64 weights;
//   2 × 4 and 4 × 2: the extraction is shared by 2 or 4 rows (8 chains either way, so everything
//   stays in the 16 ymm registers); a group's weights (G/2 bytes per channel) and activations stay
//   in L1 across the passes.
#include <immintrin.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "core/isa_namespace.h"
#include "kernels/int4_weight.h"

#if !defined(__AVX2__) || !defined(__FMA__)
#error "f32_qg4w_gemm_4x8__avx2.cpp needs -mavx2 -mfma"
#endif

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

// How nibble j of the 8 words becomes 8 floats (int4_weight.h, "Nibble extraction"):
//   kShift:     q                      vpsrld + vpand + vcvtdq2ps (any activations)
//   kCvt16:     q·16^j                 vpand + vcvtdq2ps (j = 7: vpsrld)
//   kSubnormal: q·2^(kSubShift[j]-149) the masked bits themselves: one vpand (j = 6: vpsrld +
//               vpand, j = 7: vpsrld). No FP-pipe uop at all; vcvtdq2ps costs 2 cycles per ymm
//               on Zen 1 and was the bottleneck.
enum class Variant { kShift, kCvt16, kSubnormal };

constexpr int kPrefetchBytes = 1024;

template <Variant V, int J>
inline __m256 nibble_as_float(__m256i w) {
  if constexpr (V == Variant::kSubnormal) {
    static_assert(kernels::kInt4SubShift[J] == (J < 6 ? 4 * J : J == 6 ? 20 : 0));
    if constexpr (J == 7) return _mm256_castsi256_ps(_mm256_srli_epi32(w, 28));
    if constexpr (J == 6) return _mm256_castsi256_ps(_mm256_and_si256(_mm256_srli_epi32(w, 4), _mm256_set1_epi32(0xF << 20)));
    return _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(0xF << (4 * J))));
  } else if constexpr (J == 7) {
    return _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 28));
  } else if constexpr (V == Variant::kCvt16) {
    return _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(0xF << (4 * J))));
  } else {
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(w, 4 * J), _mm256_set1_epi32(0xF)));
  }
}

// The FMA chains of rows [0, MR) × channels [C0, C0 + C) over `tiles` tiles of one group, each
// reduced by the contract's lane tree; r_out[row][C0 + c] receives the sum (times the variant's
// power of two).
template <int MR, int C, int C0, Variant V>
__attribute__((always_inline)) inline void group_chains(const uint32_t* w, int64_t tiles, const float* x, int64_t ldx,
                                                        float* r_out) {
  static_assert(C == 2 || C == 4 || C == 8);
  __m256 acc[MR][C];
  for (int r = 0; r < MR; ++r) {
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  }
  for (int64_t t = 0; t < tiles; ++t) {
    // The weights are one sequential stream (blocks are contiguous); a software prefetch a
    // kilobyte ahead keeps a little more of it in flight than the hardware prefetcher alone
    // (about 2% at M = 1 on Zen 1, A/B on a loaded machine; 0.5 to 4 KB ahead measured alike).
    _mm_prefetch(reinterpret_cast<const char*>(w + t * kInt4Nr) + kPrefetchBytes, _MM_HINT_T0);
    const __m256i wt = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * kInt4Nr));
    __m256 xv[MR];
    for (int r = 0; r < MR; ++r) xv[r] = _mm256_loadu_ps(x + r * ldx + t * kInt4Kb);
    [&]<int... c>(std::integer_sequence<int, c...>) {
      (
          [&] {
            const __m256 v = nibble_as_float<V, C0 + c>(wt);
            for (int r = 0; r < MR; ++r) acc[r][c] = _mm256_fmadd_ps(v, xv[r], acc[r][c]);
          }(),
          ...);
    }(std::make_integer_sequence<int, C>{});
  }
  // _mm256_hadd_ps(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7]: two rounds give
  // (a0+a1)+(a2+a3) in the low and (a4+a5)+(a6+a7) in the high 128 bits; adding the halves
  // completes the contract's tree.
  for (int r = 0; r < MR; ++r) {
    float* out = r_out + r * kInt4Nr + C0;
    if constexpr (C == 8) {
      const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][0], acc[r][1]), _mm256_hadd_ps(acc[r][2], acc[r][3]));
      const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][4], acc[r][5]), _mm256_hadd_ps(acc[r][6], acc[r][7]));
      _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31)));
    } else if constexpr (C == 4) {
      const __m256 q = _mm256_hadd_ps(_mm256_hadd_ps(acc[r][0], acc[r][1]), _mm256_hadd_ps(acc[r][2], acc[r][3]));
      _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1)));
    } else {
      const __m256 h = _mm256_hadd_ps(acc[r][0], acc[r][1]);
      const __m256 q = _mm256_hadd_ps(h, h);
      _mm_storel_pi(reinterpret_cast<__m64*>(out), _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1)));
    }
  }
}

// Rows [m, m + MR) of channel block b, all groups; results (with bias) to out[MR][8]. sblk/zblk:
// the block's zero-padded parameters (int4_block_params) for a partial block, null for a full one.
template <int MR, int C, Variant V>
__attribute__((noinline)) void tile(const Int4LinearArgs& a, int64_t m, int64_t b, const float* sblk, const float* zblk,
                                    float* out) {
  const int64_t tiles = a.k / kInt4Kb, group_tiles = tiles / a.groups;
  const uint32_t* block = a.packed + b * tiles * kInt4Nr;
  const float* x = (V == Variant::kSubnormal ? a.x_sub : a.x) + m * a.k;
  // Back to the unscaled sums, exactly (int4_weight.h): per row and channel a power of two.
  __m256 unscale[MR];
  for (int i = 0; i < MR; ++i) {
    if constexpr (V == Variant::kSubnormal) {
      unscale[i] = _mm256_mul_ps(_mm256_set1_ps(a.x_sub_unscale[m + i]),
                                 _mm256_setr_ps(1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-20f, 1.0f));
    } else if constexpr (V == Variant::kCvt16) {
      unscale[i] = _mm256_setr_ps(1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-24f, 1.0f);
    } else {
      unscale[i] = _mm256_set1_ps(1.0f);
    }
  }
  alignas(32) float r[MR * kInt4Nr];
  __m256 total[MR];
  for (int i = 0; i < MR; ++i) total[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < a.groups; ++g) {
    const uint32_t* wg = block + g * group_tiles * kInt4Nr;
    const float* xg = x + g * group_tiles * kInt4Kb;
    [&]<int... p>(std::integer_sequence<int, p...>) {
      (group_chains<MR, C, p * C, V>(wg, group_tiles, xg, a.k, r), ...);
    }(std::make_integer_sequence<int, kInt4Nr / C>{});
    __m256 s, z;
    if (sblk == nullptr) {  // full block: gather the 8 channels' parameters straight from [N][groups]
      const float* sp = a.scale + b * kInt4Nr * a.groups + g;
      const int32_t* zp = a.zero + b * kInt4Nr * a.groups + g;
      const int64_t st = a.groups;
      s = _mm256_setr_ps(sp[0], sp[st], sp[2 * st], sp[3 * st], sp[4 * st], sp[5 * st], sp[6 * st], sp[7 * st]);
      z = _mm256_cvtepi32_ps(_mm256_setr_epi32(zp[0], zp[st], zp[2 * st], zp[3 * st], zp[4 * st], zp[5 * st],
                                               zp[6 * st], zp[7 * st]));
    } else {
      s = _mm256_loadu_ps(sblk + g * kInt4Nr);
      z = _mm256_loadu_ps(zblk + g * kInt4Nr);
    }
    for (int i = 0; i < MR; ++i) {
      const __m256 sum = _mm256_mul_ps(_mm256_load_ps(r + i * kInt4Nr), unscale[i]);  // exact (int4_weight.h)
      const __m256 xs = _mm256_broadcast_ss(a.xsum + (m + i) * a.groups + g);
      total[i] = _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, xs, sum), total[i]);
    }
  }
  __m256 bias = _mm256_setzero_ps();
  if (a.bias != nullptr) {
    alignas(32) float bb[kInt4Nr] = {};
    for (int64_t l = 0; l < kInt4Nr && b * kInt4Nr + l < a.n; ++l) bb[l] = a.bias[b * kInt4Nr + l];
    bias = _mm256_load_ps(bb);
  }
  for (int i = 0; i < MR; ++i) _mm256_storeu_ps(out + i * kInt4Nr, a.bias != nullptr ? _mm256_add_ps(total[i], bias) : total[i]);
}

// int4_param_ok over count (a multiple of 8) scales and zero points: signed min/max of the scale
// bits (negatives, with the sign bit, fall below kInt4ScaleMinBits; NaN and Inf above
// kInt4ScaleMaxBits) and the OR of the zero points (one outside [0, 15] sets a bit above bit 3).
// Run on a block's parameters right after its tiles gathered them, so they are still in L1.
bool params_ok_x8(const float* scale, const int32_t* zero, int64_t count) {
  const __m256i min_bits = _mm256_set1_epi32(static_cast<int>(kernels::kInt4ScaleMinBits));
  const __m256i max_bits = _mm256_set1_epi32(static_cast<int>(kernels::kInt4ScaleMaxBits));
  __m256i smin = min_bits, smax = min_bits, zor = _mm256_setzero_si256();
  for (int64_t i = 0; i < count; i += 8) {
    const __m256i sb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(scale + i));
    smin = _mm256_min_epi32(smin, sb);
    smax = _mm256_max_epi32(smax, sb);
    zor = _mm256_or_si256(zor, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zero + i)));
  }
  const __m256i bad = _mm256_or_si256(
      _mm256_or_si256(_mm256_cmpgt_epi32(min_bits, smin), _mm256_cmpgt_epi32(smax, max_bits)),
      _mm256_and_si256(zor, _mm256_set1_epi32(~0xF)));
  return _mm256_testz_si256(bad, bad) != 0;
}

template <int MR, int C>
void run_tile(const Int4LinearArgs& a, int64_t m, int64_t b, const float* sblk, const float* zblk, float* out) {
  // DAZ (MXCSR bit 6, per thread) would read the subnormal weights as zero.
  if (a.x_sub != nullptr && (_mm_getcsr() & 0x40u) == 0) {
    tile<MR, C, Variant::kSubnormal>(a, m, b, sblk, zblk, out);
  } else if (a.x_in_scaled_range) {
    tile<MR, C, Variant::kCvt16>(a, m, b, sblk, zblk, out);
  } else {
    tile<MR, C, Variant::kShift>(a, m, b, sblk, zblk, out);
  }
}

bool f32_qg4w_gemm_4x8__avx2(const Int4LinearArgs& a, int64_t m0, int64_t m1, int64_t b0, int64_t b1) {
  alignas(32) float out[4 * kInt4Nr];
  std::vector<float> sblk(static_cast<size_t>(a.groups * kInt4Nr)), zblk(sblk.size());
  bool params_ok = true;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lanes = std::min<int64_t>(kInt4Nr, a.n - b * kInt4Nr);
    // Only a partial last block needs the zero-padded copy of its parameters.
    const float* sp = nullptr;
    const float* zp = nullptr;
    if (lanes < kInt4Nr) {
      params_ok &= int4_block_params(a, b, sblk.data(), zblk.data());
      sp = sblk.data();
      zp = zblk.data();
    }
    for (int64_t m = m0; m < m1;) {
      const int64_t rows = m1 - m;
      int64_t mr = 1;
      if (rows >= 4) {
        mr = 4;
        run_tile<4, 2>(a, m, b, sp, zp, out);
      } else if (rows >= 2) {
        mr = 2;
        run_tile<2, 4>(a, m, b, sp, zp, out);
      } else {
        run_tile<1, 8>(a, m, b, sp, zp, out);
      }
      for (int64_t i = 0; i < mr; ++i) std::copy_n(out + i * kInt4Nr, lanes, a.y + (m + i) * a.ldy + b * kInt4Nr);
      m += mr;
    }
    if (lanes == kInt4Nr) {  // a full block's parameters: 8·groups contiguous elements of each tensor
      params_ok &= params_ok_x8(a.scale + b * kInt4Nr * a.groups, a.zero + b * kInt4Nr * a.groups, kInt4Nr * a.groups);
    }
  }
  return params_ok;
}

}  // namespace
LOWBIT_ISA_END

namespace kernels {
const Int4Kernels& int4_kernels_avx2() {
  static const Int4Kernels table = {"avx2", "f32_qg4w_gemm_4x8__avx2", 4, &f32_qg4w_gemm_4x8__avx2};
  return table;
}
}  // namespace kernels
}  // namespace lowbit
