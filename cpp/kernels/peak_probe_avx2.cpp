// Throughput probes, AVX2 + FMA (see peak_probe.h). Each loop keeps its 12 accumulators in
// registers (plain locals, no captures) so it measures issue throughput, not store forwarding, and
// feeds each accumulator back into its own multiply: with loop-invariant operands the compiler
// would compute one product per iteration and the probe would time the adds. 12 chains cover the
// multiply latency (<= 5 cycles) at the throughputs measured here.
#include <immintrin.h>

#include <chrono>

#include "kernels/peak_probe.h"

namespace lowbit::kernels {
namespace {

using Clock = std::chrono::steady_clock;
constexpr long kBatch = 1 << 14;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

#define LOWBIT_REPEAT12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((noinline)) double probe_madd16(double seconds, int* sink) {
#define DECL(i) __m256i a##i = _mm256_set1_epi32(i);
  LOWBIT_REPEAT12(DECL)
#undef DECL
  __m256i w = _mm256_set1_epi16(-5);
  long iterations = 0;
  const auto start = Clock::now();
  do {
    for (long it = 0; it < kBatch; ++it) {
#define STEP(i) a##i = _mm256_add_epi32(a##i, _mm256_madd_epi16(a##i, w));
      LOWBIT_REPEAT12(STEP)
#undef STEP
      __asm__ volatile("" : "+x"(w));
    }
    iterations += kBatch;
  } while (seconds_since(start) < seconds);
  const double elapsed = seconds_since(start);
#define SUM(i) *sink += _mm256_extract_epi32(a##i, 0);
  LOWBIT_REPEAT12(SUM)
#undef SUM
  return 12.0 * 16 * 2 * static_cast<double>(iterations) / elapsed;
}

__attribute__((noinline)) double probe_maddubs(double seconds, int* sink) {
#define DECL(i) __m256i a##i = _mm256_set1_epi32(i);
  LOWBIT_REPEAT12(DECL)
#undef DECL
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i w = _mm256_set1_epi8(-5);
  long iterations = 0;
  const auto start = Clock::now();
  do {
    for (long it = 0; it < kBatch; ++it) {
#define STEP(i) a##i = _mm256_add_epi32(a##i, _mm256_madd_epi16(_mm256_maddubs_epi16(a##i, w), ones));
      LOWBIT_REPEAT12(STEP)
#undef STEP
      __asm__ volatile("" : "+x"(w));
    }
    iterations += kBatch;
  } while (seconds_since(start) < seconds);
  const double elapsed = seconds_since(start);
#define SUM(i) *sink += _mm256_extract_epi32(a##i, 0);
  LOWBIT_REPEAT12(SUM)
#undef SUM
  return 12.0 * 32 * 2 * static_cast<double>(iterations) / elapsed;
}

__attribute__((noinline)) double probe_fma(double seconds, int* sink) {
#define DECL(i) __m256 a##i = _mm256_set1_ps(static_cast<float>(i));
  LOWBIT_REPEAT12(DECL)
#undef DECL
  const __m256 m = _mm256_set1_ps(0.999f);
  __m256 b = _mm256_set1_ps(1e-4f);
  long iterations = 0;
  const auto start = Clock::now();
  do {
    for (long it = 0; it < kBatch; ++it) {
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, m, b);
      LOWBIT_REPEAT12(STEP)
#undef STEP
      __asm__ volatile("" : "+x"(b));
    }
    iterations += kBatch;
  } while (seconds_since(start) < seconds);
  const double elapsed = seconds_since(start);
#define SUM(i) *sink += static_cast<int>(_mm256_cvtss_f32(a##i));
  LOWBIT_REPEAT12(SUM)
#undef SUM
  return 12.0 * 8 * 2 * static_cast<double>(iterations) / elapsed;
}

}  // namespace

void probe_peak_avx2(double seconds, PeakProbe* out) {
  int sink = 0;
  out->int8_madd16_ops = probe_madd16(seconds, &sink);
  out->int8_maddubs_ops = probe_maddubs(seconds, &sink);
  out->fp32_fma_ops = probe_fma(seconds, &sink);
  volatile int keep = sink;
  (void)keep;
}

}  // namespace lowbit::kernels
