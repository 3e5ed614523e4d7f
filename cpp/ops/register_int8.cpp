// CPU implementations of the integer-inference ops (issue 5): requantization and the int8 GEMM
// family. Argument checks, the split into blocks and threads, and calls into the active ISA's
// kernel tables; no per-element math lives here (cpp/core and cpp/kernels hold it).
#include <torch/library.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <type_traits>

#include "core/fixed_point.h"
#include "core/requantize.h"
#include "kernels/dispatch.h"
#include "kernels/transpose_bytes.h"
#include "ops/common.h"
#include "ops/int8_common.h"

namespace lowbit::ops {
namespace {

// ---- quantize_multiplier ---------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> quantize_multiplier_cpu(const at::Tensor& real_multiplier,
                                                           c10::string_view rounding) {
  constexpr const char* op = "quantize_multiplier";
  const RequantRounding mode = parse_requant_rounding(rounding, op);
  TORCH_CHECK(real_multiplier.is_floating_point(), "lowbit.", op,
              ": real_multiplier must be a floating-point tensor (float64 preferred), got ",
              real_multiplier.scalar_type());
  const at::Tensor real = real_multiplier.to(at::kDouble).contiguous();
  at::Tensor multiplier = at::empty(real_multiplier.sizes(), real.options().dtype(at::kInt));
  at::Tensor shift = at::empty(real_multiplier.sizes(), real.options().dtype(at::kInt));
  const double* rp = real.data_ptr<double>();
  int32_t* mp = multiplier.data_ptr<int32_t>();
  int32_t* sp = shift.data_ptr<int32_t>();
  const int max_shift = max_requant_shift(mode);
  for (int64_t i = 0; i < real.numel(); ++i) {
    TORCH_CHECK(std::isfinite(rp[i]) && rp[i] >= 0.0, "lowbit.", op,
                ": real_multiplier must be finite and >= 0; real_multiplier[", i, "] = ", rp[i]);
    const QuantizedMultiplier q = quantize_multiplier(rp[i], mode == RequantRounding::Single);
    TORCH_CHECK(q.shift <= max_shift, "lowbit.", op, ": real_multiplier[", i, "] = ", rp[i],
                " is too large: its shift ", q.shift, " exceeds ", max_shift,
                " (multipliers must be below 2^31)");
    mp[i] = q.multiplier;
    sp[i] = q.shift;
  }
  return {multiplier, shift};
}

// ---- requantize ------------------------------------------------------------------------------

// Parameters of `requantize`, validated and flattened to int32 arrays of multiplier's shape
// (zero_point broadcast to it when it holds one element).
struct RequantSetup {
  kernels::BlockLayout layout;
  at::Tensor multiplier, shift, zero_point;  // contiguous int32, same numel
};

RequantSetup requant_setup(const at::Tensor& acc, const at::Tensor& multiplier, const at::Tensor& shift,
                           const at::Tensor& zero_point, int64_t qmin, int64_t qmax, RequantRounding mode,
                           const char* op) {
  TORCH_CHECK(acc.scalar_type() == at::kInt, "lowbit.", op, ": acc must be an int32 tensor of accumulators, got ",
              acc.scalar_type());
  check_int32_qrange(qmin, qmax, op);
  check_same_device(acc, "acc", multiplier, "multiplier", op);
  check_same_device(acc, "acc", shift, "shift", op);
  check_same_device(acc, "acc", zero_point, "zero_point", op);
  TORCH_CHECK(multiplier.scalar_type() == at::kInt && shift.scalar_type() == at::kInt, "lowbit.", op,
              ": multiplier and shift must be int32 tensors (as quantize_multiplier returns), got ",
              multiplier.scalar_type(), " and ", shift.scalar_type());
  TORCH_CHECK(multiplier.sizes() == shift.sizes(), "lowbit.", op,
              ": multiplier and shift must have the same shape, got ", multiplier.sizes(), " and ", shift.sizes());
  TORCH_CHECK(zero_point.numel() == 1 || zero_point.sizes() == multiplier.sizes(), "lowbit.", op,
              ": zero_point must hold one element or have multiplier's shape ", multiplier.sizes(), ", got ",
              zero_point.sizes());
  RequantSetup s;
  s.layout = block_layout(acc, multiplier, op, "multiplier");
  s.multiplier = multiplier.contiguous();
  s.shift = checked_shift(shift, mode, op);
  at::Tensor z = checked_zero_point(zero_point, qmin, qmax, op);
  s.zero_point = z.numel() == multiplier.numel() ? z : z.expand(multiplier.sizes()).contiguous();
  return s;
}

at::Tensor requantize_cpu(const at::Tensor& acc, const at::Tensor& multiplier, const at::Tensor& shift,
                          const at::Tensor& zero_point, int64_t qmin, int64_t qmax, c10::string_view rounding) {
  constexpr const char* op = "requantize";
  const RequantRounding mode = parse_requant_rounding(rounding, op);
  const RequantSetup s = requant_setup(acc, multiplier, shift, zero_point, qmin, qmax, mode, op);
  const kernels::CodeType ct = code_type_for_range(qmin, qmax);
  at::Tensor out = at::empty(acc.sizes(), acc.options().dtype(scalar_type_of_code(ct)));
  const kernels::BlockLayout& L = s.layout;
  if (L.numel == 0) return out;
  const at::Tensor ac = acc.contiguous();
  const int32_t* ap = ac.data_ptr<int32_t>();
  char* op_bytes = static_cast<char*>(out.data_ptr());
  const int64_t es = out.element_size();
  const int32_t* mp = s.multiplier.data_ptr<int32_t>();
  const int32_t* sp = s.shift.data_ptr<int32_t>();
  const int32_t* zp = s.zero_point.data_ptr<int32_t>();
  const auto& k = kernels::requant_kernels();
  const int r = static_cast<int>(mode), c = static_cast<int>(ct);
  const int32_t lo = static_cast<int32_t>(qmin), hi = static_cast<int32_t>(qmax);

  if (L.run_length >= kernels::kMinRequantRun || L.per_tensor()) {
    const auto fn = k.run[r][c];
    parallel_for_runs(L, [&](int64_t pi, int64_t b, int64_t n) {
      fn(ap + b, op_bytes + b * es, n, RequantParams{mp[pi], sp[pi], zp[pi], lo, hi});
    });
    return out;
  }

  const auto fn = k.channels[r][c];
  if (L.radix.size() == 1) {
    // Parameters vary along one axis only (the per-channel case): the element -> parameter
    // pattern repeats every `period` elements, so expand it once and reuse it for every period.
    const int64_t period = L.radix[0] * L.run_length;
    std::vector<int32_t> em(period), es_(period), ez(period);
    for (int64_t e = 0; e < period; ++e) {
      const int64_t pi = L.param_index(e / L.run_length);
      em[e] = mp[pi];
      es_[e] = sp[pi];
      ez[e] = zp[pi];
    }
    const int64_t periods = L.numel / period;
    at::parallel_for(0, periods, std::max<int64_t>(1, kParallelGrain / period), [&](int64_t pb, int64_t pe) {
      for (int64_t q = pb; q < pe; ++q) {
        fn(ap + q * period, op_bytes + q * period * es, period, em.data(), es_.data(), ez.data(), lo, hi);
      }
    });
    return out;
  }

  // General blocked layout with short runs: gather each chunk's parameters, then one vector call.
  constexpr int64_t kChunk = 1024;
  at::parallel_for(0, (L.numel + kChunk - 1) / kChunk, std::max<int64_t>(1, kParallelGrain / kChunk),
                   [&](int64_t cb, int64_t ce) {
                     std::vector<int32_t> em(kChunk), es_(kChunk), ez(kChunk);
                     for (int64_t chunk = cb; chunk < ce; ++chunk) {
                       const int64_t b = chunk * kChunk, e = std::min(L.numel, b + kChunk);
                       kernels::for_each_run_piece(L, b, e, [&](int64_t pi, int64_t pb, int64_t n) {
                         std::fill_n(em.begin() + (pb - b), n, mp[pi]);
                         std::fill_n(es_.begin() + (pb - b), n, sp[pi]);
                         std::fill_n(ez.begin() + (pb - b), n, zp[pi]);
                       });
                       fn(ap + b, op_bytes + b * es, e - b, em.data(), es_.data(), ez.data(), lo, hi);
                     }
                   });
  return out;
}

// ---- int8 GEMM: packing ------------------------------------------------------------------------

void check_packed(const at::Tensor& packed, int64_t n, int64_t k, const char* op) {
  TORCH_CHECK(packed.scalar_type() == at::kChar, "lowbit.", op,
              ": packed_weight must be the int8 tensor int8_pack_weight returns, got ", packed.scalar_type());
  const std::vector<int64_t> want = {kernels::gemm_num_panels(n), k, kernels::kGemmNr};
  TORCH_CHECK(packed.sizes().vec() == want, "lowbit.", op, ": packed_weight has shape ", packed.sizes(),
              " but a weight of ", n, " output channels and K = ", k, " packs to ", at::IntArrayRef(want),
              " (pack it with int8_pack_weight; K is the input's last dimension)");
  TORCH_CHECK(packed.is_contiguous(), "lowbit.", op, ": packed_weight must be contiguous");
}

std::tuple<at::Tensor, at::Tensor> int8_pack_weight_cpu(const at::Tensor& weight) {
  constexpr const char* op = "int8_pack_weight";
  TORCH_CHECK(weight.scalar_type() == at::kChar, "lowbit.", op, ": weight must be an int8 tensor, got ",
              weight.scalar_type());
  TORCH_CHECK(weight.dim() == 2, "lowbit.", op, ": weight must be 2-D [out_features, in_features], got shape ",
              weight.sizes());
  const int64_t n = weight.size(0), k = weight.size(1);
  const at::Tensor w = weight.contiguous();
  at::Tensor packed = at::empty({kernels::gemm_num_panels(n), k, kernels::kGemmNr}, weight.options());
  at::Tensor col_sums = at::empty({n}, weight.options().dtype(at::kInt));
  kernels::gemm_int8_pack_weight(w.data_ptr<int8_t>(), n, k, packed.data_ptr<int8_t>(), col_sums.data_ptr<int32_t>());
  return {packed, col_sums};
}

at::Tensor int8_unpack_weight_cpu(const at::Tensor& packed, int64_t n, int64_t k) {
  constexpr const char* op = "int8_unpack_weight";
  TORCH_CHECK(n >= 0 && k >= 0, "lowbit.", op, ": n and k must be >= 0, got n=", n, ", k=", k);
  check_packed(packed, n, k, op);
  at::Tensor weight = at::empty({n, k}, packed.options());
  kernels::gemm_int8_unpack_weight(packed.data_ptr<int8_t>(), n, k, weight.data_ptr<int8_t>());
  return weight;
}

// ---- int8 GEMM: shared setup ---------------------------------------------------------------------

struct GemmSetup {
  at::Tensor a;  // contiguous [M, K]
  kernels::GemmAType a_type;
  int64_t m, n, k, panels;
  std::vector<int64_t> out_sizes;
  std::vector<int32_t> col_sums_padded;
};

// pad_col_sums: fill col_sums_padded (int8_gemm's kernel reads whole panels of them); int8_linear
// builds its own copy in its plan.
GemmSetup gemm_setup(const at::Tensor& a, const at::Tensor& packed, const at::Tensor& col_sums, const char* op,
                     const char* a_name, bool pad_col_sums = true) {
  TORCH_CHECK(a.scalar_type() == at::kByte || a.scalar_type() == at::kChar, "lowbit.", op, ": ", a_name,
              " must be uint8 or int8 activation codes, got ", a.scalar_type());
  TORCH_CHECK(a.dim() >= 1, "lowbit.", op, ": ", a_name, " must have at least one dimension (the K axis)");
  check_same_device(a, a_name, packed, "packed_weight", op);
  check_same_device(a, a_name, col_sums, "weight_col_sums", op);
  TORCH_CHECK(col_sums.scalar_type() == at::kInt && col_sums.dim() == 1, "lowbit.", op,
              ": weight_col_sums must be the 1-D int32 tensor int8_pack_weight returns, got ", col_sums.scalar_type(),
              " of shape ", col_sums.sizes());
  GemmSetup s;
  s.k = a.size(-1);
  s.n = col_sums.size(0);
  check_packed(packed, s.n, s.k, op);
  s.a_type = a.scalar_type() == at::kByte ? kernels::GemmAType::U8 : kernels::GemmAType::S8;
  const int64_t max_k = s.a_type == kernels::GemmAType::U8 ? kernels::kGemmMaxKU8 : kernels::kGemmMaxKS8;
  TORCH_CHECK(s.k <= max_k, "lowbit.", op, ": K = ", s.k, " is too large for exact int32 accumulation of ",
              a.scalar_type(), " x int8 products (at most ", max_k, "): split the reduction");
  s.a = a.contiguous();
  s.m = 1;
  for (int64_t d = 0; d + 1 < a.dim(); ++d) s.m *= a.size(d);
  s.out_sizes = a.sizes().vec();
  s.out_sizes.back() = s.n;
  s.panels = kernels::gemm_num_panels(s.n);
  if (pad_col_sums) {
    s.col_sums_padded.assign(static_cast<size_t>(s.panels * kernels::kGemmNr), 0);
    const at::Tensor cs = col_sums.contiguous();
    std::copy_n(cs.data_ptr<int32_t>(), s.n, s.col_sums_padded.begin());
  }
  return s;
}

// Splits the product over threads: by panels when there are enough of them (each task widens or
// streams its own panels once and sweeps every row), otherwise by row tiles.
void run_gemm(const kernels::GemmInt8Kernels& k, kernels::GemmInt8BlockFn fn, const kernels::GemmInt8Args& args) {
  const int64_t panels = kernels::gemm_num_panels(args.n);
  if (args.m == 0 || panels == 0) return;
  const int64_t threads = at::get_num_threads();
  const int64_t work = args.m * args.n * std::max<int64_t>(args.k, 1);
  if (threads == 1 || work < (int64_t{1} << 18)) {
    fn(args, 0, args.m, 0, panels);
    return;
  }
  const int64_t panel_groups = (panels + k.nr_panels - 1) / k.nr_panels;
  const int64_t row_tiles = (args.m + k.mr - 1) / k.mr;
  if (panel_groups >= 4 * threads || row_tiles < 4 * threads) {
    at::parallel_for(0, panel_groups, 1, [&](int64_t b, int64_t e) {
      fn(args, 0, args.m, b * k.nr_panels, std::min(panels, e * k.nr_panels));
    });
  } else {
    at::parallel_for(0, row_tiles, 1, [&](int64_t b, int64_t e) {
      fn(args, b * k.mr, std::min(args.m, e * k.mr), 0, panels);
    });
  }
}

at::Tensor int8_gemm_cpu(const at::Tensor& a, const at::Tensor& packed_weight, const at::Tensor& weight_col_sums) {
  constexpr const char* op = "int8_gemm";
  GemmSetup s = gemm_setup(a, packed_weight, weight_col_sums, op, "a");
  at::Tensor c = at::empty(s.out_sizes, a.options().dtype(at::kInt));
  if (s.k == 0) return c.zero_();
  kernels::GemmInt8Args args;
  args.a = s.a.data_ptr();
  args.lda = s.k;
  args.packed = packed_weight.data_ptr<int8_t>();
  args.col_sums = s.col_sums_padded.data();
  args.m = s.m;
  args.n = s.n;
  args.k = s.k;
  args.c = c.data_ptr<int32_t>();
  args.ldc = s.n;
  const auto& table = kernels::gemm_int8_kernels();
  run_gemm(table, table.gemm[static_cast<int>(s.a_type)][static_cast<int>(kernels::GemmEpilogue::S32)], args);
  return c;
}

// ---- int8_linear ---------------------------------------------------------------------------------

// Element i of a 1-D (or one-element) integer tensor as int64, read in place: int32 and int64 (what
// the Python wrappers and quantize_multiplier pass) without any conversion pass or allocation;
// other integer dtypes through one conversion, as before. `count` elements; a one-element tensor
// broadcasts.
template <typename F>
void read_integers(const at::Tensor& t, int64_t count, F&& f) {
  const bool one = t.numel() == 1;
  const int64_t stride = one ? 0 : t.stride(0);
  auto read = [&](const auto* p) {
    for (int64_t i = 0; i < count; ++i) f(i, static_cast<int64_t>(p[i * stride]));
  };
  if (t.scalar_type() == at::kInt) return read(t.const_data_ptr<int32_t>());
  if (t.scalar_type() == at::kLong) return read(t.const_data_ptr<int64_t>());
  const at::Tensor v = t.to(at::kLong);
  const int64_t vstride = one ? 0 : v.stride(0);
  const int64_t* p = v.const_data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) f(i, p[i * vstride]);
}

// An integer tensor of one element or n elements, expanded to n int32 entries followed by
// kGemmNr zeros: a group's last panel reads up to kGemmNr - 1 entries past its channels (they feed
// only the panel's padding columns, which are never stored).
std::vector<int32_t> channel_array(const at::Tensor& t, int64_t n, const char* op, const char* name) {
  TORCH_CHECK(!t.is_floating_point() && !t.is_complex() && t.scalar_type() != at::kBool, "lowbit.", op, ": ", name,
              " must be an integer tensor, got ", t.scalar_type());
  TORCH_CHECK(t.numel() == 1 || (t.dim() == 1 && t.size(0) == n), "lowbit.", op, ": ", name,
              " must hold one element (per-tensor) or be 1-D with one element per output channel (", n,
              "), got shape ", t.sizes());
  std::vector<int32_t> out(static_cast<size_t>(n + kernels::kGemmNr), 0);
  if (n == 0) return out;
  if (t.scalar_type() == at::kInt) {  // the usual case: a copy (or a fill), nothing to range-check
    const int32_t* p = t.const_data_ptr<int32_t>();
    if (t.numel() == 1) {
      std::fill_n(out.begin(), n, p[0]);
    } else {
      const int64_t stride = t.stride(0);
      for (int64_t i = 0; i < n; ++i) out[i] = p[i * stride];
    }
    return out;
  }
  read_integers(t, n, [&](int64_t i, int64_t x) {
    TORCH_CHECK(x >= std::numeric_limits<int32_t>::min() && x <= std::numeric_limits<int32_t>::max(), "lowbit.", op,
                ": ", name, "[", i, "] = ", x, " does not fit in int32");
    out[i] = static_cast<int32_t>(x);
  });
  return out;
}

// The value of a one-element integer tensor, read in place (no item(): it dispatches an op).
int64_t single_value(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(!t.is_floating_point() && !t.is_complex() && t.scalar_type() != at::kBool, "lowbit.", op, ": ", name,
              " must be an integer tensor, got ", t.scalar_type());
  TORCH_CHECK(t.numel() == 1, "lowbit.", op, ": ", name, " must hold one element, got shape ", t.sizes());
  int64_t value = 0;
  read_integers(t, 1, [&](int64_t, int64_t x) { value = x; });
  return value;
}

// Everything an int8 linear/conv layer needs besides its activations: validated parameters and
// per-channel int32 arrays over ALL n output channels (each followed by kGemmNr zeros, see
// channel_array), with the zero-point terms folded into one int32 per channel. Built once per
// call; a convolution group runs on the slice of its channels (run_int8_linear_plan's c0).
struct Int8LinearPlan {
  kernels::GemmAType a_type;
  bool out_u8;
  RequantRounding mode;
  int64_t n, k, zx, zo, qmin, qmax;
  std::vector<int32_t> wzp, mult, shf, folded, col_sums;
  bool asymmetric_w;
};

Int8LinearPlan make_int8_linear_plan(const char* op, kernels::GemmAType a_type, at::ScalarType x_dtype, int64_t n,
                                     int64_t k, const at::Tensor& col_sums, const std::optional<at::Tensor>& bias,
                                     const at::Tensor& x_zero_point, const at::Tensor& weight_zero_point,
                                     const at::Tensor& multiplier, const at::Tensor& shift,
                                     const at::Tensor& out_zero_point, int64_t qmin, int64_t qmax,
                                     c10::string_view rounding) {
  Int8LinearPlan p;
  p.a_type = a_type;
  p.n = n;
  p.k = k;
  p.mode = parse_requant_rounding(rounding, op);
  const bool x_u8 = a_type == kernels::GemmAType::U8;
  TORCH_CHECK(qmin < qmax, "lowbit.", op, ": qmin must be < qmax, got qmin=", qmin, ", qmax=", qmax);
  p.out_u8 = qmin >= 0 && qmax <= 255;
  TORCH_CHECK(p.out_u8 || (qmin >= -128 && qmax <= 127), "lowbit.", op, ": (qmin, qmax)=(", qmin, ", ", qmax,
              ") must fit uint8 [0, 255] or int8 [-128, 127] (use int8_gemm + requantize for wider outputs)");
  p.qmin = qmin;
  p.qmax = qmax;
  p.zx = single_value(x_zero_point, op, "x_zero_point");
  TORCH_CHECK(x_u8 ? (p.zx >= 0 && p.zx <= 255) : (p.zx >= -128 && p.zx <= 127), "lowbit.", op, ": x_zero_point = ",
              p.zx, " is outside the range of x's dtype ", x_dtype);
  p.zo = single_value(out_zero_point, op, "out_zero_point");
  TORCH_CHECK(p.zo >= qmin && p.zo <= qmax, "lowbit.", op, ": out_zero_point = ", p.zo, " is outside [qmin, qmax] = [",
              qmin, ", ", qmax, "]");
  p.wzp = channel_array(weight_zero_point, n, op, "weight_zero_point");
  TORCH_CHECK(multiplier.scalar_type() == at::kInt && shift.scalar_type() == at::kInt, "lowbit.", op,
              ": multiplier and shift must be int32 tensors (as quantize_multiplier returns), got ",
              multiplier.scalar_type(), " and ", shift.scalar_type());
  p.mult = channel_array(multiplier, n, op, "multiplier");
  p.shf = channel_array(shift, n, op, "shift");
  const int max_shift = max_requant_shift(p.mode);
  int64_t max_dw = 0;
  bool bad = false;  // one branch-free pass; the checks that name the element run only when it fails
  for (int64_t i = 0; i < n; ++i) {
    bad |= p.wzp[i] < -128 || p.wzp[i] > 127 || p.shf[i] < -31 || p.shf[i] > max_shift;
    max_dw = std::max<int64_t>(max_dw, std::max<int64_t>(p.wzp[i] + 128, 127 - p.wzp[i]));
  }
  for (int64_t i = 0; bad && i < n; ++i) {
    TORCH_CHECK(p.wzp[i] >= -128 && p.wzp[i] <= 127, "lowbit.", op, ": weight_zero_point[", i, "] = ", p.wzp[i],
                " is outside the int8 range");
    TORCH_CHECK(p.shf[i] >= -31 && p.shf[i] <= max_shift, "lowbit.", op, ": shift[", i, "] = ", p.shf[i],
                " is outside [-31, ", max_shift, "]");
  }
  const int32_t* qbias = nullptr;
  int64_t bias_stride = 0, max_abs_bias = 0;
  if (bias.has_value()) {
    TORCH_CHECK(bias->scalar_type() == at::kInt, "lowbit.", op,
                ": bias must be int32 at scale x_scale·w_scale (zero point 0), got ", bias->scalar_type());
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == n, "lowbit.", op,
                ": bias must have one element per output channel (", n, "), got shape ", bias->sizes());
    qbias = bias->const_data_ptr<int32_t>();
    bias_stride = bias->stride(0);
    for (int64_t i = 0; i < n; ++i) {
      max_abs_bias = std::max<int64_t>(max_abs_bias, std::abs(int64_t{qbias[i * bias_stride]}));
    }
  }
  // The exact accumulator Σ(x - zx)(w - zw) + bias must fit in int32; bound it from the dtype
  // ranges (the folded, wrapping evaluation below is then exact).
  const int64_t max_dx = x_u8 ? std::max<int64_t>(p.zx, 255 - p.zx) : std::max<int64_t>(p.zx + 128, 127 - p.zx);
  const int64_t bound = k * max_dx * max_dw + max_abs_bias;
  TORCH_CHECK(bound <= std::numeric_limits<int32_t>::max(), "lowbit.", op, ": the int32 accumulator could overflow: K = ",
              k, ", max |x - x_zero_point| = ", max_dx, ", max |w - weight_zero_point| = ", max_dw, ", max |bias| = ",
              max_abs_bias, " bound the sum by ", bound, " > 2^31 - 1");
  p.col_sums.assign(static_cast<size_t>(n + kernels::kGemmNr), 0);
  const int32_t* cs = col_sums.const_data_ptr<int32_t>();
  const int64_t cs_stride = col_sums.stride(0);
  for (int64_t i = 0; i < n; ++i) p.col_sums[i] = cs[i * cs_stride];
  // Fold the zero-point terms into one int32 per channel:
  //   Σ(x - zx)(w - zw) + b = Σ x·w - zw·Σx - zx·Σw + K·zx·zw + b
  p.folded.assign(static_cast<size_t>(n + kernels::kGemmNr), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = qbias != nullptr ? int64_t{qbias[i * bias_stride]} : 0;
    const int64_t v = b - p.zx * p.col_sums[i] + k * p.zx * p.wzp[i];
    p.folded[i] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v)));  // mod 2^32
  }
  p.asymmetric_w = std::any_of(p.wzp.begin(), p.wzp.begin() + n, [](int32_t v) { return v != 0; });
  return p;
}

// Where run_int8_linear_plan finds its activations and writes its codes, beyond the defaults of a
// plain [m, k] -> [m, ldo] linear layer.
struct PlanRunLayout {
  int64_t lda = 0;           // row stride of a (0: k)
  bool a_rows_padded = false;  // GemmInt8Args::a_rows_padded
  bool transposed = false;   // out[c·ldo + r] instead of out[r·ldo + c]
  int64_t image_rows = 0, image_stride = 0;  // GemmInt8Args::out_image_rows / out_image_stride
  int64_t out_row_offset = 0;  // GemmInt8Args::out_row_offset
};

// Runs output channels [c0, c0 + n) of the plan (packed: their panels) on m rows of activations
// a[m][k] (row stride layout.lda), writing codes to `out` as out[r·ldo + c] (or out[c·ldo + r]
// when transposed; with image_rows > 0, rows are pixels of images of image_rows rows each,
// image_stride codes apart: GemmInt8Args::out_image_rows). Inside a parallel region it runs on
// the calling thread (at::parallel_for does not nest).
void run_int8_linear_plan(const Int8LinearPlan& p, int64_t c0, int64_t n, const void* a, int64_t m,
                          const int8_t* packed, void* out, int64_t ldo, const PlanRunLayout& layout = {}) {
  if (m == 0 || n == 0) return;
  const int64_t lda = layout.lda > 0 ? layout.lda : p.k;
  const bool asymmetric_w = p.asymmetric_w && std::any_of(p.wzp.begin() + c0, p.wzp.begin() + c0 + n,
                                                          [](int32_t v) { return v != 0; });
  std::vector<int32_t> row_sums;
  if (asymmetric_w) {
    row_sums.assign(static_cast<size_t>(m), 0);
    const bool x_u8 = p.a_type == kernels::GemmAType::U8;
    at::parallel_for(0, m, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(p.k, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int32_t sum = 0;
        if (x_u8) {
          const uint8_t* row = static_cast<const uint8_t*>(a) + r * lda;
          for (int64_t i = 0; i < p.k; ++i) sum += row[i];
        } else {
          const int8_t* row = static_cast<const int8_t*>(a) + r * lda;
          for (int64_t i = 0; i < p.k; ++i) sum += row[i];
        }
        row_sums[r] = sum;
      }
    });
  }
  kernels::GemmInt8Args args;
  args.a = a;
  args.lda = lda;
  args.a_rows_padded = layout.a_rows_padded;
  args.packed = packed;
  args.col_sums = p.col_sums.data() + c0;
  args.m = m;
  args.n = n;
  args.k = p.k;
  args.out = out;
  args.ldo = ldo;
  args.out_transposed = layout.transposed;
  args.out_image_rows = layout.image_rows;
  args.out_image_stride = layout.image_stride;
  args.out_row_offset = layout.out_row_offset;
  args.out_type = p.out_u8 ? kernels::GemmOutType::U8 : kernels::GemmOutType::S8;
  args.rounding = p.mode;
  args.bias = p.folded.data() + c0;
  args.row_sums = asymmetric_w ? row_sums.data() : nullptr;
  args.w_zero_point = p.wzp.data() + c0;
  args.multiplier = p.mult.data() + c0;
  args.shift = p.shf.data() + c0;
  args.out_zero_point = static_cast<int32_t>(p.zo);
  args.qmin = static_cast<int32_t>(p.qmin);
  args.qmax = static_cast<int32_t>(p.qmax);
  const auto& table = kernels::gemm_int8_kernels();
  run_gemm(table, table.gemm[static_cast<int>(p.a_type)][static_cast<int>(kernels::GemmEpilogue::Rq)], args);
}

at::Tensor int8_linear_cpu(const at::Tensor& x, const at::Tensor& packed_weight, const at::Tensor& weight_col_sums,
                           const std::optional<at::Tensor>& bias, const at::Tensor& x_zero_point,
                           const at::Tensor& weight_zero_point, const at::Tensor& multiplier, const at::Tensor& shift,
                           const at::Tensor& out_zero_point, int64_t qmin, int64_t qmax, c10::string_view rounding) {
  constexpr const char* op = "int8_linear";
  GemmSetup s = gemm_setup(x, packed_weight, weight_col_sums, op, "x", /*pad_col_sums=*/false);
  if (bias.has_value()) check_same_device(x, "x", *bias, "bias", op);
  const Int8LinearPlan plan =
      make_int8_linear_plan(op, s.a_type, x.scalar_type(), s.n, s.k, weight_col_sums, bias, x_zero_point,
                            weight_zero_point, multiplier, shift, out_zero_point, qmin, qmax, rounding);
  at::Tensor out = at::empty(s.out_sizes, x.options().dtype(plan.out_u8 ? at::kByte : at::kChar));
  run_int8_linear_plan(plan, 0, s.n, s.a.data_ptr(), s.m, packed_weight.data_ptr<int8_t>(), out.data_ptr(), s.n);
  return out;
}

// ---- int8_conv2d ---------------------------------------------------------------------------------

std::tuple<at::Tensor, at::Tensor> int8_pack_conv_weight_cpu(const at::Tensor& weight, int64_t groups) {
  constexpr const char* op = "int8_pack_conv_weight";
  TORCH_CHECK(weight.scalar_type() == at::kChar, "lowbit.", op, ": weight must be an int8 tensor, got ",
              weight.scalar_type());
  TORCH_CHECK(weight.dim() == 4, "lowbit.", op, ": weight must be 4-D [out_channels, in_channels / groups, kH, kW], ",
              "got shape ", weight.sizes());
  TORCH_CHECK(groups >= 1 && weight.size(0) % groups == 0, "lowbit.", op, ": groups = ", groups,
              " must be >= 1 and divide out_channels = ", weight.size(0));
  const int64_t oc = weight.size(0), ocg = oc / groups, k = weight.size(1) * weight.size(2) * weight.size(3);
  // Reduction order (kh, kw, c): a patch row is kh·kw runs of C/groups contiguous channel codes,
  // which im2col copies whole from a channels-last view of the input.
  const at::Tensor w = weight.permute({0, 2, 3, 1}).contiguous().view({groups, ocg, k});
  const int64_t panels = kernels::gemm_num_panels(ocg);
  at::Tensor packed = at::empty({groups, panels, k, kernels::kGemmNr}, weight.options());
  at::Tensor col_sums = at::empty({oc}, weight.options().dtype(at::kInt));
  for (int64_t g = 0; g < groups; ++g) {
    kernels::gemm_int8_pack_weight(w[g].data_ptr<int8_t>(), ocg, k, packed[g].data_ptr<int8_t>(),
                                   col_sums.data_ptr<int32_t>() + g * ocg);
  }
  return {packed, col_sums};
}

// The geometry of an int8 convolution as the GEMM sees it (sizes in elements).
struct Im2colGeometry {
  int64_t channels, group_channels, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
  uint8_t pad_code;  // the input zero point: padding holds real 0
};

// Copies n bytes with a few overlapping fixed-size moves, inlined: the runs an im2col copies are
// short (3 bytes for a 3x3 tap row of one channel, 48 for 16 channels), where a library memcpy
// call costs more than the copy. Overlapping moves rewrite bytes they already wrote, never bytes
// outside [dst, dst + n).
inline void copy_run(uint8_t* dst, const uint8_t* src, int64_t n) {
  if (n >= 16) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 16);
    if (i < n) std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// n bytes of value v (a 16-byte pattern of v).
inline void fill_run(uint8_t* dst, const uint8_t (&pattern)[16], int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) std::memcpy(dst + i, pattern, 16);
  copy_run(dst + i, pattern, n - i);
}

// Images up to this size (padded, one group's channels) are gathered from a padded copy.
inline constexpr int64_t kPaddedImageBytes = int64_t{16} << 10;

// Pixel rows of fewer than 8 channels (a network's RGB stem): the channel count fixed at compile
// time, so each pixel is C byte moves without a loop.
template <int C>
void pixel_rows_few(const uint8_t* src, int64_t pixels, uint8_t* dst, int64_t ldc, int64_t run) {
  for (int64_t t = 0; t < run; ++t) {
    for (int ch = 0; ch < C; ++ch) dst[t * ldc + ch] = src[ch * pixels + t];
  }
}

// Pixel rows gathered from NCHW codes:
//   cols[(r - r0)·ldc + ch] = x[b][ch][p]   for rows r = b·pixels + p in [r0, r1), ch < c,
// then zero bytes up to ldc (a_rows_padded; none for a channels-last copy, ldc = c). The GEMM
// operand of a pointwise convolution, and the channels-last copy of the other convolutions'
// input. 8 channels and more: blocks of 8 pixels × 8 channels through transpose_8x8_bytes (the 8
// source rows of a block are `pixels` bytes apart, and the next block of pixels reuses their
// cache lines); 3 channels packed tightly: interleave_3_planes; other counts below 8: unrolled
// moves.
void nchw_pixel_rows(const uint8_t* x, int64_t c, int64_t pixels, uint8_t* cols, int64_t ldc, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1;) {
    const int64_t b = r / pixels, p = r % pixels, run = std::min(r1 - r, pixels - p);  // rows in image b
    const uint8_t* src = x + b * c * pixels + p;
    uint8_t* dst = cols + (r - r0) * ldc;
    if (c >= 8) {
      int64_t t = 0;
      for (; t + 8 <= run; t += 8) {
        int64_t ch = 0;
        for (; ch + 8 <= c; ch += 8) transpose_8x8_bytes(src + ch * pixels + t, pixels, dst + t * ldc + ch, ldc);
        for (; ch < c; ++ch) {
          for (int64_t i = t; i < t + 8; ++i) dst[i * ldc + ch] = src[ch * pixels + i];
        }
      }
      for (; t < run; ++t) {
        for (int64_t ch = 0; ch < c; ++ch) dst[t * ldc + ch] = src[ch * pixels + t];
      }
    } else if (c == 3 && ldc == 3) {
      interleave_3_planes(src, src + pixels, src + 2 * pixels, dst, run);
    } else {
      switch (c) {
        case 1: pixel_rows_few<1>(src, pixels, dst, ldc, run); break;
        case 2: pixel_rows_few<2>(src, pixels, dst, ldc, run); break;
        case 3: pixel_rows_few<3>(src, pixels, dst, ldc, run); break;
        case 4: pixel_rows_few<4>(src, pixels, dst, ldc, run); break;
        case 5: pixel_rows_few<5>(src, pixels, dst, ldc, run); break;
        case 6: pixel_rows_few<6>(src, pixels, dst, ldc, run); break;
        default: pixel_rows_few<7>(src, pixels, dst, ldc, run); break;
      }
    }
    if (ldc > c) {
      for (int64_t t = 0; t < run; ++t) std::memset(dst + t * ldc + c, 0, static_cast<size_t>(ldc - c));
    }
    r += run;
  }
}

// The channels-last copy of an NCHW batch of 1-byte codes (x itself when it already is one), made
// here rather than by Tensor::contiguous(ChannelsLast), whose generic strided loop took 9% of a
// 3-channel stem convolution: threads over pixel ranges, each gathered by nchw_pixel_rows.
at::Tensor channels_last_codes(const at::Tensor& x) {
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast)) return x;
  const at::Tensor xn = x.contiguous();
  at::Tensor out = at::empty_like(xn, at::MemoryFormat::ChannelsLast);
  const int64_t c = xn.size(1), pixels = xn.size(2) * xn.size(3), rows = xn.size(0) * pixels;
  const uint8_t* src = static_cast<const uint8_t*>(xn.const_data_ptr());
  uint8_t* dst = static_cast<uint8_t*>(out.data_ptr());
  if (rows == 0 || c == 0) return out;
  at::parallel_for(0, rows, std::max<int64_t>(8, kParallelGrain / c), [&](int64_t r0, int64_t r1) {
    nchw_pixel_rows(src, c, pixels, dst + r0 * c, c, r0, r1);
  });
  return out;
}

// Patch rows [r0, r1) of group g from a channels-last batch x[b][h][w][channels] (x_end: the end
// of its buffer); row r is output
// pixel r of the whole batch (image r / (oh·ow)), stored ldc bytes apart:
//   cols[(r - r0)·ldc + (i·kw + j)·cg + c] = x[b][y·sh - ph + i·dh][x·sw - pw + j·dw][g·cg + c],
// or pad_code outside the image (K = kh·kw·cg, int8_pack_conv_weight's order), then zero bytes up
// to ldc (>= K; GemmInt8Args::a_rows_padded). Each tap copies a run of cg bytes (u8 and s8 codes
// alike); with all channels in one group and no dilation, a tap row inside the image is one run of
// kw·cg bytes.
void im2col_rows(const Im2colGeometry& g, const uint8_t* x, const uint8_t* x_end, int64_t group, uint8_t* cols,
                 int64_t ldc, int64_t r0, int64_t r1) {
  const int64_t cg = g.group_channels, k = g.kh * g.kw * cg, pixels = g.oh * g.ow, row_run = g.kw * cg;
  const uint8_t* cols_end = cols + (r1 - r0) * ldc;
  const bool whole_rows = g.dw == 1 && cg == g.channels;
  uint8_t pad[16];
  std::memset(pad, g.pad_code, sizeof(pad));
  const uint8_t zeros[16] = {};
  // (b, y, xo) of row r, advanced by counting (a division per row costs more than a 1x1 patch).
  int64_t b = r0 / pixels, y = (r0 % pixels) / g.ow, xo = r0 % g.ow;
  // Small images: copy the group's channels of each image once into a padded buffer [hp][wp][cg]
  // filled with pad_code, so every patch is inside it: no bounds checks, and each tap row is one
  // run of kw·cg bytes (dilation 1). On an 8x8 image with padding 1, 28 of the 64 patches touch
  // the border, where the per-tap path below costs several times a whole interior patch.
  const int64_t hp = g.h + 2 * g.ph, wp = g.w + 2 * g.pw;
  if (hp * wp * cg <= kPaddedImageBytes) {
    std::vector<uint8_t> padded(static_cast<size_t>(hp * wp * cg + 16));
    int64_t padded_image = -1;
    for (int64_t r = r0; r < r1; ++r, ++xo) {
      if (xo == g.ow) {
        xo = 0;
        if (++y == g.oh) y = 0, ++b;
      }
      if (padded_image != b) {
        padded_image = b;
        std::memset(padded.data(), g.pad_code, padded.size());
        const uint8_t* image = x + b * g.h * g.w * g.channels + group * cg;
        for (int64_t yi = 0; yi < g.h; ++yi) {
          uint8_t* prow = padded.data() + ((yi + g.ph) * wp + g.pw) * cg;
          if (cg == g.channels) {
            std::memcpy(prow, image + yi * g.w * g.channels, static_cast<size_t>(g.w * cg));
          } else {
            for (int64_t xi = 0; xi < g.w; ++xi) copy_run(prow + xi * cg, image + (yi * g.w + xi) * g.channels, cg);
          }
        }
      }
      uint8_t* row = cols + (r - r0) * ldc;
      uint8_t* dst = row;
      for (int64_t i = 0; i < g.kh; ++i, dst += row_run) {
        const uint8_t* src = padded.data() + ((y * g.sh + i * g.dh) * wp + xo * g.sw) * cg;
        if (g.dw != 1) {
          for (int64_t j = 0; j < g.kw; ++j) copy_run(dst + j * cg, src + j * g.dw * cg, cg);
        } else if (row_run <= 16 && dst + 16 <= cols_end) {
          std::memcpy(dst, src, 16);  // the bytes past the run are rewritten afterwards (see below)
        } else {
          copy_run(dst, src, row_run);
        }
      }
      copy_run(row + k, zeros, ldc - k);
    }
    return;
  }
  // Output row by output row: the tap rows' addresses and whether all of them lie inside the image
  // are worked out once per row, and the patches whose columns lie inside too (all but a border
  // column or two) are kh moves of a whole tap row each.
  const int64_t x_lo = g.pw == 0 ? 0 : (g.pw + g.sw - 1) / g.sw;  // first output column inside
  const int64_t x_span = (g.kw - 1) * g.dw;
  std::vector<const uint8_t*> tap_rows(static_cast<size_t>(g.kh));
  for (int64_t r = r0; r < r1;) {
    if (xo == g.ow) {
      xo = 0;
      if (++y == g.oh) y = 0, ++b;
    }
    const int64_t run = std::min(r1 - r, g.ow - xo);
    const uint8_t* image = x + b * g.h * g.w * g.channels + group * cg;
    bool rows_inside = true;
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t yi = y * g.sh - g.ph + i * g.dh;
      const bool inside = yi >= 0 && yi < g.h;
      rows_inside = rows_inside && inside;
      tap_rows[i] = inside ? image + yi * g.w * g.channels : nullptr;
    }
    for (int64_t t = 0; t < run; ++t) {
      const int64_t xc = xo + t;
      uint8_t* row = cols + (r + t - r0) * ldc;
      uint8_t* dst = row;
      const int64_t x0 = xc * g.sw - g.pw;
      const bool columns_inside = xc >= x_lo && x0 + x_span < g.w;
      if (whole_rows && rows_inside && columns_inside && row_run <= 16) {
        // One 16-byte move per tap row: the bytes past the run land where the next run (or the
        // zero padding below, or the next row) is written afterwards; the last rows of the
        // buffer and of the input take the exact-length copy.
        for (int64_t i = 0; i < g.kh; ++i, dst += row_run) {
          const uint8_t* src = tap_rows[i] + x0 * g.channels;
          if (src + 16 <= x_end && dst + 16 <= cols_end) {
            std::memcpy(dst, src, 16);
          } else {
            copy_run(dst, src, row_run);
          }
        }
        copy_run(row + k, zeros, ldc - k);
        continue;
      }
      for (int64_t i = 0; i < g.kh; ++i, dst += row_run) {
        const uint8_t* src_row = tap_rows[i];
        if (src_row == nullptr) {
          fill_run(dst, pad, row_run);
          continue;
        }
        if (whole_rows && columns_inside) {
          copy_run(dst, src_row + x0 * g.channels, row_run);
          continue;
        }
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t xi = x0 + j * g.dw;
          if (xi < 0 || xi >= g.w) {
            fill_run(dst + j * cg, pad, cg);
          } else if (cg == 1) {
            dst[j] = src_row[xi * g.channels];
          } else {
            copy_run(dst + j * cg, src_row + xi * g.channels, cg);
          }
        }
      }
      copy_run(row + k, zeros, ldc - k);
    }
    r += run;
    xo += run;
  }
}

// Depthwise convolution (one input channel per group, fewer than kGemmNr output channels per
// group), computed directly on the NCHW planes: a GEMM over patches of cg = 1 channel would be
// K = kh·kw deep with ocg of the 16 columns of its panel used, one tiny GEMM per group (with 16 or
// more channels per group the GEMM is faster). Output
// channel o (group g = o / ocg) of image b accumulates, per output pixel,
//   acc = bias[o] + Σ_taps (w[o][tap] - zw[o])·(x[b][g][tap pixel] - zx)
// skipping taps in the padding (they hold x = zx). Every partial sum is bounded by the
// accumulator bound make_int8_linear_plan checks, so this exact sum is the int32 the GEMM's
// wrapping folded form produces; the plane is then requantized by the requantize run kernel,
// which like the GEMM epilogue equals requantize_one bit for bit.
template <typename Code>
void depthwise_conv_direct(const Int8LinearPlan& plan, const Code* x, const int8_t* packed_groups,
                           int64_t group_packed_bytes, const int32_t* bias, int64_t bias_stride,
                           const Im2colGeometry& geo, int64_t batch, int64_t ocg, void* out) {
  const int64_t oc = geo.channels * ocg, pixels = geo.oh * geo.ow, taps = geo.kh * geo.kw;
  const auto run = kernels::requant_kernels()
                       .run[static_cast<int>(plan.mode)][static_cast<int>(plan.out_u8 ? kernels::CodeType::U8
                                                                                        : kernels::CodeType::I8)];
  const int16_t zx16 = static_cast<int16_t>(plan.zx);
  const RequantParams base{0, 0, static_cast<int32_t>(plan.zo), static_cast<int32_t>(plan.qmin),
                           static_cast<int32_t>(plan.qmax)};
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(pixels * taps, 1));
  // Stride 1: the input plane goes once into a zero-padded int16 copy of x - zx, row pitch wp, so
  // every tap is one flat, branch-free loop over oh·wp "wide" outputs (the wp - ow columns past
  // each row's end are computed and dropped): long vector loops instead of one short loop per
  // tap and row, which on small planes cost more to set up than to run. The tap sums run on the
  // dispatched dwconv kernel (dwconv_s16.h; AVX2: two taps per vpmaddwd).
  // uint8 codes skip the int16 copy: the plane is copied as bytes, padded with zx itself, and the
  // zero point is folded into the accumulators' start value (dwconv_s16.h, DwconvU8TapSumsFn).
  const bool flat = geo.sh == 1 && geo.sw == 1;
  constexpr bool kU8 = std::is_same_v<Code, uint8_t>;
  const kernels::DwconvTapSumsFn tap_sums = kernels::dwconv_kernels().tap_sums;
  const kernels::DwconvU8TapSumsFn u8_tap_sums = kernels::dwconv_kernels().u8_tap_sums;
  const int64_t hp = geo.h + 2 * geo.ph, wp = geo.w + 2 * geo.pw;
  const int64_t xpad_size = flat ? hp * wp + (geo.kw - 1) * geo.dw : 0;
  at::parallel_for(0, batch * oc, grain, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> acc(static_cast<size_t>(flat ? geo.oh * wp : pixels));
    std::vector<int16_t> wt(static_cast<size_t>(taps));
    std::vector<int16_t> xpad(static_cast<size_t>(kU8 ? 0 : xpad_size), 0);
    std::vector<uint8_t> xpad_u8(static_cast<size_t>(kU8 ? xpad_size : 0), static_cast<uint8_t>(plan.zx));
    std::vector<const int16_t*> tap_src(static_cast<size_t>(taps));
    std::vector<const uint8_t*> tap_src_u8(static_cast<size_t>(taps));
    std::vector<int16_t> tap_w(static_cast<size_t>(taps));
    int64_t xpad_plane = -1;  // the input plane b·C + g that xpad holds
    // The taps with a nonzero weight (of wt): their sources in the padded plane `base`, shifted to
    // each tap, into src, and their weights into tap_w; returns how many.
    auto live_taps = [&](const auto* base, auto* src) {
      int64_t live = 0;
      for (int64_t i = 0; i < geo.kh; ++i) {
        for (int64_t jj = 0; jj < geo.kw; ++jj) {
          const int16_t wv = wt[i * geo.kw + jj];
          if (wv == 0) continue;
          src[live] = base + i * geo.dh * wp + jj * geo.dw;
          tap_w[live++] = wv;
        }
      }
      return live;
    };
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t b = plane / oc, o = plane % oc, g = o / ocg, j = o % ocg;
      const int8_t* panel = packed_groups + g * group_packed_bytes + (j / kernels::kGemmNr) * kernels::gemm_panel_bytes(taps);
      for (int64_t t = 0; t < taps; ++t) {
        wt[t] = static_cast<int16_t>(panel[kernels::gemm_panel_offset(taps, j % kernels::kGemmNr, t)] - plan.wzp[o]);
      }
      const int32_t bias_o = bias != nullptr ? bias[o * bias_stride] : 0;
      const Code* xs = x + (b * geo.channels + g) * geo.h * geo.w;
      if (flat && kU8) {
        if (xpad_plane != b * geo.channels + g) {
          xpad_plane = b * geo.channels + g;
          for (int64_t y = 0; y < geo.h; ++y) {
            std::memcpy(xpad_u8.data() + (y + geo.ph) * wp + geo.pw, xs + y * geo.w, static_cast<size_t>(geo.w));
          }
        }
        const int64_t live = live_taps(xpad_u8.data(), tap_src_u8.data());
        const int32_t weight_sum = std::accumulate(tap_w.begin(), tap_w.begin() + live, int32_t{0});
        // bias - zx·Σw, wrapping like the sums that follow (exact once they are added).
        const int32_t init = static_cast<int32_t>(static_cast<uint32_t>(bias_o) -
                                                  static_cast<uint32_t>(static_cast<int32_t>(plan.zx) * weight_sum));
        u8_tap_sums(acc.data(), geo.oh * wp, tap_src_u8.data(), tap_w.data(), live, init);
      } else {
        std::fill(acc.begin(), acc.end(), bias_o);
      }
      if (flat && !kU8) {
        if (xpad_plane != b * geo.channels + g) {
          xpad_plane = b * geo.channels + g;
          for (int64_t y = 0; y < geo.h; ++y) {
            int16_t* dst = xpad.data() + (y + geo.ph) * wp + geo.pw;
            for (int64_t xi = 0; xi < geo.w; ++xi) dst[xi] = static_cast<int16_t>(xs[y * geo.w + xi] - zx16);
          }
        }
        const int64_t live = live_taps(xpad.data(), tap_src.data());
        tap_sums(acc.data(), geo.oh * wp, tap_src.data(), tap_w.data(), live);
      }
      for (int64_t i = 0; !flat && i < geo.kh; ++i) {
        for (int64_t jj = 0; jj < geo.kw; ++jj) {
          // w - zw and x - zx lie in [-255, 255]: int16 operands of an exact int32 product, which
          // compilers vectorize as a widening 16-bit multiply (no emulated 32-bit one).
          const int16_t wv = wt[i * geo.kw + jj];
          if (wv == 0) continue;
          // Output columns whose tap column xo·sw - pw + jj·dw lies inside [0, w).
          const int64_t off = jj * geo.dw - geo.pw;
          const int64_t x_lo = off >= 0 ? 0 : (-off + geo.sw - 1) / geo.sw;
          const int64_t x_hi = std::min<int64_t>(geo.ow, off >= geo.w ? 0 : (geo.w - 1 - off) / geo.sw + 1);
          if (x_lo >= x_hi) continue;
          for (int64_t y = 0; y < geo.oh; ++y) {
            const int64_t yi = y * geo.sh - geo.ph + i * geo.dh;
            if (yi < 0 || yi >= geo.h) continue;
            const Code* row = xs + yi * geo.w;
            int32_t* a = acc.data() + y * geo.ow;
            if (geo.sw == 1) {
              for (int64_t xo = x_lo; xo < x_hi; ++xo) {
                a[xo] += int32_t{wv} * int32_t{static_cast<int16_t>(row[xo + off] - zx16)};
              }
            } else {
              for (int64_t xo = x_lo; xo < x_hi; ++xo) {
                a[xo] += int32_t{wv} * int32_t{static_cast<int16_t>(row[xo * geo.sw + off] - zx16)};
              }
            }
          }
        }
      }
      RequantParams p = base;
      p.multiplier = plan.mult[o];
      p.shift = plan.shf[o];
      uint8_t* const out_plane = static_cast<uint8_t*>(out) + plane * pixels;
      if (flat) {  // row by row, dropping each wide row's wp - ow extra columns
        for (int64_t y = 0; y < geo.oh; ++y) run(acc.data() + y * wp, out_plane + y * geo.ow, geo.ow, p);
      } else {
        run(acc.data(), out_plane, pixels, p);
      }
    }
  });
}

// A 2-D window argument (kernel_size, stride, padding, dilation) of op: two elements, each >= lo.
std::array<int64_t, 2> checked_pair(const char* op, at::IntArrayRef v, const char* name, int64_t lo) {
  TORCH_CHECK(v.size() == 2, "lowbit.", op, ": ", name, " must have 2 elements, got ", v);
  TORCH_CHECK(v[0] >= lo && v[1] >= lo, "lowbit.", op, ": ", name, " must be >= ", lo, ", got ", v);
  return {v[0], v[1]};
}

int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

at::Tensor int8_conv2d_cpu(const at::Tensor& x, const at::Tensor& packed_weight, const at::Tensor& weight_col_sums,
                           const std::optional<at::Tensor>& bias, const at::Tensor& x_zero_point,
                           const at::Tensor& weight_zero_point, const at::Tensor& multiplier, const at::Tensor& shift,
                           const at::Tensor& out_zero_point, int64_t qmin, int64_t qmax, at::IntArrayRef kernel_size,
                           at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                           c10::string_view rounding) {
  constexpr const char* op = "int8_conv2d";
  TORCH_CHECK(x.scalar_type() == at::kByte || x.scalar_type() == at::kChar, "lowbit.", op,
              ": x must be uint8 or int8 activation codes, got ", x.scalar_type());
  TORCH_CHECK(x.dim() == 4, "lowbit.", op, ": x must be 4-D NCHW, got shape ", x.sizes());
  const auto ks = checked_pair(op, kernel_size, "kernel_size", 1), st = checked_pair(op, stride, "stride", 1),
             pd = checked_pair(op, padding, "padding", 0), dl = checked_pair(op, dilation, "dilation", 1);
  check_same_device(x, "x", packed_weight, "packed_weight", op);
  check_same_device(x, "x", weight_col_sums, "weight_col_sums", op);
  TORCH_CHECK(weight_col_sums.scalar_type() == at::kInt && weight_col_sums.dim() == 1, "lowbit.", op,
              ": weight_col_sums must be the 1-D int32 tensor int8_pack_conv_weight returns, got ",
              weight_col_sums.scalar_type(), " of shape ", weight_col_sums.sizes());
  const int64_t batch = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), oc = weight_col_sums.size(0);
  TORCH_CHECK(groups >= 1 && c % groups == 0 && oc % groups == 0, "lowbit.", op, ": groups = ", groups,
              " must divide in_channels = ", c, " and out_channels = ", oc);
  const int64_t cg = c / groups, ocg = oc / groups, k = cg * ks[0] * ks[1];
  TORCH_CHECK(packed_weight.scalar_type() == at::kChar && packed_weight.is_contiguous(), "lowbit.", op,
              ": packed_weight must be the contiguous int8 tensor int8_pack_conv_weight returns");
  const std::vector<int64_t> want = {groups, kernels::gemm_num_panels(ocg), k, kernels::kGemmNr};
  TORCH_CHECK(packed_weight.sizes().vec() == want, "lowbit.", op, ": packed_weight has shape ", packed_weight.sizes(),
              " but ", oc, " output channels, ", cg, " input channels per group, kernel ", kernel_size, " and groups = ",
              groups, " pack to ", at::IntArrayRef(want));
  const kernels::GemmAType a_type = x.scalar_type() == at::kByte ? kernels::GemmAType::U8 : kernels::GemmAType::S8;
  const int64_t max_k = a_type == kernels::GemmAType::U8 ? kernels::kGemmMaxKU8 : kernels::kGemmMaxKS8;
  TORCH_CHECK(k <= max_k, "lowbit.", op, ": in_channels / groups · kH · kW = ", k,
              " is too large for exact int32 accumulation (at most ", max_k, ")");
  const int64_t oh = conv_out_size(h, ks[0], st[0], pd[0], dl[0]), ow = conv_out_size(w, ks[1], st[1], pd[1], dl[1]);
  TORCH_CHECK(oh >= 1 && ow >= 1, "lowbit.", op, ": the output would be empty: input ", h, "x", w, ", kernel ",
              kernel_size, ", stride ", stride, ", padding ", padding, ", dilation ", dilation);
  if (bias.has_value()) {
    check_same_device(x, "x", *bias, "bias", op);
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == oc, "lowbit.", op, ": bias must have shape [", oc, "], got ",
                bias->sizes());
  }
  // One plan over all output channels; group g runs on channels [g·ocg, (g + 1)·ocg).
  const Int8LinearPlan plan = make_int8_linear_plan(op, a_type, x.scalar_type(), oc, k, weight_col_sums, bias,
                                                    x_zero_point, weight_zero_point, multiplier, shift,
                                                    out_zero_point, qmin, qmax, rounding);
  // A patch row is kh·kw runs of channel codes of a channels-last view of x (a copy when x is
  // NCHW-contiguous; a pointwise convolution over many rows gathers its rows from NCHW instead).
  // The GEMM runs over the output pixels of several images at once and its epilogue writes each
  // image's codes channel-major: NCHW out, no per-image calls, no transpose pass.
  at::Tensor out = at::empty({batch, oc, oh, ow}, x.options().dtype(plan.out_u8 ? at::kByte : at::kChar));
  const Im2colGeometry geo{c,     cg,    h,     w,     oh,    ow,    ks[0], ks[1],
                           st[0], st[1], pd[0], pd[1], dl[0], dl[1], static_cast<uint8_t>(plan.zx)};
  uint8_t* op_out = static_cast<uint8_t*>(out.data_ptr());
  const int8_t* packed_groups = packed_weight.const_data_ptr<int8_t>();
  const int64_t group_packed_bytes = kernels::gemm_num_panels(ocg) * k * kernels::kGemmNr;
  const int64_t pixels = oh * ow, rows = batch * pixels;
  if (cg == 1 && ocg < kernels::kGemmNr) {  // depthwise: GEMM panels would be mostly padding
    const at::Tensor xn = x.contiguous();
    const int32_t* bp = bias.has_value() ? bias->const_data_ptr<int32_t>() : nullptr;
    const int64_t bs = bias.has_value() ? bias->stride(0) : 0;
    if (a_type == kernels::GemmAType::U8) {
      depthwise_conv_direct(plan, xn.const_data_ptr<uint8_t>(), packed_groups, group_packed_bytes, bp, bs, geo, batch,
                            ocg, op_out);
    } else {
      depthwise_conv_direct(plan, xn.const_data_ptr<int8_t>(), packed_groups, group_packed_bytes, bp, bs, geo, batch,
                            ocg, op_out);
    }
    return out;
  }
  // Every GEMM below writes NCHW codes (channel-major runs of pixels, image by image) from rows of
  // lda bytes; rows [row_offset, ...) of the batch's pixels when it runs on a chunk of them.
  auto nchw_layout = [&](int64_t lda, bool rows_padded, int64_t row_offset) {
    PlanRunLayout layout;
    layout.lda = lda;
    layout.a_rows_padded = rows_padded;
    layout.transposed = true;
    layout.image_rows = pixels;
    layout.image_stride = oc * pixels;
    layout.out_row_offset = row_offset;
    return layout;
  };
  // Rows padded with zero bytes to whole quads, so the GEMM needs no tail step for K % 4.
  const int64_t ldc = kernels::gemm_num_quads(k) * kernels::kGemmKc;
  const int64_t threads = at::get_num_threads();
  // Enough rows for every thread: tasks of (chunk of rows, group), each gathering its rows (about
  // kChunkBytes, L2-resident) with gather(g, cols, r0, r1) and running its GEMM on them right away,
  // instead of one pass writing all rows to memory and another reading them back. A chunk of fewer
  // than kMinChunkRows rows would spend too much on widening the weight panels again per chunk.
  constexpr int64_t kChunkBytes = int64_t{64} << 10, kMinChunkRows = 64;
  const bool chunked = rows >= kMinChunkRows * threads;
  auto run_chunks = [&](const auto& gather) {
    const int64_t target_rows = std::max<int64_t>(kMinChunkRows, kChunkBytes / ldc);
    int64_t chunks = (rows + target_rows - 1) / target_rows;
    if (threads > 1 && groups == 1) chunks = (std::max(chunks, threads) + threads - 1) / threads * threads;
    const int64_t chunk_rows = (rows + chunks - 1) / chunks;
    chunks = (rows + chunk_rows - 1) / chunk_rows;
    at::parallel_for(0, chunks * groups, 1, [&](int64_t tb, int64_t te) {
      std::vector<uint8_t> cols(static_cast<size_t>(chunk_rows * ldc));
      for (int64_t t = tb; t < te; ++t) {
        const int64_t g = t % groups, r0 = (t / groups) * chunk_rows, r1 = std::min(rows, r0 + chunk_rows);
        gather(g, cols.data(), r0, r1);
        run_int8_linear_plan(plan, g * ocg, ocg, cols.data(), r1 - r0, packed_groups + g * group_packed_bytes,
                             op_out + g * ocg * pixels, pixels, nchw_layout(ldc, true, r0));
      }
    });
  };
  const bool pointwise = ks[0] == 1 && ks[1] == 1 && st[0] == 1 && st[1] == 1 && pd[0] == 0 && pd[1] == 0 &&
                         groups == 1;
  if (pointwise && chunked) {
    // Each chunk transposes its pixels out of the NCHW input itself: no channels-last copy of the
    // whole input (for 8x256x56x56 that copy alone took 5.1 of 26.5 ms on one thread).
    const at::Tensor xn = x.contiguous();
    const uint8_t* xnp = static_cast<const uint8_t*>(xn.data_ptr());  // u8 and s8 codes are one byte
    run_chunks([&](int64_t, uint8_t* cols, int64_t r0, int64_t r1) { nchw_pixel_rows(xnp, c, pixels, cols, ldc, r0, r1); });
    return out;
  }
  const at::Tensor xc = channels_last_codes(x);
  const uint8_t* xp = static_cast<const uint8_t*>(xc.data_ptr());  // u8 and s8 codes are one byte
  const uint8_t* xp_end = xp + xc.numel();
  // A pointwise convolution over few rows: the channels-last input is already the GEMM's
  // [pixels, C] operand, so it runs as int8_linear does (run_gemm splits it over the threads).
  if (pointwise) {
    run_int8_linear_plan(plan, 0, oc, xp, rows, packed_groups, op_out, pixels, nchw_layout(c, false, 0));
    return out;
  }
  if (chunked) {
    run_chunks([&](int64_t g, uint8_t* cols, int64_t r0, int64_t r1) { im2col_rows(geo, xp, xp_end, g, cols, ldc, r0, r1); });
    return out;
  }
  // Few rows (a small batch of small images): one GEMM over all rows per group, which run_gemm
  // splits over the threads (by panels when there are many), or, for many small groups, the groups
  // themselves go to the threads, each with its own patch buffer. Groups write disjoint output
  // channels; the arithmetic per output is the same either way.
  const PlanRunLayout layout = nchw_layout(ldc, true, 0);
  auto run_group = [&](int64_t g, uint8_t* cols, bool parallel_im2col) {
    if (parallel_im2col) {
      at::parallel_for(0, rows, std::max<int64_t>(1, kParallelGrain / ldc),
                       [&](int64_t b0, int64_t b1) { im2col_rows(geo, xp, xp_end, g, cols + b0 * ldc, ldc, b0, b1); });
    } else {
      im2col_rows(geo, xp, xp_end, g, cols, ldc, 0, rows);
    }
    run_int8_linear_plan(plan, g * ocg, ocg, cols, rows, packed_groups + g * group_packed_bytes,
                         op_out + g * ocg * pixels, pixels, layout);
  };
  const int64_t group_work = rows * k * kernels::gemm_num_panels(ocg) * kernels::kGemmNr;
  if (groups > 1 && group_work < (int64_t{1} << 18) && threads > 1) {
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(group_work, 1));
    at::parallel_for(0, groups, grain, [&](int64_t gb, int64_t ge) {
      std::vector<uint8_t> cols(static_cast<size_t>(rows * ldc));
      for (int64_t g = gb; g < ge; ++g) run_group(g, cols.data(), false);
    });
    return out;
  }
  std::vector<uint8_t> cols(static_cast<size_t>(rows * ldc));
  for (int64_t g = 0; g < groups; ++g) run_group(g, cols.data(), true);
  return out;
}

// ---- int8_max_pool2d ---------------------------------------------------------------------------

// torch's pooling_output_shape: floor (or ceil) division, and with ceil_mode the last window must
// start inside the input or its left padding.
int64_t pool_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

struct PoolGeometry {
  int64_t h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t x_lo, x_hi;  // output columns whose every tap column lies inside [0, w)
};

// Max over each window of one plane; taps in the padding are skipped (torch pads with -inf).
// Starting from the dtype's lowest code gives exactly the max of the window's elements, and for a
// window with none (all its dilated taps in the padding) the lowest code, as torch's integer
// max_pool2d returns. KW > 0
// fixes the kernel width at compile time for the interior columns (dilation 1), so their loop
// vectorizes; KW = 0 is any width and dilation.
template <typename T, int KW>
void max_pool_plane(const T* in, T* out, const PoolGeometry& g) {
  constexpr T lowest = std::numeric_limits<T>::lowest();
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    T* o = out + oy * g.ow;
    std::fill(o, o + g.ow, lowest);
    for (int64_t i = 0; i < g.kh; ++i) {
      const int64_t yi = oy * g.sh - g.ph + i * g.dh;
      if (yi < 0 || yi >= g.h) continue;
      const T* row = in + yi * g.w;
      auto checked = [&](int64_t ox) {
        T m = o[ox];
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t xi = ox * g.sw - g.pw + j * g.dw;
          if (xi >= 0 && xi < g.w) m = std::max(m, row[xi]);
        }
        o[ox] = m;
      };
      for (int64_t ox = 0; ox < g.x_lo; ++ox) checked(ox);
      if constexpr (KW > 0) {
        const T* base = row - g.pw;
        const int64_t sw = g.sw;
        for (int64_t ox = g.x_lo; ox < g.x_hi; ++ox) {
          T m = o[ox];
          for (int j = 0; j < KW; ++j) m = std::max(m, base[ox * sw + j]);
          o[ox] = m;
        }
      } else {
        for (int64_t ox = g.x_lo; ox < g.x_hi; ++ox) {
          const T* p = row + ox * g.sw - g.pw;
          T m = o[ox];
          for (int64_t j = 0; j < g.kw; ++j) m = std::max(m, p[j * g.dw]);
          o[ox] = m;
        }
      }
      for (int64_t ox = std::max(g.x_hi, g.x_lo); ox < g.ow; ++ox) checked(ox);
    }
  }
}

template <typename T>
void max_pool_planes(const T* in, T* out, int64_t planes, const PoolGeometry& g) {
  auto run = [&](auto fn) {
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(g.h * g.w, 1));
    at::parallel_for(0, planes, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) fn(in + p * g.h * g.w, out + p * g.oh * g.ow, g);
    });
  };
  if (g.dw == 1 && g.kw == 2) return run(&max_pool_plane<T, 2>);
  if (g.dw == 1 && g.kw == 3) return run(&max_pool_plane<T, 3>);
  run(&max_pool_plane<T, 0>);
}

at::Tensor int8_max_pool2d_cpu(const at::Tensor& x, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
  constexpr const char* op = "int8_max_pool2d";
  TORCH_CHECK(x.scalar_type() == at::kByte || x.scalar_type() == at::kChar, "lowbit.", op,
              ": x must be uint8 or int8 codes, got ", x.scalar_type());
  TORCH_CHECK(x.dim() == 3 || x.dim() == 4, "lowbit.", op, ": x must be 4-D NCHW or 3-D CHW, got shape ", x.sizes());
  for (int64_t d = x.dim() - 3; d < x.dim(); ++d) {
    TORCH_CHECK(x.size(d) > 0, "lowbit.", op, ": x must have non-empty channel and spatial dimensions, got shape ",
                x.sizes());
  }
  const auto ks = checked_pair(op, kernel_size, "kernel_size", 1);
  const auto st = stride.empty() ? ks : checked_pair(op, stride, "stride", 1);
  const auto pd = checked_pair(op, padding, "padding", 0), dl = checked_pair(op, dilation, "dilation", 1);
  TORCH_CHECK(pd[0] <= ks[0] / 2 && pd[1] <= ks[1] / 2, "lowbit.", op, ": padding must be at most half of kernel_size, got padding ",
              padding, " and kernel_size ", kernel_size);
  const int64_t h = x.size(-2), w = x.size(-1);
  const int64_t oh = pool_out_size(h, ks[0], st[0], pd[0], dl[0], ceil_mode);
  const int64_t ow = pool_out_size(w, ks[1], st[1], pd[1], dl[1], ceil_mode);
  TORCH_CHECK(oh >= 1 && ow >= 1, "lowbit.", op, ": the output would be empty: input ", h, "x", w, ", kernel_size ",
              kernel_size, ", stride ", at::IntArrayRef(st), ", padding ", padding, ", dilation ", dilation,
              ", ceil_mode ", ceil_mode, " give ", oh, "x", ow);
  std::vector<int64_t> out_sizes = x.sizes().vec();
  out_sizes[x.dim() - 2] = oh;
  out_sizes[x.dim() - 1] = ow;
  at::Tensor out = at::empty(out_sizes, x.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t planes = x.numel() / (h * w);
  if (planes == 0) return out;
  PoolGeometry g{h, w, oh, ow, ks[0], ks[1], st[0], st[1], pd[0], pd[1], dl[0], dl[1], 0, 0};
  // Interior columns: ox·sw - pw >= 0 and ox·sw - pw + (kw - 1)·dw < w.
  g.x_lo = std::min<int64_t>(ow, (pd[1] + st[1] - 1) / st[1]);
  const int64_t last = w - 1 + pd[1] - (ks[1] - 1) * dl[1];  // largest ox·sw still inside
  g.x_hi = last < 0 ? g.x_lo : std::max(g.x_lo, std::min<int64_t>(ow, last / st[1] + 1));
  const at::Tensor xc = x.contiguous();
  if (x.scalar_type() == at::kByte) {
    max_pool_planes(xc.const_data_ptr<uint8_t>(), out.data_ptr<uint8_t>(), planes, g);
  } else {
    max_pool_planes(xc.const_data_ptr<int8_t>(), out.data_ptr<int8_t>(), planes, g);
  }
  return out;
}

// ---- int8_add -----------------------------------------------------------------------------------

std::array<int32_t, 3> three_int32(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kInt && t.numel() == 3, "lowbit.", op, ": ", name,
              " must be an int32 tensor of 3 elements (a, b, out), got ", t.scalar_type(), " of shape ", t.sizes());
  const at::Tensor c = t.contiguous();
  const int32_t* p = c.data_ptr<int32_t>();
  return {p[0], p[1], p[2]};
}

at::Tensor int8_add_cpu(const at::Tensor& a, const at::Tensor& b, const at::Tensor& zero_points,
                        const at::Tensor& multipliers, const at::Tensor& shifts, int64_t qmin, int64_t qmax,
                        int64_t left_shift, c10::string_view rounding) {
  constexpr const char* op = "int8_add";
  const RequantRounding mode = parse_requant_rounding(rounding, op);
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && (a.scalar_type() == at::kByte || a.scalar_type() == at::kChar),
              "lowbit.", op, ": a and b must both be uint8 or both int8 codes, got ", a.scalar_type(), " and ",
              b.scalar_type());
  check_same_device(a, "a", b, "b", op);
  TORCH_CHECK(qmin < qmax, "lowbit.", op, ": qmin must be < qmax, got qmin=", qmin, ", qmax=", qmax);
  const bool out_u8 = qmin >= 0 && qmax <= 255;
  TORCH_CHECK(out_u8 || (qmin >= -128 && qmax <= 127), "lowbit.", op, ": (qmin, qmax)=(", qmin, ", ", qmax,
              ") must fit uint8 [0, 255] or int8 [-128, 127]");
  TORCH_CHECK(left_shift >= 0 && left_shift <= 22, "lowbit.", op, ": left_shift must be in [0, 22], got ", left_shift);
  const auto zp = three_int32(zero_points, op, "zero_points");
  const auto mult = three_int32(multipliers, op, "multipliers");
  const auto shf = three_int32(shifts, op, "shifts");
  const bool in_signed = a.scalar_type() == at::kChar;
  const int lo_in = in_signed ? -128 : 0, hi_in = in_signed ? 127 : 255;
  for (int i = 0; i < 2; ++i) {
    TORCH_CHECK(zp[i] >= lo_in && zp[i] <= hi_in, "lowbit.", op, ": zero_points[", i, "] = ", zp[i],
                " is outside the range of the inputs' dtype ", a.scalar_type());
    TORCH_CHECK(shf[i] >= -31 && shf[i] <= 0, "lowbit.", op, ": shifts[", i, "] = ", shf[i],
                " must be in [-31, 0] (input multipliers are below 1, as int8_add_params makes them)");
    TORCH_CHECK(mult[i] >= 0, "lowbit.", op, ": multipliers[", i, "] = ", mult[i], " must be >= 0");
  }
  TORCH_CHECK(zp[2] >= qmin && zp[2] <= qmax, "lowbit.", op, ": zero_points[2] = ", zp[2],
              " (the output's) is outside [qmin, qmax] = [", qmin, ", ", qmax, "]");
  TORCH_CHECK(shf[2] >= -31 && shf[2] <= max_requant_shift(mode), "lowbit.", op, ": shifts[2] = ", shf[2],
              " is outside [-31, ", max_requant_shift(mode), "]");
  const std::vector<int64_t> shape = at::infer_size(a.sizes(), b.sizes());
  const at::Tensor ac = a.expand(shape).contiguous(), bc = b.expand(shape).contiguous();
  at::Tensor out = at::empty(shape, a.options().dtype(out_u8 ? at::kByte : at::kChar));
  const QuantizedAddParams p{zp[0], zp[1], mult[0], shf[0], mult[1], shf[1], mult[2], shf[2], zp[2],
                             static_cast<int32_t>(qmin), static_cast<int32_t>(qmax), static_cast<int32_t>(left_shift)};
  const auto fn = kernels::requant_kernels().add[static_cast<int>(mode)][in_signed ? 1 : 0][out_u8 ? 0 : 1];
  const char* ap = static_cast<const char*>(ac.data_ptr());
  const char* bp = static_cast<const char*>(bc.data_ptr());
  char* op_ = static_cast<char*>(out.data_ptr());
  at::parallel_for(0, out.numel(), kParallelGrain, [&](int64_t begin, int64_t end) {
    fn(ap + begin, bp + begin, op_ + begin, end - begin, p);
  });
  return out;
}

// ---- int4 weight-only linear ------------------------------------------------------------------

at::Tensor int4_pack_weight_cpu(const at::Tensor& codes) {
  constexpr const char* op = "int4_pack_weight";
  TORCH_CHECK(!codes.is_floating_point() && !codes.is_complex() && codes.scalar_type() != at::kBool, "lowbit.", op,
              ": codes must be an integer tensor of 4-bit codes in [0, 15], got ", codes.scalar_type());
  TORCH_CHECK(codes.dim() == 2, "lowbit.", op, ": codes must be 2-D [out_features, in_features], got shape ",
              codes.sizes());
  const int64_t n = codes.size(0), k = codes.size(1);
  TORCH_CHECK(k % kernels::kInt4Kb == 0, "lowbit.", op, ": in_features must be a multiple of 8, got ", k);
  const at::Tensor c = codes.to(at::kLong).contiguous();
  const int64_t* cp = c.data_ptr<int64_t>();
  for (int64_t i = 0; i < c.numel(); ++i) {
    TORCH_CHECK(cp[i] >= 0 && cp[i] <= 15, "lowbit.", op, ": codes[", i / std::max<int64_t>(k, 1), "][",
                i % std::max<int64_t>(k, 1), "] = ", cp[i], " is outside [0, 15]");
  }
  const at::Tensor c8 = c.to(at::kByte);
  at::Tensor packed = at::empty({(n + kernels::kInt4Nr - 1) / kernels::kInt4Nr, k / kernels::kInt4Kb, kernels::kInt4Nr},
                                codes.options().dtype(at::kInt));
  kernels::int4_pack_weight(c8.data_ptr<uint8_t>(), n, k, reinterpret_cast<uint32_t*>(packed.data_ptr<int32_t>()));
  return packed;
}

void check_int4_packed(const at::Tensor& packed, int64_t n, int64_t k, const char* op) {
  TORCH_CHECK(packed.scalar_type() == at::kInt, "lowbit.", op,
              ": packed_weight must be the int32 tensor int4_pack_weight returns, got ", packed.scalar_type());
  const std::vector<int64_t> want = {(n + kernels::kInt4Nr - 1) / kernels::kInt4Nr, k / kernels::kInt4Kb,
                                     kernels::kInt4Nr};
  TORCH_CHECK(packed.sizes().vec() == want, "lowbit.", op, ": packed_weight has shape ", packed.sizes(), " but ", n,
              " output channels and K = ", k, " pack to ", at::IntArrayRef(want));
  TORCH_CHECK(packed.is_contiguous(), "lowbit.", op, ": packed_weight must be contiguous");
}

at::Tensor int4_unpack_weight_cpu(const at::Tensor& packed, int64_t n) {
  constexpr const char* op = "int4_unpack_weight";
  TORCH_CHECK(packed.dim() == 3, "lowbit.", op, ": packed_weight must be 3-D, got shape ", packed.sizes());
  TORCH_CHECK(n >= 0, "lowbit.", op, ": n must be >= 0, got ", n);
  const int64_t k = packed.size(1) * kernels::kInt4Kb;
  check_int4_packed(packed, n, k, op);
  at::Tensor codes = at::empty({n, k}, packed.options().dtype(at::kByte));
  kernels::int4_unpack_weight(reinterpret_cast<const uint32_t*>(packed.data_ptr<int32_t>()), n, k,
                              codes.data_ptr<uint8_t>());
  return codes;
}

// scale [N, groups] and zero_point (its shape) -> packed parameters [ceil(N/8), groups, 2, 8]
// (int4_weight.h). The fast check runs while packing, in parallel; only when it fails do the exact
// checks run (they name the element; a subnormal scale with a finite reciprocal passes them).
at::Tensor pack_int4_params(const at::Tensor& scale, const at::Tensor& zero_point, const char* op) {
  TORCH_CHECK(scale.dim() == 2, "lowbit.", op, ": scale must be 2-D [out_features, K / group_size], got shape ",
              scale.sizes());
  TORCH_CHECK(zero_point.sizes() == scale.sizes(), "lowbit.", op, ": zero_point must have scale's shape ",
              scale.sizes(), ", got ", zero_point.sizes());
  check_same_device(scale, "scale", zero_point, "zero_point", op);
  TORCH_CHECK(scale.is_floating_point(), "lowbit.", op, ": scale must be a floating-point tensor, got ",
              scale.scalar_type());
  TORCH_CHECK(!zero_point.is_floating_point() && !zero_point.is_complex() && zero_point.scalar_type() != at::kBool,
              "lowbit.", op, ": zero_point must be an integer tensor (int32 preferred), got ", zero_point.scalar_type());
  const at::Tensor s = scale.to(at::kFloat).contiguous();
  const at::Tensor z = zero_point.to(at::kInt).contiguous();
  const int64_t n = s.size(0), groups = s.size(1);
  const int64_t blocks = (n + kernels::kInt4Nr - 1) / kernels::kInt4Nr;
  at::Tensor params = at::empty({blocks, groups, 2, kernels::kInt4Nr}, s.options());
  std::atomic<bool> ok{true};
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, kernels::kInt4Nr * groups));
  at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
    if (!kernels::int4_pack_params(s.data_ptr<float>(), z.data_ptr<int32_t>(), n, groups, b0, b1,
                                   params.data_ptr<float>())) {
      ok.store(false, std::memory_order_relaxed);
    }
  });
  if (!ok.load(std::memory_order_relaxed)) {
    checked_scale(s, op);
    checked_zero_point(z, 0, 15, op);
  }
  return params;
}

at::Tensor int4_pack_params_cpu(const at::Tensor& scale, const at::Tensor& zero_point) {
  return pack_int4_params(scale, zero_point, "int4_pack_params");
}

// The shared body of int4_weight_linear and int4_weight_linear_packed: params is the packed
// parameter tensor of n output channels (checked by the caller).
at::Tensor int4_linear_impl(const at::Tensor& x, const at::Tensor& packed_weight, const at::Tensor& params, int64_t n,
                            const std::optional<at::Tensor>& bias, const char* op) {
  const int64_t k = x.size(-1), groups = params.size(1);
  at::Tensor b32;
  if (bias.has_value()) {
    TORCH_CHECK(bias->is_floating_point() && bias->dim() == 1 && bias->size(0) == n, "lowbit.", op,
                ": bias must be a 1-D floating-point tensor of ", n, " elements, got ", bias->scalar_type(), " of shape ",
                bias->sizes());
    check_same_device(x, "x", *bias, "bias", op);
    b32 = bias->to(at::kFloat).contiguous();
  }
  int64_t m = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) m *= x.size(d);
  std::vector<int64_t> out_sizes = x.sizes().vec();
  out_sizes.back() = n;
  at::Tensor y = at::empty({m, n}, x.options().dtype(at::kFloat));
  if (m > 0 && n > 0) {
    const at::Tensor xf = x.to(at::kFloat).contiguous().view({m, k});
    const float* xp = xf.data_ptr<float>();
    const int64_t blocks = (n + kernels::kInt4Nr - 1) / kernels::kInt4Nr;
    std::vector<float> xsum(static_cast<size_t>(m * groups)), row_unscale(static_cast<size_t>(m));
    std::vector<int32_t> row_exp(static_cast<size_t>(m));
    // The conversion-free "subnormal" variant only where subnormal operands cost nothing.
    const kernels::Int4Variant fastest = kernels::cpu_features().subnormal_operands_full_speed
                                             ? kernels::Int4Variant::kSubnormal
                                             : kernels::Int4Variant::kCvt16;
    kernels::Int4LinearArgs args;
    kernels::int4_prepare_activations(xp, m, k, groups, fastest, xsum.data(), row_exp.data(), row_unscale.data(), args);
    args.packed = reinterpret_cast<const uint32_t*>(packed_weight.data_ptr<int32_t>());
    args.params = params.data_ptr<float>();
    args.bias = b32.defined() ? b32.data_ptr<float>() : nullptr;
    args.y = y.data_ptr<float>();
    args.m = m;
    args.n = n;
    args.k = k;
    args.groups = groups;
    args.ldy = n;
    const auto& table = kernels::int4_kernels();
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, m * k));
    at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) { table.linear(args, 0, m, b0, b1); });
  }
  return y.to(x.scalar_type()).view(out_sizes);
}

// x's dtype and rank, and K against the group size and the packed weight.
void check_int4_linear_x(const at::Tensor& x, const at::Tensor& packed_weight, int64_t n, int64_t groups,
                         const char* groups_from, const char* op) {
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf,
              "lowbit.", op, ": x must be float32, bfloat16 or float16, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, "lowbit.", op, ": x must have at least one dimension (the K axis)");
  check_same_device(x, "x", packed_weight, "packed_weight", op);
  const int64_t k = x.size(-1);
  TORCH_CHECK(groups >= 1 && k % groups == 0, "lowbit.", op, ": ", groups_from, " has ", groups,
              " groups per output channel, which does not divide K = ", k);
  const int64_t group = k / groups;
  TORCH_CHECK(group % kernels::kInt4Kb == 0, "lowbit.", op, ": the group size K / ", groups_from, ".size(1) = ", group,
              " must be a multiple of 8");
  check_int4_packed(packed_weight, n, k, op);
}

at::Tensor int4_weight_linear_cpu(const at::Tensor& x, const at::Tensor& packed_weight, const at::Tensor& scale,
                                  const at::Tensor& zero_point, const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "int4_weight_linear";
  check_same_device(x, "x", scale, "scale", op);
  // Checks scale's and zero_point's shapes, dtypes and values, then packs them.
  const at::Tensor params = pack_int4_params(scale, zero_point, op);
  check_int4_linear_x(x, packed_weight, scale.size(0), params.size(1), "scale", op);
  return int4_linear_impl(x, packed_weight, params, scale.size(0), bias, op);
}

at::Tensor int4_weight_linear_packed_cpu(const at::Tensor& x, const at::Tensor& packed_weight,
                                         const at::Tensor& packed_params, int64_t n,
                                         const std::optional<at::Tensor>& bias) {
  constexpr const char* op = "int4_weight_linear_packed";
  TORCH_CHECK(n >= 0, "lowbit.", op, ": n must be >= 0, got ", n);
  check_same_device(x, "x", packed_params, "packed_params", op);
  const int64_t blocks = (n + kernels::kInt4Nr - 1) / kernels::kInt4Nr;
  TORCH_CHECK(packed_params.scalar_type() == at::kFloat && packed_params.dim() == 4 &&
                  packed_params.size(0) == blocks && packed_params.size(2) == 2 &&
                  packed_params.size(3) == kernels::kInt4Nr && packed_params.is_contiguous(),
              "lowbit.", op, ": packed_params must be the contiguous float32 tensor int4_pack_params returns for ", n,
              " output channels, [", blocks, ", groups, 2, 8]; got ", packed_params.scalar_type(), " of shape ",
              packed_params.sizes());
  check_int4_linear_x(x, packed_weight, n, packed_params.size(1), "packed_params", op);
  return int4_linear_impl(x, packed_weight, packed_params, n, bias, op);
}

}  // namespace

TORCH_LIBRARY_IMPL(lowbit, CPU, m) {
  m.impl("quantize_multiplier", &quantize_multiplier_cpu);
  m.impl("requantize", &requantize_cpu);
  m.impl("int8_pack_weight", &int8_pack_weight_cpu);
  m.impl("int8_unpack_weight", &int8_unpack_weight_cpu);
  m.impl("int8_gemm", &int8_gemm_cpu);
  m.impl("int8_linear", &int8_linear_cpu);
  m.impl("int8_pack_conv_weight", &int8_pack_conv_weight_cpu);
  m.impl("int8_conv2d", &int8_conv2d_cpu);
  m.impl("int8_add", &int8_add_cpu);
  m.impl("int8_max_pool2d", &int8_max_pool2d_cpu);
  m.impl("int4_pack_weight", &int4_pack_weight_cpu);
  m.impl("int4_unpack_weight", &int4_unpack_weight_cpu);
  m.impl("int4_pack_params", &int4_pack_params_cpu);
  m.impl("int4_weight_linear", &int4_weight_linear_cpu);
  m.impl("int4_weight_linear_packed", &int4_weight_linear_packed_cpu);
}

}  // namespace lowbit::ops
