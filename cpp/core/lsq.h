// LSQ / LSQ+ (METHODS §4.1–4.2) and PyTorch's learnable fake quantization (§4.3), one element at
// a time. Each per-element function is written over the op vocabulary of core/vmath.h, so the
// scalar path (O = ScalarOps) is the specification and the SIMD paths are the same operations.
//
// ---- LSQ / LSQ+ --------------------------------------------------------------------------------
//   v  = (x - β) · inv_s          inv_s = 1.0f / s (float32, as PyTorch; LSQ without offset: x·inv_s)
//   r  = R(v)                     R = round half to even, or stochastic rounding (caller's choice)
//   q  = clamp(r, qmin, qmax)
//   y  = q · s + β                (LSQ: q · s)
// Backward (STE through R; the paper's real-domain clip test on v, strict inside):
//   inside  qmin < v < qmax:  dx = dy,  ds_i = dy·(r - v),  dβ_i = 0
//   v <= qmin:                dx = 0,   ds_i = dy·qmin,     dβ_i = dy
//   v >= qmax:                dx = 0,   ds_i = dy·qmax,     dβ_i = dy
//   NaN x:                    y = NaN,  dx = 0, no contribution to ds / dβ
// The step-size gradient scale g (1/sqrt(N·QP) in the paper) multiplies the *sums* of ds_i and
// dβ_i; the op layer applies it once after the reduction.
//
// Parameters (documented clamps, not errors): s < 2^-23 (including s <= 0) is used as 2^-23, the
// smallest step torch.ao's learnable quantizer allows; the gradient is evaluated there and passed
// to s unchanged, so an optimizer step that made s negative can bring it back. Non-finite s or β
// is an error in the op layer.
//
// ---- PyTorch learnable (torch._fake_quantize_learnable_per_{tensor,channel}_affine) ----------------
// Forward: ordinary fake quantization with z_fwd = clamp(RNE(z), qmin, qmax) (core/affine.h).
// Backward, bit for bit the arithmetic of ATen's fake_quantize_learnable_{tensor,channel}_grad
// kernels (float32):
//   zb  = per tensor: trunc(clamp(z + 0.5f, qmin, qmax))   <- not RNE: the §4.3 quirk
//         per channel: clamp(RNE(z), qmin, qmax)
//   xq  = RNE(zb + x·inv_s)                               (zb added *before* rounding)
//   dx  = dy · [qmin <= xq <= qmax]                       (a multiply: dy < 0 outside gives -0)
//   xq < qmin:  ds_i = (dy·(qmin - zb))·gf,  dz_i = ((-dy)·s)·gf
//   xq > qmax:  ds_i = (dy·(qmax - zb))·gf,  dz_i = ((-dy)·s)·gf
//   otherwise:  ds_i = ((dy·((xq - zb)·s - x))·inv_s)·gf,  dz_i = 0
//   NaN x (undefined behaviour in ATen): dx = dy·0, no contribution to ds / dz.
// "Fused" form: ATen compiles this kernel once per CPU capability, and its AVX2/AVX-512 builds
// (-mfma, GCC's default -ffp-contract=fast) contract two of these expressions into fused
// multiply-adds: xq = RNE(fma(x, inv_s, zb)) and (xq - zb)·s - x = fma(xq - zb, s, -x). Its
// DEFAULT build does not. Both forms are here; the op follows ATen's active capability
// (at::get_cpu_capability()), so the parity holds with and without ATEN_CPU_CAPABILITY=default.
// The sums of ds_i / dz_i are lowbit's own (deterministic, see cpp/ops/estimator_common.h); ATen
// sums the same per-element values with at::sum, whose order depends on its vector width and
// thread count, so the totals agree to float rounding of the sum, not bit for bit.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/vmath.h"

namespace lowbit {

// Smallest scale (step) any learnable quantizer uses: torch.finfo(float32).eps, the clamp of
// torch.ao's _LearnableFakeQuantize.
inline constexpr float kMinLearnableScale = 1.1920928955078125e-07f;

struct LsqParams {
  float scale;
  float inv_scale;
  float offset;  // β of LSQ+; 0 for LSQ
  float qmin;
  float qmax;
};

struct LearnableGradParams {
  float scale;
  float inv_scale;
  float zero_point;    // zb above
  float qmin;
  float qmax;
  float grad_factor;
  float dscale_small;  // qmin - zb
  float dscale_big;    // qmax - zb
};

LOWBIT_ISA_BEGIN

inline float clamp_learnable_scale(float s) { return s >= kMinLearnableScale ? s : kMinLearnableScale; }

inline LsqParams make_lsq_params(float scale, float offset, int64_t qmin, int64_t qmax) {
  const float s = clamp_learnable_scale(scale);
  return {s, 1.0f / s, offset, static_cast<float>(qmin), static_cast<float>(qmax)};
}

// Forward zero point of the learnable op (both granularities): clamp(RNE(z)), as an integer.
inline int32_t learnable_forward_zero_point(float z, int64_t qmin, int64_t qmax) {
  const float r = round_half_even(z);
  const float c = std::fmin(std::fmax(r, static_cast<float>(qmin)), static_cast<float>(qmax));
  return static_cast<int32_t>(c);
}

// Backward zero point: the per-tensor quirk trunc(clamp(z + 0.5f)), or clamp(RNE(z)) per channel.
inline float learnable_backward_zero_point(float z, int64_t qmin, int64_t qmax, bool per_tensor) {
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  if (per_tensor) {
    const float c = std::min(std::max(z + 0.5f, lo), hi);
    return static_cast<float>(static_cast<int64_t>(c));
  }
  return std::fmin(std::fmax(round_half_even(z), lo), hi);
}

inline LearnableGradParams make_learnable_grad_params(float scale, float zero_point, int64_t qmin, int64_t qmax,
                                                      float grad_factor, bool per_tensor) {
  const float s = clamp_learnable_scale(scale);
  const float zb = learnable_backward_zero_point(zero_point, qmin, qmax, per_tensor);
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  return {s, 1.0f / s, zb, lo, hi, grad_factor, lo - zb, hi - zb};
}

// Parameters broadcast to the ops' vector type once per run.
template <class O>
struct LsqVec {
  typename O::F scale, inv_scale, offset, qmin, qmax;
  explicit LsqVec(const LsqParams& p)
      : scale(O::set1(p.scale)), inv_scale(O::set1(p.inv_scale)), offset(O::set1(p.offset)),
        qmin(O::set1(p.qmin)), qmax(O::set1(p.qmax)) {}
};

template <class O, bool kOffset>
inline typename O::F lsq_scaled(typename O::F x, const LsqVec<O>& p) {
  if constexpr (kOffset) return O::mul(O::sub(x, p.offset), p.inv_scale);
  return O::mul(x, p.inv_scale);
}

// y from the rounded (unclamped) code r.
template <class O, bool kOffset>
inline typename O::F lsq_output(typename O::F r, const LsqVec<O>& p) {
  const auto y = O::mul(clamp_keep_nan_v<O>(r, p.qmin, p.qmax), p.scale);
  if constexpr (kOffset) return O::add(y, p.offset);
  return y;
}

template <class O>
struct LsqGrads {
  typename O::F dx, dscale, doffset;
};

// v: the scaled input, r: its rounding (the same r the forward used), dy: upstream gradient.
template <class O>
inline LsqGrads<O> lsq_grads(typename O::F v, typename O::F r, typename O::F dy, const LsqVec<O>& p) {
  const auto below = O::le(v, p.qmin);
  const auto above = O::ge(v, p.qmax);
  const auto inside = O::both(O::gt(v, p.qmin), O::lt(v, p.qmax));
  const auto clipped = O::either(below, above);
  const auto local = O::select(inside, O::sub(r, v), O::select(below, p.qmin, O::select_or_zero(above, p.qmax)));
  return {O::select_or_zero(inside, dy), O::mul(dy, local), O::select_or_zero(clipped, dy)};
}

template <class O>
struct LearnableVec {
  typename O::F scale, inv_scale, zero_point, qmin, qmax, grad_factor, dscale_small, dscale_big;
  explicit LearnableVec(const LearnableGradParams& p)
      : scale(O::set1(p.scale)), inv_scale(O::set1(p.inv_scale)), zero_point(O::set1(p.zero_point)),
        qmin(O::set1(p.qmin)), qmax(O::set1(p.qmax)), grad_factor(O::set1(p.grad_factor)),
        dscale_small(O::set1(p.dscale_small)), dscale_big(O::set1(p.dscale_big)) {}
};

template <class O>
struct LearnableGrads {
  typename O::F dx, dscale, dzero_point;
};

template <class O, bool kFused>
inline LearnableGrads<O> learnable_grads(typename O::F x, typename O::F dy, const LearnableVec<O>& p) {
  typename O::F xq, xfq_minus_x;
  if constexpr (kFused) {
    xq = O::rne(O::fma(x, p.inv_scale, p.zero_point));
  } else {
    xq = O::rne(O::add(p.zero_point, O::mul(x, p.inv_scale)));
  }
  const auto inside = O::both(O::le(p.qmin, xq), O::le(xq, p.qmax));
  const auto below = O::lt(xq, p.qmin);
  const auto above = O::gt(xq, p.qmax);
  const auto clipped = O::either(below, above);
  const auto dx = O::mul(dy, O::select_or_zero(inside, O::set1(1.0f)));
  if constexpr (kFused) {
    xfq_minus_x = O::fma(O::sub(xq, p.zero_point), p.scale, O::neg(x));
  } else {
    xfq_minus_x = O::sub(O::mul(O::sub(xq, p.zero_point), p.scale), x);
  }
  const auto ds_in = O::mul(O::mul(O::mul(dy, xfq_minus_x), p.inv_scale), p.grad_factor);
  const auto ds_out = O::mul(O::mul(dy, O::select(below, p.dscale_small, p.dscale_big)), p.grad_factor);
  const auto dz_out = O::mul(O::mul(O::neg(dy), p.scale), p.grad_factor);
  return {dx, O::select(inside, ds_in, O::select_or_zero(clipped, ds_out)), O::select_or_zero(clipped, dz_out)};
}

LOWBIT_ISA_END
}  // namespace lowbit
