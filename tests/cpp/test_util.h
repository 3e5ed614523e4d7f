// Small helpers shared by the Catch2 suites: bit views of floats and "same value" comparisons in
// which NaN equals NaN (kernels promise NaN in, NaN out, not a particular payload) but +0 and -0
// differ (the sign of zero is part of every contract).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace lowbit_test {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || bits_of(a) == bits_of(b);
}

inline bool half_bits_is_nan(uint16_t h) { return (h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0; }
inline bool bf16_bits_is_nan(uint16_t b) { return (b & 0x7F80u) == 0x7F80u && (b & 0x007Fu) != 0; }

inline std::string hex32(uint32_t u) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", u);
  return buf;
}

inline std::string hex16(uint16_t u) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04X", u);
  return buf;
}

// "1.5 (0x3FC00000)": the value and its exact bits, for failure messages.
inline std::string describe(float f) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g (0x%08X)", static_cast<double>(f), bits_of(f));
  return buf;
}

// Deterministic 64-bit generator (splitmix64): the suites must not depend on the library's
// std::mt19937 distribution implementations, which differ between standard libraries.
struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint32_t next_u32() { return static_cast<uint32_t>(next() >> 32); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  int64_t range(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
};

}  // namespace lowbit_test
