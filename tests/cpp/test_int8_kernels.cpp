// Integer kernels (requantize, quantized add, int8 GEMM, depthwise tap sums, int4 weight-only GEMM): every ISA table
// this CPU can run against the cpp/core formulas and exact int64 sums (int8_kernel_checks.h), and
// the int4 paths against the scalar reference bit for bit. Paths the CPU lacks are reported.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "int8_kernel_checks.h"
#include "kernels/dispatch.h"
#include "kernels/int4_weight.h"
#include "kernels/transpose_bytes.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#endif

using lowbit::kernels::Isa;

namespace {

const Isa kIsas[] = {Isa::Scalar, Isa::Avx2, Isa::Avx512};

// Runs check(isa) for every kernel path this CPU supports and reports the others as not run.
template <class Check>
void for_each_supported_isa(const Check& check) {
  for (Isa isa : kIsas) {
    if (!lowbit::kernels::isa_supported(isa)) {
      WARN("kernel path " << lowbit::kernels::isa_name(isa) << " not supported by this CPU: not run here");
      continue;
    }
    check(isa);
  }
}

// Packs scale and zero ([n][groups]) as int4_pack_params does, all blocks; REQUIREs them valid.
std::vector<float> int4_params(const std::vector<float>& scale, const std::vector<int32_t>& zero, int64_t n,
                               int64_t groups) {
  std::vector<float> params(static_cast<size_t>((n + 7) / 8 * groups * 16));
  REQUIRE(lowbit::kernels::int4_pack_params(scale.data(), zero.data(), n, groups, 0, (n + 7) / 8, params.data()));
  return params;
}

// The weight and shape fields of an int4 kernel call; int4_prepare_activations has filled the
// activation fields of `a`. Bias and output stay as the caller sets them.
void set_int4_weights(lowbit::kernels::Int4LinearArgs& a, const uint32_t* packed, const float* params, int64_t m,
                      int64_t n, int64_t k, int64_t groups) {
  a.packed = packed;
  a.params = params;
  a.m = m;
  a.n = n;
  a.k = k;
  a.groups = groups;
  a.ldy = n;
}

}  // namespace

TEST_CASE("requantize and quantized add tables equal the core formulas on every supported path") {
  for_each_supported_isa([](Isa isa) {
    lowbit_int8_test::check_requant_table(lowbit::kernels::requant_kernels(isa), lowbit::kernels::isa_name(isa));
  });
}

TEST_CASE("int8 GEMM tables equal exact int64 sums and the fused requantization on every supported path") {
  for_each_supported_isa([](Isa isa) {
    lowbit_int8_test::check_gemm_table(lowbit::kernels::gemm_int8_kernels(isa), lowbit::kernels::isa_name(isa));
  });
}

TEST_CASE("depthwise tap sums: every supported path equals exact sums with extreme operands and odd tap counts and tails") {
  std::mt19937 rng(5);
  for_each_supported_isa([&](Isa isa) {
    const auto& table = lowbit::kernels::dwconv_kernels(isa);
    for (int64_t taps : {0, 1, 2, 3, 9, 25}) {
      for (int64_t n : {0, 1, 15, 16, 17, 40, 100}) {
        for (int extreme = 0; extreme < 2; ++extreme) {
          // Codes minus zero points lie in [-255, 255]; `extreme` puts every operand at +-255.
          auto value = [&] {
            const int v = extreme ? ((rng() & 1) ? 255 : -255) : static_cast<int>(rng() % 511) - 255;
            return static_cast<int16_t>(v);
          };
          std::vector<std::vector<int16_t>> planes(static_cast<size_t>(taps), std::vector<int16_t>(static_cast<size_t>(n)));
          std::vector<const int16_t*> src;
          std::vector<int16_t> w;
          for (auto& plane : planes) {
            for (auto& v : plane) v = value();
            src.push_back(plane.data());
            w.push_back(value());
          }
          std::vector<int32_t> acc(static_cast<size_t>(n));
          std::vector<int64_t> want(static_cast<size_t>(n));
          for (int64_t q = 0; q < n; ++q) {
            acc[q] = static_cast<int32_t>(rng() % 2001) - 1000;  // the bias the op starts from
            want[q] = acc[q];
            for (int64_t t = 0; t < taps; ++t) want[q] += int64_t{w[t]} * planes[t][q];
          }
          table.tap_sums(acc.data(), n, src.data(), w.data(), taps);
          for (int64_t q = 0; q < n; ++q) {
            INFO(table.name << " taps " << taps << " n " << n << " extreme " << extreme << " at " << q);
            REQUIRE(int64_t{acc[q]} == want[q]);
          }
        }
      }
    }
  });
}

TEST_CASE("uint8 depthwise tap sums: every supported path equals exact sums from init with extreme codes and weights") {
  std::mt19937 rng(7);
  for_each_supported_isa([&](Isa isa) {
    const auto& table = lowbit::kernels::dwconv_kernels(isa);
    for (int64_t taps : {0, 1, 2, 3, 9, 25, 49}) {
      for (int64_t n : {0, 1, 15, 16, 17, 40, 100}) {
        for (int extreme = 0; extreme < 3; ++extreme) {
          // Codes in [0, 255], weights minus zero points in [-255, 255]; `extreme` 1 puts every
          // code at 255 and weight at +-255, 2 starts from an init near INT32_MIN that the sums
          // bring back into range (the op's folded zero point can do that; the sums wrap).
          std::vector<std::vector<uint8_t>> planes(static_cast<size_t>(taps), std::vector<uint8_t>(static_cast<size_t>(n)));
          std::vector<const uint8_t*> src;
          std::vector<int16_t> w;
          int64_t weight_sum = 0;
          for (auto& plane : planes) {
            for (auto& v : plane) v = extreme == 1 ? 255 : static_cast<uint8_t>(rng() % 256);
            src.push_back(plane.data());
            const int wv = extreme >= 1 ? ((rng() & 1) ? 255 : -255) : static_cast<int>(rng() % 511) - 255;
            w.push_back(static_cast<int16_t>(wv));
            weight_sum += wv;
          }
          const int64_t init = extreme == 2 && weight_sum > 0 ? int64_t{INT32_MIN} + 7 : static_cast<int64_t>(rng() % 2001) - 1000;
          std::vector<int32_t> acc(static_cast<size_t>(n), 12345);
          table.u8_tap_sums(acc.data(), n, src.data(), w.data(), taps, static_cast<int32_t>(init));
          for (int64_t q = 0; q < n; ++q) {
            int64_t want = init;
            for (int64_t t = 0; t < taps; ++t) want += int64_t{w[t]} * planes[t][q];
            const int32_t want32 = static_cast<int32_t>(static_cast<uint32_t>(want));  // wrapped, as the op needs
            INFO(table.u8_name << " taps " << taps << " n " << n << " extreme " << extreme << " at " << q);
            REQUIRE(acc[q] == want32);
          }
        }
      }
    }
  });
}

TEST_CASE("int8 GEMM packing round-trips and pads with zeros") {
  std::mt19937 rng(3);
  for (int64_t n : {1, 16, 17, 40}) {
    for (int64_t k : {1, 4, 5, 63}) {
      std::vector<int8_t> w(static_cast<size_t>(n * k)), back(w.size());
      for (auto& v : w) v = static_cast<int8_t>(rng());
      const int64_t panels = lowbit::kernels::gemm_num_panels(n);
      std::vector<int8_t> packed(static_cast<size_t>(panels * lowbit::kernels::gemm_panel_bytes(k)), 99);
      std::vector<int32_t> sums(static_cast<size_t>(n));
      lowbit::kernels::gemm_int8_pack_weight(w.data(), n, k, packed.data(), sums.data());
      lowbit::kernels::gemm_int8_unpack_weight(packed.data(), n, k, back.data());
      REQUIRE(back == w);
      for (int64_t c = n; c < panels * 16; ++c) {
        for (int64_t kk = 0; kk < k; ++kk) {
          REQUIRE(packed[(c / 16) * lowbit::kernels::gemm_panel_bytes(k) + lowbit::kernels::gemm_panel_offset(k, c % 16, kk)] == 0);
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        int32_t s = 0;
        for (int64_t kk = 0; kk < k; ++kk) s += w[r * k + kk];
        REQUIRE(sums[r] == s);
      }
    }
  }
}

TEST_CASE("int4 weight-only GEMM: every supported path equals the scalar reference bit for bit") {
  using lowbit::kernels::Int4Variant;
  std::mt19937 rng(5);
  // {m, n, k, groups}; the last four cut the AVX2 kernel's 128 KB activation buffer into row and
  // K chunks (40 rows at group 128; K = 8192 at group 64) or need more than it (one group of 8192).
  for (const auto& shape : {std::array<int64_t, 4>{1, 8, 8, 1}, std::array<int64_t, 4>{3, 37, 64, 4},
                            std::array<int64_t, 4>{5, 70, 256, 8}, std::array<int64_t, 4>{2, 9, 40, 1},
                            std::array<int64_t, 4>{7, 24, 128, 2}, std::array<int64_t, 4>{9, 17, 64, 8},
                            std::array<int64_t, 4>{1, 32, 1024, 8}, std::array<int64_t, 4>{1, 21, 384, 3},
                            std::array<int64_t, 4>{40, 20, 512, 4}, std::array<int64_t, 4>{1, 16, 8192, 128},
                            std::array<int64_t, 4>{3, 11, 8192, 128}, std::array<int64_t, 4>{2, 9, 8192, 1}}) {
    const int64_t m = shape[0], n = shape[1], k = shape[2], groups = shape[3];
    std::vector<uint8_t> q(static_cast<size_t>(n * k));
    for (auto& v : q) v = static_cast<uint8_t>(rng() % 16);
    std::vector<uint32_t> packed(static_cast<size_t>((n + 7) / 8 * k));
    lowbit::kernels::int4_pack_weight(q.data(), n, k, packed.data());
    std::vector<uint8_t> back(q.size());
    lowbit::kernels::int4_unpack_weight(packed.data(), n, k, back.data());
    REQUIRE(back == q);
    std::normal_distribution<float> normal;
    std::vector<float> x(static_cast<size_t>(m * k)), xsum(static_cast<size_t>(m * groups)),
        row_unscale(static_cast<size_t>(m));
    std::vector<int32_t> row_exp(static_cast<size_t>(m));
    for (auto& v : x) v = normal(rng);
    if (m > 2) {  // one all-zero row, and one spanning 2^70 (still the subnormal variant's range)
      std::fill_n(x.begin() + k, k, 0.0f);
      x[2 * k] = 0x1p40f;
      x[2 * k + 1] = -0x1p-30f;
    }
    std::vector<float> scale(static_cast<size_t>(n * groups)), bias(static_cast<size_t>(n));
    std::vector<int32_t> zero(scale.size());
    for (auto& v : scale) v = 0.001f + static_cast<float>(rng() % 1000) * 1e-5f;
    for (auto& v : zero) v = static_cast<int32_t>(rng() % 16);
    for (auto& v : bias) v = normal(rng);
    const std::vector<float> params = int4_params(scale, zero, n, groups);
    lowbit::kernels::Int4LinearArgs a;
    lowbit::kernels::int4_prepare_activations(x.data(), m, k, groups, Int4Variant::kShift, xsum.data(), row_exp.data(),
                                              row_unscale.data(), a);
    set_int4_weights(a, packed.data(), params.data(), m, n, k, groups);
    a.bias = bias.data();
    std::vector<float> want(static_cast<size_t>(m * n));
    a.y = want.data();
    lowbit::kernels::int4_kernels_scalar().linear(a, 0, m, 0, (n + 7) / 8);
    for (Isa isa : kIsas) {
      if (!lowbit::kernels::isa_supported(isa)) continue;
      for (Int4Variant variant : {Int4Variant::kShift, Int4Variant::kCvt16, Int4Variant::kSubnormal}) {
        lowbit::kernels::int4_prepare_activations(x.data(), m, k, groups, variant, xsum.data(), row_exp.data(),
                                                  row_unscale.data(), a);
        REQUIRE(a.variant == variant);  // every row qualifies for every variant
        std::vector<float> got(want.size());
        a.y = got.data();
        INFO(lowbit::kernels::isa_name(isa) << " m " << m << " n " << n << " k " << k << " variant "
                                            << static_cast<int>(variant));
        // Blocks split as two threads would, and all at once.
        const int64_t blocks = (n + 7) / 8;
        lowbit::kernels::int4_kernels(isa).linear(a, 0, m, 0, blocks / 2);
        lowbit::kernels::int4_kernels(isa).linear(a, 0, m, blocks / 2, blocks);
        REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
#if defined(__x86_64__) || defined(_M_X64)
        // Denormals-are-zero would read the subnormal variant's weight operands as 0: the kernel
        // must clear it for its own duration (MXCSR is per thread), still give the reference
        // result, and hand the caller's MXCSR back.
        const unsigned csr = _mm_getcsr();
        _mm_setcsr(csr | 0x8040u);  // DAZ | FTZ
        std::fill(got.begin(), got.end(), 0.0f);
        lowbit::kernels::int4_kernels(isa).linear(a, 0, m, 0, blocks);
        const unsigned csr_after = _mm_getcsr();
        _mm_setcsr(csr);
        REQUIRE(csr_after == (csr | 0x8040u));
        REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
#endif
      }
    }
  }
}

TEST_CASE("int4 parameter packing: the layout and a fast check that flags exactly the blocks holding a bad value") {
  // A full block (channels 0..7), a partial block (8..12), 3 groups (not a multiple of 8); each
  // bad value at the first and at the last element of each block, packed by blocks [0, 1), [1, 2)
  // and [0, 2) so that the flag comes from the block that holds it and from no other.
  const int64_t n = 13, groups = 3;
  const float good_scale = 0.01f;
  const std::vector<float> bad_scales = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                         0.0f, -0.0f, -0.01f, 0x1p-127f};
  const std::vector<float> edge_ok_scales = {0x1p-126f, std::numeric_limits<float>::max()};
  const std::vector<int32_t> bad_zeros = {-1, 16, std::numeric_limits<int32_t>::min(), 1 << 20};
  struct Case {
    int64_t index;
    float scale;
    int32_t zero;
    bool ok;
  };
  std::vector<Case> cases;
  for (int64_t index : {int64_t{0}, 8 * groups - 1, 8 * groups, n * groups - 1}) {
    for (float v : bad_scales) cases.push_back({index, v, 8, false});
    for (float v : edge_ok_scales) cases.push_back({index, v, 8, true});
    for (int32_t v : bad_zeros) cases.push_back({index, good_scale, v, false});
    for (int32_t v : {0, 15}) cases.push_back({index, good_scale, v, true});
  }
  for (const Case& c : cases) {
    std::vector<float> scale(static_cast<size_t>(n * groups), good_scale);
    std::vector<int32_t> zero(scale.size(), 8);
    scale[static_cast<size_t>(c.index)] = c.scale;
    zero[static_cast<size_t>(c.index)] = c.zero;
    const int64_t block = c.index / (8 * groups);
    INFO("index " << c.index << " scale " << c.scale << " zero " << c.zero);
    REQUIRE(lowbit::kernels::int4_params_ok(scale.data(), zero.data(), n * groups) == c.ok);
    for (const auto& [b0, b1] : {std::pair<int64_t, int64_t>{0, 1}, {1, 2}, {0, 2}}) {
      INFO("blocks [" << b0 << ", " << b1 << ")");
      std::vector<float> params(static_cast<size_t>(2 * groups * 16), -1.0f);
      REQUIRE(lowbit::kernels::int4_pack_params(scale.data(), zero.data(), n, groups, b0, b1, params.data()) ==
              (c.ok || block < b0 || block >= b1));
      for (int64_t b = 0; b < 2; ++b) {  // params[b][g][0][l] = scale[8b + l][g], [1]: zero; padding 0
        for (int64_t g = 0; g < groups; ++g) {
          for (int64_t l = 0; l < 8; ++l) {
            const int64_t row = 8 * b + l;
            const float* got = params.data() + ((b * groups + g) * 2) * 8 + l;
            const float want_s = b < b0 || b >= b1 ? -1.0f : row < n ? scale[row * groups + g] : 0.0f;
            const float want_z = b < b0 || b >= b1 ? -1.0f : row < n ? static_cast<float>(zero[row * groups + g]) : 0.0f;
            REQUIRE(std::memcmp(got, &want_s, sizeof(float)) == 0);
            REQUIRE(got[8] == want_z);
          }
        }
      }
    }
  }
}

#if defined(__x86_64__) || defined(_M_X64)
TEST_CASE("int4 weight-only GEMM: the subnormal variant's exponent-spread limit keeps every result normal") {
  // Channel 0 sees only x[1] + x[9] (both in chain 1), which cancel to one ulp of x[1]:
  // 2^(e_min - 23). In the subnormal variant every chain runs on q·x·2^(c - 149), c = 125 - e_max,
  // so that value becomes 2^(e_min - e_max - 47): normal at the spread limit 79, subnormal one step
  // beyond, where flush-to-zero would erase it. So at spread 79 the variant must be chosen and exact
  // under FTZ, and at 80 it must not be chosen.
  for (const int spread : {79, 80}) {
    const int64_t m = 1, n = 8, k = 16, groups = 1;
    const int e_max = 50, e_min = e_max - spread;
    std::vector<float> x(static_cast<size_t>(k), 0.0f);
    x[0] = std::ldexp(1.0f, e_max);
    x[1] = std::ldexp(1.0f + 0x1p-23f, e_min);
    x[9] = -std::ldexp(1.0f, e_min);
    std::vector<uint8_t> q(static_cast<size_t>(n * k), 0);
    q[1] = q[9] = 1;  // channel 0: only k = 1 and k = 9
    for (int64_t c = 1; c < n; ++c) q[c * k] = 3;  // the other channels see x[0]
    std::vector<uint32_t> packed(static_cast<size_t>(k));
    lowbit::kernels::int4_pack_weight(q.data(), n, k, packed.data());
    std::vector<float> xsum(1), row_unscale(1), scale(n, 0.5f);
    std::vector<int32_t> zero(n, 0), row_exp(1);
    const std::vector<float> params = int4_params(scale, zero, n, groups);
    lowbit::kernels::Int4LinearArgs a;
    lowbit::kernels::int4_prepare_activations(x.data(), m, k, groups, lowbit::kernels::Int4Variant::kSubnormal,
                                              xsum.data(), row_exp.data(), row_unscale.data(), a);
    INFO("spread " << spread);
    REQUIRE((a.variant == lowbit::kernels::Int4Variant::kSubnormal) ==
            (spread <= lowbit::kernels::kInt4SubMaxExpSpread));
    set_int4_weights(a, packed.data(), params.data(), m, n, k, groups);
    std::vector<float> want(static_cast<size_t>(n)), got(want.size());
    a.y = want.data();
    lowbit::kernels::int4_kernels_scalar().linear(a, 0, m, 0, 1);
    REQUIRE(want[0] == 0.5f * std::ldexp(1.0f, e_min - 23));
    for (Isa isa : kIsas) {
      if (!lowbit::kernels::isa_supported(isa)) continue;
      const unsigned csr = _mm_getcsr();
      _mm_setcsr(csr | 0x8000u);  // FTZ only: the subnormal variant stays enabled
      a.y = got.data();
      lowbit::kernels::int4_kernels(isa).linear(a, 0, m, 0, 1);
      _mm_setcsr(csr);
      INFO(lowbit::kernels::isa_name(isa));
      REQUIRE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    }
  }
}
#endif

TEST_CASE("byte layouts: 8x8 transpose and 3-plane interleave move every byte to its place and write nothing else") {
  std::mt19937 rng(3);
  // 8x8 transpose between strided rows, guard bytes around the destination block.
  std::vector<uint8_t> src(8 * 11), dst(8 * 13, 0xA5);
  for (auto& v : src) v = static_cast<uint8_t>(rng());
  lowbit::transpose_8x8_bytes(src.data(), 11, dst.data() + 2, 13);
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 13; ++c) {
      INFO("transpose row " << r << " col " << c);
      REQUIRE(dst[r * 13 + c] == (c >= 2 && c < 10 ? src[(c - 2) * 11 + r] : 0xA5));
    }
  }
  // Interleave: every length around the 16-pixel steps (and 0), guard bytes after 3n.
  for (int64_t n = 0; n <= 70; ++n) {
    std::vector<uint8_t> planes(static_cast<size_t>(3 * n + 1)), out(static_cast<size_t>(3 * n + 8), 0x5A);
    for (auto& v : planes) v = static_cast<uint8_t>(rng());
    lowbit::interleave_3_planes(planes.data(), planes.data() + n, planes.data() + 2 * n, out.data(), n);
    for (int64_t i = 0; i < 3 * n + 8; ++i) {
      INFO("interleave n " << n << " byte " << i);
      REQUIRE(out[i] == (i < 3 * n ? planes[(i % 3) * n + i / 3] : 0x5A));
    }
  }
}
