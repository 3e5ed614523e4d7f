"""Quantizer modules: they own a quantizer's state and call the ops.

Every quantizer is built from a :class:`~lowbit.spec.QuantSpec`; ``spec.estimator`` names the
class in a small registry (:func:`register_estimator`, :func:`make_quantizer`), so a new estimator
(LSQ, PACT, ...) only registers its class and every layer and workflow can use it.

:class:`FakeQuantize` (estimator ``"ste"``) is observer-driven fake quantization:

* **observer**: min/max statistics in two float32 buffers, updated in place by
  ``lowbit.ops.observe_minmax_`` or ``observe_moving_average_minmax_``, in training mode only
  (``quantizer.training``), so evaluating a model never changes it. PTQ-style calibration of an
  ``eval()`` model: put just the quantizers in training mode.
* **qparams**: ``lowbit.ops.choose_qparams`` of the statistics, on every forward. Scale and zero
  point are not stored: they are a pure function of the statistics (``calculate_qparams()``), so
  the state dict holds nothing that could disagree with them. A never-observed quantizer has
  scale 1 and zero point 0.
* **fake quantization**: ``lowbit.ops.fake_quantize_affine``, with the spec's straight-through
  gradient.

Observer and fake quantization each have an on/off switch, a one-element bool buffer handed to the
ops (``enabled=``). Toggling one (:meth:`Quantizer.enable_observer`, ...) writes the buffer in
place: a compiled graph neither recompiles nor breaks, and the switches are saved in state dicts.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Sequence, Type, TypeVar

import torch
from torch import nn

from . import ops
from ._recompute import Recompute
from .spec import QuantSpec

__all__ = ["Quantizer", "FakeQuantize", "register_estimator", "estimators", "make_quantizer"]

_ESTIMATORS: dict[str, type] = {}
Q = TypeVar("Q", bound="Quantizer")


def register_estimator(name: str) -> Callable[[Type[Q]], Type[Q]]:
    """Class decorator: make ``QuantSpec(estimator=name)`` build instances of the class.

    The class must subclass :class:`Quantizer` and accept ``cls(spec, shape=None, device=None)``
    (``shape``: the shape of the tensors it will quantize, or None to learn it from the first
    input). Registering a name twice is an error.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_estimator: name must be a non-empty string, got name={name!r}")

    def decorator(cls: Type[Q]) -> Type[Q]:
        if not (isinstance(cls, type) and issubclass(cls, Quantizer)):
            raise TypeError(f"register_estimator({name!r}): expected a subclass of lowbit.quantizers.Quantizer, "
                            f"got {cls!r}")
        if name in _ESTIMATORS and _ESTIMATORS[name] is not cls:
            raise ValueError(f"register_estimator: estimator {name!r} is already registered to "
                             f"{_ESTIMATORS[name].__qualname__}")
        _ESTIMATORS[name] = cls
        return cls

    return decorator


def estimators() -> dict[str, type]:
    """Registered estimator names and their quantizer classes."""
    return dict(_ESTIMATORS)


def make_quantizer(spec: QuantSpec, shape: Optional[Sequence[int]] = None, *,
                   device: Optional[torch.device] = None) -> "Quantizer":
    """The quantizer module ``spec.estimator`` names, for tensors of ``shape`` on ``device``."""
    if not isinstance(spec, QuantSpec):
        raise TypeError(f"make_quantizer: spec must be a lowbit.QuantSpec, got spec={spec!r}")
    return _ESTIMATORS[spec.estimator](spec, shape=shape, device=device)


def _is_tracing() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


class Quantizer(nn.Module):
    """Base class of quantizer modules: the spec and the observer / fake-quant switches.

    Buffers ``observer_enabled`` and ``fake_quant_enabled`` (bool, one element, True at
    construction) are handed to the ops as tensors; the methods below fill them in place.
    """

    def __init__(self, spec: QuantSpec, *, device: Optional[torch.device] = None):
        super().__init__()
        if not isinstance(spec, QuantSpec):
            raise TypeError(f"{type(self).__name__}: spec must be a lowbit.QuantSpec, got spec={spec!r}")
        self.spec = spec
        self.qmin = spec.qmin
        self.qmax = spec.qmax
        self.register_buffer("observer_enabled", torch.ones(1, dtype=torch.bool, device=device))
        self.register_buffer("fake_quant_enabled", torch.ones(1, dtype=torch.bool, device=device))

    @staticmethod
    def _flag(enabled, what: str) -> bool:
        if not isinstance(enabled, bool):
            raise TypeError(f"{what}: enabled must be a bool, got enabled={enabled!r}")
        return enabled

    @torch.no_grad()
    def enable_observer(self, enabled: bool = True) -> "Quantizer":
        """Turn range observation on (or off with ``enabled=False``); returns self."""
        self.observer_enabled.fill_(self._flag(enabled, "enable_observer"))
        return self

    def disable_observer(self) -> "Quantizer":
        """Freeze the observed range (and so scale and zero point); returns self."""
        return self.enable_observer(False)

    @torch.no_grad()
    def enable_fake_quant(self, enabled: bool = True) -> "Quantizer":
        """Turn fake quantization on (or off: the input passes through unchanged); returns self."""
        self.fake_quant_enabled.fill_(self._flag(enabled, "enable_fake_quant"))
        return self

    def disable_fake_quant(self) -> "Quantizer":
        """Pass inputs through unchanged (the observer keeps running if enabled); returns self."""
        return self.enable_fake_quant(False)

    # Set only while forward_recomputable runs this module; forward then offers its recipe.
    _recompute_wanted: bool = False

    def forward_recomputable(self, x: torch.Tensor) -> tuple[torch.Tensor, Optional[Recompute]]:
        """``(self(x), recompute)``: the output and a :class:`lowbit._recompute.Recompute` that
        reproduces it bit for bit from ``x`` without autograd, or None when this quantizer cannot
        (or a forward hook replaced its output).

        Layers use it so as not to keep the quantized input alive for backward. The call goes
        through ``self(x)`` (module hooks run); state updates (observers, initialisation) happen
        once, here, never in the recomputation.
        """
        self._recompute_wanted = True
        try:
            y = self(x)
        finally:
            del self._recompute_wanted
        recompute, produced = self.__dict__.pop("_recompute_offer", (None, None))
        return y, (recompute if produced is y else None)

    def _quantize_offering_recompute(self, x: torch.Tensor, quantize: Callable[[], torch.Tensor], stochastic: bool,
                                     guards: tuple) -> torch.Tensor:
        """``quantize()`` (this call's output from ``x``), offering it as the recipe to
        forward_recomputable; forward calls this when ``_recompute_wanted``. ``guards``: the tensors
        ``quantize`` reads. Stochastic rounding replays the CPU generator's state, so on other
        devices it offers no recipe."""
        if stochastic and x.device.type != "cpu":
            recompute = None
            y = quantize()
        else:
            rng_state = torch.get_rng_state() if stochastic else None
            y = quantize()
            recompute = Recompute(quantize, guards, rng_state)
        self._recompute_offer = (recompute, y)
        return y

    def _switch_repr(self) -> str:
        if self.observer_enabled.device.type == "meta":
            return ""
        on = {True: "on", False: "off"}
        return (f", observer={on[bool(self.observer_enabled.item())]}, "
                f"fake_quant={on[bool(self.fake_quant_enabled.item())]}")


# Buffers whose dtype is part of the ops' contract: model.half() / .to(bfloat16) must not cast them.
_FLOAT32_STATE = ("min_val", "max_val")


@register_estimator("ste")
class FakeQuantize(Quantizer):
    """Observer + fake quantization with a straight-through gradient (``estimator="ste"``).

    Forward of ``x`` (any float dtype and shape the parameters tile):

    1. training mode and observer on: update ``min_val`` / ``max_val`` from ``x``;
    2. ``scale, zero_point = calculate_qparams()``;
    3. fake quant on: return ``fake_quantize_affine(x, scale, zero_point, qmin, qmax)`` with the
       spec's rounding (stochastic rounding in training mode only) and ``ste``; off: return ``x``.

    With ``Int(8)``/``Int(8, signed=False)``, ``rounding="half_even"``, ``ste="integer"`` and
    ``observer="minmax"``/``"ema"`` this matches torch.ao's ``FakeQuantize`` with
    ``MinMaxObserver``/``MovingAverageMinMaxObserver`` (and their per-channel variants): same
    statistics, scale, zero point, outputs and input gradients. (torch.ao observes in eval mode
    too; lowbit observes in training mode only.)

    Args:
        spec: a QuantSpec with ``estimator="ste"``.
        shape: the shape of the tensors to quantize; it sets the parameter shape
            (``spec.param_shape(shape)``, leading dimensions may be 1 for batch dimensions that
            vary). Per-tensor specs need none. Without it, a per_channel/per_group quantizer
            learns its shape from the first input: run one eager forward (or load a state dict)
            before ``torch.compile`` / ``torch.export``.
        device: where the buffers live (CPU by default).

    Buffers (all in the state dict): ``min_val``, ``max_val`` (float32, start at +inf / -inf;
    they stay float32 when the module is cast to another dtype), ``observer_enabled``,
    ``fake_quant_enabled``.
    """

    def __init__(self, spec: QuantSpec, shape: Optional[Sequence[int]] = None, *,
                 device: Optional[torch.device] = None):
        super().__init__(spec, device=device)
        if spec.estimator != "ste":
            raise ValueError(f"FakeQuantize implements estimator='ste', got spec.estimator={spec.estimator!r}; "
                             f"build it with lowbit.quantizers.make_quantizer(spec)")
        if shape is not None:
            pshape = spec.param_shape(shape)
        elif spec.granularity == "per_tensor":
            pshape = (1,)
        else:
            pshape = None
        self._materialized = pshape is not None
        self.register_buffer("min_val", torch.full(pshape or (0,), math.inf, dtype=torch.float32, device=device))
        self.register_buffer("max_val", torch.full(pshape or (0,), -math.inf, dtype=torch.float32, device=device))

    @property
    def param_shape(self) -> Optional[tuple[int, ...]]:
        """Shape of the statistics, scale and zero point (None until learned from an input)."""
        return tuple(self.min_val.shape) if self._materialized else None

    def _materialize(self, shape: Sequence[int]) -> None:
        if _is_tracing():
            raise RuntimeError(
                f"FakeQuantize({self.spec.describe()}) does not know its parameter shape yet: pass shape= "
                f"when building it, or run one eager forward (or load a state dict) before torch.compile or "
                f"torch.export")
        pshape = self.spec.param_shape(shape)
        device = self.min_val.device
        self.min_val = torch.full(pshape, math.inf, dtype=torch.float32, device=device)
        self.max_val = torch.full(pshape, -math.inf, dtype=torch.float32, device=device)
        self._materialized = True

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale float32, zero_point int32)`` from the current statistics, shaped like them."""
        if not self._materialized:
            raise RuntimeError(f"FakeQuantize({self.spec.describe()}) has no parameters yet: it has not seen an "
                               f"input (pass shape= when building it)")
        return ops.choose_qparams(self.min_val, self.max_val, self.qmin, self.qmax, symmetric=self.spec.symmetric,
                                  method=self.spec.qparams)

    def _observe_and_bind(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """Steps 1-2 of the forward; returns step 3 with this call's scale and zero point bound."""
        if not self._materialized:
            self._materialize(x.shape)
        spec = self.spec
        if self.training:
            if spec.observer == "ema":
                ops.observe_moving_average_minmax_(x.detach(), self.min_val, self.max_val,
                                                   averaging_constant=spec.averaging_constant,
                                                   enabled=self.observer_enabled)
            else:
                ops.observe_minmax_(x.detach(), self.min_val, self.max_val, enabled=self.observer_enabled)
        scale, zero_point = self.calculate_qparams()
        rounding = spec.rounding
        if rounding == "stochastic" and not self.training:
            rounding = "half_even"
        return functools.partial(ops.fake_quantize_affine, scale=scale, zero_point=zero_point, qmin=self.qmin,
                                 qmax=self.qmax, rounding=rounding, ste=spec.ste, enabled=self.fake_quant_enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fake_quantize = self._observe_and_bind(x)
        if not self._recompute_wanted:
            return fake_quantize(x)
        kw = fake_quantize.keywords
        return self._quantize_offering_recompute(x, functools.partial(fake_quantize, x), kw["rounding"] == "stochastic",
                                                 (x, kw["scale"], kw["zero_point"], kw["enabled"]))

    def reset_observer(self) -> "FakeQuantize":
        """Forget the observed range (back to +inf / -inf: scale 1, zero point 0); returns self."""
        with torch.no_grad():
            self.min_val.fill_(math.inf)
            self.max_val.fill_(-math.inf)
        return self

    # ---- module plumbing ---------------------------------------------------------------------

    def _apply(self, fn, recurse=True):
        before = {name: self._buffers[name] for name in _FLOAT32_STATE}
        super()._apply(fn, recurse)
        for name, old in before.items():
            new = self._buffers[name]
            if new is not None and old is not None and new.dtype != torch.float32:
                # Take the device from the conversion but the values from the float32 original.
                self._buffers[name] = old.to(device=new.device)
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        saved = state_dict.get(prefix + "min_val")
        if not self._materialized and isinstance(saved, torch.Tensor) and saved.numel() > 0:
            # A quantizer that learns its shape lazily takes it from the checkpoint instead.
            device = self.min_val.device
            self.min_val = torch.empty(saved.shape, dtype=torch.float32, device=device)
            self.max_val = torch.empty(saved.shape, dtype=torch.float32, device=device)
            self._materialized = True
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def extra_repr(self) -> str:
        shape = self.param_shape
        return f"{self.spec.describe()}, param_shape={shape if shape is not None else 'lazy'}{self._switch_repr()}"
