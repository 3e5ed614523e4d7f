"""Quantization-aware layers: ``nn.Linear`` / ``nn.Conv2d`` with weight and input quantizers.

Where quantization happens: each layer fake-quantizes its **input** (``input_quantizer``, built
from the activation spec) and its **weight** (``weight_quantizer``) on every forward, then runs the
float op on the fake-quantized values. The bias stays float (integer inference adds it in int32
at scale ``s_in * s_w``). The output is not quantized here: the next quantized layer quantizes it
as its input, which is what an integer pipeline needs (each layer's input scale), and a model's
final output stays float.

Integer simulation (``prepare_qat(..., simulation="integer")``, :mod:`lowbit.nn.simulation`)
rewires the layers of a captured graph instead: ``input_quantizer`` becomes the producer's
quantizer (read, not run), ``output_quantizer`` requantizes the output as the integer model does,
and ``fused_activation`` clamps it. Those attributes are set by that wiring, not by hand.

Memory: the float op saves its input for the weight gradient. Saving the fake-quantized copy
would keep one extra activation per layer alive (``x`` itself is kept anyway, by the quantizer and
usually by the ReLU that produced it), so in eager training the layers keep a recipe instead and
recompute ``input_quantizer(x)`` in backward (one elementwise pass, bit-identical; see
:mod:`lowbit._recompute`). ``recompute_input = False`` on a layer saves the copy instead.

The layers subclass ``nn.Linear`` / ``nn.Conv2d``, so code that checks ``isinstance`` or reads
``weight``, ``in_features``, ``padding``... keeps working, and ``from_float`` keeps the original
``Parameter`` objects (an optimizer built before the swap still updates them).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .._recompute import hooks_available, recompute_saved
from ..quantizers import Quantizer, make_quantizer
from ..spec import QuantSpec
from .simulation import integer_layer_forward

__all__ = ["QuantLinear", "QuantConv2d"]


def _check_spec(spec, what: str, layer: str) -> Optional[QuantSpec]:
    if spec is not None and not isinstance(spec, QuantSpec):
        raise TypeError(f"{layer}: {what} must be a lowbit.QuantSpec or None, got {what}={spec!r}")
    return spec


def _activation_spec(spec: Optional[QuantSpec], layer: str, feature_axes: tuple[int, ...],
                     feature_axis: int) -> Optional[QuantSpec]:
    """The spec with its per-channel axis pinned to the layer's feature axis."""
    spec = _check_spec(spec, "activation_spec", layer)
    if spec is None or spec.granularity == "per_tensor":
        return spec
    if spec.granularity == "per_group":
        raise ValueError(f"{layer}: activation_spec granularity='per_group' is not supported: observed (static) "
                         f"ranges cannot follow per-sample groups; use 'per_tensor' or 'per_channel'")
    if spec.axis is not None and spec.axis not in feature_axes:
        raise ValueError(f"{layer}: per-channel input quantization runs along the feature axis "
                         f"({' or '.join(map(str, feature_axes))}); got activation_spec axis={spec.axis}")
    return spec.replace(axis=feature_axis)


def _copy_hooks(src: nn.Module, dst: nn.Module) -> None:
    # Keep user hooks across the swap (torch.ao's swap_module does the same).
    for name in ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
                 "_forward_hooks_with_kwargs", "_forward_hooks_always_called"):
        if hasattr(src, name) and hasattr(dst, name):
            getattr(dst, name).update(getattr(src, name))


class _QuantLayerMixin:
    weight_quantizer: Optional[Quantizer]
    input_quantizer: Optional[Quantizer]
    # Integer simulation (lowbit.nn.simulation), set by prepare_qat(..., simulation="integer"):
    # the input quantizer is then the producer's (shared, never run here), the output is
    # requantized to output_quantizer's grid (None: float from the exact accumulator) and the
    # fused activation ("relu" / "relu6") is a clamp on the output codes.
    simulation: str
    output_quantizer: Optional[Quantizer]
    # Recompute the quantized input in backward instead of saving it (eager mode; see module doc).
    recompute_input: bool = True
    fused_activation: Optional[str]
    requant_rounding: str

    def _attach_quantizers(self, weight_spec, activation_spec, activation_shape) -> None:
        device = self.weight.device
        self.weight_quantizer = (None if weight_spec is None
                                 else make_quantizer(weight_spec, tuple(self.weight.shape), device=device))
        self.input_quantizer = (None if activation_spec is None
                                else make_quantizer(activation_spec, activation_shape, device=device))
        self.simulation = "float"
        self.register_module("output_quantizer", None)
        self.fused_activation = None
        self.requant_rounding = "double"

    def _simulation_repr(self) -> str:
        if self.simulation == "float":
            return ""
        act = f", fused_activation={self.fused_activation}" if self.fused_activation else ""
        out = "" if self.output_quantizer is not None else ", float output"
        return f", simulation=integer(requant_rounding={self.requant_rounding}{act}{out})"

    def _quantized_weight(self) -> torch.Tensor:
        return self.weight if self.weight_quantizer is None else self.weight_quantizer(self.weight)

    def _quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_quantizer is None else self.input_quantizer(x)

    def _float_forward(self, x: torch.Tensor, op) -> torch.Tensor:
        """``op(input_quantizer(x), weight_quantizer(weight))`` without keeping the quantized
        input for backward where that can be recomputed exactly."""
        weight = self._quantized_weight()
        # A quantizer swapped in by hand may be any module: only lowbit's offer a recipe.
        offer = getattr(self.input_quantizer, "forward_recomputable", None)
        if offer is None or not self.recompute_input or not hooks_available():
            return op(self._quantized_input(x), weight)
        xq, recompute = offer(x)
        if recompute is None:
            return op(xq, weight)
        with recompute_saved(xq, recompute):
            return op(xq, weight)


class QuantLinear(_QuantLayerMixin, nn.Linear):
    """``nn.Linear`` that fake-quantizes its input and its weight.

    ``y = linear(input_quantizer(x), weight_quantizer(weight), bias)``; a quantizer is None when
    its spec is.

    Args:
        in_features, out_features, bias, device, dtype: as ``nn.Linear``.
        weight_spec: how to quantize the ``[out_features, in_features]`` weight. ``per_channel``
            without an axis means axis 0 (one scale per output feature); ``per_group`` without an
            axis groups along ``in_features``.
        activation_spec: how to quantize the input ``[..., in_features]``. ``per_tensor`` or
            ``per_channel`` (one scale per input feature, axis -1; another axis is an error);
            ``per_group`` is rejected.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None, *,
                 weight_spec: Optional[QuantSpec] = None, activation_spec: Optional[QuantSpec] = None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        weight_spec = _check_spec(weight_spec, "weight_spec", "QuantLinear")
        activation_spec = _activation_spec(activation_spec, "QuantLinear", (-1,), -1)
        self._attach_quantizers(weight_spec, activation_spec, (1, in_features))

    @classmethod
    def from_float(cls, module: nn.Linear, *, weight_spec: Optional[QuantSpec] = None,
                   activation_spec: Optional[QuantSpec] = None) -> "QuantLinear":
        """A QuantLinear that shares ``module``'s weight and bias Parameters (and hooks, training mode)."""
        if not isinstance(module, nn.Linear):
            raise TypeError(f"QuantLinear.from_float: module must be an nn.Linear, got {type(module).__name__}")
        new = cls(module.in_features, module.out_features, module.bias is not None, device="meta")
        new.weight = module.weight
        new.bias = module.bias
        weight_spec = _check_spec(weight_spec, "weight_spec", "QuantLinear")
        activation_spec = _activation_spec(activation_spec, "QuantLinear", (-1,), -1)
        new._attach_quantizers(weight_spec, activation_spec, (1, module.in_features))
        _copy_hooks(module, new)
        return new.train(module.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.simulation == "integer":
            return integer_layer_forward(self, x, conv=False)
        return self._float_forward(x, lambda xq, w: nn.functional.linear(xq, w, self.bias))

    def extra_repr(self) -> str:
        return super().extra_repr() + self._simulation_repr()


class QuantConv2d(_QuantLayerMixin, nn.Conv2d):
    """``nn.Conv2d`` that fake-quantizes its input and its weight.

    ``y = conv2d(input_quantizer(x), weight_quantizer(weight), bias)`` with every ``nn.Conv2d``
    option (stride, padding including ``"same"``, dilation, groups, bias, and every
    ``padding_mode``). The input is quantized before padding: zero padding adds exact zeros
    (0 is always on the grid) and reflect/replicate/circular padding copies quantized values,
    so this equals quantizing the padded input.

    Args:
        in_channels ... dtype: as ``nn.Conv2d``.
        weight_spec: how to quantize the ``[out_channels, in_channels/groups, kh, kw]`` weight;
            ``per_channel`` without an axis means axis 0 (one scale per output channel). For
            ``per_group`` pass an axis whose size the group size divides (e.g. ``axis=1``).
        activation_spec: how to quantize the ``[N, C, H, W]`` (or unbatched ``[C, H, W]``) input:
            ``per_tensor`` or ``per_channel`` (one scale per input channel, axis 1; another axis
            is an error); ``per_group`` is rejected.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 weight_spec: Optional[QuantSpec] = None, activation_spec: Optional[QuantSpec] = None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        weight_spec = _check_spec(weight_spec, "weight_spec", "QuantConv2d")
        activation_spec = _activation_spec(activation_spec, "QuantConv2d", (1, -3), 1)
        self._attach_quantizers(weight_spec, activation_spec, (1, in_channels, 1, 1))

    @classmethod
    def from_float(cls, module: nn.Conv2d, *, weight_spec: Optional[QuantSpec] = None,
                   activation_spec: Optional[QuantSpec] = None) -> "QuantConv2d":
        """A QuantConv2d that shares ``module``'s weight and bias Parameters (and hooks, training mode)."""
        if not isinstance(module, nn.Conv2d):
            raise TypeError(f"QuantConv2d.from_float: module must be an nn.Conv2d, got {type(module).__name__}")
        new = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                  module.dilation, module.groups, module.bias is not None, module.padding_mode, device="meta")
        new.weight = module.weight
        new.bias = module.bias
        weight_spec = _check_spec(weight_spec, "weight_spec", "QuantConv2d")
        activation_spec = _activation_spec(activation_spec, "QuantConv2d", (1, -3), 1)
        new._attach_quantizers(weight_spec, activation_spec, (1, module.in_channels, 1, 1))
        _copy_hooks(module, new)
        return new.train(module.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.simulation == "integer":
            return integer_layer_forward(self, x, conv=True)
        return self._float_forward(x, lambda xq, w: self._conv_forward(xq, w, self.bias))

    def extra_repr(self) -> str:
        return super().extra_repr() + self._simulation_repr()
