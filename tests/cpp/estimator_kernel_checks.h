// Checks shared by test_estimators.cpp (the real estimator kernel tables of every ISA this CPU
// runs) and test_avx512_emulated_estimators.cpp (estimator_avx512.cpp compiled against the
// portable AVX-512 intrinsics of avx512_emulation.h): every entry of a table, for every element
// type, against the scalar table, bit for bit (outputs, dx and the reduced parameter-gradient
// sums), at lengths 0..70 and a long odd length, on adversarial inputs, with canaries after every
// output buffer (tails must not write past n).
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/float16.h"
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

// Outputs widened to float (exact for f16 / bf16), so one comparison serves every element type.
struct Outputs {
  std::vector<float> y, dx;
  float sums[3] = {0, 0, 0};
};

template <typename T>
T canary_of() {
  if constexpr (std::is_same_v<T, float>) {
    return kCanary;
  } else {
    return T{0x5A5A};
  }
}

template <typename T>
std::vector<T> as_type(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) lowbit::store_from_float(&out[i], v[i]);
  return out;
}

template <class P, typename T>
Outputs run(lowbit::kernels::EstimatorForwardFn<P> fwd, lowbit::kernels::EstimatorBackwardFn<P> bwd, const P& p,
            const std::vector<T>& x, const std::vector<T>& dy) {
  const size_t n = x.size();
  const T canary = canary_of<T>();
  std::vector<T> y(n + kGuard, canary), dx(n + kGuard, canary);
  Outputs o;
  const RngStream rng{11, 5};
  if (fwd != nullptr) fwd(x.data(), y.data(), static_cast<int64_t>(n), p, rng);
  if (bwd != nullptr) bwd(x.data(), dy.data(), dx.data(), static_cast<int64_t>(n), p, rng, o.sums);
  for (size_t i = n; i < n + kGuard; ++i) {
    REQUIRE(std::memcmp(&y[i], &canary, sizeof(T)) == 0);
    REQUIRE(std::memcmp(&dx[i], &canary, sizeof(T)) == 0);
  }
  for (size_t i = 0; i < n + kGuard; ++i) {
    o.y.push_back(lowbit::load_as_float(&y[i]));
    o.dx.push_back(lowbit::load_as_float(&dx[i]));
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

// The entries of element type T (index e) of table `t` against those of the scalar table `ref`.
template <typename T>
void check_element_type(const EstimatorKernels& t, const EstimatorKernels& ref, int e, const char* elem,
                        size_t long_length) {
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
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 70; ++n) lengths.push_back(n);
  lengths.push_back(long_length);
  for (size_t n : lengths) {
    const auto x = as_type<T>(adversarial(n, 1000 + n, 0.125f));
    auto dyf = adversarial(n, 2000 + n, 0.5f);
    for (float& v : dyf) v = std::isfinite(v) && std::fabs(v) < 10 ? v : 0.5f;
    const auto dy = as_type<T>(dyf);
    const std::string at = std::string(t.isa_name) + " " + elem + " n=" + std::to_string(n);
    for (int o = 0; o < 2; ++o) {
      require_same(run(t.lsq_forward[e][o], t.lsq_backward[e][o], lp, x, dy),
                   run(ref.lsq_forward[e][o], ref.lsq_backward[e][o], lp, x, dy), "lsq " + at);
    }
    for (int fused = 0; fused < 2; ++fused) {
      require_same(run<lowbit::LearnableGradParams, T>(nullptr, t.learnable_backward[e][fused], gp, x, dy),
                   run<lowbit::LearnableGradParams, T>(nullptr, ref.learnable_backward[e][fused], gp, x, dy),
                   "learnable " + at);
    }
    require_same(run(t.pact_forward[e], t.pact_backward[e][1], pp, x, dy),
                 run(ref.pact_forward[e], ref.pact_backward[e][1], pp, x, dy), "pact " + at);
    for (int w = 0; w < 2; ++w) {
      for (int pw = 0; pw < 2; ++pw) {
        require_same(run(t.qil_forward[e][w][pw], t.qil_backward[e][w][pw], qp, x, dy),
                     run(ref.qil_forward[e][w][pw], ref.qil_backward[e][w][pw], qp, x, dy), "qil " + at);
      }
    }
    for (int soft = 0; soft < 2; ++soft) {
      require_same(run(t.dsq_forward[e][soft], t.dsq_backward[e], dp, x, dy),
                   run(ref.dsq_forward[e][soft], ref.dsq_backward[e], dp, x, dy), "dsq " + at);
    }
    for (int hard = 0; hard < 2; ++hard) {
      require_same(run(t.sigmoid_forward[e][hard], t.sigmoid_backward[e], sp, x, dy),
                   run(ref.sigmoid_forward[e][hard], ref.sigmoid_backward[e], sp, x, dy), "sigmoid " + at);
    }
  }
}

// Table `t` against the scalar table `ref`, bit for bit, for every element type (f16 and bf16
// with a shorter long length: they share the float arithmetic and differ in loads, stores and
// the zero-padded tails). The caller checks first that its CPU can run `t`.
inline void check_table_equals_reference(const EstimatorKernels& t, const EstimatorKernels& ref) {
  using lowbit::kernels::ElemType;
  check_element_type<float>(t, ref, static_cast<int>(ElemType::F32), "f32", 100003);
  check_element_type<lowbit::Half>(t, ref, static_cast<int>(ElemType::F16), "f16", 4099);
  check_element_type<lowbit::BFloat16>(t, ref, static_cast<int>(ElemType::BF16), "bf16", 4099);
}

}  // namespace lowbit_estimator_test
