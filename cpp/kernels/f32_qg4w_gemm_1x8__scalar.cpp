// int4 weight-only GEMM, scalar reference: the arithmetic of int4_weight.h written out with
// std::fma, one output at a time, on the unscaled activations. The AVX2 path equals it bit for bit.
#include <algorithm>
#include <cmath>

#include "core/isa_namespace.h"
#include "kernels/int4_weight.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

void f32_qg4w_gemm_1x8__scalar(const Int4LinearArgs& a, int64_t m0, int64_t m1, int64_t b0, int64_t b1) {
  const int64_t tiles = a.k / kInt4Kb, group_tiles = tiles / a.groups;
  for (int64_t b = b0; b < b1; ++b) {
    const uint32_t* block = a.packed + b * tiles * kInt4Nr;
    const float* params = a.params + b * a.groups * 2 * kInt4Nr;
    for (int64_t j = 0; j < kInt4Nr && b * kInt4Nr + j < a.n; ++j) {
      const int64_t n = b * kInt4Nr + j;
      for (int64_t m = m0; m < m1; ++m) {
        const float* x = a.x + m * a.k;
        float total = 0.0f;
        for (int64_t g = 0; g < a.groups; ++g) {
          float lanes[kInt4Kb] = {};
          for (int64_t t = g * group_tiles; t < (g + 1) * group_tiles; ++t) {
            for (int64_t i = 0; i < kInt4Kb; ++i) {
              const float q = static_cast<float>(int4_code(block, t, i, j));
              lanes[i] = std::fma(q, x[t * kInt4Kb + i], lanes[i]);
            }
          }
          const float s = params[(g * 2) * kInt4Nr + j], z = params[(g * 2 + 1) * kInt4Nr + j];
          total = int4_group_step(total, int4_lane_tree(lanes), s, z, a.xsum[m * a.groups + g]);
        }
        a.y[m * a.ldy + n] = a.bias != nullptr ? total + a.bias[n] : total;
      }
    }
  }
}

}  // namespace
LOWBIT_ISA_END

namespace kernels {
const Int4Kernels& int4_kernels_scalar() {
  static const Int4Kernels table = {"scalar", "f32_qg4w_gemm_1x8__scalar", 1, &f32_qg4w_gemm_1x8__scalar};
  return table;
}
}  // namespace kernels
}  // namespace lowbit
