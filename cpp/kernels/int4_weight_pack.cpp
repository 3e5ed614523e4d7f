// Packing of int4 weights (layout in int4_weight.h); done once per weight, plain scalar code.
#include <cstring>

#include "kernels/int4_weight.h"

namespace lowbit::kernels {

void int4_pack_weight(const uint8_t* codes, int64_t n, int64_t k, uint32_t* packed) {
  const int64_t blocks = (n + kInt4Nr - 1) / kInt4Nr, kb = k / kInt4Kb;
  std::memset(packed, 0, static_cast<size_t>(blocks * kb * kInt4Nr) * sizeof(uint32_t));
  for (int64_t row = 0; row < n; ++row) {
    uint32_t* block = packed + (row / kInt4Nr) * kb * kInt4Nr;
    const int64_t lane = row % kInt4Nr;
    for (int64_t kk = 0; kk < k; ++kk) {
      block[(kk / kInt4Kb) * kInt4Nr + lane] |= uint32_t{codes[row * k + kk]} << (4 * (kk % kInt4Kb));
    }
  }
}

void int4_unpack_weight(const uint32_t* packed, int64_t n, int64_t k, uint8_t* codes) {
  const int64_t kb = k / kInt4Kb;
  for (int64_t row = 0; row < n; ++row) {
    const uint32_t* block = packed + (row / kInt4Nr) * kb * kInt4Nr;
    const int64_t lane = row % kInt4Nr;
    for (int64_t kk = 0; kk < k; ++kk) {
      codes[row * k + kk] = static_cast<uint8_t>((block[(kk / kInt4Kb) * kInt4Nr + lane] >> (4 * (kk % kInt4Kb))) & 0xF);
    }
  }
}

}  // namespace lowbit::kernels
