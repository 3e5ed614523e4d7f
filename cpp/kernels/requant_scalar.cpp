// Requantization kernels, scalar reference (baseline flags).
#include "kernels/simd_int_scalar.h"
#include "kernels/requant_kernels_impl.h"

namespace lowbit::kernels {
const RequantKernels& requant_kernels_scalar() {
  static const RequantKernels table = requant_impl::make_requant_kernels<simd::VecI32Scalar>();
  return table;
}
}  // namespace lowbit::kernels
