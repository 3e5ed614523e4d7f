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

__all__ += ["int4_pack_weight", "int4_unpack_weight", "int4_pack_params", "int4_weight_linear",
            "int4_weight_linear_packed"]


def int4_pack_weight(codes: torch.Tensor) -> torch.Tensor:
    """Pack 4-bit weight codes ``[N, K]`` (integers in ``[0, 15]``, ``K % 8 == 0``) for
    :func:`int4_weight_linear`: int32 ``[ceil(N/8), K/8, 8]``; word ``[b, t, j]`` holds output channel
    ``8b + j`` at the eight columns ``k = 8t .. 8t+7``, column ``8t + i`` in bits ``4i..4i+3`` (layout in
    ``cpp/kernels/int4_weight.h``; the same on every kernel path). Typically the codes come from
    :func:`quantize_affine` with ``(qmin, qmax) = (0, 15)`` and a ``[N, K // group]`` scale.
    """
    return torch.ops.lowbit.int4_pack_weight(codes)


def int4_unpack_weight(packed_weight: torch.Tensor, n: int) -> torch.Tensor:
    """The uint8 codes ``[n, K]`` that :func:`int4_pack_weight` packed."""
    return torch.ops.lowbit.int4_unpack_weight(packed_weight, n)


def int4_pack_params(scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Pack the per-group ``scale`` ``[N, K // group]`` and integer ``zero_point`` (same shape, in
    ``[0, 15]``) for :func:`int4_weight_linear_packed`: float32 ``[ceil(N/8), K // group, 2, 8]``, the
    scales and zero points of each block of eight output channels side by side per group. Validated
    here, once (errors name the bad element), so that a deployed layer pays neither the checks nor the
    re-arrangement per call.
    """
    return torch.ops.lowbit.int4_pack_params(scale, zero_point)


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
    the same bits; against a float64 reference the error is that of float32 accumulation. This
    form checks and packs ``scale`` and ``zero_point`` on every call (4-11% of a 4096 x 4096 GEMV
    at group 128, 40% at group 32); a layer called repeatedly should pack them once with :func:`int4_pack_params` and call
    :func:`int4_weight_linear_packed`, which gives the same bits.
    """
    return torch.ops.lowbit.int4_weight_linear(x, packed_weight, scale, zero_point, bias)


def int4_weight_linear_packed(x: torch.Tensor, packed_weight: torch.Tensor, packed_params: torch.Tensor, n: int,
                              bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`int4_weight_linear` with the parameters packed once by :func:`int4_pack_params`; ``n``
    is the number of output channels (``packed_weight`` and ``packed_params`` round it up to a
    multiple of 8). Same result, bit for bit."""
    return torch.ops.lowbit.int4_weight_linear_packed(x, packed_weight, packed_params, n, bias)

__all__ += ["int8_pack_conv_weight", "int8_conv2d"]


def _pair(v) -> list:
    return [int(v), int(v)] if isinstance(v, int) else [int(e) for e in v]


def int8_pack_conv_weight(weight: torch.Tensor, groups: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack an int8 convolution weight ``[OC, C / groups, kH, kW]`` once for :func:`int8_conv2d`.

    Returns ``(packed_weight, weight_col_sums)``: int8 ``[groups, ceil(OC/groups/16), C/groups·kH·kW, 16]``
    (each group packed like :func:`int8_pack_weight` of its ``[OC/groups, kH·kW·C/groups]`` slice, the
    reduction in ``(kh, kw, c)`` order, i.e. ``weight.permute(0, 2, 3, 1)``) and
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


__all__ += ["int8_max_pool2d"]


def int8_max_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
                    ceil_mode: bool = False) -> torch.Tensor:
    """Max pooling of uint8 / int8 codes ``[N, C, H, W]`` or ``[C, H, W]``, as :func:`torch.nn.functional.max_pool2d`.

    The max of codes is the code of the max (quantization is monotonic), so pooling runs on the
    codes' grid and returns codes of the same dtype. Same arguments and rules as torch's:
    ``stride`` defaults to ``kernel_size``; padding (at most half the kernel) is never selected;
    ``ceil_mode`` keeps a last partial window that starts inside the input or its left padding;
    ``dilation`` spaces the taps. Returns a contiguous tensor. Bad arguments raise errors naming them.
    """
    stride = [] if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else _pair(stride)
    return torch.ops.lowbit.int8_max_pool2d(x, _pair(kernel_size), stride, _pair(padding), _pair(dilation),
                                            bool(ceil_mode))


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
# ==== estimators: learnable and soft gradient estimators (issue 4) ==============================
# Formulas, defaults and test vectors: METHODS.md §2–§7; the per-element specifications are the
# cpp/core headers lsq.h, pact.h, qil.h, soft_quant.h. Every op here is differentiable in x and
# in its learnable parameters; the backward is one fused pass that also reduces the parameter
# gradients (deterministically: independent of thread count and kernel path), and autograd keeps
# nothing but the input and the parameters alive (see estimator_saved_bytes_per_element).
#
# Parameters are tensors shaped by the granularity convention above. Parameters of one op may
# have different (broadcastable) shapes: they are broadcast to a common shape here, and autograd
# sums their gradients back.

import math as _math

ESTIMATOR_ROUNDINGS = ("half_even", "stochastic")
DSQ_MODES = ("hard", "soft")

# Every estimator's autograd node saves the input x (plus parameters, a few bytes): the backward
# ops recompute masks, codes and soft terms from x. The input is usually alive anyway (a weight,
# or an activation the previous layer also saves), so the quantizer adds no full-size memory.
ESTIMATOR_SAVED_INPUTS = {
    "ste": ("x",),
    "lsq": ("x",),
    "lsq+": ("x",),
    "learnable": ("x",),
    "pact": ("x",),
    "qil": ("x",),
    "dsq": ("x",),
    "sigmoid": ("x",),
}

__all__ += [
    "ESTIMATOR_ROUNDINGS",
    "DSQ_MODES",
    "ESTIMATOR_SAVED_INPUTS",
    "estimator_saved_bytes_per_element",
    "fake_quantize_lsq",
    "fake_quantize_learnable",
    "fake_quantize_pact",
    "fake_quantize_qil",
    "fake_quantize_dsq",
    "fake_quantize_sigmoid",
    "lsq_grad_scale",
    "lsq_init_scale",
    "lsq_plus_init_weight_scale",
    "lsq_plus_init_activation",
    "pact_regularizer",
    "sigmoid_temperature",
    "sigmoid_levels",
    "sigmoid_thresholds",
]


def estimator_saved_bytes_per_element(estimator: str, dtype: torch.dtype = torch.float32) -> int:
    """Bytes per input element an estimator's autograd node keeps for its backward pass.

    Every lowbit estimator saves only the input ``x`` (``dtype``'s size: 4 for float32, 2 for
    float16/bfloat16) plus its parameters; masks, integer codes and soft terms are recomputed by
    the backward op. (PyTorch's ``_fake_quantize_learnable_*`` saves the input too, but its
    backward materialises three more full-size tensors.)
    """
    if estimator not in ESTIMATOR_SAVED_INPUTS:
        raise ValueError(f"estimator must be one of {', '.join(map(repr, ESTIMATOR_SAVED_INPUTS))}; "
                         f"got estimator={estimator!r}")
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got dtype={dtype}")
    return len(ESTIMATOR_SAVED_INPUTS[estimator]) * torch.empty((), dtype=dtype).element_size()


def _estimator_param(value, like: torch.Tensor, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {name}.dtype={value.dtype}")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Convenient in eager code; under torch.compile pass tensors (a Python number is a guard).
        return torch.tensor([float(value)], dtype=torch.float32, device=like.device)
    raise TypeError(f"{name} must be a tensor (or a Python number), got {type(value).__name__}")


def _broadcast(*params: torch.Tensor) -> tuple[torch.Tensor, ...]:
    shapes = {tuple(p.shape) for p in params}
    if len(shapes) == 1:
        return params
    return tuple(torch.broadcast_tensors(*params))


def _check_rounding(rounding: str) -> None:
    if rounding not in ESTIMATOR_ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(map(repr, ESTIMATOR_ROUNDINGS))}; "
                         f"got rounding={rounding!r}")


def _check_positive_number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {name}={value!r}")
    return float(value)


def fake_quantize_lsq(x: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int, *,
                      offset: Optional[torch.Tensor] = None, grad_scale: float = 1.0, rounding: str = "half_even",
                      seed: Seed = None, seed_offset: int = 0, enabled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """LSQ (Esser et al. 2020), or LSQ+ (Bhalgat et al. 2020) when ``offset`` (β) is given.

    ``y = clamp(R((x - β) / s), qmin, qmax) * s + β`` with ``1/s`` taken in float32 and ``R``
    round-half-to-even (or stochastic). Gradients (METHODS §4.1–4.2), with the real-domain clip
    test ``qmin < v < qmax`` on ``v = (x - β)/s``:

    * ``dx = dy`` inside, 0 outside;
    * ``ds = grad_scale * Σ dy·(R(v) - v)`` inside, ``dy·qmin`` / ``dy·qmax`` when clipped;
    * ``dβ = grad_scale * Σ dy`` over clipped elements.

    Args:
        scale: the step ``s``; any shape that tiles ``x``. Values below 2^-23 (also <= 0) are
            used as 2^-23, with the gradient passed on unchanged; non-finite values are errors.
        qmin, qmax: the integer range, e.g. ``(-2**(b-1), 2**(b-1)-1)`` for weights,
            ``(0, 2**b - 1)`` for activations.
        offset: LSQ+'s learnable offset β, broadcastable with ``scale``.
        grad_scale: the paper's ``g`` multiplying the step-size (and offset) gradients; see
            :func:`lsq_grad_scale`. A constant per layer: under ``torch.compile`` a Python float
            is baked into the graph, so changing it recompiles.
        rounding: ``"half_even"`` or ``"stochastic"`` (Philox stream ``seed``, element ``i`` at
            counter ``seed_offset + i``; ``seed=None`` draws one from torch's generator).
        enabled: optional one-element bool tensor; False returns ``x`` (a copy), passes gradients
            through and gives the parameters zero gradients. Every estimator op takes it; a
            tensor, so toggling it never recompiles a compiled graph.
    """
    _check_rounding(rounding)
    grad_scale = _check_positive_number(grad_scale, "grad_scale")
    scale = _estimator_param(scale, x, "scale")
    if offset is not None:
        scale, offset = _broadcast(scale, _estimator_param(offset, x, "offset"))
    return torch.ops.lowbit.fake_quantize_lsq(x, scale, offset, qmin, qmax, grad_scale, rounding,
                                              _seed_tensor(seed, rounding, x), seed_offset, enabled)


def fake_quantize_learnable(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int, *,
                            grad_factor: float = 1.0, enabled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """PyTorch's learnable fake quantization, bit for bit.

    Equals ``torch._fake_quantize_learnable_per_tensor_affine`` (a one-element ``scale``) and
    ``torch._fake_quantize_learnable_per_channel_affine`` (``scale`` of shape ``[C, 1, ...]``
    for channel axis 0, or any shape by the granularity convention): the same outputs and input
    gradients bit for bit, the same per-element scale and zero-point gradient terms, including
    the per-tensor zero-point quirk (METHODS §4.3: the forward rounds the zero point half to
    even, the backward uses ``trunc(z + 0.5)``). The parameter gradients are lowbit's
    deterministic sums of those terms; PyTorch sums them with ``at::sum`` in a thread- and
    vector-width-dependent order, so totals agree to float32 rounding of the sum.

    ``zero_point`` is a float tensor shaped like ``scale`` (it is learned). Scales below 2^-23
    (also <= 0) are used as 2^-23, as torch.ao's ``_LearnableFakeQuantize`` clamps them; unlike
    PyTorch's backward, ``qmin <= 0 <= qmax`` is not required. ``grad_factor`` multiplies both
    parameter gradients (``_LearnableFakeQuantize`` uses ``1/sqrt(x.numel() * qmax)``).
    """
    if isinstance(grad_factor, bool) or not isinstance(grad_factor, (int, float)) or not _math.isfinite(grad_factor):
        raise ValueError(f"grad_factor must be a finite number, got grad_factor={grad_factor!r}")
    scale = _estimator_param(scale, x, "scale")
    zero_point = _estimator_param(zero_point, x, "zero_point")
    scale, zero_point = _broadcast(scale, zero_point)
    return torch.ops.lowbit.fake_quantize_learnable(x, scale, zero_point, qmin, qmax, float(grad_factor), enabled)


def fake_quantize_pact(x: torch.Tensor, alpha: torch.Tensor, bits: int, *, signed: bool = False,
                       rounding: str = "half_even", seed: Seed = None, seed_offset: int = 0,
                       enabled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """PACT (Choi et al. 2018): a learnable clip ``α``, then ``bits``-bit uniform quantization.

    ``y = R(clamp(x, lo, α) * L/α) * α/L`` with ``lo = 0, L = 2^bits - 1`` (``signed=False``,
    activations after a ReLU) or ``lo = -α, L = 2^(bits-1) - 1`` (``signed=True``). Gradients:
    ``dx = dy`` for ``lo <= x <= α``; ``dα = Σ dy`` over ``x >= α`` (minus ``Σ dy`` over
    ``x <= -α`` when signed); the step's dependence on α is dropped, as in the paper. ``α``
    below 2^-23 is used as 2^-23. Add :func:`pact_regularizer` to the loss for the paper's L2
    term on α.
    """
    _check_rounding(rounding)
    alpha = _estimator_param(alpha, x, "alpha")
    return torch.ops.lowbit.fake_quantize_pact(x, alpha, bits, bool(signed), rounding, _seed_tensor(seed, rounding, x),
                                               seed_offset, enabled)


def fake_quantize_qil(x: torch.Tensor, c: torch.Tensor, d: torch.Tensor, gamma: Optional[torch.Tensor], bits: int, *,
                      weight: bool = True, rounding: str = "half_even", seed: Seed = None,
                      seed_offset: int = 0, enabled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """QIL (Jung et al. 2019): the interval transformer ``[c - d, c + d]`` and the discretizer.

    Weights (``weight=True``): ``|w| < c - d`` gives 0 (pruned), ``|w| > c + d`` gives
    ``sign(w)`` (clipped), otherwise ``sign(w) * (α|w| + β)^γ`` with ``α = 0.5/d``,
    ``β = 0.5 - 0.5c/d``; then ``D(t) = R(t * qD)/qD`` with ``qD = 2^(bits-1) - 1``. Outputs lie
    in ``[-1, 1]`` (the layer's scale is absorbed by what follows, as in the paper).
    Activations (``weight=False``): the same on ``x`` without sign, outputs in ``[0, 1]``,
    ``qD = 2^bits - 1``; the paper fixes ``γ = 1``: pass ``gamma=None``.

    Gradients flow inside the interval only (METHODS §5) to ``x``, ``c``, ``d`` and ``γ``. With a
    ``gamma`` tensor, ``u^γ`` uses lowbit's float32 exp/log (relative error ~1e-7; ``γ = 1``
    reproduces ``u`` to that accuracy); ``gamma=None`` means ``γ = 1`` exactly and no γ gradient.
    Clamps: ``d, γ >= 2^-23``, ``c >= d``; non-finite parameters are errors.
    """
    _check_rounding(rounding)
    c = _estimator_param(c, x, "c")
    d = _estimator_param(d, x, "d")
    if gamma is None:
        c, d = _broadcast(c, d)
    else:
        c, d, gamma = _broadcast(c, d, _estimator_param(gamma, x, "gamma"))
    return torch.ops.lowbit.fake_quantize_qil(x, c, d, gamma, bits, bool(weight), rounding,
                                              _seed_tensor(seed, rounding, x), seed_offset, enabled)


def fake_quantize_dsq(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, alpha: torch.Tensor, bits: int, *,
                      mode: str = "hard", rounding: str = "half_even", seed: Seed = None,
                      seed_offset: int = 0, enabled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """DSQ (Gong et al. 2019): a tanh staircase on ``[lower, upper]`` with learnable ``α``.

    ``Δ = (upper - lower)/(2^bits - 1)``; inside interval ``i`` the soft staircase is
    ``Q_S = lower + Δ(i + (s·tanh(k(x - m_i)) + 1)/2)`` with ``s = 1/(1-α)``,
    ``k = ln(2/α - 1)/Δ``.

    Args:
        mode: ``"hard"`` (default): the forward is the hard staircase ``lower + Δ·R(v)`` clamped
            to ``[lower, upper]`` — what the deployed integer model computes, so training sees
            no train/inference mismatch — and the backward is the soft staircase's derivative
            (METHODS §6.1). ``"soft"``: the forward is ``Q_S`` itself (some descriptions of DSQ
            train that way); same backward. At inference use ``"hard"``.
        rounding: ``"stochastic"`` is available in hard mode only.

    Gradients (both modes) to ``x``, ``lower``, ``upper`` and ``α`` are those of ``Q_S`` with the
    interval index held constant; outside the range only the nearer bound receives ``dy``.
    ``α`` is clamped to ``[1e-4, 0.5]`` (gradient passed on unchanged); ``upper <= lower`` is an
    error.
    """
    _check_rounding(rounding)
    if mode not in DSQ_MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, DSQ_MODES))}; got mode={mode!r}")
    lower, upper, alpha = _broadcast(_estimator_param(lower, x, "lower"), _estimator_param(upper, x, "upper"),
                                     _estimator_param(alpha, x, "alpha"))
    return torch.ops.lowbit.fake_quantize_dsq(x, lower, upper, alpha, bits, mode, rounding,
                                              _seed_tensor(seed, rounding, x), seed_offset, enabled)


def fake_quantize_sigmoid(x: torch.Tensor, levels: torch.Tensor, thresholds: torch.Tensor, alpha: torch.Tensor,
                          beta: torch.Tensor, temperature: torch.Tensor, *, hard: bool = False,
                          enabled: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Quantization Networks' sigmoid staircase (Yang et al. 2019).

    ``y = α·(y_0 + Σ_i s_i·σ(T·(β·x - b_i)))`` with levels ``y_0 < ... < y_n`` (steps
    ``s_i = y_i - y_{i-1}``), fixed thresholds ``b_1 <= ... <= b_n`` and learnable ``α``, ``β``
    (shaped by the granularity convention). ``hard=True`` replaces σ by the unit step — the
    inference form, whose values are exactly ``α·y_j``; its backward is still the soft one.
    For symmetric levels ``y_0 = -½Σs_i`` is the paper's offset ``-o``; for levels starting at 0
    (activations) there is no offset.

    Gradients: ``dx = dy·αβT·Σ s_i g_i(1-g_i)``, ``dα = Σ dy·(y_0 + Σ s_i g_i)``,
    ``dβ = Σ dy·αT·x·Σ s_i g_i(1-g_i)``; thresholds, levels and temperature get none.

    Args:
        levels: 1-D, strictly increasing (see :func:`sigmoid_levels`).
        thresholds: 1-D, one fewer than levels, non-decreasing (see :func:`sigmoid_thresholds`).
        temperature: a one-element tensor > 0 (a tensor, so a schedule never recompiles a
            compiled graph; see :func:`sigmoid_temperature`).
    """
    alpha, beta = _broadcast(_estimator_param(alpha, x, "alpha"), _estimator_param(beta, x, "beta"))
    levels = _estimator_param(levels, x, "levels")
    thresholds = _estimator_param(thresholds, x, "thresholds")
    temperature = _estimator_param(temperature, x, "temperature")
    return torch.ops.lowbit.fake_quantize_sigmoid(x, levels, thresholds, alpha, beta, temperature, bool(hard), enabled)


# ---- estimator helpers: gradient scale, initialisation, regulariser, schedules --------------------


def lsq_grad_scale(numel: int, qmax: int) -> float:
    """LSQ's step-size gradient scale ``g = 1/sqrt(N·QP)``.

    ``N``: the number of weights of the layer, or the number of activation *features* (elements
    of one sample, batch excluded); ``QP = qmax``. Example: ``lsq_grad_scale(1000, 3)`` =
    0.018257418583505537.
    """
    if isinstance(numel, bool) or not isinstance(numel, int) or numel < 1:
        raise ValueError(f"lsq_grad_scale: numel must be a positive int, got numel={numel!r}")
    if isinstance(qmax, bool) or not isinstance(qmax, int) or qmax < 1:
        raise ValueError(f"lsq_grad_scale: qmax must be a positive int, got qmax={qmax!r}")
    return 1.0 / _math.sqrt(numel * qmax)


def _padded_shape(param_shape, ndim: int, name: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in param_shape)
    while len(shape) > ndim and shape[0] == 1:
        shape = shape[1:]
    if len(shape) > ndim:
        raise ValueError(f"{name}: param_shape {tuple(param_shape)} has more dimensions than the input ({ndim})")
    return (1,) * (ndim - len(shape)) + shape


def _blocks(x: torch.Tensor, param_shape, name: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    """x viewed as [p0, b0, p1, b1, ...] (p: parameter blocks, b: elements per block) and the
    padded parameter shape; reducing over the odd dimensions gives per-block statistics."""
    pshape = _padded_shape(param_shape, x.dim(), name)
    view = []
    for xs, ps in zip(x.shape, pshape):
        if ps < 1 or xs % ps != 0:
            raise ValueError(f"{name}: param_shape {tuple(param_shape)} does not tile the input shape "
                             f"{tuple(x.shape)}")
        view += [ps, xs // ps]
    return x.reshape(view), pshape


def _block_reduce(x: torch.Tensor, param_shape, fn, name: str) -> torch.Tensor:
    xb, _ = _blocks(x, param_shape, name)
    dims = tuple(range(1, xb.dim(), 2))
    return fn(xb, dims).reshape(tuple(int(s) for s in param_shape))


def lsq_init_scale(x: torch.Tensor, qmax: int, *, param_shape=(1,)) -> torch.Tensor:
    """LSQ's initial step ``s0 = 2·mean(|x|)/sqrt(QP)`` per block of ``param_shape`` (float32)."""
    if qmax < 1:
        raise ValueError(f"lsq_init_scale: qmax must be >= 1, got qmax={qmax}")
    with torch.no_grad():
        mean_abs = _block_reduce(x.detach().float().abs(), param_shape, lambda t, d: t.mean(dim=d), "lsq_init_scale")
        s = 2.0 * mean_abs / _math.sqrt(qmax)
        return s.clamp_min(2.0**-23)


def lsq_plus_init_weight_scale(w: torch.Tensor, bits: int, *, param_shape=(1,)) -> torch.Tensor:
    """LSQ+'s weight initialisation ``s = max(|μ - 3σ|, |μ + 3σ|) / 2^(bits-1)`` per block.

    (METHODS §4.2 marks the constants as recalled from the paper, not confirmed.)
    """
    if not 2 <= bits <= 16:
        raise ValueError(f"lsq_plus_init_weight_scale: bits must be in [2, 16], got bits={bits}")
    with torch.no_grad():
        wf = w.detach().float()
        mu = _block_reduce(wf, param_shape, lambda t, d: t.mean(dim=d), "lsq_plus_init_weight_scale")
        sd = _block_reduce(wf, param_shape, lambda t, d: t.std(dim=d, correction=0), "lsq_plus_init_weight_scale")
        s = torch.maximum((mu - 3 * sd).abs(), (mu + 3 * sd).abs()) / 2 ** (bits - 1)
        return s.clamp_min(2.0**-23)


def lsq_plus_init_activation(x: torch.Tensor, qmin: int, qmax: int, *, param_shape=(1,),
                             grid: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """LSQ+'s activation initialisation: ``(scale, offset)`` minimising ``‖x̂ - x‖²`` per block.

    A grid search over clip ranges ``[lo, hi]`` inside each block's ``[min, max]``
    (``lo = min + f·(max - min)``, ``hi = max - f'·(max - min)``, ``f, f'`` on a ``grid``-point
    grid in ``[0, 0.5)``), then a second, finer grid around the best point: ``s = (hi - lo) /
    (qmax - qmin)``, ``β = lo - qmin·s``, the error measured with :func:`fake_quantize_lsq`
    itself. Costs ``2·grid²`` passes over ``x``; use one calibration batch.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"lsq_plus_init_activation: grid must be an int >= 2, got grid={grid!r}")
    if qmin >= qmax:
        raise ValueError(f"lsq_plus_init_activation: need qmin < qmax, got qmin={qmin}, qmax={qmax}")
    name = "lsq_plus_init_activation"
    with torch.no_grad():
        xf = x.detach().float().contiguous()
        mn = _block_reduce(xf, param_shape, lambda t, d: t.amin(dim=d), name)
        mx = _block_reduce(xf, param_shape, lambda t, d: t.amax(dim=d), name)
        span = (mx - mn).clamp_min(2.0**-20)
        best_err = torch.full_like(mn, _math.inf)
        best = [torch.zeros_like(mn), torch.zeros_like(mn)]  # (f_lo, f_hi) per block

        def search(lo_fracs, hi_fracs):
            nonlocal best_err
            for f_lo in lo_fracs:
                for f_hi in hi_fracs:
                    f_lo_t = f_lo if isinstance(f_lo, torch.Tensor) else torch.full_like(mn, f_lo)
                    f_hi_t = f_hi if isinstance(f_hi, torch.Tensor) else torch.full_like(mn, f_hi)
                    lo, hi = mn + f_lo_t * span, mx - f_hi_t * span
                    s = ((hi - lo) / (qmax - qmin)).clamp_min(2.0**-23)
                    b = lo - qmin * s
                    y = torch.ops.lowbit.fake_quantize_lsq(xf, s, b, qmin, qmax, 1.0, "half_even", None, 0)
                    err = _block_reduce((y - xf).square(), param_shape, lambda t, d: t.sum(dim=d), name)
                    better = err < best_err
                    best_err = torch.where(better, err, best_err)
                    best[0] = torch.where(better, f_lo_t, best[0])
                    best[1] = torch.where(better, f_hi_t, best[1])

        step = 0.5 / grid
        coarse = [step * i for i in range(grid)]
        search(coarse, coarse)
        fine = [step * (2 * i / (grid - 1) - 1) for i in range(grid)]
        lo0, hi0 = best[0].clone(), best[1].clone()
        search([(lo0 + d).clamp(0.0, 0.5) for d in fine], [(hi0 + d).clamp(0.0, 0.5) for d in fine])
        lo, hi = mn + best[0] * span, mx - best[1] * span
        s = ((hi - lo) / (qmax - qmin)).clamp_min(2.0**-23)
        return s, lo - qmin * s


def pact_regularizer(alpha: torch.Tensor, weight: float = 2e-4) -> torch.Tensor:
    """PACT's L2 term ``weight·Σ α²`` to add to the loss (the paper uses a weight comparable to
    weight decay; METHODS §3 notes per-network values are unverified)."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0 or not _math.isfinite(weight):
        raise ValueError(f"pact_regularizer: weight must be a finite number >= 0, got weight={weight!r}")
    return weight * alpha.square().sum()


def sigmoid_temperature(epoch: int, base: float = 10.0, max_temperature: float = 2000.0) -> float:
    """Quantization Networks' schedule ``T = min((epoch + 1)·base, max_temperature)``.

    The official code uses ``base=10`` and caps weights at 2000. Hand the value to the op as a
    tensor (fill a buffer in place) so a compiled graph does not recompile when it changes.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"sigmoid_temperature: epoch must be an int >= 0, got epoch={epoch!r}")
    base = _check_positive_number(base, "base")
    max_temperature = _check_positive_number(max_temperature, "max_temperature")
    return min((epoch + 1) * base, max_temperature)


def sigmoid_levels(bits: int, *, signed: bool = True, dtype: torch.dtype = torch.float32,
                   device=None) -> torch.Tensor:
    """Uniform integer levels: ``-(2^(b-1)-1) .. 2^(b-1)-1`` when signed (2 bits: {-1, 0, 1}),
    ``0 .. 2^b - 1`` otherwise."""
    if not (2 if signed else 1) <= bits <= 16:
        raise ValueError(f"sigmoid_levels: bits must be in [{2 if signed else 1}, 16], got bits={bits}")
    if signed:
        m = 2 ** (bits - 1) - 1
        return torch.arange(-m, m + 1, dtype=dtype, device=device)
    return torch.arange(0, 2**bits, dtype=dtype, device=device)


def sigmoid_thresholds(levels: torch.Tensor) -> torch.Tensor:
    """Midpoints between consecutive levels: the thresholds of round-to-nearest onto ``levels``."""
    if levels.dim() != 1 or levels.numel() < 2:
        raise ValueError(f"sigmoid_thresholds: levels must be 1-D with >= 2 values, got shape {tuple(levels.shape)}")
    return 0.5 * (levels[1:] + levels[:-1])
# ==== end estimators ============================================================================
