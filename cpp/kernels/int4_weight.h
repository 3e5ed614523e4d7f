// Torch-free int4 weight-only GEMM (LLM-style deployment): float activations × 4-bit weights with
// a per-group scale and zero point, w = (q - z)·s, q in [0, 15]. Runtime dispatch per ISA.
//
// ---- Packed weight layout ------------------------------------------------------------------
// Output channels in blocks of kInt4Nr = 8, k in tiles of 8; one 8 × 8 tile is 8 uint32 words:
//
//   packed[b][t][j] (uint32) holds q[8b + j][8t + i] in bits 4i..4i+3, i = 0..7
//   shape [ceil(N/8), K/8, 8]; channels >= N are zero; K must be a multiple of 8.
//
// Word j of a tile is channel 8b + j over 8 consecutive k, so one 32-byte load gives 8 channels ×
// 8 k and nibble i of the 8 words is column k = 8t + i of all 8 channels: one vpand turns it into
// a vector whose lanes are the block's channels, multiplied by x[8t + i] broadcast. Each of the
// contract's k % 8 chains is then one vector of 8 channels, and its lane tree (below) is vertical
// adds of those vectors: no horizontal reduction at the end of a group. (The layout before
// 2026-11-24 was this one transposed; with its per-group horizontal tree and gather of 16
// parameters, group 32 ran 1.4x and group 128 1.06x slower on Zen 1.)
//
// ---- Packed parameters ---------------------------------------------------------------------
// params[b][g][0][l] = scale[8b + l][g], params[b][g][1][l] = zero_point[8b + l][g] (as float,
// exact for 0..15); shape [ceil(N/8), groups, 2, 8] float32, lanes >= N zero. int4_pack_params
// builds it once (and validates it, so the kernels do not); the group step loads two vectors.
//
// ---- Arithmetic (the contract every path reproduces bit for bit) ---------------------------
// For one output y[m][n], n = 8b + j, groups g of G = K / groups consecutive k (G % 8 == 0):
//   a[0..7] = 0
//   for each tile t of the group, in order, for i = 0..7:  a[i] = fma(q[n][8t+i], x[m][8t+i], a[i])
//   r     = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))       (int4_lane_tree)
//   total = fma(s[n][g], fma(-z[n][g], xsum[m][g], r), total)                     (int4_group_step)
//   y = total + bias[n]                                                       (groups in order)
// with xsum[m][g] = Σ_{k in group} x[m][k] summed in k order in float32 (computed once per row by
// the op). The zero point is folded out of the k loop: Σ (q - z)·s·x = s·(Σ q·x - z·Σ x). The
// eight lanes a[i] are eight independent FMA chains (k % 8), which is what hides FMA latency in a
// GEMV. q·x is exact, so this order is the whole specification. Against dequantize-then-matmul
// (float64) the result differs only by the float32 roundings above: each chain of G/8 terms, the
// three-level tree, the G-term xsum (scaled by z), and two roundings per group step.
// tests/test_int4_weight.py bounds the difference by 4e-6·Σ_k |x_k|·15·s_k.
//
// ---- Nibble extraction, and why the SIMD chains may run on scaled values -----------------------
// A SIMD path may run chain i (k % 8 = i) on q·P_i times x·2^c/P_i (P_i, 2^c powers of two), i.e.
// on q·x·2^c, and multiply r by 2^-c afterwards. That equals the unscaled chain bit for bit when
// no value of either chain is subnormal or overflows and x·2^c/P_i is exact. If every activation
// of the row is 0 or 2^-100 <= |x| < 2^64, every nonzero product and partial sum of the
// specification is a multiple of 2^(e_min - 23) >= 2^-123 (e_min = floor(log2) of the smallest
// nonzero |x|), hence a normal float, and below 15·G·2^64: finite. The op checks that range
// (Int4Variant below picks the extraction); rows outside it (NaN/Inf, subnormal, huge) take the
// "shift" variant, which extracts q itself (P_i = 1, c = 0). Two scalings:
//  * "cvt16": `w & (0xF << 4i)` converted (vcvtdq2ps) is q·16^i exactly (i <= 6; nibble 7 takes a
//    shift): P_i = 16^i, c = 0, and the activation operand x·2^(-4i) is exact because
//    |x| >= 2^-100 keeps it normal.
//  * "subnormal": the masked bits `w & (0xF << s_i)` read as a float ARE q·2^(s_i - 149) (bit
//    patterns below 2^24 encode bits·2^-149 exactly: subnormals and the lowest binade), so no
//    conversion instruction is needed at all. s_i = kInt4SubShift[i] (nibbles 6 and 7 are shifted
//    down first): P_i = 2^(s_i - 149), and the activation operand is x·2^(125 - e_max - s_i)
//    (e_max = floor(log2 max|x|) of the row; normal, since |x|·2^(125 - e_max - s_i) lies in
//    [2^(e_min - e_max + 105), 2^126)). Every product is then q·x·2^c with c = 125 - e_max - 149,
//    every partial sum a multiple of 2^(e_min - 23 + c) >= 2^(e_min - e_max - 47), normal when
//    e_max - e_min <= 79, and at most 15·G·2^(e_max+1+c) = 15·G·2^-23, far below overflow. The op
//    uses this variant only when every row satisfies the spread limit; r is multiplied back by
//    2^-c = 2^(24 + e_max) (Int4LinearArgs::row_unscale, a normal power of two: exact). The
//    subnormal weight operands would read as zero under DAZ (MXCSR bit 6), so the kernel clears DAZ
//    for its own duration and restores the caller's MXCSR. FTZ does not matter: no result is
//    subnormal.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/isa_namespace.h"

namespace lowbit::kernels {

inline constexpr int64_t kInt4Nr = 8;  // output channels per block
inline constexpr int64_t kInt4Kb = 8;  // k per tile (words per tile)

// Activations outside [2^-100, 2^64) in magnitude (other than 0), or NaN, need the shifting variant.
inline constexpr float kInt4ScaledMinAbs = 0x1p-100f;
inline constexpr float kInt4ScaledMaxAbs = 0x1p64f;
// The "subnormal" variant needs floor(log2 max|x|) - floor(log2 min nonzero |x|) <= this per row.
inline constexpr int kInt4SubMaxExpSpread = 79;
// Bit position of nibble j's lowest bit after extraction in the "subnormal" variant.
inline constexpr int kInt4SubShift[8] = {0, 4, 8, 12, 16, 20, 20, 0};

// Which extraction the SIMD kernels use for a call (int4_weight.h, "Nibble extraction"); the
// scalar reference ignores it. The op picks the fastest one every row of the call qualifies for.
enum class Int4Variant : int { kShift = 0, kCvt16 = 1, kSubnormal = 2 };

struct Int4LinearArgs {
  const float* x = nullptr;            // [M][K] activations (float32; bf16/f16 inputs are widened by the op)
  Int4Variant variant = Int4Variant::kShift;
  const int32_t* row_exp = nullptr;    // [M] e_max of each row ("subnormal" variant; 0 for an all-zero row)
  const float* row_unscale = nullptr;  // [M] 2^(24 + e_max) for the "subnormal" variant, else 1
  const float* xsum = nullptr;         // [M][groups]
  const uint32_t* packed = nullptr;    // [B][K/8][8]
  const float* params = nullptr;       // [B][groups][2][8] (int4_pack_params)
  const float* bias = nullptr;         // [N] or null
  float* y = nullptr;                  // [M][ldy]
  int64_t m = 0, n = 0, k = 0, groups = 1, ldy = 0;
};

// Rows [m_begin, m_end) × channel blocks [b_begin, b_end).
using Int4LinearBlockFn = void (*)(const Int4LinearArgs& args, int64_t m_begin, int64_t m_end, int64_t b_begin,
                                   int64_t b_end);

struct Int4Kernels {
  const char* isa_name;
  const char* name;  // XNNPACK-style, e.g. f32_qg4w_gemm_4x8__avx2
  int64_t mr;        // most rows one micro-tile serves
  Int4LinearBlockFn linear;
};

const Int4Kernels& int4_kernels_scalar();
const Int4Kernels& int4_kernels_avx2();

// The parameter check of int4_pack_params (int4_param_ok below), on bit patterns so that it
// vectorizes as integer min/max: scale in 0x00800000..0x7F7FFFFF (exactly the floats in
// [2^-126, FLT_MAX]: positive, normal, finite, hence with a finite reciprocal; NaN, Inf, zero,
// negatives and subnormals fall outside) and zero point in [0, 15]. It may reject a valid
// subnormal scale (the op's exact check decides those); it never accepts an invalid value.
inline constexpr uint32_t kInt4ScaleMinBits = 0x00800000u;
inline constexpr uint32_t kInt4ScaleMaxBits = 0x7F7FFFFFu;

// int4_param_ok over count scales and zero points (one branch-free pass that vectorizes).
bool int4_params_ok(const float* scale, const int32_t* zero, int64_t count);

// scale, zero: [n][groups] row-major; params: [ceil(n/8)][groups][2][8] (layout above), channel
// blocks [b_begin, b_end) written (the op splits the blocks among threads). Returns
// int4_params_ok over those blocks' channels (the op then runs exact checks naming the element).
bool int4_pack_params(const float* scale, const int32_t* zero, int64_t n, int64_t groups, int64_t b_begin,
                      int64_t b_end, float* params);

// Per-call activation preparation (what the op does before the kernel): xsum[m][groups] (k order,
// float32), the range checks and each row's exponent. Sets args.x, xsum, variant (the fastest of
// those every row qualifies for, at most `fastest`), row_exp and row_unscale.
void int4_prepare_activations(const float* x, int64_t m, int64_t k, int64_t groups, Int4Variant fastest,
                              float* xsum, int32_t* row_exp, float* row_unscale, Int4LinearArgs& args);

// codes: [n][k] row-major, values 0..15 (checked by the op); k % 8 == 0.
void int4_pack_weight(const uint8_t* codes, int64_t n, int64_t k, uint32_t* packed);
void int4_unpack_weight(const uint32_t* packed, int64_t n, int64_t k, uint8_t* codes);

}  // namespace lowbit::kernels

// Helpers shared by the scalar reference and the SIMD paths (per-ISA copies, isa_namespace.h).
namespace lowbit {
LOWBIT_ISA_BEGIN

using kernels::Int4LinearArgs;
using kernels::kInt4Kb;
using kernels::kInt4Nr;

// q[8b + j][8t + i] of block `block` (= packed + b·(K/8)·8).
inline uint32_t int4_code(const uint32_t* block, int64_t t, int64_t i, int64_t j) {
  return (block[t * kInt4Nr + j] >> (4 * i)) & 0xFu;
}

// One scale and zero point by the parameter check (kInt4ScaleMinBits above).
inline bool int4_param_ok(uint32_t scale_bits, int32_t zero) {
  return scale_bits - kernels::kInt4ScaleMinBits <= kernels::kInt4ScaleMaxBits - kernels::kInt4ScaleMinBits &&
         static_cast<uint32_t>(zero) <= 15u;
}

// The lane tree of the contract: a[0..7] -> r. Every path reduces its eight k % 8 chains this way.
inline float int4_lane_tree(const float* a) {
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

// One group's contribution: total + s·(r - z·xsum) with the contract's two roundings.
inline float int4_group_step(float total, float r, float s, float z, float xsum) {
  return std::fma(s, std::fma(-z, xsum, r), total);
}

LOWBIT_ISA_END
}  // namespace lowbit
