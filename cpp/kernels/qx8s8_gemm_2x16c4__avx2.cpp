// int8 GEMM, AVX2 path: qu8s8/qs8s8 × 2x16c4 micro-tiles on vpmaddwd (see gemm_int8.h for why
// not vpmaddubsw: its int16 pair sums saturate). Both operands are widened to int16 — weights once
// per call and panel into a per-thread buffer (K·32 bytes, L2-resident, reused by every row tile),
// activations in registers (4 bytes broadcast, then zero/sign-extended) — so the inner loop is
// vpmaddwd + vpaddd fed by plain loads: 16 exact MACs per multiply, the rate of vpmaddubsw +
// vpmaddwd (FBGEMM's acc32) without its saturation.
//
// Accumulators hold two partial sums per channel (k pairs 0-1 and 2-3 of each quad, 4 channels per
// register); vphaddd + vpermq fold them into channel order once per tile.
//
// Blocks of fewer than kWidenMinRows rows (M = 1 GEMV, small LLM batches) skip the widening pass
// and sign-extend the packed bytes in registers (1x16 / 2x16 direct tiles): with few rows per
// weight the pass would mostly add memory traffic to a memory-bound loop.
#include "kernels/simd_int_avx2.h"
#include "kernels/gemm_int8_impl.h"

#include <immintrin.h>

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace gemm_impl {
namespace {

template <GemmAType A>
inline __m256i widen_quad(int32_t quad) {
  const __m128i q = _mm_set1_epi32(quad);
  if constexpr (A == GemmAType::U8) {
    return _mm256_cvtepu8_epi16(q);
  } else {
    return _mm256_cvtepi8_epi16(q);
  }
}

#define LOWBIT_MADD(C, X, W) C = _mm256_add_epi32(C, _mm256_madd_epi16(X, W))
// An empty asm that "modifies" the accumulators after a loop: without it GCC 12 coalesces badly
// around the vphaddd fold and copies every accumulator with vmovdqa on each loop iteration.
#define LOWBIT_REG_BARRIER8(a, b, c, d, e, f, g, h) \
  __asm__("" : "+x"(a), "+x"(b), "+x"(c), "+x"(d), "+x"(e), "+x"(f), "+x"(g), "+x"(h))

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m256i widen16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// [c0 c0' c1 c1' | c2 c2' c3 c3'] and the same for c4..c7 -> [c0 .. c7], partial sums added.
inline __m256i fold_pairs(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}

inline void store_row(__m256i c0, __m256i c1, __m256i c2, __m256i c3, int32_t* out) {
  _mm256_store_si256(reinterpret_cast<__m256i*>(out), fold_pairs(c0, c1));
  _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8), fold_pairs(c2, c3));
}

struct Avx2Tile2x16 {
  using VI = simd::VecI32Avx2;
  static constexpr int64_t kMr = 2;
  static constexpr int kPanels = 1;
  static int64_t scratch_elems(int64_t k) { return kernels::gemm_num_quads(k) * kGemmNr * kGemmKc; }

  // Widens one panel to int16 in full-quad form: scratch[q][c][j] = W[16p + c][4q + j], the tail
  // quad zero padded.
  static const void* prepare(const GemmInt8Args& args, int64_t p, int, int16_t* scratch) {
    const int8_t* panel = args.packed + p * kernels::gemm_panel_bytes(args.k);
    const int64_t full = args.k / kGemmKc;
    auto widen_quad_row = [&](const int8_t* src, int64_t q) {
      for (int j = 0; j < 4; ++j) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(scratch + q * 64 + 16 * j), widen16(src + 16 * j));
      }
    };
    for (int64_t q = 0; q < full; ++q) widen_quad_row(panel + q * 64, q);
    if (args.k % kGemmKc != 0) {
      int8_t tail[kGemmNr * kGemmKc];
      kernels::gemm_tail_quad(panel, args.k, tail);
      widen_quad_row(tail, full);
    }
    return scratch;
  }

  template <GemmAType A>
  __attribute__((noinline)) static void tile(const GemmInt8Args& args, int64_t m, int64_t mr, const void* b, int,
                                             int64_t, int32_t* out) {
    const uint8_t* a0 = static_cast<const uint8_t*>(args.a) + m * args.lda;
    const uint8_t* a1 = mr > 1 ? a0 + args.lda : a0;  // a missing row repeats row 0; not stored
    const int16_t* w = static_cast<const int16_t*>(b);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00;
    __m256i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    // Zero-padded rows: the partial quad runs as a whole one against the zero-padded widened tail.
    const int64_t full = args.a_rows_padded ? kernels::gemm_num_quads(args.k) : args.k / kGemmKc;
    const int64_t rest = args.a_rows_padded ? 0 : args.k % kGemmKc;
    // Written out (no lambda): GCC keeps lambda-captured accumulators in registers only through
    // extra vmovdqa copies in the loop.
#define LOWBIT_WIDE_STEP(X0, X1, WQ)                                 \
  do {                                                               \
    __m256i wj = load256(WQ);                                        \
    LOWBIT_MADD(c00, X0, wj);                                        \
    LOWBIT_MADD(c10, X1, wj);                                        \
    wj = load256((WQ) + 16);                                         \
    LOWBIT_MADD(c01, X0, wj);                                        \
    LOWBIT_MADD(c11, X1, wj);                                        \
    wj = load256((WQ) + 32);                                         \
    LOWBIT_MADD(c02, X0, wj);                                        \
    LOWBIT_MADD(c12, X1, wj);                                        \
    wj = load256((WQ) + 48);                                         \
    LOWBIT_MADD(c03, X0, wj);                                        \
    LOWBIT_MADD(c13, X1, wj);                                        \
  } while (0)
    for (int64_t q = 0; q < full; ++q) {
      const __m256i x0 = widen_quad<A>(load_quad(a0 + 4 * q)), x1 = widen_quad<A>(load_quad(a1 + 4 * q));
      LOWBIT_WIDE_STEP(x0, x1, w + 64 * q);
    }
#undef LOWBIT_WIDE_STEP
    LOWBIT_REG_BARRIER8(c00, c01, c02, c03, c10, c11, c12, c13);
    store_row(c00, c01, c02, c03, out);
    store_row(c10, c11, c12, c13, out + kGemmNr);
    if (rest != 0) add_tail_quad<A>(args, m, mr, w + 64 * full, out, kGemmNr);
  }
};

// Reads the packed bytes and sign-extends them in registers (no widening pass): for blocks of few
// rows, where the pass would cost more than it saves.
inline constexpr int64_t kPrefetchBytes = 1024;

template <int MR>
struct Avx2TileDirect {
  static_assert(MR == 1 || MR == 2);
  using VI = simd::VecI32Avx2;
  static constexpr int64_t kMr = MR;
  static constexpr int kPanels = 1;
  static int64_t scratch_elems(int64_t) { return 0; }
  static const void* prepare(const GemmInt8Args& args, int64_t p, int, int16_t*) {
    return args.packed + p * kernels::gemm_panel_bytes(args.k);
  }

  template <GemmAType A>
  __attribute__((noinline)) static void tile(const GemmInt8Args& args, int64_t m, int64_t mr, const void* b, int,
                                             int64_t, int32_t* out) {
    const uint8_t* a0 = static_cast<const uint8_t*>(args.a) + m * args.lda;
    const uint8_t* a1 = mr > 1 ? a0 + args.lda : a0;
    const int8_t* w = static_cast<const int8_t*>(b);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00;
    __m256i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    const int64_t full = args.k / kGemmKc, rest = args.k % kGemmKc;
#define LOWBIT_DIRECT_STEP(X0, X1, WQ)                               \
  do {                                                               \
    __m256i wj = widen16(WQ);                                        \
    LOWBIT_MADD(c00, X0, wj);                                        \
    if constexpr (MR == 2) LOWBIT_MADD(c10, X1, wj);                 \
    wj = widen16((WQ) + 16);                                         \
    LOWBIT_MADD(c01, X0, wj);                                        \
    if constexpr (MR == 2) LOWBIT_MADD(c11, X1, wj);                 \
    wj = widen16((WQ) + 32);                                         \
    LOWBIT_MADD(c02, X0, wj);                                        \
    if constexpr (MR == 2) LOWBIT_MADD(c12, X1, wj);                 \
    wj = widen16((WQ) + 48);                                         \
    LOWBIT_MADD(c03, X0, wj);                                        \
    if constexpr (MR == 2) LOWBIT_MADD(c13, X1, wj);                 \
  } while (0)
    for (int64_t q = 0; q < full; ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(w + 64 * q + kPrefetchBytes), _MM_HINT_T0);
      const __m256i x0 = widen_quad<A>(load_quad(a0 + 4 * q));
      const __m256i x1 = MR == 2 ? widen_quad<A>(load_quad(a1 + 4 * q)) : x0;
      LOWBIT_DIRECT_STEP(x0, x1, w + 64 * q);
    }
#undef LOWBIT_DIRECT_STEP
    LOWBIT_REG_BARRIER8(c00, c01, c02, c03, c10, c11, c12, c13);
    store_row(c00, c01, c02, c03, out);
    if constexpr (MR == 2) store_row(c10, c11, c12, c13, out + kGemmNr);
    if (rest != 0) {
      int8_t tail[kGemmNr * kGemmKc];
      kernels::gemm_tail_quad(w, args.k, tail);
      add_tail_quad<A>(args, m, mr, tail, out, kGemmNr);
    }
  }
};

// Blocks with at least this many rows widen each weight panel once; smaller ones read it directly.
inline constexpr int64_t kWidenMinRows = 16;

// ---- 7-bit activations: vpmaddubsw, exact by range ------------------------------------------------
//
// When every activation byte of a block is <= 127 (u8 codes of a 7-bit range, PyTorch's
// reduce_range), a vpmaddubsw pair sum is at most 2·127·128 = 32512 in magnitude and cannot
// saturate, so the packed bytes feed vpmaddubsw directly (then vpmaddwd by ones into int32), with
// no widening at all: FBGEMM's acc32 inner loop, made exact by the range check instead of by
// assumption. The driver checks the range of the block's rows (one pass over M·K bytes, small
// next to the M·N·K product); any byte >= 128 sends the block to the widened int16 tiles above.
struct Avx2TileMaddubs7 {
  using VI = simd::VecI32Avx2;
  static constexpr int64_t kMr = 4;
  static constexpr int kPanels = 1;
  // K % 4 != 0: a copy of the panel in full-quad form (the tail quad zero padded), built once per
  // panel instead of a tail quad per tile; room for ceil(K/4) quads of 64 bytes, in int16 units.
  static int64_t scratch_elems(int64_t k) {
    return k % kGemmKc != 0 ? kernels::gemm_num_quads(k) * kGemmNr * kGemmKc / 2 : 0;
  }
  static const void* prepare(const GemmInt8Args& args, int64_t p, int, int16_t* scratch) {
    const int8_t* panel = args.packed + p * kernels::gemm_panel_bytes(args.k);
    if (args.k % kGemmKc == 0) return panel;
    int8_t* copy = reinterpret_cast<int8_t*>(scratch);
    kernels::gemm_panel_full_quads(panel, args.k, copy);
    return copy;
  }

  template <int MR>
  __attribute__((noinline)) static void tile_mr(const GemmInt8Args& args, int64_t m, const int8_t* w, int32_t* out) {
    const uint8_t* a0 = static_cast<const uint8_t*>(args.a) + m * args.lda;
    const int64_t lda = args.lda;
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
    __m256i c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const __m256i ones = _mm256_set1_epi16(1);
    // maddubs pairs (k0,k1) and (k2,k3) of each channel; madd by ones adds them: lane c = channel c.
#define LOWBIT_DOT(C, X, W) C = _mm256_add_epi32(C, _mm256_madd_epi16(_mm256_maddubs_epi16(X, W), ones))
#define LOWBIT_7BIT_STEP(Q0, Q1, Q2, Q3, WQ)                         \
  do {                                                               \
    const __m256i w0 = load256(WQ), w1 = load256((WQ) + 32);         \
    __m256i x = _mm256_set1_epi32(Q0);                               \
    LOWBIT_DOT(c00, x, w0);                                          \
    LOWBIT_DOT(c01, x, w1);                                          \
    if constexpr (MR > 1) {                                          \
      x = _mm256_set1_epi32(Q1);                                     \
      LOWBIT_DOT(c10, x, w0);                                        \
      LOWBIT_DOT(c11, x, w1);                                        \
    }                                                                \
    if constexpr (MR > 2) {                                          \
      x = _mm256_set1_epi32(Q2);                                     \
      LOWBIT_DOT(c20, x, w0);                                        \
      LOWBIT_DOT(c21, x, w1);                                        \
    }                                                                \
    if constexpr (MR > 3) {                                          \
      x = _mm256_set1_epi32(Q3);                                     \
      LOWBIT_DOT(c30, x, w0);                                        \
      LOWBIT_DOT(c31, x, w1);                                        \
    }                                                                \
  } while (0)
    // w is in full-quad form (prepare). Zero-padded rows (a_rows_padded) run the partial quad as
    // a whole one against the zero-padded tail; otherwise the tail is added exactly afterwards.
    const int64_t full = args.a_rows_padded ? kernels::gemm_num_quads(args.k) : args.k / kGemmKc;
    const int64_t rest = args.a_rows_padded ? 0 : args.k % kGemmKc;
    // Rows past MR alias row 0 in the address arithmetic only; they are never loaded.
    const uint8_t* a1 = a0 + (MR > 1 ? lda : 0);
    const uint8_t* a2 = a0 + (MR > 2 ? 2 * lda : 0);
    const uint8_t* a3 = a0 + (MR > 3 ? 3 * lda : 0);
    for (int64_t q = 0; q < full; ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(w + 64 * q + kPrefetchBytes), _MM_HINT_T0);
      LOWBIT_7BIT_STEP(load_quad(a0 + 4 * q), load_quad(a1 + 4 * q), load_quad(a2 + 4 * q), load_quad(a3 + 4 * q),
                       w + 64 * q);
    }
#undef LOWBIT_7BIT_STEP
#undef LOWBIT_DOT
    auto store = [&](__m256i lo, __m256i hi, int i) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + i * kGemmNr), lo);
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + i * kGemmNr + 8), hi);
    };
    store(c00, c01, 0);
    if constexpr (MR > 1) store(c10, c11, 1);
    if constexpr (MR > 2) store(c20, c21, 2);
    if constexpr (MR > 3) store(c30, c31, 3);
    if (rest != 0) add_tail_quad<GemmAType::U8>(args, m, MR, w + 64 * full, out, kGemmNr);
  }

  // Exact-size tiles for the last rows: few-row blocks (LLM decode) waste no multiplies.
  template <GemmAType A>
  static void tile(const GemmInt8Args& args, int64_t m, int64_t mr, const void* b, int, int64_t, int32_t* out) {
    static_assert(A == GemmAType::U8, "7-bit tiles take u8 activations only");
    const int8_t* w = static_cast<const int8_t*>(b);
    switch (mr) {
      case 1: return tile_mr<1>(args, m, w, out);
      case 2: return tile_mr<2>(args, m, w, out);
      case 3: return tile_mr<3>(args, m, w, out);
      default: return tile_mr<4>(args, m, w, out);
    }
  }
};

// True when the n bytes at p are all <= 127.
inline bool bytes_fit_7_bits(const uint8_t* p, int64_t n) {
  __m256i any = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) any = _mm256_or_si256(any, load256(p + i));
  if (_mm256_movemask_epi8(any) != 0) return false;
  uint8_t tail = 0;
  for (; i < n; ++i) tail |= p[i];
  return tail <= 127;
}

// True when rows [m0, m1) of the u8 activations are all <= 127. Rows that follow each other
// without a gap (lda = K, or lda = the zero-padded row length) are checked as one range, so short
// rows (a K = 27 convolution patch) do not each end in a byte loop.
inline bool rows_fit_7_bits(const GemmInt8Args& args, int64_t m0, int64_t m1) {
  const uint8_t* a = static_cast<const uint8_t*>(args.a);
  const int64_t row_bytes = args.a_rows_padded ? kernels::gemm_num_quads(args.k) * kGemmKc : args.k;
  if (args.lda == row_bytes) return bytes_fit_7_bits(a + m0 * args.lda, (m1 - m0) * args.lda);
  for (int64_t r = m0; r < m1; ++r) {
    if (!bytes_fit_7_bits(a + r * args.lda, args.k)) return false;
  }
  return true;
}

template <GemmAType A, GemmEpilogue E>
void avx2_driver(const GemmInt8Args& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  if constexpr (A == GemmAType::U8) {
    if (rows_fit_7_bits(a, m0, m1)) return gemm_block<Avx2TileMaddubs7, A, E>(a, m0, m1, p0, p1);
  }
  if (m1 - m0 == 1) {
    gemm_block<Avx2TileDirect<1>, A, E>(a, m0, m1, p0, p1);
  } else if (m1 - m0 < kWidenMinRows) {
    gemm_block<Avx2TileDirect<2>, A, E>(a, m0, m1, p0, p1);
  } else {
    gemm_block<Avx2Tile2x16, A, E>(a, m0, m1, p0, p1);
  }
}

}  // namespace

LOWBIT_GEMM_INT8_DEFINE(2x16c4__avx2, avx2_driver)

}  // namespace gemm_impl
LOWBIT_ISA_END

namespace kernels {
const GemmInt8Kernels& gemm_int8_kernels_avx2() {
  static const GemmInt8Kernels table = gemm_impl::make_gemm_int8_table_2x16c4__avx2("avx2", 2, 1);
  return table;
}
}  // namespace kernels
}  // namespace lowbit
