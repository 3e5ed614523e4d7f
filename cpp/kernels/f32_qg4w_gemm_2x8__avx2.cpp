// int4 weight-only GEMM, AVX2 + FMA: micro-tiles of up to 2 rows × 8 output channels (one float
// lane per channel). Per 8 weights one load-shared vpand (or vpsrld for the top nibble), one
// vcvtdq2ps and one vfmadd per row: the nibble is extracted in place as q·16^j and the activation
// is prescaled by 16^-j (int4_weight.h), which keeps every product, and so every rounding, equal to
// the scalar reference. The conversion is shared by the rows of a tile, so batched rows (LLM
// prefill, small batches) cost one FMA per weight and row.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/isa_namespace.h"
#include "kernels/int4_weight.h"

#if !defined(__AVX2__) || !defined(__FMA__)
#error "f32_qg4w_gemm_2x8__avx2.cpp needs -mavx2 -mfma"
#endif

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

using kernels::Int4LinearArgs;
using kernels::kInt4Kb;
using kernels::kInt4Nr;

template <bool kScaled, int J>
inline __m256 nibble_as_float(__m256i w) {
  if constexpr (J == 7) {
    return _mm256_cvtepi32_ps(_mm256_srli_epi32(w, 28));
  } else if constexpr (kScaled) {
    return _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(0xF << (4 * J))));
  } else {
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(w, 4 * J), _mm256_set1_epi32(0xF)));
  }
}

// One micro-tile: rows [m, m + MR) of channel block b (MR = 1 or 2), results to out[MR][8].
// Four accumulators per row (k % 4), as the arithmetic contract prescribes.
template <int MR, bool kScaled>
__attribute__((noinline)) void tile(const Int4LinearArgs& a, int64_t m, int64_t b, const float* sblk, const float* zblk,
                                    float* out) {
  static_assert(MR == 1 || MR == 2);
  const int64_t kb = a.k / kInt4Kb, per_group = a.k / a.groups / kInt4Kb;
  const uint32_t* block = a.packed + b * kb * kInt4Nr;
  const float* x0 = (kScaled ? a.x_scaled : a.x) + m * a.k;
  const float* x1 = x0 + (MR > 1 ? a.k : 0);
  __m256 t0 = _mm256_setzero_ps(), t1 = t0;
  for (int64_t g = 0; g < a.groups; ++g) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
    __m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    for (int64_t t = g * per_group; t < (g + 1) * per_group; ++t) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + t * kInt4Nr));
      const int64_t k0 = t * kInt4Kb;
#define LOWBIT_I4_J(J, ACC0, ACC1)                                                            \
  {                                                                                           \
    const __m256 wv = nibble_as_float<kScaled, J>(w);                                         \
    ACC0 = _mm256_fmadd_ps(wv, _mm256_broadcast_ss(x0 + k0 + J), ACC0);                       \
    if constexpr (MR > 1) ACC1 = _mm256_fmadd_ps(wv, _mm256_broadcast_ss(x1 + k0 + J), ACC1); \
  }
      LOWBIT_I4_J(0, a00, a10)
      LOWBIT_I4_J(1, a01, a11)
      LOWBIT_I4_J(2, a02, a12)
      LOWBIT_I4_J(3, a03, a13)
      LOWBIT_I4_J(4, a00, a10)
      LOWBIT_I4_J(5, a01, a11)
      LOWBIT_I4_J(6, a02, a12)
      LOWBIT_I4_J(7, a03, a13)
#undef LOWBIT_I4_J
    }
    const __m256 s = _mm256_loadu_ps(sblk + g * kInt4Nr), z = _mm256_loadu_ps(zblk + g * kInt4Nr);
    const float* xs = a.xsum + m * a.groups + g;
    t0 = _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, _mm256_broadcast_ss(xs), _mm256_add_ps(_mm256_add_ps(a00, a01),
                                                                                      _mm256_add_ps(a02, a03))),
                         t0);
    if constexpr (MR > 1) {
      t1 = _mm256_fmadd_ps(s, _mm256_fnmadd_ps(z, _mm256_broadcast_ss(xs + a.groups),
                                               _mm256_add_ps(_mm256_add_ps(a10, a11), _mm256_add_ps(a12, a13))),
                           t1);
    }
  }
  __m256 bias = _mm256_setzero_ps();
  if (a.bias != nullptr) {
    alignas(32) float bb[kInt4Nr] = {};
    for (int64_t l = 0; l < kInt4Nr && b * kInt4Nr + l < a.n; ++l) bb[l] = a.bias[b * kInt4Nr + l];
    bias = _mm256_load_ps(bb);
  }
  auto finish = [&](__m256 t) { return a.bias != nullptr ? _mm256_add_ps(t, bias) : t; };
  _mm256_storeu_ps(out, finish(t0));
  if constexpr (MR > 1) _mm256_storeu_ps(out + 8, finish(t1));
}

void f32_qg4w_gemm_2x8__avx2(const Int4LinearArgs& a, int64_t m0, int64_t m1, int64_t b0, int64_t b1) {
  alignas(32) float out[2 * kInt4Nr];
  std::vector<float> sblk(static_cast<size_t>(a.groups * kInt4Nr)), zblk(sblk.size());
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t lanes = std::min<int64_t>(kInt4Nr, a.n - b * kInt4Nr);
    kernels::int4_block_params(a, b, sblk.data(), zblk.data());
    for (int64_t m = m0; m < m1; m += 2) {
      const int64_t mr = std::min<int64_t>(2, m1 - m);
      if (a.x_scaled != nullptr) {
        mr == 2 ? tile<2, true>(a, m, b, sblk.data(), zblk.data(), out) : tile<1, true>(a, m, b, sblk.data(), zblk.data(), out);
      } else {
        mr == 2 ? tile<2, false>(a, m, b, sblk.data(), zblk.data(), out)
                : tile<1, false>(a, m, b, sblk.data(), zblk.data(), out);
      }
      for (int64_t i = 0; i < mr; ++i) {
        std::copy_n(out + i * kInt4Nr, lanes, a.y + (m + i) * a.ldy + b * kInt4Nr);
      }
    }
  }
}

}  // namespace
LOWBIT_ISA_END

namespace kernels {
const Int4Kernels& int4_kernels_avx2() {
  static const Int4Kernels table = {"avx2", "f32_qg4w_gemm_2x8__avx2", 2, &f32_qg4w_gemm_2x8__avx2};
  return table;
}
}  // namespace kernels
}  // namespace lowbit
