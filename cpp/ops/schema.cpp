// Every lowbit op, defined once. Kernels register per backend next to their code
// (cpp/ops/register_cpu.cpp); fake (meta) kernels and autograd formulas are registered in the one
// Python module named here, python/lowbit/_registrations.py.
//
// Conventions (DESIGN.md): quantizer parameters are tensors whose shape, left-padded with ones to
// x.dim(), divides x.shape (granularity); (qmin, qmax) is the integer range; `rounding` is one of
// half_even | half_away | half_up | floor | ceil | stochastic; stochastic rounding draws from
// Philox keyed by `seed` (an int64 tensor of one element) at counter offset + element index.
#include <torch/library.h>

TORCH_LIBRARY(lowbit, m) {
  m.set_python_module("lowbit._registrations");
  const std::vector<at::Tag> tags = {at::Tag::pt2_compliant_tag};

  // ---- affine family -----------------------------------------------------------------------
  m.def(
      "quantize_affine(Tensor x, Tensor scale, Tensor zero_point, int qmin, int qmax, "
      "str rounding=\"half_even\", Tensor? seed=None, int offset=0) -> Tensor",
      tags);
  m.def("dequantize_affine(Tensor q, Tensor scale, Tensor zero_point, ScalarType? dtype=None) -> Tensor",
        tags);
  m.def(
      "fake_quantize_affine(Tensor x, Tensor scale, Tensor zero_point, int qmin, int qmax, "
      "str rounding=\"half_even\", str ste=\"integer\", Tensor? seed=None, int offset=0, "
      "Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "fake_quantize_affine_backward(Tensor grad, Tensor x, Tensor scale, Tensor zero_point, "
      "int qmin, int qmax, str rounding=\"half_even\", str ste=\"integer\", Tensor? seed=None, "
      "int offset=0, Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "choose_qparams(Tensor min_val, Tensor max_val, int qmin, int qmax, bool symmetric=False, "
      "str method=\"observer\", float eps=1.1920928955078125e-07) -> (Tensor, Tensor)",
      tags);

  // ---- observers: update buffers in place, no autograd ---------------------------------------
  m.def("observe_minmax_(Tensor x, Tensor(a!) min_val, Tensor(b!) max_val, Tensor? enabled=None) -> ()",
        tags);
  m.def(
      "observe_moving_average_minmax_(Tensor x, Tensor(a!) min_val, Tensor(b!) max_val, "
      "float averaging_constant=0.01, Tensor? enabled=None) -> ()",
      tags);

  // ---- integer inference (issue 5): requantization, int8 GEMM ---------------------------------
  // Fixed-point requantization of METHODS §9 (TFLite convention): real ≈ multiplier·2^(shift-31).
  // rounding: "double" (gemmlowp/TFLite default) | "single" (TFLITE_SINGLE_ROUNDING).
  m.def("quantize_multiplier(Tensor real_multiplier, str rounding=\"double\") -> (Tensor, Tensor)", tags);
  m.def(
      "requantize(Tensor acc, Tensor multiplier, Tensor shift, Tensor zero_point, int qmin, int qmax, "
      "str rounding=\"double\") -> Tensor",
      tags);
}
