// Quantization parameters from an observed range (METHODS §1.2, §1.3).
//
// Two named algorithms, because PyTorch itself has two and they disagree:
//   * choose_qparams_observer: torch.ao observers (MinMaxObserver & co), all in float32.
//   * choose_qparams_fbgemm:   fbgemm::ChooseQuantizationParams as used by PyTorch's fused QAT op
//                              torch.fused_moving_avg_obs_fake_quant (float scale, double zero point).
// Both take a range [min_val, max_val] with min_val <= max_val, both finite, and an integer range
// qmin < qmax; the caller validates (qparams_range_error below) so these stay pure functions.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/isa_namespace.h"

namespace lowbit {

struct QParams {
  float scale;
  int32_t zero_point;
};

LOWBIT_ISA_BEGIN


// The "never observed" sentinel of observer buffers: min = +inf, max = -inf.
inline bool is_unobserved_range(float min_val, float max_val) {
  return std::isinf(min_val) && min_val > 0 && std::isinf(max_val) && max_val < 0;
}

// Returns nullptr if (min_val, max_val) is a valid observed range or the never-observed
// sentinel, otherwise a short description of what is wrong.
inline const char* qparams_range_error(float min_val, float max_val) {
  if (is_unobserved_range(min_val, max_val)) return nullptr;
  if (std::isnan(min_val) || std::isnan(max_val)) return "is NaN";
  if (!std::isfinite(min_val) || !std::isfinite(max_val)) return "is infinite";
  if (min_val > max_val) return "has min_val > max_val";
  return nullptr;
}

// Zero point of symmetric quantization: 0 for signed ranges; for unsigned ranges the upper
// midpoint (qmin + qmax + 1) / 2, which is torch.ao's 128 for quint8 and 2^15 for uint16.
// (torch.ao uses the lower midpoint for custom unsigned ranges and keeps 128 even for
// reduce_range's [0, 127]; lowbit uses one rule for every range.)
inline int32_t symmetric_zero_point(int64_t qmin, int64_t qmax) {
  return qmin < 0 ? 0 : static_cast<int32_t>((qmin + qmax + 1) / 2);
}

// torch.ao observer formula (UniformQuantizationObserverBase._calculate_qparams), float32 throughout:
//   affine:    scale = max((max' - min') / (qmax - qmin), eps), zp = clamp(qmin - RNE(min' / scale))
//   symmetric: scale = max(max(-min', max') / ((qmax - qmin) / 2), eps), zp = symmetric_zero_point
// with min' = min(min_val, 0), max' = max(max_val, 0). The never-observed sentinel gives (1, 0),
// as torch.ao does. Zero range gives scale = eps.
inline QParams choose_qparams_observer(float min_val, float max_val, int64_t qmin, int64_t qmax,
                                       bool symmetric, float eps) {
  if (is_unobserved_range(min_val, max_val)) return {1.0f, 0};
  const float min_neg = std::min(min_val, 0.0f);
  const float max_pos = std::max(max_val, 0.0f);
  if (symmetric) {
    const float amax = std::max(-min_neg, max_pos);
    const float half_range = static_cast<float>(static_cast<double>(qmax - qmin) / 2.0);
    const float scale = std::max(amax / half_range, eps);
    return {scale, symmetric_zero_point(qmin, qmax)};
  }
  const float scale = std::max((max_pos - min_neg) / static_cast<float>(qmax - qmin), eps);
  const int64_t zp = qmin - static_cast<int64_t>(std::nearbyint(min_neg / scale));
  return {scale, static_cast<int32_t>(std::clamp<int64_t>(zp, qmin, qmax))};
}

// fbgemm::ChooseQuantizationParams as PyTorch 2.13's fused observer/fake-quant op computes it:
// symmetric widening when preserve_sparsity, float32 scale from a double quotient, 0.1 when the
// scale or its reciprocal degenerates, the 6.1e-5 small-scale cutoff, then the zero point from
// whichever end has the smaller error estimate |q_end| + |end / scale| (in double, from the float
// scale), clamped and RNE-rounded.
// The error terms are *sums*, as in FBGEMM's src/QuantUtils.cc, which the fused op calls in a
// USE_FBGEMM build (every x86 torch wheel). ATen's own quant_utils::ChooseQuantizationParams
// subtracts instead; the two pick different ends for 16-bit ranges after the small-scale cutoff
// (e.g. [-4.078e-8, 1.782e-3] in [-32768, 32767]: torch 2.13 gives -32767, the difference form
// -32766). tests/test_ops_qparams.py checks this against torch on ~10^5 random ranges.
inline constexpr float kFbgemmSmallScaleThreshold = 6.1e-5f;

inline QParams choose_qparams_fbgemm(float min_val, float max_val, int64_t qmin64, int64_t qmax64,
                                     bool symmetric) {
  const int32_t qmin = static_cast<int32_t>(qmin64), qmax = static_cast<int32_t>(qmax64);
  float lo = min_val, hi = max_val;
  if (lo < 0 && hi > 0 && symmetric) {
    const int32_t sym_qmin = -((qmax - qmin) / 2 + 1);
    const int32_t sym_qmax = (qmax - qmin) / 2;
    const double max_scale = std::max(std::fabs(lo / static_cast<float>(sym_qmin)),
                                      std::fabs(hi / static_cast<float>(sym_qmax)));
    lo = static_cast<float>(max_scale * sym_qmin);
    hi = static_cast<float>(max_scale * sym_qmax);
  }
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  float scale = static_cast<float>((static_cast<double>(hi) - lo) / (qmax - qmin));
  if (scale == 0.0f || std::isinf(1.0f / scale)) scale = 0.1f;
  if (scale < kFbgemmSmallScaleThreshold) {
    const float org_scale = scale;
    scale = kFbgemmSmallScaleThreshold;
    if (lo == 0.0f) {
      hi = kFbgemmSmallScaleThreshold * static_cast<float>(qmax - qmin);
    } else if (hi == 0.0f) {
      lo = -kFbgemmSmallScaleThreshold * static_cast<float>(qmax - qmin);
    } else {
      const float amplifier = kFbgemmSmallScaleThreshold / org_scale;
      lo *= amplifier;
      hi *= amplifier;
    }
  }
  const double s = scale;
  const double zp_from_min = qmin - lo / s;
  const double zp_from_max = qmax - hi / s;
  const double err_min = std::abs(qmin) + std::abs(lo / s);
  const double err_max = std::abs(qmax) + std::abs(hi / s);
  double zp = err_min < err_max ? zp_from_min : zp_from_max;
  if (lo < 0 && hi > 0 && symmetric) zp = static_cast<double>(qmin + qmax) / 2;
  int32_t nudged;
  if (zp < qmin) nudged = qmin;
  else if (zp > qmax) nudged = qmax;
  else nudged = static_cast<int32_t>(std::nearbyint(zp));
  return {scale, nudged};
}

LOWBIT_ISA_END
}  // namespace lowbit
