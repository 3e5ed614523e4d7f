// Torch-free int4 weight-only GEMM (LLM-style deployment): float activations × 4-bit weights with
// a per-group scale and zero point, w = (q - z)·s, q in [0, 15]. Runtime dispatch per ISA.
//
// ---- Packed weight layout ------------------------------------------------------------------
// Output channels in blocks of kInt4Nr = 8, k in tiles of 8; one 8 × 8 tile is 8 uint32 words:
//
//   packed[b][t][i] (uint32) holds q[8b + j][8t + i] in bits 4j..4j+3, j = 0..7
//   shape [ceil(N/8), K/8, 8]; channels >= N are zero; K must be a multiple of 8.
//
// Word i of a tile holds column k = 8t + i of all 8 channels of the block, so one 32-byte load
// gives 8 channels × 8 k and nibble j of the 8 words is channel 8b + j over 8 consecutive k: one
// vpand (plus vcvtdq2ps) turns it into a float vector that multiplies the 8 activations
// x[8t..8t+7] with one plain load, no broadcast. At M = 1 each 32-byte activation load serves 64
// weights and each weight costs one AND, one convert and one FMA lane.
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
// A SIMD path may run the chain of channel j on q·P_j·x·2^c instead of q·x (P_j, 2^c powers of
// two) and multiply r by 1/(P_j·2^c) afterwards. That equals the unscaled chain bit for bit when
// no value of either chain is subnormal or overflows. If every activation of the row is 0 or
// 2^-100 <= |x| < 2^64, every nonzero product and partial sum of the specification is a multiple
// of 2^(e_min - 23) >= 2^-123 (e_min = floor(log2) of the smallest nonzero |x|), hence a normal
// float, and below 15·G·2^64: finite. The op checks that range; rows outside it (NaN/Inf,
// subnormal, huge) make the kernels extract q itself with shifts ("shift" variant). Two scalings:
//  * "cvt16": `w & (0xF << 4j)` converted (vcvtdq2ps) is q·16^j exactly (j <= 6; nibble 7 takes a
//    shift): P_j = 16^j, c = 0; scaled values stay below 2^24·15·G·2^64, finite.
//  * "subnormal": the masked bits `w & (0xF << s_j)` read as a float ARE q·2^(s_j - 149) (bit
//    patterns below 2^24 encode bits·2^-149 exactly: subnormals and the lowest binade), so no
//    conversion instruction is needed at all. s_j = kInt4SubShift[j] (nibbles 6 and 7 are shifted
//    down first). The row is prescaled by 2^c, c = 125 - e_max (e_max = floor(log2 max|x|)), an
//    exact exponent shift (x_sub); then every scaled product and partial sum is at least
//    2^(e_min - 23 + s_j - 149 + c) >= 2^(e_min - e_max - 47), which is normal when
//    e_max - e_min <= 79, and at most 15·G·2^(e_max+1)·2^(20 - 149 + c), far below overflow. The
//    op supplies x_sub only when every row satisfies this, and r is multiplied back by
//    2^(24 + e_max - s_j) = x_sub_unscale[m]·2^-s_j (exact: a normal power of two). The subnormal
//    weight operands are read as zero under DAZ (MXCSR bit 6), so the kernel checks DAZ and then
//    uses cvt16. FTZ does not matter: no result is subnormal.
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

struct Int4LinearArgs {
  const float* x = nullptr;          // [M][K] activations (float32; bf16/f16 inputs are widened by the op)
  bool x_in_scaled_range = false;    // every x is 0 or kInt4ScaledMinAbs <= |x| < kInt4ScaledMaxAbs
  const float* x_sub = nullptr;      // [M][K] x·2^(125 - e_max(row)) for the "subnormal" variant, or null
  const float* x_sub_unscale = nullptr;  // [M] 2^(24 + e_max(row)) (1 for an all-zero row)
  const float* xsum = nullptr;       // [M][groups]
  const uint32_t* packed = nullptr;  // [B][K/8][8]
  const float* scale = nullptr;      // [N][groups] as given (the kernels regroup it per block)
  const int32_t* zero = nullptr;     // [N][groups] zero points, 0..15
  const float* bias = nullptr;       // [N] or null
  float* y = nullptr;                // [M][ldy]
  int64_t m = 0, n = 0, k = 0, groups = 1, ldy = 0;
};

// Rows [m_begin, m_end) × channel blocks [b_begin, b_end). Returns int4_param_ok over the scales
// and zero points of those blocks' channels: the kernels read every one of them anyway, so the op
// validates them there instead of in a separate serial pass (at group 128 and M = 1 that pass cost
// about 4% of the 2-thread call). On false the outputs are still computed, from the values as
// given, and the op runs the exact checks that name the bad element.
using Int4LinearBlockFn = bool (*)(const Int4LinearArgs& args, int64_t m_begin, int64_t m_end, int64_t b_begin,
                                   int64_t b_end);

struct Int4Kernels {
  const char* isa_name;
  const char* name;  // XNNPACK-style, e.g. f32_qg4w_gemm_4x8__avx2
  int64_t mr;        // most rows one micro-tile serves
  Int4LinearBlockFn linear;
};

const Int4Kernels& int4_kernels_scalar();
const Int4Kernels& int4_kernels_avx2();

// The kernels' parameter check (int4_param_ok below), on bit patterns so that SIMD code can run it
// with integer min/max: scale in 0x00800000..0x7F7FFFFF (exactly the floats in [2^-126, FLT_MAX]:
// positive, normal, finite, hence with a finite reciprocal; NaN, Inf, zero, negatives and
// subnormals fall outside) and zero point in [0, 15]. It may reject a valid subnormal scale (the
// op's exact check decides those); it never accepts an invalid value.
inline constexpr uint32_t kInt4ScaleMinBits = 0x00800000u;
inline constexpr uint32_t kInt4ScaleMaxBits = 0x7F7FFFFFu;

// int4_param_ok over count scales and zero points (one branch-free pass that vectorizes): what the
// op runs when no kernel call reads the parameters (an empty batch).
bool int4_params_ok(const float* scale, const int32_t* zero, int64_t count);

// Per-call activation preparation (what the op does before the kernel): xsum[m][groups] (k order,
// float32), the range checks, and x_sub [m][k] / x_sub_unscale [m]. Sets args.x, xsum,
// x_in_scaled_range, x_sub (null unless every row qualifies; pass x_sub = nullptr to skip the
// "subnormal" variant's preparation) and x_sub_unscale.
void int4_prepare_activations(const float* x, int64_t m, int64_t k, int64_t groups, float* xsum, float* x_sub,
                              float* x_sub_unscale, Int4LinearArgs& args);

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
  return (block[t * kInt4Nr + i] >> (4 * j)) & 0xFu;
}

// One scale and zero point by the kernels' parameter check (kInt4ScaleMinBits above).
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

// Scale and zero point of channel block b in lane order: scale_out[g][l] = scale[8b + l][g] (0 for
// channels >= N), zero_out likewise as float (exact for valid zero points). Returns int4_param_ok
// over the real channels (the zero padding is not checked). Used for partial blocks.
inline bool int4_block_params(const Int4LinearArgs& a, int64_t b, float* scale_out, float* zero_out) {
  bool ok = true;
  for (int64_t l = 0; l < kInt4Nr; ++l) {
    const int64_t n = b * kInt4Nr + l;
    for (int64_t g = 0; g < a.groups; ++g) {
      const float s = n < a.n ? a.scale[n * a.groups + g] : 0.0f;
      const int32_t z = n < a.n ? a.zero[n * a.groups + g] : 0;
      uint32_t bits;
      std::memcpy(&bits, &s, sizeof(bits));
      ok &= n >= a.n || int4_param_ok(bits, z);
      scale_out[g * kInt4Nr + l] = s;
      zero_out[g * kInt4Nr + l] = static_cast<float>(z);
    }
  }
  return ok;
}

LOWBIT_ISA_END
}  // namespace lowbit
