// cpp/core/float16.h: half and bfloat16 conversions against slow references written from the
// IEEE definitions (double arithmetic, explicit round-half-even), exhaustively where the input
// space is 2^16, at every rounding edge, and on millions of random bit patterns; and against the
// F16C instructions when this CPU has them.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "core/float16.h"
#include "f16c_reference.h"
#include "test_util.h"

using lowbit::BFloat16;
using lowbit::Half;
using lowbit_test::bits_of;
using lowbit_test::describe;
using lowbit_test::float_of;
using lowbit_test::hex16;
using lowbit_test::hex32;
using lowbit_test::same_float;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// |a| (finite, >= 0) rounded to nearest, ties to even, on the grid of a binary format with
// `mant_bits` stored fraction bits and smallest normal exponent `emin` (subnormal spacing
// 2^(emin - mant_bits)). Every step is exact in double for float inputs.
double round_to_format(double a, int mant_bits, int emin) {
  if (a == 0) return 0;
  int e = 0;
  std::frexp(a, &e);  // a = m · 2^e, m in [0.5, 1): leading bit at 2^(e-1)
  const int lead = std::max(e - 1, emin);
  const double unit = std::ldexp(1.0, lead - mant_bits);
  const double q = a / unit;
  const double fl = std::floor(q), frac = q - fl;
  const double r = frac > 0.5 ? fl + 1 : frac < 0.5 ? fl : (std::fmod(fl, 2.0) == 0 ? fl : fl + 1);
  return r * unit;
}

// Bits (without sign) of a value on the format's grid and within its finite range.
uint16_t encode_format(double v, int mant_bits, int emin, int bias) {
  if (v < std::ldexp(1.0, emin)) return static_cast<uint16_t>(v / std::ldexp(1.0, emin - mant_bits));
  int e = 0;
  std::frexp(v, &e);
  const int exponent = e - 1;
  const double fraction = v / std::ldexp(1.0, exponent) - 1.0;
  return static_cast<uint16_t>(((exponent + bias) << mant_bits) |
                               static_cast<int>(fraction * std::ldexp(1.0, mant_bits)));
}

// float -> half, RNE, overflow to Inf. NaN rule of float16.h (the F16C rule): quiet, sign and
// the top 10 payload bits kept.
uint16_t half_reference(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = (u >> 31) ? 0x8000 : 0;
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7E00u | ((u >> 13) & 0x3FFu));
  if (std::isinf(f)) return static_cast<uint16_t>(sign | 0x7C00u);
  const double v = round_to_format(std::fabs(static_cast<double>(f)), 10, -14);
  if (v > 65504.0) return static_cast<uint16_t>(sign | 0x7C00u);
  return static_cast<uint16_t>(sign | encode_format(v, 10, -14, 15));
}

// float -> bfloat16, RNE, overflow to Inf; every NaN -> 0x7FC0 (c10::BFloat16).
uint16_t bf16_reference(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = (u >> 31) ? 0x8000 : 0;
  if (std::isnan(f)) return 0x7FC0;
  if (std::isinf(f)) return static_cast<uint16_t>(sign | 0x7F80u);
  const double v = round_to_format(std::fabs(static_cast<double>(f)), 7, -126);
  const double bf16_max = std::ldexp(255.0, 127 - 7);  // (2 - 2^-7) · 2^127
  if (v > bf16_max) return static_cast<uint16_t>(sign | 0x7F80u);
  return static_cast<uint16_t>(sign | encode_format(v, 7, -126, 127));
}

// half -> float from the definition (value = ±m·2^-24 or ±(1 + m/1024)·2^(e-15)).
float half_value_reference(uint16_t h) {
  const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0x1F) return m == 0 ? static_cast<float>(sign * kInf) : std::numeric_limits<float>::quiet_NaN();
  const double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(1.0 + m / 1024.0, e - 15);
  return static_cast<float>(sign * mag);
}

bool half_is_nan(uint16_t h) { return lowbit_test::half_bits_is_nan(h); }

// Inputs that sit on or next to every rounding edge of both formats, plus random bit patterns.
std::vector<float> conversion_inputs(size_t random_count) {
  std::vector<float> xs;
  auto with_neighbors = [&](float v) {
    xs.push_back(v);
    xs.push_back(std::nextafter(v, -kInf));
    xs.push_back(std::nextafter(v, kInf));
    xs.push_back(-v);
    xs.push_back(-std::nextafter(v, kInf));
  };
  // Every exponent and top-10 mantissa pattern, with the dropped 13 bits at the half ties and
  // their neighbours, and the dropped 16 bits at the bfloat16 ties.
  for (uint32_t sign = 0; sign < 2; ++sign) {
    for (uint32_t exponent = 0; exponent < 256; ++exponent) {
      for (uint32_t top = 0; top < 1024; ++top) {
        const uint32_t base = (sign << 31) | (exponent << 23) | (top << 13);
        for (uint32_t low : {0x0u, 0x1u, 0x0FFFu, 0x1000u, 0x1001u, 0x1FFFu}) xs.push_back(float_of(base | low));
      }
      for (uint32_t top = 0; top < 128; ++top) {
        const uint32_t base = (sign << 31) | (exponent << 23) | (top << 16);
        for (uint32_t low : {0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) xs.push_back(float_of(base | low));
      }
    }
  }
  // The half subnormal grid (2^-24) and every tie between its points (odd multiples of 2^-25),
  // up to the smallest normal 2^-14, and the tie just below it.
  for (int k = 0; k <= 2048; ++k) with_neighbors(std::ldexp(static_cast<float>(k), -25));
  for (float v : {65504.0f, 65519.99f, 65520.0f, 65536.0f, 1.0e5f, FLT_MAX, 6.1035156e-05f /* 2^-14 */,
                  5.9604645e-08f /* 2^-24 */, 2.9802322e-08f /* 2^-25 */, 1.0e-45f, FLT_MIN, 1.0f,
                  1.00048828125f /* 1 + 2^-11, a tie */, 1.00146484375f /* 1 + 3·2^-11 */, 3.3895314e38f}) {
    with_neighbors(v);
  }
  for (float v : {0.0f, kInf, std::numeric_limits<float>::quiet_NaN()}) {
    xs.push_back(v);
    xs.push_back(-v);
  }
  for (uint32_t nan : {0x7F800001u, 0x7FBFFFFFu, 0x7FC00000u, 0x7FFFE000u, 0x7F802000u, 0xFFC00001u}) {
    xs.push_back(float_of(nan));
  }
  lowbit_test::SplitMix64 rng(0xF16);
  for (size_t i = 0; i < random_count; ++i) xs.push_back(float_of(rng.next_u32()));
  return xs;
}

}  // namespace

TEST_CASE("half: the reference agrees with the hand-checked edge values", "[float16]") {
  // Guards the reference itself before it judges float16.h.
  CHECK(half_reference(65504.0f) == 0x7BFF);
  CHECK(half_reference(65519.99f) == 0x7BFF);  // below the 65520 midpoint to 2^16
  CHECK(half_reference(65520.0f) == 0x7C00);   // the tie to 65536 rounds to even, i.e. overflows
  CHECK(half_reference(-65520.0f) == 0xFC00);
  CHECK(half_reference(1.00048828125f) == 0x3C00);  // tie 1 + 2^-11 -> 1.0 (even)
  CHECK(half_reference(1.00146484375f) == 0x3C02);  // tie 1 + 3·2^-11 -> 1 + 2^-9 (even)
  CHECK(half_reference(std::ldexp(1.0f, -25)) == 0x0000);  // tie between 0 and 2^-24 -> 0
  CHECK(half_reference(std::ldexp(3.0f, -25)) == 0x0002);  // tie 1.5 units -> 2
  CHECK(half_reference(std::ldexp(2047.0f, -25)) == 0x0400);  // tie 1023.5 units -> 1024 = 2^-14
  CHECK(half_reference(-0.0f) == 0x8000);
  CHECK(half_reference(-1.0e-45f) == 0x8000);
  CHECK(bf16_reference(1.0f) == 0x3F80);
  CHECK(bf16_reference(float_of(0x3F808000u)) == 0x3F80);  // tie -> even
  CHECK(bf16_reference(float_of(0x3F818000u)) == 0x3F82);  // tie -> even (up)
  CHECK(bf16_reference(FLT_MAX) == 0x7F80);
  CHECK(bf16_reference(float_of(0x7F7F7FFFu)) == 0x7F7F);
}

TEST_CASE("half: all 65536 bit patterns -> float is exact", "[float16]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t hb = static_cast<uint16_t>(h);
    const float f = lowbit::half_to_float(Half{hb});
    if (half_is_nan(hb)) {
      // NaN payload kept: sign, exponent all ones, the 10 payload bits at the top of the float's
      // 23 (a signalling half NaN stays signalling; see the F16C case below).
      INFO("half " << hex16(hb) << " -> " << hex32(bits_of(f)));
      REQUIRE(bits_of(f) == ((static_cast<uint32_t>(hb & 0x8000u) << 16) | 0x7F800000u |
                             (static_cast<uint32_t>(hb & 0x3FFu) << 13)));
    } else {
      INFO("half " << hex16(hb) << " -> " << describe(f));
      REQUIRE(bits_of(f) == bits_of(half_value_reference(hb)));
    }
  }
}

TEST_CASE("half: all 65536 bit patterns round-trip half -> float -> half", "[float16]") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t hb = static_cast<uint16_t>(h);
    const uint16_t back = lowbit::float_to_half(lowbit::half_to_float(Half{hb})).bits;
    INFO("half " << hex16(hb) << " -> " << hex16(back));
    // Non-NaN: identical. NaN: the payload survives and the quiet bit (0x0200) is set, so a
    // signalling NaN comes back quiet (F16C does the same).
    REQUIRE(back == (half_is_nan(hb) ? (hb | 0x0200u) : hb));
  }
}

TEST_CASE("half: float -> half equals the RNE reference at every edge and on random bits", "[float16]") {
  const std::vector<float> xs = conversion_inputs(3000000);
  size_t mismatches = 0;
  for (float f : xs) {
    const uint16_t got = lowbit::float_to_half(f).bits, want = half_reference(f);
    if (got != want && ++mismatches <= 8) {
      FAIL_CHECK("float_to_half(" << describe(f) << ") = " << hex16(got) << ", reference " << hex16(want));
    }
  }
  CHECK(mismatches == 0);
  // The named edges, spelled out.
  CHECK(lowbit::float_to_half(65504.0f).bits == 0x7BFF);
  CHECK(lowbit::float_to_half(65519.99f).bits == 0x7BFF);
  CHECK(lowbit::float_to_half(65520.0f).bits == 0x7C00);
  CHECK(lowbit::float_to_half(-kInf).bits == 0xFC00);
  CHECK(lowbit::float_to_half(std::ldexp(1.0f, -24)).bits == 0x0001);
  CHECK(lowbit::float_to_half(std::ldexp(1.0f, -25)).bits == 0x0000);
  CHECK(lowbit::float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)).bits == 0x0001);
  CHECK(lowbit::float_to_half(-0.0f).bits == 0x8000);
  CHECK(lowbit::float_to_half(float_of(0x7FC00000u)).bits == 0x7E00);
  CHECK(lowbit::float_to_half(float_of(0xFF800001u)).bits == 0xFE00);  // sNaN, payload below bit 13
}

TEST_CASE("half: agrees with the F16C instructions bit for bit", "[float16][f16c]") {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("f16c")) {
    WARN("skipped: this CPU has no F16C, so there is no hardware reference to compare with");
    return;
  }
  const std::vector<float> xs = conversion_inputs(3000000);
  size_t mismatches = 0;
  for (float f : xs) {
    const uint16_t got = lowbit::float_to_half(f).bits, hw = lowbit_test::f16c_float_to_half(f);
    if (got != hw && ++mismatches <= 8) {
      FAIL_CHECK("float_to_half(" << describe(f) << ") = " << hex16(got) << ", vcvtps2ph " << hex16(hw));
    }
  }
  CHECK(mismatches == 0);
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t hb = static_cast<uint16_t>(h);
    const uint32_t got = bits_of(lowbit::half_to_float(Half{hb}));
    const uint32_t hw = bits_of(lowbit_test::f16c_half_to_float(hb));
    INFO("half " << hex16(hb) << ": lowbit " << hex32(got) << ", vcvtph2ps " << hex32(hw));
    // The one documented difference: vcvtph2ps quiets a signalling NaN (sets float bit 22);
    // half_to_float keeps the bits. Both are NaN with the same payload otherwise.
    if (half_is_nan(hb)) {
      REQUIRE(hw == (got | 0x00400000u));
    } else {
      REQUIRE(got == hw);
    }
  }
}

TEST_CASE("bfloat16: all 65536 bit patterns -> float -> bfloat16", "[float16][bfloat16]") {
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t bb = static_cast<uint16_t>(b);
    const float f = lowbit::bfloat16_to_float(BFloat16{bb});
    REQUIRE(bits_of(f) == (static_cast<uint32_t>(bb) << 16));  // exact: bfloat16 is a float prefix
    const uint16_t back = lowbit::float_to_bfloat16(f).bits;
    INFO("bf16 " << hex16(bb) << " -> " << hex16(back));
    REQUIRE(back == (lowbit_test::bf16_bits_is_nan(bb) ? 0x7FC0 : bb));  // every NaN -> 0x7FC0
  }
}

TEST_CASE("bfloat16: float -> bfloat16 equals the RNE reference at every edge and on random bits", "[float16][bfloat16]") {
  const std::vector<float> xs = conversion_inputs(3000000);
  size_t mismatches = 0;
  for (float f : xs) {
    const uint16_t got = lowbit::float_to_bfloat16(f).bits, want = bf16_reference(f);
    if (got != want && ++mismatches <= 8) {
      FAIL_CHECK("float_to_bfloat16(" << describe(f) << ") = " << hex16(got) << ", reference " << hex16(want));
    }
  }
  CHECK(mismatches == 0);
  CHECK(lowbit::float_to_bfloat16(float_of(0xFFC00001u)).bits == 0x7FC0);  // negative NaN too
  CHECK(lowbit::float_to_bfloat16(float_of(0x7F800001u)).bits == 0x7FC0);
  CHECK(lowbit::float_to_bfloat16(FLT_MAX).bits == 0x7F80);   // rounds up past the largest bf16
  CHECK(lowbit::float_to_bfloat16(-FLT_MAX).bits == 0xFF80);
  CHECK(lowbit::float_to_bfloat16(1.0e-45f).bits == 0x0000);  // float subnormal below bf16's grid
  CHECK(lowbit::float_to_bfloat16(-0.0f).bits == 0x8000);
}

TEST_CASE("float16.h: load_as_float / store_from_float are the conversions", "[float16]") {
  const float vals[] = {0.0f, -0.0f, 1.5f, -65504.0f, 70000.0f, 3.0e-8f, -kInf};
  for (float v : vals) {
    Half h{};
    BFloat16 b{};
    float f = 0;
    lowbit::store_from_float(&h, v);
    lowbit::store_from_float(&b, v);
    lowbit::store_from_float(&f, v);
    CHECK(h.bits == lowbit::float_to_half(v).bits);
    CHECK(b.bits == lowbit::float_to_bfloat16(v).bits);
    CHECK(same_float(f, v));
    CHECK(same_float(lowbit::load_as_float(&h), lowbit::half_to_float(h)));
    CHECK(same_float(lowbit::load_as_float(&b), lowbit::bfloat16_to_float(b)));
    CHECK(same_float(lowbit::load_as_float(&f), v));
  }
}
