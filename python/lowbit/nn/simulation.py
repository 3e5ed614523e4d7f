"""Integer-exact simulation: fake-quant layers whose forward computes what the integer model computes.

``prepare_qat(model, ..., simulation="integer")`` wires these (see :mod:`lowbit.convert`); this
module holds their forward passes. METHODS §9.4, step by step:

1. the input arrives on its quantizer's grid (the producer requantized it, or an entry quantizer
   fake-quantized a float tensor); its codes are ``quantize_affine`` of it, the function the
   converted model runs at its entry;
2. the weight is observed and fake-quantized by its quantizer, then turned into codes; the bias
   into int32 at scale ``S_x·S_w`` (:func:`lowbit.nn._integer.quantize_bias`);
3. the accumulator is computed exactly as an integer;
4. ``(M0, shift)`` from ``double(S_x)·double(S_w)/double(S_out)`` and ``lowbit.ops.requantize``;
5. ``z_out`` is added and the result clamped to ``[act_min, act_max]`` (fused ReLU/ReLU6), then
   dequantized for the next layer;
6. the backward pass is the ordinary straight-through one: the value is the integer result, the
   gradient that of the float simulation ``FQ_out(act(layer(x, FQ_w(W)) + b))``.

Step 6 is ``y_int + (y_sim - y_sim.detach())``: exactly ``y_int`` in the forward pass (adding an
exact zero), ``y_sim``'s gradient in the backward pass. The float simulation is also what the
output quantizer observes in training mode, and what a layer falls back to when one of its
quantizers has fake quantization switched off (``lowbit.disable_fake_quant``).

Where the output goes to no integer consumer (e.g. a classifier's logits), the layer has no output
quantizer and returns the exact int32 accumulator scaled to float, like a converted model does.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import ops
from ..quantizers import Quantizer, _is_tracing
from . import _integer as I

__all__ = ["QuantAdd", "QuantAvgPool", "integer_layer_forward"]


def _enabled(*quantizers: Optional[Quantizer]) -> torch.Tensor:
    flags = [q.fake_quant_enabled for q in quantizers if q is not None]
    out = flags[0]
    for f in flags[1:]:
        out = out & f
    return out


def _finish(y_int: torch.Tensor, y_sim: Optional[torch.Tensor], enabled: torch.Tensor) -> torch.Tensor:
    """The integer value with the float simulation's gradient; the float simulation where disabled."""
    if y_sim is None:
        return y_int
    y_int = y_int.to(y_sim.dtype)
    if y_sim.requires_grad:
        # + (a - a) adds an exact 0 (finite a): the forward value is y_int bit for bit.
        y_int = y_int + (y_sim - y_sim.detach())
    if _is_tracing():
        return torch.where(enabled, y_int, y_sim)
    return y_int if bool(enabled.all()) else y_sim


def _float_path_needed(module: nn.Module, *tensors: torch.Tensor) -> bool:
    # Training mode: the output quantizer observes the float result. Gradients: the STE path.
    # Under torch.compile the float path is always built (the fake-quant switches are tensors).
    if module.training or _is_tracing():
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def integer_layer_forward(layer: nn.Module, x: torch.Tensor, conv: bool) -> torch.Tensor:
    """Forward of a ``QuantLinear`` / ``QuantConv2d`` with ``simulation == "integer"`` (see module doc)."""
    iq: Quantizer = layer.input_quantizer
    wq: Quantizer = layer.weight_quantizer
    oq: Optional[Quantizer] = layer.output_quantizer
    activation = layer.fused_activation
    rounding = layer.requant_rounding

    w_fq = wq(layer.weight)  # observes the weight in training mode; STE path to the weight
    enabled = _enabled(iq, wq, oq)
    float_path = _float_path_needed(layer, x, w_fq)
    if not float_path and not bool(enabled.all()):
        float_path = True  # fake quant switched off somewhere: the float simulation is the answer

    y_sim = None
    if float_path:
        z = layer._conv_forward(x, w_fq, layer.bias) if conv else nn.functional.linear(x, w_fq, layer.bias)
        z = I.apply_float_activation(z, activation)
        y_sim = z if oq is None else oq(z)  # oq observes z in training mode

    with torch.no_grad():
        sa, za = iq.calculate_qparams()
        sw, zw = wq.calculate_qparams()
        out_channels = layer.weight.shape[0]
        sw_out = I.weight_scale_for_output(sw, out_channels, conv)
        x_codes = ops.quantize_affine(x.detach(), sa, za, iq.qmin, iq.qmax)
        w_codes = ops.quantize_affine(w_fq.detach(), sw, zw, wq.qmin, wq.qmax)
        bias_codes = None if layer.bias is None else I.quantize_bias(layer.bias, sa, sw)
        if conv:
            acc = I.conv2d_accumulate(x_codes, za, w_codes, zw, bias_codes, stride=layer.stride,
                                      padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
                                      padding_mode=layer.padding_mode,
                                      reversed_padding=layer._reversed_padding_repeated_twice)
        else:
            acc = I.linear_accumulate(x_codes, za, w_codes, zw, bias_codes)
        if oq is None:
            y_int = I.apply_float_activation(I.accumulator_to_float(acc, I.accumulator_scale(sa, sw_out)), activation)
        else:
            so, zo = oq.calculate_qparams()
            multiplier, shift = I.requant_multiplier(sa, sw_out, so, rounding)
            lo, hi = I.activation_bounds(so, zo, oq.qmin, oq.qmax, activation)
            codes = I.requantize_codes(acc, multiplier, shift, zo, oq.qmin, oq.qmax, rounding, lo, hi)
            y_int = ops.dequantize_affine(codes, so, zo, dtype=x.dtype if x.is_floating_point() else torch.float32)
    return _finish(y_int, y_sim, enabled)


class QuantAdd(nn.Module):
    """``a + b`` of two quantized tensors (and an optional fused ReLU/ReLU6), integer-exact.

    Built by ``prepare_qat(..., simulation="integer")`` for a residual ``x + f(x)`` whose result
    feeds quantized layers. ``a`` and ``b`` arrive on the grids of ``lhs_quantizer`` /
    ``rhs_quantizer`` (their producers' quantizers, shared modules); the sum is requantized to
    ``output_quantizer``'s grid with TFLite's quantized ADD (:func:`lowbit.nn._integer.add_codes`),
    exactly as the converted ``IntAdd`` does. Gradients pass straight through the float sum.

    Args:
        output_quantizer: observes the float sum (after the activation) and sets the output grid.
        lhs_quantizer, rhs_quantizer: the inputs' quantizers (read, never run here).
        activation: None, ``"relu"`` or ``"relu6"``.
        requant_rounding: ``"double"`` (TFLite default) or ``"single"``.
    """

    def __init__(self, output_quantizer: Quantizer, lhs_quantizer: Quantizer, rhs_quantizer: Quantizer, *,
                 activation: Optional[str] = None, requant_rounding: str = "double"):
        super().__init__()
        if activation not in I.ACTIVATIONS:
            raise ValueError(f"QuantAdd: activation must be one of {I.ACTIVATIONS}, got activation={activation!r}")
        if requant_rounding not in I.REQUANT_ROUNDINGS:
            raise ValueError(f"QuantAdd: requant_rounding must be one of {I.REQUANT_ROUNDINGS}, got "
                             f"requant_rounding={requant_rounding!r}")
        self.output_quantizer = output_quantizer
        self.lhs_quantizer = lhs_quantizer
        self.rhs_quantizer = rhs_quantizer
        self.fused_activation = activation
        self.requant_rounding = requant_rounding

    @property
    def left_shift(self) -> int:
        return I.add_left_shift(min(self.lhs_quantizer.qmin, self.rhs_quantizer.qmin),
                                max(self.lhs_quantizer.qmax, self.rhs_quantizer.qmax))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        oq, aq, bq = self.output_quantizer, self.lhs_quantizer, self.rhs_quantizer
        enabled = _enabled(oq, aq, bq)
        # Elementwise and cheap: the float simulation always runs (it also feeds the observer).
        y_sim = oq(I.apply_float_activation(a + b, self.fused_activation))
        with torch.no_grad():
            sa, za = aq.calculate_qparams()
            sb, zb = bq.calculate_qparams()
            so, zo = oq.calculate_qparams()
            a_codes = ops.quantize_affine(a.detach(), sa, za, aq.qmin, aq.qmax)
            b_codes = ops.quantize_affine(b.detach(), sb, zb, bq.qmin, bq.qmax)
            shift = self.left_shift
            params = I.add_params(sa, sb, so, shift, self.requant_rounding)
            lo, hi = I.activation_bounds(so, zo, oq.qmin, oq.qmax, self.fused_activation)
            codes = I.add_codes(a_codes, za, b_codes, zb, params, shift, zo, oq.qmin, oq.qmax, self.requant_rounding,
                                lo, hi)
            y_int = ops.dequantize_affine(codes, so, zo, dtype=y_sim.dtype)
        return _finish(y_int, y_sim, enabled)

    def extra_repr(self) -> str:
        act = f", activation={self.fused_activation}" if self.fused_activation else ""
        return f"requant_rounding={self.requant_rounding}{act}"


class QuantAvgPool(nn.Module):
    """Average pooling of a quantized tensor that stays on its grid, integer-exact.

    Built by ``prepare_qat(..., simulation="integer")`` for ``nn.AvgPool2d``,
    ``nn.AdaptiveAvgPool2d``, ``F.avg_pool2d``, ``F.adaptive_avg_pool2d`` and ``x.mean(dims)`` of a
    quantized value: the output is the input's grid (``quantizer``, the producer's, shared) and the
    codes are the rounded integer average of :class:`lowbit.nn._integer.AvgPool`, as the converted
    ``IntAvgPool`` computes. Gradients are those of the float pooling.
    """

    def __init__(self, quantizer: Quantizer, pool: "I.AvgPool"):
        super().__init__()
        self.quantizer = quantizer
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.quantizer
        y_sim = self.pool.float(x)
        with torch.no_grad():
            scale, zero_point = q.calculate_qparams()
            codes = ops.quantize_affine(x.detach(), scale, zero_point, q.qmin, q.qmax)
            y_int = ops.dequantize_affine(self.pool.codes(codes, zero_point, q.qmin, q.qmax), scale, zero_point,
                                          dtype=y_sim.dtype)
        return _finish(y_int, y_sim, q.fake_quant_enabled)

    def extra_repr(self) -> str:
        return repr(self.pool)
