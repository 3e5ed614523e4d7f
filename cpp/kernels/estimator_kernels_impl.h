// The estimator kernels written once over an op type E (estimator_simd.h: EScalar, EAvx2,
// EAvx512). Included by exactly one translation unit per ISA, after that TU's vector headers;
// everything here lands in the TU's ISA namespace.
//
// Two loop shapes, shared by all estimators. Both hand the per-element formulas Bulk<E> =
// simd::Multi<E, kUnroll>, several vectors of E at once on the vector paths, so that their long
// dependency chains overlap (results per lane are unchanged: Multi applies E's operations
// member by member).
//  * map_run: y = f(x) Bulk vector by Bulk vector; the tail (n % Bulk lanes elements) is copied
//    into a zero-padded buffer, processed the same way and copied back, so tails take exactly
//    the vector path's operations.
//  * map_reduce_run: dx = f(x, dy) plus K parameter-gradient contributions per element, reduced
//    in the canonical order of estimator_kernels.h (lane j % 16, halving tree). Blocks of 16
//    elements are 16 / E::kLanes vectors, each with its own accumulator, added block after block;
//    the last block is zero-padded (dy = 0, so padded elements contribute ±0, identically on
//    every ISA), and padding beyond it is never accumulated.
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

// Kernel entry points inline everything they call: the per-element formulas over a Multi are
// long, and an out-of-line call would pass every Multi value through memory. The sanitized
// build defines LOWBIT_NO_FLATTEN (see CMakeLists.txt): same arithmetic, tractable compile time.
#if defined(__GNUC__) && !defined(LOWBIT_NO_FLATTEN)
#define LOWBIT_FLATTEN __attribute__((flatten))
#else
#define LOWBIT_FLATTEN
#endif

// Vectors of E that the loops hand to the per-element formulas at once (as one simd::Multi):
// enough independent dependency chains for the core to overlap (see Multi). The scalar path
// stays one element at a time: it is the reference, and sixteen-fold scalar code only costs
// compile time.
template <class E>
inline constexpr int kUnroll = E::kLanes == 1 ? 1 : 4;

template <class E>
using Bulk = simd::Multi<E, kUnroll<E>>;

// f(F x, int64_t first_index) -> F y, over O = Bulk<E>. The tail (n % O::kLanes elements) is
// copied into a zero-padded buffer, processed the same way and copied back; lanes do not
// interact, so every element sees the same operations wherever it sits.
template <class O, typename T, class Fn>
inline void map_run(const T* x, T* y, int64_t n, Fn&& f) {
  constexpr int W = O::kLanes;
  int64_t i = 0;
  for (; i + W <= n; i += W) O::store(y + i, f(O::load(x + i), i));
  if (i < n) {
    T xb[W] = {}, yb[W];
    const int64_t rem = n - i;
    std::copy(x + i, x + n, xb);
    O::store(yb, f(O::load(xb), i));
    std::copy(yb, yb + rem, y + i);
  }
}

// f(F x, F dy, int64_t first_index, F* contributions[K]) -> F dx, over O = Bulk<E> (kMembers
// vectors of E). Elements go in chunks of max(16, O::kLanes): whole reduction blocks of 16
// elements (V vectors of E each), walked by as many O steps as fit. E vector j of a chunk is
// added into accumulator j % V, in increasing j: block after block, the canonical order,
// whatever O's width. The tail chunk is zero-padded, but only blocks holding at least one real
// element are accumulated, so the sums are those of 16-element blocks with a zero-padded last
// block (padded elements have dy = 0 and contribute ±0, identically on every ISA).
template <class E, class O, int K, typename T, class Fn>
inline void map_reduce_run(const T* x, const T* dy, T* dx, int64_t n, float* sums, Fn&& f) {
  using FE = typename E::F;
  constexpr int W = E::kLanes;
  constexpr int V = kReductionLanes / W;
  static_assert(kReductionLanes % W == 0, "the canonical reduction needs lanes dividing 16");
  static_assert(O::kMembers * W == O::kLanes, "the loop type must be made of E vectors");
  constexpr int kChunk = O::kLanes > kReductionLanes ? O::kLanes : kReductionLanes;
  static_assert(kChunk % O::kLanes == 0 && kChunk % kReductionLanes == 0, "lane counts must be powers of 2");
  constexpr int kSteps = kChunk / O::kLanes;
  FE acc[K][V];
  for (int k = 0; k < K; ++k)
    for (int v = 0; v < V; ++v) acc[k][v] = E::set1(0.0f);
  auto chunk = [&](const T* xb, const T* dyb, T* dxb, int64_t first, int64_t blocks_present) {
    for (int s = 0; s < kSteps; ++s) {
      typename O::F c[K];
      const int64_t at = int64_t{s} * O::kLanes;
      O::store(dxb + at, f(O::load(xb + at), O::load(dyb + at), first + at, c));
      for (int m = 0; m < O::kMembers; ++m) {
        const int j = s * O::kMembers + m;
        if (j / V >= blocks_present) break;
        for (int k = 0; k < K; ++k) acc[k][j % V] = E::add(acc[k][j % V], c[k].v[m]);
      }
    }
  };
  int64_t i = 0;
  for (; i + kChunk <= n; i += kChunk) chunk(x + i, dy + i, dx + i, i, kChunk / kReductionLanes);
  if (i < n) {
    T xb[kChunk] = {}, dyb[kChunk] = {}, dxb[kChunk];
    std::copy(x + i, x + n, xb);
    std::copy(dy + i, dy + n, dyb);
    chunk(xb, dyb, dxb, i, (n - i + kReductionLanes - 1) / kReductionLanes);
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

// Rounding of one O vector: half to even, or (scalar members only) stochastic, member u of the
// vector being element first_index + u with its own draw.
template <class O, bool kStochastic>
inline typename O::F round_value(typename O::F v, RngStream rng, int64_t first_index) {
  if constexpr (kStochastic) {
    static_assert(O::Member::kLanes == 1, "stochastic rounding has one scalar implementation");
    for (int u = 0; u < O::kMembers; ++u) {
      const uint64_t counter = rng.counter0 + static_cast<uint64_t>(first_index + u);
      v.v[u] = round_stochastic(v.v[u], stochastic_uniform(rng.seed, counter));
    }
    return v;
  } else {
    return O::rne(v);
  }
}

// ---- LSQ / LSQ+ ------------------------------------------------------------------------------

template <class E, typename T, bool kOffset, bool kStochastic>
LOWBIT_FLATTEN void lsq_forward(const void* xv, void* yv, int64_t n, const LsqParams& params, RngStream rng) {
  using O = Bulk<E>;
  const LsqVec<O> p(params);
  map_run<O>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    return lsq_output<O, kOffset>(round_value<O, kStochastic>(lsq_scaled<O, kOffset>(x, p), rng, i), p);
  });
}

template <class E, typename T, bool kOffset, bool kStochastic>
LOWBIT_FLATTEN void lsq_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const LsqParams& params, RngStream rng,
                  float* sums) {
  using O = Bulk<E>;
  const LsqVec<O> p(params);
  map_reduce_run<E, O, 2>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                          [&](auto x, auto dy, int64_t i, auto* c) {
                            const auto v = lsq_scaled<O, kOffset>(x, p);
                            const auto g = lsq_grads<O>(v, round_value<O, kStochastic>(v, rng, i), dy, p);
                            c[0] = g.dscale;
                            c[1] = g.doffset;
                            return g.dx;
                          });
}

// ---- PyTorch learnable -----------------------------------------------------------------------

template <class E, typename T, bool kFused>
LOWBIT_FLATTEN void learnable_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const LearnableGradParams& params,
                        RngStream, float* sums) {
  using O = Bulk<E>;
  const LearnableVec<O> p(params);
  map_reduce_run<E, O, 2>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                          [&](auto x, auto dy, int64_t, auto* c) {
                            const auto g = learnable_grads<O, kFused>(x, dy, p);
                            c[0] = g.dscale;
                            c[1] = g.dzero_point;
                            return g.dx;
                          });
}

// ---- PACT ------------------------------------------------------------------------------------

template <class E, typename T, bool kStochastic>
LOWBIT_FLATTEN void pact_forward(const void* xv, void* yv, int64_t n, const PactParams& params, RngStream rng) {
  using O = Bulk<E>;
  const PactVec<O> p(params);
  map_run<O>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    return pact_output<O>(round_value<O, kStochastic>(pact_scaled<O>(x, p), rng, i), p);
  });
}

template <class E, typename T, bool kSigned>
LOWBIT_FLATTEN void pact_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const PactParams& params, RngStream,
                   float* sums) {
  using O = Bulk<E>;
  const PactVec<O> p(params);
  map_reduce_run<E, O, 1>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                          [&](auto x, auto dy, int64_t, auto* c) {
                            const auto g = pact_grads<O, kSigned>(x, dy, p);
                            c[0] = g.dalpha;
                            return g.dx;
                          });
}

// ---- QIL -------------------------------------------------------------------------------------

template <class E, typename T, bool kWeight, bool kPower, bool kStochastic>
LOWBIT_FLATTEN void qil_forward(const void* xv, void* yv, int64_t n, const QilParams& params, RngStream rng) {
  using O = Bulk<E>;
  const QilVec<O> p(params);
  map_run<O>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    const auto s = qil_state<O, kWeight, kPower>(x, p);
    return qil_output<O>(s, round_value<O, kStochastic>(qil_scaled<O>(s, p), rng, i), p);
  });
}

template <class E, typename T, bool kWeight, bool kPower>
LOWBIT_FLATTEN void qil_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const QilParams& params, RngStream,
                  float* sums) {
  using O = Bulk<E>;
  const QilVec<O> p(params);
  map_reduce_run<E, O, 3>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                          [&](auto x, auto dy, int64_t, auto* c) {
                            const auto g = qil_grads<O>(qil_state<O, kWeight, kPower>(x, p), dy, p);
                            c[0] = g.dc;
                            c[1] = g.dd;
                            c[2] = g.dgamma;
                            return g.dx;
                          });
}

// ---- DSQ -------------------------------------------------------------------------------------

template <class E, typename T, bool kSoft, bool kStochastic>
LOWBIT_FLATTEN void dsq_forward(const void* xv, void* yv, int64_t n, const DsqParams& params, RngStream rng) {
  using O = Bulk<E>;
  const DsqVec<O> p(params);
  map_run<O>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t i) {
    const auto v = dsq_scaled<O>(x, p);
    if constexpr (kSoft) {
      return dsq_soft_output<O>(x, dsq_soft_state<O>(v, p), p);
    } else {
      return dsq_hard_output<O>(round_value<O, kStochastic>(v, rng, i), p);
    }
  });
}

template <class E, typename T>
LOWBIT_FLATTEN void dsq_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const DsqParams& params, RngStream,
                  float* sums) {
  using O = Bulk<E>;
  const DsqVec<O> p(params);
  map_reduce_run<E, O, 3>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                          [&](auto x, auto dy, int64_t, auto* c) {
                            const auto v = dsq_scaled<O>(x, p);
                            const auto g = dsq_grads<O>(x, v, dsq_soft_state<O>(v, p), dy, p);
                            c[0] = g.dlower;
                            c[1] = g.dupper;
                            c[2] = g.dalpha;
                            return g.dx;
                          });
}

// ---- sigmoid staircase -----------------------------------------------------------------------

template <class E, typename T, bool kHard>
LOWBIT_FLATTEN void sigmoid_forward(const void* xv, void* yv, int64_t n, const SigmoidParams& p, RngStream) {
  using O = Bulk<E>;
  map_run<O>(static_cast<const T*>(xv), static_cast<T*>(yv), n, [&](auto x, int64_t) {
    return sigmoid_output<O>(sigmoid_sums<O, kHard, false>(x, p), p);
  });
}

template <class E, typename T>
LOWBIT_FLATTEN void sigmoid_backward(const void* xv, const void* dyv, void* dxv, int64_t n, const SigmoidParams& p, RngStream,
                      float* sums) {
  using O = Bulk<E>;
  map_reduce_run<E, O, 2>(static_cast<const T*>(xv), static_cast<const T*>(dyv), static_cast<T*>(dxv), n, sums,
                          [&](auto x, auto dy, int64_t, auto* c) {
                            const auto g = sigmoid_grads<O>(x, sigmoid_sums<O, false, true>(x, p), dy, p);
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
