// Runtime ISA dispatch. The binary is portable (no -march=native): the CPU is inspected once,
// the best path it supports is chosen, and LOWBIT_ISA=scalar|avx2|avx512 (environment, read at
// import) or set_active_isa() (tests, benchmarks) forces one. Op families fetch their kernel
// table through a per-ISA array, never through if/else chains.
#pragma once
#include <optional>
#include <string>

#include "kernels/affine_kernels.h"
#include "kernels/dwconv_s16.h"
#include "kernels/gemm_int8.h"
#include "kernels/int4_weight.h"
#include "kernels/requant_kernels.h"

namespace lowbit::kernels {

enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };
inline constexpr int kNumIsas = 3;

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
  bool avxvnni = false;
  // Whether FP multiply/FMA take subnormal operands at full speed. AMD's Zen cores do (measured
  // here: the int4 "subnormal" variant runs 2.4x faster than with vcvtdq2ps); Intel's cores
  // take a microcode assist per instruction with a subnormal input unless DAZ is set, which
  // would make that variant many times slower. Kernels that feed subnormal operands on purpose
  // check this.
  bool subnormal_operands_full_speed = false;
  // A LOWBIT_EMULATE_AVX512 test build (CMakeLists.txt): the avx512 flags above are reported
  // true on any AVX2 CPU and the AVX-512 paths run on portable stand-ins for the intrinsics.
  bool avx512_emulated = false;
};

const CpuFeatures& cpu_features();
// The kernel path needs: avx2 = AVX2+FMA+F16C; avx512 = that plus AVX-512 F/BW/VL/DQ.
bool isa_supported(Isa isa);
Isa best_supported_isa();
const char* isa_name(Isa isa);
std::optional<Isa> parse_isa(const std::string& name);

// Reads LOWBIT_ISA once. Throws std::runtime_error naming the value when it is unknown or the
// CPU lacks that path (the module turns that into an ImportError).
void init_active_isa_from_env();
Isa active_isa();
// Throws std::runtime_error when the CPU lacks `isa`.
void set_active_isa(Isa isa);

const AffineKernels& affine_kernels(Isa isa);
inline const AffineKernels& affine_kernels() { return affine_kernels(active_isa()); }

// ---- integer kernels (issue 5: requantization, int8 GEMM) ----------------------------------
const RequantKernels& requant_kernels(Isa isa);
inline const RequantKernels& requant_kernels() { return requant_kernels(active_isa()); }
// The avx512 path runs the VNNI GEMM when the CPU has AVX512-VNNI and the AVX2 GEMM otherwise
// (AVX-512 F/BW without VNNI has no exact u8·s8 dot product faster than the AVX2 one).
const GemmInt8Kernels& gemm_int8_kernels(Isa isa);
inline const GemmInt8Kernels& gemm_int8_kernels() { return gemm_int8_kernels(active_isa()); }
// Depthwise tap sums (int8_conv2d's direct depthwise path): the avx512 path runs the AVX2 kernel.
const DwconvKernels& dwconv_kernels(Isa isa);
inline const DwconvKernels& dwconv_kernels() { return dwconv_kernels(active_isa()); }
// int4 weight-only GEMM: the avx512 path runs the AVX2 kernel (no AVX-512 version yet).
const Int4Kernels& int4_kernels(Isa isa);
inline const Int4Kernels& int4_kernels() { return int4_kernels(active_isa()); }

}  // namespace lowbit::kernels
