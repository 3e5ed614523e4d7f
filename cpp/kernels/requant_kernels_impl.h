// Requantization kernels written once over an int32 vector type VI (simd_int_scalar.h,
// simd_int_avx2.h, simd_int_avx512.h). Included by exactly one translation unit per ISA, after
// that TU's vector header. Tails run core/requantize.h, which the vector lanes equal bit for bit.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "core/requantize.h"
#include "kernels/requant_kernels.h"
#include "kernels/requant_multiply.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace requant_impl {

using kernels::CodeType;
using kernels::RequantKernels;

// clamp(zp + r, qmin, qmax) as clamp(r, qmin - zp, qmax - zp) + zp: no int32 overflow for any r.
// The bounds are formed in int64 and clipped to int32 (r is an int32 anyway).
inline int32_t clip_to_int32(int64_t v) { return static_cast<int32_t>(std::clamp<int64_t>(v, kInt32Min, kInt32Max)); }

using simd::requant_multiply;
using simd::requant_right_shift_only;

template <typename VI, RequantRounding R, typename Code>
void requantize_run(const int32_t* acc, void* outv, int64_t n, const RequantParams& p) {
  Code* out = static_cast<Code*>(outv);
  int64_t i = 0;
  if constexpr (VI::kLanes > 1) {
    const auto multiplier = VI::set1(p.multiplier), zp = VI::set1(p.zero_point);
    const auto lo = VI::set1(clip_to_int32(int64_t{p.qmin} - p.zero_point));
    const auto hi = VI::set1(clip_to_int32(int64_t{p.qmax} - p.zero_point));
    auto loop = [&](auto right_only) {
      constexpr bool kRightOnly = decltype(right_only)::value && R == RequantRounding::Double;
      const auto shift = VI::set1(kRightOnly ? -p.shift : p.shift);
      for (; i + VI::kLanes <= n; i += VI::kLanes) {
        const auto r = requant_multiply<VI, R, kRightOnly>(VI::load(acc + i), multiplier, shift);
        VI::store_narrow(out + i, VI::add(VI::min(VI::max(r, lo), hi), zp));
      }
    };
    if (requant_right_shift_only<R>(p.multiplier, p.shift)) {
      loop(std::true_type{});
    } else {
      loop(std::false_type{});
    }
  }
  for (; i < n; ++i) out[i] = static_cast<Code>(requantize_one(acc[i], p, R));
}

template <typename VI, RequantRounding R, typename Code>
void requantize_channels(const int32_t* acc, void* outv, int64_t n, const int32_t* multiplier,
                         const int32_t* shift, const int32_t* zero_point, int32_t qmin, int32_t qmax) {
  Code* out = static_cast<Code*>(outv);
  int64_t i = 0;
  if constexpr (VI::kLanes > 1) {
    const auto vqmin = VI::set1(qmin), vqmax = VI::set1(qmax);
    for (; i + VI::kLanes <= n; i += VI::kLanes) {
      const auto zp = VI::load(zero_point + i);
      const auto x = VI::load(acc + i), vm = VI::load(multiplier + i), vs = VI::load(shift + i);
      const auto r = R == RequantRounding::Double && VI::right_shift_only(vm, vs)
                         ? requant_multiply<VI, R, true>(x, vm, VI::sub(VI::set1(0), vs))
                         : requant_multiply<VI, R>(x, vm, vs);
      const auto lo = VI::sub_sat(vqmin, zp), hi = VI::sub_sat(vqmax, zp);
      const auto clamped = VI::add(VI::min(VI::max(r, lo), hi), zp);
      VI::store_narrow(out + i, clamped);
    }
  }
  for (; i < n; ++i) {
    out[i] = static_cast<Code>(requantize_one(acc[i], multiplier[i], shift[i], zero_point[i], qmin, qmax, R));
  }
}

template <typename VI, RequantRounding R, typename In, typename Out>
void quantized_add(const void* av, const void* bv, void* outv, int64_t n, const QuantizedAddParams& p) {
  const In* a = static_cast<const In*>(av);
  const In* b = static_cast<const In*>(bv);
  Out* out = static_cast<Out*>(outv);
  int64_t i = 0;
  if constexpr (VI::kLanes > 1) {
    const auto za = VI::set1(p.a_zero_point), zb = VI::set1(p.b_zero_point);
    const auto ma = VI::set1(p.a_multiplier), mb = VI::set1(p.b_multiplier), mo = VI::set1(p.out_multiplier);
    const auto zo = VI::set1(p.out_zero_point);
    const auto lo = VI::set1(clip_to_int32(int64_t{p.qmin} - p.out_zero_point));
    const auto hi = VI::set1(clip_to_int32(int64_t{p.qmax} - p.out_zero_point));
    auto loop = [&](auto right_only) {
      constexpr bool kRightOnly = decltype(right_only)::value && R == RequantRounding::Double;
      const int sign = kRightOnly ? -1 : 1;
      const auto sa = VI::set1(sign * p.a_shift), sb = VI::set1(sign * p.b_shift), so = VI::set1(sign * p.out_shift);
      for (; i + VI::kLanes <= n; i += VI::kLanes) {
        const auto xa = VI::shift_left(VI::sub(VI::load_widen(a + i), za), p.left_shift);
        const auto xb = VI::shift_left(VI::sub(VI::load_widen(b + i), zb), p.left_shift);
        const auto y = VI::add(requant_multiply<VI, R, kRightOnly>(xa, ma, sa),
                               requant_multiply<VI, R, kRightOnly>(xb, mb, sb));
        const auto r = requant_multiply<VI, R, kRightOnly>(y, mo, so);
        VI::store_narrow(out + i, VI::add(VI::min(VI::max(r, lo), hi), zo));
      }
    };
    if (requant_right_shift_only<R>(p.a_multiplier, p.a_shift) && requant_right_shift_only<R>(p.b_multiplier, p.b_shift) &&
        requant_right_shift_only<R>(p.out_multiplier, p.out_shift)) {
      loop(std::true_type{});
    } else {
      loop(std::false_type{});
    }
  }
  for (; i < n; ++i) out[i] = static_cast<Out>(quantized_add_one(a[i], b[i], p, R));
}

template <typename VI, RequantRounding R>
void fill_rounding(RequantKernels& k) {
  constexpr int r = static_cast<int>(R);
  k.run[r][static_cast<int>(CodeType::U8)] = &requantize_run<VI, R, uint8_t>;
  k.run[r][static_cast<int>(CodeType::I8)] = &requantize_run<VI, R, int8_t>;
  k.run[r][static_cast<int>(CodeType::I16)] = &requantize_run<VI, R, int16_t>;
  k.run[r][static_cast<int>(CodeType::I32)] = &requantize_run<VI, R, int32_t>;
  k.channels[r][static_cast<int>(CodeType::U8)] = &requantize_channels<VI, R, uint8_t>;
  k.channels[r][static_cast<int>(CodeType::I8)] = &requantize_channels<VI, R, int8_t>;
  k.channels[r][static_cast<int>(CodeType::I16)] = &requantize_channels<VI, R, int16_t>;
  k.channels[r][static_cast<int>(CodeType::I32)] = &requantize_channels<VI, R, int32_t>;
  k.add[r][0][0] = &quantized_add<VI, R, uint8_t, uint8_t>;
  k.add[r][0][1] = &quantized_add<VI, R, uint8_t, int8_t>;
  k.add[r][1][0] = &quantized_add<VI, R, int8_t, uint8_t>;
  k.add[r][1][1] = &quantized_add<VI, R, int8_t, int8_t>;
}

template <typename VI>
RequantKernels make_requant_kernels() {
  RequantKernels k{};
  k.isa_name = VI::kName;
  fill_rounding<VI, RequantRounding::Double>(k);
  fill_rounding<VI, RequantRounding::Single>(k);
  return k;
}

}  // namespace requant_impl
LOWBIT_ISA_END
}  // namespace lowbit
