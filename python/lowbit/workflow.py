"""Model-level workflows: ``prepare_qat`` and the quantizer switches.

QAT recipe::

    model = lowbit.prepare_qat(model, weight=QuantSpec(Int(8), granularity="per_channel"),
                               activation=QuantSpec(Int(8, signed=False), symmetric=False, observer="ema"))
    train(model)                        # observers track ranges, gradients pass straight through
    lowbit.disable_observer(model)      # freeze scales and zero points, then fine-tune a little more
    model.eval()                        # evaluation never changes quantizer state
"""

from __future__ import annotations

import fnmatch
import warnings
from typing import Iterable, Iterator, Optional, Union

from torch import nn

from .nn.modules import QuantConv2d, QuantLinear
from .quantizers import Quantizer
from .spec import QuantSpec

__all__ = ["prepare_qat", "named_quantizers", "enable_observer", "disable_observer", "enable_fake_quant",
           "disable_fake_quant"]

# Exact float types and their QAT counterparts. Subclasses are not swapped: they may not call
# forward (MultiheadAttention's out_proj) or may carry behaviour the QAT layer would drop.
QAT_MODULE_MAP: dict[type, type] = {nn.Linear: QuantLinear, nn.Conv2d: QuantConv2d}

Patterns = Union[str, Iterable[str], None]
SIMULATIONS = ("float", "integer")


def _patterns(value: Patterns, name: str) -> Optional[list[str]]:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        raise TypeError(f"prepare_qat: {name} must be a pattern string or a list of them, got {name}={value!r}") from None
    for p in items:
        if not isinstance(p, str):
            raise TypeError(f"prepare_qat: {name} must hold pattern strings, got {p!r} in {name}={value!r}")
    return items


def prepare_qat(model: nn.Module, *, weight: Optional[QuantSpec] = None, activation: Optional[QuantSpec] = None,
                include: Patterns = None, skip: Patterns = None, simulation: str = "float",
                requant_rounding: str = "double", fold_batchnorm: Optional[bool] = None) -> nn.Module:
    """Swap every ``nn.Linear`` / ``nn.Conv2d`` of ``model`` for its quantization-aware version, in place.

    Each swapped layer quantizes its weight with ``weight`` and its input with ``activation``
    (see :mod:`lowbit.nn.modules`); either may be None, not both. Layers keep their weight and
    bias ``Parameter`` objects (an optimizer built earlier keeps working), hooks and training
    mode; quantizer buffers live on the layer's device. Only exact ``nn.Linear`` / ``nn.Conv2d``
    instances are swapped (not subclasses, not layers already quantized), so calling it twice
    changes nothing the second time.

    Args:
        include: fnmatch patterns (``*``, ``?``, ``[..]``; ``*`` also matches dots) on qualified
            module names such as ``"features.0"``; when given, only layers matching one of them
            are swapped.
        skip: patterns of layers to leave in float (applied after ``include``), e.g. the first
            conv and the classifier: ``skip=["conv1", "fc"]``.

    A pattern that matches no Linear/Conv2d warns. A module registered under several names is
    swapped if any of its names is selected, everywhere it appears.

    Args:
        simulation: ``"float"`` (default): each layer fake-quantizes its input and weight and runs
            the float op (what torch.ao QAT does); the model is modified in place. ``"integer"``:
            the forward pass is *integer-exact*: every layer computes what the converted integer
            model computes (codes, int32 bias at scale ``S_x·S_w``, exact integer accumulation,
            fixed-point requantization to its output quantizer, fused ReLU/ReLU6 as a clamp),
            with straight-through gradients, so after calibration ``lowbit.convert(model)(x)``
            equals ``model.eval()(x)`` bit for bit. It captures the model's graph with torch.fx
            (see :mod:`lowbit.convert`: each tensor between integer operations gets one quantizer,
            owned by its producer; residual adds become ``QuantAdd``) and returns a
            ``torch.fx.GraphModule`` sharing the model's parameters: use the returned model.
            Needs per-tensor ``activation``; layers run about twice the float cost in training
            (the float simulation supplies the gradients and the output observations).
        requant_rounding: the fixed-point rounding of integer simulation (``"double"``, TFLite's
            default, or ``"single"``, ruy's / TFLITE_SINGLE_ROUNDING).
        fold_batchnorm: fold each ``BatchNorm2d`` that directly follows a ``Conv2d`` into it before
            quantizing (:func:`lowbit.fold_batchnorm`: the BatchNorm's running statistics and affine
            parameters go into the conv's weight and bias, and it becomes ``nn.Identity``). Default
            (None): on with ``simulation="integer"``, whose purpose is an integer model (a
            BatchNorm left between a conv and its quantizer runs in float, on the conv's int32
            accumulators), off with ``simulation="float"``. Folding freezes the statistics: QAT
            then fine-tunes the folded conv. Pass False to keep BatchNorms as float layers.

    Quantizers observe ranges only in training mode, so train (or run calibration batches with
    the quantizers in training mode) before evaluating: a never-observed quantizer uses scale 1.

    The swapped layers add quantizer buffers to the state dict (``<layer>.weight_quantizer.min_val``,
    ...): load float checkpoints before ``prepare_qat``, QAT checkpoints after it.

    Returns:
        ``model`` (or, when ``model`` itself is a Linear/Conv2d, the new quantized layer); with
        ``simulation="integer"`` a new ``torch.fx.GraphModule``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"prepare_qat: model must be an nn.Module, got model={type(model).__name__}")
    for name, spec in (("weight", weight), ("activation", activation)):
        if spec is not None and not isinstance(spec, QuantSpec):
            raise TypeError(f"prepare_qat: {name} must be a lowbit.QuantSpec or None, got {name}={spec!r}")
    if weight is None and activation is None:
        raise ValueError("prepare_qat: nothing to quantize: pass weight= and/or activation= (both are None)")
    if simulation not in SIMULATIONS:
        raise ValueError(f"prepare_qat: simulation must be one of {', '.join(map(repr, SIMULATIONS))}, got "
                         f"simulation={simulation!r}")
    if simulation == "integer":
        from .convert import check_integer_simulation_args

        check_integer_simulation_args(weight, activation, requant_rounding, "prepare_qat")
    if fold_batchnorm not in (None, True, False):
        raise TypeError(f"prepare_qat: fold_batchnorm must be True, False or None, got {fold_batchnorm!r}")
    if fold_batchnorm if fold_batchnorm is not None else simulation == "integer":
        from .batchnorm import fold_batchnorm as fold

        fold(model, caller="prepare_qat")
    include_patterns = _patterns(include, "include")
    skip_patterns = _patterns(skip, "skip")

    # Every (name, module) pair, duplicates included, so shared layers are seen under all names.
    candidates: dict[int, nn.Module] = {}
    selected: set[int] = set()
    candidate_names: list[str] = []
    used: dict[str, set[str]] = {"include": set(), "skip": set()}
    for name, module in model.named_modules(remove_duplicate=False):
        if type(module) not in QAT_MODULE_MAP:
            continue
        candidates[id(module)] = module
        candidate_names.append(name)
        chosen = True
        if include_patterns is not None:
            hits = [p for p in include_patterns if fnmatch.fnmatchcase(name, p)]
            used["include"].update(hits)
            chosen = bool(hits)
        skip_hits = [p for p in skip_patterns or () if fnmatch.fnmatchcase(name, p)]
        used["skip"].update(skip_hits)
        if chosen and not skip_hits:
            selected.add(id(module))

    for kind, patterns in (("include", include_patterns), ("skip", skip_patterns)):
        for p in patterns or ():
            if p not in used[kind]:
                shown = ", ".join(repr(n) for n in candidate_names[:12]) or "none"
                more = ", ..." if len(candidate_names) > 12 else ""
                warnings.warn(f"prepare_qat: {kind} pattern {p!r} matches no nn.Linear/nn.Conv2d module name "
                              f"(candidates: {shown}{more})", stacklevel=2)

    swapped = {mid: QAT_MODULE_MAP[type(candidates[mid])].from_float(
        candidates[mid], weight_spec=weight, activation_spec=activation) for mid in selected}
    if id(model) in swapped:
        model = swapped[id(model)]
    else:
        for parent in model.modules():
            for child_name, child in list(parent._modules.items()):
                if child is not None and id(child) in swapped:
                    setattr(parent, child_name, swapped[id(child)])
    if simulation == "integer":
        from .convert import prepare_integer_simulation

        return prepare_integer_simulation(model, activation=activation, requant_rounding=requant_rounding,
                                          caller="prepare_qat")
    return model


def named_quantizers(model: nn.Module) -> Iterator[tuple[str, Quantizer]]:
    """``(qualified name, quantizer)`` for every lowbit quantizer in ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, Quantizer):
            yield name, module


def _set_all(model: nn.Module, method: str, enabled: bool, caller: str) -> int:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: model must be an nn.Module, got model={type(model).__name__}")
    if not isinstance(enabled, bool):
        raise TypeError(f"{caller}: enabled must be a bool, got enabled={enabled!r}")
    count = 0
    for _, quantizer in named_quantizers(model):
        getattr(quantizer, method)(enabled)
        count += 1
    if count == 0:
        warnings.warn(f"{caller}: the model has no lowbit quantizers (did you call lowbit.prepare_qat?)",
                      stacklevel=3)
    return count


def enable_observer(model: nn.Module, enabled: bool = True) -> int:
    """Turn range observation of every quantizer in ``model`` on (or off); returns how many.

    The switches are tensors read by the ops, so this never recompiles a compiled model.
    """
    return _set_all(model, "enable_observer", enabled, "enable_observer")


def disable_observer(model: nn.Module) -> int:
    """Freeze every quantizer's observed range (scales and zero points); returns how many."""
    return _set_all(model, "enable_observer", False, "disable_observer")


def enable_fake_quant(model: nn.Module, enabled: bool = True) -> int:
    """Turn fake quantization of every quantizer in ``model`` on (or off); returns how many."""
    return _set_all(model, "enable_fake_quant", enabled, "enable_fake_quant")


def disable_fake_quant(model: nn.Module) -> int:
    """Let every quantizer pass its input through unchanged (float model); returns how many."""
    return _set_all(model, "enable_fake_quant", False, "disable_fake_quant")
