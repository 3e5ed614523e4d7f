// Weight packing of the int8 GEMM (layout in gemm_int8.h). Done once per weight (at conversion
// or module load), so it is plain scalar code shared by every ISA.
#include <cstring>

#include "kernels/gemm_int8.h"

namespace lowbit::kernels {

// col_sums receives n entries.
void gemm_int8_pack_weight(const int8_t* weight, int64_t n, int64_t k, int8_t* packed, int32_t* col_sums) {
  const int64_t panels = gemm_num_panels(n), panel_bytes = gemm_panel_bytes(k);
  std::memset(packed, 0, static_cast<size_t>(panels * panel_bytes));
  for (int64_t row = 0; row < n; ++row) {
    int8_t* panel = packed + (row / kGemmNr) * panel_bytes;
    const int64_t c = row % kGemmNr;
    const int8_t* w = weight + row * k;
    int32_t sum = 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      panel[gemm_panel_offset(k, c, kk)] = w[kk];
      sum += w[kk];
    }
    col_sums[row] = sum;
  }
}

void gemm_int8_unpack_weight(const int8_t* packed, int64_t n, int64_t k, int8_t* weight) {
  const int64_t panel_bytes = gemm_panel_bytes(k);
  for (int64_t row = 0; row < n; ++row) {
    const int8_t* panel = packed + (row / kGemmNr) * panel_bytes;
    const int64_t c = row % kGemmNr;
    for (int64_t kk = 0; kk < k; ++kk) weight[row * k + kk] = panel[gemm_panel_offset(k, c, kk)];
  }
}

}  // namespace lowbit::kernels
