// Torch-free requantization kernels: int32 accumulators -> integer codes, the fixed-point
// multiply of METHODS §9.2 plus zero point and clamp (core/requantize.h is the per-element
// specification; every kernel equals it bit for bit). One table per ISA, picked at run time by
// cpp/kernels/dispatch.h; the GEMM/conv epilogues call the same vector code inline.
//
// Parameter array lengths per granularity (FBGEMM's ReQuantizeOutput convention, in lowbit's
// blocked form, see blocking.h). For an accumulator tensor `acc` and parameter tensors
// `multiplier`, `shift` (same shape) and `zero_point` (that shape or one element):
//
//   granularity                  acc shape        parameter shape   arrays hold   kernel used
//   per-tensor                   any              [1] / []          1             run
//   per-output-channel (GEMM)    [M, N]           [N] / [1, N]      N             channels (per row)
//   per-channel (conv, NCHW)     [B, C, H, W]     [1, C, 1, 1]      C             run (runs of H·W)
//   per-group (any block shape)  x               p tiling x        p.numel()     run or channels
//
// A *run* is a stretch of consecutive accumulators that share one parameter set (blocking.h);
// runs of at least kMinRequantRun elements use the run kernel with scalar parameters. Shorter runs
// (a per-channel last axis, where every element has its own channel) use the channels kernel,
// whose parameter arrays are indexed like the accumulators: element j of the call reads
// multiplier[j], shift[j], zero_point[j].
#pragma once
#include <cstdint>

#include "core/requantize.h"
#include "kernels/affine_kernels.h"

namespace lowbit::kernels {

inline constexpr int64_t kMinRequantRun = 16;

// out[i] = requantize_one(acc[i], p) for i < n; `out` has the code type of the table slot.
using RequantizeRunFn = void (*)(const int32_t* acc, void* out, int64_t n, const RequantParams& p);
// out[j] = requantize_one(acc[j], multiplier[j], shift[j], zero_point[j], qmin, qmax) for j < n.
using RequantizeChannelsFn = void (*)(const int32_t* acc, void* out, int64_t n, const int32_t* multiplier,
                                      const int32_t* shift, const int32_t* zero_point, int32_t qmin,
                                      int32_t qmax);

// out[i] = quantized_add_one(a[i], b[i], p) for i < n (core/requantize.h); a, b, out are 8-bit
// codes of the table slot's types.
using QuantizedAddFn = void (*)(const void* a, const void* b, void* out, int64_t n, const QuantizedAddParams& p);

struct RequantKernels {
  const char* isa_name;
  RequantizeRunFn run[kNumRequantRoundings][kNumCodeTypes];
  RequantizeChannelsFn channels[kNumRequantRoundings][kNumCodeTypes];
  // [rounding][inputs signed][output signed]
  QuantizedAddFn add[kNumRequantRoundings][2][2];
};

const RequantKernels& requant_kernels_scalar();
const RequantKernels& requant_kernels_avx2();
const RequantKernels& requant_kernels_avx512();

}  // namespace lowbit::kernels
