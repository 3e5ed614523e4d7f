// CPU implementations of the integer-inference ops (issue 5): requantization and the int8 GEMM
// family. Argument checks, the split into blocks and threads, and calls into the active ISA's
// kernel tables; no per-element math lives here (cpp/core and cpp/kernels hold it).
#include <torch/library.h>

#include <limits>

#include "core/fixed_point.h"
#include "core/requantize.h"
#include "kernels/dispatch.h"
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

}  // namespace

TORCH_LIBRARY_IMPL(lowbit, CPU, m) {
  m.impl("quantize_multiplier", &quantize_multiplier_cpu);
  m.impl("requantize", &requantize_cpu);
}

}  // namespace lowbit::ops
