// Kernel tables indexed by ISA: adding a path is one entry per family, no branching in ops.
#include "kernels/dispatch.h"

namespace lowbit::kernels {

const AffineKernels& affine_kernels(Isa isa) {
  using Getter = const AffineKernels& (*)();
  static constexpr Getter kTables[kNumIsas] = {&affine_kernels_scalar, &affine_kernels_avx2,
                                               &affine_kernels_avx512};
  return kTables[static_cast<int>(isa)]();
}

}  // namespace lowbit::kernels
