// cpp/kernels: every ISA table this CPU can run against the scalar reference table, bit for bit,
// for every element type, rounding, code type and table entry, on adversarial inputs (exact ties
// after scaling, clip edges and half a step past them, ±0, ±Inf, NaN, subnormals, huge values,
// every 16-bit pattern) at lengths 0..70 and large odd lengths, so every vector body and every
// tail runs (the comparison is affine_kernel_checks.h, shared with the emulated AVX-512 suite).
// Plus: the scalar table is the cpp/core formula, the stochastic kernels are the core
// formula with the (seed, counter) draws and do not depend on chunking, and the dispatch API.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "affine_kernel_checks.h"
#include "core/affine.h"
#include "core/float16.h"
#include "kernels/affine_kernels.h"
#include "kernels/dispatch.h"
#include "test_util.h"

using lowbit::kernels::Isa;
using namespace lowbit_affine_test;  // the adversarial pools, comparisons and ParamSets

namespace {

void run_isa_equivalence(Isa isa) {
  if (!lowbit::kernels::isa_supported(isa)) {
    WARN("skipped: this CPU cannot run the " << lowbit::kernels::isa_name(isa)
         << " kernel path (it needs " << (isa == Isa::Avx512 ? "AVX-512 F/BW/VL/DQ + AVX2/FMA/F16C" : "AVX2 + FMA + F16C")
         << "); it runs on machines that have it (test_avx512_emulated runs the AVX-512 sources against "
         << "emulated intrinsics here). Best path here: "
         << lowbit::kernels::isa_name(lowbit::kernels::best_supported_isa()));
    return;
  }
  const AffineKernels& table = lowbit::kernels::affine_kernels(isa);
  const AffineKernels& ref = lowbit::kernels::affine_kernels(Isa::Scalar);
  REQUIRE(std::string(table.isa_name) == lowbit::kernels::isa_name(isa));
  lowbit_affine_test::check_table_equals_reference(table, ref);
}

}  // namespace

TEST_CASE("kernels: the avx2 table equals the scalar table bit for bit", "[kernels][isa][avx2]") {
  run_isa_equivalence(Isa::Avx2);
}

TEST_CASE("kernels: the avx512 table equals the scalar table bit for bit", "[kernels][isa][avx512]") {
  run_isa_equivalence(Isa::Avx512);
}

TEST_CASE("kernels: the scalar table is the cpp/core formula", "[kernels][scalar]") {
  const AffineKernels& ref = lowbit::kernels::affine_kernels(Isa::Scalar);
  check_table_complete(ref);
  for (const ParamSet& ps : kParamSets) {
    const AffineParams p = lowbit::make_affine_params(ps.scale, ps.zero_point, ps.qmin, ps.qmax);
    const std::vector<float> x = adversarial_floats(p, 5);
    const std::vector<float> dy = gradient_pool<float>(x.size(), 6);
    const int64_t n = static_cast<int64_t>(x.size());
    const int f32 = static_cast<int>(ElemType::F32);
    for (int r = 0; r < 5; ++r) {
      std::vector<float> y(x.size()), dx(x.size());
      std::vector<int32_t> q(x.size());
      ref.fake_quantize[f32][r](x.data(), y.data(), n, p);
      ref.fake_quantize_backward_integer[f32][r](x.data(), dy.data(), dx.data(), n, p);
      ref.quantize[f32][r][static_cast<int>(CodeType::I32)](x.data(), q.data(), n, p);
      for (size_t i = 0; i < x.size(); ++i) {
        const float qf = lowbit::affine_code_unclamped(x[i], p, kRoundings[r]);
        if (!same_elem(y[i], lowbit::fake_quantize_from_code(qf, p)) ||
            !same_elem(dx[i], lowbit::ste_apply(dy[i], lowbit::ste_integer_mask(qf, p))) ||
            q[i] != lowbit::affine_code_to_int(qf, p)) {
          FAIL(ps.name << " " << kRoundingNames[r] << " x = " << describe(x[i]) << ": y " << describe(y[i])
                       << ", dx " << describe(dx[i]) << ", q " << q[i] << " differ from the core formula");
        }
      }
    }
    std::vector<float> dx(x.size());
    ref.fake_quantize_backward_real[f32](x.data(), dy.data(), dx.data(), n, p);
    for (size_t i = 0; i < x.size(); ++i) {
      if (!same_elem(dx[i], lowbit::ste_apply(dy[i], lowbit::ste_real_mask(x[i], p)))) {
        FAIL(ps.name << " backward_real x = " << describe(x[i]) << ": dx " << describe(dx[i]));
      }
    }
    float mn = kInf, mx = -kInf;
    ref.minmax[f32](x.data(), n, &mn, &mx);
    float want_min = kInf, want_max = -kInf;
    for (float v : x) {
      if (std::isnan(v)) continue;
      want_min = std::min(want_min, v);
      want_max = std::max(want_max, v);
    }
    CHECK(mn == want_min);  // == : the sign of a zero extremum is checked by the ISA comparison
    CHECK(mx == want_max);
  }
}

TEST_CASE("kernels: minmax ignores NaN and handles empty input", "[kernels][scalar]") {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (lowbit::kernels::isa_supported(isa)) lowbit_affine_test::check_minmax_nan_and_empty(lowbit::kernels::affine_kernels(isa));
  }
}

// ---- stochastic rounding kernels (one implementation shared by every ISA) ------------------------

namespace {

template <typename T>
void check_stochastic(const ParamSet& ps, uint64_t seed, uint64_t counter0) {
  const AffineParams p = lowbit::make_affine_params(ps.scale, ps.zero_point, ps.qmin, ps.qmax);
  std::vector<float> floats = adversarial_floats(p, seed);
  floats.resize(std::min<size_t>(floats.size(), 3001));
  const std::vector<T> x = typed_pool<T>(floats, seed);
  const std::vector<T> dy = gradient_pool<T>(x.size(), seed + 7);
  const ElemType e = elem_type_of<T>();
  const int64_t n = static_cast<int64_t>(x.size());
  INFO(elem_name<T>() << " [" << ps.name << "] seed " << seed << " counter0 " << counter0);
  std::vector<T> y = output_buffer<T>(x.size()), dx = output_buffer<T>(x.size());
  std::vector<int32_t> q = output_buffer<int32_t>(x.size());
  lowbit::kernels::fake_quantize_stochastic(e, x.data(), y.data(), n, p, seed, counter0);
  lowbit::kernels::fake_quantize_stochastic_backward_integer(e, x.data(), dy.data(), dx.data(), n, p, seed, counter0);
  lowbit::kernels::quantize_stochastic(e, CodeType::I32, x.data(), q.data(), n, p, seed, counter0);
  // The core formula with draw counter0 + i.
  for (size_t i = 0; i < x.size(); ++i) {
    const float u = lowbit::stochastic_uniform(seed, counter0 + i);
    const float qf = lowbit::affine_code_unclamped_stochastic(to_float(x[i]), p, u);
    if (!same_elem(y[i], from_float<T>(lowbit::fake_quantize_from_code(qf, p))) ||
        !same_elem(dx[i], from_float<T>(lowbit::ste_apply(to_float(dy[i]), lowbit::ste_integer_mask(qf, p)))) ||
        q[i] != lowbit::affine_code_to_int(qf, p)) {
      FAIL("element " << i << " x = " << show(x[i]) << ": y " << show(y[i]) << ", dx " << show(dx[i]) << ", q "
                      << q[i] << " differ from the core formula (u = " << describe(u) << ")");
    }
  }
  const T y_canary = canary<T>();
  for (size_t i = x.size(); i < x.size() + kGuard; ++i) {
    REQUIRE(std::memcmp(&y[i], &y_canary, sizeof(T)) == 0);
    REQUIRE(std::memcmp(&dx[i], &y_canary, sizeof(T)) == 0);
    REQUIRE(q[i] == canary<int32_t>());
  }
  // Chunking does not change anything: any split with counter0 advanced by the chunk start
  // reproduces the single call (this is what lets the op layer thread freely). Checked for one
  // counter0 per type and parameter set (the draws themselves are checked above for each).
  if (counter0 != 3) return;
  for (size_t split : {size_t{1}, size_t{7}, size_t{64}, x.size() / 2, x.size() - 1}) {
    std::vector<T> y2(x.size());
    std::vector<int32_t> q2(x.size());
    lowbit::kernels::fake_quantize_stochastic(e, x.data(), y2.data(), static_cast<int64_t>(split), p, seed, counter0);
    lowbit::kernels::fake_quantize_stochastic(e, x.data() + split, y2.data() + split, n - static_cast<int64_t>(split),
                                              p, seed, counter0 + split);
    lowbit::kernels::quantize_stochastic(e, CodeType::I32, x.data(), q2.data(), static_cast<int64_t>(split), p, seed, counter0);
    lowbit::kernels::quantize_stochastic(e, CodeType::I32, x.data() + split, q2.data() + split,
                                         n - static_cast<int64_t>(split), p, seed, counter0 + split);
    for (size_t i = 0; i < x.size(); ++i) {
      if (!same_elem(y2[i], y[i]) || q2[i] != q[i]) {
        FAIL("split at " << split << ", element " << i << ": " << show(y2[i]) << " / " << q2[i]
                         << " vs one call " << show(y[i]) << " / " << q[i]);
      }
    }
  }
}

template <typename Code>
void check_stochastic_code_type(CodeType c, const ParamSet& ps) {
  const AffineParams p = lowbit::make_affine_params(ps.scale, ps.zero_point, ps.qmin, ps.qmax);
  const std::vector<float> x = adversarial_floats(p, 21);
  for (ElemType e : {ElemType::F32, ElemType::F16, ElemType::BF16}) {
    std::vector<float> xf = x;
    std::vector<Half> xh;
    std::vector<BFloat16> xb;
    for (float v : x) {
      xh.push_back(from_float<Half>(v));
      xb.push_back(from_float<BFloat16>(v));
    }
    const void* data = e == ElemType::F32 ? static_cast<const void*>(xf.data())
                       : e == ElemType::F16 ? static_cast<const void*>(xh.data())
                                            : static_cast<const void*>(xb.data());
    std::vector<Code> q = output_buffer<Code>(x.size());
    lowbit::kernels::quantize_stochastic(e, c, data, q.data(), static_cast<int64_t>(x.size()), p, 77, 3);
    for (size_t i = 0; i < x.size(); ++i) {
      const float xv = e == ElemType::F32 ? xf[i] : e == ElemType::F16 ? to_float(xh[i]) : to_float(xb[i]);
      const float qf = lowbit::affine_code_unclamped_stochastic(xv, p, lowbit::stochastic_uniform(77, 3 + i));
      if (q[i] != static_cast<Code>(lowbit::affine_code_to_int(qf, p))) {
        FAIL(kCodeNames[static_cast<int>(c)] << " [" << ps.name << "] x = " << describe(xv) << " -> "
                                            << show(q[i]) << ", core formula " << lowbit::affine_code_to_int(qf, p));
      }
    }
    for (size_t i = x.size(); i < x.size() + kGuard; ++i) REQUIRE(q[i] == canary<Code>());
  }
}

}  // namespace

TEST_CASE("kernels: stochastic rounding is the core formula with the draws of seed and counter0 + i", "[kernels][stochastic]") {
  uint64_t seed = 5;
  for (const ParamSet& ps : kParamSets) {
    for (uint64_t counter0 : {uint64_t{0}, uint64_t{3}, (uint64_t{1} << 32) - 2}) {
      check_stochastic<float>(ps, seed, counter0);
      check_stochastic<Half>(ps, seed + 1, counter0);
      check_stochastic<BFloat16>(ps, seed + 2, counter0);
    }
    seed += 3;
  }
}

TEST_CASE("kernels: stochastic quantize into every code type", "[kernels][stochastic]") {
  for (const ParamSet& ps : kParamSets) {
    if (code_type_holds(CodeType::U8, ps.qmin, ps.qmax)) check_stochastic_code_type<uint8_t>(CodeType::U8, ps);
    if (code_type_holds(CodeType::I8, ps.qmin, ps.qmax)) check_stochastic_code_type<int8_t>(CodeType::I8, ps);
    if (code_type_holds(CodeType::I16, ps.qmin, ps.qmax)) check_stochastic_code_type<int16_t>(CodeType::I16, ps);
    check_stochastic_code_type<int32_t>(CodeType::I32, ps);
  }
}

TEST_CASE("kernels: stochastic fake quantization is unbiased on a step (METHODS 7)", "[kernels][stochastic]") {
  // x = 2.3 steps of s = 0.5 (x = 1.15) over 100000 elements: mean code 2.3 within 3 sigma.
  const AffineParams p = lowbit::make_affine_params(0.5f, 0, -128, 127);
  const std::vector<float> x(100000, 1.15f);
  std::vector<int32_t> q(x.size());
  lowbit::kernels::quantize_stochastic(ElemType::F32, CodeType::I32, x.data(), q.data(),
                                       static_cast<int64_t>(x.size()), p, 2024, 0);
  const double frac = static_cast<double>(1.15f * p.inv_scale) - 2.0;
  double sum = 0;
  int others = 0;
  for (int32_t v : q) {
    others += (v != 2 && v != 3);
    sum += v;
  }
  CHECK(others == 0);
  const double mean = sum / static_cast<double>(q.size());
  CHECK(std::fabs(mean - (2.0 + frac)) < 3 * std::sqrt(frac * (1 - frac) / static_cast<double>(q.size())));
}

// ---- dispatch --------------------------------------------------------------------------------------

TEST_CASE("dispatch: names and support and the active path", "[kernels][dispatch]") {
  using namespace lowbit::kernels;
  CHECK(std::string(isa_name(Isa::Scalar)) == "scalar");
  CHECK(std::string(isa_name(Isa::Avx2)) == "avx2");
  CHECK(std::string(isa_name(Isa::Avx512)) == "avx512");
  CHECK(parse_isa("avx2") == Isa::Avx2);
  CHECK_FALSE(parse_isa("AVX2").has_value());
  CHECK_FALSE(parse_isa("").has_value());
  CHECK(isa_supported(Isa::Scalar));
  CHECK(isa_supported(best_supported_isa()));
  if (isa_supported(Isa::Avx512)) CHECK(isa_supported(Isa::Avx2));  // the paths nest
  const CpuFeatures& f = cpu_features();
  CHECK(isa_supported(Isa::Avx2) == (f.avx2 && f.fma && f.f16c));

  const Isa before = active_isa();
  for (int i = 0; i < kNumIsas; ++i) {
    const Isa isa = static_cast<Isa>(i);
    if (isa_supported(isa)) {
      set_active_isa(isa);
      CHECK(active_isa() == isa);
      CHECK(std::string(affine_kernels().isa_name) == isa_name(isa));
    } else {
      try {
        set_active_isa(isa);
        FAIL("set_active_isa accepted an unsupported path");
      } catch (const std::runtime_error& err) {
        const std::string msg = err.what();
        INFO(msg);
        CHECK(msg.find(isa_name(isa)) != std::string::npos);
        CHECK(msg.find("not supported") != std::string::npos);
      }
      CHECK(active_isa() != isa);
    }
  }
  set_active_isa(before);
}

TEST_CASE("dispatch: LOWBIT_ISA from the environment", "[kernels][dispatch]") {
  using namespace lowbit::kernels;
  const Isa before = active_isa();
  ::setenv("LOWBIT_ISA", "scalar", 1);
  init_active_isa_from_env();
  CHECK(active_isa() == Isa::Scalar);
  ::setenv("LOWBIT_ISA", "sse9", 1);
  try {
    init_active_isa_from_env();
    FAIL("an unknown LOWBIT_ISA was accepted");
  } catch (const std::runtime_error& err) {
    const std::string msg = err.what();
    INFO(msg);
    CHECK(msg.find("LOWBIT_ISA='sse9'") != std::string::npos);
    CHECK(msg.find("scalar, avx2, avx512") != std::string::npos);
  }
  ::setenv("LOWBIT_ISA", "", 1);
  init_active_isa_from_env();
  CHECK(active_isa() == best_supported_isa());
  ::unsetenv("LOWBIT_ISA");
  set_active_isa(before);
}
