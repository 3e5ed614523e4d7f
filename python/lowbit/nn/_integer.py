"""The integer arithmetic of quantized layers, shared by integer simulation and converted models.

Integer simulation (``prepare_qat(..., simulation="integer")``) and the converted model
(``lowbit.convert``) call the functions below with the same codes and the same quantization
parameters, so they compute the same integers by construction (METHODS §9.4): the fake-quant
model is bit-exact with its deployment. Every function here is a composition of lowbit ops
(``requantize``, ``quantize_multiplier``) and exact integer-valued torch arithmetic:

* **Accumulators** ``acc = Σ (q_x - z_x)(q_w - z_w) + q_bias`` are computed exactly: the codes are
  widened to float64, where every partial sum is an integer below 2^53 (checked statically by
  :func:`check_accumulator_bound`), so any summation order (BLAS, oneDNN, Inductor) gives the
  same exact integer. This is the reference route; :data:`ACCUMULATE` names the function that
  int8 kernels (``int8_linear`` / ``int8_conv2d``) replace once they exist, on both sides at once.
* **Requantization** ``q = clamp(z_out + MultiplyByQuantizedMultiplier(acc, M0, shift), lo, hi)``
  is ``lowbit.ops.requantize`` (gemmlowp/TFLite fixed point, ``"double"`` or ``"single"``
  rounding), with ``(M0, shift) = quantize_multiplier(double(S_x)·double(S_w)/double(S_out))``.
* **Fused activations are clamps** (METHODS §9.3): ReLU ``lo = max(qmin, z_out)``, ReLU6 also
  ``hi = min(qmax, z_out + RHAZ(6 / S_out))``. They are applied after ``requantize`` with tensor
  bounds, so simulation never needs a Python int from a tensor (no graph break); clamping
  ``[qmin, qmax]`` then ``[lo, hi] ⊆ [qmin, qmax]`` equals clamping ``[lo, hi]`` once.
* **Bias** ``q_bias = round_half_even(bias / (double(S_x)·double(S_w)))`` in int32 (scale
  ``S_x·S_w``, zero point 0), saturated to int32.
* **Residual add** follows TFLite's quantized ADD: both inputs are rescaled to a common
  fixed-point scale ``2·max(S_a, S_b) / 2^left_shift``, summed in int32, then requantized to the
  output scale.

Parameters are tensors throughout (scale float32, zero point int32, shaped by the granularity
convention), so simulation compiles without graph breaks or recompiles.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from .. import ops

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
# float64 holds every integer of magnitude <= 2^53 exactly, so sums of integer products stay exact
# while the worst-case partial sum is below it.
EXACT_FLOAT64 = 2**53
ACTIVATIONS = (None, "relu", "relu6")
REQUANT_ROUNDINGS = ("double", "single")


# ---- quantization parameters ---------------------------------------------------------------------


def requant_multiplier(input_scale: torch.Tensor, weight_scale: torch.Tensor, output_scale: torch.Tensor,
                       rounding: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M0, shift)`` of ``M = double(S_x)·double(S_w)/double(S_out)`` (TFLite's per-channel expression).

    ``weight_scale`` already has the output layout (``[N]`` for linear, ``[C, 1, 1]`` for conv), so
    the result does too. One expression for per-tensor and per-channel weights.
    """
    real = input_scale.double() * weight_scale.double() / output_scale.double()
    return ops.quantize_multiplier(real, rounding=rounding)


def quantize_bias(bias: torch.Tensor, input_scale: torch.Tensor, weight_scale: torch.Tensor) -> torch.Tensor:
    """int32 bias codes ``[N]`` at scale ``S_x·S_w`` (zero point 0): half-to-even rounding in float64, saturated.

    ``weight_scale``: one element or one per output channel (any layout with ``N`` elements).
    """
    bias_scale = input_scale.double().reshape(-1) * weight_scale.double().reshape(-1)
    q = torch.round(bias.detach().double() / bias_scale)
    return q.clamp(INT32_MIN, INT32_MAX).to(torch.int32)


def accumulator_scale(input_scale: torch.Tensor, weight_scale: torch.Tensor) -> torch.Tensor:
    """The real value of one accumulator unit, ``double(S_x)·double(S_w)`` (float64)."""
    return input_scale.double() * weight_scale.double()


def activation_bounds(output_scale: torch.Tensor, output_zero_point: torch.Tensor, qmin: int, qmax: int,
                      activation: Optional[str]) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Code bounds ``(lo, hi)`` (int32 tensors, None = no bound) that a fused activation clamps to.

    ReLU: ``lo = max(qmin, z)`` (real 0). ReLU6: also ``hi = min(qmax, z + RHAZ(6 / S))``, the
    rounding TFLite's ``CalculateActivationRangeQuantized`` uses (half away from zero).
    """
    if activation is None:
        return None, None
    lo = output_zero_point.to(torch.int32).clamp(qmin, qmax)
    if activation == "relu":
        return lo, None
    if activation == "relu6":
        six = 6.0 / output_scale.double()
        steps = torch.floor(six + 0.5)  # RHAZ of a positive number
        hi = (output_zero_point.double() + steps).clamp(qmin, qmax).to(torch.int32)
        return lo, hi
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got activation={activation!r}")


def apply_bounds(codes: torch.Tensor, lo: Optional[torch.Tensor], hi: Optional[torch.Tensor]) -> torch.Tensor:
    """Clamp integer codes to tensor bounds (exact, keeps the dtype)."""
    if lo is not None:
        codes = torch.maximum(codes, lo.to(codes.dtype))
    if hi is not None:
        codes = torch.minimum(codes, hi.to(codes.dtype))
    return codes


def apply_float_activation(y: torch.Tensor, activation: Optional[str]) -> torch.Tensor:
    """A fused activation on a float output (layers whose output is not requantized)."""
    if activation == "relu":
        return torch.relu(y)
    if activation == "relu6":
        return torch.clamp(y, 0.0, 6.0)
    return y


# ---- exactness bounds (static: shapes and code ranges only) ------------------------------------------


def max_abs_offset(qmin: int, qmax: int, zero_points: Sequence[int] | None = None) -> int:
    """Largest ``|q - z|`` for codes in ``[qmin, qmax]`` and zero points in ``zero_points`` (any in range if None)."""
    if zero_points is None:
        return qmax - qmin
    return max(max(qmax - z, z - qmin) for z in zero_points)


def check_accumulator_bound(what: str, terms: int, x_range: int, w_range: int) -> None:
    """Raise unless ``terms · x_range · w_range`` fits int32 (the integer pipeline's accumulator).

    ``x_range`` / ``w_range`` bound ``|q - z|`` of activation and weight codes; ``terms`` is the
    reduction length (``in_features``, or ``in_channels/groups · kh · kw``). int32 is the binding
    limit (float64's 2^53 is far above it), so a layer that passes is exact on every route.
    """
    worst = terms * x_range * w_range
    if worst > INT32_MAX:
        raise ValueError(
            f"{what}: the int32 accumulator can overflow: {terms} terms of |q_x - z_x| <= {x_range} times "
            f"|q_w - z_w| <= {w_range} reach {worst} > 2^31 - 1; use fewer bits (e.g. Int(8) activations and "
            f"weights allow 16384 * 130000 terms) or split the layer")


# ---- accumulators --------------------------------------------------------------------------------------


def _centered(codes: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    return codes.to(torch.float64) - zero_point.to(torch.float64)


def _to_int32(acc: torch.Tensor) -> torch.Tensor:
    # Exact integers below 2^53; the static bound keeps them inside int32, the clamp only guards a
    # bias that saturated on quantization.
    return acc.clamp(INT32_MIN, INT32_MAX).to(torch.int32)


def linear_accumulate(x_codes: torch.Tensor, x_zero_point: torch.Tensor, w_codes: torch.Tensor,
                      w_zero_point: torch.Tensor, bias_codes: Optional[torch.Tensor]) -> torch.Tensor:
    """int32 ``acc[..., n] = Σ_k (x[..., k] - z_x)(w[n, k] - z_w[n]) + bias[n]``, exactly.

    ``w_zero_point`` is one element or ``[N, 1]`` (the weight's per-channel layout).
    """
    acc = F.linear(_centered(x_codes, x_zero_point), _centered(w_codes, w_zero_point))
    if bias_codes is not None:
        acc = acc + bias_codes.to(torch.float64)
    return _to_int32(acc)


def conv2d_accumulate(x_codes: torch.Tensor, x_zero_point: torch.Tensor, w_codes: torch.Tensor,
                      w_zero_point: torch.Tensor, bias_codes: Optional[torch.Tensor], *, stride, padding,
                      dilation, groups: int, padding_mode: str = "zeros",
                      reversed_padding: Optional[Sequence[int]] = None) -> torch.Tensor:
    """int32 accumulators of a 2-D convolution on codes, exactly (NCHW or unbatched CHW).

    Zero padding pads the *real* input with 0, which is code ``z_x``: the centered codes
    ``q_x - z_x`` are padded with 0, so padding is exact. Other padding modes copy codes
    (``reversed_padding`` as ``nn.Conv2d._reversed_padding_repeated_twice``).
    """
    x = _centered(x_codes, x_zero_point)
    if padding_mode != "zeros":
        x = F.pad(x, tuple(reversed_padding), mode=padding_mode)
        padding = 0
    acc = F.conv2d(x, _centered(w_codes, w_zero_point), None, stride, padding, dilation, groups)
    if bias_codes is not None:
        acc = acc + bias_codes.to(torch.float64).reshape(-1, 1, 1)
    return _to_int32(acc)


def requantize_codes(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor,
                     output_zero_point: torch.Tensor, qmin: int, qmax: int, rounding: str,
                     lo: Optional[torch.Tensor] = None, hi: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``clamp(z_out + MultiplyByQuantizedMultiplier(acc, M0, shift), lo, hi)`` (``lowbit.ops.requantize``)."""
    codes = ops.requantize(acc, multiplier, shift, output_zero_point.to(torch.int32), qmin, qmax, rounding=rounding)
    return apply_bounds(codes, lo, hi)


def accumulator_to_float(acc: torch.Tensor, acc_scale: torch.Tensor) -> torch.Tensor:
    """Float32 output of a layer that is not requantized: ``float32(double(acc) · double(S_x·S_w))``."""
    return (acc.to(torch.float64) * acc_scale).to(torch.float32)


# ---- residual add (TFLite ADD) ------------------------------------------------------------------------


def add_left_shift(qmin: int, qmax: int) -> int:
    """Headroom shift of the quantized ADD: 20 for 8-bit codes (TFLite), less for wider ones.

    ``(q - z) << left_shift`` must fit int32 with a bit to spare for the sum: ``|q - z| < 2^bits``
    gives ``left_shift = min(20, 30 - bits)``.
    """
    bits = max(1, math.ceil(math.log2(qmax - qmin + 1)))
    return min(20, 30 - bits)


def add_params(a_scale: torch.Tensor, b_scale: torch.Tensor, out_scale: torch.Tensor, left_shift: int,
               rounding: str) -> tuple[torch.Tensor, ...]:
    """Fixed-point multipliers of the quantized ADD (TFLite ``PrepareGeneralSubOp`` arithmetic, float64).

    Returns ``(a_mult, a_shift, b_mult, b_shift, out_mult, out_shift)``: each input is multiplied by
    ``S_in / (2·max(S_a, S_b))`` (<= 1/2) after the left shift, the int32 sum by
    ``2·max(S_a, S_b) / (2^left_shift · S_out)``.
    """
    sa, sb, so = a_scale.double(), b_scale.double(), out_scale.double()
    twice_max = 2.0 * torch.maximum(sa, sb)
    a_mult, a_shift = ops.quantize_multiplier(sa / twice_max, rounding=rounding)
    b_mult, b_shift = ops.quantize_multiplier(sb / twice_max, rounding=rounding)
    o_mult, o_shift = ops.quantize_multiplier(twice_max / (float(1 << left_shift) * so), rounding=rounding)
    return a_mult, a_shift, b_mult, b_shift, o_mult, o_shift


def add_codes(a_codes: torch.Tensor, a_zero_point: torch.Tensor, b_codes: torch.Tensor, b_zero_point: torch.Tensor,
              params: Sequence[torch.Tensor], left_shift: int, output_zero_point: torch.Tensor, qmin: int, qmax: int,
              rounding: str, lo: Optional[torch.Tensor] = None, hi: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Codes of ``a + b`` on the output grid, TFLite's quantized ADD (broadcasting like ``+``).

    ``scaled_i = MBQM((q_i - z_i)·2^left_shift, M_i)``; ``q = clamp(z_out + MBQM(scaled_a + scaled_b,
    M_out), lo, hi)``. Every step is an exact int32 operation or ``lowbit.ops.requantize``.
    """
    a_mult, a_shift, b_mult, b_shift, o_mult, o_shift = params
    zero = torch.zeros(1, dtype=torch.int32, device=a_codes.device)
    a = (a_codes.to(torch.int32) - a_zero_point.to(torch.int32)) * (1 << left_shift)
    b = (b_codes.to(torch.int32) - b_zero_point.to(torch.int32)) * (1 << left_shift)
    a = ops.requantize(a, a_mult, a_shift, zero, INT32_MIN, INT32_MAX, rounding=rounding)
    b = ops.requantize(b, b_mult, b_shift, zero, INT32_MIN, INT32_MAX, rounding=rounding)
    # |scaled| <= 2^(bits + left_shift - 1) <= 2^29 each: the sum fits int32.
    total = a + b
    return requantize_codes(total, o_mult, o_shift, output_zero_point, qmin, qmax, rounding, lo, hi)


# ---- helpers for the layers ---------------------------------------------------------------------------


def weight_scale_for_output(weight_param: torch.Tensor, out_channels: int, conv: bool) -> torch.Tensor:
    """A weight quantizer's scale / zero point laid out along the layer output's channel axis.

    Per-tensor stays one element; per-output-channel ``[N, 1]`` / ``[O, 1, 1, 1]`` becomes ``[N]``
    (linear, last axis) or ``[O, 1, 1]`` (conv, axis -3).
    """
    if weight_param.numel() == 1:
        return weight_param.reshape(1)
    flat = weight_param.reshape(out_channels)
    return flat.reshape(out_channels, 1, 1) if conv else flat


# ---- int8 kernel route (converted models) -------------------------------------------------------------
# The int8 GEMM ops (int8_pack_weight / int8_gemm / int8_linear) compute the same exact integers
# as the reference route above, with the requantization fused into the GEMM epilogue. Converted
# layers use them when their codes fit (uint8/int8 activations, int8 weights, uint8/int8 outputs,
# an accumulator bound the kernel accepts); integer simulation keeps the readable reference route,
# so the equality tests also check the kernels against it. Convolutions with a quantized output run
# on int8_conv2d; those returning float need the int32 accumulators, so they run im2col + int8_gemm.


def have_int8_kernels() -> bool:
    """Whether this build has the int8 GEMM ops."""
    return all(hasattr(torch.ops.lowbit, name) for name in ("int8_pack_weight", "int8_gemm", "int8_linear"))


def _fits_int8(qmin: int, qmax: int) -> bool:
    return (qmin >= 0 and qmax <= 255) or (qmin >= -128 and qmax <= 127)


def int8_kernel_applies(x_qmin: int, x_qmax: int, x_zero_point: int, w_codes: torch.Tensor,
                        w_zero_point: torch.Tensor, terms: int, bias_codes: Optional[torch.Tensor],
                        out_range: Optional[tuple[int, int]]) -> bool:
    """Whether the int8 kernels take this layer (the same bound ``int8_linear`` checks, so it never raises)."""
    if not have_int8_kernels() or w_codes.dtype != torch.int8 or not _fits_int8(x_qmin, x_qmax):
        return False
    if out_range is not None and not _fits_int8(*out_range):
        return False
    x_u8 = x_qmin >= 0 and x_qmax <= 255
    max_dx = max(x_zero_point, 255 - x_zero_point) if x_u8 else max(x_zero_point + 128, 127 - x_zero_point)
    zw = [int(v) for v in w_zero_point.reshape(-1).tolist()]
    if any(not -128 <= v <= 127 for v in zw):
        return False
    max_dw = max(max(v + 128, 127 - v) for v in zw)
    max_bias = 0 if bias_codes is None else int(bias_codes.abs().max().item()) if bias_codes.numel() else 0
    return terms * max_dx * max_dw + max_bias <= INT32_MAX


def int8_accumulate(x_codes: torch.Tensor, packed: torch.Tensor, col_sums: torch.Tensor, terms: int,
                    x_zero_point: int, w_zero_point: torch.Tensor, bias_codes: Optional[torch.Tensor],
                    asymmetric_weights: bool) -> torch.Tensor:
    """int32 ``Σ (x - z_x)(w - z_w) + bias`` from the raw int8 GEMM ``Σ x·w`` (for layers returning float).

    ``asymmetric_weights``: some weight zero point is nonzero (then the row sums ``z_w·Σ x`` are needed).
    """
    acc = ops.int8_gemm(x_codes, packed, col_sums).to(torch.int64)
    zw = w_zero_point.reshape(-1).to(torch.int64)
    acc = acc - x_zero_point * col_sums.to(torch.int64) + terms * x_zero_point * zw
    if asymmetric_weights:
        acc = acc - zw * x_codes.to(torch.int64).sum(-1, keepdim=True)
    if bias_codes is not None:
        acc = acc + bias_codes.to(torch.int64)
    return _to_int32(acc)


def im2col_codes(x_codes: torch.Tensor, x_zero_point: int, kernel_size, stride, dilation, padding_mode: str,
                 reversed_padding: Sequence[int]) -> tuple[torch.Tensor, int, int]:
    """``[B, oh·ow, kh·kw, C]`` patches of NCHW codes, padded with the zero point (or the padding mode).

    The reduction order is ``(kh, kw, C)`` (channels innermost, so each tap copies whole channel
    vectors of an NHWC view); weights are packed in the same order. Padding pads the real input
    with 0, which is code ``z_x``. Returns the patches and the output height and width.
    """
    left, right, top, bottom = reversed_padding
    if padding_mode != "zeros" and any(reversed_padding):
        x_codes = F.pad(x_codes, (left, right, top, bottom), mode=padding_mode)
        left = right = top = bottom = 0
    x = x_codes.permute(0, 2, 3, 1)  # NHWC view (free for channels-last codes from an IntConv2d)
    x = F.pad(x, (0, 0, left, right, top, bottom), value=x_zero_point) if (left or right or top or bottom) \
        else x.contiguous()
    kh, kw = kernel_size
    (sh, sw), (dh, dw) = stride, dilation
    oh = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1
    ow = (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
    taps = [x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]
            for i in range(kh) for j in range(kw)]
    cols = torch.stack(taps, dim=3)  # [B, oh, ow, kh*kw, C]
    return cols.reshape(x.shape[0], oh * ow, kh * kw, x.shape[3]), oh, ow


# ---- average pooling on a grid ----------------------------------------------------------------------------


class AvgPool:
    """An average pooling, in float and on codes, with the same grid in and out.

    ``kind``: ``"avg_pool2d"`` (``kernel_size, stride, padding, ceil_mode, count_include_pad,
    divisor_override`` as ``F.avg_pool2d``), ``"adaptive_avg_pool2d"`` (``output_size``) or
    ``"mean"`` (``dim, keepdim``). On codes: the exact integer sum of ``q - z`` over each window
    divided by PyTorch's divisor for that window, rounded half away from zero, plus ``z``
    (an average of codes in ``[qmin, qmax]`` stays in range). Integer simulation and converted
    models both call :meth:`codes`, so they agree bit for bit.
    """

    def __init__(self, kind: str, **params):
        if kind not in ("avg_pool2d", "adaptive_avg_pool2d", "mean"):
            raise ValueError(f"AvgPool: unknown kind={kind!r}")
        self.kind = kind
        self.params = params

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind}({args})"

    def float(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        if self.kind == "avg_pool2d":
            return F.avg_pool2d(x, p["kernel_size"], p["stride"], p["padding"], p["ceil_mode"], p["count_include_pad"],
                                p["divisor_override"])
        if self.kind == "adaptive_avg_pool2d":
            return F.adaptive_avg_pool2d(x, p["output_size"])
        return x.mean(dim=p["dim"], keepdim=p["keepdim"])

    def _sums_and_divisors(self, centered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        if self.kind == "avg_pool2d":
            args = (p["kernel_size"], p["stride"], p["padding"], p["ceil_mode"])
            sums = F.avg_pool2d(centered, *args, True, 1)  # divisor 1: exact window sums (padding adds 0)
            if p["divisor_override"]:
                return sums, torch.full_like(sums, float(p["divisor_override"]))
            ones = torch.ones_like(centered[..., :1, :, :]) if centered.dim() == 4 else torch.ones_like(centered[:1])
            inside = F.avg_pool2d(ones, *args, True, 1)
            mean = F.avg_pool2d(ones, *args, p["count_include_pad"], None)
            return sums, torch.round(inside / mean)  # PyTorch's divisor per window (an integer)
        if self.kind == "adaptive_avg_pool2d":
            size = tuple(centered.shape[-2:])
            out = p["output_size"]
            out = (out, out) if isinstance(out, int) else tuple(out)
            out = tuple(size[i] if out[i] is None else out[i] for i in range(2))
            counts = [torch.tensor([-((-(i + 1) * n) // o) - (i * n) // o for i in range(o)], dtype=torch.float64)
                      for n, o in zip(size, out)]
            divisors = (counts[0][:, None] * counts[1][None, :]).to(centered.device)
            sums = torch.round(F.adaptive_avg_pool2d(centered, out) * divisors)  # mean·count: exact integer sums
            return sums, divisors.expand_as(sums)
        dims = p["dim"] if isinstance(p["dim"], (tuple, list)) else (p["dim"],)
        count = 1
        for d in dims:
            count *= centered.shape[d]
        sums = centered.sum(dim=p["dim"], keepdim=p["keepdim"])
        return sums, torch.full_like(sums, float(count))

    def _whole_planes(self, codes: torch.Tensor) -> Optional[tuple[tuple[int, ...], bool]]:
        """``(dims, keepdim)`` when every output averages whole dimensions (a global pooling, a mean):
        then one int64 sum of the codes gives the window sums, with no float64 copy of the input."""
        p = self.params
        if self.kind == "adaptive_avg_pool2d":
            out = p["output_size"]
            out = (out, out) if isinstance(out, int) else tuple(out)
            return ((-2, -1), True) if out == (1, 1) and codes.dim() >= 2 else None
        if self.kind == "mean":
            dims = p["dim"] if isinstance(p["dim"], (tuple, list)) else (p["dim"],)
            return tuple(dims), bool(p["keepdim"])
        return None

    def codes(self, codes: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
        """Average of codes on their grid (see the class docstring)."""
        whole = self._whole_planes(codes)
        if whole is not None:
            dims, keepdim = whole
            count = 1
            for dim in dims:
                count *= codes.shape[dim]
            s = codes.sum(dim=dims, keepdim=keepdim, dtype=torch.int64) - count * zero_point.to(torch.int64)
            d = torch.full_like(s, count)
        else:
            sums, divisors = self._sums_and_divisors(_centered(codes, zero_point))
            s = sums.to(torch.int64)
            d = divisors.to(torch.int64)
        quotient = (2 * s.abs() + d) // (2 * d)  # |s|/d rounded half up, i.e. half away from zero with the sign
        avg = torch.where(s < 0, -quotient, quotient) + zero_point.to(torch.int64)
        return avg.clamp(qmin, qmax).to(codes.dtype)
