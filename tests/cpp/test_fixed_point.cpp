// cpp/core/fixed_point.h: every METHODS §9.1 / §9.2 vector, the §9.3 worked example, the
// saturation edges, and random inputs against exact 128-bit references.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/fixed_point.h"
#include "test_util.h"

using lowbit::QuantizedMultiplier;

namespace {

constexpr int32_t kMin = INT32_MIN, kMax = INT32_MAX;

// floor(n / 2^e) for a signed 128-bit n.
__int128 floor_div_pow2(__int128 n, int e) {
  const __int128 d = static_cast<__int128>(1) << e;
  __int128 q = n / d;
  if (n % d != 0 && n < 0) --q;
  return q;
}

// SRDHM from its definition: round(a·b / 2^31), ties toward +inf, then the one saturating case.
int32_t srdhm_reference(int32_t a, int32_t b) {
  const __int128 r = floor_div_pow2(static_cast<__int128>(a) * b + (static_cast<__int128>(1) << 30), 31);
  return r > kMax ? kMax : static_cast<int32_t>(r);
}

// x / 2^e rounded to nearest, ties away from zero.
int32_t rdpot_reference(int32_t x, int e) {
  const __int128 half = e == 0 ? 0 : (static_cast<__int128>(1) << (e - 1));
  const __int128 mag = x < 0 ? -static_cast<__int128>(x) : static_cast<__int128>(x);
  const __int128 q = e == 0 ? mag : (mag + half) >> e;
  return static_cast<int32_t>(x < 0 ? -q : q);
}

int32_t saturate(__int128 v) { return v > kMax ? kMax : v < kMin ? kMin : static_cast<int32_t>(v); }

}  // namespace

TEST_CASE("fixed_point: QuantizeMultiplier table of METHODS 9.1", "[fixed_point]") {
  struct Row {
    double real;
    int32_t multiplier, shift;
  };
  const Row rows[] = {
      {0.0123, 1690499128, -6},  // 0x64C2F838
      {0.5, 0x40000000, 0},
      {0.25, 0x40000000, -1},
      {0.75, 0x60000000, 0},
      {1.0, 0x40000000, 1},
      {1.5, 0x60000000, 1},
      {0.999999999999, 0x40000000, 1},  // the rounding carry to 2^31 moves into the shift
      {3e-4, 1319413953, -11},
      {std::ldexp(1.0, -32), 0x40000000, -31},
      {0.0, 0, 0},
      {std::ldexp(1.0, -33), 0, 0},                 // below 2^-32: flushed
      {std::ldexp(0.99999999, -32), 0, 0},          // frexp shift -32 without a carry: flushed
      {std::ldexp(1.0 - std::ldexp(1.0, -40), -32), 0x40000000, -31},  // the carry rescues it
      {std::ldexp(1.0, 40), 0x40000000, 41},        // large multipliers keep their shift...
  };
  for (const Row& r : rows) {
    INFO("M = " << r.real);
    const QuantizedMultiplier q = lowbit::quantize_multiplier(r.real);
    CHECK(q.multiplier == r.multiplier);
    CHECK(q.shift == r.shift);
  }
  // ...except in the TFLITE_SINGLE_ROUNDING build, which clamps the shift to 30.
  const QuantizedMultiplier clamped = lowbit::quantize_multiplier(std::ldexp(1.0, 40), true);
  CHECK(clamped.multiplier == kMax);
  CHECK(clamped.shift == 30);
  const QuantizedMultiplier edge = lowbit::quantize_multiplier(std::ldexp(1.0, 29), true);
  CHECK(edge.multiplier == 0x40000000);  // 2^29 = 0.5 · 2^30: shift 30 is allowed
  CHECK(edge.shift == 30);
  const QuantizedMultiplier over = lowbit::quantize_multiplier(std::ldexp(1.0, 30), true);
  CHECK(over.multiplier == kMax);  // 2^30 = 0.5 · 2^31: shift 31 > 30, clamped
  CHECK(over.shift == 30);
}

TEST_CASE("fixed_point: QuantizeMultiplier is within half a unit of M on random multipliers", "[fixed_point]") {
  lowbit_test::SplitMix64 rng(91);
  for (int i = 0; i < 200000; ++i) {
    const double real = std::ldexp(0.5 + 0.5 * rng.uniform(), static_cast<int>(rng.range(-31, 20)));
    const QuantizedMultiplier q = lowbit::quantize_multiplier(real);
    INFO("M = " << real << " -> " << q.multiplier << ", " << q.shift);
    REQUIRE(q.multiplier >= (1 << 30));
    const double approx = std::ldexp(static_cast<double>(q.multiplier), q.shift - 31);
    REQUIRE(std::fabs(approx - real) <= std::ldexp(0.5, q.shift - 31));
  }
}

TEST_CASE("fixed_point: SaturatingRoundingDoublingHighMul vectors of METHODS 9.2", "[fixed_point]") {
  const int32_t half = 1 << 30;  // 0.5 in Q31
  CHECK(lowbit::saturating_rounding_doubling_high_mul(3, half) == 2);    // 1.5 -> 2
  CHECK(lowbit::saturating_rounding_doubling_high_mul(5, half) == 3);    // 2.5 -> 3
  CHECK(lowbit::saturating_rounding_doubling_high_mul(-3, half) == -1);  // -1.5 -> -1 (toward +inf)
  CHECK(lowbit::saturating_rounding_doubling_high_mul(-1, half) == 0);   // -0.5 -> 0
  CHECK(lowbit::saturating_rounding_doubling_high_mul(1, half) == 1);    // 0.5 -> 1
  CHECK(lowbit::saturating_rounding_doubling_high_mul(kMin, kMin) == kMax);  // the one saturation
  CHECK(lowbit::saturating_rounding_doubling_high_mul(kMax, kMax) == 2147483646);
  CHECK(lowbit::saturating_rounding_doubling_high_mul(kMin, kMax) == -2147483647);
  CHECK(lowbit::saturating_rounding_doubling_high_mul(kMax, kMin) == -2147483647);
  CHECK(lowbit::saturating_rounding_doubling_high_mul(kMin, 1) == -1);
  CHECK(lowbit::saturating_rounding_doubling_high_mul(0, kMin) == 0);
}

TEST_CASE("fixed_point: SRDHM equals round(ab/2^31) with ties up on random and edge operands", "[fixed_point]") {
  lowbit_test::SplitMix64 rng(5);
  const int32_t edges[] = {kMin, kMin + 1, -(1 << 30), -3, -1, 0, 1, 3, 1 << 30, kMax - 1, kMax};
  for (int32_t a : edges) {
    for (int32_t b : edges) {
      INFO(a << " * " << b);
      REQUIRE(lowbit::saturating_rounding_doubling_high_mul(a, b) == srdhm_reference(a, b));
    }
  }
  for (int i = 0; i < 500000; ++i) {
    const int32_t a = static_cast<int32_t>(rng.next_u32());
    // Small b as well: ties only occur when a·b is an odd multiple of 2^30.
    const int32_t b = (i & 1) ? static_cast<int32_t>(rng.next_u32()) : static_cast<int32_t>(rng.range(-8, 8)) << 30;
    INFO(a << " * " << b);
    REQUIRE(lowbit::saturating_rounding_doubling_high_mul(a, b) == srdhm_reference(a, b));
  }
}

TEST_CASE("fixed_point: RoundingDivideByPOT vectors of METHODS 9.2", "[fixed_point]") {
  struct Row {
    int32_t x;
    int e;
    int32_t want;
  };
  const Row rows[] = {{5, 1, 3},   {-5, 1, -3}, {3, 1, 2},   {-3, 1, -2}, {6, 2, 2},
                      {-6, 2, -2}, {10, 2, 3},  {-10, 2, -3}, {7, 2, 2},  {-1, 1, -1},
                      {1, 1, 1},   {kMax, 31, 1}, {kMin, 31, -1}, {kMax, 0, kMax}, {kMin, 0, kMin},
                      {kMin, 1, -(1 << 30)}, {kMax, 1, 1 << 30}, {(1 << 30), 31, 1} /* 0.5 -> 1 */,
                      {-(1 << 30), 31, -1} /* -0.5 -> -1 */, {(1 << 30) - 1, 31, 0}};
  for (const Row& r : rows) {
    INFO("RoundingDivideByPOT(" << r.x << ", " << r.e << ")");
    CHECK(lowbit::rounding_divide_by_pot(r.x, r.e) == r.want);
  }
  lowbit_test::SplitMix64 rng(6);
  for (int i = 0; i < 300000; ++i) {
    const int32_t x = (i & 1) ? static_cast<int32_t>(rng.next_u32()) : static_cast<int32_t>(rng.range(-300, 300));
    const int e = static_cast<int>(rng.range(0, 31));
    INFO("RoundingDivideByPOT(" << x << ", " << e << ")");
    REQUIRE(lowbit::rounding_divide_by_pot(x, e) == rdpot_reference(x, e));
  }
}

TEST_CASE("fixed_point: the two MultiplyByQuantizedMultiplier variants (METHODS 9.2)", "[fixed_point]") {
  const int32_t m = 1 << 30;  // with shift -1: M = 0.25
  // x = 5: exact 1.25. Double rounding: SRDHM gives 2.5 -> 3, then 3/2 = 1.5 -> 2. Single: 1.
  CHECK(lowbit::multiply_by_quantized_multiplier_double_rounding(5, m, -1) == 2);
  CHECK(lowbit::multiply_by_quantized_multiplier_single_rounding(5, m, -1) == 1);
  CHECK(lowbit::multiply_by_quantized_multiplier_double_rounding(3, m, -1) == 1);
  CHECK(lowbit::multiply_by_quantized_multiplier_single_rounding(3, m, -1) == 1);
  CHECK(lowbit::multiply_by_quantized_multiplier_double_rounding(-5, m, -1) == -1);
  CHECK(lowbit::multiply_by_quantized_multiplier_single_rounding(-5, m, -1) == -1);
}

TEST_CASE("fixed_point: MultiplyByQuantizedMultiplier against exact references", "[fixed_point]") {
  lowbit_test::SplitMix64 rng(8);
  for (int i = 0; i < 300000; ++i) {
    const int32_t x = (i % 3 == 0) ? static_cast<int32_t>(rng.range(-70000, 70000)) : static_cast<int32_t>(rng.next_u32());
    const int32_t mult = static_cast<int32_t>(rng.range(1 << 30, kMax));
    const int shift = static_cast<int>(rng.range(-31, 30));
    INFO("x " << x << ", M0 " << mult << ", shift " << shift);
    // Single rounding: floor((x·M0 + 2^(total-1)) / 2^total), saturated.
    const int total = 31 - shift;
    const __int128 single = floor_div_pow2(static_cast<__int128>(x) * mult + (static_cast<__int128>(1) << (total - 1)), total);
    REQUIRE(lowbit::multiply_by_quantized_multiplier_single_rounding(x, mult, shift) == saturate(single));
    // Double rounding: the composition of the two exact references, x·2^left saturated first.
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const int32_t shifted = saturate(static_cast<__int128>(x) << left);
    REQUIRE(lowbit::multiply_by_quantized_multiplier_double_rounding(x, mult, shift) ==
            rdpot_reference(srdhm_reference(shifted, mult), right));
  }
}

TEST_CASE("fixed_point: saturation instead of overflow", "[fixed_point]") {
  // Double rounding: x · 2^left saturates before the high multiply (TFLite would overflow).
  CHECK(lowbit::multiply_by_quantized_multiplier_double_rounding(1 << 30, 1 << 30, 2) ==
        lowbit::saturating_rounding_doubling_high_mul(kMax, 1 << 30));
  CHECK(lowbit::multiply_by_quantized_multiplier_double_rounding(kMin, kMax, 30) == -2147483647);
  CHECK(lowbit::multiply_by_quantized_multiplier_double_rounding(kMax, kMax, 30) == kMax - 1);
  // Single rounding: the 64-bit result saturates to int32.
  CHECK(lowbit::multiply_by_quantized_multiplier_single_rounding(kMax, kMax, 30) == kMax);
  CHECK(lowbit::multiply_by_quantized_multiplier_single_rounding(kMin, kMax, 30) == kMin);
  // The widest right shift (total = 62) at the most negative input: -0.5 ties up to 0; -1 exact.
  CHECK(lowbit::multiply_by_quantized_multiplier_single_rounding(kMin, 1 << 30, -31) == 0);
  CHECK(lowbit::multiply_by_quantized_multiplier_single_rounding(kMin, 1 << 30, -30) == -1);
  CHECK(lowbit::multiply_by_quantized_multiplier_double_rounding(kMin, 1 << 30, -31) == -1);  // away
  CHECK(lowbit::saturate_int32(int64_t{1} << 40) == kMax);
  CHECK(lowbit::saturate_int32(-(int64_t{1} << 40)) == kMin);
  CHECK(lowbit::saturate_int32(-5) == -5);
}

TEST_CASE("fixed_point: METHODS 9.3 worked example (acc 1470 -1645 to q_out 10 -5)", "[fixed_point]") {
  // TFLite-style int8 GEMM with zero-point folding.
  const int32_t z_in = -10, z_out = 3;
  const int32_t qx[4] = {0, -15, 10, 30};
  const int32_t qw[2][4] = {{30, -50, 12, 7}, {-100, 25, 50, -33}};
  const int32_t qbias[2] = {400, -200};
  const int32_t want_acc[2] = {1470, -1645}, want_folded[2] = {390, -780}, want_out[2] = {10, -5};
  // M = S_in·S_w / S_out as METHODS states it (0.005), and as TFLite's per-tensor path forms it,
  // double(float(S_in·S_w)) / double(S_out): both must give the same outputs here.
  const QuantizedMultiplier exact = lowbit::quantize_multiplier(0.005);
  CHECK(exact.multiplier == 1374389535);
  CHECK(exact.shift == -7);
  const float s_in = 0.05f, s_w = 0.01f, s_out = 0.1f;
  const QuantizedMultiplier tflite =
      lowbit::quantize_multiplier(static_cast<double>(s_in * s_w) / static_cast<double>(s_out));
  CHECK(tflite.shift == -7);
  for (int k = 0; k < 2; ++k) {
    int32_t acc = qbias[k], raw = 0, wsum = 0;
    for (int j = 0; j < 4; ++j) {
      acc += (qx[j] - z_in) * qw[k][j];
      raw += qx[j] * qw[k][j];
      wsum += qw[k][j];
    }
    const int32_t folded = qbias[k] - z_in * wsum;
    INFO("output channel " << k);
    CHECK(acc == want_acc[k]);
    CHECK(folded == want_folded[k]);
    CHECK(raw + folded == acc);  // the folded form is the same accumulator
    for (const QuantizedMultiplier& m : {exact, tflite}) {
      const int32_t d = z_out + lowbit::multiply_by_quantized_multiplier_double_rounding(acc, m.multiplier, m.shift);
      const int32_t s = z_out + lowbit::multiply_by_quantized_multiplier_single_rounding(acc, m.multiplier, m.shift);
      CHECK(std::clamp(d, -128, 127) == want_out[k]);
      CHECK(std::clamp(s, -128, 127) == want_out[k]);
    }
  }
}
