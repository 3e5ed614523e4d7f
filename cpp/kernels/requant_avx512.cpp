// Requantization kernels, AVX-512 F/BW (compiled with the AVX-512 flags only).
#include "kernels/simd_int_avx512.h"
#include "kernels/requant_kernels_impl.h"

namespace lowbit::kernels {
const RequantKernels& requant_kernels_avx512() {
  static const RequantKernels table = requant_impl::make_requant_kernels<simd::VecI32Avx512>();
  return table;
}
}  // namespace lowbit::kernels
