// CPU feature detection and the active kernel path.
#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "kernels/dispatch.h"

namespace lowbit::kernels {

const CpuFeatures& cpu_features() {
  // __builtin_cpu_supports also checks that the OS saves the wide registers (XCR0), so an
  // AVX-512 CPU under an OS or hypervisor without AVX-512 state reports false.
  static const CpuFeatures features = [] {
    __builtin_cpu_init();
    CpuFeatures f;
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    f.f16c = __builtin_cpu_supports("f16c");
    f.avx512f = __builtin_cpu_supports("avx512f");
    f.avx512bw = __builtin_cpu_supports("avx512bw");
    f.avx512vl = __builtin_cpu_supports("avx512vl");
    f.avx512dq = __builtin_cpu_supports("avx512dq");
    f.avx512vnni = __builtin_cpu_supports("avx512vnni");
    f.avxvnni = __builtin_cpu_supports("avxvnni");
    f.subnormal_operands_full_speed = __builtin_cpu_is("amd");
#if defined(LOWBIT_EMULATE_AVX512)
    // The emulated AVX-512 sources are compiled with the AVX2 flags: they need AVX2/FMA/F16C.
    if (f.avx2 && f.fma && f.f16c) {
      f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512vnni = true;
      f.avx512_emulated = true;
    }
#endif
    return f;
  }();
  return features;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return avx2;
    case Isa::Avx512: return avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
  }
  return false;
}

Isa best_supported_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

const char* isa_name(Isa isa) {
  static constexpr const char* kNames[kNumIsas] = {"scalar", "avx2", "avx512"};
  return kNames[static_cast<int>(isa)];
}

std::optional<Isa> parse_isa(const std::string& name) {
  for (int i = 0; i < kNumIsas; ++i) {
    if (name == isa_name(static_cast<Isa>(i))) return static_cast<Isa>(i);
  }
  return std::nullopt;
}

namespace {
std::atomic<int> g_active_isa{-1};
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa)) {
    throw std::runtime_error(std::string("lowbit: kernel path '") + isa_name(isa) +
                             "' is not supported by this CPU (best available: '" +
                             isa_name(best_supported_isa()) + "')");
  }
  g_active_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
}

void init_active_isa_from_env() {
  const char* env = std::getenv("LOWBIT_ISA");
  if (env == nullptr || *env == '\0') {
    set_active_isa(best_supported_isa());
    return;
  }
  const auto isa = parse_isa(env);
  if (!isa) {
    throw std::runtime_error(std::string("lowbit: LOWBIT_ISA='") + env +
                             "' is not a kernel path; use one of scalar, avx2, avx512");
  }
  set_active_isa(*isa);
}

Isa active_isa() {
  const int v = g_active_isa.load(std::memory_order_relaxed);
  return v < 0 ? best_supported_isa() : static_cast<Isa>(v);
}

}  // namespace lowbit::kernels
