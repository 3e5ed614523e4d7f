// Checks shared by test_int8_kernels.cpp (the real kernel tables of every ISA this CPU runs) and
// test_avx512_emulated.cpp (the AVX-512 sources compiled against portable intrinsics): each
// table is compared with the cpp/core per-element formulas and with exact int64 GEMM sums.
#pragma once
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/requantize.h"
#include "kernels/gemm_int8.h"
#include "kernels/requant_kernels.h"

namespace lowbit_int8_test {

using lowbit::QuantizedAddParams;
using lowbit::RequantParams;
using lowbit::RequantRounding;
using lowbit::kernels::CodeType;
using lowbit::kernels::GemmAType;
using lowbit::kernels::GemmEpilogue;
using lowbit::kernels::GemmInt8Args;
using lowbit::kernels::GemmInt8Kernels;
using lowbit::kernels::GemmOutType;
using lowbit::kernels::RequantKernels;

constexpr int32_t kMin = INT32_MIN, kMax = INT32_MAX;

// The scalar formulas, compiled into the test TU (baseline ISA namespace unless the TU says otherwise).
inline int32_t reference_requantize(int32_t acc, int32_t m, int32_t s, int32_t z, int32_t lo, int32_t hi,
                                    RequantRounding r) {
  const int left = s > 0 ? s : 0, right = s > 0 ? 0 : -s;
  int64_t x;
  if (r == RequantRounding::Double) {
    int64_t shifted = int64_t{acc} * (int64_t{1} << left);
    shifted = shifted < kMin ? kMin : (shifted > kMax ? kMax : shifted);
    const int32_t a = static_cast<int32_t>(shifted);
    int32_t high;
    if (a == kMin && m == kMin) {
      high = kMax;
    } else {
      const int64_t ab = int64_t{a} * m;
      const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : 1 - (int64_t{1} << 30);
      high = static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
    }
    const int32_t mask = static_cast<int32_t>((int64_t{1} << right) - 1);
    const int32_t rem = high & mask, thr = (mask >> 1) + (high < 0 ? 1 : 0);
    x = (high >> right) + (rem > thr ? 1 : 0);
  } else {
    const int total = 31 - s;
    x = (int64_t{acc} * m + (int64_t{1} << (total - 1))) >> total;
    x = x < kMin ? kMin : (x > kMax ? kMax : x);
  }
  x += z;
  return static_cast<int32_t>(x < lo ? lo : (x > hi ? hi : x));
}

inline std::vector<int32_t> accumulators(std::mt19937& rng, size_t n) {
  const int32_t edges[] = {0, 1, -1, 2, -2, 3, -3, 5, -5, 127, -128, 1 << 30, -(1 << 30), kMax, kMin, kMin + 1, kMax - 1};
  std::vector<int32_t> v(n);
  std::uniform_int_distribution<int32_t> full(kMin, kMax), small(-(1 << 20), 1 << 20);
  for (size_t i = 0; i < n; ++i) v[i] = i < std::size(edges) ? edges[i] : (i % 2 ? full(rng) : small(rng));
  return v;
}

template <typename Code>
int32_t read_code(const std::vector<uint8_t>& bytes, size_t i) {
  Code c;
  std::memcpy(&c, bytes.data() + i * sizeof(Code), sizeof(Code));
  return static_cast<int32_t>(c);
}

inline int32_t read_code(CodeType t, const std::vector<uint8_t>& bytes, size_t i) {
  switch (t) {
    case CodeType::U8: return read_code<uint8_t>(bytes, i);
    case CodeType::I8: return read_code<int8_t>(bytes, i);
    case CodeType::I16: return read_code<int16_t>(bytes, i);
    case CodeType::I32: return read_code<int32_t>(bytes, i);
  }
  return 0;
}

inline void check_requant_table(const RequantKernels& k, const std::string& name) {
  std::mt19937 rng(7);
  struct Range { CodeType t; int32_t lo, hi; };
  const Range ranges[] = {{CodeType::U8, 0, 255}, {CodeType::I8, -128, 127}, {CodeType::I16, -32768, 32767},
                          {CodeType::I32, kMin, kMax}, {CodeType::U8, 3, 200}};
  for (int r = 0; r < lowbit::kNumRequantRoundings; ++r) {
    const auto rounding = static_cast<RequantRounding>(r);
    const int max_shift = rounding == RequantRounding::Double ? 31 : 30;
    for (const Range& range : ranges) {
      for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{15}, size_t{16}, size_t{17}, size_t{70}, size_t{1001}}) {
        const std::vector<int32_t> acc = accumulators(rng, n);
        std::vector<int32_t> mult(n), shift(n), zp(n);
        std::uniform_int_distribution<int32_t> mdist(1 << 30, kMax), sdist(-31, max_shift), zdist(range.lo, range.hi);
        for (size_t i = 0; i < n; ++i) {
          mult[i] = i % 11 == 3 ? kMin : (i % 13 == 5 ? 0 : mdist(rng));
          shift[i] = sdist(rng);
          zp[i] = zdist(rng);
        }
        const int bytes = range.t == CodeType::I32 ? 4 : range.t == CodeType::I16 ? 2 : 1;
        std::vector<uint8_t> out(n * bytes + 1);
        k.channels[r][static_cast<int>(range.t)](acc.data(), out.data(), static_cast<int64_t>(n), mult.data(),
                                                 shift.data(), zp.data(), range.lo, range.hi);
        for (size_t i = 0; i < n; ++i) {
          INFO(name << " channels rounding " << r << " n " << n << " i " << i << " acc " << acc[i] << " m " << mult[i]
                    << " s " << shift[i]);
          REQUIRE(read_code(range.t, out, i) ==
                  reference_requantize(acc[i], mult[i], shift[i], zp[i], range.lo, range.hi, rounding));
        }
        // Every shift <= 0: whole vectors take the no-left-shift form unless a lane's multiplier
        // is INT32_MIN (then with an INT32_MIN accumulator: SRDHM's one saturating case).
        std::vector<int32_t> right_shift(n), acc_min(acc);
        for (size_t i = 0; i < n; ++i) {
          right_shift[i] = shift[i] > 0 ? -shift[i] : shift[i];
          if (mult[i] == kMin) acc_min[i] = kMin;
        }
        k.channels[r][static_cast<int>(range.t)](acc_min.data(), out.data(), static_cast<int64_t>(n), mult.data(),
                                                 right_shift.data(), zp.data(), range.lo, range.hi);
        for (size_t i = 0; i < n; ++i) {
          INFO(name << " channels, shifts <= 0, rounding " << r << " n " << n << " i " << i << " acc " << acc_min[i]
                    << " m " << mult[i] << " s " << right_shift[i]);
          REQUIRE(read_code(range.t, out, i) ==
                  reference_requantize(acc_min[i], mult[i], right_shift[i], zp[i], range.lo, range.hi, rounding));
        }
        for (int32_t s : {-31, -7, 0, 5, max_shift}) {
          const RequantParams p{1374389535, s, zp.empty() ? range.lo : zp[0], range.lo, range.hi};
          k.run[r][static_cast<int>(range.t)](acc.data(), out.data(), static_cast<int64_t>(n), p);
          for (size_t i = 0; i < n; ++i) {
            INFO(name << " run rounding " << r << " n " << n << " i " << i << " shift " << s);
            REQUIRE(read_code(range.t, out, i) ==
                    reference_requantize(acc[i], p.multiplier, s, p.zero_point, range.lo, range.hi, rounding));
          }
        }
      }
    }
  }
  // Quantized add against the same formula composed from the reference requantization.
  for (int r = 0; r < lowbit::kNumRequantRoundings; ++r) {
    const auto rounding = static_cast<RequantRounding>(r);
    for (int in_signed = 0; in_signed < 2; ++in_signed) {
      for (int out_signed = 0; out_signed < 2; ++out_signed) {
        // The second set has a positive output shift and an INT32_MIN multiplier (the kernel takes
        // them, int8_add does not): the full multiply instead of the shortcut for shifts <= 0.
        const QuantizedAddParams params[] = {
            {in_signed ? -3 : 120, in_signed ? 9 : 100, 1717986918, -2, 1073741824, 0, 1342177280, -19,
             out_signed ? 5 : 128, out_signed ? -128 : 0, out_signed ? 127 : 255, 20},
            {in_signed ? -3 : 120, in_signed ? 9 : 100, kMin, -1, 1073741824, 0, 1342177280, 2,
             out_signed ? 5 : 128, out_signed ? -128 : 0, out_signed ? 127 : 255, 12}};
        for (const QuantizedAddParams& p : params) {
          for (size_t n : {size_t{1}, size_t{16}, size_t{33}, size_t{300}}) {
            std::vector<uint8_t> a(n), b(n), out(n);
            for (size_t i = 0; i < n; ++i) {
              a[i] = static_cast<uint8_t>(rng());
              b[i] = static_cast<uint8_t>(rng());
            }
            k.add[r][in_signed][out_signed](a.data(), b.data(), out.data(), static_cast<int64_t>(n), p);
            for (size_t i = 0; i < n; ++i) {
              const int32_t av = in_signed ? int32_t{static_cast<int8_t>(a[i])} : int32_t{a[i]};
              const int32_t bv = in_signed ? int32_t{static_cast<int8_t>(b[i])} : int32_t{b[i]};
              const int32_t ya = reference_requantize((av - p.a_zero_point) * (1 << p.left_shift), p.a_multiplier,
                                                      p.a_shift, 0, kMin, kMax, rounding);
              const int32_t yb = reference_requantize((bv - p.b_zero_point) * (1 << p.left_shift), p.b_multiplier,
                                                      p.b_shift, 0, kMin, kMax, rounding);
              const int32_t want = reference_requantize(ya + yb, p.out_multiplier, p.out_shift, p.out_zero_point,
                                                        p.qmin, p.qmax, rounding);
              const int32_t got = out_signed ? int32_t{static_cast<int8_t>(out[i])} : int32_t{out[i]};
              INFO(name << " add rounding " << r << " signed " << in_signed << out_signed << " i " << i);
              REQUIRE(got == want);
            }
          }
        }
      }
    }
  }
}

// The operand fields of a GEMM call: activations a[m][lda] times packed weights of n channels, depth kk.
inline GemmInt8Args gemm_operands(const void* a, int64_t lda, const int8_t* packed, const int32_t* col_sums,
                                  int64_t m, int64_t n, int64_t kk) {
  GemmInt8Args args;
  args.a = a;
  args.lda = lda;
  args.packed = packed;
  args.col_sums = col_sums;
  args.m = m;
  args.n = n;
  args.k = kk;
  return args;
}

// One GEMM case on `k`: exact int64 sums (s32 epilogue) and the requantized codes (rq epilogue),
// both compared with references computed here.
inline void check_gemm_case(const GemmInt8Kernels& k, const std::string& name, int64_t m, int64_t n, int64_t kk,
                            bool signed_a, bool seven_bit, std::mt19937& rng) {
  std::vector<int8_t> w(static_cast<size_t>(n * kk));
  std::vector<uint8_t> a(static_cast<size_t>(m * kk));
  for (auto& v : w) v = static_cast<int8_t>(rng());
  for (auto& v : a) v = static_cast<uint8_t>(seven_bit ? rng() % 128 : rng());
  const int64_t panels = lowbit::kernels::gemm_num_panels(n);
  std::vector<int8_t> packed(static_cast<size_t>(panels * lowbit::kernels::gemm_panel_bytes(kk)) + 1);
  std::vector<int32_t> col_sums(static_cast<size_t>(panels * 16), 0);
  lowbit::kernels::gemm_int8_pack_weight(w.data(), n, kk, packed.data(), col_sums.data());
  std::vector<int64_t> ref(static_cast<size_t>(m * n), 0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      for (int64_t t = 0; t < kk; ++t) {
        const int64_t av = signed_a ? int64_t{static_cast<int8_t>(a[i * kk + t])} : int64_t{a[i * kk + t]};
        s += av * w[j * kk + t];
      }
      ref[i * n + j] = s;
    }
  }
  GemmInt8Args args = gemm_operands(a.data(), kk, packed.data(), col_sums.data(), m, n, kk);
  std::vector<int32_t> c(static_cast<size_t>(m * n) + 1, 0);
  args.c = c.data();
  args.ldc = n;
  const int ai = signed_a ? 1 : 0;
  k.gemm[ai][0](args, 0, m, 0, panels);
  for (int64_t i = 0; i < m * n; ++i) {
    INFO(name << " " << k.names[ai][0] << " m " << m << " n " << n << " k " << kk << " seven_bit " << seven_bit
              << " at " << i);
    REQUIRE(int64_t{c[i]} == ref[i]);
  }
  // Requantized epilogue with per-channel parameters and nonzero weight zero points.
  std::vector<int32_t> bias(static_cast<size_t>(panels * 16), 0), mult(bias.size(), 0), shift(bias.size(), 0),
      wzp(bias.size(), 0), row_sums(static_cast<size_t>(m), 0);
  for (int64_t j = 0; j < n; ++j) {
    bias[j] = static_cast<int32_t>(rng() % 20001) - 10000;
    mult[j] = (1 << 30) + static_cast<int32_t>(rng() % (1u << 30));
    // Channels 16..31 of every 32 hold one positive shift (real multiplier >= 1), so 8- and 16-lane
    // epilogue vectors come both with and without one (the no-left-shift shortcut).
    shift[j] = (j / 16) % 2 == 1 && j % 16 == 3 ? static_cast<int32_t>(rng() % 4)
                                               : -static_cast<int32_t>(8 + rng() % 10);
    wzp[j] = static_cast<int32_t>(rng() % 7) - 3;
  }
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < kk; ++t) {
      row_sums[i] += signed_a ? int32_t{static_cast<int8_t>(a[i * kk + t])} : int32_t{a[i * kk + t]};
    }
  }
  args.bias = bias.data();
  args.multiplier = mult.data();
  args.shift = shift.data();
  args.w_zero_point = wzp.data();
  args.row_sums = row_sums.data();
  args.out_zero_point = 7;
  args.qmin = -128;
  args.qmax = 127;
  args.out_type = GemmOutType::S8;
  for (int r = 0; r < lowbit::kNumRequantRoundings; ++r) {
    // transposed 2: channel-major per image of `image_rows` rows (a batched convolution's GEMM);
    // the last image may be partial.
    const int64_t image_rows = 1 + m / 3, images = (m + image_rows - 1) / image_rows;
    for (int transposed = 0; transposed < 3; ++transposed) {
      std::vector<int8_t> out(static_cast<size_t>(images * image_rows * n) + 1, 0);
      args.out = out.data();
      args.out_transposed = transposed != 0;
      args.ldo = transposed == 0 ? n : transposed == 1 ? m : image_rows;
      args.out_image_rows = transposed == 2 ? image_rows : 0;
      args.out_image_stride = transposed == 2 ? image_rows * n : 0;
      args.rounding = static_cast<RequantRounding>(r);
      k.gemm[ai][1](args, 0, m, 0, panels);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          const int64_t accum = ref[i * n + j] + bias[j] - int64_t{wzp[j]} * row_sums[i];
          const int32_t want = reference_requantize(static_cast<int32_t>(accum), mult[j], shift[j], 7, -128, 127,
                                                    static_cast<RequantRounding>(r));
          const int64_t at = transposed == 0   ? i * n + j
                             : transposed == 1 ? j * m + i
                                               : (i / image_rows) * image_rows * n + j * image_rows + i % image_rows;
          const int32_t got = out[at];
          INFO(name << " " << k.names[ai][1] << " m " << m << " n " << n << " k " << kk << " rounding " << r
                    << " transposed " << transposed << " at " << i << "," << j);
          REQUIRE(got == want);
        }
      }
    }
    args.out_image_rows = args.out_image_stride = 0;
  }
}

// The layouts a convolution hands the GEMM (int8_conv2d): patch rows padded with zero bytes to
// whole quads and beyond (a_rows_padded, lda > K), and a chunk of rows [r0, m) run on its own,
// writing its slice of a larger output (out_row_offset = r0; row_sums of the chunk's rows), into
// the row-major s32 output and the channel-major per-image codes. Results must equal the exact
// int64 sums of the whole matrix at the same positions.
inline void check_gemm_conv_layouts(const GemmInt8Kernels& k, const std::string& name, int64_t m, int64_t n,
                                    int64_t kk, bool signed_a, bool seven_bit, std::mt19937& rng) {
  const int64_t lda = (kk + 3) / 4 * 4 + 4;  // whole quads plus one more zero quad
  std::vector<int8_t> w(static_cast<size_t>(n * kk));
  std::vector<uint8_t> a(static_cast<size_t>(m * lda), 0);
  for (auto& v : w) v = static_cast<int8_t>(rng());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < kk; ++t) a[i * lda + t] = static_cast<uint8_t>(seven_bit ? rng() % 128 : rng());
  }
  const int64_t panels = lowbit::kernels::gemm_num_panels(n);
  std::vector<int8_t> packed(static_cast<size_t>(panels * lowbit::kernels::gemm_panel_bytes(kk)) + 1);
  std::vector<int32_t> col_sums(static_cast<size_t>(panels * 16), 0);
  lowbit::kernels::gemm_int8_pack_weight(w.data(), n, kk, packed.data(), col_sums.data());
  auto code = [&](int64_t i, int64_t t) {
    return signed_a ? int64_t{static_cast<int8_t>(a[i * lda + t])} : int64_t{a[i * lda + t]};
  };
  std::vector<int64_t> ref(static_cast<size_t>(m * n), 0);
  std::vector<int32_t> row_sums(static_cast<size_t>(m), 0);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t t = 0; t < kk; ++t) row_sums[i] += static_cast<int32_t>(code(i, t));
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t t = 0; t < kk; ++t) ref[i * n + j] += code(i, t) * w[j * kk + t];
    }
  }
  std::vector<int32_t> bias(static_cast<size_t>(panels * 16), 0), mult(bias.size(), 0), shift(bias.size(), 0),
      wzp(bias.size(), 0);
  for (int64_t j = 0; j < n; ++j) {
    bias[j] = static_cast<int32_t>(rng() % 20001) - 10000;
    mult[j] = (1 << 30) + static_cast<int32_t>(rng() % (1u << 30));
    // Channels 16..31 of every 32 hold one positive shift (real multiplier >= 1), so 8- and 16-lane
    // epilogue vectors come both with and without one (the no-left-shift shortcut).
    shift[j] = (j / 16) % 2 == 1 && j % 16 == 3 ? static_cast<int32_t>(rng() % 4)
                                               : -static_cast<int32_t>(8 + rng() % 10);
    wzp[j] = static_cast<int32_t>(rng() % 7) - 3;
  }
  const int ai = signed_a ? 1 : 0;
  const int64_t image_rows = 1 + m / 3, images = (m + image_rows - 1) / image_rows;
  for (int64_t r0 : {int64_t{0}, m / 2, m - 1}) {
    GemmInt8Args args = gemm_operands(a.data() + r0 * lda, lda, packed.data(), col_sums.data(), m - r0, n, kk);
    args.a_rows_padded = true;
    args.out_row_offset = r0;
    std::vector<int32_t> c(static_cast<size_t>(m * n) + 1, 0);
    args.c = c.data();
    args.ldc = n;
    k.gemm[ai][0](args, 0, m - r0, 0, panels);
    for (int64_t i = r0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        INFO(name << " " << k.names[ai][0] << " padded rows, offset " << r0 << " m " << m << " n " << n << " k " << kk
                  << " seven_bit " << seven_bit << " at " << i << "," << j);
        REQUIRE(int64_t{c[i * n + j]} == ref[i * n + j]);
      }
    }
    args.bias = bias.data();
    args.multiplier = mult.data();
    args.shift = shift.data();
    args.w_zero_point = wzp.data();
    args.row_sums = row_sums.data() + r0;
    args.out_zero_point = -5;
    args.qmin = -128;
    args.qmax = 127;
    args.out_type = GemmOutType::S8;
    args.rounding = RequantRounding::Double;
    std::vector<int8_t> out(static_cast<size_t>(images * image_rows * n) + 1, 0);
    args.out = out.data();
    args.out_transposed = true;
    args.ldo = image_rows;
    args.out_image_rows = image_rows;
    args.out_image_stride = image_rows * n;
    k.gemm[ai][1](args, 0, m - r0, 0, panels);
    for (int64_t i = r0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        const int64_t accum = ref[i * n + j] + bias[j] - int64_t{wzp[j]} * row_sums[i];
        const int32_t want = reference_requantize(static_cast<int32_t>(accum), mult[j], shift[j], -5, -128, 127,
                                                  RequantRounding::Double);
        const int64_t at = (i / image_rows) * image_rows * n + j * image_rows + i % image_rows;
        INFO(name << " " << k.names[ai][1] << " padded rows, offset " << r0 << " m " << m << " n " << n << " k " << kk
                  << " seven_bit " << seven_bit << " at " << i << "," << j);
        REQUIRE(int32_t{out[at]} == want);
      }
    }
  }
}

// u8 rows of 7-bit codes, zero-padded to whole quads and following each other (lda = the padded
// length: the layout int8_conv2d hands over, which AVX2 range-checks as one run), with a single
// code of 255 at the last real byte of one row. Against weights of 127 its vpmaddubsw pair
// (255·127 + ~110·127) would saturate, so the check must see it wherever it is.
inline void check_gemm_7bit_padded_rows(const GemmInt8Kernels& k, const std::string& name) {
  std::mt19937 rng(5);
  for (int64_t kk : {6, 28, 30, 66}) {  // kk - 1 odd: the 255 pairs with a real code
    const int64_t lda = (kk + 3) / 4 * 4, m = 37, n = 20;
    const int64_t panels = lowbit::kernels::gemm_num_panels(n);
    std::vector<int8_t> w(static_cast<size_t>(n * kk), 127);
    std::vector<int8_t> packed(static_cast<size_t>(panels * lowbit::kernels::gemm_panel_bytes(kk)) + 1);
    std::vector<int32_t> col_sums(static_cast<size_t>(panels * 16), 0);
    lowbit::kernels::gemm_int8_pack_weight(w.data(), n, kk, packed.data(), col_sums.data());
    for (int64_t hot : {int64_t{0}, m / 2, m - 1}) {
      std::vector<uint8_t> a(static_cast<size_t>(m * lda), 0);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t t = 0; t < kk; ++t) a[i * lda + t] = static_cast<uint8_t>(100 + rng() % 28);
      }
      a[hot * lda + kk - 1] = 255;
      GemmInt8Args args = gemm_operands(a.data(), lda, packed.data(), col_sums.data(), m, n, kk);
      args.a_rows_padded = true;
      std::vector<int32_t> c(static_cast<size_t>(m * n), 0);
      args.c = c.data();
      args.ldc = n;
      k.gemm[0][0](args, 0, m, 0, panels);
      for (int64_t i = 0; i < m; ++i) {
        int64_t want = 0;
        for (int64_t t = 0; t < kk; ++t) want += 127 * int64_t{a[i * lda + t]};
        for (int64_t j = 0; j < n; ++j) {
          INFO(name << " 7-bit padded rows, k " << kk << " 255 in row " << hot << " at " << i << "," << j);
          REQUIRE(int64_t{c[i * n + j]} == want);
        }
      }
    }
  }
}

inline void check_gemm_table(const GemmInt8Kernels& k, const std::string& name) {
  std::mt19937 rng(11);
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 16, 4}, {2, 17, 5}, {3, 33, 7},  {5, 15, 129}, {16, 16, 16},
                               {17, 31, 67}, {9, 48, 3}, {40, 1, 3}, {1, 100, 1000}, {8, 64, 64}, {20, 40, 130}};
  for (const auto& s : shapes) {
    for (int signed_a = 0; signed_a < 2; ++signed_a) {
      check_gemm_case(k, name, s[0], s[1], s[2], signed_a != 0, false, rng);
      if (!signed_a) check_gemm_case(k, name, s[0], s[1], s[2], false, true, rng);
    }
  }
  const int64_t conv_shapes[][3] = {{70, 16, 9}, {45, 33, 3}, {100, 32, 144}, {3, 16, 5}, {37, 17, 130}};
  for (const auto& s : conv_shapes) {
    check_gemm_conv_layouts(k, name, s[0], s[1], s[2], /*signed_a=*/true, false, rng);
    check_gemm_conv_layouts(k, name, s[0], s[1], s[2], /*signed_a=*/false, false, rng);
    check_gemm_conv_layouts(k, name, s[0], s[1], s[2], /*signed_a=*/false, /*seven_bit=*/true, rng);
  }
  check_gemm_7bit_padded_rows(k, name);
}

}  // namespace lowbit_int8_test
