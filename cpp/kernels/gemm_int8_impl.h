// The int8 GEMM driver and epilogues, written once over a micro-kernel type U and an int32 vector
// type VI (simd_int_*.h). Included by exactly one translation unit per ISA, after that TU's
// micro-kernel; everything lands in the TU's ISA namespace.
//
// A micro-kernel U provides
//   kMr, kPanels                 rows and 16-channel panels per micro-tile
//   kName                        XNNPACK-style tile/ISA suffix, e.g. "2x16c4__avx2"
//   scratch_elems(k)             int16 scratch per panel group (0 if it reads the packed bytes)
//   prepare(args, p, np, scratch) -> const void*   the B operand of panels [p, p + np)
//   tile<A>(args, m, mr, b, np, p, out)            out[i][c] = Σ_k a[m+i][k]·W[16p+c][k] exactly
//                                                   (mod 2^32) for i < mr, c < 16·np
// and the driver here loops over panels and row tiles and applies the epilogue. The driver is the
// same for every ISA, so the scalar instantiation tests the loop structure the SIMD paths run.
#pragma once
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/requantize.h"
#include "kernels/requant_multiply.h"
#include "kernels/transpose_bytes.h"
#include "kernels/gemm_int8.h"

namespace lowbit {
LOWBIT_ISA_BEGIN
namespace gemm_impl {

using kernels::GemmAType;
using kernels::GemmEpilogue;
using kernels::GemmInt8Args;
using kernels::GemmOutType;
using kernels::kGemmKc;
using kernels::kGemmNr;

inline int32_t wrap_add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
inline int32_t wrap_mul(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) * static_cast<uint32_t>(b));
}

// Loads the last, partial quad of a row (1..3 valid bytes) zero-padded: never reads past K.
inline int32_t load_partial_quad(const uint8_t* p, int64_t valid) {
  uint8_t bytes[4] = {0, 0, 0, 0};
  std::memcpy(bytes, p, static_cast<size_t>(valid));
  int32_t v;
  std::memcpy(&v, bytes, 4);
  return v;
}

inline int32_t load_quad(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Adds the partial last quad (the K % 4 trailing k) of rows [m, m + mr) to a finished tile in
// memory: out[i·ldt + c] += Σ_{j < K%4} a[m+i][4·(K/4) + j] · tail[4c + j], c < 16 (wrapping).
// `tail` is the panel's tail quad in full-quad form (int8 or widened int16). kOffsetS8 adds 128 to
// s8 activations, for kernels that run on a + 128 (VNNI). Kept out of the vector loops: merging a
// tail step into a loop's register accumulators makes GCC copy every accumulator each iteration.
template <GemmAType A, bool kOffsetS8 = false, typename W>
void add_tail_quad(const GemmInt8Args& args, int64_t m, int64_t mr, const W* tail, int32_t* out, int64_t ldt) {
  using AT = std::conditional_t<A == GemmAType::U8, uint8_t, int8_t>;
  const int64_t full = args.k / kGemmKc, rest = args.k % kGemmKc;
  for (int64_t i = 0; i < mr; ++i) {
    const AT* a = static_cast<const AT*>(args.a) + (m + i) * args.lda + full * kGemmKc;
    int32_t x[kGemmKc] = {0, 0, 0, 0};
    for (int64_t j = 0; j < rest; ++j) x[j] = int32_t{a[j]} + (kOffsetS8 && A == GemmAType::S8 ? 128 : 0);
    for (int64_t c = 0; c < kGemmNr; ++c) {
      int32_t sum = 0;
      for (int64_t j = 0; j < rest; ++j) sum += x[j] * int32_t{tail[c * kGemmKc + j]};
      out[i * ldt + c] = wrap_add(out[i * ldt + c], sum);
    }
  }
}

// ---- epilogues: a block of rows of one micro-tile column range ------------------------------------
//
// The driver gathers the tiles of up to kBlockRows rows (one panel group) and hands them to one
// epilogue call: the per-channel parameters are loaded once per block instead of once per row,
// and a channel-major (NCHW) output is written as runs of consecutive pixels per channel instead
// of one scattered byte per channel and row. Per element it is requantize_one (core/requantize.h).

inline constexpr int64_t kBlockRows = 32;

// out[i·ldd + j] = requantize(tile[i·ldt + j] + bias[j] - wzp[j]·rowsum[row0 + i]) for i < rows,
// j < ncols (the folded accumulator of column n0 + j: Σ a·w + bias[n] - wzp[n]·rowsum, all
// wrapping int32, exact when the true value fits, which int8_linear checks).
template <typename VI, RequantRounding R, typename Out>
void requantize_block(const int32_t* tile, int64_t ldt, int64_t rows, int64_t ncols, int64_t n0,
                      const GemmInt8Args& a, int64_t row0, Out* out, int64_t ldd) {
  const int32_t* bias = a.bias + n0;
  const int32_t* mult = a.multiplier + n0;
  const int32_t* shift = a.shift + n0;
  const int32_t* wzp = a.w_zero_point + n0;
  const bool asymmetric_w = a.row_sums != nullptr;
  const int32_t zo = a.out_zero_point;
  const int32_t lo = static_cast<int32_t>(std::max<int64_t>(int64_t{a.qmin} - zo, kInt32Min));
  const int32_t hi = static_cast<int32_t>(std::min<int64_t>(int64_t{a.qmax} - zo, kInt32Max));
  int64_t j = 0;
  if constexpr (VI::kLanes > 1) {
    const auto vlo = VI::set1(lo), vhi = VI::set1(hi), vzo = VI::set1(zo);
    for (; j + VI::kLanes <= ncols; j += VI::kLanes) {
      const auto vb = VI::load(bias + j), vm = VI::load(mult + j), vs = VI::load(shift + j), vw = VI::load(wzp + j);
      // kRightOnly: every channel's shift <= 0 (real multiplier < 1, the usual case), so the
      // double-rounding multiply skips the saturating left shift and SRDHM's saturation blend, about
      // a quarter of the epilogue's instructions.
      auto rows_loop = [&](auto right_only) {
        constexpr bool kRightOnly = decltype(right_only)::value && R == RequantRounding::Double;
        const auto shift_arg = kRightOnly ? VI::sub(VI::set1(0), vs) : vs;
        for (int64_t i = 0; i < rows; ++i) {
          auto v = VI::add(VI::load(tile + i * ldt + j), vb);
          if (asymmetric_w) v = VI::sub(v, VI::mullo(vw, VI::set1(a.row_sums[row0 + i])));
          const auto r = simd::requant_multiply<VI, R, kRightOnly>(v, vm, shift_arg);
          VI::store_narrow(out + i * ldd + j, VI::add(VI::min(VI::max(r, vlo), vhi), vzo));
        }
      };
      if (R == RequantRounding::Double && VI::right_shift_only(vm, vs)) {
        rows_loop(std::true_type{});
      } else {
        rows_loop(std::false_type{});
      }
    }
  }
  for (; j < ncols; ++j) {
    for (int64_t i = 0; i < rows; ++i) {
      int32_t v = wrap_add(tile[i * ldt + j], bias[j]);
      if (asymmetric_w) v = wrap_add(v, -wrap_mul(wzp[j], a.row_sums[row0 + i]));
      out[i * ldd + j] = static_cast<Out>(requantize_one(v, mult[j], shift[j], zo, a.qmin, a.qmax, R));
    }
  }
}

using BlockEpilogueFn = void (*)(const int32_t* tile, int64_t ldt, int64_t rows, int64_t ncols, int64_t n0,
                                 const GemmInt8Args& a, int64_t row0);

inline void store_s32_block(const int32_t* tile, int64_t ldt, int64_t rows, int64_t ncols, int64_t n0,
                            const GemmInt8Args& a, int64_t row0) {
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(a.c + (row0 + i + a.out_row_offset) * a.ldc + n0, tile + i * ldt,
                static_cast<size_t>(ncols) * sizeof(int32_t));
  }
}

template <typename VI, RequantRounding R, typename Out>
void requantize_block_to_out(const int32_t* tile, int64_t ldt, int64_t rows, int64_t ncols, int64_t n0,
                             const GemmInt8Args& a, int64_t row0) {
  if (!a.out_transposed) {
    requantize_block<VI, R, Out>(tile, ldt, rows, ncols, n0, a, row0,
                                 static_cast<Out*>(a.out) + (row0 + a.out_row_offset) * a.ldo + n0, a.ldo);
    return;
  }
  // Channel-major output: requantize the block in row order, then write each channel's codes as
  // runs of consecutive output rows (a run ends where an image ends).
  Out codes[kBlockRows * kernels::kGemmMaxTileCols];
  requantize_block<VI, R, Out>(tile, ldt, rows, ncols, n0, a, row0, codes, ncols);
  Out* out = static_cast<Out*>(a.out);
  for (int64_t i = 0; i < rows;) {
    const int64_t r = row0 + i + a.out_row_offset;
    int64_t base = r, run = rows - i;
    if (a.out_image_rows > 0) {
      const int64_t image = r / a.out_image_rows, pixel = r % a.out_image_rows;
      base = image * a.out_image_stride + pixel;
      run = std::min(run, a.out_image_rows - pixel);
    }
    const Out* src = codes + i * ncols;
    Out* dst = out + base + n0 * a.ldo;
    int64_t t0 = 0;
    if constexpr (std::endian::native == std::endian::little) {
      for (; t0 + 8 <= run; t0 += 8) {
        int64_t c = 0;
        for (; c + 8 <= ncols; c += 8) transpose_8x8_bytes(src + t0 * ncols + c, ncols, dst + c * a.ldo + t0, a.ldo);
        for (; c < ncols; ++c) {
          for (int64_t t = t0; t < t0 + 8; ++t) dst[c * a.ldo + t] = src[t * ncols + c];
        }
      }
    }
    for (int64_t c = 0; c < ncols; ++c) {
      for (int64_t t = t0; t < run; ++t) dst[c * a.ldo + t] = src[t * ncols + c];
    }
    i += run;
  }
}

template <typename VI>
BlockEpilogueFn pick_epilogue(GemmEpilogue e, const GemmInt8Args& a) {
  if (e == GemmEpilogue::S32) return &store_s32_block;
  const bool u8 = a.out_type == GemmOutType::U8;
  if (a.rounding == RequantRounding::Double) {
    return u8 ? &requantize_block_to_out<VI, RequantRounding::Double, uint8_t>
              : &requantize_block_to_out<VI, RequantRounding::Double, int8_t>;
  }
  return u8 ? &requantize_block_to_out<VI, RequantRounding::Single, uint8_t>
            : &requantize_block_to_out<VI, RequantRounding::Single, int8_t>;
}

// ---- the driver --------------------------------------------------------------------------------

template <typename U, GemmAType A, GemmEpilogue E>
void gemm_block(const GemmInt8Args& args, int64_t m_begin, int64_t m_end, int64_t p_begin, int64_t p_end) {
  using VI = typename U::VI;
  std::vector<int16_t> scratch(static_cast<size_t>(U::scratch_elems(args.k)));
  constexpr int64_t ldt = U::kPanels * kGemmNr;
  static_assert(ldt <= kernels::kGemmMaxTileCols, "the transposed epilogue's block buffer holds kGemmMaxTileCols");
  static_assert(kBlockRows % U::kMr == 0, "tiles store whole kMr-row tiles: the block must hold them");
  alignas(64) int32_t tile[kBlockRows * ldt];
  const BlockEpilogueFn epilogue = pick_epilogue<VI>(E, args);
  for (int64_t p = p_begin; p < p_end; p += U::kPanels) {
    const int np = static_cast<int>(std::min<int64_t>(U::kPanels, p_end - p));
    const void* b = U::prepare(args, p, np, scratch.data());
    const int64_t n0 = p * kGemmNr;
    const int64_t ncols = std::min<int64_t>(np * kGemmNr, args.n - n0);
    for (int64_t mb = m_begin; mb < m_end; mb += kBlockRows) {
      const int64_t rows = std::min<int64_t>(kBlockRows, m_end - mb);
      for (int64_t m = mb; m < mb + rows; m += U::kMr) {
        U::template tile<A>(args, m, std::min<int64_t>(U::kMr, mb + rows - m), b, np, p, tile + (m - mb) * ldt);
      }
      epilogue(tile, ldt, rows, ncols, n0, args, mb);
    }
  }
}

// Declares the four named block functions of one micro-kernel family, e.g. for PREFIX "qu8s8"
// / "qs8s8", epilogue s32 / rq, and SUFFIX 2x16c4__avx2: qu8s8_gemm_s32_2x16c4__avx2, ...
#define LOWBIT_GEMM_INT8_DEFINE(SUFFIX, DRIVER)                                                    \
  void qu8s8_gemm_s32_##SUFFIX(const GemmInt8Args& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) { \
    DRIVER<GemmAType::U8, GemmEpilogue::S32>(a, m0, m1, p0, p1);                                      \
  }                                                                                                 \
  void qu8s8_gemm_rq_##SUFFIX(const GemmInt8Args& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {  \
    DRIVER<GemmAType::U8, GemmEpilogue::Rq>(a, m0, m1, p0, p1);                                       \
  }                                                                                                 \
  void qs8s8_gemm_s32_##SUFFIX(const GemmInt8Args& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) { \
    DRIVER<GemmAType::S8, GemmEpilogue::S32>(a, m0, m1, p0, p1);                                      \
  }                                                                                                 \
  void qs8s8_gemm_rq_##SUFFIX(const GemmInt8Args& a, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {  \
    DRIVER<GemmAType::S8, GemmEpilogue::Rq>(a, m0, m1, p0, p1);                                       \
  }                                                                                                 \
  kernels::GemmInt8Kernels make_gemm_int8_table_##SUFFIX(const char* isa, int64_t mr, int64_t panels) { \
    kernels::GemmInt8Kernels k{};                                                                   \
    k.isa_name = isa;                                                                               \
    k.mr = mr;                                                                                      \
    k.nr_panels = panels;                                                                           \
    k.gemm[0][0] = &qu8s8_gemm_s32_##SUFFIX;                                                        \
    k.gemm[0][1] = &qu8s8_gemm_rq_##SUFFIX;                                                         \
    k.gemm[1][0] = &qs8s8_gemm_s32_##SUFFIX;                                                        \
    k.gemm[1][1] = &qs8s8_gemm_rq_##SUFFIX;                                                         \
    k.names[0][0] = "qu8s8_gemm_s32_" #SUFFIX;                                                      \
    k.names[0][1] = "qu8s8_gemm_rq_" #SUFFIX;                                                       \
    k.names[1][0] = "qs8s8_gemm_s32_" #SUFFIX;                                                      \
    k.names[1][1] = "qs8s8_gemm_rq_" #SUFFIX;                                                       \
    return k;                                                                                       \
  }

}  // namespace gemm_impl
LOWBIT_ISA_END
}  // namespace lowbit
