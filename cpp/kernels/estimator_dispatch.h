// Runtime selection of the estimator kernel table (the ISA choice of dispatch.h). Included by the
// op layer only.
#pragma once
#include "kernels/dispatch.h"
#include "kernels/estimator_kernels.h"

namespace lowbit::kernels {

inline const EstimatorKernels& estimator_kernels(Isa isa) {
  using Getter = const EstimatorKernels& (*)();
  static constexpr Getter kTables[kNumIsas] = {&estimator_kernels_scalar, &estimator_kernels_avx2,
                                               &estimator_kernels_avx512};
  return kTables[static_cast<int>(isa)]();
}
inline const EstimatorKernels& estimator_kernels() { return estimator_kernels(active_isa()); }

}  // namespace lowbit::kernels
