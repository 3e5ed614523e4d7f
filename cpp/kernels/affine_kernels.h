// Torch-free kernels of the affine family: fake quantization forward/backward, quantize,
// dequantize and the min/max reduction of observers. Each works on one contiguous run of
// elements that share one block's parameters (see blocking.h); the op layer splits tensors into
// runs and threads. One table per ISA; cpp/kernels/dispatch.h picks the table at run time.
#pragma once
#include <cstdint>

#include "core/affine.h"
#include "core/float16.h"

namespace lowbit::kernels {

enum class ElemType : int { F32 = 0, F16 = 1, BF16 = 2 };
inline constexpr int kNumElemTypes = 3;

// Integer code types of quantize_affine, the smallest that holds [qmin, qmax].
enum class CodeType : int { U8 = 0, I8 = 1, I16 = 2, I32 = 3 };
inline constexpr int kNumCodeTypes = 4;

// Straight-through estimators of METHODS §2.
enum class Ste : int { Integer = 0, Real = 1, Identity = 2 };

inline constexpr int kNumDeterministicRoundings = 5;  // Rounding::HalfEven .. Rounding::Ceil

// y[i] = FQ(x[i]); x, y of the element type; n >= 0.
using FakeQuantForwardFn = void (*)(const void* x, void* y, int64_t n, const AffineParams& p);
// dx[i] = dy[i] · mask(x[i]) (ste_apply: a multiply, as PyTorch), the mask recomputed from x
// (nothing is saved by the forward).
using FakeQuantBackwardFn = void (*)(const void* x, const void* dy, void* dx, int64_t n,
                                     const AffineParams& p);
// q[i] = clamp(z + R(x[i]·inv)) as the code type; NaN -> z.
using QuantizeFn = void (*)(const void* x, void* q, int64_t n, const AffineParams& p);
// y[i] = (q[i] - z)·scale in the element type.
using DequantizeFn = void (*)(const void* q, void* y, int64_t n, float scale, float zero_point);
// *min = min(*min, x[i]...), *max likewise; NaN elements are ignored; a zero result is +0.
using MinMaxFn = void (*)(const void* x, int64_t n, float* min_val, float* max_val);

struct AffineKernels {
  const char* isa_name;
  FakeQuantForwardFn fake_quantize[kNumElemTypes][kNumDeterministicRoundings];
  FakeQuantBackwardFn fake_quantize_backward_integer[kNumElemTypes][kNumDeterministicRoundings];
  FakeQuantBackwardFn fake_quantize_backward_real[kNumElemTypes];
  QuantizeFn quantize[kNumElemTypes][kNumDeterministicRoundings][kNumCodeTypes];
  DequantizeFn dequantize[kNumCodeTypes][kNumElemTypes];
  MinMaxFn minmax[kNumElemTypes];
};

const AffineKernels& affine_kernels_scalar();
const AffineKernels& affine_kernels_avx2();
const AffineKernels& affine_kernels_avx512();

// Stochastic rounding has one implementation for every ISA (the Philox draw dominates, and one
// implementation keeps results ISA-independent). Element i of the run uses draw counter0 + i.
void fake_quantize_stochastic(ElemType t, const void* x, void* y, int64_t n, const AffineParams& p,
                              uint64_t seed, uint64_t counter0);
void fake_quantize_stochastic_backward_integer(ElemType t, const void* x, const void* dy, void* dx,
                                               int64_t n, const AffineParams& p, uint64_t seed,
                                               uint64_t counter0);
void quantize_stochastic(ElemType t, CodeType c, const void* x, void* q, int64_t n,
                         const AffineParams& p, uint64_t seed, uint64_t counter0);

}  // namespace lowbit::kernels
