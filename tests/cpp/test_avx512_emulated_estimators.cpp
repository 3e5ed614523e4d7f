// The AVX-512 estimator kernels (LSQ/LSQ+, learnable, PACT, QIL, DSQ, sigmoid staircase;
// cpp/kernels/estimator_avx512.cpp over estimator_simd.h's EAvx512) compiled from their real
// sources against the portable intrinsics of avx512_emulation.h, with the AVX2 flags and
// -ffp-contract=off like the real estimator objects (a contracted multiply-add would change
// results), and checked exactly as test_estimators checks the real AVX-512 table where the
// hardware exists: bit for bit against the scalar table, sums included
// (estimator_kernel_checks.h). It does not check the instruction encodings or GCC's AVX-512 code
// generation.
#include "avx512_emulated_tu.h"

#define estimator_kernels_avx512 estimator_kernels_avx512_emulated
#include "../../cpp/kernels/estimator_avx512.cpp"
#undef estimator_kernels_avx512

#include <string>

#include "estimator_kernel_checks.h"

TEST_CASE("emulated AVX-512 estimator table equals the scalar table bit for bit", "[kernels][avx512][emulated]") {
  const lowbit::kernels::EstimatorKernels& table = lowbit::kernels::estimator_kernels_avx512_emulated();
  REQUIRE(std::string(table.isa_name) == "avx512");
  lowbit_estimator_test::check_table_equals_reference(table, lowbit::kernels::estimator_kernels_scalar());
}
