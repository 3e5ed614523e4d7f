// Shared argument checking and tensor plumbing for the CPU op implementations. Every error
// names the op, the argument and the offending value.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <string>
#include <vector>

#include "core/rounding.h"
#include "kernels/affine_kernels.h"
#include "kernels/blocking.h"

namespace lowbit::ops {

// Elements per parallel task: large enough that a task streams several pages, small enough that
// 2+ threads share 1M-element tensors.
inline constexpr int64_t kParallelGrain = 1 << 15;

inline kernels::ElemType elem_type_of(const at::Tensor& x, const char* op, const char* arg) {
  switch (x.scalar_type()) {
    case at::kFloat: return kernels::ElemType::F32;
    case at::kHalf: return kernels::ElemType::F16;
    case at::kBFloat16: return kernels::ElemType::BF16;
    default:
      TORCH_CHECK(false, "lowbit.", op, ": ", arg, " must be float32, float16 or bfloat16, got ",
                  x.scalar_type());
  }
}

inline Rounding parse_rounding(const std::string& name, const char* op) {
  static const char* kNames[kNumRoundings] = {"half_even", "half_away", "half_up",
                                              "floor",     "ceil",      "stochastic"};
  for (int i = 0; i < kNumRoundings; ++i) {
    if (name == kNames[i]) return static_cast<Rounding>(i);
  }
  TORCH_CHECK(false, "lowbit.", op, ": rounding must be one of half_even, half_away, half_up, floor, ",
              "ceil, stochastic; got '", name, "'");
}

inline kernels::Ste parse_ste(const std::string& name, const char* op) {
  if (name == "integer") return kernels::Ste::Integer;
  if (name == "real") return kernels::Ste::Real;
  if (name == "identity") return kernels::Ste::Identity;
  TORCH_CHECK(false, "lowbit.", op, ": ste must be one of integer, real, identity; got '", name, "'");
}

// lowbit's integer ranges: qmin < qmax, inside [-2^15, 2^16 - 1], at most 16 bits wide.
inline void check_qrange(int64_t qmin, int64_t qmax, const char* op) {
  TORCH_CHECK(qmin < qmax, "lowbit.", op, ": qmin must be < qmax, got qmin=", qmin, ", qmax=", qmax);
  TORCH_CHECK(qmin >= -32768 && qmax <= 65535 && qmax - qmin <= 65535, "lowbit.", op,
              ": (qmin, qmax)=(", qmin, ", ", qmax,
              ") is outside lowbit's 2-16 bit integer ranges (qmin >= -32768, qmax <= 65535, "
              "qmax - qmin <= 65535)");
}

inline void check_same_device(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn,
                              const char* op) {
  TORCH_CHECK(a.device() == b.device(), "lowbit.", op, ": ", an, " is on ", a.device(), " but ", bn,
              " is on ", b.device(), "; all tensors must be on one device");
}

inline kernels::BlockLayout block_layout(const at::Tensor& x, const at::Tensor& param, const char* op,
                                         const char* arg) {
  kernels::BlockLayout layout;
  const std::string err = kernels::make_block_layout(x.sizes().vec(), param.sizes().vec(), &layout);
  TORCH_CHECK(err.empty(), "lowbit.", op, ": ", arg, " of shape ", param.sizes(), " ", err,
              " (input shape ", x.sizes(), ")");
  return layout;
}

// Scale as contiguous float32 with every element > 0, finite, with a finite reciprocal.
inline at::Tensor checked_scale(const at::Tensor& scale, const char* op) {
  TORCH_CHECK(scale.is_floating_point(), "lowbit.", op, ": scale must be a floating-point tensor, got ",
              scale.scalar_type());
  at::Tensor s = scale.to(at::kFloat).contiguous();
  const float* p = s.data_ptr<float>();
  for (int64_t i = 0; i < s.numel(); ++i) {
    const float v = p[i];
    TORCH_CHECK(v > 0.0f && std::isfinite(v) && std::isfinite(1.0f / v), "lowbit.", op,
                ": scale must be positive and finite with a finite reciprocal; scale[", i, "] = ", v);
  }
  return s;
}

// Zero point as contiguous int32, integral dtype, every element inside [qmin, qmax].
inline at::Tensor checked_zero_point(const at::Tensor& zp, int64_t qmin, int64_t qmax, const char* op) {
  TORCH_CHECK(!zp.is_floating_point() && !zp.is_complex() && zp.scalar_type() != at::kBool, "lowbit.",
              op, ": zero_point must be an integer tensor (int32 preferred), got ", zp.scalar_type());
  at::Tensor z = zp.to(at::kInt).contiguous();
  const int32_t* p = z.data_ptr<int32_t>();
  for (int64_t i = 0; i < z.numel(); ++i) {
    TORCH_CHECK(p[i] >= qmin && p[i] <= qmax, "lowbit.", op, ": zero_point[", i, "] = ", p[i],
                " is outside [qmin, qmax] = [", qmin, ", ", qmax, "]");
  }
  return z;
}

// Reads an optional 0-d/1-element enable switch (bool or integer tensor); absent means enabled.
inline bool is_enabled(const std::optional<at::Tensor>& enabled, const char* op) {
  if (!enabled.has_value()) return true;
  TORCH_CHECK(enabled->numel() == 1, "lowbit.", op, ": enabled must hold one element, got shape ",
              enabled->sizes());
  return enabled->item<bool>();
}

inline uint64_t seed_value(const std::optional<at::Tensor>& seed, Rounding mode, const char* op) {
  if (mode != Rounding::Stochastic) return 0;
  TORCH_CHECK(seed.has_value(), "lowbit.", op, ": rounding='stochastic' needs a seed tensor");
  TORCH_CHECK(seed->numel() == 1 && !seed->is_floating_point(), "lowbit.", op,
              ": seed must be an integer tensor with one element, got ", seed->scalar_type(), " of shape ",
              seed->sizes());
  return static_cast<uint64_t>(seed->item<int64_t>());
}

// Runs f(param_index, element_begin, element_count) over all run pieces of x, in parallel.
template <typename F>
void parallel_for_runs(const kernels::BlockLayout& layout, F&& f) {
  if (layout.numel == 0) return;
  at::parallel_for(0, layout.numel, kParallelGrain, [&](int64_t begin, int64_t end) {
    kernels::for_each_run_piece(layout, begin, end, f);
  });
}

}  // namespace lowbit::ops
