// Throughput probe, AVX-512 VNNI (see peak_probe.h). Compiled with the AVX-512 flags; call only
// on CPUs with AVX512-VNNI.
#include <immintrin.h>

#include <chrono>
#include <cstdint>

#include "kernels/peak_probe.h"

namespace lowbit::kernels {

#define LOWBIT_REPEAT12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

void probe_peak_avx512vnni(double seconds, PeakProbe* out) {
  using Clock = std::chrono::steady_clock;
#define DECL(i) __m512i a##i = _mm512_set1_epi32(i);
  LOWBIT_REPEAT12(DECL)
#undef DECL
  const __m512i x = _mm512_set1_epi8(3);
  __m512i w = _mm512_set1_epi8(-5);
  long iterations = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    for (long it = 0; it < (1 << 14); ++it) {
#define STEP(i) a##i = _mm512_dpbusd_epi32(a##i, x, w);
      LOWBIT_REPEAT12(STEP)
#undef STEP
#if !defined(LOWBIT_AVX512_EMULATION)  // the emulated __m512i is a union in memory, not a register
      __asm__ volatile("" : "+v"(w));
#endif
    }
    iterations += 1 << 14;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  int sink = 0;
  alignas(64) int32_t lanes[16];
#define SUM(i) _mm512_store_si512(lanes, a##i); sink += lanes[0];
  LOWBIT_REPEAT12(SUM)
#undef SUM
  volatile int keep = sink;
  (void)keep;
  out->int8_vnni_ops = 12.0 * 64 * 2 * static_cast<double>(iterations) / elapsed;
}

}  // namespace lowbit::kernels
