"""Batch-norm folding: ``y = BN(conv(x))`` becomes one convolution with scaled weights and a bias.

An eval-mode ``BatchNorm2d`` computes ``(z - mean) · γ / sqrt(var + eps) + β`` per channel, an
affine map that merges into the convolution that feeds it::

    s  = γ / sqrt(var + eps)            (per output channel)
    W' = W · s                          (each filter scaled)
    b' = (b - mean) · s + β             (b = 0 when the conv has no bias)

Integer deployment needs it: a BatchNorm between a quantized convolution and its quantizer is a
float operation, so the integer model would leave the convolution's int32 accumulators, normalize
in float and quantize again (``prepare_qat(..., simulation="integer")`` folds by default).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.fx as fx
from torch import nn

__all__ = ["fold_batchnorm"]


def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    with torch.no_grad():
        # float64 for the per-channel factors: the folded weights round once, to the conv's dtype.
        var = bn.running_var.double()
        mean = bn.running_mean.double()
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
        scale = gamma / torch.sqrt(var + bn.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(var)
        conv.weight.copy_((conv.weight.double() * scale.view(-1, 1, 1, 1)).to(conv.weight.dtype))
        folded_bias = ((bias - mean) * scale + beta).to(conv.weight.dtype)
        if conv.bias is not None:
            conv.bias.copy_(folded_bias)
        else:
            conv.bias = nn.Parameter(folded_bias.to(conv.weight.device))


def _set_submodule(root: nn.Module, qualname: str, module: nn.Module) -> None:
    parent_name, _, child = qualname.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def fold_batchnorm(model: nn.Module, *, caller: str = "fold_batchnorm") -> list[tuple[str, str]]:
    """Fold every ``nn.BatchNorm2d`` that directly follows an ``nn.Conv2d`` into it, in place.

    The model's graph is captured with torch.fx to find the pairs: a BatchNorm folds when its
    input is the output of a Conv2d module that nothing else reads, and each of the two modules
    is called once. The BatchNorm's running statistics and affine parameters go into the
    convolution's weight and bias (its eval-mode function, whatever mode the model is in: the
    statistics stop updating) and the BatchNorm is replaced by ``nn.Identity``. The conv keeps its
    weight ``Parameter`` (values changed in place); a conv without bias gets a new bias
    ``Parameter``, which an optimizer built before folding does not hold.

    BatchNorms that follow anything else, convolutions whose output is also read elsewhere, and
    BatchNorms without running statistics stay as they are.

    Returns:
        ``(conv name, batchnorm name)`` for every fold, in graph order.

    Raises:
        lowbit.ConversionError: the forward cannot be captured by torch.fx.
    """
    from .convert import _trace

    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: model must be an nn.Module, got {type(model).__name__}")
    if isinstance(model, (nn.Conv2d, nn.BatchNorm2d)):
        return []
    gm = _trace(model, caller)
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    folds: list[tuple[str, str]] = []
    for node in gm.graph.nodes:
        bn: Optional[nn.Module] = modules.get(node.target) if node.op == "call_module" else None
        if type(bn) is not nn.BatchNorm2d or calls[node.target] != 1 or bn.running_mean is None:
            continue
        src = node.args[0] if node.args else None
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1 or calls[src.target] != 1:
            continue
        conv = modules.get(src.target)
        if type(conv) is not nn.Conv2d or conv.out_channels != bn.num_features:
            continue
        _fold_into(conv, bn)
        _set_submodule(model, node.target, nn.Identity())
        folds.append((src.target, node.target))
    return folds
