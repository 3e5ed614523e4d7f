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

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m256i widen16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// [c0 c0' c1 c1' | c2 c2' c3 c3'] and the same for c4..c7 -> [c0 .. c7], partial sums added.
inline __m256i fold_pairs(__m256i lo, __m256i hi) {
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
}

template <int MR>
inline void store_tile(__m256i (&acc)[MR][4], int32_t* out) {
  for (int i = 0; i < MR; ++i) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + i * kGemmNr), fold_pairs(acc[i][0], acc[i][1]));
    _mm256_store_si256(reinterpret_cast<__m256i*>(out + i * kGemmNr + 8), fold_pairs(acc[i][2], acc[i][3]));
  }
}

struct Avx2Tile2x16 {
  using VI = simd::VecI32Avx2;
  static constexpr int64_t kMr = 2;
  static constexpr int kPanels = 1;
  static int64_t scratch_elems(int64_t quads) { return quads * kGemmNr * kGemmKc; }

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
  static void tile(const GemmInt8Args& args, int64_t m, int64_t mr, const void* b, int, int64_t, int32_t* out) {
    const uint8_t* a0 = static_cast<const uint8_t*>(args.a) + m * args.lda;
    const uint8_t* a1 = mr > 1 ? a0 + args.lda : a0;  // a missing row repeats row 0; not stored
    const int16_t* w = static_cast<const int16_t*>(b);
    __m256i acc[2][4];
    for (auto& row : acc) {
      for (auto& v : row) v = _mm256_setzero_si256();
    }
    const int64_t full = args.k / kGemmKc, rest = args.k % kGemmKc;
    auto step = [&](int32_t q0, int32_t q1, const int16_t* wq) {
      const __m256i x0 = widen_quad<A>(q0), x1 = widen_quad<A>(q1);
      for (int j = 0; j < 4; ++j) {
        const __m256i wj = load256(wq + 16 * j);
        acc[0][j] = _mm256_add_epi32(acc[0][j], _mm256_madd_epi16(x0, wj));
        acc[1][j] = _mm256_add_epi32(acc[1][j], _mm256_madd_epi16(x1, wj));
      }
    };
    for (int64_t q = 0; q < full; ++q) step(load_quad(a0 + 4 * q), load_quad(a1 + 4 * q), w + 64 * q);
    if (rest != 0) {
      step(load_partial_quad(a0 + 4 * full, rest), load_partial_quad(a1 + 4 * full, rest), w + 64 * full);
    }
    store_tile<2>(acc, out);
  }
};

// Reads the packed bytes and sign-extends them in registers (no widening pass): for blocks of few
// rows, where the pass would cost more than it saves.
inline constexpr int64_t kPrefetchBytes = 1024;

template <int MR>
struct Avx2TileDirect {
  using VI = simd::VecI32Avx2;
  static constexpr int64_t kMr = MR;
  static constexpr int kPanels = 1;
  static int64_t scratch_elems(int64_t) { return 0; }
  static const void* prepare(const GemmInt8Args& args, int64_t p, int, int16_t*) {
    return args.packed + p * kernels::gemm_panel_bytes(args.k);
  }

  template <GemmAType A>
  static void tile(const GemmInt8Args& args, int64_t m, int64_t mr, const void* b, int, int64_t, int32_t* out) {
    const uint8_t* rows[MR];
    for (int i = 0; i < MR; ++i) {
      rows[i] = static_cast<const uint8_t*>(args.a) + (m + std::min<int64_t>(i, mr - 1)) * args.lda;
    }
    const int8_t* w = static_cast<const int8_t*>(b);
    __m256i acc[MR][4];
    for (auto& row : acc) {
      for (auto& v : row) v = _mm256_setzero_si256();
    }
    const int64_t full = args.k / kGemmKc, rest = args.k % kGemmKc;
    auto step = [&](const int32_t (&quad)[MR], const int8_t* wq) {
      __m256i x[MR];
      for (int i = 0; i < MR; ++i) x[i] = widen_quad<A>(quad[i]);
      for (int j = 0; j < 4; ++j) {
        const __m256i wj = widen16(wq + 16 * j);
        for (int i = 0; i < MR; ++i) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(x[i], wj));
      }
    };
    int32_t quad[MR];
    for (int64_t q = 0; q < full; ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(w + 64 * q + kPrefetchBytes), _MM_HINT_T0);
      for (int i = 0; i < MR; ++i) quad[i] = load_quad(rows[i] + 4 * q);
      step(quad, w + 64 * q);
    }
    if (rest != 0) {
      int8_t tail[kGemmNr * kGemmKc];
      kernels::gemm_tail_quad(w, args.k, tail);
      for (int i = 0; i < MR; ++i) quad[i] = load_partial_quad(rows[i] + 4 * full, rest);
      step(quad, tail);
    }
    store_tile<MR>(acc, out);
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
  static int64_t scratch_elems(int64_t) { return 0; }
  static const void* prepare(const GemmInt8Args& args, int64_t p, int, int16_t*) {
    return args.packed + p * kernels::gemm_panel_bytes(args.k);
  }

  template <int MR>
  static void tile_mr(const GemmInt8Args& args, int64_t m, const int8_t* w, int32_t* out) {
    const uint8_t* rows[MR];
    for (int i = 0; i < MR; ++i) rows[i] = static_cast<const uint8_t*>(args.a) + (m + i) * args.lda;
    __m256i acc[MR][2];
    for (auto& row : acc) {
      for (auto& v : row) v = _mm256_setzero_si256();
    }
    const __m256i ones = _mm256_set1_epi16(1);
    // maddubs pairs (k0,k1) and (k2,k3) of each channel; madd by ones adds them: lane c = channel c.
    auto step = [&](const int32_t (&quad)[MR], const int8_t* wq) {
      const __m256i w0 = load256(wq), w1 = load256(wq + 32);
      for (int i = 0; i < MR; ++i) {
        const __m256i x = _mm256_set1_epi32(quad[i]);
        acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w0), ones));
        acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w1), ones));
      }
    };
    const int64_t full = args.k / kGemmKc, rest = args.k % kGemmKc;
    int32_t quad[MR];
    for (int64_t q = 0; q < full; ++q) {
      _mm_prefetch(reinterpret_cast<const char*>(w + 64 * q + kPrefetchBytes), _MM_HINT_T0);
      for (int i = 0; i < MR; ++i) quad[i] = load_quad(rows[i] + 4 * q);
      step(quad, w + 64 * q);
    }
    if (rest != 0) {
      int8_t tail[kGemmNr * kGemmKc];
      kernels::gemm_tail_quad(w, args.k, tail);
      for (int i = 0; i < MR; ++i) quad[i] = load_partial_quad(rows[i] + 4 * full, rest);
      step(quad, tail);
    }
    for (int i = 0; i < MR; ++i) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + i * kGemmNr), acc[i][0]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + i * kGemmNr + 8), acc[i][1]);
    }
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

// True when rows [m0, m1) of the u8 activations are all <= 127.
inline bool rows_fit_7_bits(const GemmInt8Args& args, int64_t m0, int64_t m1) {
  const uint8_t* a = static_cast<const uint8_t*>(args.a);
  for (int64_t r = m0; r < m1; ++r) {
    const uint8_t* row = a + r * args.lda;
    __m256i any = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 32 <= args.k; i += 32) any = _mm256_or_si256(any, load256(row + i));
    if (_mm256_movemask_epi8(any) != 0) return false;
    for (; i < args.k; ++i) {
      if (row[i] > 127) return false;
    }
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
