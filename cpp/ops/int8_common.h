// Argument checks shared by the integer-inference ops (requantize, int8 GEMM/linear). Every
// error names the op, the argument and the offending value.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <string>

#include "core/requantize.h"
#include "kernels/affine_kernels.h"

namespace lowbit::ops {

inline RequantRounding parse_requant_rounding(c10::string_view name, const char* op) {
  if (name == "double") return RequantRounding::Double;
  if (name == "single") return RequantRounding::Single;
  TORCH_CHECK(false, "lowbit.", op, ": rounding must be 'double' (TFLite/gemmlowp default) or 'single' ",
              "(TFLITE_SINGLE_ROUNDING), got '", std::string(name), "'");
}

// Largest shift the multiply supports: double rounding shifts left by up to 31 bits before the
// high multiply; single rounding needs a right shift of 31 - shift >= 1.
inline int max_requant_shift(RequantRounding mode) { return mode == RequantRounding::Double ? 31 : 30; }

// Output ranges of requantize: any qmin < qmax inside int32 (int32 output when beyond 16 bits).
inline void check_int32_qrange(int64_t qmin, int64_t qmax, const char* op) {
  TORCH_CHECK(qmin < qmax, "lowbit.", op, ": qmin must be < qmax, got qmin=", qmin, ", qmax=", qmax);
  TORCH_CHECK(qmin >= std::numeric_limits<int32_t>::min() && qmax <= std::numeric_limits<int32_t>::max(),
              "lowbit.", op, ": (qmin, qmax)=(", qmin, ", ", qmax, ") must lie inside the int32 range");
}

// shift as contiguous int32 with every element inside [-31, max_requant_shift(mode)].
inline at::Tensor checked_shift(const at::Tensor& shift, RequantRounding mode, const char* op) {
  at::Tensor s = shift.contiguous();
  const int32_t* p = s.data_ptr<int32_t>();
  const int hi = max_requant_shift(mode);
  for (int64_t i = 0; i < s.numel(); ++i) {
    TORCH_CHECK(p[i] >= -31 && p[i] <= hi, "lowbit.", op, ": shift[", i, "] = ", p[i], " is outside [-31, ", hi,
                "] (rounding='", mode == RequantRounding::Double ? "double" : "single", "')");
  }
  return s;
}

// The smallest code type that holds [qmin, qmax] (python/lowbit/_registrations.py code_dtype).
inline kernels::CodeType code_type_for_range(int64_t qmin, int64_t qmax) {
  if (qmin >= 0 && qmax <= 255) return kernels::CodeType::U8;
  if (qmin >= -128 && qmax <= 127) return kernels::CodeType::I8;
  if (qmin >= -32768 && qmax <= 32767) return kernels::CodeType::I16;
  return kernels::CodeType::I32;
}

inline at::ScalarType scalar_type_of_code(kernels::CodeType c) {
  static constexpr at::ScalarType kTypes[kernels::kNumCodeTypes] = {at::kByte, at::kChar, at::kShort, at::kInt};
  return kTypes[static_cast<int>(c)];
}

}  // namespace lowbit::ops
