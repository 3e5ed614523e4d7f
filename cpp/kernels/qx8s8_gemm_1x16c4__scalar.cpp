// int8 GEMM, scalar reference path: one row × one 16-channel panel per micro-tile, reading the
// packed weights directly. The AVX2 and AVX-512 VNNI paths are tested against this one.
#include "kernels/simd_int_scalar.h"
#include "kernels/gemm_int8_impl.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace gemm_impl {
namespace {

struct ScalarTile1x16 {
  using VI = simd::VecI32Scalar;
  static constexpr int64_t kMr = 1;
  static constexpr int kPanels = 1;
  static int64_t scratch_elems(int64_t) { return 0; }
  static const void* prepare(const GemmInt8Args& args, int64_t p, int, int16_t*) {
    return args.packed + p * kernels::gemm_panel_bytes(args.k);
  }
  // Σ in uint32 (modular, like vpaddd): exact whenever the true sum fits in int32.
  template <GemmAType A>
  static void tile(const GemmInt8Args& args, int64_t m, int64_t, const void* b, int, int64_t, int32_t* out) {
    using AT = std::conditional_t<A == GemmAType::U8, uint8_t, int8_t>;
    const AT* a = static_cast<const AT*>(args.a) + m * args.lda;
    const int8_t* panel = static_cast<const int8_t*>(b);
    uint32_t acc[kGemmNr] = {};
    const int64_t full = args.k / kGemmKc, rest = args.k % kGemmKc;
    for (int64_t kk = 0; kk < args.k; ++kk) {
      const int32_t av = a[kk];
      const int8_t* w = panel + kernels::gemm_panel_offset(args.k, 0, kk);
      const int64_t channel_stride = kk / kGemmKc < full ? kGemmKc : rest;
      for (int64_t c = 0; c < kGemmNr; ++c) acc[c] += static_cast<uint32_t>(av * w[c * channel_stride]);
    }
    for (int64_t c = 0; c < kGemmNr; ++c) out[c] = static_cast<int32_t>(acc[c]);
  }
};

template <GemmAType A, GemmEpilogue E>
void scalar_driver(const GemmInt8Args& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  gemm_block<ScalarTile1x16, A, E>(a, m0, m1, p0, p1);
}

}  // namespace

LOWBIT_GEMM_INT8_DEFINE(1x16c4__scalar, scalar_driver)

}  // namespace gemm_impl
LOWBIT_ISA_END

namespace kernels {
const GemmInt8Kernels& gemm_int8_kernels_scalar() {
  static const GemmInt8Kernels table = gemm_impl::make_gemm_int8_table_1x16c4__scalar("scalar", 1, 1);
  return table;
}
}  // namespace kernels
}  // namespace lowbit
