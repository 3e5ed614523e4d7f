// Torch-free int8 GEMM: u8 or s8 activations × s8 weights -> exact int32 sums, with a raw-int32
// or a fused requantization epilogue. Runtime dispatch picks one table per ISA (dispatch.h).
//
// ---- Packed weight layout (one layout for every ISA: packing never depends on the CPU) --------
//
// A weight W[N][K] (int8, PyTorch Linear's [out_features, in_features]) is stored as panels of
// kGemmNr = 16 output channels (channels >= N are zero), each 16·K contiguous bytes. Inside a
// panel, k runs in quads of kGemmKc = 4:
//
//   full quads  q < K/4:          panel[64q + 4c + j]               = W[16p + c][4q + j]
//   tail (r = K % 4 > 0):         panel[64·(K/4) + r·c + j], j < r  = W[16p + c][4·(K/4) + j]
//
// The packed tensor has shape [P, K, 16] (P = ceil(N/16)), so both P and the exact K are visible
// to shape checks; its memory order is the one above, not a transpose. For a full quad a panel
// row is 64 bytes, 16 channels × 4 consecutive k: the operand of AVX-512 VNNI `vpdpbusd` (16 int32
// lanes, one per channel, each a 4-term dot product), which AVX2 sign-extends to int16 for
// `vpmaddwd`. Kernels zero-pad the tail quad to that form (gemm_tail_quad) once per panel or tile.
// Alongside the panels, packing returns colsum[n] = Σ_k W[n][k] (int32, exact: |colsum| <= 128·K),
// used for zero-point folding and for the +128 offset of s8 activations on the VNNI path.

// ---- Exactness (why no path can saturate or overflow) ------------------------------------------
//
// * AVX2 has no u8×s8 dot product that is exact: `vpmaddubsw` adds two u8·s8 products into a
//   *saturating* int16 (2·255·128 = 65280 > 32767). lowbit uses it only for blocks whose activation
//   rows are all <= 127 (7-bit codes, checked at run time: pair sums <= 2·127·128 = 32512).
//   Everything else widens both operands to int16 (activations zero- or sign-extended, weights
//   sign-extended) and uses `vpmaddwd`, whose pair sums (|.| <= 2·255·128) are exact in its int32
//   lanes; its only saturating input (-32768·-32768 twice) cannot arise from 8-bit values. That
//   takes the same multiplies (16 MACs per vpmaddwd, as vpmaddubsw + vpmaddwd per 32 MACs) but one
//   more add per 32 MACs: equal speed where the multiplier port is the limit (AMD Zen 1, measured),
//   about 3/4 where three vector ALU ports are (Intel cores; estimated, not measured here). Weights
//   are widened once per call into a per-thread panel buffer when a block has many rows.
// * VNNI `vpdpbusd` is exact for u8×s8 and wraps (never saturates) on accumulation; s8
//   activations are offset by +128 (a ^ 0x80) and the kernel subtracts 128·colsum[n].
// * Accumulation is modular (two's complement int32 adds everywhere, uint32 in the scalar path),
//   so partial sums may wrap: the final value is exact whenever the true sum fits in int32. The
//   ops guarantee that by construction: |Σ a·w| <= K·255·128 for u8 (K <= 65793) and
//   K·128·128 for s8 (K <= 131071); int8_linear bounds the folded sum the same way.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/requantize.h"

namespace lowbit::kernels {

inline constexpr int64_t kGemmNr = 16;  // output channels per packed panel
inline constexpr int64_t kGemmMaxTileCols = 4 * kGemmNr;  // widest micro-tile of any path (columns)
inline constexpr int64_t kGemmKc = 4;   // k values per quad

inline int64_t gemm_num_panels(int64_t n) { return (n + kGemmNr - 1) / kGemmNr; }
inline int64_t gemm_num_quads(int64_t k) { return (k + kGemmKc - 1) / kGemmKc; }  // incl. the tail
inline int64_t gemm_panel_bytes(int64_t k) { return kGemmNr * k; }

// Byte offset of W[16p + c][kk] inside its panel.
inline int64_t gemm_panel_offset(int64_t k, int64_t c, int64_t kk) {
  const int64_t full = k / kGemmKc;
  const int64_t q = kk / kGemmKc;
  if (q < full) return q * kGemmNr * kGemmKc + c * kGemmKc + kk % kGemmKc;
  const int64_t rest = k - full * kGemmKc;
  return full * kGemmNr * kGemmKc + c * rest + (kk - full * kGemmKc);
}

// The tail quad of a panel (K % 4 > 0) in full-quad form [c][4], zero padded.
inline void gemm_tail_quad(const int8_t* panel, int64_t k, int8_t (&out)[kGemmNr * kGemmKc]) {
  const int64_t full = k / kGemmKc, rest = k - full * kGemmKc;
  const int8_t* tail = panel + full * kGemmNr * kGemmKc;
  for (int64_t c = 0; c < kGemmNr; ++c) {
    for (int64_t j = 0; j < kGemmKc; ++j) out[c * kGemmKc + j] = j < rest ? tail[c * rest + j] : 0;
  }
}

// A whole panel in full-quad form: ceil(K/4) quads of 64 bytes, out[64q + 4c + j] = W[16p + c][4q + j],
// the tail quad zero padded (for kernels that read every quad alike).
inline void gemm_panel_full_quads(const int8_t* panel, int64_t k, int8_t* out) {
  const int64_t full_bytes = (k / kGemmKc) * kGemmNr * kGemmKc;
  std::memcpy(out, panel, static_cast<size_t>(full_bytes));
  if (k % kGemmKc != 0) {
    int8_t tail[kGemmNr * kGemmKc];
    gemm_tail_quad(panel, k, tail);
    std::memcpy(out + full_bytes, tail, sizeof(tail));
  }
}

// Largest K for which |Σ_k a·w| fits in int32 whatever the values (see above).
inline constexpr int64_t kGemmMaxKU8 = 65793;   // 255·128·K <= 2^31 - 1  (and 255·127·K)
inline constexpr int64_t kGemmMaxKS8 = 131071;  // 128·128·K <= 2^31 - 1

enum class GemmAType : int { U8 = 0, S8 = 1 };
inline constexpr int kNumGemmATypes = 2;

enum class GemmEpilogue : int {
  S32 = 0,  // C[m][n] = Σ_k a·w (int32)
  Rq = 1,   // out[m][n] = requantize(Σ a·w + bias[n] - wzp[n]·rowsum[m]) as u8/s8
};
inline constexpr int kNumGemmEpilogues = 2;

enum class GemmOutType : int { U8 = 0, S8 = 1 };

// Everything one call needs. Per-channel arrays are padded to P·16 entries (the op layer pads
// them), so epilogue vector loads never read past their end.
struct GemmInt8Args {
  const void* a = nullptr;  // [M][lda] u8 or s8 (row-major; K valid bytes per row)
  int64_t lda = 0;
  // true: every row holds zero bytes from K up to the next multiple of kGemmKc (lda >= that), so
  // a kernel may read the last, partial quad as a whole one: a zero code times the zero padding of
  // the tail quad adds exactly 0 (u8 and s8 alike; on VNNI the +128 offset of s8 codes makes the
  // padding 128, still times zero weights, and the colsum correction covers the real K only).
  // Spares short-K GEMMs (a 3x3 convolution of one channel has K = 9) the scalar tail step.
  // false: kernels read exactly K bytes per row.
  bool a_rows_padded = false;
  const int8_t* packed = nullptr;  // P panels of 16·K bytes (layout above)
  const int32_t* col_sums = nullptr;  // [P·16]
  int64_t m = 0, n = 0, k = 0;
  // S32 epilogue
  int32_t* c = nullptr;
  int64_t ldc = 0;
  // Rq epilogue
  void* out = nullptr;
  int64_t ldo = 0;
  // false: out[m·ldo + n] (row-major [M, N]); true: out[n·ldo + m] (channel-major, e.g. the NCHW
  // output of a convolution whose GEMM rows are pixels).
  bool out_transposed = false;
  // Transposed output in images (a batched convolution's GEMM rows are the pixels of several
  // images): row r is pixel r % out_image_rows of image r / out_image_rows, written to
  // out[(r / out_image_rows)·out_image_stride + n·ldo + r % out_image_rows]. 0: one image.
  int64_t out_image_rows = 0, out_image_stride = 0;
  // Row r of `a` is output row r + out_row_offset (a slice of a larger output, e.g. the patch rows
  // of one chunk of a convolution's batch); it affects only where the epilogue writes.
  int64_t out_row_offset = 0;
  GemmOutType out_type = GemmOutType::U8;
  RequantRounding rounding = RequantRounding::Double;
  const int32_t* bias = nullptr;         // [P·16] folded per-channel int32 terms
  const int32_t* row_sums = nullptr;     // [M] Σ_k a[m][k], or null when every weight zero point is 0
  const int32_t* w_zero_point = nullptr; // [P·16] (read only with row_sums)
  const int32_t* multiplier = nullptr;   // [P·16]
  const int32_t* shift = nullptr;        // [P·16]
  int32_t out_zero_point = 0, qmin = 0, qmax = 255;
};

// Computes rows [m_begin, m_end) × panels [p_begin, p_end) of the product (and its epilogue).
// Thread-safe: each call owns its scratch; calls on disjoint blocks may run concurrently.
using GemmInt8BlockFn = void (*)(const GemmInt8Args& args, int64_t m_begin, int64_t m_end, int64_t p_begin,
                                 int64_t p_end);

struct GemmInt8Kernels {
  const char* isa_name;
  int64_t mr;         // rows per micro-tile (partition hint for the op layer)
  int64_t nr_panels;  // panels per micro-tile
  GemmInt8BlockFn gemm[kNumGemmATypes][kNumGemmEpilogues];
  const char* names[kNumGemmATypes][kNumGemmEpilogues];  // XNNPACK-style, e.g. qu8s8_gemm_s32_2x16c4__avx2
};

const GemmInt8Kernels& gemm_int8_kernels_scalar();
const GemmInt8Kernels& gemm_int8_kernels_avx2();
const GemmInt8Kernels& gemm_int8_kernels_avx512vnni();

// Packing (ISA-independent, baseline code). weight: [n][k] row-major int8.
void gemm_int8_pack_weight(const int8_t* weight, int64_t n, int64_t k, int8_t* packed, int32_t* col_sums);
void gemm_int8_unpack_weight(const int8_t* packed, int64_t n, int64_t k, int8_t* weight);

}  // namespace lowbit::kernels
