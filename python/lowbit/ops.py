"""Typed, documented wrappers of ``torch.ops.lowbit.*``.

Conventions shared by every op (see DESIGN.md):

* **Granularity is the parameter's shape.** ``scale`` / ``zero_point`` (and observer buffers) have
  a shape that, left-padded with ones to ``x.dim()``, divides ``x.shape`` dimension by dimension;
  each element covers one block. Per-tensor: ``[1]`` or ``[]``; per-channel along axis 1 of NCHW:
  ``[1, C, 1, 1]``; per-group of a ``[N, K]`` weight: ``[N, K // g]``. A shape that does not tile
  the input is an error, never silently reshaped.
* ``(qmin, qmax)``: the integer range, 2–16 bits, signed or unsigned.
* ``rounding``: ``"half_even"`` (default, what PyTorch's fake-quant ops do), ``"half_away"``,
  ``"half_up"``, ``"floor"``, ``"ceil"`` or ``"stochastic"``. Stochastic rounding is reproducible:
  element *i* uses Philox draw ``offset + i`` of stream ``seed``.
* Inputs float32/float16/bfloat16, any shape and strides; math in float32; outputs in the input's
  dtype (contiguous).
* Non-finite inputs: ±Inf saturates to the qmax/qmin level with zero gradient; NaN stays NaN in
  fake quantization (gradient 0) and becomes the zero point in integer codes.

Parameters reach the ops as tensors, never Python floats, so ``torch.compile`` neither guards on
their values nor breaks the graph.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from ._registrations import code_dtype

ROUNDINGS = ("half_even", "half_away", "half_up", "floor", "ceil", "stochastic")
STES = ("integer", "real", "identity")
QPARAM_METHODS = ("observer", "fbgemm")

Seed = Union[int, torch.Tensor, None]

__all__ = [
    "ROUNDINGS",
    "STES",
    "code_dtype",
    "quantize_affine",
    "dequantize_affine",
    "fake_quantize_affine",
    "choose_qparams",
    "observe_minmax_",
    "observe_moving_average_minmax_",
]


def _as_param(value, dtype: torch.dtype, like: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (int, float)):
        # Convenient in eager code; under torch.compile pass tensors (a Python number is a guard).
        return torch.tensor([value], dtype=dtype, device=like.device)
    raise TypeError(f"{name} must be a tensor (or a Python number), got {type(value).__name__}")


def _seed_tensor(seed: Seed, rounding: str, like: torch.Tensor) -> Optional[torch.Tensor]:
    if rounding != "stochastic":
        return None
    if seed is None:
        # Drawn from torch's global generator: torch.manual_seed makes the run reproducible.
        return torch.randint(0, 2**62, (1,), dtype=torch.int64, device=like.device)
    if isinstance(seed, torch.Tensor):
        return seed
    if isinstance(seed, int):
        return torch.tensor([seed], dtype=torch.int64, device=like.device)
    raise TypeError(f"seed must be an int, an int64 tensor or None, got {type(seed).__name__}")


def quantize_affine(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, *,
                    rounding: str = "half_even", seed: Seed = None, offset: int = 0) -> torch.Tensor:
    """Integer codes ``clamp(zero_point + R(x * (1/scale)), qmin, qmax)``.

    Returns the smallest integer dtype that holds ``[qmin, qmax]`` (uint8, int8, int16, else
    int32). NaN maps to the zero point. See the module docstring for granularity and rounding.
    """
    scale = _as_param(scale, torch.float32, x, "scale")
    zero_point = _as_param(zero_point, torch.int32, x, "zero_point")
    return torch.ops.lowbit.quantize_affine(x, scale, zero_point, qmin, qmax, rounding,
                                            _seed_tensor(seed, rounding, x), offset)


def dequantize_affine(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, *,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Real values ``(q - zero_point) * scale`` from integer codes (uint8/int8/int16/int32)."""
    scale = _as_param(scale, torch.float32, q, "scale")
    zero_point = _as_param(zero_point, torch.int32, q, "zero_point")
    return torch.ops.lowbit.dequantize_affine(q, scale, zero_point, dtype)


def fake_quantize_affine(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, *,
                         rounding: str = "half_even", ste: str = "integer", seed: Seed = None, offset: int = 0,
                         enabled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fake quantization ``(clamp(z + R(x/s), qmin, qmax) - z) * s``, differentiable in ``x``.

    With ``rounding="half_even"`` and ``ste="integer"`` this equals
    ``torch.fake_quantize_per_tensor_affine`` / ``per_channel_affine`` bit for bit, outputs and
    input gradients.

    Args:
        ste: the gradient estimator for ``x``. ``"integer"``: pass where the rounded code lies in
            ``[qmin, qmax]`` (PyTorch); ``"real"``: pass where ``x`` lies in the real clip range
            ``[(qmin - z)s, (qmax - z)s]`` (TensorRT / TF); ``"identity"``: always pass.
        seed, offset: the stochastic-rounding stream (ignored for other roundings). ``seed=None``
            draws one from torch's global generator.
        enabled: optional one-element bool tensor; when it holds False the op returns ``x`` (a
            copy) and passes gradients through unchanged. A tensor, so toggling it never
            recompiles a compiled graph.
    """
    scale = _as_param(scale, torch.float32, x, "scale")
    zero_point = _as_param(zero_point, torch.int32, x, "zero_point")
    return torch.ops.lowbit.fake_quantize_affine(x, scale, zero_point, qmin, qmax, rounding, ste,
                                                 _seed_tensor(seed, rounding, x), offset, enabled)


def choose_qparams(min_val: torch.Tensor, max_val: torch.Tensor, qmin: int, qmax: int, *, symmetric: bool = False,
                   method: str = "observer", eps: float = 2.0**-23) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale float32, zero_point int32)`` from observed ranges, elementwise over the tensors.

    Args:
        method: ``"observer"`` — torch.ao's observers (``MinMaxObserver`` & co.), float32 math,
            ``scale >= eps``; ``"fbgemm"`` — ``fbgemm::ChooseQuantizationParams`` as used by
            ``torch.fused_moving_avg_obs_fake_quant`` (0.1 for a degenerate range, a 6.1e-5
            small-scale cutoff, zero point from the more precise end). The two disagree on
            purpose; METHODS.md §1.2–1.3 lists where.
        symmetric: zero point 0 for signed ranges, ``(qmin + qmax + 1) // 2`` for unsigned ones.

    A never-observed range (``min=+inf, max=-inf``) gives ``(1.0, 0)``. NaN, infinite or
    inverted ranges are errors.
    """
    return torch.ops.lowbit.choose_qparams(min_val, max_val, qmin, qmax, symmetric, method, eps)


def observe_minmax_(x: torch.Tensor, min_val: torch.Tensor, max_val: torch.Tensor, *,
                    enabled: Optional[torch.Tensor] = None) -> None:
    """Running min/max: ``min_val = min(min_val, block_min(x))`` in place (and max likewise).

    The buffers' shape sets the granularity (it must tile ``x``). NaN elements are ignored; an
    empty ``x`` changes nothing. Start the buffers at ``+inf`` / ``-inf``.
    """
    torch.ops.lowbit.observe_minmax_(x, min_val, max_val, enabled)


def observe_moving_average_minmax_(x: torch.Tensor, min_val: torch.Tensor, max_val: torch.Tensor, *,
                                   averaging_constant: float = 0.01,
                                   enabled: Optional[torch.Tensor] = None) -> None:
    """Moving-average min/max (torch.ao ``MovingAverageMinMaxObserver``) in place.

    The first observation (buffers still ``+inf`` / ``-inf``) is copied; later ones update
    ``m += c * (batch - m)``. NaN elements are ignored.
    """
    torch.ops.lowbit.observe_moving_average_minmax_(x, min_val, max_val, averaging_constant, enabled)


# ---- integer inference (issue 5): requantization, int8 GEMM -------------------------------------

REQUANT_ROUNDINGS = ("double", "single")
__all__ += ["REQUANT_ROUNDINGS", "quantize_multiplier", "requantize"]


def quantize_multiplier(real_multiplier, *, rounding: str = "double") -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-point form of a real multiplier, elementwise: ``(multiplier int32, shift int32)``.

    TFLite's ``QuantizeMultiplier`` (METHODS §9.1): ``real ≈ multiplier · 2^(shift - 31)`` with
    ``multiplier`` in ``[2^30, 2^31)`` (a Q31 mantissa, rounded half away from zero) or 0 for a
    zero or tiny (``< 2^-32``) real. ``shift <= 0`` means a right shift. With ``rounding="single"``
    (``TFLITE_SINGLE_ROUNDING``) shifts above 30 are clamped to ``(2^31 - 1, 30)`` as TFLite does.

    Args:
        real_multiplier: float64 tensor (float32 is widened exactly), or a Python float; every
            element finite, ``>= 0`` and below 2^31. For a layer ``M = S_in · S_w / S_out``
            computed in float64 (TFLite: ``double(S_in) * double(S_w) / double(S_out)``).
        rounding: ``"double"`` or ``"single"``, the variant ``requantize`` will run.
    """
    if not isinstance(real_multiplier, torch.Tensor):
        real_multiplier = torch.tensor(real_multiplier, dtype=torch.float64)
    return torch.ops.lowbit.quantize_multiplier(real_multiplier, rounding)


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor, zero_point, qmin: int, qmax: int,
               *, rounding: str = "double") -> torch.Tensor:
    """Integer codes ``clamp(zero_point + MultiplyByQuantizedMultiplier(acc, multiplier, shift), qmin, qmax)``.

    The fixed-point requantization of integer-only inference (Jacob et al. 2018; gemmlowp; TFLite),
    bit-exact on every kernel path. ``[qmin, qmax]`` also expresses a fused ReLU
    (``qmin = zero_point``) or ReLU6.

    Args:
        acc: int32 accumulators, any shape.
        multiplier, shift: int32 tensors of one shape (as :func:`quantize_multiplier` returns). Their
            shape sets the granularity like ``scale`` does elsewhere: left-padded with ones to
            ``acc.dim()`` it must divide ``acc.shape``; ``[1]`` is per-tensor, ``[N]`` per output
            channel of a ``[M, N]`` GEMM result, ``[1, C, 1, 1]`` per channel of NCHW.
        zero_point: integer tensor of ``multiplier``'s shape or with one element (or an int); inside
            ``[qmin, qmax]``.
        qmin, qmax: output range inside int32; the output dtype is the smallest of uint8, int8,
            int16, int32 that holds it.
        rounding: ``"double"`` (default; SRDHM rounding half toward +inf, then a rounding right
            shift, half away from zero) or ``"single"`` (one rounding of the exact 64-bit product,
            half toward +inf). They differ on some inputs, e.g. acc=5, M=0.25: 2 vs 1.
    """
    zero_point = _as_param(zero_point, torch.int32, acc, "zero_point")
    return torch.ops.lowbit.requantize(acc, multiplier, shift, zero_point, qmin, qmax, rounding)

__all__ += ["int8_pack_weight", "int8_unpack_weight", "int8_gemm", "int8_linear", "int8_gemm_kernel_name"]


def int8_pack_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack an int8 weight ``[N, K]`` (``[out_features, in_features]``) once for the int8 GEMM.

    Returns ``(packed_weight, weight_col_sums)``: ``packed_weight`` is int8 of shape
    ``[ceil(N/16), K, 16]``, an opaque blob of 16-channel panels with k in quads of 4 (layout in
    ``cpp/kernels/gemm_int8.h``; the same on every kernel path, so a packed weight can be saved and
    loaded anywhere; its shape carries K exactly, so a mismatched input is an error) and
    ``weight_col_sums`` is int32 ``[N]`` with ``Σ_k weight[n, k]`` (for zero-point folding). Keep
    both as module buffers; :func:`int8_unpack_weight` inverts the packing exactly.
    """
    return torch.ops.lowbit.int8_pack_weight(weight)


def int8_unpack_weight(packed_weight: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """The int8 ``[n, k]`` weight that :func:`int8_pack_weight` packed into ``packed_weight``."""
    return torch.ops.lowbit.int8_unpack_weight(packed_weight, n, k)


def int8_gemm(a: torch.Tensor, packed_weight: torch.Tensor, weight_col_sums: torch.Tensor) -> torch.Tensor:
    """Exact integer product ``a @ weight.T`` in int32: ``out[..., n] = Σ_k a[..., k] · weight[n, k]``.

    ``a`` holds uint8 or int8 codes of shape ``[..., K]``; zero points are not applied (see
    :func:`int8_linear`). Exact by construction: ``K`` is limited to 65793 for uint8 and 131071
    for int8 activations, where the worst-case sum still fits in int32 (larger ``K`` is an error).
    """
    return torch.ops.lowbit.int8_gemm(a, packed_weight, weight_col_sums)


def int8_linear(x: torch.Tensor, packed_weight: torch.Tensor, weight_col_sums: torch.Tensor,
                bias: Optional[torch.Tensor], x_zero_point, weight_zero_point, multiplier: torch.Tensor,
                shift: torch.Tensor, out_zero_point, qmin: int, qmax: int, *, rounding: str = "double") -> torch.Tensor:
    """Quantized linear layer on integer codes, requantization fused into the GEMM epilogue.

    ``out = clamp(z_out + MBQM(Σ_k (x - z_x)(w - z_w[n]) + bias[n], multiplier[n], shift[n]), qmin, qmax)``
    with ``MBQM`` the fixed-point multiply of :func:`requantize` (``rounding`` ``"double"`` or
    ``"single"``), evaluated exactly in int32: the zero-point terms are folded into one int32 per
    output channel (``bias - z_x·Σ_k w + K·z_x·z_w``), and ``z_w·Σ_k x`` per row is only computed
    when some weight zero point is nonzero. Bit-exact on every kernel path.

    Args:
        x: uint8 or int8 activation codes ``[..., K]``.
        packed_weight, weight_col_sums: from :func:`int8_pack_weight` of the int8 weight ``[N, K]``.
        bias: int32 ``[N]`` at scale ``x_scale · w_scale`` with zero point 0 (TFLite convention), or None.
        x_zero_point, out_zero_point: one element each (tensor or int).
        weight_zero_point: one element or ``[N]`` (int8 range; 0 for symmetric weights).
        multiplier, shift: int32, one element or ``[N]``, from :func:`quantize_multiplier` of
            ``x_scale · w_scale[n] / out_scale`` (float64).
        qmin, qmax: output range, inside uint8 (uint8 output) or int8 (int8 output); a fused ReLU
            is ``qmin = out_zero_point``.

    Raises if the worst-case accumulator for these dtypes, zero points and ``K`` could exceed int32.
    """
    x_zero_point = _as_param(x_zero_point, torch.int32, x, "x_zero_point")
    weight_zero_point = _as_param(weight_zero_point, torch.int32, x, "weight_zero_point")
    out_zero_point = _as_param(out_zero_point, torch.int32, x, "out_zero_point")
    return torch.ops.lowbit.int8_linear(x, packed_weight, weight_col_sums, bias, x_zero_point, weight_zero_point,
                                        multiplier, shift, out_zero_point, qmin, qmax, rounding)


def int8_gemm_kernel_name(activation_dtype: torch.dtype = torch.uint8, epilogue: str = "rq") -> str:
    """XNNPACK-style name of the GEMM kernel the active path runs, e.g. ``qu8s8_gemm_rq_2x16c4__avx2``."""
    from . import _C

    return _C.gemm_int8_kernel_name(activation_dtype == torch.int8, epilogue == "rq")

__all__ += ["int4_pack_weight", "int4_unpack_weight", "int4_weight_linear"]


def int4_pack_weight(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit weight codes ``[N, K]`` (integers in ``[0, 15]``, ``K % 8 == 0``) for
    :func:`int4_weight_linear`: int32 ``[ceil(N/8), K/8, 8]``, eight nibbles per word (layout in
    ``cpp/kernels/int4_weight.h``; the same on every kernel path). Typically the codes come from
    :func:`quantize_affine` with ``(qmin, qmax) = (0, 15)`` and a ``[N, K // group]`` scale.
    """
    return torch.ops.lowbit.int4_pack_weight(codes)


def int4_unpack_weight(packed_weight: torch.Tensor, n: int) -> torch.Tensor:
    """The uint8 codes ``[n, K]`` that :func:`int4_pack_weight` packed."""
    return torch.ops.lowbit.int4_unpack_weight(packed_weight, n)


def int4_weight_linear(x: torch.Tensor, packed_weight: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                       bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Weight-only int4 linear layer: ``y = x @ ((q - zero_point) * scale).T + bias``.

    Args:
        x: float32, bfloat16 or float16 activations ``[..., K]``; computed in float32, returned in
            ``x``'s dtype.
        packed_weight: from :func:`int4_pack_weight` of the codes ``q`` ``[N, K]``.
        scale: ``[N, K // group]`` positive scales (any float dtype; used as float32). Its shape sets
            the group size (a multiple of 8); ``[N, 1]`` is per channel.
        zero_point: integer ``[N, K // group]`` in ``[0, 15]`` (8 for symmetric int4).
        bias: optional float ``[N]``.

    Float arithmetic in a fixed order (``cpp/kernels/int4_weight.h``), so every kernel path gives
    the same bits; against a float64 reference the error is that of float32 accumulation.
    """
    return torch.ops.lowbit.int4_weight_linear(x, packed_weight, scale, zero_point, bias)

__all__ += ["int8_pack_conv_weight", "int8_conv2d"]


def _pair(v) -> list:
    return [int(v), int(v)] if isinstance(v, int) else [int(e) for e in v]


def int8_pack_conv_weight(weight: torch.Tensor, groups: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack an int8 convolution weight ``[OC, C / groups, kH, kW]`` once for :func:`int8_conv2d`.

    Returns ``(packed_weight, weight_col_sums)``: int8 ``[groups, ceil(OC/groups/16), C/groups·kH·kW, 16]``
    (each group packed like :func:`int8_pack_weight` of its ``[OC/groups, C/groups·kH·kW]`` slice) and
    int32 ``[OC]`` sums of each filter.
    """
    return torch.ops.lowbit.int8_pack_conv_weight(weight, groups)


def int8_conv2d(x: torch.Tensor, packed_weight: torch.Tensor, weight_col_sums: torch.Tensor,
                bias: Optional[torch.Tensor], x_zero_point, weight_zero_point, multiplier: torch.Tensor,
                shift: torch.Tensor, out_zero_point, qmin: int, qmax: int, kernel_size, stride=1, padding=0,
                dilation=1, groups: int = 1, *, rounding: str = "double") -> torch.Tensor:
    """Quantized 2-D convolution on NCHW integer codes with the requantization fused (see
    :func:`int8_linear` for the arithmetic and the parameters, which here are per output channel).

    Zero padding pads with ``x_zero_point`` (the code of real 0). ``groups`` covers grouped and
    depthwise (``groups = C``) convolutions. Output: NCHW codes, uint8 or int8 by ``(qmin, qmax)``.
    """
    x_zero_point = _as_param(x_zero_point, torch.int32, x, "x_zero_point")
    weight_zero_point = _as_param(weight_zero_point, torch.int32, x, "weight_zero_point")
    out_zero_point = _as_param(out_zero_point, torch.int32, x, "out_zero_point")
    return torch.ops.lowbit.int8_conv2d(x, packed_weight, weight_col_sums, bias, x_zero_point, weight_zero_point,
                                        multiplier, shift, out_zero_point, qmin, qmax, _pair(kernel_size),
                                        _pair(stride), _pair(padding), _pair(dilation), groups, rounding)

__all__ += ["int8_add_params", "int8_add"]


def int8_add_params(a_scale, b_scale, out_scale, *, left_shift: int = 20,
                    rounding: str = "double") -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-point ``(multipliers, shifts)`` (int32 ``[3]``: a, b, out) for :func:`int8_add`, by TFLite's
    recipe: with ``t = 2·max(Sa, Sb)``, the inputs are rescaled by ``Sa/t`` and ``Sb/t`` (both <= 1/2)
    and the sum by ``t / (2^left_shift · S_out)``, each through :func:`quantize_multiplier` in float64.
    Scales are tensors or Python floats (one element each).
    """
    def as64(v):  # float32 scales widen exactly, as TFLite widens its float scales to double
        return (v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.float64)).to(torch.float64).reshape(1)

    sa, sb, so = as64(a_scale), as64(b_scale), as64(out_scale)
    twice_max = 2.0 * torch.maximum(sa, sb)
    real = torch.cat([sa / twice_max, sb / twice_max, twice_max / (2.0**left_shift * so)])
    return quantize_multiplier(real, rounding=rounding)


def int8_add(a: torch.Tensor, b: torch.Tensor, zero_points, multipliers: torch.Tensor, shifts: torch.Tensor,
             qmin: int, qmax: int, *, left_shift: int = 20, rounding: str = "double") -> torch.Tensor:
    """Quantized residual add ``out ≈ Sa(a - za) + Sb(b - zb)`` in output codes, integer-only.

    ``ya = MBQM((a - za)·2^left_shift, Ma, sa)``, likewise ``yb``, then
    ``out = clamp(zo + MBQM(ya + yb, Mo, so), qmin, qmax)`` (TFLite ADD; ``[qmin, qmax]`` expresses a
    fused ReLU). ``a``, ``b``: uint8 or int8 codes of one dtype (broadcastable shapes);
    ``zero_points``: ``(za, zb, zo)`` as an int32 tensor or a sequence; ``multipliers``, ``shifts`` from
    :func:`int8_add_params`.
    """
    if not isinstance(zero_points, torch.Tensor):
        zero_points = torch.tensor(list(zero_points), dtype=torch.int32)
    return torch.ops.lowbit.int8_add(a, b, zero_points, multipliers, shifts, qmin, qmax, left_shift, rounding)
