// int4 weight-only GEMM, AVX2 + FMA. Layout and arithmetic contract in int4_weight.h.
//
// Per 8-k tile one 32-byte weight load (8 channels × 8 k). Nibble i of the 8 words is column
// k = 8t + i of the block's 8 channels, so each extraction gives a vector of 8 channels that one
// vfmadd multiplies by x[8t + i] broadcast, into the contract's chain i (k % 8 = i). The eight
// chains are eight vectors of channels: the lane tree at the end of a group is 7 vertical vaddps,
// and the group step reads the block's scale and zero point as two vectors (int4_pack_params).
//
// The broadcast activations come from a per-thread buffer xb[row][k][8] that holds
// x[row][k]·(the variant's factor for chain k % 8), built once per K chunk and read by every
// channel block as an FMA memory operand (a vbroadcastss per FMA measured ~15% slower on Zen 1).
// The buffer holds kXbFloats floats (more only when a single group of one row needs it): rows × K
// are cut into chunks that fit in L2, and the running totals of a chunk's groups are carried to
// the next chunk in y itself, so the kernel's memory does not grow with N or M.
//
// Extraction variants (int4_weight.h proves each bit-identical to the scalar reference under the
// conditions the op checks): "subnormal" = one vpand per 8 weights and no conversion at all (the
// default for ordinary activations on CPUs that take subnormal operands at full speed);
// "cvt16" = vpand + vcvtdq2ps; "shift" = vpsrld + vpand + vcvtdq2ps (NaN/Inf/subnormal/
// |x| >= 2^64). On Zen 1 vcvtdq2ps ymm issues once per 2 cycles, which made it the bottleneck of
// the first kernel (and+cvt+fma ≈ 3 cycles per 8 weights against and+fma ≈ 1.25).
//
// Micro-tiles (rows × channel blocks × chains per pass over a group's weights), chosen by the rows
// left; 8 accumulators each, so everything stays in the 16 ymm registers:
//   1 × 1 × 8 (GEMV, LLM decode): the 8 chains of one block, the activation an FMA memory operand;
//   4 × 2 × 1, 2 × 2 × 2, 1 × 2 × 4 (two or more rows): each extraction is shared by the rows and
//   each activation load by two blocks (a last odd block takes 4 × 1 × 2, 2 × 1 × 4, 1 × 1 × 8).
//   The group's weights (G/2 bytes per channel) and activations stay in L1 across the passes.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

#include "core/isa_namespace.h"
#include "kernels/int4_weight.h"

#if !defined(__AVX2__) || !defined(__FMA__)
#error "f32_qg4w_gemm_4x8__avx2.cpp needs -mavx2 -mfma"
#endif

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

using kernels::Int4Variant;

// Broadcast-activation buffer per thread: 128 KB, inside every x86 core's L2.
constexpr int64_t kXbFloats = int64_t{1} << 15;
// Rows from which two channel blocks share each activation load. At one row the 1 × 8 tile (the
// activation as the FMA's memory operand, 8 chains in registers) is faster: 1.45 against 1.62 ms
// for 4096 x 4096 on Zen 1, one thread; at 8 and 32 rows two blocks take 8.6 and 34.1 ms against
// 10.3 and 42.9 for one.
constexpr int64_t kTwoBlockRows = 2;

// How nibble I of the 8 words becomes 8 floats (int4_weight.h, "Nibble extraction"):
//   kShift:     q                      vpsrld + vpand + vcvtdq2ps (any activations)
//   kCvt16:     q·16^I                 vpand + vcvtdq2ps (I = 7: vpsrld)
//   kSubnormal: q·2^(kSubShift[I]-149) the masked bits themselves: one vpand (I = 6: vpsrld +
//               vpand, I = 7: vpsrld). No FP-pipe uop at all.
template <Int4Variant V, int I>
inline __m256 nibble_as_float(__m256i w) {
  if constexpr (V == Int4Variant::kSubnormal) {
    static_assert(kernels::kInt4SubShift[I] == (I < 6 ? 4 * I : I == 6 ? 20 : 0));
    if constexpr (I == 7) return _mm256_castsi256_ps(_mm256_srli_epi32(w, 28));
    if constexpr (I == 6) return _mm256_castsi256_ps(_mm256_and_si256(_mm256_srli_epi32(w, 4), _mm256_set1_epi32(0xF << 20)));
    return _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(0xF << (4 * I))));
  } else if constexpr (I == 7) {
    return _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 28));
  } else if constexpr (V == Int4Variant::kCvt16) {
    return _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(0xF << (4 * I))));
  } else {
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(w, 4 * I), _mm256_set1_epi32(0xF)));
  }
}

// The activation factor of chain i, as 8 lanes i = 0..7, that undoes nibble_as_float's power of
// two: 2^-4i for kCvt16 (chain 7 is extracted unscaled), 2^-s_i for kSubnormal (the row's 2^(125 -
// e_max) is applied separately), 1 for kShift.
template <Int4Variant V>
inline __m256 chain_factors() {
  if constexpr (V == Int4Variant::kSubnormal) {
    return _mm256_setr_ps(1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-20f, 1.0f);
  } else if constexpr (V == Int4Variant::kCvt16) {
    return _mm256_setr_ps(1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 0x1p-16f, 0x1p-20f, 0x1p-24f, 1.0f);
  } else {
    return _mm256_set1_ps(1.0f);
  }
}

// xb[kk][8] = x[kk]·factor(kk % 8) broadcast, for kk in [0, count) (count % 8 == 0). Every product
// is exact (int4_weight.h): for kSubnormal the row factor 2^(125 - e_max) (up to 2^225) is applied
// as two normal powers of two, each product staying normal.
template <Int4Variant V>
void build_broadcast_row(const float* x, int64_t count, int row_exp, float* xb) {
  __m256 f1 = _mm256_set1_ps(1.0f), f2 = chain_factors<V>();
  if constexpr (V == Int4Variant::kSubnormal) {
    const int e = 125 - row_exp, e1 = e / 2;
    f1 = _mm256_set1_ps(std::ldexp(1.0f, e1));
    f2 = _mm256_mul_ps(f2, _mm256_set1_ps(std::ldexp(1.0f, e - e1)));  // 2^(e - e1 - s_i): normal, exact
  }
  for (int64_t t = 0; t < count; t += kInt4Kb) {
    alignas(32) float v[kInt4Kb];
    _mm256_store_ps(v, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + t), f1), f2));
    for (int i = 0; i < kInt4Kb; ++i) _mm256_store_ps(xb + (t + i) * kInt4Nr, _mm256_broadcast_ss(v + i));
  }
}

// The FMA chains [C0, C0 + C) of rows [0, MR) × channel blocks [0, NB) over the `tiles` tiles of
// one group; chain[r][nb][C0 + c] receives chain C0 + c of row r and block nb (a vector of the
// block's 8 channels). w: the first block's group weights, the next block block_words further.
template <int MR, int NB, int C, int C0, Int4Variant V>
__attribute__((always_inline)) inline void group_chains(const uint32_t* w, int64_t block_words, int64_t tiles,
                                                        const float* xb, int64_t ldxb,
                                                        __m256 (&chain)[MR][NB][kInt4Kb]) {
  static_assert(C == 1 || C == 2 || C == 4 || C == 8);
  __m256 acc[MR][NB][C];
  for (int r = 0; r < MR; ++r) {
    for (int nb = 0; nb < NB; ++nb) {
      for (int c = 0; c < C; ++c) acc[r][nb][c] = _mm256_setzero_ps();
    }
  }
  for (int64_t t = 0; t < tiles; ++t) {
    // No software prefetch: with this layout one 1, 2 or 4 KB ahead measured no gain at M = 1 and
    // 10% slower at M = 8 (where the passes re-read the group's weights from L1).
    __m256i wt[NB];
    for (int nb = 0; nb < NB; ++nb) {
      wt[nb] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + nb * block_words + t * kInt4Nr));
    }
    const float* xt = xb + t * kInt4Kb * kInt4Nr;
    [&]<int... c>(std::integer_sequence<int, c...>) {
      (
          [&] {
            if constexpr (NB == 1) {  // the activation as the FMA's memory operand
              const __m256 v = nibble_as_float<V, C0 + c>(wt[0]);
              for (int r = 0; r < MR; ++r) {
                acc[r][0][c] = _mm256_fmadd_ps(v, _mm256_load_ps(xt + r * ldxb + (C0 + c) * kInt4Nr), acc[r][0][c]);
              }
            } else {  // one activation load serves NB blocks
              __m256 v[NB];
              for (int nb = 0; nb < NB; ++nb) v[nb] = nibble_as_float<V, C0 + c>(wt[nb]);
              for (int r = 0; r < MR; ++r) {
                __m256 xv = _mm256_load_ps(xt + r * ldxb + (C0 + c) * kInt4Nr);
                // Keep the activation in a register: GCC 12 otherwise folds the load into each
                // FMA as a memory operand again (NB loads instead of one; 10% slower at M = 32).
                asm("" : "+x"(xv));
                for (int nb = 0; nb < NB; ++nb) acc[r][nb][c] = _mm256_fmadd_ps(v[nb], xv, acc[r][nb][c]);
              }
            }
          }(),
          ...);
    }(std::make_integer_sequence<int, C>{});
  }
  for (int r = 0; r < MR; ++r) {
    for (int nb = 0; nb < NB; ++nb) {
      for (int c = 0; c < C; ++c) chain[r][nb][C0 + c] = acc[r][nb][c];
    }
  }
}

// Rows [m, m + MR) of channel blocks [b, b + NB) over groups [g0, g1): total_io[r·ld_row + nb·8]
// carries the running sums of row m + r, block b + nb in and out. xb: row m's broadcast
// activations from k = g0·G on, rows ldxb floats apart.
template <int MR, int NB, int C, Int4Variant V>
__attribute__((noinline)) void tile(const Int4LinearArgs& a, int64_t m, int64_t b, int64_t g0, int64_t g1,
                                    const float* xb, int64_t ldxb, float* total_io, int64_t ld_row) {
  const int64_t tiles = a.k / kInt4Kb, group_tiles = tiles / a.groups, group = a.k / a.groups;
  const int64_t block_words = tiles * kInt4Nr;
  const uint32_t* block = a.packed + b * block_words;
  const float* params = a.params + b * a.groups * 2 * kInt4Nr;
  __m256 unscale[MR], total[MR][NB];
  for (int i = 0; i < MR; ++i) {
    unscale[i] = _mm256_set1_ps(V == Int4Variant::kSubnormal ? a.row_unscale[m + i] : 1.0f);
    for (int nb = 0; nb < NB; ++nb) total[i][nb] = _mm256_loadu_ps(total_io + i * ld_row + nb * kInt4Nr);
  }
  for (int64_t g = g0; g < g1; ++g) {
    __m256 chain[MR][NB][kInt4Kb];
    const uint32_t* wg = block + g * group_tiles * kInt4Nr;
    const float* xg = xb + (g - g0) * group * kInt4Nr;
    [&]<int... p>(std::integer_sequence<int, p...>) {
      (group_chains<MR, NB, C, p * C, V>(wg, block_words, group_tiles, xg, ldxb, chain), ...);
    }(std::make_integer_sequence<int, kInt4Kb / C>{});
    for (int nb = 0; nb < NB; ++nb) {
      const float* pg = params + (nb * a.groups + g) * 2 * kInt4Nr;
      const __m256 s = _mm256_loadu_ps(pg), z = _mm256_loadu_ps(pg + kInt4Nr);
      for (int i = 0; i < MR; ++i) {
        const __m256* c = chain[i][nb];
        __m256 r = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c[0], c[1]), _mm256_add_ps(c[2], c[3])),
                                 _mm256_add_ps(_mm256_add_ps(c[4], c[5]), _mm256_add_ps(c[6], c[7])));
        if constexpr (V == Int4Variant::kSubnormal) r = _mm256_mul_ps(r, unscale[i]);  // exact (int4_weight.h)
        const __m256 xs = _mm256_broadcast_ss(a.xsum + (m + i) * a.groups + g);
        total[i][nb] = _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, xs, r), total[i][nb]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int nb = 0; nb < NB; ++nb) _mm256_storeu_ps(total_io + i * ld_row + nb * kInt4Nr, total[i][nb]);
  }
}

// The micro-tiles (MR × NB × C = 8 accumulators): kTiles<V>[NB - 1][row class], row classes
// kTileRows = 4, 2, 1 rows.
using TileFn = void (*)(const Int4LinearArgs&, int64_t, int64_t, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t);
constexpr int64_t kTileRows[3] = {4, 2, 1};
template <Int4Variant V>
constexpr TileFn kTiles[2][3] = {{&tile<4, 1, 2, V>, &tile<2, 1, 4, V>, &tile<1, 1, 8, V>},
                                 {&tile<4, 2, 1, V>, &tile<2, 2, 2, V>, &tile<1, 2, 4, V>}};

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

// The per-thread broadcast-activation buffer, at least `count` floats (kXbFloats unless one group
// of one row needs more: group > kXbFloats / 8), 64-byte aligned, kept between calls: at 128 KB a
// fresh allocation per call is an mmap plus 32 page faults (~15 us, 2% of a 4096 x 4096 GEMV).
float* thread_xb(int64_t count) {
  thread_local std::unique_ptr<float, AlignedFree> buffer;
  thread_local int64_t capacity = 0;
  if (capacity < count) {
    const size_t bytes = (static_cast<size_t>(count) * sizeof(float) + 63) / 64 * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) throw std::bad_alloc();
    buffer.reset(p);
    capacity = count;
  }
  return buffer.get();
}

// Rows [rc, rc + rows) × channel blocks [b0, b1) over groups [g0, g1), stepping two blocks at a
// time where the rows allow; totals[r·ld_row + (b - b0)·8] holds the running sums of block b.
template <Int4Variant V>
void block_range(const Int4LinearArgs& a, int64_t rc, int64_t rows, int64_t b0, int64_t b1, int64_t g0, int64_t g1,
                 const float* xb, int64_t ldxb, float* totals, int64_t ld_row) {
  for (int64_t b = b0; b < b1;) {
    // Two blocks at a time where the rows are several: one activation load then feeds two FMAs.
    const int64_t nb = rows >= kTwoBlockRows && b + 1 < b1 ? 2 : 1;
    for (int64_t r = 0; r < rows;) {
      const int64_t left = rows - r;
      const int row_class = left >= 4 ? 0 : left >= 2 ? 1 : 2;
      kTiles<V>[nb - 1][row_class](a, rc + r, b, g0, g1, xb + r * ldxb, ldxb, totals + r * ld_row + (b - b0) * kInt4Nr,
                                   ld_row);
      r += kTileRows[row_class];
    }
    b += nb;
  }
}

template <Int4Variant V>
void run(const Int4LinearArgs& a, int64_t m0, int64_t m1, int64_t b0, int64_t b1) {
  const int64_t group = a.k / a.groups, rows_total = m1 - m0;
  // Rows per chunk: as many as fit with one group each; then as many groups as fit for those rows.
  const int64_t chunk_rows = std::clamp<int64_t>(kXbFloats / (kInt4Nr * group), 1, rows_total);
  const int64_t chunk_groups = std::clamp<int64_t>(kXbFloats / (kInt4Nr * group * chunk_rows), 1, a.groups);
  const int64_t ldxb = chunk_groups * group * kInt4Nr;
  float* const xb = thread_xb(std::max(kXbFloats, chunk_rows * ldxb));
  // The running totals of whole blocks live in y itself (exact: a float stored and reloaded); a
  // partial last block (N % 8 != 0) keeps its 8 lanes in `partial`.
  const int64_t whole_end = std::min(b1, a.n / kInt4Nr);
  const bool has_partial = whole_end < b1;
  std::unique_ptr<float[]> partial(has_partial ? new float[static_cast<size_t>(chunk_rows * kInt4Nr)] : nullptr);
  for (int64_t rc = m0; rc < m1; rc += chunk_rows) {
    const int64_t rows = std::min(chunk_rows, m1 - rc);
    float* const y_chunk = a.y + rc * a.ldy + b0 * kInt4Nr;
    for (int64_t r = 0; r < rows; ++r) std::fill_n(y_chunk + r * a.ldy, (whole_end - b0) * kInt4Nr, 0.0f);
    if (has_partial) std::fill_n(partial.get(), rows * kInt4Nr, 0.0f);
    for (int64_t g0 = 0; g0 < a.groups; g0 += chunk_groups) {
      const int64_t g1 = std::min(a.groups, g0 + chunk_groups);
      for (int64_t r = 0; r < rows; ++r) {
        build_broadcast_row<V>(a.x + (rc + r) * a.k + g0 * group, (g1 - g0) * group,
                               a.row_exp != nullptr ? a.row_exp[rc + r] : 0, xb + r * ldxb);
      }
      block_range<V>(a, rc, rows, b0, whole_end, g0, g1, xb, ldxb, y_chunk, a.ldy);
      if (has_partial) block_range<V>(a, rc, rows, whole_end, b1, g0, g1, xb, ldxb, partial.get(), kInt4Nr);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float* y = y_chunk + r * a.ldy;
      if (a.bias != nullptr) {
        for (int64_t n = 0; n < (whole_end - b0) * kInt4Nr; ++n) y[n] += a.bias[b0 * kInt4Nr + n];
      }
      if (has_partial) {
        for (int64_t l = 0; l < a.n - whole_end * kInt4Nr; ++l) {
          const int64_t n = whole_end * kInt4Nr + l;
          a.y[(rc + r) * a.ldy + n] = a.bias != nullptr ? partial[r * kInt4Nr + l] + a.bias[n] : partial[r * kInt4Nr + l];
        }
      }
    }
  }
}

void f32_qg4w_gemm_4x8__avx2(const Int4LinearArgs& a, int64_t m0, int64_t m1, int64_t b0, int64_t b1) {
  if (m1 <= m0 || b1 <= b0) return;
  switch (a.variant) {
    case Int4Variant::kSubnormal: {
      // Denormals-are-zero (MXCSR bit 6, per thread) would read the subnormal weight operands as
      // zero: run with it cleared and give the caller its MXCSR back.
      const unsigned csr = _mm_getcsr();
      if ((csr & 0x40u) != 0) _mm_setcsr(csr & ~0x40u);
      run<Int4Variant::kSubnormal>(a, m0, m1, b0, b1);
      if ((csr & 0x40u) != 0) _mm_setcsr(csr);
      break;
    }
    case Int4Variant::kCvt16:
      run<Int4Variant::kCvt16>(a, m0, m1, b0, b1);
      break;
    case Int4Variant::kShift:
      run<Int4Variant::kShift>(a, m0, m1, b0, b1);
      break;
  }
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
