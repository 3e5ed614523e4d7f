// One-lane "vector" for the scalar reference path: every operation is the cpp/core scalar
// function, so the templated kernels compiled with this type *are* the reference.
#pragma once
#include <cmath>

#include "core/affine.h"
#include "core/float16.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace simd {

struct VecScalar {
  static constexpr int kLanes = 1;
  static constexpr const char* kName = "scalar";
  using F = float;
  using M = bool;

  template <typename T>
  static F load(const T* p) { return load_as_float(p); }
  template <typename T>
  static void store(T* p, F v) { store_from_float(p, v); }
  static F set1(float v) { return v; }
  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F max_keep_nan(F lo, F v) { return lo > v ? lo : v; }
  static F min_keep_nan(F hi, F v) { return hi < v ? hi : v; }
  static F min_ignore_nan(F x, F acc) { return x < acc ? x : acc; }
  static F max_ignore_nan(F x, F acc) { return x > acc ? x : acc; }
  static M le(F a, F b) { return a <= b; }
  static M both(M a, M b) { return a && b; }
  static F select_or_zero(M m, F v) { return m ? v : 0.0f; }
  static F mul_by_mask(M m, F v) { return ste_apply(v, m); }
  template <Rounding R>
  static F round(F v) { return round_by(R, v); }
  static float reduce_min(F v) { return v; }
  static float reduce_max(F v) { return v; }
};

}  // namespace simd
LOWBIT_ISA_END
}  // namespace lowbit
