// Op-layer plumbing of the estimator family: parameter reading and checks, and the deterministic
// fused reduction of parameter gradients.
//
// Reduction order (why the sums do not depend on the thread count or the ISA):
//  * The element space is cut into pieces from the tensor's shape alone: never across a run
//    boundary (a run shares one parameter element, see blocking.h), never longer than
//    kReducePiece elements, and — when parameters repeat along the tensor (runs > parameters,
//    e.g. per-channel NCHW activations) — never across a chunk boundary, chunks being a fixed
//    multiple of kReducePiece.
//  * A kernel call reduces one piece in its canonical lane order (estimator_kernels.h) into float
//    sums; pieces are at most 16K elements, so each of the 16 float lanes adds at most 1K terms.
//  * Piece sums are combined in float64, in element order: per run item, or per chunk slot then
//    chunk by chunk. Threads only decide who computes which piece, never the order of the adds.
// Temporaries: one float per piece and parameter gradient (case "one run per parameter"), or a
// float64 slot per chunk, parameter and gradient with chunks sized so that the slots stay below
// numel/64 values. Nothing full-size.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/blocking.h"
#include "ops/common.h"

namespace lowbit::ops {

inline constexpr int64_t kReducePiece = 1 << 14;

// The values of a learnable parameter tensor as contiguous float32; each must be finite.
inline std::vector<float> finite_param_values(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.is_floating_point(), "lowbit.", op, ": ", name, " must be a floating-point tensor, got ",
              t.scalar_type());
  const at::Tensor c = t.to(at::kFloat).contiguous();
  const float* p = c.data_ptr<float>();
  std::vector<float> out(p, p + c.numel());
  for (size_t i = 0; i < out.size(); ++i) {
    TORCH_CHECK(std::isfinite(out[i]), "lowbit.", op, ": ", name, " must be finite; ", name, "[", i, "] = ", out[i]);
  }
  return out;
}

inline void check_same_shape(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn,
                             const char* op) {
  TORCH_CHECK(a.sizes() == b.sizes(), "lowbit.", op, ": ", an, " and ", bn,
              " must have the same shape (the wrappers in lowbit.ops broadcast them), got ", a.sizes(), " and ",
              b.sizes());
}

inline void check_bits(int64_t bits, int64_t lo, int64_t hi, const char* op, const char* why) {
  TORCH_CHECK(bits >= lo && bits <= hi, "lowbit.", op, ": bits must be in [", lo, ", ", hi, "]", why, ", got bits=",
              bits);
}

// half_even -> false, stochastic -> true; anything else is an error naming the value.
inline bool parse_estimator_rounding(c10::string_view rounding, const char* op) {
  if (rounding == "half_even") return false;
  if (rounding == "stochastic") return true;
  TORCH_CHECK(false, "lowbit.", op, ": rounding must be 'half_even' or 'stochastic', got '", std::string(rounding),
              "'");
}

inline void check_grad_like_x(const at::Tensor& grad, const at::Tensor& x, const char* op) {
  TORCH_CHECK(grad.scalar_type() == x.scalar_type() && grad.sizes() == x.sizes(), "lowbit.", op,
              ": grad must match x in dtype and shape, got ", grad.scalar_type(), grad.sizes(), " vs ",
              x.scalar_type(), x.sizes());
  check_same_device(x, "x", grad, "grad", op);
}

// Deterministic fused reduction (see the file comment). piece(param_index, begin, n, float* sums)
// runs the backward kernel on elements [begin, begin + n) (n <= kReducePiece) and writes its K
// sums. Returns P·K float64 totals, parameter-major.
template <int K, typename Piece>
std::vector<double> reduce_runs(const kernels::BlockLayout& L, Piece&& piece) {
  const int64_t P = L.num_params;
  std::vector<double> out(static_cast<size_t>(P * K), 0.0);
  if (L.numel == 0) return out;
  if (L.num_runs == P) {
    // Each parameter element owns exactly one run: items are fixed-size slices of runs.
    const int64_t rl = L.run_length;
    const int64_t subs = (rl + kReducePiece - 1) / kReducePiece;
    const int64_t items = L.num_runs * subs;
    std::vector<float> partial(static_cast<size_t>(items * K));
    const int64_t item_elems = std::min(rl, kReducePiece);
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / item_elems);
    at::parallel_for(0, items, grain, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t r = it / subs, j = it % subs;
        const int64_t begin = r * rl + j * kReducePiece;
        piece(L.param_index(r), begin, std::min(kReducePiece, rl - j * kReducePiece), &partial[it * K]);
      }
    });
    for (int64_t r = 0; r < L.num_runs; ++r) {
      double* o = &out[L.param_index(r) * K];
      for (int64_t j = 0; j < subs; ++j) {
        const float* s = &partial[(r * subs + j) * K];
        for (int k = 0; k < K; ++k) o[k] += static_cast<double>(s[k]);
      }
    }
    return out;
  }
  // Parameters repeat along the tensor: per-chunk float64 slots for every parameter.
  const int64_t want = std::max<int64_t>(kReducePiece, 64 * P * K);
  const int64_t chunk = (want + kReducePiece - 1) / kReducePiece * kReducePiece;
  const int64_t nchunks = (L.numel + chunk - 1) / chunk;
  std::vector<double> slots(static_cast<size_t>(nchunks * P * K), 0.0);
  at::parallel_for(0, nchunks, std::max<int64_t>(1, kParallelGrain / chunk), [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      double* slot = &slots[c * P * K];
      kernels::for_each_run_piece(L, c * chunk, std::min(L.numel, (c + 1) * chunk),
                                  [&](int64_t pi, int64_t begin, int64_t n) {
                                    for (int64_t off = 0; off < n; off += kReducePiece) {
                                      float s[K];
                                      piece(pi, begin + off, std::min(kReducePiece, n - off), s);
                                      for (int k = 0; k < K; ++k) slot[pi * K + k] += static_cast<double>(s[k]);
                                    }
                                  });
    }
  });
  for (int64_t c = 0; c < nchunks; ++c) {
    for (int64_t i = 0; i < P * K; ++i) out[i] += slots[c * P * K + i];
  }
  return out;
}

// Gradient k of K for a parameter shaped like `like` (its dtype, contiguous): factor · totals.
inline at::Tensor param_grad(const std::vector<double>& totals, int k, int K, const at::Tensor& like,
                             double factor = 1.0) {
  at::Tensor g = at::empty(like.sizes(), like.options().dtype(at::kDouble));
  double* p = g.data_ptr<double>();
  const int64_t P = like.numel();
  for (int64_t i = 0; i < P; ++i) p[i] = factor * totals[i * K + k];
  return g.to(like.scalar_type());
}

inline char* bytes_of(const at::Tensor& t) { return static_cast<char*>(t.data_ptr()); }

}  // namespace lowbit::ops
