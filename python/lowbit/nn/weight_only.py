"""Weight-only int4 deployment (LLM-style): float activations, 4-bit weights.

:class:`Int4WeightOnlyLinear` holds a Linear layer's weight as 4-bit codes with a per-group
scale and zero point (asymmetric min-max over groups of ``group_size`` consecutive input
features, codes in ``[0, 15]``), packed once for :func:`lowbit.ops.int4_weight_linear_packed`:
an eighth of the float32 weight bytes plus one scale and zero point per group.
:func:`quantize_int4_weight_only` swaps a model's ``nn.Linear`` layers for it in place, and
deploys weight-only QAT layers (``prepare_qat(model, weight=<4-bit spec>)``) on the grids they
trained with (:meth:`Int4WeightOnlyLinear.from_quantized`).
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional

import torch
from torch import nn

from .. import ops
from .modules import QuantLinear

__all__ = ["Int4WeightOnlyLinear", "quantize_int4_weight_only"]


def _check_group_size(in_features: int, group_size: int) -> None:
    if group_size < 8 or group_size % 8 != 0:
        raise ValueError(f"group_size must be a positive multiple of 8, got {group_size}")
    if in_features % group_size != 0:
        raise ValueError(f"in_features = {in_features} is not a multiple of group_size = {group_size}")


class Int4WeightOnlyLinear(nn.Module):
    """``y = x @ W_q.T + bias`` with ``W_q = (q - zero_point) * scale`` per group of input features.

    Buffers: ``packed_weight`` (int32 ``[ceil(N/8), K/8, 8]``, :func:`lowbit.ops.int4_pack_weight`),
    ``packed_params`` (float32 ``[ceil(N/8), K/group_size, 2, 8]``, :func:`lowbit.ops.int4_pack_params`)
    and the float ``bias``. Activations may be float32, bfloat16 or float16; the output has the
    input's dtype (computed in float32, in the fixed order of ``cpp/kernels/int4_weight.h``, so it
    is the same on every CPU kernel path). Build it with :meth:`from_float`.
    """

    def __init__(self, in_features: int, out_features: int, group_size: int = 128, bias: bool = True) -> None:
        super().__init__()
        _check_group_size(in_features, group_size)
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        blocks, groups = (out_features + 7) // 8, in_features // group_size
        self.register_buffer("packed_weight", torch.zeros(blocks, in_features // 8, 8, dtype=torch.int32))
        params = torch.zeros(blocks, groups, 2, 8)
        params[:, :, 0, :] = 1.0  # a valid (if meaningless) scale until weights are loaded
        self.register_buffer("packed_params", params)
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @staticmethod
    def quantize_weight(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes uint8 [N, K], scale float32 [N, K // g], zero_point int32 [N, K // g])`` of a
        float weight: each group's range (widened to include 0) mapped onto ``[0, 15]`` as torch.ao's
        min-max observers do (:func:`lowbit.ops.choose_qparams`)."""
        if weight.dim() != 2:
            raise ValueError(f"weight must be 2-D [out_features, in_features], got shape {tuple(weight.shape)}")
        _check_group_size(weight.shape[1], group_size)
        w = weight.detach().to(torch.float32)
        if not torch.isfinite(w).all():
            raise ValueError("weight has NaN or infinite elements")
        groups = w.reshape(w.shape[0], -1, group_size)
        scale, zero_point = ops.choose_qparams(groups.amin(-1), groups.amax(-1), 0, 15)
        codes = ops.quantize_affine(w, scale, zero_point, 0, 15).to(torch.uint8)
        return codes, scale, zero_point

    @classmethod
    def from_float(cls, linear: nn.Linear, group_size: int = 128) -> "Int4WeightOnlyLinear":
        """Quantize ``linear.weight`` (groups of ``group_size`` input features, a multiple of 8
        that divides ``in_features``) and pack it; the bias stays float."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_float takes an nn.Linear, got {type(linear).__name__}")
        module = cls(linear.in_features, linear.out_features, group_size, bias=linear.bias is not None)
        codes, scale, zero_point = cls.quantize_weight(linear.weight, group_size)
        module.packed_weight = ops.int4_pack_weight(codes)
        module.packed_params = ops.int4_pack_params(scale, zero_point)
        if linear.bias is not None:
            module.bias = linear.bias.detach().to(torch.float32).clone()
        return module.to(linear.weight.device)

    @classmethod
    def from_quantized(cls, layer: QuantLinear) -> "Int4WeightOnlyLinear":
        """Deploy a weight-only quantization-aware layer (``prepare_qat(model, weight=spec)`` with
        no activation spec) on the grid it trained with: its weight quantizer's codes and
        ``calculate_qparams()``, shifted onto ``[0, 15]`` (``q - qmin``, ``zero_point - qmin``; the
        dequantized weight is unchanged). The quantizer must be on an affine grid of at most 16
        levels, per tensor, per output channel or per group along ``in_features`` (a multiple of 8).
        The output equals the layer's ``eval()`` output up to float32 summation order."""
        if not isinstance(layer, QuantLinear):
            raise TypeError(f"from_quantized takes a lowbit.nn.QuantLinear, got {type(layer).__name__}")
        q, spec = layer.weight_quantizer, getattr(layer.weight_quantizer, "spec", None)
        if layer.input_quantizer is not None:
            raise ValueError("from_quantized: the layer quantizes its input too; weight-only int4 runs float "
                             "activations (use lowbit.convert for integer activations)")
        if q is None or not callable(getattr(q, "calculate_qparams", None)):
            raise ValueError(f"from_quantized: the weight quantizer ({type(q).__name__}) has no affine grid "
                             f"(calculate_qparams)")
        if q.qmax - q.qmin > 15:
            raise ValueError(f"from_quantized: the weight grid [{q.qmin}, {q.qmax}] has more than 16 levels")
        k = layer.in_features
        if spec.granularity == "per_group":
            if spec.resolved_axis(2) != 1:
                raise ValueError("from_quantized: per-group weight quantization must group along in_features")
            group = spec.group_size
        elif spec.granularity == "per_channel" and spec.resolved_axis(2) != 0:
            raise ValueError("from_quantized: per-channel weight quantization must be per output channel (axis 0)")
        else:
            group = k
        _check_group_size(k, group)
        scale, zero_point = q.calculate_qparams()
        shape = (layer.out_features, k // group)
        scale = scale.detach().to(torch.float32).expand(shape).contiguous()
        zero_point = zero_point.detach().to(torch.int32).expand(shape).contiguous()
        codes = ops.quantize_affine(layer.weight.detach().to(torch.float32), scale, zero_point, q.qmin, q.qmax)
        module = cls(k, layer.out_features, group, bias=layer.bias is not None)
        module.packed_weight = ops.int4_pack_weight(codes.to(torch.int32) - q.qmin)
        module.packed_params = ops.int4_pack_params(scale, zero_point - q.qmin)
        if layer.bias is not None:
            module.bias = layer.bias.detach().to(torch.float32).clone()
        return module.to(layer.weight.device)

    def codes_and_qparams(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes uint8 [N, K], scale [N, K // g], zero_point int32 [N, K // g])`` back from the
        packed buffers."""
        n = self.out_features
        codes = ops.int4_unpack_weight(self.packed_weight, n)
        scale = self.packed_params[:, :, 0, :].transpose(1, 2).reshape(-1, self.packed_params.shape[1])[:n]
        zero_point = self.packed_params[:, :, 1, :].transpose(1, 2).reshape(-1, self.packed_params.shape[1])[:n]
        return codes, scale.contiguous(), zero_point.to(torch.int32)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight the layer computes with, ``(q - zero_point) * scale``."""
        codes, scale, zero_point = self.codes_and_qparams()
        g = self.group_size
        return (codes.float() - zero_point.float().repeat_interleave(g, 1)) * scale.repeat_interleave(g, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ops.int4_weight_linear_packed(x, self.packed_weight, self.packed_params, self.out_features, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}, "
                f"bias={self.bias is not None}")


def quantize_int4_weight_only(model: nn.Module, group_size: int = 128, *,
                              filter_fn: Optional[Callable[[str, nn.Module], bool]] = None) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` of ``model`` (for which ``filter_fn(name, layer)`` is
    true, if given) by :meth:`Int4WeightOnlyLinear.from_float` with ``group_size``, and every
    weight-only quantization-aware ``QuantLinear`` (``prepare_qat(model, weight=<4-bit spec>)``)
    by :meth:`Int4WeightOnlyLinear.from_quantized` on the grid it trained with; returns ``model``.

    Layers that cannot be converted stay as they are, with one warning naming them and why
    (``in_features`` not a multiple of ``group_size``; a QuantLinear that also quantizes its input
    or whose weight grid is not 4-bit). A model with nothing to convert is an error.
    """
    if group_size < 8 or group_size % 8 != 0:
        raise ValueError(f"group_size must be a positive multiple of 8, got {group_size}")
    targets, skipped = [], []
    for name, module in model.named_modules():
        if type(module) is not nn.Linear and not isinstance(module, QuantLinear):
            continue
        if filter_fn is not None and not filter_fn(name, module):
            continue
        if isinstance(module, QuantLinear):
            try:
                targets.append((name, Int4WeightOnlyLinear.from_quantized(module)))
            except ValueError as e:
                skipped.append(f"'{name}' ({e})")
        elif module.in_features % group_size != 0:
            skipped.append(f"'{name}' (in_features {module.in_features} is not a multiple of group_size {group_size})")
        else:
            targets.append((name, Int4WeightOnlyLinear.from_float(module, group_size)))
    if not targets:
        raise ValueError("quantize_int4_weight_only: no layer to convert" +
                         (f"; kept: {', '.join(skipped)}" if skipped else " (the model has no nn.Linear)"))
    if skipped:
        warnings.warn("quantize_int4_weight_only: kept as they are: " + ", ".join(skipped), stacklevel=2)
    for name, new in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model
