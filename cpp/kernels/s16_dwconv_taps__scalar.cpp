// Depthwise tap sums, scalar reference (dwconv_s16.h).
#include "kernels/dwconv_s16.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace {

void s16_dwconv_taps__scalar(int32_t* acc, int64_t n, const int16_t* const* src, const int16_t* w, int64_t taps) {
  dwconv_tap_sums_reference(acc, 0, n, src, w, taps);
}

void u8_dwconv_taps__scalar(int32_t* acc, int64_t n, const uint8_t* const* src, const int16_t* w, int64_t taps,
                            int32_t init) {
  dwconv_u8_tap_sums_reference(acc, 0, n, src, w, taps, init);
}

}  // namespace
LOWBIT_ISA_END

namespace kernels {
const DwconvKernels& dwconv_kernels_scalar() {
  static const DwconvKernels table = {"scalar", "s16_dwconv_taps__scalar", &s16_dwconv_taps__scalar,
                                             "u8_dwconv_taps__scalar", &u8_dwconv_taps__scalar};
  return table;
}
}  // namespace kernels
}  // namespace lowbit
