// CPU implementations of the lowbit ops: argument checks, the split into block runs, threading,
// and a call into the active ISA's kernel table. No per-element math lives here.
#include <torch/library.h>

#include "core/qparams.h"
#include "kernels/dispatch.h"
#include "ops/common.h"
#include "ops/output_buffers.h"

namespace lowbit::ops {
namespace {

using kernels::CodeType;
using kernels::ElemType;

struct AffineSetup {
  kernels::BlockLayout layout;
  std::vector<AffineParams> params;
};

AffineSetup affine_setup(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         int64_t qmin, int64_t qmax, const char* op) {
  check_qrange(qmin, qmax, op);
  check_same_device(x, "x", scale, "scale", op);
  check_same_device(x, "x", zero_point, "zero_point", op);
  TORCH_CHECK(scale.sizes() == zero_point.sizes(), "lowbit.", op, ": scale and zero_point must have ",
              "the same shape, got ", scale.sizes(), " and ", zero_point.sizes());
  AffineSetup setup;
  setup.layout = block_layout(x, scale, op, "scale");
  const at::Tensor s = checked_scale(scale, op);
  const at::Tensor z = checked_zero_point(zero_point, qmin, qmax, op);
  const float* sp = s.data_ptr<float>();
  const int32_t* zp = z.data_ptr<int32_t>();
  setup.params.reserve(s.numel());
  for (int64_t i = 0; i < s.numel(); ++i) setup.params.push_back(make_affine_params(sp[i], zp[i], qmin, qmax));
  return setup;
}

CodeType code_type_for(int64_t qmin, int64_t qmax) {
  if (qmin >= 0 && qmax <= 255) return CodeType::U8;
  if (qmin >= -128 && qmax <= 127) return CodeType::I8;
  if (qmin >= -32768 && qmax <= 32767) return CodeType::I16;
  return CodeType::I32;
}

at::ScalarType scalar_type_of(CodeType c) {
  static constexpr at::ScalarType kTypes[kernels::kNumCodeTypes] = {at::kByte, at::kChar, at::kShort, at::kInt};
  return kTypes[static_cast<int>(c)];
}

std::optional<CodeType> code_type_of(at::ScalarType t) {
  switch (t) {
    case at::kByte: return CodeType::U8;
    case at::kChar: return CodeType::I8;
    case at::kShort: return CodeType::I16;
    case at::kInt: return CodeType::I32;
    default: return std::nullopt;
  }
}

char* byte_ptr(const at::Tensor& t) { return static_cast<char*>(t.data_ptr()); }

// ---- quantize / dequantize -------------------------------------------------------------------

at::Tensor quantize_affine_cpu(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                               int64_t qmin, int64_t qmax, c10::string_view rounding,
                               const std::optional<at::Tensor>& seed, int64_t offset) {
  constexpr const char* op = "quantize_affine";
  const ElemType et = elem_type_of(x, op, "x");
  const Rounding mode = parse_rounding(std::string(rounding), op);
  const uint64_t seed_v = seed_value(seed, mode, op);
  const AffineSetup setup = affine_setup(x, scale, zero_point, qmin, qmax, op);
  const CodeType ct = code_type_for(qmin, qmax);
  const at::Tensor xc = x.contiguous();
  at::Tensor q = at::empty(x.sizes(), x.options().dtype(scalar_type_of(ct)));
  const int64_t in_size = xc.element_size(), out_size = q.element_size();
  const char* xp = byte_ptr(xc);
  char* qp = byte_ptr(q);
  const auto& k = kernels::affine_kernels();
  parallel_for_runs(setup.layout, [&](int64_t pi, int64_t b, int64_t n) {
    if (mode == Rounding::Stochastic) {
      kernels::quantize_stochastic(et, ct, xp + b * in_size, qp + b * out_size, n, setup.params[pi], seed_v,
                                   static_cast<uint64_t>(offset + b));
    } else {
      k.quantize[static_cast<int>(et)][static_cast<int>(mode)][static_cast<int>(ct)](
          xp + b * in_size, qp + b * out_size, n, setup.params[pi]);
    }
  });
  return q;
}

at::Tensor dequantize_affine_cpu(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zero_point,
                                 std::optional<at::ScalarType> dtype) {
  constexpr const char* op = "dequantize_affine";
  const auto ct = code_type_of(q.scalar_type());
  TORCH_CHECK(ct.has_value(), "lowbit.", op, ": q must be uint8, int8, int16 or int32 codes, got ",
              q.scalar_type());
  const at::ScalarType out_type = dtype.value_or(at::kFloat);
  TORCH_CHECK(out_type == at::kFloat || out_type == at::kHalf || out_type == at::kBFloat16, "lowbit.", op,
              ": dtype must be float32, float16 or bfloat16, got ", out_type);
  check_same_device(q, "q", scale, "scale", op);
  check_same_device(q, "q", zero_point, "zero_point", op);
  TORCH_CHECK(scale.sizes() == zero_point.sizes(), "lowbit.", op, ": scale and zero_point must have ",
              "the same shape, got ", scale.sizes(), " and ", zero_point.sizes());
  const kernels::BlockLayout layout = block_layout(q, scale, op, "scale");
  const at::Tensor s = checked_scale(scale, op);
  TORCH_CHECK(!zero_point.is_floating_point(), "lowbit.", op, ": zero_point must be an integer tensor, got ",
              zero_point.scalar_type());
  const at::Tensor z = zero_point.to(at::kInt).contiguous();
  const at::Tensor qc = q.contiguous();
  at::Tensor y = at::empty(q.sizes(), q.options().dtype(out_type));
  const ElemType et = elem_type_of(y, op, "dtype");
  const float* sp = s.data_ptr<float>();
  const int32_t* zp = z.data_ptr<int32_t>();
  const int64_t in_size = qc.element_size(), out_size = y.element_size();
  const char* qp = byte_ptr(qc);
  char* yp = byte_ptr(y);
  const auto fn = kernels::affine_kernels().dequantize[static_cast<int>(*ct)][static_cast<int>(et)];
  parallel_for_runs(layout, [&](int64_t pi, int64_t b, int64_t n) {
    fn(qp + b * in_size, yp + b * out_size, n, sp[pi], static_cast<float>(zp[pi]));
  });
  return y;
}

// ---- fake quantization -----------------------------------------------------------------------

at::Tensor fake_quantize_affine_cpu(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                    int64_t qmin, int64_t qmax, c10::string_view rounding, c10::string_view ste,
                                    const std::optional<at::Tensor>& seed, int64_t offset,
                                    const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_affine";
  const ElemType et = elem_type_of(x, op, "x");
  const Rounding mode = parse_rounding(std::string(rounding), op);
  parse_ste(std::string(ste), op);
  const AffineSetup setup = affine_setup(x, scale, zero_point, qmin, qmax, op);
  if (!is_enabled(enabled, op)) return x.clone(at::MemoryFormat::Contiguous);
  const uint64_t seed_v = seed_value(seed, mode, op);
  const at::Tensor xc = x.contiguous();
  at::Tensor y = forward_output_buffer(xc);  // the recompute workspace when lowbit._recompute asks
  const int64_t es = xc.element_size();
  const char* xp = byte_ptr(xc);
  char* yp = byte_ptr(y);
  const auto fn = mode == Rounding::Stochastic
                      ? nullptr
                      : kernels::affine_kernels().fake_quantize[static_cast<int>(et)][static_cast<int>(mode)];
  parallel_for_runs(setup.layout, [&](int64_t pi, int64_t b, int64_t n) {
    if (fn != nullptr) {
      fn(xp + b * es, yp + b * es, n, setup.params[pi]);
    } else {
      kernels::fake_quantize_stochastic(et, xp + b * es, yp + b * es, n, setup.params[pi], seed_v,
                                        static_cast<uint64_t>(offset + b));
    }
  });
  return y;
}

at::Tensor fake_quantize_affine_backward_cpu(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& scale,
                                             const at::Tensor& zero_point, int64_t qmin, int64_t qmax,
                                             c10::string_view rounding, c10::string_view ste,
                                             const std::optional<at::Tensor>& seed, int64_t offset,
                                             const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "fake_quantize_affine_backward";
  const ElemType et = elem_type_of(x, op, "x");
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && grad.sizes() == x.sizes(), "lowbit.", op,
              ": grad must match x in dtype and shape, got ", grad.scalar_type(), grad.sizes(), " vs ",
              x.scalar_type(), x.sizes());
  const Rounding mode = parse_rounding(std::string(rounding), op);
  const kernels::Ste ste_mode = parse_ste(std::string(ste), op);
  const AffineSetup setup = affine_setup(x, scale, zero_point, qmin, qmax, op);
  if (ste_mode == kernels::Ste::Identity || !is_enabled(enabled, op)) {
    return grad.clone(at::MemoryFormat::Contiguous);
  }
  const uint64_t seed_v = seed_value(seed, mode, op);
  const at::Tensor xc = x.contiguous();
  const at::Tensor gc = grad.contiguous();
  at::Tensor dx = grad_output_buffer(gc, xc);  // grad's own buffer when autograd donates it
  const int64_t es = xc.element_size();
  const char* xp = byte_ptr(xc);
  const char* gp = byte_ptr(gc);
  char* dp = byte_ptr(dx);
  const auto& k = kernels::affine_kernels();
  const int e = static_cast<int>(et);
  parallel_for_runs(setup.layout, [&](int64_t pi, int64_t b, int64_t n) {
    const AffineParams& p = setup.params[pi];
    if (ste_mode == kernels::Ste::Real) {
      k.fake_quantize_backward_real[e](xp + b * es, gp + b * es, dp + b * es, n, p);
    } else if (mode == Rounding::Stochastic) {
      kernels::fake_quantize_stochastic_backward_integer(et, xp + b * es, gp + b * es, dp + b * es, n, p, seed_v,
                                                         static_cast<uint64_t>(offset + b));
    } else {
      k.fake_quantize_backward_integer[e][static_cast<int>(mode)](xp + b * es, gp + b * es, dp + b * es, n, p);
    }
  });
  return dx;
}

// ---- qparams and observers -------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> choose_qparams_cpu(const at::Tensor& min_val, const at::Tensor& max_val,
                                                      int64_t qmin, int64_t qmax, bool symmetric,
                                                      c10::string_view method, double eps) {
  constexpr const char* op = "choose_qparams";
  const bool fbgemm = method == "fbgemm";
  TORCH_CHECK(fbgemm || method == "observer", "lowbit.", op, ": method must be 'observer' or 'fbgemm', got '",
              std::string(method), "'");
  if (fbgemm) {
    // fbgemm's integer arithmetic (qmax - qmin in int32) and torch's fused op only hold for
    // lowbit's <= 16-bit ranges.
    check_qrange(qmin, qmax, op);
  } else {
    // torch.ao observers also serve qint32 / int32 (e.g. bias) ranges; the formula is exact in
    // int64 and the zero point fits int32.
    TORCH_CHECK(qmin < qmax, "lowbit.", op, ": qmin must be < qmax, got qmin=", qmin, ", qmax=", qmax);
    TORCH_CHECK(qmin >= INT32_MIN && qmax <= INT32_MAX, "lowbit.", op, ": (qmin, qmax)=(", qmin, ", ", qmax,
                ") must lie inside the int32 range for method='observer'");
  }
  check_same_device(min_val, "min_val", max_val, "max_val", op);
  TORCH_CHECK(min_val.sizes() == max_val.sizes(), "lowbit.", op, ": min_val and max_val must have the same ",
              "shape, got ", min_val.sizes(), " and ", max_val.sizes());
  TORCH_CHECK(min_val.is_floating_point() && max_val.is_floating_point(), "lowbit.", op,
              ": min_val and max_val must be floating point, got ", min_val.scalar_type(), " and ",
              max_val.scalar_type());
  TORCH_CHECK(eps > 0 && std::isfinite(eps), "lowbit.", op, ": eps must be positive and finite, got ", eps);
  const at::Tensor lo = min_val.to(at::kFloat).contiguous(), hi = max_val.to(at::kFloat).contiguous();
  at::Tensor scale = at::empty(min_val.sizes(), min_val.options().dtype(at::kFloat));
  at::Tensor zp = at::empty(min_val.sizes(), min_val.options().dtype(at::kInt));
  const float *lp = lo.data_ptr<float>(), *hp = hi.data_ptr<float>();
  float* sp = scale.data_ptr<float>();
  int32_t* zpp = zp.data_ptr<int32_t>();
  for (int64_t i = 0; i < lo.numel(); ++i) {
    const char* err = qparams_range_error(lp[i], hp[i]);
    TORCH_CHECK(err == nullptr, "lowbit.", op, ": the range (min_val[", i, "], max_val[", i, "]) = (", lp[i], ", ",
                hp[i], ") ", err);
    QParams qp;
    if (fbgemm) {
      qp = is_unobserved_range(lp[i], hp[i]) ? QParams{1.0f, 0}
                                            : choose_qparams_fbgemm(lp[i], hp[i], qmin, qmax, symmetric);
    } else {
      qp = choose_qparams_observer(lp[i], hp[i], qmin, qmax, symmetric, static_cast<float>(eps));
    }
    sp[i] = qp.scale;
    zpp[i] = qp.zero_point;
  }
  return {scale, zp};
}

// Per-run min/max reduced into per-parameter slots. Runs of one slot may be spread over threads,
// so each task reduces into its own slot array and the arrays are merged (NaN ignored throughout).
void observe_block_minmax(const at::Tensor& x, const at::Tensor& min_val, const char* op,
                          std::vector<float>* mins, std::vector<float>* maxs) {
  const ElemType et = elem_type_of(x, op, "x");
  const kernels::BlockLayout layout = block_layout(x, min_val, op, "min_val");
  const int64_t P = layout.num_params;
  mins->assign(P, std::numeric_limits<float>::infinity());
  maxs->assign(P, -std::numeric_limits<float>::infinity());
  if (layout.numel == 0) return;
  const at::Tensor xc = x.contiguous();
  const int64_t es = xc.element_size();
  const char* xp = byte_ptr(xc);
  const auto fn = kernels::affine_kernels().minmax[static_cast<int>(et)];
  const int64_t num_tasks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), layout.numel / kParallelGrain));
  const int64_t chunk = (layout.numel + num_tasks - 1) / num_tasks;
  std::vector<std::vector<float>> task_min(num_tasks, *mins), task_max(num_tasks, *maxs);
  at::parallel_for(0, num_tasks, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      kernels::for_each_run_piece(layout, t * chunk, std::min(layout.numel, (t + 1) * chunk),
                                  [&](int64_t pi, int64_t b, int64_t n) {
                                    fn(xp + b * es, n, &task_min[t][pi], &task_max[t][pi]);
                                  });
    }
  });
  for (int64_t t = 0; t < num_tasks; ++t) {
    for (int64_t p = 0; p < P; ++p) {
      (*mins)[p] = std::min((*mins)[p], task_min[t][p]);
      (*maxs)[p] = std::max((*maxs)[p], task_max[t][p]);
    }
  }
}

void check_observer_buffers(const at::Tensor& x, const at::Tensor& min_val, const at::Tensor& max_val,
                            const char* op) {
  check_same_device(x, "x", min_val, "min_val", op);
  check_same_device(x, "x", max_val, "max_val", op);
  TORCH_CHECK(min_val.scalar_type() == at::kFloat && max_val.scalar_type() == at::kFloat, "lowbit.", op,
              ": min_val and max_val must be float32 buffers, got ", min_val.scalar_type(), " and ",
              max_val.scalar_type());
  TORCH_CHECK(min_val.sizes() == max_val.sizes(), "lowbit.", op, ": min_val and max_val must have the same ",
              "shape, got ", min_val.sizes(), " and ", max_val.sizes());
  TORCH_CHECK(min_val.is_contiguous() && max_val.is_contiguous(), "lowbit.", op,
              ": min_val and max_val must be contiguous buffers");
}

void observe_minmax_cpu(const at::Tensor& x, at::Tensor& min_val, at::Tensor& max_val,
                        const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "observe_minmax_";
  check_observer_buffers(x, min_val, max_val, op);
  if (!is_enabled(enabled, op) || x.numel() == 0) return;
  std::vector<float> mins, maxs;
  observe_block_minmax(x, min_val, op, &mins, &maxs);
  float* lp = min_val.data_ptr<float>();
  float* hp = max_val.data_ptr<float>();
  for (size_t p = 0; p < mins.size(); ++p) {
    lp[p] = std::min(lp[p], mins[p]);
    hp[p] = std::max(hp[p], maxs[p]);
  }
}

// torch.ao MovingAverageMinMaxObserver: the first observation (buffer still +inf/-inf) is
// copied, later ones move the buffer by c·(batch - buffer). A block whose batch values are all
// NaN leaves its buffer unchanged.
void observe_moving_average_minmax_cpu(const at::Tensor& x, at::Tensor& min_val, at::Tensor& max_val,
                                       double averaging_constant, const std::optional<at::Tensor>& enabled) {
  constexpr const char* op = "observe_moving_average_minmax_";
  check_observer_buffers(x, min_val, max_val, op);
  TORCH_CHECK(averaging_constant > 0.0 && averaging_constant <= 1.0, "lowbit.", op,
              ": averaging_constant must be in (0, 1], got ", averaging_constant);
  if (!is_enabled(enabled, op) || x.numel() == 0) return;
  std::vector<float> mins, maxs;
  observe_block_minmax(x, min_val, op, &mins, &maxs);
  const float c = static_cast<float>(averaging_constant);
  float* lp = min_val.data_ptr<float>();
  float* hp = max_val.data_ptr<float>();
  for (size_t p = 0; p < mins.size(); ++p) {
    if (mins[p] > maxs[p]) continue;  // nothing but NaN in this block
    if (is_unobserved_range(lp[p], hp[p])) {
      lp[p] = mins[p];
      hp[p] = maxs[p];
    } else {
      lp[p] = lp[p] + c * (mins[p] - lp[p]);
      hp[p] = hp[p] + c * (maxs[p] - hp[p]);
    }
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(lowbit, CPU, m) {
  m.impl("quantize_affine", &quantize_affine_cpu);
  m.impl("dequantize_affine", &dequantize_affine_cpu);
  m.impl("fake_quantize_affine", &fake_quantize_affine_cpu);
  m.impl("fake_quantize_affine_backward", &fake_quantize_affine_backward_cpu);
  m.impl("choose_qparams", &choose_qparams_cpu);
  m.impl("observe_minmax_", &observe_minmax_cpu);
  m.impl("observe_moving_average_minmax_", &observe_moving_average_minmax_cpu);
}

}  // namespace lowbit::ops
