// The affine kernels written once over a vector type V (simd_scalar.h, simd_avx2.h,
// simd_avx512.h). Included by exactly one translation unit per ISA, after that TU's vector header;
// everything here lands in the TU's ISA namespace. Tails run the cpp/core scalar formulas, which
// the vector operations equal bit for bit.
#pragma once
#include <algorithm>
#include <cstdint>

#include "core/affine.h"
#include "core/float16.h"
#include "kernels/affine_kernels.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace affine_impl {

using kernels::AffineKernels;
using kernels::CodeType;
using kernels::ElemType;

template <typename V, typename T, Rounding R>
void fake_quantize_run(const void* xv, void* yv, int64_t n, const AffineParams& p) {
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  const auto inv = V::set1(p.inv_scale), z = V::set1(p.zero_point), lo = V::set1(p.qmin),
             hi = V::set1(p.qmax), scale = V::set1(p.scale);
  int64_t i = 0;
  // Two vectors per iteration keep both load ports busy on the memory-bound path.
  for (; i + 2 * V::kLanes <= n; i += 2 * V::kLanes) {
    auto q0 = V::add(z, V::template round<R>(V::mul(V::load(x + i), inv)));
    auto q1 = V::add(z, V::template round<R>(V::mul(V::load(x + i + V::kLanes), inv)));
    q0 = V::min_keep_nan(hi, V::max_keep_nan(lo, q0));
    q1 = V::min_keep_nan(hi, V::max_keep_nan(lo, q1));
    V::store(y + i, V::mul(V::sub(q0, z), scale));
    V::store(y + i + V::kLanes, V::mul(V::sub(q1, z), scale));
  }
  for (; i + V::kLanes <= n; i += V::kLanes) {
    auto q = V::add(z, V::template round<R>(V::mul(V::load(x + i), inv)));
    q = V::min_keep_nan(hi, V::max_keep_nan(lo, q));
    V::store(y + i, V::mul(V::sub(q, z), scale));
  }
  for (; i < n; ++i) {
    store_from_float(y + i, fake_quantize_from_code(affine_code_unclamped(load_as_float(x + i), p, R), p));
  }
}

template <typename V, typename T, Rounding R>
void fake_quantize_backward_integer_run(const void* xv, const void* dyv, void* dxv, int64_t n,
                                        const AffineParams& p) {
  const T* x = static_cast<const T*>(xv);
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  const auto inv = V::set1(p.inv_scale), z = V::set1(p.zero_point), lo = V::set1(p.qmin),
             hi = V::set1(p.qmax);
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) {
    const auto q = V::add(z, V::template round<R>(V::mul(V::load(x + i), inv)));
    const auto inside = V::both(V::le(lo, q), V::le(q, hi));
    V::store(dx + i, V::mul_by_mask(inside, V::load(dy + i)));
  }
  for (; i < n; ++i) {
    const float q = affine_code_unclamped(load_as_float(x + i), p, R);
    store_from_float(dx + i, ste_apply(load_as_float(dy + i), ste_integer_mask(q, p)));
  }
}

template <typename V, typename T>
void fake_quantize_backward_real_run(const void* xv, const void* dyv, void* dxv, int64_t n,
                                     const AffineParams& p) {
  const T* x = static_cast<const T*>(xv);
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  const auto lo = V::set1(p.real_lo), hi = V::set1(p.real_hi);
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) {
    const auto v = V::load(x + i);
    V::store(dx + i, V::mul_by_mask(V::both(V::le(lo, v), V::le(v, hi)), V::load(dy + i)));
  }
  for (; i < n; ++i) {
    store_from_float(dx + i, ste_apply(load_as_float(dy + i), ste_real_mask(load_as_float(x + i), p)));
  }
}

// Codes are computed with the vector rounding and stored lane by lane: quantize is not the hot
// path of training and the narrowing store is the same in every ISA.
template <typename V, typename T, Rounding R, typename Code>
void quantize_run(const void* xv, void* qv, int64_t n, const AffineParams& p) {
  const T* x = static_cast<const T*>(xv);
  Code* q = static_cast<Code*>(qv);
  const auto inv = V::set1(p.inv_scale), z = V::set1(p.zero_point);
  int64_t i = 0;
  if constexpr (V::kLanes > 1) {
    alignas(64) float codes[V::kLanes];
    for (; i + V::kLanes <= n; i += V::kLanes) {
      V::store(codes, V::add(z, V::template round<R>(V::mul(V::load(x + i), inv))));
      for (int l = 0; l < V::kLanes; ++l) q[i + l] = static_cast<Code>(affine_code_to_int(codes[l], p));
    }
  }
  for (; i < n; ++i) {
    q[i] = static_cast<Code>(affine_code_to_int(affine_code_unclamped(load_as_float(x + i), p, R), p));
  }
}

template <typename Code, typename T>
void dequantize_run(const void* qv, void* yv, int64_t n, float scale, float zero_point) {
  const Code* q = static_cast<const Code*>(qv);
  T* y = static_cast<T*>(yv);
  for (int64_t i = 0; i < n; ++i) {
    store_from_float(y + i, (static_cast<float>(q[i]) - zero_point) * scale);
  }
}

template <typename V, typename T>
void minmax_run(const void* xv, int64_t n, float* min_val, float* max_val) {
  const T* x = static_cast<const T*>(xv);
  float mn = *min_val, mx = *max_val;
  int64_t i = 0;
  if constexpr (V::kLanes > 1) {
    if (n >= V::kLanes) {
      auto vmin = V::set1(mn), vmax = V::set1(mx);
      for (; i + V::kLanes <= n; i += V::kLanes) {
        const auto v = V::load(x + i);
        vmin = V::min_ignore_nan(v, vmin);
        vmax = V::max_ignore_nan(v, vmax);
      }
      mn = V::reduce_min(vmin);
      mx = V::reduce_max(vmax);
    }
  }
  for (; i < n; ++i) {
    const float v = load_as_float(x + i);
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  // A zero extremum leaves as +0: which of +0 / -0 a min/max meets first depends on the lane
  // order, so without this the ISAs (and thread splits) disagree on its sign. `+ 0.0f` maps -0
  // to +0 and leaves every other value, NaN and ±Inf included, unchanged.
  *min_val = mn + 0.0f;
  *max_val = mx + 0.0f;
}

template <typename V, typename T>
void fill_element_type(AffineKernels& k, int e) {
  constexpr Rounding kRoundings[] = {Rounding::HalfEven, Rounding::HalfAway, Rounding::HalfUp,
                                     Rounding::Floor, Rounding::Ceil};
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((k.fake_quantize[e][I] = &fake_quantize_run<V, T, kRoundings[I]>), ...);
    ((k.fake_quantize_backward_integer[e][I] = &fake_quantize_backward_integer_run<V, T, kRoundings[I]>), ...);
    ((k.quantize[e][I][static_cast<int>(CodeType::U8)] = &quantize_run<V, T, kRoundings[I], uint8_t>), ...);
    ((k.quantize[e][I][static_cast<int>(CodeType::I8)] = &quantize_run<V, T, kRoundings[I], int8_t>), ...);
    ((k.quantize[e][I][static_cast<int>(CodeType::I16)] = &quantize_run<V, T, kRoundings[I], int16_t>), ...);
    ((k.quantize[e][I][static_cast<int>(CodeType::I32)] = &quantize_run<V, T, kRoundings[I], int32_t>), ...);
  }(std::make_index_sequence<5>{});
  k.fake_quantize_backward_real[e] = &fake_quantize_backward_real_run<V, T>;
  k.dequantize[static_cast<int>(CodeType::U8)][e] = &dequantize_run<uint8_t, T>;
  k.dequantize[static_cast<int>(CodeType::I8)][e] = &dequantize_run<int8_t, T>;
  k.dequantize[static_cast<int>(CodeType::I16)][e] = &dequantize_run<int16_t, T>;
  k.dequantize[static_cast<int>(CodeType::I32)][e] = &dequantize_run<int32_t, T>;
  k.minmax[e] = &minmax_run<V, T>;
}

template <typename V>
AffineKernels make_affine_kernels() {
  AffineKernels k{};
  k.isa_name = V::kName;
  fill_element_type<V, float>(k, static_cast<int>(ElemType::F32));
  fill_element_type<V, Half>(k, static_cast<int>(ElemType::F16));
  fill_element_type<V, BFloat16>(k, static_cast<int>(ElemType::BF16));
  return k;
}

}  // namespace affine_impl
LOWBIT_ISA_END
}  // namespace lowbit
