"""``QuantSpec``: what to quantize a tensor to, and how.

A spec is a frozen value object. It does not own state; quantizer modules built from it do
(:mod:`lowbit.quantizers`). The same spec can be shared by every layer of a model.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Optional, Sequence

from .formats import Int
from .ops import QPARAM_METHODS, ROUNDINGS, STES

__all__ = ["QuantSpec", "GRANULARITIES", "OBSERVERS"]

GRANULARITIES = ("per_tensor", "per_channel", "per_group")
OBSERVERS = ("minmax", "ema")
DEFAULT_AVERAGING_CONSTANT = 0.01


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _choice(name: str, value, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"QuantSpec: {name} must be one of {', '.join(map(repr, choices))}; got {name}={value!r}")


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize one kind of tensor (weights or activations).

    Args:
        format: the number format, e.g. ``lowbit.formats.Int(8)``; it sets ``(qmin, qmax)``.
        granularity: which elements share a scale and zero point.

            * ``"per_tensor"``: one pair for the whole tensor.
            * ``"per_channel"``: one pair per index along ``axis``. ``axis=None`` means 0, the
              output channel of a Linear/Conv weight. For activations, the layers choose their
              feature axis (see :class:`lowbit.nn.QuantLinear`).
            * ``"per_group"``: ``group_size`` consecutive elements along ``axis`` share a pair, and
              every other dimension is kept (a ``[N, K]`` weight gets ``[N, K // group_size]``
              pairs). ``axis=None`` means the last axis.
        axis: the channel / group axis (negative values count from the end). Only for
            per_channel and per_group.
        group_size: elements per group, >= 1; only (and required) for per_group.
        symmetric: zero point fixed at 0 (signed formats) or at the midpoint (unsigned); the range
            is ``[-amax, amax]``. Otherwise affine: the observed ``[min, max]`` (widened to include
            0) maps onto ``[qmin, qmax]``.
        rounding: ``"half_even"`` (PyTorch's), ``"half_away"``, ``"half_up"``, ``"floor"``,
            ``"ceil"`` or ``"stochastic"``. Stochastic rounding applies in training mode only;
            evaluation rounds half to even so inference is deterministic.
        observer: how the range is tracked: ``"minmax"`` (running min/max, torch.ao's
            ``MinMaxObserver``) or ``"ema"`` (moving average of batch min/max, torch.ao's
            ``MovingAverageMinMaxObserver``). A running min/max of a weight keeps the widest range
            the weight ever had; ``observer="ema", averaging_constant=1.0`` follows the current
            weight instead.
        averaging_constant: the EMA weight of a new batch, in (0, 1]; default 0.01. Only with
            ``observer="ema"``.
        estimator: the quantizer that implements the spec, by name (see
            :func:`lowbit.quantizers.estimators`). ``"ste"``: observer-driven fake quantization
            with a straight-through gradient.
        ste: the straight-through estimator's gradient mask: ``"integer"`` (pass where the rounded
            code lies in ``[qmin, qmax]``, PyTorch's), ``"real"`` (pass where x lies in the real
            clip range, TF/TensorRT's) or ``"identity"`` (always pass).
        qparams: how scale and zero point follow from the observed range: ``"observer"``
            (torch.ao observers' ``calculate_qparams``, the default) or ``"fbgemm"`` (what
            ``torch.fused_moving_avg_obs_fake_quant`` computes); see ``lowbit.ops.choose_qparams``.

    Every bad value raises ``TypeError``/``ValueError`` naming the argument and the value.
    """

    format: Int
    granularity: str = "per_tensor"
    axis: Optional[int] = None
    group_size: Optional[int] = None
    symmetric: bool = True
    rounding: str = "half_even"
    observer: str = "minmax"
    averaging_constant: Optional[float] = None
    estimator: str = "ste"
    ste: str = "integer"
    qparams: str = "observer"

    def __init__(self, format: Int, *, granularity: str = "per_tensor", axis: Optional[int] = None,
                 group_size: Optional[int] = None, symmetric: bool = True, rounding: str = "half_even",
                 observer: str = "minmax", averaging_constant: Optional[float] = None, estimator: str = "ste",
                 ste: str = "integer", qparams: str = "observer"):
        # An explicit __init__ keeps everything after `format` keyword-only (also on 3.9-style
        # dataclasses) and lets validation see the raw arguments.
        values = dict(format=format, granularity=granularity, axis=axis, group_size=group_size,
                      symmetric=symmetric, rounding=rounding, observer=observer,
                      averaging_constant=averaging_constant, estimator=estimator, ste=ste, qparams=qparams)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.format, Int):
            raise TypeError(f"QuantSpec: format must be a lowbit.formats.Int, got format={self.format!r}")
        _choice("granularity", self.granularity, GRANULARITIES)
        if self.axis is not None:
            if not _is_int(self.axis):
                raise TypeError(f"QuantSpec: axis must be an int or None, got axis={self.axis!r}")
            if self.granularity == "per_tensor":
                raise ValueError(f"QuantSpec: axis={self.axis} needs granularity='per_channel' or 'per_group', "
                                 f"got granularity='per_tensor'")
            object.__setattr__(self, "axis", int(self.axis))
        if self.granularity == "per_group":
            if self.group_size is None:
                raise ValueError("QuantSpec: granularity='per_group' needs group_size, got group_size=None")
            if not _is_int(self.group_size) or self.group_size < 1:
                raise ValueError(f"QuantSpec: group_size must be a positive int, got group_size={self.group_size!r}")
            object.__setattr__(self, "group_size", int(self.group_size))
        elif self.group_size is not None:
            raise ValueError(f"QuantSpec: group_size={self.group_size!r} needs granularity='per_group', "
                             f"got granularity={self.granularity!r}")
        if not isinstance(self.symmetric, bool):
            raise TypeError(f"QuantSpec: symmetric must be a bool, got symmetric={self.symmetric!r}")
        _choice("rounding", self.rounding, ROUNDINGS)
        _choice("observer", self.observer, OBSERVERS)
        if self.averaging_constant is not None:
            if self.observer != "ema":
                raise ValueError(f"QuantSpec: averaging_constant={self.averaging_constant!r} needs observer='ema', "
                                 f"got observer={self.observer!r}")
            c = self.averaging_constant
            if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0.0 < float(c) <= 1.0:
                raise ValueError(f"QuantSpec: averaging_constant must be a number in (0, 1], got "
                                 f"averaging_constant={c!r}")
            object.__setattr__(self, "averaging_constant", float(c))
        elif self.observer == "ema":
            object.__setattr__(self, "averaging_constant", DEFAULT_AVERAGING_CONSTANT)
        from .quantizers import estimators  # late: quantizers imports this module

        _choice("estimator", self.estimator, tuple(estimators()))
        _choice("ste", self.ste, STES)
        _choice("qparams", self.qparams, QPARAM_METHODS)

    # ---- derived values --------------------------------------------------------------------------

    @property
    def qmin(self) -> int:
        """The format's smallest integer code."""
        return self.format.qmin

    @property
    def qmax(self) -> int:
        """The format's largest integer code."""
        return self.format.qmax

    def replace(self, **changes) -> "QuantSpec":
        """A copy with some fields changed (validated like a new spec).

        Fields that the change makes meaningless are dropped unless given: the averaging constant
        when ``observer`` leaves ``"ema"``, ``group_size`` when ``granularity`` leaves
        ``"per_group"``, ``axis`` when it becomes ``"per_tensor"``.
        """
        if changes.get("observer", self.observer) != "ema":
            changes.setdefault("averaging_constant", None)
        granularity = changes.get("granularity", self.granularity)
        if granularity != "per_group":
            changes.setdefault("group_size", None)
        if granularity == "per_tensor":
            changes.setdefault("axis", None)
        return dataclasses.replace(self, **changes)

    def resolved_axis(self, ndim: int) -> Optional[int]:
        """The non-negative channel/group axis for a tensor of ``ndim`` dimensions (None for per_tensor).

        Defaults: per_channel -> 0, per_group -> ndim - 1.
        """
        if self.granularity == "per_tensor":
            return None
        axis = self.axis
        if axis is None:
            axis = 0 if self.granularity == "per_channel" else ndim - 1
        if not -ndim <= axis < ndim:
            raise ValueError(f"QuantSpec: axis={self.axis} is out of range for a tensor with {ndim} "
                             f"dimension{'s' if ndim != 1 else ''} (granularity={self.granularity!r})")
        return axis % ndim

    def param_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The shape of scale / zero point / observer statistics for tensors of ``shape``.

        It follows the ops' granularity convention (``lowbit.ops``): left-padded with ones it
        divides ``shape`` dimension by dimension. Leading ones are dropped, so the parameters also
        fit inputs with extra or different leading (batch) dimensions: per_tensor gives ``(1,)``,
        per_channel along axis 1 of ``(N, C, H, W)`` gives ``(C, 1, 1)``, per_channel along 0 of
        a ``(O, I, kh, kw)`` weight gives ``(O, 1, 1, 1)``, per_group of ``(N, K)`` gives
        ``(N, K // group_size)``.

        Raises ValueError naming the shape, axis and group_size when they do not fit.
        """
        try:
            dims = tuple(int(d) for d in shape)
        except TypeError:
            raise TypeError(f"QuantSpec.param_shape: shape must be a sequence of ints, got shape={shape!r}") from None
        if any(d < 0 for d in dims):
            raise ValueError(f"QuantSpec.param_shape: shape must have non-negative sizes, got shape={dims}")
        if self.granularity == "per_tensor":
            return (1,)
        if len(dims) == 0:
            raise ValueError(f"QuantSpec.param_shape: granularity={self.granularity!r} needs a tensor with at "
                             f"least one dimension, got shape=()")
        axis = self.resolved_axis(len(dims))
        out = [1] * len(dims)
        if self.granularity == "per_channel":
            out[axis] = dims[axis]
        else:
            g = self.group_size
            if dims[axis] % g != 0:
                raise ValueError(f"QuantSpec: group_size={g} does not divide dimension {axis} (size {dims[axis]}) "
                                 f"of shape {dims}; choose a group_size that divides it or another axis")
            out = list(dims)
            out[axis] = dims[axis] // g
        while len(out) > 1 and out[0] == 1:
            out.pop(0)
        return tuple(out)

    def describe(self) -> str:
        """A one-line summary, e.g. ``int8 per_channel(axis=0) symmetric minmax ste``."""
        if self.granularity == "per_channel":
            gran = f"per_channel(axis={0 if self.axis is None else self.axis})"
        elif self.granularity == "per_group":
            gran = f"per_group(group_size={self.group_size}, axis={'-1' if self.axis is None else self.axis})"
        else:
            gran = "per_tensor"
        parts = [str(self.format), gran, "symmetric" if self.symmetric else "affine"]
        parts.append(f"ema({self.averaging_constant:g})" if self.observer == "ema" else self.observer)
        parts.append(self.estimator if self.ste == "integer" else f"{self.estimator}({self.ste})")
        if self.rounding != "half_even":
            parts.append(f"rounding={self.rounding}")
        if self.qparams != "observer":
            parts.append(f"qparams={self.qparams}")
        return " ".join(parts)
