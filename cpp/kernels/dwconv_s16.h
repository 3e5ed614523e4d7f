// Torch-free depthwise-convolution tap sums on int16 operands (int8_conv2d's direct depthwise path,
// cpp/ops/register_int8.cpp): for one output plane,
//
//   acc[q] += Σ_t w[t]·src[t][q]        q < n, t < taps   (exact int32)
//
// src[t] points into a zero-point-subtracted, zero-padded int16 copy of the input plane, shifted
// to tap t, so a stride-1 plane is one flat loop per tap. Operands are codes minus zero points:
// |src|, |w| <= 255, so a pair of products is at most 2·255² = 130050 in magnitude and every
// partial sum stays far inside int32 for the tap counts a kernel window has (the op's accumulator
// bound covers the total). Integer sums are exact, so every path equals the scalar one bit for bit
// whatever order it adds in. Runtime dispatch per ISA (dispatch.h).
#pragma once
#include <cstdint>

#include "core/isa_namespace.h"

namespace lowbit::kernels {

using DwconvTapSumsFn = void (*)(int32_t* acc, int64_t n, const int16_t* const* src, const int16_t* w, int64_t taps);

// The uint8 form, for uint8 codes: acc[q] = init + Σ_t w[t]·src[t][q] (acc overwritten), src[t]
// pointing into a copy of the input plane padded with the zero point zx itself. The op folds the
// zero point into init = bias - zx·Σ_t w[t], so padding contributes w·zx - w·zx = 0 and no
// int16 copy of x - zx is needed; products are at most 255·255, pair sums 130050, exact; the
// running sums wrap modulo 2^32 (see dwconv_u8_tap_sums_reference).
using DwconvU8TapSumsFn = void (*)(int32_t* acc, int64_t n, const uint8_t* const* src, const int16_t* w, int64_t taps,
                                   int32_t init);

struct DwconvKernels {
  const char* isa_name;
  const char* name;  // XNNPACK-style, e.g. s16_dwconv_taps__avx2
  DwconvTapSumsFn tap_sums;
  const char* u8_name;  // e.g. u8_dwconv_taps__avx2
  DwconvU8TapSumsFn u8_tap_sums;
};

const DwconvKernels& dwconv_kernels_scalar();
const DwconvKernels& dwconv_kernels_avx2();

}  // namespace lowbit::kernels

// The specification, for outputs [q0, n): the scalar kernel, and the vector kernels' tails.
namespace lowbit {
LOWBIT_ISA_BEGIN
inline void dwconv_tap_sums_reference(int32_t* acc, int64_t q0, int64_t n, const int16_t* const* src, const int16_t* w,
                                      int64_t taps) {
  for (int64_t t = 0; t < taps; ++t) {
    const int32_t wt = w[t];
    const int16_t* s = src[t];
    for (int64_t q = q0; q < n; ++q) acc[q] += wt * int32_t{s[q]};
  }
}

// Sums wrap modulo 2^32 (as vpaddd does): init = bias - zx·Σw may sit outside the range the op's
// accumulator bound covers for the unfolded sum, but the final value lies inside it, so the
// wrapped result is the exact one.
inline void dwconv_u8_tap_sums_reference(int32_t* acc, int64_t q0, int64_t n, const uint8_t* const* src,
                                         const int16_t* w, int64_t taps, int32_t init) {
  for (int64_t q = q0; q < n; ++q) acc[q] = init;
  for (int64_t t = 0; t < taps; ++t) {
    const int32_t wt = w[t];
    const uint8_t* s = src[t];
    for (int64_t q = q0; q < n; ++q) {
      acc[q] = static_cast<int32_t>(static_cast<uint32_t>(acc[q]) + static_cast<uint32_t>(wt * int32_t{s[q]}));
    }
  }
}
LOWBIT_ISA_END
}  // namespace lowbit
