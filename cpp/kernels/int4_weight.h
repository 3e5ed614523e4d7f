// Torch-free int4 weight-only GEMM (LLM-style deployment): float activations × 4-bit weights with
// a per-group scale and zero point, w = (q - z)·s, q in [0, 15]. Runtime dispatch per ISA.
//
// ---- Packed weight layout ------------------------------------------------------------------
// Output channels in blocks of kInt4Nr = 8 (one AVX2 float lane each), k in blocks of 8 nibbles:
//
//   packed[b][t][l] (uint32) holds q[8b + l][8t + j] in bits 4j..4j+3, j = 0..7
//   shape [ceil(N/8), K/8, 8]; channels >= N are zero; K must be a multiple of 8.
//
// One 32-byte load gives 8 channels × 8 k. Lane extraction without shifts: `w & (0xF << 4j)` is
// q·16^j exactly (an int32 below 2^31 for j <= 6), converted to float exactly, and multiplied by
// the activation prescaled by 16^-j (a power of two: exact unless it leaves the normal range),
// so the product q·x, and every rounding after it, are those of the unscaled computation. Rows
// with a nonzero |x| < 2^-100 (where x·16^-6 would be subnormal) take the shifting variant.
//
// ---- Arithmetic (the contract every path reproduces bit for bit) ---------------------------
// For one output y[m][n], groups g of G = K / groups consecutive k:
//   acc_0..acc_3 = 0;  for k in group, in order: acc_{k%4} = fma(q[n][k], x[m][k], acc_{k%4})
//   total = fma(s[n][g], fma(-z[n][g], xsum[m][g], (acc_0 + acc_1) + (acc_2 + acc_3)), total)
//   y = total + bias[n]                                                       (groups in order)
// Four partial sums keep four FMA chains in flight (FMA latency, not throughput, bounds a GEMV
// with fewer).
// with xsum[m][g] = Σ_{k in group} x[m][k] summed in k order in float32 (computed once per row by
// the op). q·x products are exact, so this order is the whole specification.
#pragma once
#include <cstdint>

namespace lowbit::kernels {

inline constexpr int64_t kInt4Nr = 8;  // output channels per block
inline constexpr int64_t kInt4Kb = 8;  // nibbles per uint32

struct Int4LinearArgs {
  const float* x = nullptr;       // [M][K] activations (float32; bf16 inputs are widened by the op)
  const float* x_scaled = nullptr;  // [M][K] x[k]·16^-(k%8) for k%8 < 7, x[k] for k%8 == 7, or null
                                    // when some row needs the shifting variant (see above)
  const float* xsum = nullptr;    // [M][groups]
  const uint32_t* packed = nullptr;  // [B][K/8][8]
  const float* scale = nullptr;     // [N][groups] as given (the kernels regroup it per block)
  const int32_t* zero = nullptr;    // [N][groups] zero points, 0..15
  const float* bias = nullptr;      // [N] or null
  float* y = nullptr;             // [M][ldy]
  int64_t m = 0, n = 0, k = 0, groups = 1, ldy = 0;
};

// Rows [m_begin, m_end) × channel blocks [b_begin, b_end).
using Int4LinearBlockFn = void (*)(const Int4LinearArgs& args, int64_t m_begin, int64_t m_end, int64_t b_begin,
                                   int64_t b_end);

// Scale and zero point of channel block b in lane order: scale_out[g][l] = scale[8b + l][g] (0 for
// channels >= N), zero_out likewise as float (exact). Shared by the kernels' block loops.
inline void int4_block_params(const Int4LinearArgs& a, int64_t b, float* scale_out, float* zero_out) {
  for (int64_t l = 0; l < kInt4Nr; ++l) {
    const int64_t n = b * kInt4Nr + l;
    for (int64_t g = 0; g < a.groups; ++g) {
      scale_out[g * kInt4Nr + l] = n < a.n ? a.scale[n * a.groups + g] : 0.0f;
      zero_out[g * kInt4Nr + l] = n < a.n ? static_cast<float>(a.zero[n * a.groups + g]) : 0.0f;
    }
  }
}

struct Int4Kernels {
  const char* isa_name;
  const char* name;  // XNNPACK-style, e.g. f32_qg4w_gemm_2x8__avx2
  int64_t mr;
  Int4LinearBlockFn linear;
};

const Int4Kernels& int4_kernels_scalar();
const Int4Kernels& int4_kernels_avx2();

// codes: [n][k] row-major, values 0..15 (checked by the op); k % 8 == 0.
void int4_pack_weight(const uint8_t* codes, int64_t n, int64_t k, uint32_t* packed);
void int4_unpack_weight(const uint32_t* packed, int64_t n, int64_t k, uint8_t* codes);

}  // namespace lowbit::kernels
