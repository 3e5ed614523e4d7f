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

struct DwconvKernels {
  const char* isa_name;
  const char* name;  // XNNPACK-style, e.g. s16_dwconv_taps__avx2
  DwconvTapSumsFn tap_sums;
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
LOWBIT_ISA_END
}  // namespace lowbit
