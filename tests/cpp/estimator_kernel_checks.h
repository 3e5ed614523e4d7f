// Checks shared by test_estimators.cpp (the real estimator kernel tables of every ISA this CPU
// runs) and test_avx512_emulated_estimators.cpp (estimator_avx512.cpp compiled against the
// portable AVX-512 intrinsics of avx512_emulation.h): every entry of a table against the scalar
// table, bit for bit (outputs, dx and the reduced parameter-gradient sums), at lengths 0..70 and
// a long odd length, on adversarial inputs, with canaries after every output buffer (tails must
// not write past n).
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/lsq.h"
#include "core/pact.h"
#include "core/qil.h"
#include "core/soft_quant.h"
#include "kernels/estimator_kernels.h"
#include "test_util.h"

namespace lowbit_estimator_test {

using lowbit::kernels::EstimatorKernels;
using lowbit::kernels::RngStream;
using lowbit_test::describe;
using lowbit_test::same_float;

inline constexpr float kInf = std::numeric_limits<float>::infinity();
inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

inline constexpr size_t kGuard = 20;
inline constexpr float kCanary = 12345.678f;

inline std::vector<float> adversarial(size_t n, uint64_t seed, float step) {
  lowbit_test::SplitMix64 rng(seed);
  const float specials[] = {0.0f, -0.0f, kNaN, kInf, -kInf, 1e30f, -1e30f, 1e-40f, -1e-40f, step * 7.5f,
                            -step * 8.5f, step * 0.5f, 1.0f, -1.0f, 3.0f};
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t pick = rng.next() % 8;
    if (pick == 0) {
      x[i] = specials[rng.next() % (sizeof specials / sizeof specials[0])];
    } else if (pick < 3) {
      x[i] = (static_cast<float>(rng.range(-20, 20)) + 0.5f) * step;  // rounding ties
    } else {
      x[i] = static_cast<float>((rng.uniform() * 2 - 1) * 3);
    }
  }
  return x;
}

struct Outputs {
  std::vector<float> y, dx;
  float sums[3] = {0, 0, 0};
};

template <class P>
Outputs run(lowbit::kernels::EstimatorForwardFn<P> fwd, lowbit::kernels::EstimatorBackwardFn<P> bwd, const P& p,
            const std::vector<float>& x, const std::vector<float>& dy) {
  const size_t n = x.size();
  Outputs o;
  o.y.assign(n + kGuard, kCanary);
  o.dx.assign(n + kGuard, kCanary);
  const RngStream rng{11, 5};
  if (fwd != nullptr) fwd(x.data(), o.y.data(), static_cast<int64_t>(n), p, rng);
  if (bwd != nullptr) bwd(x.data(), dy.data(), o.dx.data(), static_cast<int64_t>(n), p, rng, o.sums);
  for (size_t i = n; i < n + kGuard; ++i) {
    REQUIRE(o.y[i] == kCanary);
    REQUIRE(o.dx[i] == kCanary);
  }
  return o;
}

inline void require_same(const Outputs& a, const Outputs& b, const std::string& what) {
  for (size_t i = 0; i < a.y.size(); ++i) {
    INFO(what << " element " << i << ": y " << describe(a.y[i]) << " vs " << describe(b.y[i]) << ", dx "
              << describe(a.dx[i]) << " vs " << describe(b.dx[i]));
    REQUIRE(same_float(a.y[i], b.y[i]));
    REQUIRE(same_float(a.dx[i], b.dx[i]));
  }
  for (int k = 0; k < 3; ++k) {
    INFO(what << " sum " << k << ": " << describe(a.sums[k]) << " vs " << describe(b.sums[k]));
    REQUIRE(same_float(a.sums[k], b.sums[k]));
  }
}

// Table `t` against the scalar table `ref`, bit for bit (f32 entries). The caller checks first
// that its CPU can run `t`.
inline void check_table_equals_reference(const EstimatorKernels& t, const EstimatorKernels& ref) {
  const float levels[] = {-1.0f, 0.0f, 1.0f, 2.0f};
  const float steps[] = {1.0f, 1.0f, 1.0f};
  const float thresholds[] = {-0.5f, 0.5f, 1.5f};
  // T = 9: thresholds 1 and 2 share one exponential (span 9), threshold 3 has its own.
  float ratios[3], centers[3];
  int32_t group_ends[3];
  const int32_t groups = lowbit::make_sigmoid_groups(9.0f, thresholds, 3, ratios, centers, group_ends);
  REQUIRE(groups == 2);
  const lowbit::SigmoidParams sp = lowbit::make_sigmoid_params(0.8f, 1.7f, 9.0f, levels[0], steps, thresholds, 3,
                                                               ratios, centers, group_ends, groups);
  const lowbit::LsqParams lp = lowbit::make_lsq_params(0.125f, 0.25f, -8, 7);
  const lowbit::LearnableGradParams gp = lowbit::make_learnable_grad_params(0.0173f, 3.5f, -128, 127, 0.01f, true);
  const lowbit::PactParams pp = lowbit::make_pact_params(1.7f, 3, true);
  const lowbit::QilParams qp = lowbit::make_qil_params(0.9f, 0.6f, 1.4f, 4, true);
  const lowbit::DsqParams dp = lowbit::make_dsq_params(-1.2f, 1.5f, 0.2f, 3);
  constexpr int f32 = 0;
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 70; ++n) lengths.push_back(n);
  lengths.push_back(100003);
  for (size_t n : lengths) {
    const auto x = adversarial(n, 1000 + n, 0.125f);
    auto dy = adversarial(n, 2000 + n, 0.5f);
    for (float& v : dy) v = std::isfinite(v) && std::fabs(v) < 10 ? v : 0.5f;
    const std::string at = std::string(t.isa_name) + " n=" + std::to_string(n);
    for (int o = 0; o < 2; ++o) {
      require_same(run(t.lsq_forward[f32][o], t.lsq_backward[f32][o], lp, x, dy),
                   run(ref.lsq_forward[f32][o], ref.lsq_backward[f32][o], lp, x, dy), "lsq " + at);
    }
    for (int fused = 0; fused < 2; ++fused) {
      require_same(run<lowbit::LearnableGradParams>(nullptr, t.learnable_backward[f32][fused], gp, x, dy),
                   run<lowbit::LearnableGradParams>(nullptr, ref.learnable_backward[f32][fused], gp, x, dy),
                   "learnable " + at);
    }
    require_same(run(t.pact_forward[f32], t.pact_backward[f32][1], pp, x, dy),
                 run(ref.pact_forward[f32], ref.pact_backward[f32][1], pp, x, dy), "pact " + at);
    for (int w = 0; w < 2; ++w) {
      for (int pw = 0; pw < 2; ++pw) {
        require_same(run(t.qil_forward[f32][w][pw], t.qil_backward[f32][w][pw], qp, x, dy),
                     run(ref.qil_forward[f32][w][pw], ref.qil_backward[f32][w][pw], qp, x, dy), "qil " + at);
      }
    }
    for (int soft = 0; soft < 2; ++soft) {
      require_same(run(t.dsq_forward[f32][soft], t.dsq_backward[f32], dp, x, dy),
                   run(ref.dsq_forward[f32][soft], ref.dsq_backward[f32], dp, x, dy), "dsq " + at);
    }
    for (int hard = 0; hard < 2; ++hard) {
      require_same(run(t.sigmoid_forward[f32][hard], t.sigmoid_backward[f32], sp, x, dy),
                   run(ref.sigmoid_forward[f32][hard], ref.sigmoid_backward[f32], sp, x, dy), "sigmoid " + at);
    }
  }
}

}  // namespace lowbit_estimator_test
