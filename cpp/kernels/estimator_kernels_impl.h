// The estimator kernels written once over an op type E (estimator_simd.h: EScalar, EAvx2,
// EAvx512). Included by exactly one translation unit per ISA, after that TU's vector headers;
// everything here lands in the TU's ISA namespace.
//
// Two loop shapes, shared by all estimators:
//  * map_run: y = f(x) vector by vector; the tail (n % lanes elements) is copied into a
//    zero-padded vector, processed the same way and copied back, so tails take exactly the
//    vector path's operations.
//  * map_reduce_run: dx = f(x, dy) plus K parameter-gradient contributions per element, reduced
//    in the canonical order of estimator_kernels.h (lane j % 16, halving tree). Blocks of 16
//    elements are 16 / E::kLanes vectors, each with its own accumulator; the tail block is
//    zero-padded (dy = 0, so padded elements contribute ±0, identically on every ISA).
// Stochastic variants are instantiated with EScalar only: the draw for element i of the piece is
// stochastic_uniform(seed, counter0 + i).
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/float16.h"
#include "core/lsq.h"
#include "core/pact.h"
#include "core/qil.h"
#include "core/soft_quant.h"
#include "core/vmath.h"
#include "kernels/estimator_kernels.h"
#include "kernels/estimator_simd.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace estimator_impl {

using kernels::ElemType;
using kernels::EstimatorKernels;
using kernels::EstimatorStochasticKernels;
using kernels::kReductionLanes;
using kernels::RngStream;

// ---- loop shapes -----------------------------------------------------------------------------

// f(F x, int64_t first_index) -> F y
template <class E, typename T, class Fn>
inline void map_run(const T* x, T* y, int64_t n, Fn&& f) {
  constexpr int W = E::kLanes;
  int64_t i = 0;
  for (; i + W <= n; i += W) E::store(y + i, f(E::load(x + i), i));
  if (i < n) {
    T xb[W] = {}, yb[W];
    const int64_t rem = n - i;
    std::copy(x + i, x + n, xb);
    E::store(yb, f(E::load(xb), i));
    std::copy(yb, yb + rem, y + i);
  }
}

// f(F x, F dy, int64_t first_index, F* contributions[K]) -> F dx
template <class E, int K, typename T, class Fn>
inline void map_reduce_run(const T* x, const T* dy, T* dx, int64_t n, float* sums, Fn&& f) {
  using F = typename E::F;
  constexpr int W = E::kLanes;
  constexpr int V = kReductionLanes / W;
  static_assert(kReductionLanes % W == 0, "the canonical reduction needs lanes dividing 16");
  F acc[K][V];
  for (int k = 0; k < K; ++k)
    for (int v = 0; v < V; ++v) acc[k][v] = E::set1(0.0f);
  auto block = [&](const T* xb, const T* dyb, T* dxb, int64_t first) {
    for (int v = 0; v < V; ++v) {
      F c[K];
      E::store(dxb + v * W, f(E::load(xb + v * W), E::load(dyb + v * W), first + v * W, c));
      for (int k = 0; k < K; ++k) acc[k][v] = E::add(acc[k][v], c[k]);
    }
  };
  int64_t i = 0;
  for (; i + kReductionLanes <= n; i += kReductionLanes) block(x + i, dy + i, dx + i, i);
  if (i < n) {
    T xb[kReductionLanes] = {}, dyb[kReductionLanes] = {}, dxb[kReductionLanes];
    std::copy(x + i, x + n, xb);
    std::copy(dy + i, dy + n, dyb);
    block(xb, dyb, dxb, i);
    std::copy(dxb, dxb + (n - i), dx + i);
  }
  for (int k = 0; k < K; ++k) {
    float lanes[kReductionLanes];
    for (int v = 0; v < V; ++v) E::store(lanes + v * W, acc[k][v]);
    for (int w = kReductionLanes / 2; w >= 1; w /= 2)
      for (int l = 0; l < w; ++l) lanes[l] += lanes[l + w];
    sums[k] = lanes[0];
  }
}

// Rounding of one vector: half to even, or (EScalar only) stochastic with the element's draw.
template <class E, bool kStochastic>
inline typename E::F round_value(typename E::F v, RngStream rng, int64_t index) {
  if constexpr (kStochastic) {
    static_assert(E::kLanes == 1, "stochastic rounding has one scalar implementation");
    return round_stochastic(v, stochastic_uniform(rng.seed, rng.counter0 + static_cast<uint64_t>(index)));
  } else {
    return E::rne(v);
  }
}

// ---- LSQ / LSQ+ ------------------------------------------------------------------------------

template <class E, typename T, bool kOffset, bool kStochastic>
void lsq_forward(const void* xv, void* yv, int64_t n, const LsqParams& params, RngStream rng) {
  const LsqVec<E> p(params);
  map_run<E>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    return lsq_output<E, kOffset>(round_value<E, kStochastic>(lsq_scaled<E, kOffset>(x, p), rng, i), p);
  });
}

template <class E, typename T, bool kOffset, bool kStochastic>
void lsq_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const LsqParams& params, RngStream rng,
                  float* sums) {
  const LsqVec<E> p(params);
  map_reduce_run<E, 2>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                       [&](auto x, auto dy, int64_t i, auto* c) {
                         const auto v = lsq_scaled<E, kOffset>(x, p);
                         const auto g = lsq_grads<E>(v, round_value<E, kStochastic>(v, rng, i), dy, p);
                         c[0] = g.dscale;
                         c[1] = g.doffset;
                         return g.dx;
                       });
}

// ---- PyTorch learnable -----------------------------------------------------------------------

template <class E, typename T, bool kFused>
void learnable_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const LearnableGradParams& params,
                        RngStream, float* sums) {
  const LearnableVec<E> p(params);
  map_reduce_run<E, 2>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                       [&](auto x, auto dy, int64_t, auto* c) {
                         const auto g = learnable_grads<E, kFused>(x, dy, p);
                         c[0] = g.dscale;
                         c[1] = g.dzero_point;
                         return g.dx;
                       });
}

// ---- PACT ------------------------------------------------------------------------------------

template <class E, typename T, bool kStochastic>
void pact_forward(const void* xv, void* yv, int64_t n, const PactParams& params, RngStream rng) {
  const PactVec<E> p(params);
  map_run<E>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    return pact_output<E>(round_value<E, kStochastic>(pact_scaled<E>(x, p), rng, i), p);
  });
}

template <class E, typename T, bool kSigned>
void pact_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const PactParams& params, RngStream,
                   float* sums) {
  const PactVec<E> p(params);
  map_reduce_run<E, 1>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                       [&](auto x, auto dy, int64_t, auto* c) {
                         const auto g = pact_grads<E, kSigned>(x, dy, p);
                         c[0] = g.dalpha;
                         return g.dx;
                       });
}

// ---- QIL -------------------------------------------------------------------------------------

template <class E, typename T, bool kWeight, bool kPower, bool kStochastic>
void qil_forward(const void* xv, void* yv, int64_t n, const QilParams& params, RngStream rng) {
  const QilVec<E> p(params);
  map_run<E>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    const auto s = qil_state<E, kWeight, kPower>(x, p);
    return qil_output<E>(s, round_value<E, kStochastic>(qil_scaled<E>(s, p), rng, i), p);
  });
}

template <class E, typename T, bool kWeight, bool kPower>
void qil_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const QilParams& params, RngStream,
                  float* sums) {
  const QilVec<E> p(params);
  map_reduce_run<E, 3>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                       [&](auto x, auto dy, int64_t, auto* c) {
                         const auto g = qil_grads<E>(qil_state<E, kWeight, kPower>(x, p), dy, p);
                         c[0] = g.dc;
                         c[1] = g.dd;
                         c[2] = g.dgamma;
                         return g.dx;
                       });
}

// ---- DSQ -------------------------------------------------------------------------------------

template <class E, typename T, bool kSoft, bool kStochastic>
void dsq_forward(const void* xv, void* yv, int64_t n, const DsqParams& params, RngStream rng) {
  const DsqVec<E> p(params);
  map_run<E>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    const auto v = dsq_scaled<E>(x, p);
    if constexpr (kSoft) {
      return dsq_soft_output<E>(x, dsq_soft_state<E>(v, p), p);
    } else {
      return dsq_hard_output<E>(round_value<E, kStochastic>(v, rng, i), p);
    }
  });
}

template <class E, typename T>
void dsq_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const DsqParams& params, RngStream,
                  float* sums) {
  const DsqVec<E> p(params);
  map_reduce_run<E, 3>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                       [&](auto x, auto dy, int64_t, auto* c) {
                         const auto v = dsq_scaled<E>(x, p);
                         const auto g = dsq_grads<E>(x, v, dsq_soft_state<E>(v, p), dy, p);
                         c[0] = g.dlower;
                         c[1] = g.dupper;
                         c[2] = g.dalpha;
                         return g.dx;
                       });
}

// ---- sigmoid staircase -----------------------------------------------------------------------

template <class E, typename T, bool kHard>
void sigmoid_forward(const void* xv, void* yv, int64_t n, const SigmoidParams& p, RngStream) {
  map_run<E>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t) {
    return sigmoid_output<E>(sigmoid_sums<E, kHard, false>(x, p), p);
  });
}

template <class E, typename T>
void sigmoid_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const SigmoidParams& p, RngStream,
                      float* sums) {
  map_reduce_run<E, 2>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                       [&](auto x, auto dy, int64_t, auto* c) {
                         const auto g = sigmoid_grads<E>(x, sigmoid_sums<E, false, true>(x, p), dy, p);
                         c[0] = g.dalpha;
                         c[1] = g.dbeta;
                         return g.dx;
                       });
}

// ---- tables ----------------------------------------------------------------------------------

template <class E, typename T>
void fill_estimators(EstimatorKernels& k, int e) {
  k.lsq_forward[e][0] = &lsq_forward<E, T, false, false>;
  k.lsq_forward[e][1] = &lsq_forward<E, T, true, false>;
  k.lsq_backward[e][0] = &lsq_backward<E, T, false, false>;
  k.lsq_backward[e][1] = &lsq_backward<E, T, true, false>;
  k.learnable_backward[e][0] = &learnable_backward<E, T, false>;
  k.learnable_backward[e][1] = &learnable_backward<E, T, true>;
  k.pact_forward[e] = &pact_forward<E, T, false>;
  k.pact_backward[e][0] = &pact_backward<E, T, false>;
  k.pact_backward[e][1] = &pact_backward<E, T, true>;
  k.qil_forward[e][0][0] = &qil_forward<E, T, false, false, false>;
  k.qil_forward[e][0][1] = &qil_forward<E, T, false, true, false>;
  k.qil_forward[e][1][0] = &qil_forward<E, T, true, false, false>;
  k.qil_forward[e][1][1] = &qil_forward<E, T, true, true, false>;
  k.qil_backward[e][0][0] = &qil_backward<E, T, false, false>;
  k.qil_backward[e][0][1] = &qil_backward<E, T, false, true>;
  k.qil_backward[e][1][0] = &qil_backward<E, T, true, false>;
  k.qil_backward[e][1][1] = &qil_backward<E, T, true, true>;
  k.dsq_forward[e][0] = &dsq_forward<E, T, false, false>;
  k.dsq_forward[e][1] = &dsq_forward<E, T, true, false>;
  k.dsq_backward[e] = &dsq_backward<E, T>;
  k.sigmoid_forward[e][0] = &sigmoid_forward<E, T, false>;
  k.sigmoid_forward[e][1] = &sigmoid_forward<E, T, true>;
  k.sigmoid_backward[e] = &sigmoid_backward<E, T>;
}

template <class E>
EstimatorKernels make_estimator_kernels() {
  EstimatorKernels k{};
  k.isa_name = E::kName;
  fill_estimators<E, float>(k, static_cast<int>(ElemType::F32));
  fill_estimators<E, Half>(k, static_cast<int>(ElemType::F16));
  fill_estimators<E, BFloat16>(k, static_cast<int>(ElemType::BF16));
  return k;
}

template <typename T>
void fill_stochastic(EstimatorStochasticKernels& k, int e) {
  using E = simd::EScalar;
  k.lsq_forward[e][0] = &lsq_forward<E, T, false, true>;
  k.lsq_forward[e][1] = &lsq_forward<E, T, true, true>;
  k.lsq_backward[e][0] = &lsq_backward<E, T, false, true>;
  k.lsq_backward[e][1] = &lsq_backward<E, T, true, true>;
  k.pact_forward[e] = &pact_forward<E, T, true>;
  k.qil_forward[e][0][0] = &qil_forward<E, T, false, false, true>;
  k.qil_forward[e][0][1] = &qil_forward<E, T, false, true, true>;
  k.qil_forward[e][1][0] = &qil_forward<E, T, true, false, true>;
  k.qil_forward[e][1][1] = &qil_forward<E, T, true, true, true>;
  k.dsq_hard_forward[e] = &dsq_forward<E, T, false, true>;
}

inline EstimatorStochasticKernels make_estimator_stochastic_kernels() {
  EstimatorStochasticKernels k{};
  fill_stochastic<float>(k, static_cast<int>(ElemType::F32));
  fill_stochastic<Half>(k, static_cast<int>(ElemType::F16));
  fill_stochastic<BFloat16>(k, static_cast<int>(ElemType::BF16));
  return k;
}

}  // namespace estimator_impl
LOWBIT_ISA_END
}  // namespace lowbit
