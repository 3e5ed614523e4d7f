// Rounding primitives (METHODS §0, §7). These decide bit-exactness, so each one states how ties go.
//
// Domain of every function: any float, including ±0, ±Inf and NaN. Integers (|x| >= 2^23 are all
// integers) are returned unchanged; NaN is returned as NaN; the sign of zero is kept.
// None of them depends on the floating-point environment except round_half_even, which assumes
// the default FE_TONEAREST mode (PyTorch, FBGEMM and every SIMD path assume it too).
#pragma once
#include <cmath>
#include <cstdint>

#include "core/isa_namespace.h"

namespace lowbit {

// The rounding vocabulary shared by C++ and Python (python/lowbit/ops.py keeps the same names).
enum class Rounding : int32_t {
  HalfEven = 0,    // ties to even: nearbyint (PyTorch fake-quant, FBGEMM, torch.round)
  HalfAway = 1,    // ties away from zero: std::round (TFLite AffineQuantize, TF Nudge)
  HalfUp = 2,      // ties toward +inf: floor(x + 0.5) done exactly (TF FakeQuantWithMinMaxVars)
  Floor = 3,
  Ceil = 4,
  Stochastic = 5,  // floor(x) + [u < frac(x)], u from a counter-based RNG (see stochastic_uniform)
};
inline constexpr int kNumRoundings = 6;

// A Philox4x32 block: the 128-bit counter going in, the four random words coming out.
struct Philox4x32 {
  uint32_t v[4];
};
// The 64-bit Philox4x32 key.
struct PhiloxKey {
  uint32_t k[2];
};

LOWBIT_ISA_BEGIN

// Ties to even. 2.5 -> 2, 3.5 -> 4, -0.5 -> -0.
inline float round_half_even(float x) { return std::nearbyint(x); }

// Ties away from zero. 2.5 -> 3, -2.5 -> -3, 0.49999997 -> 0.
inline float round_half_away(float x) { return std::round(x); }

// Ties toward +inf. 2.5 -> 3, -2.5 -> -2, 0.49999997 -> 0, -0.3 -> -0.
// Written as floor + exact fraction test: `floor(x + 0.5f)` is wrong for 0.49999997f, where the
// sum rounds up to 1.0f. `x - floor(x)` is exact for every float (Sterbenz). copysign restores
// the sign of a zero result (-0.3 -> -0, like ceil), which `f + 1` would lose.
inline float round_half_up(float x) {
  const float f = std::floor(x);
  return std::copysign((x - f >= 0.5f) ? f + 1.0f : f, x);
}

inline float round_floor(float x) { return std::floor(x); }
inline float round_ceil(float x) { return std::ceil(x); }

// ---- Counter-based RNG for stochastic rounding -----------------------------------------------
// Philox4x32-10 (Salmon et al., SC'11), the generator of PyTorch's CUDA and JAX. A draw is a pure
// function of (seed, counter): element i of a call with `offset` uses counter offset + i, so
// results are reproducible, independent of thread count, ISA and chunking, and a backward pass
// can regenerate exactly the draws its forward used.

// The full-width generator, exactly Random123's philox4x32_R(10, ctr, key): 128-bit counter,
// 64-bit key. Checked against the Random123 known-answer vectors (tests/cpp/test_rounding.cpp).
inline Philox4x32 philox4x32_10(Philox4x32 counter, PhiloxKey key) {
  uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  uint32_t k0 = key.k[0], k1 = key.k[1];
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;  // the key bump after the last round is dead and folds away
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// lowbit's stream form: counter words {lo(counter), hi(counter), 0, 0}, key {lo(seed), hi(seed)}.
inline Philox4x32 philox4x32_10(uint64_t counter, uint64_t seed) {
  const Philox4x32 words{{static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0u, 0u}};
  return philox4x32_10(words, PhiloxKey{{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)}});
}

// Uniform in [0, 1) with 24 random bits, for draw number `n` of stream `seed`.
// Four consecutive draws share one Philox block (lane n % 4 of block n / 4).
inline float stochastic_uniform(uint64_t seed, uint64_t n) {
  const Philox4x32 block = philox4x32_10(n >> 2, seed);
  return static_cast<float>(block.v[n & 3] >> 8) * (1.0f / 16777216.0f);
}

// Stochastic rounding of x given a uniform draw u in [0, 1): floor(x) + 1 with probability
// frac(x). Exact: the fraction is computed exactly, so values on the grid never move and the
// rounding is unbiased to 2^-24 at any magnitude (unlike floor(x + u), which loses u's low bits
// for large x). Non-finite x is returned unchanged. copysign keeps the sign of a zero result
// (-0.25 rounding up is -0, like ceil), which `f + 1` would lose.
inline float round_stochastic(float x, float u) {
  const float f = std::floor(x);
  return std::copysign((u < x - f) ? f + 1.0f : f, x);
}

// Deterministic roundings by enum; Stochastic needs a draw and is handled by the caller.
inline float round_by(Rounding mode, float x) {
  switch (mode) {
    case Rounding::HalfEven: return round_half_even(x);
    case Rounding::HalfAway: return round_half_away(x);
    case Rounding::HalfUp: return round_half_up(x);
    case Rounding::Floor: return round_floor(x);
    case Rounding::Ceil: return round_ceil(x);
    case Rounding::Stochastic: break;
  }
  return round_half_even(x);
}

LOWBIT_ISA_END
}  // namespace lowbit
