// Estimator kernels, AVX-512 F/BW/VL/DQ (compiled with those -m flags and -ffp-contract=off).
#define LOWBIT_ESTIMATOR_AVX512 1
#include "kernels/simd_avx512.h"
#include "kernels/estimator_kernels_impl.h"

namespace lowbit::kernels {
const EstimatorKernels& estimator_kernels_avx512() {
  static const EstimatorKernels table = estimator_impl::make_estimator_kernels<simd::EAvx512>();
  return table;
}
}  // namespace lowbit::kernels
