// Hardware float <-> half conversions (F16C vcvtps2ph / vcvtph2ps), defined in f16c_reference.cpp.
#pragma once
#include <cstdint>

namespace lowbit_test {

// Round to nearest even (imm8 = 0), as c10::Half and lowbit::float_to_half.
uint16_t f16c_float_to_half(float f);
float f16c_half_to_float(uint16_t h);

}  // namespace lowbit_test
