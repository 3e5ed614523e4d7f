// Estimator kernels, scalar reference path (baseline flags), plus the stochastic-rounding
// variants that every ISA shares. Compiled with -ffp-contract=off (CMakeLists.txt).
#include "kernels/simd_scalar.h"
#include "kernels/estimator_kernels_impl.h"

namespace lowbit::kernels {

const EstimatorKernels& estimator_kernels_scalar() {
  static const EstimatorKernels table = estimator_impl::make_estimator_kernels<simd::EScalar>();
  return table;
}

const EstimatorStochasticKernels& estimator_stochastic_kernels() {
  static const EstimatorStochasticKernels table = estimator_impl::make_estimator_stochastic_kernels();
  return table;
}

}  // namespace lowbit::kernels
