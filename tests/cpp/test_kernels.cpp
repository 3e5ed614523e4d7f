// cpp/kernels: every ISA table this CPU can run against the scalar reference table, bit for bit,
// for every element type, rounding, code type and table entry, on adversarial inputs (exact ties
// after scaling, clip edges and half a step past them, ±0, ±Inf, NaN, subnormals, huge values,
// every 16-bit pattern) at lengths 0..70 and large odd lengths, so every vector body and every
// tail runs. Plus: the scalar table is the cpp/core formula, the stochastic kernels are the core
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

#include "core/affine.h"
#include "core/float16.h"
#include "kernels/affine_kernels.h"
#include "kernels/dispatch.h"
#include "test_util.h"

using lowbit::AffineParams;
using lowbit::BFloat16;
using lowbit::Half;
using lowbit::Rounding;
using lowbit::kernels::AffineKernels;
using lowbit::kernels::CodeType;
using lowbit::kernels::ElemType;
using lowbit::kernels::Isa;
using lowbit_test::describe;
using lowbit_test::float_of;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr Rounding kRoundings[] = {Rounding::HalfEven, Rounding::HalfAway, Rounding::HalfUp,
                                   Rounding::Floor, Rounding::Ceil};
const char* const kRoundingNames[] = {"HalfEven", "HalfAway", "HalfUp", "Floor", "Ceil"};
const char* const kCodeNames[] = {"u8", "i8", "i16", "i32"};
constexpr size_t kGuard = 24;  // canary elements after every output buffer

struct ParamSet {
  float scale;
  int32_t zero_point;
  int64_t qmin, qmax;
  const char* name;
};

// Ranges and scales chosen for their edges: exact power-of-two steps (ties survive scaling), a
// non-representable step, FBGEMM's 127.5 example, 16-bit and wide ranges, a scale whose
// reciprocal is subnormal, one whose products overflow, and a 1-bit range.
const ParamSet kParamSets[] = {
    {0.5f, 0, -4, 4, "s=0.5 z=0 [-4,4]"},
    {0.1f, 3, 0, 255, "s=0.1 z=3 [0,255]"},
    {0.0235294122f, -5, -128, 127, "s=3/127.5 z=-5 [-128,127]"},
    {0.00214854861f, 0, 0, 255, "fbgemm 127.5 example"},
    {1.0f, 0, -32768, 32767, "s=1 [-32768,32767]"},
    {0.003f, 1000, -(int64_t{1} << 24), int64_t{1} << 24, "s=0.003 z=1000 [-2^24,2^24]"},
    {1.0e38f, 0, -128, 127, "s=1e38 (subnormal reciprocal)"},
    {1.0e-30f, 7, -8, 7, "s=1e-30 z=7 [-8,7]"},
    {3.0f, 0, 0, 1, "s=3 [0,1]"},
};

bool code_type_holds(CodeType c, int64_t qmin, int64_t qmax) {
  switch (c) {
    case CodeType::U8: return qmin >= 0 && qmax <= 255;
    case CodeType::I8: return qmin >= -128 && qmax <= 127;
    case CodeType::I16: return qmin >= -32768 && qmax <= 32767;
    case CodeType::I32: return true;
  }
  return false;
}

// ---- element types ------------------------------------------------------------------------------

template <typename T>
T from_float(float f) {
  T v{};
  lowbit::store_from_float(&v, f);
  return v;
}
template <typename T>
float to_float(const T& v) {
  return lowbit::load_as_float(&v);
}
template <typename T>
constexpr ElemType elem_type_of();
template <>
constexpr ElemType elem_type_of<float>() { return ElemType::F32; }
template <>
constexpr ElemType elem_type_of<Half>() { return ElemType::F16; }
template <>
constexpr ElemType elem_type_of<BFloat16>() { return ElemType::BF16; }
template <typename T>
const char* elem_name() {
  return elem_type_of<T>() == ElemType::F32 ? "f32" : elem_type_of<T>() == ElemType::F16 ? "f16" : "bf16";
}

// Same value and bits, except that any NaN equals any NaN (NaN in, NaN out is the contract; the
// payload is not: F16C loads quiet a signalling half NaN, the scalar conversion keeps it).
bool same_elem(float a, float b) { return lowbit_test::same_float(a, b); }
bool same_elem(Half a, Half b) {
  return a.bits == b.bits || (lowbit_test::half_bits_is_nan(a.bits) && lowbit_test::half_bits_is_nan(b.bits));
}
bool same_elem(BFloat16 a, BFloat16 b) {
  return a.bits == b.bits || (lowbit_test::bf16_bits_is_nan(a.bits) && lowbit_test::bf16_bits_is_nan(b.bits));
}
template <typename Code>
bool same_elem(Code a, Code b) {
  return a == b;
}

std::string show(float v) { return describe(v); }
std::string show(Half v) { return lowbit_test::hex16(v.bits) + " = " + describe(lowbit::half_to_float(v)); }
std::string show(BFloat16 v) { return lowbit_test::hex16(v.bits) + " = " + describe(lowbit::bfloat16_to_float(v)); }
template <typename Code>
std::string show(Code v) {
  return std::to_string(static_cast<int64_t>(v));
}

template <typename T>
T canary() {
  T v;
  std::memset(&v, 0xA5, sizeof v);
  return v;
}

// ---- adversarial inputs ---------------------------------------------------------------------------

void shuffle(std::vector<float>& v, uint64_t seed) {
  lowbit_test::SplitMix64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.next() % i]);
}

// Floats x with x · inv_scale exactly equal to `target` (an integer or a tie k + 0.5), if any
// exist near target / inv_scale.
void push_exact_products(std::vector<float>& out, float target, float inv_scale) {
  const float guess = target / inv_scale;
  if (!std::isfinite(guess)) return;
  float x = guess;
  for (int i = 0; i < 3; ++i) x = std::nextafter(x, -kInf);
  for (int i = 0; i < 7; ++i, x = std::nextafter(x, kInf)) {
    if (x * inv_scale == target) out.push_back(x);
  }
}

void push_with_neighbors(std::vector<float>& out, float v) {
  out.push_back(v);
  float lo = v, hi = v;
  for (int i = 0; i < 2; ++i) {
    lo = std::nextafter(lo, -kInf);
    hi = std::nextafter(hi, kInf);
    out.push_back(lo);
    out.push_back(hi);
  }
}

std::vector<float> adversarial_floats(const AffineParams& p, uint64_t seed) {
  std::vector<float> xs;
  const float s = p.scale, z = p.zero_point;
  // Exact ties (k + 0.5 after scaling) and exact grid points around zero and both clip edges.
  std::vector<float> ks;
  for (float k = -6; k <= 6; ++k) ks.push_back(k);
  for (float edge : {p.qmin - z, p.qmax - z}) {
    for (float d = -3; d <= 3; ++d) ks.push_back(edge + d);
  }
  for (float k : ks) {
    push_exact_products(xs, k, p.inv_scale);
    push_exact_products(xs, k + 0.5f, p.inv_scale);
  }
  // Clip edges, half a step past them, and the real-domain edges, with float neighbours.
  for (float v : {(p.qmin - z) * s, (p.qmax - z) * s, (p.qmin - z - 0.5f) * s, (p.qmax - z + 0.5f) * s,
                  (p.qmin - z - 1.0f) * s, (p.qmax - z + 1.0f) * s, p.real_lo, p.real_hi}) {
    if (std::isfinite(v)) push_with_neighbors(xs, v);
  }
  // Specials.
  for (float v : {0.0f, -0.0f, kInf, -kInf, kNaN, -kNaN, float_of(0x7F800001u), float_of(0xFFBFFFFFu),
                  1.0e-45f, -1.0e-45f, 1.0e-40f, -1.0e-40f, FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX, 1.0e30f,
                  -1.0e30f, 8388608.0f, -8388609.0f, 0.49999997f, -0.5f, 65504.0f, 65520.0f, -70000.0f}) {
    xs.push_back(v);
  }
  lowbit_test::SplitMix64 rng(seed);
  const double lo = static_cast<double>(p.real_lo) - 3.0 * s, hi = static_cast<double>(p.real_hi) + 3.0 * s;
  for (int i = 0; i < 1500; ++i) {
    const double v = lo + (hi - lo) * rng.uniform();
    if (std::isfinite(static_cast<float>(v))) xs.push_back(static_cast<float>(v));
  }
  for (int i = 0; i < 500; ++i) xs.push_back(static_cast<float>((rng.uniform() - 0.5) * 40.0 * s));
  for (int i = 0; i < 600; ++i) xs.push_back(float_of(rng.next_u32()));
  shuffle(xs, seed ^ 0x5A5A);
  return xs;
}

template <typename T>
std::vector<T> typed_pool(const std::vector<float>& floats, uint64_t seed) {
  std::vector<float> f = floats;
  std::vector<T> out;
  if constexpr (!std::is_same_v<T, float>) {
    // Every 16-bit pattern, interleaved with the converted adversarial floats.
    std::vector<uint16_t> patterns(65536);
    for (uint32_t i = 0; i < 65536; ++i) patterns[i] = static_cast<uint16_t>(i);
    lowbit_test::SplitMix64 rng(seed);
    for (size_t i = patterns.size(); i > 1; --i) std::swap(patterns[i - 1], patterns[rng.next() % i]);
    for (float v : f) out.push_back(from_float<T>(v));
    for (uint16_t b : patterns) out.push_back(T{b});
    for (size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[rng.next() % i]);
  } else {
    out = f;
  }
  return out;
}

// Upstream gradients: mostly ordinary values, with NaN, ±Inf, ±0 and subnormals mixed in.
template <typename T>
std::vector<T> gradient_pool(size_t n, uint64_t seed) {
  lowbit_test::SplitMix64 rng(seed);
  const float specials[] = {kNaN, kInf, -kInf, 0.0f, -0.0f, 1.0e-40f, -3.0e38f};
  std::vector<T> out(n);
  for (size_t i = 0; i < n; ++i) {
    const float v = (i % 17 == 3) ? specials[rng.next() % 7] : static_cast<float>((rng.uniform() - 0.5) * 8.0);
    out[i] = from_float<T>(v);
  }
  return out;
}

template <typename Code>
std::vector<Code> code_pool(int64_t qmin, int64_t qmax, uint64_t seed) {
  std::vector<Code> out;
  lowbit_test::SplitMix64 rng(seed);
  const int64_t lo = std::max<int64_t>(qmin, std::numeric_limits<Code>::min());
  const int64_t hi = std::min<int64_t>(qmax, std::numeric_limits<Code>::max());
  for (int64_t v : {lo, lo + 1, hi - 1, hi, int64_t{0}, int64_t{1}, int64_t{-1}}) {
    if (v >= std::numeric_limits<Code>::min() && v <= std::numeric_limits<Code>::max()) out.push_back(static_cast<Code>(v));
  }
  // The whole type's range matters too: dequantize takes any code the type holds.
  out.push_back(std::numeric_limits<Code>::min());
  out.push_back(std::numeric_limits<Code>::max());
  if constexpr (sizeof(Code) == 4) {
    for (int32_t v : {(1 << 24) + 1, -(1 << 24) - 1, (1 << 30) + 65, -2147483647}) out.push_back(v);
  }
  while (out.size() < 3000) {
    out.push_back(static_cast<Code>((rng.next() & 1) ? rng.range(lo, hi) : static_cast<int64_t>(static_cast<Code>(rng.next()))));
  }
  return out;
}

// ---- the comparison driver -----------------------------------------------------------------------

struct Window {
  size_t offset, n;
};

// Lengths 0..70 (every vector body and tail for 8 and 16 lanes, unrolled by two) at two offsets
// each, then large odd lengths and the whole pool, aligned and misaligned.
std::vector<Window> windows_for(size_t pool) {
  std::vector<Window> w;
  for (size_t n = 0; n <= 70 && n <= pool; ++n) {
    const size_t span = pool - n + 1;
    w.push_back({(n * 37) % span, n});
    w.push_back({(n * 101 + 13) % span, n});
  }
  for (size_t n : {size_t{1001}, size_t{2047}, size_t{4099}}) {
    if (n <= pool) w.push_back({(pool - n) / 2, n});
  }
  w.push_back({0, pool});
  if (pool > 3) w.push_back({3, pool - 3});
  return w;
}

template <typename T>
std::vector<T> slice(const std::vector<T>& pool, const Window& w) {
  return std::vector<T>(pool.begin() + static_cast<ptrdiff_t>(w.offset),
                        pool.begin() + static_cast<ptrdiff_t>(w.offset + w.n));
}

// Reports the first few differing elements (with the inputs that produced them).
int g_reported = 0;

template <typename Out, typename In>
bool compare_outputs(const std::string& what, const std::vector<In>& in, const std::vector<Out>& got,
                     const std::vector<Out>& want, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n; ++i) {
    if (!same_elem(got[i], want[i])) {
      ok = false;
      if (g_reported++ < 12) {
        FAIL_CHECK(what << " n=" << n << " element " << i << ": input " << show(in[i]) << " -> " << show(got[i])
                        << ", scalar reference " << show(want[i]));
      }
      break;
    }
  }
  for (size_t i = n; i < n + kGuard; ++i) {
    const Out c = canary<Out>();
    if (std::memcmp(&got[i], &c, sizeof c) != 0 || std::memcmp(&want[i], &c, sizeof c) != 0) {
      ok = false;
      if (g_reported++ < 12) FAIL_CHECK(what << " n=" << n << ": wrote past the end (element " << i << ")");
      break;
    }
  }
  return ok;
}

template <typename T>
std::vector<T> output_buffer(size_t n) {
  return std::vector<T>(n + kGuard, canary<T>());
}

template <typename Code>
bool compare_quantize(const AffineKernels& isa, const AffineKernels& ref, int e, int r, CodeType c,
                      const std::string& what, const void* x_data, size_t n, const AffineParams& p,
                      const std::vector<float>& x_as_float) {
  std::vector<Code> got = output_buffer<Code>(n), want = output_buffer<Code>(n);
  isa.quantize[e][r][static_cast<int>(c)](x_data, got.data(), static_cast<int64_t>(n), p);
  ref.quantize[e][r][static_cast<int>(c)](x_data, want.data(), static_cast<int64_t>(n), p);
  return compare_outputs(what, x_as_float, got, want, n);
}

template <typename T>
int run_elem_type(const AffineKernels& isa, const AffineKernels& ref, const ParamSet& ps, uint64_t seed) {
  const AffineParams p = lowbit::make_affine_params(ps.scale, ps.zero_point, ps.qmin, ps.qmax);
  const std::vector<T> pool = typed_pool<T>(adversarial_floats(p, seed), seed);
  const std::vector<T> dy_pool = gradient_pool<T>(pool.size(), seed + 1);
  const int e = static_cast<int>(elem_type_of<T>());
  const std::string prefix = std::string(isa.isa_name) + " " + elem_name<T>() + " [" + ps.name + "] ";
  int failures = 0;
  for (const Window& w : windows_for(pool.size())) {
    const std::vector<T> x = slice(pool, w), dy = slice(dy_pool, w);
    std::vector<float> xf(w.n);
    for (size_t i = 0; i < w.n; ++i) xf[i] = to_float(x[i]);
    const int64_t n = static_cast<int64_t>(w.n);
    for (int r = 0; r < 5; ++r) {
      {
        std::vector<T> got = output_buffer<T>(w.n), want = output_buffer<T>(w.n);
        isa.fake_quantize[e][r](x.data(), got.data(), n, p);
        ref.fake_quantize[e][r](x.data(), want.data(), n, p);
        failures += !compare_outputs(prefix + "fake_quantize " + kRoundingNames[r], x, got, want, w.n);
      }
      {
        std::vector<T> got = output_buffer<T>(w.n), want = output_buffer<T>(w.n);
        isa.fake_quantize_backward_integer[e][r](x.data(), dy.data(), got.data(), n, p);
        ref.fake_quantize_backward_integer[e][r](x.data(), dy.data(), want.data(), n, p);
        failures += !compare_outputs(prefix + "backward_integer " + kRoundingNames[r], x, got, want, w.n);
      }
      for (int c = 0; c < lowbit::kernels::kNumCodeTypes; ++c) {
        const CodeType ct = static_cast<CodeType>(c);
        if (!code_type_holds(ct, ps.qmin, ps.qmax)) continue;
        const std::string what = prefix + "quantize " + kRoundingNames[r] + " -> " + kCodeNames[c];
        bool ok = true;
        switch (ct) {
          case CodeType::U8: ok = compare_quantize<uint8_t>(isa, ref, e, r, ct, what, x.data(), w.n, p, xf); break;
          case CodeType::I8: ok = compare_quantize<int8_t>(isa, ref, e, r, ct, what, x.data(), w.n, p, xf); break;
          case CodeType::I16: ok = compare_quantize<int16_t>(isa, ref, e, r, ct, what, x.data(), w.n, p, xf); break;
          case CodeType::I32: ok = compare_quantize<int32_t>(isa, ref, e, r, ct, what, x.data(), w.n, p, xf); break;
        }
        failures += !ok;
      }
    }
    {
      std::vector<T> got = output_buffer<T>(w.n), want = output_buffer<T>(w.n);
      isa.fake_quantize_backward_real[e](x.data(), dy.data(), got.data(), n, p);
      ref.fake_quantize_backward_real[e](x.data(), dy.data(), want.data(), n, p);
      failures += !compare_outputs(prefix + "backward_real", x, got, want, w.n);
    }
    // min/max from several starting values (the op layer seeds with the running statistics).
    const float inits[][2] = {{kInf, -kInf}, {0.0f, 0.0f}, {-0.0f, -0.0f}, {-1.0f, 1.0f}, {1.0e30f, -1.0e30f}};
    for (const auto& init : inits) {
      float got_min = init[0], got_max = init[1], want_min = init[0], want_max = init[1];
      isa.minmax[e](x.data(), n, &got_min, &got_max);
      ref.minmax[e](x.data(), n, &want_min, &want_max);
      if (!same_elem(got_min, want_min) || !same_elem(got_max, want_max)) {
        ++failures;
        if (g_reported++ < 12) {
          FAIL_CHECK(prefix << "minmax n=" << w.n << " from (" << init[0] << ", " << init[1] << "): ("
                            << describe(got_min) << ", " << describe(got_max) << "), scalar reference ("
                            << describe(want_min) << ", " << describe(want_max) << ")");
        }
      }
    }
  }
  return failures;
}

// Min/max where the extremum is a zero of either sign: all-non-negative data (ReLU outputs) for
// the min, all-non-positive data for the max. Which zero wins must not depend on the lane order.
template <typename T>
int run_minmax_signed_zeros(const AffineKernels& isa, const AffineKernels& ref, uint64_t seed) {
  lowbit_test::SplitMix64 rng(seed);
  const int e = static_cast<int>(elem_type_of<T>());
  int failures = 0;
  for (float sign : {1.0f, -1.0f}) {
    std::vector<T> pool(3000);
    for (T& v : pool) {
      const uint64_t k = rng.next() % 8;
      const float f = k < 2 ? 0.0f : k < 4 ? -0.0f : k == 4 ? kNaN : sign * static_cast<float>(rng.uniform() * 4.0);
      v = from_float<T>(f);
    }
    for (const Window& w : windows_for(pool.size())) {
      const std::vector<T> x = slice(pool, w);
      for (const auto& init : {std::pair<float, float>{kInf, -kInf}, {0.0f, 0.0f}, {-0.0f, -0.0f}, {0.0f, -0.0f}}) {
        float got_min = init.first, got_max = init.second, want_min = init.first, want_max = init.second;
        isa.minmax[e](x.data(), static_cast<int64_t>(w.n), &got_min, &got_max);
        ref.minmax[e](x.data(), static_cast<int64_t>(w.n), &want_min, &want_max);
        if (!same_elem(got_min, want_min) || !same_elem(got_max, want_max)) {
          ++failures;
          if (g_reported++ < 12) {
            std::string zeros;
            for (size_t i = 0; i < std::min<size_t>(w.n, 40); ++i) zeros += show(x[i]).substr(0, 6) + " ";
            FAIL_CHECK(isa.isa_name << " " << elem_name<T>() << " minmax of signed zeros, n=" << w.n << " from ("
                                    << describe(init.first) << ", " << describe(init.second) << "): ("
                                    << describe(got_min) << ", " << describe(got_max) << "), scalar reference ("
                                    << describe(want_min) << ", " << describe(want_max) << "); input starts " << zeros);
          }
        }
      }
    }
  }
  return failures;
}

template <typename Code, typename T>
int run_dequantize(const AffineKernels& isa, const AffineKernels& ref, CodeType c, const ParamSet& ps, uint64_t seed) {
  const std::vector<Code> pool = code_pool<Code>(ps.qmin, ps.qmax, seed);
  const int e = static_cast<int>(elem_type_of<T>());
  int failures = 0;
  for (const Window& w : windows_for(pool.size())) {
    const std::vector<Code> q = slice(pool, w);
    std::vector<T> got = output_buffer<T>(w.n), want = output_buffer<T>(w.n);
    const float z = static_cast<float>(ps.zero_point);
    isa.dequantize[static_cast<int>(c)][e](q.data(), got.data(), static_cast<int64_t>(w.n), ps.scale, z);
    ref.dequantize[static_cast<int>(c)][e](q.data(), want.data(), static_cast<int64_t>(w.n), ps.scale, z);
    failures += !compare_outputs(std::string(isa.isa_name) + " dequantize " + kCodeNames[static_cast<int>(c)] +
                                     " -> " + elem_name<T>() + " [" + ps.name + "]",
                                 q, got, want, w.n);
  }
  return failures;
}

template <typename T>
int run_dequantize_all_codes(const AffineKernels& isa, const AffineKernels& ref, const ParamSet& ps, uint64_t seed) {
  return run_dequantize<uint8_t, T>(isa, ref, CodeType::U8, ps, seed) +
         run_dequantize<int8_t, T>(isa, ref, CodeType::I8, ps, seed + 1) +
         run_dequantize<int16_t, T>(isa, ref, CodeType::I16, ps, seed + 2) +
         run_dequantize<int32_t, T>(isa, ref, CodeType::I32, ps, seed + 3);
}

void check_table_complete(const AffineKernels& k) {
  INFO("table " << k.isa_name);
  for (int e = 0; e < lowbit::kernels::kNumElemTypes; ++e) {
    for (int r = 0; r < lowbit::kernels::kNumDeterministicRoundings; ++r) {
      REQUIRE(k.fake_quantize[e][r] != nullptr);
      REQUIRE(k.fake_quantize_backward_integer[e][r] != nullptr);
      for (int c = 0; c < lowbit::kernels::kNumCodeTypes; ++c) REQUIRE(k.quantize[e][r][c] != nullptr);
    }
    REQUIRE(k.fake_quantize_backward_real[e] != nullptr);
    REQUIRE(k.minmax[e] != nullptr);
    for (int c = 0; c < lowbit::kernels::kNumCodeTypes; ++c) REQUIRE(k.dequantize[c][e] != nullptr);
  }
}

void run_isa_equivalence(Isa isa) {
  if (!lowbit::kernels::isa_supported(isa)) {
    WARN("skipped: this CPU cannot run the " << lowbit::kernels::isa_name(isa)
         << " kernel path (it needs " << (isa == Isa::Avx512 ? "AVX-512 F/BW/VL/DQ + AVX2/FMA/F16C" : "AVX2 + FMA + F16C")
         << "); it runs on machines that have it. Best path here: "
         << lowbit::kernels::isa_name(lowbit::kernels::best_supported_isa()));
    return;
  }
  const AffineKernels& table = lowbit::kernels::affine_kernels(isa);
  const AffineKernels& ref = lowbit::kernels::affine_kernels(Isa::Scalar);
  REQUIRE(std::string(table.isa_name) == lowbit::kernels::isa_name(isa));
  check_table_complete(table);
  g_reported = 0;
  int failures = 0;
  uint64_t seed = 1000;
  for (const ParamSet& ps : kParamSets) {
    failures += run_elem_type<float>(table, ref, ps, seed++);
    failures += run_elem_type<Half>(table, ref, ps, seed++);
    failures += run_elem_type<BFloat16>(table, ref, ps, seed++);
    failures += run_dequantize_all_codes<float>(table, ref, ps, seed++);
    failures += run_dequantize_all_codes<Half>(table, ref, ps, seed++);
    failures += run_dequantize_all_codes<BFloat16>(table, ref, ps, seed++);
  }
  failures += run_minmax_signed_zeros<float>(table, ref, 1);
  failures += run_minmax_signed_zeros<Half>(table, ref, 2);
  failures += run_minmax_signed_zeros<BFloat16>(table, ref, 3);
  INFO("failing (function, parameter set, window) combinations: " << failures);
  CHECK(failures == 0);
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
    if (!lowbit::kernels::isa_supported(isa)) continue;
    const AffineKernels& k = lowbit::kernels::affine_kernels(isa);
    const int f32 = static_cast<int>(ElemType::F32);
    std::vector<float> x(37, kNaN);
    x[20] = -3.0f;
    x[33] = 5.0f;
    float mn = kInf, mx = -kInf;
    k.minmax[f32](x.data(), static_cast<int64_t>(x.size()), &mn, &mx);
    INFO(k.isa_name);
    CHECK(mn == -3.0f);
    CHECK(mx == 5.0f);
    std::vector<float> all_nan(40, kNaN);
    mn = kInf;
    mx = -kInf;
    k.minmax[f32](all_nan.data(), 40, &mn, &mx);
    CHECK(mn == kInf);  // nothing observed: the sentinel stays
    CHECK(mx == -kInf);
    k.minmax[f32](nullptr, 0, &mn, &mx);
    CHECK(mn == kInf);
    // A zero extremum is +0 whichever zeros the data holds (the lane order must not decide it).
    std::vector<float> zeros(45, -0.0f);
    zeros[7] = 0.0f;
    zeros[44] = 2.0f;
    mn = kInf;
    mx = -kInf;
    k.minmax[f32](zeros.data(), 45, &mn, &mx);
    CHECK(lowbit_test::bits_of(mn) == 0u);
    CHECK(mx == 2.0f);
    for (float& v : zeros) v = -v;  // now +0 / -0 / -2
    mn = kInf;
    mx = -kInf;
    k.minmax[f32](zeros.data(), 45, &mn, &mx);
    CHECK(mn == -2.0f);
    CHECK(lowbit_test::bits_of(mx) == 0u);
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
