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
  // int8 GEMM (cpp/kernels/gemm_int8.h): weights packed once into 16-channel panels of k quads;
  // activations u8 or s8; exact int32 accumulation; int8_linear fuses zero-point folding, bias
  // and requantization into the epilogue.
  m.def("int8_pack_weight(Tensor weight) -> (Tensor, Tensor)", tags);
  m.def("int8_unpack_weight(Tensor packed_weight, int n, int k) -> Tensor", tags);
  m.def("int8_gemm(Tensor a, Tensor packed_weight, Tensor weight_col_sums) -> Tensor", tags);
  m.def(
      "int8_linear(Tensor x, Tensor packed_weight, Tensor weight_col_sums, Tensor? bias, Tensor x_zero_point, "
      "Tensor weight_zero_point, Tensor multiplier, Tensor shift, Tensor out_zero_point, int qmin, int qmax, "
      "str rounding=\"double\") -> Tensor",
      tags);
  // int8 convolution, NCHW codes in and out: channels-last im2col over the batch per group
  // (padding = the input zero point; weights packed in (kh, kw, c) order) into the int8_linear
  // GEMM, written channel-major per image by its epilogue.
  m.def("int8_pack_conv_weight(Tensor weight, int groups=1) -> (Tensor, Tensor)", tags);
  m.def(
      "int8_conv2d(Tensor x, Tensor packed_weight, Tensor weight_col_sums, Tensor? bias, Tensor x_zero_point, "
      "Tensor weight_zero_point, Tensor multiplier, Tensor shift, Tensor out_zero_point, int qmin, int qmax, "
      "int[2] kernel_size, int[2] stride=[1, 1], int[2] padding=[0, 0], int[2] dilation=[1, 1], int groups=1, "
      "str rounding=\"double\") -> Tensor",
      tags);
  // Max pooling on uint8/int8 codes (NCHW or CHW), torch.nn.functional.max_pool2d's semantics
  // (padding never selected, ceil_mode, dilation; stride [] = kernel_size): a max of codes is the
  // code of the max, so it runs on the codes' grid with no arithmetic.
  m.def(
      "int8_max_pool2d(Tensor x, int[2] kernel_size, int[2] stride=[], int[2] padding=[0, 0], "
      "int[2] dilation=[1, 1], bool ceil_mode=False) -> Tensor",
      tags);
  // Residual addition of two quantized tensors (TFLite's integer ADD): zero_points, multipliers and
  // shifts are int32 [3] for (a, b, out); lowbit.ops.int8_add_params derives them from scales.
  m.def(
      "int8_add(Tensor a, Tensor b, Tensor zero_points, Tensor multipliers, Tensor shifts, int qmin, int qmax, "
      "int left_shift=20, str rounding=\"double\") -> Tensor",
      tags);
  // int4 weight-only linear (cpp/kernels/int4_weight.h): 4-bit codes packed 8 per int32, per-group
  // scale and integer zero point (their [N, K / group] shape sets the group), float activations.
  // int4_weight_linear packs the parameters per call; int4_weight_linear_packed takes them packed
  // once by int4_pack_params (what a deployed layer stores).
  m.def("int4_pack_weight(Tensor codes) -> Tensor", tags);
  m.def("int4_unpack_weight(Tensor packed_weight, int n) -> Tensor", tags);
  m.def("int4_pack_params(Tensor scale, Tensor zero_point) -> Tensor", tags);
  m.def(
      "int4_weight_linear(Tensor x, Tensor packed_weight, Tensor scale, Tensor zero_point, Tensor? bias=None) "
      "-> Tensor",
      tags);
  m.def(
      "int4_weight_linear_packed(Tensor x, Tensor packed_weight, Tensor packed_params, int n, Tensor? bias=None) "
      "-> Tensor",
      tags);
}

// ---- estimators: learnable and soft gradient estimators (issue 4) ----------------------------
// Each forward op has a `_backward` op returning dx and the parameter gradients, reduced in the
// same pass. Parameters are tensors shaped by the granularity convention; parameters of one op
// share one shape. `rounding` is "half_even" or "stochastic" (Philox stream `seed`, element i at
// counter seed_offset + i); ops whose forward does not round take no rounding. Optional parameter
// gradients that do not exist (no offset, no gamma) come back as empty tensors.
TORCH_LIBRARY_FRAGMENT(lowbit, m) {
  m.set_python_module("lowbit._registrations");
  const std::vector<at::Tag> tags = {at::Tag::pt2_compliant_tag};

  m.def(
      "fake_quantize_lsq(Tensor x, Tensor scale, Tensor? offset, int qmin, int qmax, float grad_scale=1.0, "
      "str rounding=\"half_even\", Tensor? seed=None, int seed_offset=0, Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "fake_quantize_lsq_backward(Tensor grad, Tensor x, Tensor scale, Tensor? offset, int qmin, int qmax, "
      "float grad_scale=1.0, str rounding=\"half_even\", Tensor? seed=None, int seed_offset=0, "
      "Tensor? enabled=None) -> (Tensor, Tensor, Tensor)",
      tags);
  m.def(
      "fake_quantize_learnable(Tensor x, Tensor scale, Tensor zero_point, int qmin, int qmax, "
      "float grad_factor=1.0, Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "fake_quantize_learnable_backward(Tensor grad, Tensor x, Tensor scale, Tensor zero_point, int qmin, "
      "int qmax, float grad_factor=1.0, Tensor? enabled=None) -> (Tensor, Tensor, Tensor)",
      tags);
  m.def(
      "fake_quantize_pact(Tensor x, Tensor alpha, int bits, bool signed=False, str rounding=\"half_even\", "
      "Tensor? seed=None, int seed_offset=0, Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "fake_quantize_pact_backward(Tensor grad, Tensor x, Tensor alpha, int bits, bool signed=False, "
      "str rounding=\"half_even\", Tensor? seed=None, int seed_offset=0, Tensor? enabled=None) -> (Tensor, Tensor)",
      tags);
  m.def(
      "fake_quantize_qil(Tensor x, Tensor c, Tensor d, Tensor? gamma, int bits, bool weight=True, "
      "str rounding=\"half_even\", Tensor? seed=None, int seed_offset=0, Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "fake_quantize_qil_backward(Tensor grad, Tensor x, Tensor c, Tensor d, Tensor? gamma, int bits, "
      "bool weight=True, str rounding=\"half_even\", Tensor? seed=None, int seed_offset=0, "
      "Tensor? enabled=None) -> (Tensor, Tensor, Tensor, Tensor)",
      tags);
  m.def(
      "fake_quantize_dsq(Tensor x, Tensor lower, Tensor upper, Tensor alpha, int bits, str mode=\"hard\", "
      "str rounding=\"half_even\", Tensor? seed=None, int seed_offset=0, Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "fake_quantize_dsq_backward(Tensor grad, Tensor x, Tensor lower, Tensor upper, Tensor alpha, int bits, "
      "str mode=\"hard\", str rounding=\"half_even\", Tensor? seed=None, int seed_offset=0, "
      "Tensor? enabled=None) -> (Tensor, Tensor, Tensor, Tensor)",
      tags);
  m.def(
      "fake_quantize_sigmoid(Tensor x, Tensor levels, Tensor thresholds, Tensor alpha, Tensor beta, "
      "Tensor temperature, bool hard=False, Tensor? enabled=None) -> Tensor",
      tags);
  m.def(
      "fake_quantize_sigmoid_backward(Tensor grad, Tensor x, Tensor levels, Tensor thresholds, Tensor alpha, "
      "Tensor beta, Tensor temperature, bool hard=False, Tensor? enabled=None) -> (Tensor, Tensor, Tensor)",
      tags);
}
// ---- end estimators --------------------------------------------------------------------------
