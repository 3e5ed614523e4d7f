// Kernel tables indexed by ISA: adding a path is one entry per family, no branching in ops.
#include "kernels/dispatch.h"

namespace lowbit::kernels {

const AffineKernels& affine_kernels(Isa isa) {
  using Getter = const AffineKernels& (*)();
  static constexpr Getter kTables[kNumIsas] = {&affine_kernels_scalar, &affine_kernels_avx2,
                                               &affine_kernels_avx512};
  return kTables[static_cast<int>(isa)]();
}

// ---- integer kernels (issue 5: requantization, int8 GEMM) ----------------------------------
const RequantKernels& requant_kernels(Isa isa) {
  using Getter = const RequantKernels& (*)();
  static constexpr Getter kTables[kNumIsas] = {&requant_kernels_scalar, &requant_kernels_avx2,
                                               &requant_kernels_avx512};
  return kTables[static_cast<int>(isa)]();
}

const GemmInt8Kernels& gemm_int8_kernels(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return gemm_int8_kernels_scalar();
    case Isa::Avx2: return gemm_int8_kernels_avx2();
    case Isa::Avx512: return cpu_features().avx512vnni ? gemm_int8_kernels_avx512vnni() : gemm_int8_kernels_avx2();
  }
  return gemm_int8_kernels_scalar();
}

const DwconvKernels& dwconv_kernels(Isa isa) {
  return isa == Isa::Scalar ? dwconv_kernels_scalar() : dwconv_kernels_avx2();
}

const Int4Kernels& int4_kernels(Isa isa) {
  return isa == Isa::Scalar ? int4_kernels_scalar() : int4_kernels_avx2();
}

}  // namespace lowbit::kernels
