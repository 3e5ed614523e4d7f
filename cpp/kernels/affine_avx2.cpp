// Affine kernels, AVX2 + FMA + F16C (compiled with those -m flags only).
#include "kernels/simd_avx2.h"
#include "kernels/affine_kernels_impl.h"

namespace lowbit::kernels {
const AffineKernels& affine_kernels_avx2() {
  static const AffineKernels table = affine_impl::make_affine_kernels<simd::VecAvx2>();
  return table;
}
}  // namespace lowbit::kernels
