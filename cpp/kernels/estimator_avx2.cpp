// Estimator kernels, AVX2 + FMA + F16C (compiled with those -m flags and -ffp-contract=off: the
// compiler must not fuse a multiply and an add the scalar reference keeps separate).
#define LOWBIT_ESTIMATOR_AVX2 1
#include "kernels/simd_avx2.h"
#include "kernels/estimator_kernels_impl.h"

namespace lowbit::kernels {
const EstimatorKernels& estimator_kernels_avx2() {
  static const EstimatorKernels table = estimator_impl::make_estimator_kernels<simd::EAvx2>();
  return table;
}
}  // namespace lowbit::kernels
