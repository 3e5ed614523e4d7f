"""Quantizer modules for the learnable and soft gradient estimators.

Each class registers an estimator name, so ``QuantSpec(estimator=...)`` and ``prepare_qat`` build
it for any QuantLinear / QuantConv2d:

============  ===================================  ===========================================
estimator     module                               learnable parameters (shaped by the spec)
============  ===================================  ===========================================
``"lsq"``     :class:`LSQQuantizer`                ``scale``
``"lsq+"``    :class:`LSQPlusQuantizer`            ``scale``, ``offset`` (asymmetric specs)
``"learnable"`` :class:`LearnableFakeQuantize`     ``scale``, ``zero_point`` (asymmetric specs)
``"pact"``    :class:`PACTQuantizer`               ``alpha`` (the clip)
``"qil"``     :class:`QILQuantizer`                ``c``, ``d``, ``gamma`` (signed formats)
``"dsq"``     :class:`DSQQuantizer`                ``lower``, ``upper``, ``alpha``
``"sigmoid"`` :class:`SigmoidQuantizer`            ``alpha``, ``beta``
============  ===================================  ===========================================

(``"ste"`` is :class:`lowbit.quantizers.FakeQuantize`.)

Common behaviour:

* **Initialisation from data.** Parameters are created at construction (so an optimizer built
  right after ``prepare_qat`` sees them) and initialised from the first tensor the quantizer
  sees, in eager mode; each class documents its rule. Run one eager forward (a training or a
  calibration batch) before ``torch.compile``: initialising inside a compiled graph is refused
  with an error. Calling :meth:`LearnableQuantizer.initialize` yourself does the same. The
  ``initialized`` buffer is in the state dict, so a loaded QAT checkpoint is not re-initialised.
* **Gradient scale.** LSQ-style estimators scale their step-size gradient by
  ``g = 1/sqrt(N·qmax)``. ``N`` is fixed at initialisation: the elements of one parameter block
  for a weight (the input has the shape the quantizer was built for), the features per sample
  and block for an activation.
* **Switches.** ``fake_quant_enabled`` (``disable_fake_quant``) is handed to the op as a tensor:
  off, the input passes through unchanged, without recompiling. ``observer_enabled`` has no
  effect after initialisation (these quantizers learn their range instead of observing it).
* **Rounding.** ``spec.rounding`` may be ``"half_even"`` or, where the estimator rounds in its
  forward, ``"stochastic"`` (training mode only; evaluation rounds half to even).
* **Memory.** :meth:`LearnableQuantizer.saved_bytes_per_element`: every estimator saves only its
  input for the backward pass. :meth:`~lowbit.quantizers.Quantizer.forward_recomputable` gives
  the layers a recipe to recompute the output in backward instead of keeping it.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from . import ops
from .quantizers import Quantizer, register_estimator
from .spec import QuantSpec

__all__ = [
    "LearnableQuantizer",
    "LSQQuantizer",
    "LSQPlusQuantizer",
    "LearnableFakeQuantize",
    "PACTQuantizer",
    "QILQuantizer",
    "DSQQuantizer",
    "SigmoidQuantizer",
    "set_sigmoid_temperature",
    "pact_regularizer",
]

_EPS = 2.0**-23


def _is_tracing() -> bool:
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _block_stat(x: torch.Tensor, param_shape, fn) -> torch.Tensor:
    return ops._block_reduce(x, param_shape, fn, "initialisation")


def _clip_init(x: torch.Tensor, param_shape, levels: float, signed: bool) -> torch.Tensor:
    """A clip value per block: LSQ's initial range 2·mean|x|·sqrt(levels), capped at the observed
    max (|x| for signed ranges, x for unsigned), at least 2^-23."""
    a = x.detach().float()
    mean_abs = _block_stat(a.abs(), param_shape, lambda t, d: t.mean(dim=d))
    top = _block_stat(a.abs() if signed else a, param_shape, lambda t, d: t.amax(dim=d))
    return torch.minimum(2.0 * mean_abs * math.sqrt(max(levels, 1.0)), top).clamp_min(_EPS)


class LearnableQuantizer(Quantizer):
    """Base class of the learnable-estimator quantizers (see the module docstring).

    Subclasses set ``estimator`` (the registry name), ``stochastic_rounding`` (whether the forward
    rounds), create their parameters in ``_create`` and fill them in ``_init_from``.
    """

    estimator: str = ""
    stochastic_rounding: bool = True

    def __init__(self, spec: QuantSpec, shape: Optional[Sequence[int]] = None, *,
                 device: Optional[torch.device] = None):
        super().__init__(spec, device=device)
        cls = type(self).__name__
        if spec.estimator != self.estimator:
            raise ValueError(f"{cls} implements estimator={self.estimator!r}, got spec.estimator={spec.estimator!r}; "
                             f"build it with lowbit.quantizers.make_quantizer(spec)")
        allowed = ("half_even", "stochastic") if self.stochastic_rounding else ("half_even",)
        if spec.rounding not in allowed:
            raise ValueError(f"{cls}: estimator {self.estimator!r} supports rounding in {allowed}, got "
                             f"spec.rounding={spec.rounding!r}")
        if spec.ste != "integer":
            raise ValueError(f"{cls}: spec.ste={spec.ste!r} chooses the straight-through mask of estimator 'ste'; "
                             f"estimator {self.estimator!r} has its own gradient (leave ste='integer')")
        if shape is None:
            if spec.granularity != "per_tensor":
                raise ValueError(f"{cls}({spec.describe()}): a {spec.granularity} learnable quantizer needs shape= "
                                 f"(its parameters must exist before the optimizer is built)")
            pshape = (1,)
        else:
            pshape = spec.param_shape(shape)
        self._shape = tuple(int(s) for s in shape) if shape is not None else None
        self._pshape = tuple(pshape)
        self.register_buffer("initialized", torch.zeros(1, dtype=torch.bool, device=device))
        # The grad scale reaches the op as a Python float (a per-layer constant); the buffer keeps
        # it in the state dict.
        self.register_buffer("grad_scale", torch.ones(1, dtype=torch.float64, device=device))
        self._initialized = False
        self._grad_scale = 1.0
        self._create(self._pshape, device)

    # ---- subclass hooks ------------------------------------------------------------------------

    def _create(self, pshape, device) -> None:
        raise NotImplementedError

    def _init_from(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def _quantize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---- shared ----------------------------------------------------------------------------------

    @property
    def param_shape(self) -> tuple[int, ...]:
        """Shape of the learnable parameters."""
        return self._pshape

    def _features_per_block(self, x: torch.Tensor) -> int:
        blocks = math.prod(self._pshape)
        if self._shape is not None and tuple(x.shape) == self._shape:
            return max(1, x.numel() // blocks)  # a weight: the whole block
        per_sample = x.numel() // x.shape[0] if x.dim() > 1 and x.shape[0] > 0 else x.numel()
        return max(1, per_sample // blocks)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> "LearnableQuantizer":
        """Initialise the parameters (and the gradient scale) from ``x``; returns self."""
        if x.numel() == 0:
            raise ValueError(f"{type(self).__name__}: cannot initialise from an empty tensor (shape {tuple(x.shape)})")
        self._init_from(x.detach())
        self._grad_scale = ops.lsq_grad_scale(self._features_per_block(x), max(1, abs(self.qmax)))
        self.grad_scale.fill_(self._grad_scale)
        self.initialized.fill_(True)
        self._initialized = True
        return self

    def _require_initialized(self, what: str) -> None:
        if not self._initialized:
            raise RuntimeError(f"{type(self).__name__}({self.spec.describe()}).{what}: the parameters are not "
                               f"initialised yet (run a forward, call .initialize(x) or load a state dict)")

    def _ensure_initialized(self, x: torch.Tensor) -> None:
        if not self._initialized:
            if _is_tracing():
                raise RuntimeError(f"{type(self).__name__}({self.spec.describe()}) initialises its parameters from "
                                   f"the first input: run one eager forward (or call .initialize(x) or load a "
                                   f"state dict) before torch.compile / torch.export")
            self.initialize(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_initialized(x)
        if not self._recompute_wanted:
            return self._quantize(x)
        training = self.training

        def quantize() -> torch.Tensor:
            if self.training != training:
                raise RuntimeError(f"lowbit: {type(self).__name__} switched between train() and eval() after forward "
                                   f"and before backward; its output cannot be recomputed")
            return self._quantize(x)

        stochastic = self.stochastic_rounding and self._rounding() == "stochastic"
        state = (x, *self.parameters(recurse=False), *self.buffers(recurse=False))
        return self._quantize_offering_recompute(x, quantize, stochastic, state)

    def _rounding(self) -> str:
        return self.spec.rounding if self.training else "half_even"

    def saved_bytes_per_element(self, dtype: torch.dtype = torch.float32) -> int:
        """Bytes per input element this quantizer's autograd node keeps for backward (the input
        itself; see lowbit.ops.estimator_saved_bytes_per_element)."""
        return ops.estimator_saved_bytes_per_element(self.estimator, dtype)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        self._initialized = bool(self.initialized.item())
        self._grad_scale = float(self.grad_scale.item())

    def extra_repr(self) -> str:
        return (f"{self.spec.describe()}, param_shape={self._pshape}, "
                f"initialized={self._initialized}{self._switch_repr()}")

    def _param(self, pshape, value, device) -> nn.Parameter:
        return nn.Parameter(torch.full(pshape, float(value), dtype=torch.float32, device=device))


# ---- LSQ / LSQ+ ---------------------------------------------------------------------------------


@register_estimator("lsq")
class LSQQuantizer(LearnableQuantizer):
    """LSQ (Esser et al. 2020): a learnable step ``scale`` on the spec's integer range.

    Initialised to the paper's ``2·mean|x|/sqrt(qmax)`` per block; gradient scale
    ``1/sqrt(N·qmax)``. Op: :func:`lowbit.ops.fake_quantize_lsq`.
    """

    estimator = "lsq"

    def _create(self, pshape, device):
        self.scale = self._param(pshape, 1.0, device)

    def _init_from(self, x):
        self.scale.copy_(ops.lsq_init_scale(x, max(1, abs(self.qmax)), param_shape=self._pshape))

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale float32, zero_point int32)`` of the affine grid the forward lies on, shaped like
        ``scale``: the learned step as the op uses it (clamped below at 2^-23) and zero point 0.
        The forward's codes are ``clamp(RNE(x · (1/s)), qmin, qmax)``, exactly those of
        ``quantize_affine(x, s, 0, qmin, qmax)``, so ``lowbit.convert`` can run the layer on
        integer kernels."""
        self._require_initialized("calculate_qparams")
        s = self.scale.detach().float().clamp_min(_EPS)
        return s, torch.zeros(s.shape, dtype=torch.int32, device=s.device)

    def _quantize(self, x):
        return ops.fake_quantize_lsq(x, self.scale, self.qmin, self.qmax, grad_scale=self._grad_scale,
                                     rounding=self._rounding(), enabled=self.fake_quant_enabled)


@register_estimator("lsq+")
class LSQPlusQuantizer(LearnableQuantizer):
    """LSQ+ (Bhalgat et al. 2020): LSQ plus a learnable ``offset`` β for asymmetric specs.

    Symmetric specs (weights): no offset; ``scale = max(|μ-3σ|, |μ+3σ|) / 2^(b-1)`` (signed;
    ``/qmax`` for unsigned). Asymmetric specs (activations): ``(scale, offset)`` minimising the
    quantization MSE on the first batch (:func:`lowbit.ops.lsq_plus_init_activation`). Both
    parameters use LSQ's gradient scale.
    """

    estimator = "lsq+"

    def _create(self, pshape, device):
        self.scale = self._param(pshape, 1.0, device)
        self.offset = None if self.spec.symmetric else self._param(pshape, 0.0, device)

    def _init_from(self, x):
        if self.offset is None:
            xf = x.float()
            mu = _block_stat(xf, self._pshape, lambda t, d: t.mean(dim=d))
            sd = _block_stat(xf, self._pshape, lambda t, d: t.std(dim=d, correction=0))
            denom = (self.qmax + 1) if self.spec.format.signed else self.qmax
            self.scale.copy_((torch.maximum((mu - 3 * sd).abs(), (mu + 3 * sd).abs()) / denom).clamp_min(_EPS))
        else:
            s, b = ops.lsq_plus_init_activation(x, self.qmin, self.qmax, param_shape=self._pshape)
            self.scale.copy_(s)
            self.offset.copy_(b)

    def _quantize(self, x):
        return ops.fake_quantize_lsq(x, self.scale, self.qmin, self.qmax, offset=self.offset,
                                     grad_scale=self._grad_scale, rounding=self._rounding(),
                                     enabled=self.fake_quant_enabled)


# ---- PyTorch-compatible learnable ---------------------------------------------------------------


@register_estimator("learnable")
class LearnableFakeQuantize(LearnableQuantizer):
    """torch.ao's ``_LearnableFakeQuantize`` on lowbit's op (bit-compatible numerics).

    ``scale`` and (for asymmetric specs) a float ``zero_point`` are learned; symmetric specs keep
    the zero point fixed (a buffer: 0 for signed formats, the midpoint for unsigned ones).
    Initialised from the first batch's min/max with ``lowbit.ops.choose_qparams`` (the spec's
    ``qparams`` method), as torch.ao's observer phase would; ``grad_factor`` is
    ``1/sqrt(numel·qmax)`` of that batch (torch.ao's ``use_grad_scaling=True``, fixed afterwards).
    Op: :func:`lowbit.ops.fake_quantize_learnable`.
    """

    estimator = "learnable"
    stochastic_rounding = False

    def _create(self, pshape, device):
        self.scale = self._param(pshape, 1.0, device)
        if self.spec.symmetric:
            self.register_buffer("zero_point", torch.zeros(pshape, dtype=torch.float32, device=device))
        else:
            self.zero_point = self._param(pshape, 0.0, device)

    def _init_from(self, x):
        xf = x.float()
        mn = _block_stat(xf, self._pshape, lambda t, d: t.amin(dim=d))
        mx = _block_stat(xf, self._pshape, lambda t, d: t.amax(dim=d))
        s, z = ops.choose_qparams(mn, mx, self.qmin, self.qmax, symmetric=self.spec.symmetric,
                                  method=self.spec.qparams)
        self.scale.copy_(s.clamp_min(_EPS))
        self.zero_point.copy_(z.float())

    @torch.no_grad()
    def initialize(self, x):
        super().initialize(x)
        self._grad_scale = 1.0 / math.sqrt(x.numel() * max(1, abs(self.qmax)))
        self.grad_scale.fill_(self._grad_scale)
        return self

    def calculate_qparams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale float32, zero_point int32)`` the forward uses, shaped like ``scale``: the scale
        clamped below at 2^-23 and the zero point rounded half to even and clamped to
        [qmin, qmax] (the forward is ``fake_quantize_affine`` with these; ``lowbit.convert`` reads
        them)."""
        self._require_initialized("calculate_qparams")
        s = self.scale.detach().float().clamp_min(_EPS)
        z = torch.round(self.zero_point.detach().float()).clamp(self.qmin, self.qmax).to(torch.int32)
        return s, z

    def _quantize(self, x):
        return ops.fake_quantize_learnable(x, self.scale, self.zero_point, self.qmin, self.qmax,
                                           grad_factor=self._grad_scale, enabled=self.fake_quant_enabled)


# ---- PACT ---------------------------------------------------------------------------------------


@register_estimator("pact")
class PACTQuantizer(LearnableQuantizer):
    """PACT (Choi et al. 2018): a learnable clip ``alpha``, ``bits`` of the spec's format.

    Unsigned formats clip to ``[0, α]`` with ``2^b - 1`` steps (activations after a ReLU); signed
    ones to ``[-α, α]`` with ``2^(b-1) - 1`` steps per side (a narrow range, whatever the format's
    ``narrow_range``). Initial α per block: LSQ's initial range ``2·mean|x|·sqrt(levels)``, capped
    at the observed max (the paper starts at 10, far too coarse for a low-bit pre-trained
    network). Add :meth:`regularizer` to the loss for the paper's L2 term on α.

    **Weights.** The paper defines PACT for activations only (its weights are DoReFa-quantized,
    with no learned clip), and its L2 term regularises the activation clip. On weights
    (``estimator="pact"`` in a weight spec, usually signed) lowbit learns a per-block clip with the
    same gradient, but :func:`pact_regularizer` leaves weight quantizers out by default: a weight
    clip's α gradient comes only from the weights at or beyond ±α (a small fraction), so under
    Adam, which rescales every parameter's gradient to a step of about the learning rate, the L2
    pull dominates that sparse signal, shrinks α, clips more weights (whose own gradient is then
    zero) and drives whole output channels to α ≈ 0. On scikit-learn's digits at W2A2 it collapsed
    12 of conv2's 32 weight clips below a tenth of their initial value (benchmarks/qat_digits.py,
    seed 0).
    """

    estimator = "pact"

    def _create(self, pshape, device):
        self.alpha = self._param(pshape, 10.0, device)

    @property
    def _levels(self) -> int:
        b = self.spec.format.bits
        return 2 ** (b - 1) - 1 if self.spec.format.signed else 2**b - 1

    def _init_from(self, x):
        self.alpha.copy_(_clip_init(x, self._pshape, self._levels, self.spec.format.signed))

    def regularizer(self, weight: float = 2e-4) -> torch.Tensor:
        """PACT's ``weight·Σα²`` for this quantizer."""
        return ops.pact_regularizer(self.alpha, weight)

    def _quantize(self, x):
        return ops.fake_quantize_pact(x, self.alpha, self.spec.format.bits, signed=self.spec.format.signed,
                                      rounding=self._rounding(), enabled=self.fake_quant_enabled)


def pact_regularizer(model: nn.Module, weight: float = 2e-4, *,
                     include_weight_quantizers: bool = False) -> torch.Tensor:
    """The sum of PACT's L2 terms ``weight·Σα²`` over the :class:`PACTQuantizer` s in ``model``
    (0 if none).

    By default only activation clips count, as in the paper: a PACT quantizer that is some
    layer's ``weight_quantizer`` is left out (see :class:`PACTQuantizer`, "Weights", for why an L2
    pull on a weight clip collapses it under Adam). ``include_weight_quantizers=True`` sums over
    every PACT quantizer.
    """
    if not isinstance(include_weight_quantizers, bool):
        raise TypeError(f"pact_regularizer: include_weight_quantizers must be a bool, got "
                        f"include_weight_quantizers={include_weight_quantizers!r}")
    skip = set()
    if not include_weight_quantizers:
        skip = {id(q) for m in model.modules() if isinstance(q := getattr(m, "weight_quantizer", None), PACTQuantizer)}
    terms = [m.regularizer(weight) for m in model.modules() if isinstance(m, PACTQuantizer) and id(m) not in skip]
    return torch.stack(terms).sum() if terms else torch.zeros(())


# ---- QIL ----------------------------------------------------------------------------------------


@register_estimator("qil")
class QILQuantizer(LearnableQuantizer):
    """QIL (Jung et al. 2019): learnable interval center ``c``, half-width ``d`` and, for signed
    formats (weights), the exponent ``gamma``; unsigned formats (activations) fix γ = 1.

    The op's outputs are normalised (``[-1, 1]`` / ``[0, 1]``); with ``rescale=True`` (default)
    the module multiplies them by the clip value ``c + d`` (after the op's clamps ``c >= d >=
    2^-23``; held constant in the backward pass),
    so a QIL layer keeps its float scale and drops into a pre-trained network (the paper instead
    lets a following BatchNorm absorb the scale: ``rescale=False``). Initialisation: ``c = d``
    = half of LSQ's initial range, capped at the observed max — no pruning, uniform levels.
    """

    estimator = "qil"

    def __init__(self, spec: QuantSpec, shape: Optional[Sequence[int]] = None, *,
                 device: Optional[torch.device] = None, rescale: bool = True):
        super().__init__(spec, shape, device=device)
        self.rescale = bool(rescale)

    def _create(self, pshape, device):
        self.c = self._param(pshape, 0.5, device)
        self.d = self._param(pshape, 0.5, device)
        self.gamma = self._param(pshape, 1.0, device) if self.spec.format.signed else None

    @property
    def _levels(self) -> int:
        b = self.spec.format.bits
        return 2 ** (b - 1) - 1 if self.spec.format.signed else 2**b - 1

    def _init_from(self, x):
        clip = _clip_init(x, self._pshape, self._levels, self.spec.format.signed)
        self.c.copy_(clip / 2)
        self.d.copy_(clip / 2)

    def _quantize(self, x):
        y = ops.fake_quantize_qil(x, self.c, self.d, self.gamma, self.spec.format.bits,
                                  weight=self.spec.format.signed, rounding=self._rounding(),
                                  enabled=self.fake_quant_enabled)
        if not self.rescale:
            return y
        # The clip the op used: c + d after its clamps (d >= 2^-23, c >= d). Off, the op passed x
        # through: do not rescale it.
        with torch.no_grad():
            d = self.d.clamp_min(_EPS)
            clip = torch.maximum(self.c, d) + d
        scale = torch.where(self.fake_quant_enabled, clip, torch.ones_like(clip))
        return y * scale.to(y.dtype)


# ---- DSQ ----------------------------------------------------------------------------------------


@register_estimator("dsq")
class DSQQuantizer(LearnableQuantizer):
    """DSQ (Gong et al. 2019): learnable range ``[lower, upper]`` and characteristic ``alpha``.

    ``mode`` (attribute, default ``"hard"``): the forward is the hard staircase (what the
    integer model computes) and the backward the tanh staircase's derivative; ``"soft"`` trains
    on the tanh staircase itself (evaluation always uses ``"hard"``). Initialisation: symmetric
    specs ``±clip``, asymmetric ones ``[min(x, 0), clip]`` with LSQ's initial range capped at the
    observed max; ``alpha = 0.2`` (third-party DSQ's start).
    """

    estimator = "dsq"

    def __init__(self, spec: QuantSpec, shape: Optional[Sequence[int]] = None, *,
                 device: Optional[torch.device] = None, mode: str = "hard"):
        super().__init__(spec, shape, device=device)
        if mode not in ops.DSQ_MODES:
            raise ValueError(f"DSQQuantizer: mode must be one of {ops.DSQ_MODES}, got mode={mode!r}")
        self.mode = mode

    def _create(self, pshape, device):
        self.lower = self._param(pshape, -1.0, device)
        self.upper = self._param(pshape, 1.0, device)
        self.alpha = self._param(pshape, 0.2, device)

    def _init_from(self, x):
        levels = 2**self.spec.format.bits - 1
        if self.spec.symmetric:
            clip = _clip_init(x, self._pshape, levels / 2, True)
            self.lower.copy_(-clip)
            self.upper.copy_(clip)
        else:
            clip = _clip_init(x, self._pshape, levels, False)
            low = _block_stat(x.float(), self._pshape, lambda t, d: t.amin(dim=d)).clamp_max(0.0)
            self.lower.copy_(low)
            self.upper.copy_(torch.maximum(clip, low + _EPS * 16))

    def _quantize(self, x):
        mode = self.mode if self.training else "hard"
        rounding = self._rounding() if mode == "hard" else "half_even"
        return ops.fake_quantize_dsq(x, self.lower, self.upper, self.alpha, self.spec.format.bits, mode=mode,
                                     rounding=rounding, enabled=self.fake_quant_enabled)


# ---- Quantization Networks ----------------------------------------------------------------------


@register_estimator("sigmoid")
class SigmoidQuantizer(LearnableQuantizer):
    """Quantization Networks (Yang et al. 2019): a sigmoid staircase with a learnable output scale
    α and input scale β, fixed levels and thresholds, and a temperature.

    Levels: the format's integer grid (signed formats: the symmetric ``±(2^(b-1) - 1)``; unsigned:
    ``0 .. 2^b - 1``), thresholds at their midpoints (buffers). Initialisation (the paper's):
    ``β = 1.25·y_n / max|x|`` per block, ``α = 1/β``.

    Parametrisation: α and β span orders of magnitude with the bit width (β ≈ 300 and α ≈ 0.003
    for 8-bit activations in [0, 1]), so one optimizer learning rate cannot suit both. The module
    learns them relative to their initial values: ``alpha`` and ``beta`` are Parameters that start
    at 1, and the op receives ``alpha·alpha0`` and ``beta·beta0`` (buffers set at
    initialisation); :attr:`effective_alpha` / :attr:`effective_beta` give the values in use.

    The ``temperature`` buffer starts at ``base_temperature`` (10); advance it each epoch with
    :meth:`set_epoch` or :func:`set_sigmoid_temperature` (``T = (epoch + 1)·10``, capped at
    2000). Training mode uses the soft staircase, evaluation the hard step.
    """

    estimator = "sigmoid"
    stochastic_rounding = False

    def __init__(self, spec: QuantSpec, shape: Optional[Sequence[int]] = None, *,
                 device: Optional[torch.device] = None, base_temperature: float = 10.0,
                 max_temperature: float = 2000.0):
        self._base_temperature = float(base_temperature)
        self._max_temperature = float(max_temperature)
        super().__init__(spec, shape, device=device)

    def _create(self, pshape, device):
        fmt = self.spec.format
        levels = ops.sigmoid_levels(fmt.bits, signed=fmt.signed, device=device)
        self.register_buffer("levels", levels)
        self.register_buffer("thresholds", ops.sigmoid_thresholds(levels))
        self.register_buffer("temperature", torch.tensor([self._base_temperature], device=device))
        self.register_buffer("alpha0", torch.ones(pshape, dtype=torch.float32, device=device))
        self.register_buffer("beta0", torch.ones(pshape, dtype=torch.float32, device=device))
        self.alpha = self._param(pshape, 1.0, device)
        self.beta = self._param(pshape, 1.0, device)

    def _init_from(self, x):
        top = _block_stat(x.float().abs(), self._pshape, lambda t, d: t.amax(dim=d)).clamp_min(_EPS)
        beta = 1.25 * float(self.levels[-1]) / top
        self.beta0.copy_(beta)
        self.alpha0.copy_(1.0 / beta)
        self.alpha.fill_(1.0)
        self.beta.fill_(1.0)

    @property
    def effective_alpha(self) -> torch.Tensor:
        """The output scale α the op uses (``alpha·alpha0``)."""
        return self.alpha * self.alpha0

    @property
    def effective_beta(self) -> torch.Tensor:
        """The input scale β the op uses (``beta·beta0``)."""
        return self.beta * self.beta0

    @torch.no_grad()
    def set_temperature(self, temperature: float) -> "SigmoidQuantizer":
        """Set the temperature (in place: a compiled graph does not recompile); returns self."""
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"SigmoidQuantizer: temperature must be a positive finite number, got {temperature!r}")
        self.temperature.fill_(float(temperature))
        return self

    def set_epoch(self, epoch: int) -> "SigmoidQuantizer":
        """The official schedule ``T = min((epoch + 1)·base, max)``; returns self."""
        return self.set_temperature(ops.sigmoid_temperature(epoch, self._base_temperature, self._max_temperature))

    def _quantize(self, x):
        return ops.fake_quantize_sigmoid(x, self.levels, self.thresholds, self.effective_alpha, self.effective_beta,
                                         self.temperature, hard=not self.training, enabled=self.fake_quant_enabled)


def set_sigmoid_temperature(model: nn.Module, epoch: int) -> int:
    """Advance every :class:`SigmoidQuantizer` in ``model`` to ``epoch``'s temperature; returns
    how many were set."""
    count = 0
    for m in model.modules():
        if isinstance(m, SigmoidQuantizer):
            m.set_epoch(epoch)
            count += 1
    return count
