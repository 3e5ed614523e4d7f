"""Integer modules of converted models (``lowbit.convert``): codes in, codes out.

Between these modules flow integer codes (uint8 / int8, or int16 for wider formats); each
module holds the frozen quantization parameters of its input and output grids as buffers and
computes with the functions of :mod:`lowbit.nn._integer`, the same ones integer simulation runs
(:mod:`lowbit.nn.simulation`), so a converted model equals its integer-simulation model bit for
bit. :class:`Quantize` enters the integer region from float, :class:`Dequantize` leaves it.

Weights are stored once as integer codes (int8 for 8-bit weights: a quarter of float32), with
their per-channel zero points, the int32 bias and the fixed-point multipliers precomputed.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from .._registrations import code_dtype
from ..quantizers import Quantizer
from . import _integer as I

__all__ = ["Quantize", "Dequantize", "IntLinear", "IntConv2d", "IntAdd", "IntReLU", "IntAvgPool", "IntMaxPool2d"]


def _qparams(quantizer: Quantizer, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    scale, zero_point = quantizer.calculate_qparams()
    return scale.detach().clone(), zero_point.detach().clone().to(torch.int32)


def _opt_buffer(module: nn.Module, name: str, value: Optional[torch.Tensor]) -> None:
    module.register_buffer(name, None if value is None else value.detach().clone())


class Quantize(nn.Module):
    """Float -> codes at the entry of an integer region: ``lowbit.ops.quantize_affine``.

    Buffers ``scale`` (float32) and ``zero_point`` (int32); ``rounding`` is the quantizer's
    (stochastic rounding, a training-time choice, becomes half-to-even as in evaluation).
    """

    def __init__(self, scale: torch.Tensor, zero_point: torch.Tensor, qmin: int, qmax: int,
                 rounding: str = "half_even"):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().to(torch.float32))
        self.register_buffer("zero_point", zero_point.detach().clone().to(torch.int32))
        self.qmin, self.qmax = int(qmin), int(qmax)
        self.rounding = "half_even" if rounding == "stochastic" else rounding

    @classmethod
    def from_quantizer(cls, quantizer: Quantizer) -> "Quantize":
        scale, zero_point = _qparams(quantizer, "quantizer")
        return cls(scale, zero_point, quantizer.qmin, quantizer.qmax, quantizer.spec.rounding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.quantize_affine(x, self.scale, self.zero_point, self.qmin, self.qmax, rounding=self.rounding)

    def extra_repr(self) -> str:
        return _grid_repr(self.scale, self.zero_point, self.qmin, self.qmax)


class Dequantize(nn.Module):
    """Codes -> float32 at the exit of an integer region: ``lowbit.ops.dequantize_affine``."""

    def __init__(self, scale: torch.Tensor, zero_point: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().to(torch.float32))
        self.register_buffer("zero_point", zero_point.detach().clone().to(torch.int32))

    @classmethod
    def from_quantizer(cls, quantizer: Quantizer) -> "Dequantize":
        return cls(*_qparams(quantizer, "quantizer"))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return ops.dequantize_affine(codes, self.scale, self.zero_point)

    def extra_repr(self) -> str:
        return _grid_repr(self.scale, self.zero_point)


def _grid_repr(scale, zero_point, qmin=None, qmax=None) -> str:
    if scale.device.type == "meta":
        return ""
    rng = f", range=[{qmin}, {qmax}]" if qmin is not None else ""
    if scale.numel() == 1:
        return f"scale={scale.item():.6g}, zero_point={int(zero_point.item())}{rng}"
    return f"scale=[{scale.numel()} values]{rng}"


class _IntLayer(nn.Module):
    """Shared state of IntLinear / IntConv2d, taken from a wired integer-simulation layer.

    ``route`` is ``"int8"`` (the int8 GEMM ops: weights packed once, requantization fused into the
    epilogue) when the codes fit them, else ``"reference"`` (exact float64 accumulation of the
    codes + ``lowbit.ops.requantize``, any 2-16 bit format). Both compute the same integers.
    """

    conv: bool

    def _init_from(self, layer: nn.Module, use_kernels: bool) -> None:
        iq, wq, oq = layer.input_quantizer, layer.weight_quantizer, layer.output_quantizer
        sa, za = _qparams(iq, "input_quantizer")
        sw, zw = _qparams(wq, "weight_quantizer")
        out_channels = layer.weight.shape[0]
        sw_out = I.weight_scale_for_output(sw, out_channels, self.conv)
        self.fused_activation = layer.fused_activation
        self.requant_rounding = layer.requant_rounding
        self.input_qmin, self.input_qmax = iq.qmin, iq.qmax
        self.terms = layer.weight[0].numel()
        with torch.no_grad():
            # The codes integer simulation computes: quantize_affine of the fake-quantized weight,
            # which equals quantizing the weight itself with the quantizer's evaluation rounding.
            rounding = "half_even" if wq.spec.rounding == "stochastic" else wq.spec.rounding
            w_codes = ops.quantize_affine(layer.weight.detach(), sw, zw, wq.qmin, wq.qmax, rounding=rounding)
        self.register_buffer("weight_scale", sw)
        self.register_buffer("weight_zero_point", zw)
        self.register_buffer("input_scale", sa)
        self.register_buffer("input_zero_point", za)
        bias = None if layer.bias is None else I.quantize_bias(layer.bias, sa, sw)
        _opt_buffer(self, "bias", bias)
        self.quantized_output = oq is not None
        out_range = None
        if oq is not None:
            so, zo = _qparams(oq, "output_quantizer")
            multiplier, shift = I.requant_multiplier(sa, sw_out, so, self.requant_rounding)
            lo, hi = I.activation_bounds(so, zo, oq.qmin, oq.qmax, self.fused_activation)
            self.output_qmin, self.output_qmax = oq.qmin, oq.qmax
            self.register_buffer("output_scale", so)
            self.register_buffer("output_zero_point", zo)
            self.register_buffer("multiplier", multiplier)
            self.register_buffer("shift", shift)
            _opt_buffer(self, "act_min", lo)
            _opt_buffer(self, "act_max", hi)
            out_range = (oq.qmin, oq.qmax)
            # The fused kernel clamps to [act_min, act_max] itself when that keeps the code dtype.
            k_lo = oq.qmin if lo is None else int(lo.item())
            k_hi = oq.qmax if hi is None else int(hi.item())
            same_dtype = code_dtype(k_lo, k_hi) == code_dtype(oq.qmin, oq.qmax)
            self._kernel_range = (k_lo, k_hi) if same_dtype else (oq.qmin, oq.qmax)
            self._kernel_clamps = same_dtype
        else:
            self.register_buffer("accumulator_scale", I.accumulator_scale(sa, sw_out))
        self._input_zero_point = int(za.item())
        self._asymmetric_weights = bool((zw != 0).any())
        self.route = "reference"
        if use_kernels and I.int8_kernel_applies(iq.qmin, iq.qmax, self._input_zero_point, w_codes, zw, self.terms,
                                                 bias, out_range):
            self.route = "int8"
            self._pack(w_codes)
        else:
            self.register_buffer("weight", w_codes)

    def _pack(self, w_codes: torch.Tensor) -> None:
        raise NotImplementedError

    def _finish(self, acc: torch.Tensor) -> torch.Tensor:
        if not self.quantized_output:
            return I.apply_float_activation(I.accumulator_to_float(acc, self.accumulator_scale), self.fused_activation)
        return I.requantize_codes(acc, self.multiplier, self.shift, self.output_zero_point, self.output_qmin,
                                  self.output_qmax, self.requant_rounding, self.act_min, self.act_max)

    def _int8_gemm_codes(self, cols: torch.Tensor, packed: torch.Tensor, col_sums: torch.Tensor,
                         bias: Optional[torch.Tensor], w_zero_point: torch.Tensor, multiplier: torch.Tensor,
                         shift: torch.Tensor) -> torch.Tensor:
        """One int8 GEMM on ``[..., K]`` codes: requantized codes, or the int32 accumulators of a float output."""
        if not self.quantized_output:
            return I.int8_accumulate(cols, packed, col_sums, self.terms, self._input_zero_point, w_zero_point, bias,
                                     self._asymmetric_weights)
        qmin, qmax = self._kernel_range
        codes = ops.int8_linear(cols, packed, col_sums, bias, self.input_zero_point, w_zero_point.reshape(-1),
                                multiplier.reshape(-1), shift.reshape(-1), self.output_zero_point, qmin, qmax,
                                rounding=self.requant_rounding)
        return codes if self._kernel_clamps else I.apply_bounds(codes, self.act_min, self.act_max)

    def output_lsb(self) -> torch.Tensor:
        """The real value of one step of this layer's output: its output scale, or ``S_x·S_w`` per channel."""
        return self.output_scale if self.quantized_output else self.accumulator_scale.float()

    def weight_bytes(self) -> int:
        """Bytes of the stored weight (packed panels, or codes on the reference route)."""
        w = self.packed_weight if self.route == "int8" else self.weight
        return w.numel() * w.element_size()

    def _int_repr(self) -> str:
        out = (f"out={_grid_repr(self.output_scale, self.output_zero_point, self.output_qmin, self.output_qmax)}"
               if self.quantized_output else "out=float32 (from the int32 accumulator)")
        act = f", fused_activation={self.fused_activation}" if self.fused_activation else ""
        return (f"in={_grid_repr(self.input_scale, self.input_zero_point, self.input_qmin, self.input_qmax)}, {out}"
                f"{act}, requant_rounding={self.requant_rounding}, route={self.route}")


class IntLinear(_IntLayer):
    """A converted ``QuantLinear``: ``[..., in_features]`` input codes -> output codes (or float).

    ``acc = Σ (x - z_x)(w - z_w) + bias`` exactly in int32, then requantization to the output grid
    with the fused activation as a clamp (``lowbit.ops.int8_linear`` does all of it in one pass on
    the int8 route); a layer without an output quantizer (its result feeds no integer layer, e.g.
    the logits) returns ``float32(acc · S_x·S_w)``.

    Buffers: ``packed_weight`` + ``weight_col_sums`` (int8 route, packed once) or ``weight`` (codes),
    ``weight_scale``, ``weight_zero_point``, ``bias`` (int32 at scale ``S_x·S_w``), input/output
    scale and zero point, ``multiplier`` / ``shift`` (fixed-point ``S_x·S_w/S_out``), ``act_min`` /
    ``act_max``.
    """

    conv = False

    def __init__(self, layer: nn.Module, *, use_kernels: bool = True):
        super().__init__()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self._init_from(layer, use_kernels)

    @classmethod
    def from_simulation(cls, layer: nn.Module, *, use_kernels: bool = True) -> "IntLinear":
        """From a ``QuantLinear`` wired for integer simulation (``layer.simulation == "integer"``)."""
        return cls(layer, use_kernels=use_kernels)

    def _pack(self, w_codes: torch.Tensor) -> None:
        packed, col_sums = ops.int8_pack_weight(w_codes)
        self.register_buffer("packed_weight", packed)
        self.register_buffer("weight_col_sums", col_sums)

    def weight_codes(self) -> torch.Tensor:
        """The ``[out_features, in_features]`` weight codes."""
        if self.route == "int8":
            return ops.int8_unpack_weight(self.packed_weight, self.out_features, self.in_features)
        return self.weight

    def forward(self, x_codes: torch.Tensor) -> torch.Tensor:
        if self.route == "int8":
            out = self._int8_gemm_codes(x_codes, self.packed_weight, self.weight_col_sums, self.bias,
                                        self.weight_zero_point,
                                        *((self.multiplier, self.shift) if self.quantized_output else (None, None)))
            return out if self.quantized_output else self._finish(out)
        acc = I.linear_accumulate(x_codes, self.input_zero_point, self.weight, self.weight_zero_point, self.bias)
        return self._finish(acc)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self._int_repr()}"


class IntConv2d(_IntLayer):
    """A converted ``QuantConv2d`` on NCHW codes (stride, padding and padding modes, dilation, groups).

    Same arithmetic as :class:`IntLinear`; zero padding pads with the input zero point (real 0).
    On the int8 route a layer with a quantized output runs ``lowbit.ops.int8_conv2d`` (weights
    packed once at conversion by ``int8_pack_conv_weight``; stride, dilation, groups and the
    requantization fused; asymmetric or non-zero padding modes pad the codes first), writing NCHW
    codes. A layer returning float (no output quantizer) needs the raw int32 accumulators, which
    ``int8_conv2d`` does not return: it gathers patches of the codes (im2col, channels innermost)
    into ``int8_gemm`` per group. ``int8_op`` names the kernel a layer uses.
    """

    conv = True
    int8_op: Optional[str] = None  # "int8_conv2d" or "im2col+int8_gemm" on the int8 route

    def __init__(self, layer: nn.Module, *, use_kernels: bool = True):
        super().__init__()
        for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                     "padding_mode", "_reversed_padding_repeated_twice"):
            setattr(self, name, getattr(layer, name))
        self._init_from(layer, use_kernels)

    @classmethod
    def from_simulation(cls, layer: nn.Module, *, use_kernels: bool = True) -> "IntConv2d":
        """From a ``QuantConv2d`` wired for integer simulation (``layer.simulation == "integer"``)."""
        return cls(layer, use_kernels=use_kernels)

    def _pack(self, w_codes: torch.Tensor) -> None:
        if self.quantized_output:
            # Packed once here; per group, reduction order (kh, kw, C/groups) like the im2col route.
            self.int8_op = "int8_conv2d"
            packed, col_sums = ops.int8_pack_conv_weight(w_codes, self.groups)
            self.register_buffer("packed_weight", packed)
            self.register_buffer("weight_col_sums", col_sums)
            left, right, top, bottom = self._reversed_padding_repeated_twice
            # int8_conv2d pads symmetrically with the zero point; anything else pads the codes first.
            self._kernel_padding = ((top, left) if self.padding_mode == "zeros" and left == right and top == bottom
                                    else None)
            return
        self.int8_op = "im2col+int8_gemm"
        # Reduction order (kh, kw, C/groups), the order of I.im2col_codes' patches.
        og = self.out_channels // self.groups
        taps = w_codes.permute(0, 2, 3, 1).reshape(self.groups, og, -1)
        packed = [ops.int8_pack_weight(taps[g].contiguous()) for g in range(self.groups)]
        self.register_buffer("packed_weight", torch.stack([p for p, _ in packed]))
        self.register_buffer("weight_col_sums", torch.stack([c for _, c in packed]))

    def weight_codes(self) -> torch.Tensor:
        """The ``[out_channels, in_channels/groups, kh, kw]`` weight codes."""
        if self.route == "reference":
            return self.weight
        og, cg = self.out_channels // self.groups, self.in_channels // self.groups
        parts = [ops.int8_unpack_weight(self.packed_weight[g], og, self.terms) for g in range(self.groups)]
        return torch.cat(parts).reshape(self.out_channels, *self.kernel_size, cg).permute(0, 3, 1, 2).contiguous()

    def _channel_slice(self, t: Optional[torch.Tensor], g: int) -> Optional[torch.Tensor]:
        if t is None or t.numel() == 1:
            return t
        og = self.out_channels // self.groups
        return t.reshape(-1)[g * og:(g + 1) * og]

    def _forward_int8_conv2d(self, x_codes: torch.Tensor) -> torch.Tensor:
        batched = x_codes.dim() == 4
        x = x_codes if batched else x_codes.unsqueeze(0)
        padding = self._kernel_padding
        if padding is None:
            left, right, top, bottom = self._reversed_padding_repeated_twice
            if self.padding_mode == "zeros":
                x = F.pad(x, (left, right, top, bottom), value=self._input_zero_point)
            else:
                x = F.pad(x, (left, right, top, bottom), mode=self.padding_mode)
            padding = (0, 0)
        qmin, qmax = self._kernel_range
        out = ops.int8_conv2d(x, self.packed_weight, self.weight_col_sums, self.bias, self.input_zero_point,
                              self.weight_zero_point.reshape(-1), self.multiplier.reshape(-1),
                              self.shift.reshape(-1), self.output_zero_point, qmin, qmax, self.kernel_size,
                              self.stride, padding, self.dilation, self.groups, rounding=self.requant_rounding)
        out = out if self._kernel_clamps else I.apply_bounds(out, self.act_min, self.act_max)
        return out if batched else out.squeeze(0)

    def _forward_int8(self, x_codes: torch.Tensor) -> torch.Tensor:
        if self.int8_op == "int8_conv2d":
            return self._forward_int8_conv2d(x_codes)
        batched = x_codes.dim() == 4
        x = x_codes if batched else x_codes.unsqueeze(0)
        cols, oh, ow = I.im2col_codes(x, self._input_zero_point, self.kernel_size, self.stride, self.dilation,
                                      self.padding_mode, self._reversed_padding_repeated_twice)
        batch, positions, taps, channels = cols.shape
        cg = channels // self.groups
        outs = []
        for g in range(self.groups):
            part = cols if self.groups == 1 else cols[..., g * cg:(g + 1) * cg]
            outs.append(self._int8_gemm_codes(
                part.reshape(batch, positions, taps * cg), self.packed_weight[g], self.weight_col_sums[g],
                self._channel_slice(self.bias, g), self._channel_slice(self.weight_zero_point, g),
                *((self._channel_slice(self.multiplier, g), self._channel_slice(self.shift, g))
                  if self.quantized_output else (None, None))))
        out = outs[0] if self.groups == 1 else torch.cat(outs, dim=-1)
        # NCHW values in channels-last memory: what the GEMM wrote, no transpose copy; max pooling and
        # the next convolution's patches read it directly.
        out = out.reshape(batch, oh, ow, self.out_channels).permute(0, 3, 1, 2)
        out = out if batched else out.squeeze(0)
        return out if self.quantized_output else self._finish(out)

    def forward(self, x_codes: torch.Tensor) -> torch.Tensor:
        if self.route == "int8":
            return self._forward_int8(x_codes)
        acc = I.conv2d_accumulate(x_codes, self.input_zero_point, self.weight, self.weight_zero_point, self.bias,
                                  stride=self.stride, padding=self.padding, dilation=self.dilation,
                                  groups=self.groups, padding_mode=self.padding_mode,
                                  reversed_padding=self._reversed_padding_repeated_twice)
        return self._finish(acc)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, {self._int_repr()}"
                + (f", int8_op={self.int8_op}" if self.route == "int8" else ""))


def _refresh_add_kernel_args(module: nn.Module, _incompatible_keys) -> None:
    module._set_kernel_args()  # a module-level function, not a lambda: converted models pickle


class IntAdd(nn.Module):
    """A converted ``QuantAdd``: codes ``a``, ``b`` on their grids -> codes of ``a + b`` (TFLite ADD)."""

    def __init__(self, add: nn.Module):
        super().__init__()
        aq, bq, oq = add.lhs_quantizer, add.rhs_quantizer, add.output_quantizer
        sa, za = _qparams(aq, "lhs_quantizer")
        sb, zb = _qparams(bq, "rhs_quantizer")
        so, zo = _qparams(oq, "output_quantizer")
        self.fused_activation = add.fused_activation
        self.requant_rounding = add.requant_rounding
        self.left_shift = add.left_shift
        self.output_qmin, self.output_qmax = oq.qmin, oq.qmax
        for name, value in (("lhs_scale", sa), ("lhs_zero_point", za), ("rhs_scale", sb), ("rhs_zero_point", zb),
                            ("output_scale", so), ("output_zero_point", zo)):
            self.register_buffer(name, value)
        params = I.add_params(sa, sb, so, self.left_shift, self.requant_rounding)
        for name, value in zip(("lhs_multiplier", "lhs_shift", "rhs_multiplier", "rhs_shift", "multiplier", "shift"),
                               params):
            self.register_buffer(name, value)
        lo, hi = I.activation_bounds(so, zo, oq.qmin, oq.qmax, self.fused_activation)
        _opt_buffer(self, "act_min", lo)
        _opt_buffer(self, "act_max", hi)
        self.output_dtype = code_dtype(oq.qmin, oq.qmax)
        self._set_kernel_args()
        # Loading a state dict replaces the buffers the kernel arguments derive from.
        self.register_load_state_dict_post_hook(_refresh_add_kernel_args)

    def _set_kernel_args(self) -> None:
        """The fused int8_add kernel (one pass, same arithmetic) when everything is per tensor, the
        output is 8-bit and every shift is <= 0 (add_params' multipliers are below 1); the reference
        route in forward is five tensor ops and three requantize calls. The kernel's clamp bounds
        are the output range and the fused activation's together; its tensor arguments are
        non-persistent buffers derived from the persistent ones (not part of the state dict)."""
        self.kernel_bounds: Optional[tuple[int, int]] = None
        zps = (self.lhs_zero_point, self.rhs_zero_point, self.output_zero_point)
        mults = (self.lhs_multiplier, self.rhs_multiplier, self.multiplier)
        shifts = (self.lhs_shift, self.rhs_shift, self.shift)
        if not all(t.numel() == 1 for t in zps + mults + shifts) or any(int(t) > 0 for t in shifts):
            return
        lo, hi = self.act_min, self.act_max
        qmin = max(self.output_qmin, int(lo) if lo is not None else self.output_qmin)
        qmax = min(self.output_qmax, int(hi) if hi is not None else self.output_qmax)
        eight_bit = 0 <= qmin and qmax <= 255 or -128 <= qmin and qmax <= 127
        if qmin >= qmax or not eight_bit or self.left_shift > 22:
            return
        self.kernel_bounds = (qmin, qmax)
        for name, parts in (("kernel_zero_points", zps), ("kernel_multipliers", mults), ("kernel_shifts", shifts)):
            self.register_buffer(name, torch.cat([t.reshape(1) for t in parts]).to(torch.int32), persistent=False)

    @classmethod
    def from_simulation(cls, add: nn.Module) -> "IntAdd":
        return cls(add)

    def forward(self, a_codes: torch.Tensor, b_codes: torch.Tensor) -> torch.Tensor:
        if (self.kernel_bounds is not None and a_codes.dtype == b_codes.dtype
                and a_codes.dtype in (torch.uint8, torch.int8) and a_codes.device.type == "cpu"):
            out = torch.ops.lowbit.int8_add(a_codes, b_codes, self.kernel_zero_points, self.kernel_multipliers,
                                            self.kernel_shifts, self.kernel_bounds[0], self.kernel_bounds[1],
                                            self.left_shift, self.requant_rounding)
            return out if out.dtype == self.output_dtype else out.to(self.output_dtype)
        params = (self.lhs_multiplier, self.lhs_shift, self.rhs_multiplier, self.rhs_shift, self.multiplier, self.shift)
        return I.add_codes(a_codes, self.lhs_zero_point, b_codes, self.rhs_zero_point, params, self.left_shift,
                           self.output_zero_point, self.output_qmin, self.output_qmax, self.requant_rounding,
                           self.act_min, self.act_max)

    def output_lsb(self) -> torch.Tensor:
        return self.output_scale

    def extra_repr(self) -> str:
        act = f", fused_activation={self.fused_activation}" if self.fused_activation else ""
        return (f"out={_grid_repr(self.output_scale, self.output_zero_point, self.output_qmin, self.output_qmax)}"
                f", left_shift={self.left_shift}{act}, requant_rounding={self.requant_rounding}")


class IntReLU(nn.Module):
    """ReLU on codes: ``max(q, z)`` (real 0 is code ``z``), exact on the input's grid."""

    def __init__(self, zero_point: torch.Tensor):
        super().__init__()
        self.register_buffer("zero_point", zero_point.detach().clone().to(torch.int32))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return I.apply_bounds(codes, self.zero_point, None)


class IntAvgPool(nn.Module):
    """Average pooling on codes, same grid in and out (a converted ``QuantAvgPool``).

    The exact integer window sums of ``q - z`` divided by PyTorch's divisor, rounded half away from
    zero (:class:`lowbit.nn._integer.AvgPool`).
    """

    def __init__(self, pool: "I.AvgPool", zero_point: torch.Tensor, qmin: int, qmax: int):
        super().__init__()
        self.pool = pool
        self.register_buffer("zero_point", zero_point.detach().clone().to(torch.int32))
        self.qmin, self.qmax = int(qmin), int(qmax)

    @classmethod
    def from_simulation(cls, module: nn.Module) -> "IntAvgPool":
        q = module.quantizer
        return cls(module.pool, q.calculate_qparams()[1], q.qmin, q.qmax)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.pool.codes(codes, self.zero_point, self.qmin, self.qmax)

    def extra_repr(self) -> str:
        return repr(self.pool)


class IntMaxPool2d(nn.Module):
    """Max pooling on uint8 / int8 codes, same grid in and out: ``lowbit.ops.int8_max_pool2d``.

    A converted ``nn.MaxPool2d`` / ``F.max_pool2d`` whose input is codes. Quantization is monotonic,
    so the max of codes is the code of the max: the result equals the simulated model's float
    max pooling quantized on the same grid, with no arithmetic. Arguments as ``nn.MaxPool2d``
    (``stride=None`` means ``kernel_size``); ``return_indices`` is not supported (such poolings are
    not converted).
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.ceil_mode = bool(ceil_mode)

    @classmethod
    def from_float(cls, pool: nn.MaxPool2d) -> "IntMaxPool2d":
        return cls(pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return ops.int8_max_pool2d(codes, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}, op=int8_max_pool2d")
