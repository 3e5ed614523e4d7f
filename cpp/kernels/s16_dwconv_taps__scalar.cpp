// Depthwise tap sums, scalar reference (dwconv_s16.h).
#include "core/isa_namespace.h"
#include "kernels/dwconv_s16.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

void s16_dwconv_taps__scalar(int32_t* acc, int64_t n, const int16_t* const* src, const int16_t* w, int64_t taps) {
  for (int64_t t = 0; t < taps; ++t) {
    const int32_t wt = w[t];
    const int16_t* s = src[t];
    for (int64_t q = 0; q < n; ++q) acc[q] += wt * int32_t{s[q]};
  }
}

}  // namespace
LOWBIT_ISA_END

namespace kernels {
const DwconvKernels& dwconv_kernels_scalar() {
  static const DwconvKernels table = {"scalar", "s16_dwconv_taps__scalar", &s16_dwconv_taps__scalar};
  return table;
}
}  // namespace kernels
}  // namespace lowbit
