// cpp/core/affine.h: the per-element affine contract (METHODS §1.4 vectors, integer- vs
// real-domain STE masks of §2, multiply-by-reciprocal of §0, and the NaN/Inf contract).
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <limits>

#include "core/affine.h"
#include "test_util.h"

using lowbit::AffineParams;
using lowbit::Rounding;
using lowbit_test::bits_of;
using lowbit_test::describe;
using lowbit_test::same_float;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr Rounding kDeterministic[] = {Rounding::HalfEven, Rounding::HalfAway, Rounding::HalfUp,
                                       Rounding::Floor, Rounding::Ceil};

float fake_quantize(float x, const AffineParams& p, Rounding r = Rounding::HalfEven) {
  return lowbit::fake_quantize_from_code(lowbit::affine_code_unclamped(x, p, r), p);
}
bool integer_mask(float x, const AffineParams& p, Rounding r = Rounding::HalfEven) {
  return lowbit::ste_integer_mask(lowbit::affine_code_unclamped(x, p, r), p);
}

}  // namespace

TEST_CASE("affine: make_affine_params", "[affine]") {
  const AffineParams p = lowbit::make_affine_params(0.5f, 3, 0, 7);
  CHECK(p.scale == 0.5f);
  CHECK(p.inv_scale == 2.0f);
  CHECK(p.zero_point == 3.0f);
  CHECK(p.qmin == 0.0f);
  CHECK(p.qmax == 7.0f);
  CHECK(p.real_lo == -1.5f);
  CHECK(p.real_hi == 2.0f);
  // The reciprocal is the float32 1.0f / scale, not a double one.
  const AffineParams q = lowbit::make_affine_params(0.1f, 0, -128, 127);
  CHECK(bits_of(q.inv_scale) == bits_of(1.0f / 0.1f));
  // 16-bit ranges and zero points convert exactly.
  const AffineParams w = lowbit::make_affine_params(1.0f, -32768, -32768, 65535);
  CHECK(w.zero_point == -32768.0f);
  CHECK(w.qmax == 65535.0f);
}

TEST_CASE("affine: METHODS 1.4 per-tensor vector (s = 0.5 z = 0 range -4..4)", "[affine]") {
  const AffineParams p = lowbit::make_affine_params(0.5f, 0, -4, 4);
  struct Row {
    float x, y;
    bool grad;
  };
  // torch.fake_quantize_per_tensor_affine (torch 1.13; unchanged in 2.13).
  const Row rows[] = {
      {0.25f, 0.0f, true},   {0.75f, 1.0f, true},    {-0.25f, 0.0f, true},  {1.25f, 1.0f, true},
      {-1.25f, -1.0f, true}, {2.5f, 2.0f, false},    {100.0f, 2.0f, false}, {-100.0f, -2.0f, false},
      {0.74f, 0.5f, true},   {1.9f, 2.0f, true},     {2.1f, 2.0f, true},    {2.25f, 2.0f, true},
      {2.26f, 2.0f, false},  {-2.24f, -2.0f, true},  {-2.25f, -2.0f, true}, {-2.26f, -2.0f, false},
  };
  for (const Row& r : rows) {
    INFO("x = " << describe(r.x));
    CHECK(same_float(fake_quantize(r.x, p), r.y));
    CHECK(integer_mask(r.x, p) == r.grad);
  }
  // The ties of the first four columns: 0.5 -> 0, 1.5 -> 2, -0.5 -> -0, 2.5 -> 2 (RNE codes); the
  // fake-quant output of code -0 is (-0 + 0 - 0)·s = +0, as PyTorch's (q - z)·s in int64 gives.
  CHECK(lowbit::affine_code_unclamped(0.25f, p, Rounding::HalfEven) == 0.0f);
  CHECK(lowbit::affine_code_unclamped(0.75f, p, Rounding::HalfEven) == 2.0f);
  CHECK(lowbit::affine_code_unclamped(1.25f, p, Rounding::HalfEven) == 2.0f);
  CHECK(bits_of(fake_quantize(-0.25f, p)) == 0u);
  // 2.25 / 0.5 = 4.5 rounds to 4 (even): inside, the gradient passes; 4.52 rounds to 5: outside.
  CHECK(lowbit::affine_code_unclamped(2.25f, p, Rounding::HalfEven) == 4.0f);
  CHECK(lowbit::affine_code_unclamped(2.26f, p, Rounding::HalfEven) == 5.0f);
}

TEST_CASE("affine: METHODS 1.4 with z = 3 and range 0..7", "[affine]") {
  const AffineParams p = lowbit::make_affine_params(0.5f, 3, 0, 7);
  const float xs[] = {0.25f, 0.75f, -0.25f, 1.25f, -1.25f};
  const float ys[] = {0.0f, 1.0f, 0.0f, 1.0f, -1.0f};
  for (int i = 0; i < 5; ++i) {
    INFO("x = " << describe(xs[i]));
    CHECK(same_float(fake_quantize(xs[i], p), ys[i]));
    CHECK(integer_mask(xs[i], p));
  }
  // The edges move with z: codes 0..7 cover [-1.5, 2.0]; -1.75 -> code 3 - 3.5 -> 3 - 4 = -1 (RNE
  // of -3.5 is -4), outside; -1.74 -> 3 - 3 = 0, inside.
  CHECK_FALSE(integer_mask(-1.75f, p));
  CHECK(integer_mask(-1.74f, p));
  CHECK(same_float(fake_quantize(-1.75f, p), -1.5f));
  CHECK(integer_mask(2.25f, p));  // code 3 + 4 (4.5 -> 4) = 7
  CHECK_FALSE(integer_mask(2.26f, p));
}

TEST_CASE("affine: METHODS 1.4 per-channel vector (one AffineParams per channel)", "[affine]") {
  // X = [[0.1, -0.26, 0.5], [1.0, 3.0, -2.0]], scale [0.1, 1.0], zp [0, 2], axis 0, range [-2, 2].
  const AffineParams ch[2] = {lowbit::make_affine_params(0.1f, 0, -2, 2), lowbit::make_affine_params(1.0f, 2, -2, 2)};
  const float x[2][3] = {{0.1f, -0.26f, 0.5f}, {1.0f, 3.0f, -2.0f}};
  const float y[2][3] = {{0.1f, -0.2f, 0.2f}, {0.0f, 0.0f, -2.0f}};
  const bool dx[2][3] = {{true, false, false}, {false, false, true}};
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 3; ++i) {
      INFO("channel " << c << ", x = " << describe(x[c][i]));
      CHECK(fake_quantize(x[c][i], ch[c]) == y[c][i]);
      CHECK(integer_mask(x[c][i], ch[c]) == dx[c][i]);
    }
  }
}

TEST_CASE("affine: integer-domain vs real-domain STE masks (METHODS 2)", "[affine]") {
  const AffineParams p = lowbit::make_affine_params(0.5f, 0, -4, 4);
  CHECK(p.real_lo == -2.0f);
  CHECK(p.real_hi == 2.0f);
  // (hi, hi + s/2]: the integer mask passes, the real-domain (TF / TensorRT) mask does not.
  CHECK(integer_mask(2.1f, p));
  CHECK_FALSE(lowbit::ste_real_mask(2.1f, p));
  CHECK_FALSE(integer_mask(2.26f, p));
  CHECK_FALSE(lowbit::ste_real_mask(2.26f, p));
  CHECK(lowbit::ste_real_mask(2.0f, p));  // the edges themselves are inside
  CHECK(lowbit::ste_real_mask(-2.0f, p));
  CHECK_FALSE(lowbit::ste_real_mask(std::nextafter(2.0f, 3.0f), p));
  CHECK(integer_mask(-2.1f, p));
  CHECK_FALSE(lowbit::ste_real_mask(-2.1f, p));
}

TEST_CASE("affine: multiply by the float reciprocal and never divide (METHODS 0)", "[affine]") {
  // FBGEMM's example: x·(1/s) = 127.5 exactly in float32 (code 128 with RNE), x/s = 127.499992.
  const float s = 0.00214854861f, x = 0.273939937f;
  volatile float vs = s, vx = x;
  CHECK(vx / vs < 127.5f);
  const AffineParams p = lowbit::make_affine_params(s, 0, 0, 255);
  CHECK(x * p.inv_scale == 127.5f);
  CHECK(lowbit::affine_code_unclamped(x, p, Rounding::HalfEven) == 128.0f);
  CHECK(lowbit::affine_code_to_int(lowbit::affine_code_unclamped(x, p, Rounding::HalfEven), p) == 128);
}

TEST_CASE("affine: each rounding mode reaches the code", "[affine]") {
  const AffineParams p = lowbit::make_affine_params(1.0f, 0, -10, 10);
  const float x = -2.5f;
  CHECK(lowbit::affine_code_unclamped(x, p, Rounding::HalfEven) == -2.0f);
  CHECK(lowbit::affine_code_unclamped(x, p, Rounding::HalfAway) == -3.0f);
  CHECK(lowbit::affine_code_unclamped(x, p, Rounding::HalfUp) == -2.0f);
  CHECK(lowbit::affine_code_unclamped(x, p, Rounding::Floor) == -3.0f);
  CHECK(lowbit::affine_code_unclamped(x, p, Rounding::Ceil) == -2.0f);
  // Stochastic: floor(x·inv) + [u < frac]; u = 0 always rounds a fraction up, u -> 1 down.
  CHECK(lowbit::affine_code_unclamped_stochastic(-2.5f, p, 0.0f) == -2.0f);
  CHECK(lowbit::affine_code_unclamped_stochastic(-2.5f, p, 0.5f) == -3.0f);
  CHECK(lowbit::affine_code_unclamped_stochastic(2.0f, p, 0.0f) == 2.0f);  // on the grid
}

TEST_CASE("affine: NaN and Inf contract of affine.h", "[affine]") {
  const AffineParams p = lowbit::make_affine_params(0.5f, 1, -4, 4);
  for (Rounding r : kDeterministic) {
    INFO("rounding " << static_cast<int>(r));
    // +Inf saturates to the qmax level (3 steps above z: 1.5), -Inf to qmin (-2.5); mask 0.
    CHECK(same_float(fake_quantize(kInf, p, r), 1.5f));
    CHECK(same_float(fake_quantize(-kInf, p, r), -2.5f));
    CHECK_FALSE(integer_mask(kInf, p, r));
    CHECK_FALSE(integer_mask(-kInf, p, r));
    CHECK(lowbit::affine_code_to_int(lowbit::affine_code_unclamped(kInf, p, r), p) == 4);
    CHECK(lowbit::affine_code_to_int(lowbit::affine_code_unclamped(-kInf, p, r), p) == -4);
    // NaN stays NaN in fake quantization with a zero gradient, and is the zero point as a code.
    CHECK(std::isnan(fake_quantize(kNaN, p, r)));
    CHECK(std::isnan(fake_quantize(-kNaN, p, r)));
    CHECK_FALSE(integer_mask(kNaN, p, r));
    CHECK(lowbit::affine_code_to_int(lowbit::affine_code_unclamped(kNaN, p, r), p) == 1);
    // Finite inputs never produce NaN, even at the float extremes.
    for (float x : {FLT_MAX, -FLT_MAX, 1.0e-45f, -1.0e-45f, 0.0f, -0.0f}) {
      INFO("x = " << describe(x));
      CHECK_FALSE(std::isnan(fake_quantize(x, p, r)));
    }
  }
  CHECK_FALSE(lowbit::ste_real_mask(kNaN, p));
  CHECK_FALSE(lowbit::ste_real_mask(kInf, p));
  CHECK_FALSE(lowbit::ste_real_mask(-kInf, p));
  // Stochastic rounding obeys the same contract.
  CHECK(same_float(lowbit::fake_quantize_from_code(lowbit::affine_code_unclamped_stochastic(kInf, p, 0.3f), p), 1.5f));
  CHECK(std::isnan(lowbit::fake_quantize_from_code(lowbit::affine_code_unclamped_stochastic(kNaN, p, 0.3f), p)));
  CHECK(lowbit::affine_code_to_int(lowbit::affine_code_unclamped_stochastic(kNaN, p, 0.3f), p) == 1);
  // A huge scale whose reciprocal is subnormal, and a tiny one whose products overflow to Inf.
  const AffineParams big = lowbit::make_affine_params(1.0e38f, 0, -128, 127);
  CHECK(big.inv_scale > 0.0f);
  CHECK(big.inv_scale < FLT_MIN);
  CHECK(lowbit::affine_code_unclamped(3.0e38f, big, Rounding::HalfEven) == 3.0f);
  CHECK(same_float(fake_quantize(3.0e38f, big), 3.0f * big.scale));
  const AffineParams tiny = lowbit::make_affine_params(1.0e-30f, 0, -128, 127);
  CHECK(same_float(fake_quantize(1.0e10f, tiny), 127 * 1.0e-30f));
  CHECK_FALSE(integer_mask(1.0e10f, tiny));
}

TEST_CASE("affine: clamp_keep_nan", "[affine]") {
  CHECK(lowbit::clamp_keep_nan(5.0f, -1.0f, 2.0f) == 2.0f);
  CHECK(lowbit::clamp_keep_nan(-5.0f, -1.0f, 2.0f) == -1.0f);
  CHECK(lowbit::clamp_keep_nan(0.5f, -1.0f, 2.0f) == 0.5f);
  CHECK(same_float(lowbit::clamp_keep_nan(-0.0f, -1.0f, 2.0f), -0.0f));
  CHECK(std::isnan(lowbit::clamp_keep_nan(kNaN, -1.0f, 2.0f)));
  CHECK(lowbit::clamp_keep_nan(kInf, -1.0f, 2.0f) == 2.0f);
  CHECK(lowbit::clamp_keep_nan(-kInf, -1.0f, 2.0f) == -1.0f);
}

TEST_CASE("affine: quantize codes clamp to qmin..qmax for every rounding", "[affine]") {
  const AffineParams p = lowbit::make_affine_params(0.25f, -3, -8, 7);
  lowbit_test::SplitMix64 rng(3);
  for (int i = 0; i < 100000; ++i) {
    const float x = static_cast<float>((rng.uniform() - 0.5) * 10.0);
    for (Rounding r : kDeterministic) {
      const float qf = lowbit::affine_code_unclamped(x, p, r);
      const int32_t q = lowbit::affine_code_to_int(qf, p);
      REQUIRE(q >= -8);
      REQUIRE(q <= 7);
      REQUIRE(static_cast<float>(q) == std::fmin(std::fmax(qf, -8.0f), 7.0f));
      // The fake-quant output is the dequantized code.
      REQUIRE(same_float(lowbit::fake_quantize_from_code(qf, p), (static_cast<float>(q) - p.zero_point) * p.scale));
    }
  }
}
