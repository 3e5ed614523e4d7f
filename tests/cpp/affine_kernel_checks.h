// Checks shared by test_kernels.cpp (the real affine kernel tables of every ISA this CPU runs)
// and test_avx512_emulated_affine.cpp (affine_avx512.cpp compiled against the portable AVX-512
// intrinsics of avx512_emulation.h): a table is compared with the scalar reference table bit for
// bit, for every element type, rounding, code type and table entry, on adversarial inputs (exact
// ties after scaling, clip edges and half a step past them, ±0, ±Inf, NaN, subnormals, huge
// values, every 16-bit pattern) at lengths 0..70 and large odd lengths, so every vector body and
// every tail runs, with canaries after every output buffer.
#pragma once
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/affine.h"
#include "core/float16.h"
#include "kernels/affine_kernels.h"
#include "test_util.h"

namespace lowbit_affine_test {

using lowbit::AffineParams;
using lowbit::BFloat16;
using lowbit::Half;
using lowbit::Rounding;
using lowbit::kernels::AffineKernels;
using lowbit::kernels::CodeType;
using lowbit::kernels::ElemType;
using lowbit_test::describe;
using lowbit_test::float_of;

inline constexpr float kInf = std::numeric_limits<float>::infinity();
inline constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
inline constexpr Rounding kRoundings[] = {Rounding::HalfEven, Rounding::HalfAway, Rounding::HalfUp,
                                   Rounding::Floor, Rounding::Ceil};
inline const char* const kRoundingNames[] = {"HalfEven", "HalfAway", "HalfUp", "Floor", "Ceil"};
inline const char* const kCodeNames[] = {"u8", "i8", "i16", "i32"};
inline constexpr size_t kGuard = 24;  // canary elements after every output buffer

struct ParamSet {
  float scale;
  int32_t zero_point;
  int64_t qmin, qmax;
  const char* name;
};

// Ranges and scales chosen for their edges: exact power-of-two steps (ties survive scaling), a
// non-representable step, FBGEMM's 127.5 example, 16-bit and wide ranges, a scale whose
// reciprocal is subnormal, one whose products overflow, and a 1-bit range.
inline const ParamSet kParamSets[] = {
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

inline bool code_type_holds(CodeType c, int64_t qmin, int64_t qmax) {
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
inline T from_float(float f) {
  T v{};
  lowbit::store_from_float(&v, f);
  return v;
}
template <typename T>
inline float to_float(const T& v) {
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
inline bool same_elem(float a, float b) { return lowbit_test::same_float(a, b); }
inline bool same_elem(Half a, Half b) {
  return a.bits == b.bits || (lowbit_test::half_bits_is_nan(a.bits) && lowbit_test::half_bits_is_nan(b.bits));
}
inline bool same_elem(BFloat16 a, BFloat16 b) {
  return a.bits == b.bits || (lowbit_test::bf16_bits_is_nan(a.bits) && lowbit_test::bf16_bits_is_nan(b.bits));
}
template <typename Code>
inline bool same_elem(Code a, Code b) {
  return a == b;
}

inline std::string show(float v) { return describe(v); }
inline std::string show(Half v) { return lowbit_test::hex16(v.bits) + " = " + describe(lowbit::half_to_float(v)); }
inline std::string show(BFloat16 v) { return lowbit_test::hex16(v.bits) + " = " + describe(lowbit::bfloat16_to_float(v)); }
template <typename Code>
inline std::string show(Code v) {
  return std::to_string(static_cast<int64_t>(v));
}

template <typename T>
inline T canary() {
  T v;
  std::memset(&v, 0xA5, sizeof v);
  return v;
}

// ---- adversarial inputs ---------------------------------------------------------------------------

inline void shuffle(std::vector<float>& v, uint64_t seed) {
  lowbit_test::SplitMix64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.next() % i]);
}

// Floats x with x · inv_scale exactly equal to `target` (an integer or a tie k + 0.5), if any
// exist near target / inv_scale.
inline void push_exact_products(std::vector<float>& out, float target, float inv_scale) {
  const float guess = target / inv_scale;
  if (!std::isfinite(guess)) return;
  float x = guess;
  for (int i = 0; i < 3; ++i) x = std::nextafter(x, -kInf);
  for (int i = 0; i < 7; ++i, x = std::nextafter(x, kInf)) {
    if (x * inv_scale == target) out.push_back(x);
  }
}

inline void push_with_neighbors(std::vector<float>& out, float v) {
  out.push_back(v);
  float lo = v, hi = v;
  for (int i = 0; i < 2; ++i) {
    lo = std::nextafter(lo, -kInf);
    hi = std::nextafter(hi, kInf);
    out.push_back(lo);
    out.push_back(hi);
  }
}

inline std::vector<float> adversarial_floats(const AffineParams& p, uint64_t seed) {
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
inline std::vector<T> typed_pool(const std::vector<float>& floats, uint64_t seed) {
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
inline std::vector<T> gradient_pool(size_t n, uint64_t seed) {
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
inline std::vector<Window> windows_for(size_t pool) {
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
inline std::vector<T> slice(const std::vector<T>& pool, const Window& w) {
  return std::vector<T>(pool.begin() + static_cast<ptrdiff_t>(w.offset),
                        pool.begin() + static_cast<ptrdiff_t>(w.offset + w.n));
}

// Reports the first few differing elements (with the inputs that produced them).
inline int g_reported = 0;

template <typename Out, typename In>
inline bool compare_outputs(const std::string& what, const std::vector<In>& in, const std::vector<Out>& got,
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
inline std::vector<T> output_buffer(size_t n) {
  return std::vector<T>(n + kGuard, canary<T>());
}

template <typename Code>
inline bool compare_quantize(const AffineKernels& isa, const AffineKernels& ref, int e, int r, CodeType c,
                      const std::string& what, const void* x_data, size_t n, const AffineParams& p,
                      const std::vector<float>& x_as_float) {
  std::vector<Code> got = output_buffer<Code>(n), want = output_buffer<Code>(n);
  isa.quantize[e][r][static_cast<int>(c)](x_data, got.data(), static_cast<int64_t>(n), p);
  ref.quantize[e][r][static_cast<int>(c)](x_data, want.data(), static_cast<int64_t>(n), p);
  return compare_outputs(what, x_as_float, got, want, n);
}

template <typename T>
inline int run_elem_type(const AffineKernels& isa, const AffineKernels& ref, const ParamSet& ps, uint64_t seed) {
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
inline int run_minmax_signed_zeros(const AffineKernels& isa, const AffineKernels& ref, uint64_t seed) {
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
inline int run_dequantize(const AffineKernels& isa, const AffineKernels& ref, CodeType c, const ParamSet& ps, uint64_t seed) {
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
inline int run_dequantize_all_codes(const AffineKernels& isa, const AffineKernels& ref, const ParamSet& ps, uint64_t seed) {
  return run_dequantize<uint8_t, T>(isa, ref, CodeType::U8, ps, seed) +
         run_dequantize<int8_t, T>(isa, ref, CodeType::I8, ps, seed + 1) +
         run_dequantize<int16_t, T>(isa, ref, CodeType::I16, ps, seed + 2) +
         run_dequantize<int32_t, T>(isa, ref, CodeType::I32, ps, seed + 3);
}

inline void check_table_complete(const AffineKernels& k) {
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


// `table` against the scalar reference `ref`, bit for bit, on everything above. The caller
// checks first that its CPU can run `table`.
inline void check_table_equals_reference(const AffineKernels& table, const AffineKernels& ref) {
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

// minmax of one table on fixed cases: NaN is skipped, nothing observed keeps the sentinels, and a
// zero extremum is +0 whichever zeros the data holds.
inline void check_minmax_nan_and_empty(const AffineKernels& k) {
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

}  // namespace lowbit_affine_test
