// int4 weight-only GEMM, scalar reference: the arithmetic of int4_weight.h written out with
// std::fma, one output at a time. The AVX2 path equals it bit for bit.
#include <cmath>

#include "core/isa_namespace.h"
#include "kernels/int4_weight.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

using kernels::Int4LinearArgs;
using kernels::kInt4Kb;
using kernels::kInt4Nr;

void f32_qg4w_gemm_1x8__scalar(const Int4LinearArgs& a, int64_t m0, int64_t m1, int64_t b0, int64_t b1) {
  const int64_t kb = a.k / kInt4Kb, group = a.k / a.groups;
  for (int64_t b = b0; b < b1; ++b) {
    const uint32_t* block = a.packed + b * kb * kInt4Nr;
    for (int64_t lane = 0; lane < kInt4Nr && b * kInt4Nr + lane < a.n; ++lane) {
      const int64_t n = b * kInt4Nr + lane;
      for (int64_t m = m0; m < m1; ++m) {
        const float* x = a.x + m * a.k;
        float total = 0.0f;
        for (int64_t g = 0; g < a.groups; ++g) {
          float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
          for (int64_t kk = g * group; kk < (g + 1) * group; ++kk) {
            const uint32_t q = (block[(kk / kInt4Kb) * kInt4Nr + lane] >> (4 * (kk % kInt4Kb))) & 0xF;
            acc[kk % 4] = std::fma(static_cast<float>(q), x[kk], acc[kk % 4]);
          }
          const int64_t pi = n * a.groups + g;
          const float inner = std::fma(-static_cast<float>(a.zero[pi]), a.xsum[m * a.groups + g], (acc[0] + acc[1]) + (acc[2] + acc[3]));
          total = std::fma(a.scale[pi], inner, total);
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
