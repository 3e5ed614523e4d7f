// Throughput probes for benchmarks: the rate (per core, operations per second, one operation =
// one multiply or one add, so a MAC counts 2) of the instruction sequences the int8 GEMM kernels
// are built on, in register-only loops with 12 independent accumulators. Benchmarks report "% of
// peak" against these measured ceilings instead of a clock-speed guess (VMs hide the clock).
#pragma once

namespace lowbit::kernels {

struct PeakProbe {
  double int8_madd16_ops = 0;    // AVX2 vpmaddwd + vpaddd on int16-widened bytes (exact path)
  double int8_maddubs_ops = 0;   // AVX2 vpmaddubsw + vpmaddwd + vpaddd (FBGEMM acc32 / 7-bit path)
  double int8_vnni_ops = 0;      // AVX-512 VNNI vpdpbusd (0 when not run)
  double fp32_fma_ops = 0;       // AVX2 vfmadd231ps ymm
};

// Each probe runs for about `seconds`; only call the ones the CPU supports.
void probe_peak_avx2(double seconds, PeakProbe* out);
void probe_peak_avx512vnni(double seconds, PeakProbe* out);

}  // namespace lowbit::kernels
