// lowbit._C: importing it registers every op (the TORCH_LIBRARY blocks linked in) and exposes
// build and CPU facts. No function here takes or returns a Tensor, so the module does not link
// torch_python.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "kernels/dispatch.h"
#include "kernels/peak_probe.h"
#include "ops/recompute_workspace.h"

namespace py = pybind11;
using lowbit::kernels::Isa;

#ifndef LOWBIT_TORCH_VERSION
#define LOWBIT_TORCH_VERSION "unknown"
#endif
#ifndef LOWBIT_COMPILER
#define LOWBIT_COMPILER "unknown"
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "lowbit's C++ core: registers torch.ops.lowbit.* and reports build and CPU facts";
  // Fails the import with a clear message if LOWBIT_ISA names an unknown or unsupported path.
  lowbit::kernels::init_active_isa_from_env();

  m.def("cpu_features", [] {
    const auto& f = lowbit::kernels::cpu_features();
    py::dict d;
    d["avx2"] = f.avx2;
    d["fma"] = f.fma;
    d["f16c"] = f.f16c;
    d["avx512f"] = f.avx512f;
    d["avx512bw"] = f.avx512bw;
    d["avx512vl"] = f.avx512vl;
    d["avx512dq"] = f.avx512dq;
    d["avx512vnni"] = f.avx512vnni;
    d["avxvnni"] = f.avxvnni;
    d["subnormal_operands_full_speed"] = f.subnormal_operands_full_speed;
    d["avx512_emulated"] = f.avx512_emulated;
    return d;
  });
  m.def("supported_isas", [] {
    py::list out;
    for (int i = 0; i < lowbit::kernels::kNumIsas; ++i) {
      if (lowbit::kernels::isa_supported(static_cast<Isa>(i))) out.append(lowbit::kernels::isa_name(static_cast<Isa>(i)));
    }
    return out;
  });
  m.def("active_isa", [] { return std::string(lowbit::kernels::isa_name(lowbit::kernels::active_isa())); });
  m.def("set_active_isa", [](const std::string& name) {
    const auto isa = lowbit::kernels::parse_isa(name);
    if (!isa) throw py::value_error("lowbit: unknown kernel path '" + name + "'; use scalar, avx2 or avx512");
    try {
      lowbit::kernels::set_active_isa(*isa);
    } catch (const std::runtime_error& e) {
      throw py::value_error(e.what());
    }
  });
  // ---- integer kernels (issue 5) ----
  m.def("gemm_int8_kernel_name", [](bool signed_activations, bool requantize) {
    const auto& k = lowbit::kernels::gemm_int8_kernels();
    return std::string(k.names[signed_activations ? 1 : 0][requantize ? 1 : 0]);
  });
  // lowbit._recompute: forward fake-quantization outputs go to one reused workspace while a QAT
  // layer's input is recomputed in backward (ops/output_buffers.h has the contract).
  m.def("_set_recompute_workspace_active", &lowbit::ops::set_recompute_workspace_active, py::arg("active"));
  m.def("_release_recompute_workspace", &lowbit::ops::release_recompute_workspace);
  m.def("_recompute_workspace_bytes", &lowbit::ops::recompute_workspace_bytes);
  m.def("int4_kernel_name", [] { return std::string(lowbit::kernels::int4_kernels().name); });
  // Measured instruction-throughput ceilings (ops/s, one core) for benchmark "% of peak" columns.
  m.def("probe_peak", [](double seconds) {
    lowbit::kernels::PeakProbe probe;
    py::gil_scoped_release release;
    if (lowbit::kernels::isa_supported(Isa::Avx2)) lowbit::kernels::probe_peak_avx2(seconds, &probe);
    if (lowbit::kernels::cpu_features().avx512vnni && lowbit::kernels::isa_supported(Isa::Avx512)) {
      lowbit::kernels::probe_peak_avx512vnni(seconds, &probe);
    }
    py::gil_scoped_acquire acquire;
    py::dict d;
    d["int8_madd16"] = probe.int8_madd16_ops;
    d["int8_maddubs"] = probe.int8_maddubs_ops;
    d["int8_vnni"] = probe.int8_vnni_ops;
    d["fp32_fma"] = probe.fp32_fma_ops;
    return d;
  });
  // ---- end integer kernels ----
  m.attr("torch_version") = LOWBIT_TORCH_VERSION;
  m.attr("compiler") = LOWBIT_COMPILER;
  m.attr("cplusplus") = static_cast<long>(__cplusplus);
}
