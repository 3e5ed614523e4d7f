// The AVX-512 integer kernels (fixed-point requantization, quantized add, the VNNI int8 GEMM)
// compiled from their real sources against portable stand-ins for the intrinsics
// (avx512_emulation.h), then checked like every other path (int8_kernel_checks.h). This runs the
// AVX-512 algorithms - lane order, masks, shift counts, the +128 offset of s8 activations and its
// colsum correction, the K tail - on CPUs without AVX-512. It does not check instruction
// encodings or the compiler's AVX-512 code generation: the real paths' tests run on machines with
// the hardware (tests/test_int8_gemm.py, tests/test_requantize.py, test_int8_kernels).
// The float kernels: test_avx512_emulated_affine.cpp, test_avx512_emulated_estimators.cpp.
//
// avx512_emulated_tu.h (first include) gives this TU its own ISA namespace and the AVX-512
// feature macros; the table getters are renamed so they cannot collide with the real AVX-512
// objects linked into the same binary.
#include "avx512_emulated_tu.h"

#define requant_kernels_avx512 requant_kernels_avx512_emulated
#define gemm_int8_kernels_avx512vnni gemm_int8_kernels_avx512vnni_emulated

#include "../../cpp/kernels/requant_avx512.cpp"
#include "../../cpp/kernels/qx8s8_gemm_8x32c4__avx512vnni.cpp"

#undef requant_kernels_avx512
#undef gemm_int8_kernels_avx512vnni

#include "int8_kernel_checks.h"

TEST_CASE("emulated AVX-512 requantize and quantized add equal the core formulas") {
  lowbit_int8_test::check_requant_table(lowbit::kernels::requant_kernels_avx512_emulated(), "avx512 (emulated)");
}

TEST_CASE("emulated AVX-512 VNNI int8 GEMM equals exact int64 sums and the fused requantization") {
  const auto& k = lowbit::kernels::gemm_int8_kernels_avx512vnni_emulated();
  REQUIRE(std::string(k.names[0][1]) == "qu8s8_gemm_rq_8x32c4__avx512vnni");
  lowbit_int8_test::check_gemm_table(k, "avx512vnni (emulated)");
}
