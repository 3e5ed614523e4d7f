// Affine kernels, AVX-512 F/BW/VL/DQ (compiled with those -m flags only).
#include "kernels/simd_avx512.h"
#include "kernels/affine_kernels_impl.h"

namespace lowbit::kernels {
const AffineKernels& affine_kernels_avx512() {
  static const AffineKernels table = affine_impl::make_affine_kernels<simd::VecAvx512>();
  return table;
}
}  // namespace lowbit::kernels
