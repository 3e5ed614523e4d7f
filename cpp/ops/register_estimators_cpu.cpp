// CPU implementations of the learnable and soft gradient estimators: argument checks (errors name
// the op, the argument and the value), per-block parameters (cpp/core make_*_params, with their
// documented clamps), the split into block runs, threading, and calls into the kernel tables.
// Backward ops compute dx and reduce every parameter gradient in the same single pass
// (estimator_common.h: deterministic, independent of thread count and ISA). No per-element math
// lives here.
#include <ATen/Version.h>
#include <torch/library.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "core/affine.h"
#include "core/lsq.h"
#include "core/pact.h"
#include "core/qil.h"
#include "core/soft_quant.h"
#include "kernels/estimator_dispatch.h"
#include "ops/common.h"
#include "ops/estimator_common.h"
#include "ops/output_buffers.h"

namespace lowbit::ops {
namespace {

using kernels::ElemType;
using kernels::RngStream;

constexpr int64_t kMaxBits = 16;

// Everything a forward or backward needs about x: its layout against the parameters, element
// type, a contiguous view, and the stochastic-rounding stream.
struct Setup {
  kernels::BlockLayout layout;
  ElemType et;
  at::Tensor xc;
  bool stochastic = false;
  uint64_t seed = 0;
  int64_t seed_offset = 0;

  RngStream rng(int64_t begin) const {
    return {seed, static_cast<uint64_t>(seed_offset) + static_cast<uint64_t>(begin)};
  }
  const char* x_at(int64_t begin) const { return bytes_of(xc) + begin * xc.element_size(); }
};

Setup make_setup(const at::Tensor& x, const at::Tensor& param, const char* param_name, const char* op,
                 c10::string_view rounding, const std::optional<at::Tensor>& seed, int64_t seed_offset) {
  Setup s;
  s.et = elem_type_of(x, op, "x");
  check_same_device(x, "x", param, param_name, op);
  TORCH_CHECK(x.device().is_cpu(), "lowbit.", op, ": this build has CPU kernels only; x is on ", x.device());
  s.layout = block_layout(x, param, op, param_name);
  s.stochastic = parse_estimator_rounding(rounding, op);
  if (s.stochastic) {
    s.seed = seed_value(seed, Rounding::Stochastic, op);
    TORCH_CHECK(seed_offset >= 0, "lowbit.", op, ": seed_offset must be >= 0, got ", seed_offset);
    s.seed_offset = seed_offset;
  }
  s.xc = x.contiguous();
  return s;
}

// y = forward(x) run piece by run piece, in parallel.
template <class P>
at::Tensor run_forward(const Setup& s, const std::vector<P>& params, kernels::EstimatorForwardFn<P> fn) {
  at::Tensor y = forward_output_buffer(s.xc);
  const int64_t es = s.xc.element_size();
  char* yp = bytes_of(y);
  parallel_for_runs(s.layout, [&](int64_t pi, int64_t b, int64_t n) {
    fn(s.x_at(b), yp + b * es, n, params[pi], s.rng(b));
  });
  return y;
}

// dx and the K parameter-gradient totals, in one pass.
template <int K, class P>
std::pair<at::Tensor, std::vector<double>> run_backward(const Setup& s, const at::Tensor& grad,
                                                        const std::vector<P>& params,
                                                        kernels::EstimatorBackwardFn<P> fn) {
  const at::Tensor gc = grad.contiguous();
  at::Tensor dx = grad_output_buffer(gc, s.xc);  // grad's own buffer when autograd donates it
  const int64_t es = s.xc.element_size();
  const char* gp = bytes_of(gc);
  char* dp = bytes_of(dx);
  std::vector<double> totals = reduce_runs<K>(s.layout, [&](int64_t pi, int64_t b, int64_t n, float* sums) {
    fn(s.x_at(b), gp + b * es, dp + b * es, n, params[pi], s.rng(b), sums);
  });
  return {dx, std::move(totals)};
}

int e_index(ElemType et) { return static_cast<int>(et); }

// Quantization switched off (`enabled` holds False): forward is the identity, backward passes
// grad through and gives every parameter a zero gradient.
at::Tensor disabled_forward(const at::Tensor& x) { return x.clone(at::MemoryFormat::Contiguous); }
at::Tensor zero_grad_like(const at::Tensor& p) { return at::zeros(p.sizes(), p.options()); }

at::Tensor empty_grad_like(const at::Tensor& like) { return at::empty({0}, like.options()); }

// ---- LSQ / LSQ+ ------------------------------------------------------------------------------

std::vector<LsqParams> lsq_params(const at::Tensor& scale, const std::optional<at::Tensor>& offset, int64_t qmin,
                                  int64_t qmax, const char* op) {
  check_qrange(qmin, qmax, op);
  const std::vector<float> s = finite_param_values(scale, op, "scale");
  std::vector<float> b(s.size(), 0.0f);
  if (offset.has_value()) {
    check_same_shape(scale, "scale", *offset, "offset", op);
    check_same_device(scale, "scale", *offset, "offset", op);
    b = finite_param_values(*offset, op, "offset");
  }
  std::vector<LsqParams> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) out.push_back(make_lsq_params(s[i], b[i], qmin, qmax));
  return out;
}

void check_grad_scale(double g, const char* op, const char* name) {
  TORCH_CHECK(std::isfinite(g) && g > 0.0, "lowbit.", op, ": ", name, " must be positive and finite, got ", g);
}

at::Tensor fake_quantize_lsq_cpu(const at::Tensor& x, const at::Tensor& scale, const std::optional<at::Tensor>& offset,
                                 int64_t qmin, int64_t qmax, double grad_scale, c10::string_view rounding,
                                 const std::optional<at::Tensor>& seed, int64_t seed_offset,
                                 const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_lsq";
  check_grad_scale(grad_scale, op, "grad_scale");
  const Setup s = make_setup(x, scale, "scale", op, rounding, seed, seed_offset);
  const auto params = lsq_params(scale, offset, qmin, qmax, op);
  if (!is_enabled(enabled, op)) return disabled_forward(x);
  const int e = e_index(s.et), o = offset.has_value() ? 1 : 0;
  const auto fn = s.stochastic ? kernels::estimator_stochastic_kernels().lsq_forward[e][o]
                               : kernels::estimator_kernels().lsq_forward[e][o];
  return run_forward(s, params, fn);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fake_quantize_lsq_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& scale, const std::optional<at::Tensor>& offset,
    int64_t qmin, int64_t qmax, double grad_scale, c10::string_view rounding, const std::optional<at::Tensor>& seed,
    int64_t seed_offset, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_lsq_backward";
  check_grad_scale(grad_scale, op, "grad_scale");
  const Setup s = make_setup(x, scale, "scale", op, rounding, seed, seed_offset);
  check_grad_like_x(grad, x, op);
  const auto params = lsq_params(scale, offset, qmin, qmax, op);
  if (!is_enabled(enabled, op)) {
    return {disabled_forward(grad), zero_grad_like(scale),
            offset.has_value() ? zero_grad_like(*offset) : empty_grad_like(scale)};
  }
  const int e = e_index(s.et), o = offset.has_value() ? 1 : 0;
  const auto fn = s.stochastic ? kernels::estimator_stochastic_kernels().lsq_backward[e][o]
                               : kernels::estimator_kernels().lsq_backward[e][o];
  auto [dx, totals] = run_backward<2>(s, grad, params, fn);
  return {dx, param_grad(totals, 0, 2, scale, grad_scale),
          offset.has_value() ? param_grad(totals, 1, 2, *offset, grad_scale) : empty_grad_like(scale)};
}

// ---- PyTorch-compatible learnable ------------------------------------------------------------

// Whether ATen runs the multiply-add-contracted build of its learnable gradient kernel (every
// capability but DEFAULT on x86; see core/lsq.h). ATen fixes its capability at start-up.
bool aten_learnable_kernel_is_fused() {
  static const bool fused = at::get_cpu_capability() != "DEFAULT";
  return fused;
}

std::vector<float> learnable_zero_point_values(const at::Tensor& zero_point, const char* op) {
  TORCH_CHECK(!zero_point.is_complex() && zero_point.scalar_type() != at::kBool, "lowbit.", op,
              ": zero_point must be a real tensor (float, as torch's learnable fake quantization keeps it), got ",
              zero_point.scalar_type());
  return finite_param_values(zero_point.is_floating_point() ? zero_point : zero_point.to(at::kFloat), op,
                             "zero_point");
}

void check_learnable_args(const at::Tensor& scale, const at::Tensor& zero_point, int64_t qmin, int64_t qmax,
                          double grad_factor, const char* op) {
  check_qrange(qmin, qmax, op);
  check_same_shape(scale, "scale", zero_point, "zero_point", op);
  check_same_device(scale, "scale", zero_point, "zero_point", op);
  TORCH_CHECK(std::isfinite(grad_factor), "lowbit.", op, ": grad_factor must be finite, got ", grad_factor);
}

at::Tensor fake_quantize_learnable_cpu(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                       int64_t qmin, int64_t qmax, double grad_factor,
                                       const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_learnable";
  check_learnable_args(scale, zero_point, qmin, qmax, grad_factor, op);
  const Setup s = make_setup(x, scale, "scale", op, "half_even", std::nullopt, 0);
  const std::vector<float> sv = finite_param_values(scale, op, "scale");
  const std::vector<float> zv = learnable_zero_point_values(zero_point, op);
  std::vector<AffineParams> params;
  params.reserve(sv.size());
  for (size_t i = 0; i < sv.size(); ++i) {
    params.push_back(make_affine_params(clamp_learnable_scale(sv[i]), learnable_forward_zero_point(zv[i], qmin, qmax),
                                        qmin, qmax));
  }
  if (!is_enabled(enabled, op)) return disabled_forward(x);
  at::Tensor y = forward_output_buffer(s.xc);
  const int64_t es = s.xc.element_size();
  char* yp = bytes_of(y);
  const auto fn = kernels::affine_kernels().fake_quantize[e_index(s.et)][static_cast<int>(Rounding::HalfEven)];
  parallel_for_runs(s.layout, [&](int64_t pi, int64_t b, int64_t n) { fn(s.x_at(b), yp + b * es, n, params[pi]); });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fake_quantize_learnable_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point, int64_t qmin,
    int64_t qmax, double grad_factor, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_learnable_backward";
  check_learnable_args(scale, zero_point, qmin, qmax, grad_factor, op);
  const Setup s = make_setup(x, scale, "scale", op, "half_even", std::nullopt, 0);
  check_grad_like_x(grad, x, op);
  const std::vector<float> sv = finite_param_values(scale, op, "scale");
  const std::vector<float> zv = learnable_zero_point_values(zero_point, op);
  const bool per_tensor = scale.numel() == 1;
  std::vector<LearnableGradParams> params;
  params.reserve(sv.size());
  for (size_t i = 0; i < sv.size(); ++i) {
    params.push_back(make_learnable_grad_params(sv[i], zv[i], qmin, qmax, static_cast<float>(grad_factor), per_tensor));
  }
  if (!is_enabled(enabled, op)) return {disabled_forward(grad), zero_grad_like(scale), zero_grad_like(zero_point)};
  const int fused = aten_learnable_kernel_is_fused() ? 1 : 0;
  auto [dx, totals] =
      run_backward<2>(s, grad, params, kernels::estimator_kernels().learnable_backward[e_index(s.et)][fused]);
  return {dx, param_grad(totals, 0, 2, scale), param_grad(totals, 1, 2, zero_point)};
}

// ---- PACT ------------------------------------------------------------------------------------

std::vector<PactParams> pact_params(const at::Tensor& alpha, int64_t bits, bool is_signed, const char* op) {
  check_bits(bits, is_signed ? 2 : 1, kMaxBits, op, is_signed ? " for signed=True" : "");
  const std::vector<float> a = finite_param_values(alpha, op, "alpha");
  std::vector<PactParams> out;
  out.reserve(a.size());
  for (float v : a) out.push_back(make_pact_params(v, bits, is_signed));
  return out;
}

at::Tensor fake_quantize_pact_cpu(const at::Tensor& x, const at::Tensor& alpha, int64_t bits, bool is_signed,
                                  c10::string_view rounding, const std::optional<at::Tensor>& seed,
                                  int64_t seed_offset, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_pact";
  const auto params = pact_params(alpha, bits, is_signed, op);
  const Setup s = make_setup(x, alpha, "alpha", op, rounding, seed, seed_offset);
  if (!is_enabled(enabled, op)) return disabled_forward(x);
  const int e = e_index(s.et);
  const auto fn = s.stochastic ? kernels::estimator_stochastic_kernels().pact_forward[e]
                               : kernels::estimator_kernels().pact_forward[e];
  return run_forward(s, params, fn);
}

std::tuple<at::Tensor, at::Tensor> fake_quantize_pact_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                                   const at::Tensor& alpha, int64_t bits,
                                                                   bool is_signed, c10::string_view rounding,
                                                                   const std::optional<at::Tensor>& seed,
                                                                   int64_t seed_offset,
                                                                   const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_pact_backward";
  const auto params = pact_params(alpha, bits, is_signed, op);
  const Setup s = make_setup(x, alpha, "alpha", op, rounding, seed, seed_offset);
  check_grad_like_x(grad, x, op);
  if (!is_enabled(enabled, op)) return {disabled_forward(grad), zero_grad_like(alpha)};
  auto [dx, totals] =
      run_backward<1>(s, grad, params, kernels::estimator_kernels().pact_backward[e_index(s.et)][is_signed ? 1 : 0]);
  return {dx, param_grad(totals, 0, 1, alpha)};
}

// ---- QIL -------------------------------------------------------------------------------------

std::vector<QilParams> qil_params(const at::Tensor& c, const at::Tensor& d, const std::optional<at::Tensor>& gamma,
                                  int64_t bits, bool weight, const char* op) {
  check_bits(bits, weight ? 2 : 1, kMaxBits, op, weight ? " for weight=True" : "");
  check_same_shape(c, "c", d, "d", op);
  check_same_device(c, "c", d, "d", op);
  const std::vector<float> cv = finite_param_values(c, op, "c");
  const std::vector<float> dv = finite_param_values(d, op, "d");
  std::vector<float> gv(cv.size(), 1.0f);
  if (gamma.has_value()) {
    check_same_shape(c, "c", *gamma, "gamma", op);
    check_same_device(c, "c", *gamma, "gamma", op);
    gv = finite_param_values(*gamma, op, "gamma");
  }
  std::vector<QilParams> out;
  out.reserve(cv.size());
  for (size_t i = 0; i < cv.size(); ++i) out.push_back(make_qil_params(cv[i], dv[i], gv[i], bits, weight));
  return out;
}

at::Tensor fake_quantize_qil_cpu(const at::Tensor& x, const at::Tensor& c, const at::Tensor& d,
                                 const std::optional<at::Tensor>& gamma, int64_t bits, bool weight,
                                 c10::string_view rounding, const std::optional<at::Tensor>& seed,
                                 int64_t seed_offset, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_qil";
  const auto params = qil_params(c, d, gamma, bits, weight, op);
  const Setup s = make_setup(x, c, "c", op, rounding, seed, seed_offset);
  if (!is_enabled(enabled, op)) return disabled_forward(x);
  const int e = e_index(s.et), w = weight ? 1 : 0, pw = gamma.has_value() ? 1 : 0;
  const auto fn = s.stochastic ? kernels::estimator_stochastic_kernels().qil_forward[e][w][pw]
                               : kernels::estimator_kernels().qil_forward[e][w][pw];
  return run_forward(s, params, fn);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fake_quantize_qil_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& c, const at::Tensor& d,
    const std::optional<at::Tensor>& gamma, int64_t bits, bool weight, c10::string_view rounding,
    const std::optional<at::Tensor>& seed, int64_t seed_offset, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_qil_backward";
  const auto params = qil_params(c, d, gamma, bits, weight, op);
  const Setup s = make_setup(x, c, "c", op, rounding, seed, seed_offset);
  check_grad_like_x(grad, x, op);
  if (!is_enabled(enabled, op)) {
    return {disabled_forward(grad), zero_grad_like(c), zero_grad_like(d),
            gamma.has_value() ? zero_grad_like(*gamma) : empty_grad_like(c)};
  }
  const auto fn = kernels::estimator_kernels().qil_backward[e_index(s.et)][weight ? 1 : 0][gamma.has_value() ? 1 : 0];
  auto [dx, totals] = run_backward<3>(s, grad, params, fn);
  return {dx, param_grad(totals, 0, 3, c), param_grad(totals, 1, 3, d),
          gamma.has_value() ? param_grad(totals, 2, 3, *gamma) : empty_grad_like(c)};
}

// ---- DSQ -------------------------------------------------------------------------------------

bool parse_dsq_mode(c10::string_view mode, const char* op) {
  if (mode == "hard") return false;
  if (mode == "soft") return true;
  TORCH_CHECK(false, "lowbit.", op, ": mode must be 'hard' or 'soft', got '", std::string(mode), "'");
}

std::vector<DsqParams> dsq_params(const at::Tensor& lower, const at::Tensor& upper, const at::Tensor& alpha,
                                  int64_t bits, const char* op) {
  check_bits(bits, 1, kMaxBits, op, "");
  check_same_shape(lower, "lower", upper, "upper", op);
  check_same_shape(lower, "lower", alpha, "alpha", op);
  check_same_device(lower, "lower", upper, "upper", op);
  check_same_device(lower, "lower", alpha, "alpha", op);
  const std::vector<float> lv = finite_param_values(lower, op, "lower");
  const std::vector<float> uv = finite_param_values(upper, op, "upper");
  const std::vector<float> av = finite_param_values(alpha, op, "alpha");
  std::vector<DsqParams> out;
  out.reserve(lv.size());
  for (size_t i = 0; i < lv.size(); ++i) {
    TORCH_CHECK(uv[i] > lv[i], "lowbit.", op, ": upper must be greater than lower; lower[", i, "] = ", lv[i],
                ", upper[", i, "] = ", uv[i]);
    const DsqParams p = make_dsq_params(lv[i], uv[i], av[i], bits);
    TORCH_CHECK(p.delta > 0.0f && std::isfinite(p.delta) && std::isfinite(p.inv_delta), "lowbit.", op,
                ": the step (upper - lower)/(2^bits - 1)",
                " of block ", i, " is ", p.delta, ", outside float32's usable range (lower = ", lv[i], ", upper = ",
                uv[i], ")");
    out.push_back(p);
  }
  return out;
}

at::Tensor fake_quantize_dsq_cpu(const at::Tensor& x, const at::Tensor& lower, const at::Tensor& upper,
                                 const at::Tensor& alpha, int64_t bits, c10::string_view mode,
                                 c10::string_view rounding, const std::optional<at::Tensor>& seed,
                                 int64_t seed_offset, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_dsq";
  const bool soft = parse_dsq_mode(mode, op);
  const auto params = dsq_params(lower, upper, alpha, bits, op);
  const Setup s = make_setup(x, lower, "lower", op, rounding, seed, seed_offset);
  TORCH_CHECK(!(soft && s.stochastic), "lowbit.", op,
              ": rounding='stochastic' needs mode='hard' (the soft staircase does not round)");
  if (!is_enabled(enabled, op)) return disabled_forward(x);
  const int e = e_index(s.et);
  const auto fn = s.stochastic ? kernels::estimator_stochastic_kernels().dsq_hard_forward[e]
                               : kernels::estimator_kernels().dsq_forward[e][soft ? 1 : 0];
  return run_forward(s, params, fn);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> fake_quantize_dsq_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& lower, const at::Tensor& upper,
    const at::Tensor& alpha, int64_t bits, c10::string_view mode, c10::string_view rounding,
    const std::optional<at::Tensor>& seed, int64_t seed_offset, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_dsq_backward";
  const bool soft = parse_dsq_mode(mode, op);
  const auto params = dsq_params(lower, upper, alpha, bits, op);
  const Setup s = make_setup(x, lower, "lower", op, rounding, seed, seed_offset);
  TORCH_CHECK(!(soft && s.stochastic), "lowbit.", op,
              ": rounding='stochastic' needs mode='hard' (the soft staircase does not round)");
  check_grad_like_x(grad, x, op);
  if (!is_enabled(enabled, op)) {
    return {disabled_forward(grad), zero_grad_like(lower), zero_grad_like(upper), zero_grad_like(alpha)};
  }
  auto [dx, totals] = run_backward<3>(s, grad, params, kernels::estimator_kernels().dsq_backward[e_index(s.et)]);
  return {dx, param_grad(totals, 0, 3, lower), param_grad(totals, 1, 3, upper), param_grad(totals, 2, 3, alpha)};
}

// ---- sigmoid staircase -----------------------------------------------------------------------

constexpr int64_t kMaxSigmoidThresholds = 65535;

// Levels, steps and thresholds read once per call; SigmoidParams point into this.
struct SigmoidTables {
  std::vector<float> steps, thresholds;
  float y0 = 0.0f;
  float temperature = 1.0f;
  // Threshold groups sharing one exponential (core/soft_quant.h make_sigmoid_groups).
  std::vector<float> ratios, centers;
  std::vector<int32_t> group_ends;
  int32_t groups = 0;
};

SigmoidTables sigmoid_tables(const at::Tensor& levels, const at::Tensor& thresholds, const at::Tensor& temperature,
                             const char* op) {
  TORCH_CHECK(levels.dim() == 1 && levels.numel() >= 2, "lowbit.", op,
              ": levels must be a 1-D tensor of at least 2 values, got shape ", levels.sizes());
  TORCH_CHECK(levels.numel() - 1 <= kMaxSigmoidThresholds, "lowbit.", op, ": at most ", kMaxSigmoidThresholds + 1,
              " levels are supported, got ", levels.numel());
  TORCH_CHECK(thresholds.dim() == 1 && thresholds.numel() == levels.numel() - 1, "lowbit.", op,
              ": thresholds must be a 1-D tensor with one value fewer than levels (", levels.numel() - 1,
              "), got shape ", thresholds.sizes());
  TORCH_CHECK(temperature.numel() == 1, "lowbit.", op, ": temperature must hold one value, got shape ",
              temperature.sizes());
  const std::vector<float> lv = finite_param_values(levels, op, "levels");
  SigmoidTables t;
  t.thresholds = finite_param_values(thresholds, op, "thresholds");
  const float temp = finite_param_values(temperature, op, "temperature")[0];
  TORCH_CHECK(temp > 0.0f, "lowbit.", op, ": temperature must be > 0, got ", temp);
  t.temperature = temp;
  t.y0 = lv[0];
  for (size_t i = 1; i < lv.size(); ++i) {
    TORCH_CHECK(lv[i] > lv[i - 1], "lowbit.", op, ": levels must be strictly increasing; levels[", i - 1, "] = ",
                lv[i - 1], ", levels[", i, "] = ", lv[i]);
    t.steps.push_back(lv[i] - lv[i - 1]);
  }
  for (size_t i = 1; i < t.thresholds.size(); ++i) {
    TORCH_CHECK(t.thresholds[i] >= t.thresholds[i - 1], "lowbit.", op,
                ": thresholds must be non-decreasing; thresholds[", i - 1, "] = ", t.thresholds[i - 1],
                ", thresholds[", i, "] = ", t.thresholds[i]);
  }
  const size_t n = t.thresholds.size();
  t.ratios.resize(n);
  t.centers.resize(n);
  t.group_ends.resize(n);
  t.groups = make_sigmoid_groups(t.temperature, t.thresholds.data(), static_cast<int32_t>(n), t.ratios.data(),
                                 t.centers.data(), t.group_ends.data());
  return t;
}

std::vector<SigmoidParams> sigmoid_params(const SigmoidTables& t, const at::Tensor& alpha, const at::Tensor& beta,
                                          const char* op) {
  check_same_shape(alpha, "alpha", beta, "beta", op);
  check_same_device(alpha, "alpha", beta, "beta", op);
  const std::vector<float> av = finite_param_values(alpha, op, "alpha");
  const std::vector<float> bv = finite_param_values(beta, op, "beta");
  std::vector<SigmoidParams> out;
  out.reserve(av.size());
  for (size_t i = 0; i < av.size(); ++i) {
    out.push_back(make_sigmoid_params(av[i], bv[i], t.temperature, t.y0, t.steps.data(), t.thresholds.data(),
                                      static_cast<int32_t>(t.steps.size()), t.ratios.data(), t.centers.data(),
                                      t.group_ends.data(), t.groups));
  }
  return out;
}

at::Tensor fake_quantize_sigmoid_cpu(const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
                                     const at::Tensor& alpha, const at::Tensor& beta, const at::Tensor& temperature,
                                     bool hard, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_sigmoid";
  const SigmoidTables t = sigmoid_tables(levels, thresholds, temperature, op);
  const auto params = sigmoid_params(t, alpha, beta, op);
  const Setup s = make_setup(x, alpha, "alpha", op, "half_even", std::nullopt, 0);
  if (!is_enabled(enabled, op)) return disabled_forward(x);
  return run_forward(s, params, kernels::estimator_kernels().sigmoid_forward[e_index(s.et)][hard ? 1 : 0]);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fake_quantize_sigmoid_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& levels, const at::Tensor& thresholds,
    const at::Tensor& alpha, const at::Tensor& beta, const at::Tensor& temperature, bool hard,
    const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_sigmoid_backward";
  const SigmoidTables t = sigmoid_tables(levels, thresholds, temperature, op);
  const auto params = sigmoid_params(t, alpha, beta, op);
  const Setup s = make_setup(x, alpha, "alpha", op, "half_even", std::nullopt, 0);
  check_grad_like_x(grad, x, op);
  if (!is_enabled(enabled, op)) return {disabled_forward(grad), zero_grad_like(alpha), zero_grad_like(beta)};
  auto [dx, totals] = run_backward<2>(s, grad, params, kernels::estimator_kernels().sigmoid_backward[e_index(s.et)]);
  return {dx, param_grad(totals, 0, 2, alpha), param_grad(totals, 1, 2, beta)};
}

}  // namespace

TORCH_LIBRARY_IMPL(lowbit, CPU, m) {
  m.impl("fake_quantize_lsq", &fake_quantize_lsq_cpu);
  m.impl("fake_quantize_lsq_backward", &fake_quantize_lsq_backward_cpu);
  m.impl("fake_quantize_learnable", &fake_quantize_learnable_cpu);
  m.impl("fake_quantize_learnable_backward", &fake_quantize_learnable_backward_cpu);
  m.impl("fake_quantize_pact", &fake_quantize_pact_cpu);
  m.impl("fake_quantize_pact_backward", &fake_quantize_pact_backward_cpu);
  m.impl("fake_quantize_qil", &fake_quantize_qil_cpu);
  m.impl("fake_quantize_qil_backward", &fake_quantize_qil_backward_cpu);
  m.impl("fake_quantize_dsq", &fake_quantize_dsq_cpu);
  m.impl("fake_quantize_dsq_backward", &fake_quantize_dsq_backward_cpu);
  m.impl("fake_quantize_sigmoid", &fake_quantize_sigmoid_cpu);
  m.impl("fake_quantize_sigmoid_backward", &fake_quantize_sigmoid_backward_cpu);
}

}  // namespace lowbit::ops
