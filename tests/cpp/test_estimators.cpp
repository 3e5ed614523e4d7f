// The estimator layer, torch-free: cpp/core/vmath.h's polynomial exp/log/tanh/logistic against
// the C library (accuracy claims of the header, NaN/Inf behaviour), METHODS test vectors through
// the per-element specs (lsq.h, pact.h, qil.h, soft_quant.h), and every estimator kernel of every
// ISA table this CPU can run against the scalar table, bit for bit (outputs, dx and the reduced
// parameter-gradient sums), at lengths 0..70 and a long odd length, on adversarial inputs, with
// canaries after every output buffer (tails must not write past n); that comparison is
// estimator_kernel_checks.h, shared with the emulated AVX-512 suite.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "estimator_kernel_checks.h"
#include "core/lsq.h"
#include "core/pact.h"
#include "core/qil.h"
#include "core/soft_quant.h"
#include "core/vmath.h"
#include "kernels/dispatch.h"
#include "kernels/estimator_kernels.h"
#include "test_util.h"

using lowbit::ScalarOps;
using lowbit::kernels::EstimatorKernels;
using lowbit::kernels::Isa;
using lowbit::kernels::RngStream;
using lowbit_test::describe;
using lowbit_test::same_float;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Distance in units in the last place between a float result and a double reference.
double ulp_error(float got, double want) {
  const float wf = static_cast<float>(want);
  const float next = std::nextafter(std::fabs(wf), kInf);
  const double ulp = static_cast<double>(next) - std::fabs(static_cast<double>(wf));
  return std::fabs(static_cast<double>(got) - want) / ulp;
}

}  // namespace

TEST_CASE("exp_poly is within 2 ulp of exp on -87.33..88 and saturates outside", "[vmath]") {
  double worst = 0;
  for (int i = 0; i <= 2000000; ++i) {
    const float x = -87.33f + (88.0f + 87.33f) * static_cast<float>(i) / 2000000.0f;
    worst = std::max(worst, ulp_error(lowbit::exp_poly<ScalarOps>(x), std::exp(static_cast<double>(x))));
  }
  INFO("worst ulp error " << worst);
  CHECK(worst <= 2.0);
  CHECK(lowbit::exp_poly<ScalarOps>(0.0f) == 1.0f);
  CHECK(std::isfinite(lowbit::exp_poly<ScalarOps>(kInf)));
  CHECK(lowbit::exp_poly<ScalarOps>(-kInf) > 0.0f);
  CHECK(std::isnan(lowbit::exp_poly<ScalarOps>(kNaN)));
}

TEST_CASE("log_poly is within 2 ulp of log on 2^-20..1e6", "[vmath]") {
  double worst = 0;
  lowbit_test::SplitMix64 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const float x = static_cast<float>(std::exp(rng.uniform() * (std::log(1e6) + 20 * std::log(2.0)) -
                                                20 * std::log(2.0)));
    const double want = std::log(static_cast<double>(x));
    if (std::fabs(want) < 1e-3) continue;  // ulp of a near-zero result says nothing of relative accuracy
    worst = std::max(worst, ulp_error(lowbit::log_poly<ScalarOps>(x), want));
  }
  INFO("worst ulp error " << worst);
  CHECK(worst <= 2.0);
  CHECK(lowbit::log_poly<ScalarOps>(1.0f) == 0.0f);
  CHECK(std::isnan(lowbit::log_poly<ScalarOps>(kNaN)));
}

TEST_CASE("tanh_poly: relative error below 3e-7 with exact saturation and odd symmetry", "[vmath]") {
  double worst = 0;
  for (int i = -400000; i <= 400000; ++i) {
    const float x = static_cast<float>(i) * 2.5e-5f;  // [-10, 10]
    const double want = std::tanh(static_cast<double>(x));
    const float got = lowbit::tanh_poly<ScalarOps>(x);
    if (want != 0) worst = std::max(worst, std::fabs(got - want) / std::fabs(want));
    REQUIRE(lowbit::tanh_poly<ScalarOps>(-x) == -got);
  }
  INFO("worst relative error " << worst);
  CHECK(worst < 3e-7);
  CHECK(lowbit::tanh_poly<ScalarOps>(30.0f) == 1.0f);
  CHECK(lowbit::tanh_poly<ScalarOps>(-kInf) == -1.0f);
  CHECK(std::isnan(lowbit::tanh_poly<ScalarOps>(kNaN)));
  const float tiny = 1e-30f;
  CHECK(lowbit::tanh_poly<ScalarOps>(tiny) == tiny);
}

TEST_CASE("logistic_poly: g and 1 - g with full relative precision", "[vmath]") {
  double worst_g = 0, worst_c = 0;
  for (int i = -300000; i <= 300000; ++i) {
    const float v = static_cast<float>(i) * 1e-4f;  // [-30, 30]
    const double g = 1.0 / (1.0 + std::exp(-static_cast<double>(v)));
    const double c = 1.0 / (1.0 + std::exp(static_cast<double>(v)));
    const auto got = lowbit::logistic_poly<ScalarOps>(v);
    worst_g = std::max(worst_g, std::fabs(got.g - g) / g);
    worst_c = std::max(worst_c, std::fabs(got.one_minus_g - c) / c);
  }
  INFO("worst relative errors " << worst_g << " " << worst_c);
  CHECK(worst_g < 4e-7);
  CHECK(worst_c < 4e-7);
}

TEST_CASE("sigmoid staircase: grouped exponentials stay within 1e-6 of the float64 staircase", "[spec]") {
  // Levels -1.5..1.5 in steps of 1, 0.5 and 1.5; thresholds at the midpoints.
  const float steps[] = {1.0f, 0.5f, 1.5f};
  const float thresholds[] = {-1.0f, -0.25f, 0.75f};
  const float y0 = -1.5f;
  struct Case { float temperature; int32_t groups; };
  // T = 5: one group (span 8.75); T = 10: {1, 2} and {3} (span 7.5, then 17.5); T = 40: singles.
  for (const Case c : {Case{5.0f, 1}, Case{10.0f, 2}, Case{40.0f, 3}}) {
    float ratios[3], centers[3];
    int32_t ends[3];
    const int32_t groups = lowbit::make_sigmoid_groups(c.temperature, thresholds, 3, ratios, centers, ends);
    REQUIRE(groups == c.groups);
    REQUIRE(ends[groups - 1] == 3);
    const float beta = 1.25f;
    const lowbit::SigmoidParams p = lowbit::make_sigmoid_params(1.0f, beta, c.temperature, y0, steps, thresholds, 3,
                                                                ratios, centers, ends, groups);
    double worst_level = 0, worst_slope = 0;
    for (int k = -40000; k <= 40000; ++k) {
      const float x = static_cast<float>(k) * 5e-5f;  // [-2, 2]
      const auto got = lowbit::sigmoid_sums<ScalarOps, false, true>(x, p);
      const double bx = static_cast<double>(got.bx);  // the float product both forms start from
      double level = y0, slope = 0;
      for (int i = 0; i < 3; ++i) {
        const double g = 1.0 / (1.0 + std::exp(-c.temperature * (bx - thresholds[i])));
        level += steps[i] * g;
        slope += steps[i] * g * (1.0 - g);
      }
      worst_level = std::max(worst_level, std::fabs(got.level - level));
      worst_slope = std::max(worst_slope, std::fabs(got.slope - slope));
    }
    INFO("T=" << c.temperature << ": worst absolute errors " << worst_level << " " << worst_slope);
    CHECK(worst_level < 1e-6);
    CHECK(worst_slope < 1e-6);
    // Saturation: far outside, the levels are exact and the slope vanishes; NaN stays NaN.
    const auto lo = lowbit::sigmoid_sums<ScalarOps, false, true>(-std::numeric_limits<float>::infinity(), p);
    const auto hi = lowbit::sigmoid_sums<ScalarOps, false, true>(std::numeric_limits<float>::infinity(), p);
    CHECK(lo.level == y0);
    CHECK(hi.level == y0 + 3.0f);
    CHECK(lo.slope < 1e-30f);
    CHECK(hi.slope < 1e-30f);
    CHECK(std::isnan(lowbit::sigmoid_sums<ScalarOps, false, true>(std::nanf(""), p).level));
  }
}

TEST_CASE("LSQ spec: METHODS §4.1 vectors", "[spec]") {
  const lowbit::LsqParams p = lowbit::make_lsq_params(0.2f, 0.0f, -4, 3);
  const lowbit::LsqVec<ScalarOps> pv(p);
  struct Case { float v, vhat, dv, ds; };
  const Case cases[] = {{-1.0f, -0.8f, 0, -4}, {-0.33f, -0.4f, 1, -0.35f}, {0.05f, 0.0f, 1, -0.25f},
                        {0.26f, 0.2f, 1, -0.30f}, {0.8f, 0.6f, 0, 3}};
  for (const Case& c : cases) {
    const float v = lowbit::lsq_scaled<ScalarOps, false>(c.v, pv);
    const float r = ScalarOps::rne(v);
    CHECK(lowbit::lsq_output<ScalarOps, false>(r, pv) == Approx(c.vhat).margin(1e-6));
    const auto g = lowbit::lsq_grads<ScalarOps>(v, r, 1.0f, pv);
    CHECK(g.dx == c.dv);
    CHECK(g.dscale == Approx(c.ds).margin(1e-6));
  }
}

TEST_CASE("PACT and DSQ specs: METHODS §3 and §6.1 vectors", "[spec]") {
  const lowbit::PactVec<ScalarOps> pv(lowbit::make_pact_params(3.0f, 2, false));
  const float xs[] = {-1.0f, 0.3f, 1.1f, 2.9f, 3.5f};
  const float yq[] = {0, 0, 1, 3, 3}, dx[] = {0, 1, 1, 1, 0}, da[] = {0, 0, 0, 0, 1};
  for (int i = 0; i < 5; ++i) {
    CHECK(lowbit::pact_output<ScalarOps>(ScalarOps::rne(lowbit::pact_scaled<ScalarOps>(xs[i], pv)), pv) == yq[i]);
    const auto g = lowbit::pact_grads<ScalarOps, false>(xs[i], 1.0f, pv);
    CHECK(g.dx == dx[i]);
    CHECK(g.dalpha == da[i]);
  }
  const lowbit::DsqVec<ScalarOps> dv(lowbit::make_dsq_params(-1.0f, 1.0f, 0.2f, 2));
  const float x[] = {-0.9f, -0.4f, 0.1f, 0.34f, 0.9f};
  const float qs[] = {-0.935985f, -0.372557f, 0.132561f, 0.336688f, 0.935985f};
  const float dq[] = {0.799533f, 0.689047f, 1.234267f, 0.511975f, 0.799533f};
  for (int i = 0; i < 5; ++i) {
    const float v = lowbit::dsq_scaled<ScalarOps>(x[i], dv);
    const auto st = lowbit::dsq_soft_state<ScalarOps>(v, dv);
    CHECK(lowbit::dsq_soft_output<ScalarOps>(x[i], st, dv) == Approx(qs[i]).margin(2e-6));
    CHECK(lowbit::dsq_grads<ScalarOps>(x[i], v, st, 1.0f, dv).dx == Approx(dq[i]).margin(3e-6));
  }
}

TEST_CASE("QIL spec: METHODS §5 transformer values", "[spec]") {
  const lowbit::QilVec<ScalarOps> lin(lowbit::make_qil_params(0.4f, 0.3f, 1.0f, 16, true));
  const lowbit::QilVec<ScalarOps> sq(lowbit::make_qil_params(0.4f, 0.3f, 2.0f, 16, true));
  const float w[] = {0.05f, 0.35f, -0.5f, 0.9f};
  const float t1[] = {0.0f, 0.416667f, -0.666667f, 1.0f}, t2[] = {0.0f, 0.173611f, -0.444444f, 1.0f};
  for (int i = 0; i < 4; ++i) {
    const auto s1 = lowbit::qil_state<ScalarOps, true, false>(w[i], lin);
    const auto s2 = lowbit::qil_state<ScalarOps, true, true>(w[i], sq);
    const float y1 = lowbit::qil_output<ScalarOps>(s1, ScalarOps::rne(lowbit::qil_scaled<ScalarOps>(s1, lin)), lin);
    const float y2 = lowbit::qil_output<ScalarOps>(s2, ScalarOps::rne(lowbit::qil_scaled<ScalarOps>(s2, sq)), sq);
    CHECK(y1 == Approx(t1[i]).margin(2e-5));
    CHECK(y2 == Approx(t2[i]).margin(2e-5));
  }
}

// ---- every ISA table against the scalar table (estimator_kernel_checks.h) ----------------

TEST_CASE("estimator kernels: every ISA equals the scalar table bit for bit", "[kernels]") {
  const EstimatorKernels& ref = lowbit::kernels::estimator_kernels_scalar();
  for (int isa = 1; isa < lowbit::kernels::kNumIsas; ++isa) {
    if (!lowbit::kernels::isa_supported(static_cast<Isa>(isa))) {
      WARN("skipping the " << lowbit::kernels::isa_name(static_cast<Isa>(isa)) << " estimator tables: this CPU "
                           << "cannot run them (machines that can run this case; test_avx512_emulated runs "
                           << "the AVX-512 sources against emulated intrinsics here)");
      continue;
    }
    const EstimatorKernels& t =
        isa == 1 ? lowbit::kernels::estimator_kernels_avx2() : lowbit::kernels::estimator_kernels_avx512();
    lowbit_estimator_test::check_table_equals_reference(t, ref);
  }
}

TEST_CASE("stochastic estimator kernels: draws follow the element counter and not the call split", "[kernels]") {
  const auto& sk = lowbit::kernels::estimator_stochastic_kernels();
  const lowbit::LsqParams lp = lowbit::make_lsq_params(0.3f, 0.0f, -8, 7);
  const auto x = lowbit_estimator_test::adversarial(997, 3, 0.3f);
  std::vector<float> whole(997), parts(997);
  sk.lsq_forward[0][0](x.data(), whole.data(), 997, lp, RngStream{42, 100});
  // The same elements in two calls whose counters continue where the first stopped.
  sk.lsq_forward[0][0](x.data(), parts.data(), 400, lp, RngStream{42, 100});
  sk.lsq_forward[0][0](x.data() + 400, parts.data() + 400, 597, lp, RngStream{42, 500});
  for (size_t i = 0; i < whole.size(); ++i) REQUIRE(same_float(whole[i], parts[i]));
}
