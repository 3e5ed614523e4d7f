// The AVX-512 affine kernels (fake quantize, its two backward masks, quantize, dequantize,
// min/max; cpp/kernels/affine_avx512.cpp over simd_avx512.h's VecAvx512) compiled from their real
// sources against the portable intrinsics of avx512_emulation.h, with the AVX2 flags, and checked
// exactly as test_kernels checks the real AVX-512 table where the hardware exists: bit for bit
// against the scalar table (affine_kernel_checks.h). This runs the AVX-512 algorithms - lane
// order, NaN and signed-zero handling of min/max, compare predicates, rounding modes, the
// f16/bf16 conversions, the masked moves, the horizontal min/max - on CPUs without AVX-512. It
// does not check the instruction encodings or GCC's AVX-512 code generation.
#include "avx512_emulated_tu.h"

#define affine_kernels_avx512 affine_kernels_avx512_emulated
#include "../../cpp/kernels/affine_avx512.cpp"
#undef affine_kernels_avx512

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "affine_kernel_checks.h"
#include "test_util.h"

TEST_CASE("emulated AVX-512 affine table equals the scalar table bit for bit", "[kernels][isa][avx512][emulated]") {
  const lowbit::kernels::AffineKernels& table = lowbit::kernels::affine_kernels_avx512_emulated();
  REQUIRE(std::string(table.isa_name) == "avx512");
  lowbit_affine_test::check_table_equals_reference(table, lowbit::kernels::affine_kernels_scalar());
}

TEST_CASE("emulated AVX-512 minmax ignores NaN and handles empty input", "[kernels][avx512][emulated]") {
  lowbit_affine_test::check_minmax_nan_and_empty(lowbit::kernels::affine_kernels_avx512_emulated());
}

// The emulation's float ops run as 256-bit halves on the AVX instructions (avx512_emulation.h);
// here they are held to Intel's per-lane pseudo-code, written out in emu::*_reference, on every
// pair of special values in every lane position.
TEST_CASE("emulated AVX-512 float intrinsics follow Intel's per-lane pseudo-code", "[avx512][emulated]") {
  namespace emu = lowbit::emu;
  const float inf = std::numeric_limits<float>::infinity();
  const float vals[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 0.49999997f, 3.5f, -3.5f,
                        8388607.5f, 8388608.0f, -8388609.0f, 1e-45f, -1e-40f, 3.4e38f, -3.4e38f, inf, -inf,
                        std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                        lowbit_test::float_of(0x7F800001u), 2147483520.0f, 2147483648.0f, -2147483648.0f};
  const size_t nv = sizeof vals / sizeof vals[0];
  // a: lane i holds vals[(i + s) % nv]; b: lane i holds vals[(i * 7 + t) % nv], so every pair
  // meets in some lane over the shifts.
  for (size_t s = 0; s < nv; ++s) {
    for (size_t t = 0; t < nv; ++t) {
      lowbit::__m512 a, b;
      for (int i = 0; i < 16; ++i) {
        a.f32[i] = vals[(i + s) % nv];
        b.f32[i] = vals[(static_cast<size_t>(i) * 7 + t) % nv];
      }
      const lowbit::__m512 mn = lowbit::_mm512_min_ps(a, b), mx = lowbit::_mm512_max_ps(a, b);
      for (int i = 0; i < 16; ++i) {
        INFO("lane " << i << ": a " << lowbit_test::describe(a.f32[i]) << ", b " << lowbit_test::describe(b.f32[i]));
        REQUIRE(mn.u32[i] == emu::bits(emu::min_reference(a.f32[i], b.f32[i])));
        REQUIRE(mx.u32[i] == emu::bits(emu::max_reference(a.f32[i], b.f32[i])));
      }
      for (int p = 0; p < 32; ++p) {
        const __mmask16 k = lowbit::_mm512_cmp_ps_mask(a, b, p);
        for (int i = 0; i < 16; ++i) {
          INFO("predicate " << p << ", lane " << i << ": a " << lowbit_test::describe(a.f32[i]) << ", b "
                            << lowbit_test::describe(b.f32[i]));
          REQUIRE(((k >> i) & 1) == (emu::cmp_reference(a.f32[i], b.f32[i], p) ? 1 : 0));
        }
      }
      float want_min = a.f32[0], want_max = a.f32[0];
      {  // GCC 12's combination order, step by step, on the reference MIN / MAX.
        float t3n[8], t3x[8], t6n[4], t6x[4], t8n[4], t8x[4];
        const int sh[4] = {2, 3, 0, 1};
        for (int i = 0; i < 8; ++i) t3n[i] = emu::min_reference(a.f32[8 + i], a.f32[i]);
        for (int i = 0; i < 8; ++i) t3x[i] = emu::max_reference(a.f32[8 + i], a.f32[i]);
        for (int i = 0; i < 4; ++i) t6n[i] = emu::min_reference(t3n[4 + i], t3n[i]);
        for (int i = 0; i < 4; ++i) t6x[i] = emu::max_reference(t3x[4 + i], t3x[i]);
        for (int i = 0; i < 4; ++i) t8n[i] = emu::min_reference(t6n[i], t6n[sh[i]]);
        for (int i = 0; i < 4; ++i) t8x[i] = emu::max_reference(t6x[i], t6x[sh[i]]);
        want_min = emu::min_reference(t8n[0], t8n[1]);
        want_max = emu::max_reference(t8x[0], t8x[1]);
      }
      REQUIRE(emu::bits(lowbit::_mm512_reduce_min_ps(a)) == emu::bits(want_min));
      REQUIRE(emu::bits(lowbit::_mm512_reduce_max_ps(a)) == emu::bits(want_max));
    }
    lowbit::__m512 a;
    for (int i = 0; i < 16; ++i) a.f32[i] = vals[(i + s) % nv];
    for (int imm = 0; imm < 16; ++imm) {
      const lowbit::__m512 r = lowbit::_mm512_roundscale_ps(a, imm);
      for (int i = 0; i < 16; ++i) {
        INFO("roundscale imm " << imm << " of " << lowbit_test::describe(a.f32[i]) << ": "
                               << lowbit_test::describe(r.f32[i]));
        REQUIRE(r.u32[i] == emu::bits(emu::roundscale_reference(a.f32[i], imm)));
      }
    }
    const lowbit::__m512i c = lowbit::_mm512_cvtps_epi32(a);
    for (int i = 0; i < 16; ++i) {
      const float r = std::nearbyint(a.f32[i]);
      const int32_t want = std::isnan(r) || r >= 2147483648.0f || r < -2147483648.0f ? INT32_MIN : static_cast<int32_t>(r);
      INFO("cvtps_epi32 of " << lowbit_test::describe(a.f32[i]));
      REQUIRE(c.i32[i] == want);
    }
  }
  // Masked moves: every mask bit selects its own lane.
  lowbit::__m512 a, b;
  for (int i = 0; i < 16; ++i) {
    a.f32[i] = static_cast<float>(i + 1);
    b.f32[i] = -static_cast<float>(i + 1);
  }
  for (uint32_t k = 0; k < 65536; k += 257) {
    const __mmask16 m = static_cast<__mmask16>(k ^ 0x8001u);
    const lowbit::__m512 z = lowbit::_mm512_maskz_mov_ps(m, a), bl = lowbit::_mm512_mask_blend_ps(m, a, b);
    for (int i = 0; i < 16; ++i) {
      const bool set = (m >> i) & 1;
      REQUIRE(z.u32[i] == (set ? a.u32[i] : 0u));
      REQUIRE(bl.u32[i] == (set ? b.u32[i] : a.u32[i]));
    }
  }
}
