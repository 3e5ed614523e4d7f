// Packing of int4 weights (layout in int4_weight.h), done once per weight, and the per-call
// activation preparation; plain scalar code (it vectorizes where it matters: integer loops).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/int4_weight.h"

namespace lowbit::kernels {

void int4_pack_weight(const uint8_t* codes, int64_t n, int64_t k, uint32_t* packed) {
  const int64_t blocks = (n + kInt4Nr - 1) / kInt4Nr, tiles = k / kInt4Kb;
  std::memset(packed, 0, static_cast<size_t>(blocks * tiles * kInt4Nr) * sizeof(uint32_t));
  for (int64_t row = 0; row < n; ++row) {
    uint32_t* block = packed + (row / kInt4Nr) * tiles * kInt4Nr;
    const int64_t j = row % kInt4Nr;
    for (int64_t kk = 0; kk < k; ++kk) {
      block[(kk / kInt4Kb) * kInt4Nr + j] |= uint32_t{codes[row * k + kk]} << (4 * (kk % kInt4Kb));
    }
  }
}

void int4_unpack_weight(const uint32_t* packed, int64_t n, int64_t k, uint8_t* codes) {
  const int64_t tiles = k / kInt4Kb;
  for (int64_t row = 0; row < n; ++row) {
    const uint32_t* block = packed + (row / kInt4Nr) * tiles * kInt4Nr;
    const int64_t j = row % kInt4Nr;
    for (int64_t kk = 0; kk < k; ++kk) {
      codes[row * k + kk] = static_cast<uint8_t>((block[(kk / kInt4Kb) * kInt4Nr + j] >> (4 * (kk % kInt4Kb))) & 0xF);
    }
  }
}

bool int4_pack_params(const float* scale, const int32_t* zero, int64_t n, int64_t groups, int64_t b_begin,
                      int64_t b_end, float* params) {
  const int64_t rows_begin = std::min(b_begin * kInt4Nr, n), rows_end = std::min(b_end * kInt4Nr, n);
  const bool ok = int4_params_ok(scale + rows_begin * groups, zero + rows_begin * groups,
                                 (rows_end - rows_begin) * groups);
  for (int64_t b = b_begin; b < b_end; ++b) {
    float* out = params + b * groups * 2 * kInt4Nr;
    for (int64_t l = 0; l < kInt4Nr; ++l) {
      const int64_t row = b * kInt4Nr + l;
      for (int64_t g = 0; g < groups; ++g) {
        out[(g * 2) * kInt4Nr + l] = row < n ? scale[row * groups + g] : 0.0f;
        out[(g * 2 + 1) * kInt4Nr + l] = row < n ? static_cast<float>(zero[row * groups + g]) : 0.0f;
      }
    }
  }
  return ok;
}

bool int4_params_ok(const float* scale, const int32_t* zero, int64_t count) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, scale + i, sizeof(bits));
    bad |= static_cast<uint32_t>(bits - kInt4ScaleMinBits > kInt4ScaleMaxBits - kInt4ScaleMinBits) |
           static_cast<uint32_t>(static_cast<uint32_t>(zero[i]) > 15u);
  }
  return bad == 0;
}

void int4_prepare_activations(const float* x, int64_t m, int64_t k, int64_t groups, Int4Variant fastest,
                              float* xsum, int32_t* row_exp, float* row_unscale, Int4LinearArgs& args) {
  // Magnitudes as bit patterns: integer max/min loops that vectorize; |x| bits >= bits(Inf)
  // covers NaN and Inf.
  constexpr uint32_t lo_bits = 0x0D800000u;  // bits of kInt4ScaledMinAbs = 2^-100
  constexpr uint32_t hi_bits = 0x5F800000u;  // bits of kInt4ScaledMaxAbs = 2^64
  static_assert(lo_bits == (uint32_t{127 - 100} << 23) && hi_bits == (uint32_t{127 + 64} << 23));
  const int64_t group = k / groups;
  Int4Variant variant = fastest;
  for (int64_t r = 0; r < m; ++r) {
    const float* row = x + r * k;
    // Each group's sum is one chain of dependent adds in k order; eight groups side by side overlap
    // their latencies (this serial per-call preparation took 8.4 us at M = 1, K = 4096, 7.4 now).
    int64_t g0 = 0;
    for (; g0 + 8 <= groups; g0 += 8) {
      float sums[8] = {};
      for (int64_t i = 0; i < group; ++i) {
        for (int64_t j = 0; j < 8; ++j) sums[j] += row[(g0 + j) * group + i];
      }
      std::copy_n(sums, 8, xsum + r * groups + g0);
    }
    for (int64_t g = g0; g < groups; ++g) {
      float sum = 0.0f;
      for (int64_t kk = g * group; kk < (g + 1) * group; ++kk) sum += row[kk];
      xsum[r * groups + g] = sum;
    }
    uint32_t max_mag = 0, min_mag = 0xFFFFFFFFu;  // min over nonzero magnitudes
    for (int64_t kk = 0; kk < k; ++kk) {
      uint32_t mag;
      std::memcpy(&mag, row + kk, sizeof(mag));
      mag &= 0x7FFFFFFFu;
      max_mag = std::max(max_mag, mag);
      min_mag = std::min(min_mag, mag == 0 ? 0xFFFFFFFFu : mag);
    }
    row_exp[r] = 0;
    row_unscale[r] = 1.0f;
    if (max_mag == 0) continue;  // all zeros: every variant gives zeros
    if (max_mag >= hi_bits || min_mag < lo_bits) {
      variant = Int4Variant::kShift;
      continue;
    }
    const int e_max = static_cast<int>(max_mag >> 23) - 127, e_min = static_cast<int>(min_mag >> 23) - 127;
    if (e_max - e_min > kInt4SubMaxExpSpread) variant = std::min(variant, Int4Variant::kCvt16);
    row_exp[r] = e_max;
    row_unscale[r] = std::ldexp(1.0f, 24 + e_max);
  }
  if (variant != Int4Variant::kSubnormal) std::fill_n(row_unscale, m, 1.0f);
  args.x = x;
  args.xsum = xsum;
  args.variant = variant;
  args.row_exp = row_exp;
  args.row_unscale = row_unscale;
}

}  // namespace lowbit::kernels
