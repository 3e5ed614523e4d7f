// Requantization kernels, AVX2 (compiled with the AVX2 flags only).
#include "kernels/simd_int_avx2.h"
#include "kernels/requant_kernels_impl.h"

namespace lowbit::kernels {
const RequantKernels& requant_kernels_avx2() {
  static const RequantKernels table = requant_impl::make_requant_kernels<simd::VecI32Avx2>();
  return table;
}
}  // namespace lowbit::kernels
