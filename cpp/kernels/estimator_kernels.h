// Torch-free kernels of the learnable and soft gradient estimators (LSQ/LSQ+, PyTorch's learnable
// fake quantization, PACT, QIL, DSQ, the sigmoid staircase of Quantization Networks). The
// per-element math is in cpp/core (lsq.h, pact.h, qil.h, soft_quant.h); a kernel applies it to
// one contiguous run piece of elements that share one block's parameters (see blocking.h).
//
// Forward kernels map x -> y. Backward kernels map (x, dy) -> dx and also reduce the piece's
// parameter-gradient contributions into `sums` (one float per parameter, in the order each table
// entry documents). The reduction order is canonical and the same on every ISA: element j of the
// piece is added into lane j % 16 (kReductionLanes), in element order, and the 16 lanes are
// combined by a fixed halving tree; pieces are chosen by the op layer from the tensor shape only.
// So y, dx and the sums are bit-identical across the scalar, AVX2 and AVX-512 paths and across
// thread counts.
//
// One table per ISA holds the round-half-to-even kernels. Stochastic rounding has one (scalar)
// implementation shared by every ISA, as in the affine family: the Philox draw dominates, and one
// implementation keeps results ISA-independent. Element i of a piece uses draw counter0 + i.
#pragma once
#include <cstdint>

#include "core/lsq.h"
#include "core/pact.h"
#include "core/qil.h"
#include "core/soft_quant.h"
#include "kernels/affine_kernels.h"

namespace lowbit::kernels {

inline constexpr int kReductionLanes = 16;

struct RngStream {
  uint64_t seed;
  uint64_t counter0;  // draw counter of the piece's first element (ignored by deterministic kernels)
};

template <class P>
using EstimatorForwardFn = void (*)(const void* x, void* y, int64_t n, const P& p, RngStream rng);
template <class P>
using EstimatorBackwardFn = void (*)(const void* x, const void* dy, void* dx, int64_t n, const P& p, RngStream rng,
                                     float* sums);

struct EstimatorKernels {
  const char* isa_name;
  // [elem type][has offset β]; backward sums: {dscale, doffset}
  EstimatorForwardFn<LsqParams> lsq_forward[kNumElemTypes][2];
  EstimatorBackwardFn<LsqParams> lsq_backward[kNumElemTypes][2];
  // forward is the affine kernel; backward [elem type][fused form, see core/lsq.h];
  // sums: {dscale, dzero_point}
  EstimatorBackwardFn<LearnableGradParams> learnable_backward[kNumElemTypes][2];
  // [elem type]; backward [elem type][signed]; sums: {dalpha}
  EstimatorForwardFn<PactParams> pact_forward[kNumElemTypes];
  EstimatorBackwardFn<PactParams> pact_backward[kNumElemTypes][2];
  // [elem type][weight][power form]; backward sums: {dc, dd, dgamma}
  EstimatorForwardFn<QilParams> qil_forward[kNumElemTypes][2][2];
  EstimatorBackwardFn<QilParams> qil_backward[kNumElemTypes][2][2];
  // forward [elem type][soft]; backward sums: {dlower, dupper, dalpha}
  EstimatorForwardFn<DsqParams> dsq_forward[kNumElemTypes][2];
  EstimatorBackwardFn<DsqParams> dsq_backward[kNumElemTypes];
  // forward [elem type][hard]; backward sums: {dalpha, dbeta}
  EstimatorForwardFn<SigmoidParams> sigmoid_forward[kNumElemTypes][2];
  EstimatorBackwardFn<SigmoidParams> sigmoid_backward[kNumElemTypes];
};

// The stochastic-rounding variants of the estimators whose forward rounds (scalar, every ISA).
// Only LSQ's backward depends on the rounding (ds_i = dy·(r - v)); the others reuse the
// deterministic backward kernels.
struct EstimatorStochasticKernels {
  EstimatorForwardFn<LsqParams> lsq_forward[kNumElemTypes][2];
  EstimatorBackwardFn<LsqParams> lsq_backward[kNumElemTypes][2];
  EstimatorForwardFn<PactParams> pact_forward[kNumElemTypes];
  EstimatorForwardFn<QilParams> qil_forward[kNumElemTypes][2][2];
  EstimatorForwardFn<DsqParams> dsq_hard_forward[kNumElemTypes];
};

const EstimatorKernels& estimator_kernels_scalar();
const EstimatorKernels& estimator_kernels_avx2();
const EstimatorKernels& estimator_kernels_avx512();
const EstimatorStochasticKernels& estimator_stochastic_kernels();

}  // namespace lowbit::kernels
