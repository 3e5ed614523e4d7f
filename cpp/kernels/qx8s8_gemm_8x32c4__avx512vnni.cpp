// int8 GEMM, AVX-512 VNNI path: qu8s8/qs8s8 × 8x32c4 micro-tiles on vpdpbusd, which multiplies
// 4 u8 activations by 4 s8 weights per int32 lane and adds them exactly, wrapping (never
// saturating) on accumulation. The packed panel row for one quad (16 channels × 4 k = 64 bytes)
// is exactly its weight operand, so weights are read straight from the packed buffer; the 4
// activation bytes are broadcast to every lane. s8 activations take the +128 offset (a ^ 0x80 is
// a + 128 as u8) and the tile subtracts 128·colsum[n] before the epilogue.
//
// Structure parallel to qx8s8_gemm_2x16c4__avx2.cpp: same driver, same epilogue (over
// VecI32Avx512), same partial-quad handling. This CPU-specific file cannot be exercised on CPUs
// without AVX512-VNNI; tests/test_int8_gemm.py runs it against the scalar path where available.
#include "kernels/simd_int_avx512.h"
#include "kernels/gemm_int8_impl.h"

#include <immintrin.h>

#if !defined(__AVX512VNNI__)
#error "qx8s8_gemm_8x32c4__avx512vnni.cpp needs -mavx512vnni"
#endif

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace gemm_impl {
namespace {

struct Avx512VnniTile8x32 {
  using VI = simd::VecI32Avx512;
  static constexpr int64_t kMr = 8;
  static constexpr int kPanels = 2;
  // K % 4 != 0: the panels are copied to full-quad form (the tail quad zero padded) once per panel
  // group, so a tile never rebuilds the tail and zero-padded rows run it as a whole quad.
  static int64_t scratch_elems(int64_t k) {
    return k % kGemmKc != 0 ? kPanels * kernels::gemm_num_quads(k) * kGemmNr * kGemmKc / 2 : 0;
  }
  // Bytes from one panel to the next in what prepare returns.
  static int64_t panel_stride(int64_t k) {
    return k % kGemmKc != 0 ? kernels::gemm_num_quads(k) * kGemmNr * kGemmKc : kernels::gemm_panel_bytes(k);
  }
  static const void* prepare(const GemmInt8Args& args, int64_t p, int np, int16_t* scratch) {
    const int8_t* panels = args.packed + p * kernels::gemm_panel_bytes(args.k);
    if (args.k % kGemmKc == 0) return panels;
    int8_t* copy = reinterpret_cast<int8_t*>(scratch);
    for (int pp = 0; pp < np; ++pp) {
      kernels::gemm_panel_full_quads(panels + pp * kernels::gemm_panel_bytes(args.k), args.k,
                                     copy + pp * panel_stride(args.k));
    }
    return copy;
  }

  // MR rows (<= kMr) x NP panels. Few-row blocks (LLM decode, M = 1..7) take the smallest MR that
  // holds them instead of repeating rows up to 8: at M = 1 a full tile would run 8x the multiplies.
  template <GemmAType A, int NP, int MR>
  static void tile_np(const GemmInt8Args& args, int64_t m, int64_t mr, const int8_t* w, int64_t p, int32_t* out) {
    static_assert(MR >= 1 && MR <= kMr);
    const int64_t stride = panel_stride(args.k);
    const uint8_t* rows[MR];
    for (int64_t i = 0; i < MR; ++i) {
      // A missing row (mr < MR) repeats the last real one; its results are not read.
      rows[i] = static_cast<const uint8_t*>(args.a) + (m + std::min<int64_t>(i, mr - 1)) * args.lda;
    }
    __m512i acc[MR][NP];
    for (auto& row : acc) {
      for (auto& v : row) v = _mm512_setzero_si512();
    }
    const __m512i offset = _mm512_set1_epi32(static_cast<int32_t>(0x80808080u));
    // Zero-padded rows run the tail quad as a whole one: zero codes (128 after the s8 offset) times
    // its zero-padded weights add 0, and the colsum correction covers the real K only.
    const int64_t full = args.a_rows_padded ? kernels::gemm_num_quads(args.k) : args.k / kGemmKc;
    const int64_t rest = args.a_rows_padded ? 0 : args.k % kGemmKc;
    // Quads loaded first and the step as a lambda: written as one nested loop, GCC 12 keeps the
    // one-panel accumulators in memory (a store and reload per vpdpbusd).
    auto step = [&](const int32_t (&quad)[MR], const int8_t* const (&wrow)[NP]) {
      __m512i wq[NP];
      for (int pp = 0; pp < NP; ++pp) wq[pp] = _mm512_loadu_si512(wrow[pp]);
      for (int i = 0; i < MR; ++i) {
        __m512i x = _mm512_set1_epi32(quad[i]);
        if constexpr (A == GemmAType::S8) x = _mm512_xor_si512(x, offset);
        for (int pp = 0; pp < NP; ++pp) acc[i][pp] = _mm512_dpbusd_epi32(acc[i][pp], x, wq[pp]);
      }
    };
    int32_t quad[MR];
    const int8_t* wrow[NP];
    for (int64_t q = 0; q < full; ++q) {
      for (int i = 0; i < MR; ++i) quad[i] = load_quad(rows[i] + 4 * q);
      for (int pp = 0; pp < NP; ++pp) wrow[pp] = w + pp * stride + q * 64;
      step(quad, wrow);
    }
    for (int pp = 0; pp < NP; ++pp) {
      __m512i correction = _mm512_setzero_si512();
      if constexpr (A == GemmAType::S8) {
        correction = _mm512_slli_epi32(_mm512_loadu_si512(args.col_sums + (p + pp) * kGemmNr), 7);
      }
      for (int i = 0; i < MR; ++i) {
        _mm512_store_si512(out + i * kPanels * kGemmNr + pp * kGemmNr, _mm512_sub_epi32(acc[i][pp], correction));
      }
    }
    if (rest != 0) {
      // The offset correction above covers all K (colsum), so the tail runs on a + 128 too.
      for (int pp = 0; pp < NP; ++pp) {
        add_tail_quad<A, /*kOffsetS8=*/true>(args, m, mr, w + pp * stride + full * 64, out + pp * kGemmNr,
                                             kPanels * kGemmNr);
      }
    }
  }

  template <GemmAType A, int NP>
  static void tile_rows(const GemmInt8Args& args, int64_t m, int64_t mr, const int8_t* w, int64_t p, int32_t* out) {
    switch (mr) {
      case 1: return tile_np<A, NP, 1>(args, m, mr, w, p, out);
      case 2: return tile_np<A, NP, 2>(args, m, mr, w, p, out);
      case 3:
      case 4: return tile_np<A, NP, 4>(args, m, mr, w, p, out);
      default: return tile_np<A, NP, kMr>(args, m, mr, w, p, out);
    }
  }

  template <GemmAType A>
  static void tile(const GemmInt8Args& args, int64_t m, int64_t mr, const void* b, int np, int64_t p, int32_t* out) {
    const int8_t* w = static_cast<const int8_t*>(b);
    if (np == 2) {
      tile_rows<A, 2>(args, m, mr, w, p, out);
    } else {
      tile_rows<A, 1>(args, m, mr, w, p, out);
    }
  }
};

template <GemmAType A, GemmEpilogue E>
void avx512vnni_driver(const GemmInt8Args& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  gemm_block<Avx512VnniTile8x32, A, E>(a, m0, m1, p0, p1);
}

}  // namespace

LOWBIT_GEMM_INT8_DEFINE(8x32c4__avx512vnni, avx512vnni_driver)

}  // namespace gemm_impl
LOWBIT_ISA_END

namespace kernels {
const GemmInt8Kernels& gemm_int8_kernels_avx512vnni() {
  static const GemmInt8Kernels table = gemm_impl::make_gemm_int8_table_8x32c4__avx512vnni("avx512vnni", 8, 2);
  return table;
}
}  // namespace kernels
}  // namespace lowbit
