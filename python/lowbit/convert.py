"""Graph capture for integer simulation and integer conversion.

Models are taken as users write them: a residual add is ``x + f(x)`` in ``forward``, ReLU may be
``nn.ReLU``, ``F.relu``, ``torch.relu`` or ``x.clamp(min=0)``. Both passes capture the graph with
``torch.fx.symbolic_trace`` (lowbit's quantized layers and quantizers are leaves) and reason about
*values*: an integer pipeline gives every tensor flowing between integer operations one grid
(scale, zero point), and each layer needs its output's grid.

**Where a value's grid comes from.** Every quantized value has one producer that owns its
quantizer, and every consumer reads that quantizer's parameters (shared module, never run twice):

* a quantized layer (``QuantLinear`` / ``QuantConv2d``) or residual add (``QuantAdd``) owns an
  ``output_quantizer`` when its result reaches another integer operation; its consumers'
  ``input_quantizer`` *is* that module. A layer whose result reaches none (e.g. the logits)
  has no output quantizer and returns float from its exact int32 accumulator;
* a float tensor entering the integer region (a model input, or the output of an operation that
  stays float) gets an *entry quantizer*, a ``FakeQuantize`` node ``<value>_quantizer``;
* grid-preserving operations pass their input's grid through: max pooling, flatten / view /
  reshape / permute / squeeze, dropout and identity, and ReLU (on a grid, ``max(x, 0)`` stays on
  it). A ReLU/ReLU6 directly after a layer or add that has no other user is fused into it as a
  clamp of the output codes (METHODS §9.3), so the output quantizer observes the activation's range;
* average pooling (``nn.AvgPool2d``, ``nn.AdaptiveAvgPool2d``, their functionals, ``x.mean(dims)``)
  of a quantized value keeps its grid too, but an average of codes is not a code: integer
  simulation replaces it by ``QuantAvgPool``, the exact integer window sum divided by PyTorch's
  divisor and rounded half away from zero, which the converted ``IntAvgPool`` computes identically.
  (Under float simulation the pooling stays float and the next layer quantizes its output.)

Everything else (softmax, layer norm, multiplication, concatenation, ...) runs in
float on dequantized values; a quantized consumer after it quantizes again with an entry quantizer.
An add becomes integer when both operands are quantized (or model inputs / module outputs that can
get an entry quantizer) and its result reaches an integer operation; otherwise it stays a float add.

:func:`prepare_integer_simulation` (``prepare_qat(..., simulation="integer")``) builds this wiring
with fresh output quantizers; :func:`convert` lowers it to :mod:`lowbit.nn.integer` modules. A model
prepared with the default float simulation is converted by first wiring a copy of it from its
layers' *input* quantizers (a producer's output grid is its consumers' input grid; a value without
one stays float), so its converted outputs differ from its float simulation by the usual ±1 LSB of
requantization (:func:`compare_simulation` counts them).
"""

from __future__ import annotations

import copy
import math
import operator
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from . import ops
from ._registrations import code_dtype
from .learnable_quantizers import LearnableQuantizer
from .nn import _integer as I
from .nn.integer import Dequantize, IntAdd, IntAvgPool, IntConv2d, IntLinear, IntMaxPool2d, IntReLU, Quantize
from .nn.modules import QuantConv2d, QuantLinear
from .nn.simulation import QuantAdd, QuantAvgPool
from .quantizers import FakeQuantize, Quantizer, estimators, make_quantizer
from .spec import QuantSpec

__all__ = ["convert", "compare_simulation", "SimulationReport", "Mismatch", "ConversionError"]

_LAYERS = (QuantLinear, QuantConv2d)
_INTEGER_MODULES = (IntLinear, IntConv2d, IntAdd, IntReLU, IntAvgPool, IntMaxPool2d, Quantize, Dequantize)


class ConversionError(ValueError):
    """A model (or part of it) that integer simulation / conversion cannot handle; the message names it."""


# ---- tracing -------------------------------------------------------------------------------------------


class _Tracer(fx.Tracer):
    """symbolic_trace with lowbit's layers, quantizers and integer modules as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, _LAYERS + (Quantizer, QuantAdd, QuantAvgPool) + _INTEGER_MODULES):
            return True
        return super().is_leaf_module(m, qualname)


def _trace(model: nn.Module, caller: str) -> fx.GraphModule:
    root = nn.Sequential(model) if isinstance(model, _LAYERS) else model
    try:
        graph = _Tracer().trace(root)
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError... depending on the construct
        raise ConversionError(
            f"{caller}: torch.fx cannot capture the graph of {type(model).__name__}.forward ({type(e).__name__}: {e}). "
            f"Integer simulation and conversion need a traceable forward: no Python control flow on tensor values "
            f"(use torch.where), no data-dependent shapes; see the torch.fx symbolic tracing limitations") from e
    name = type(root).__name__
    return fx.GraphModule(root, graph, class_name=f"{name}Graph" if not name.endswith("Graph") else name)


# ---- node classification ---------------------------------------------------------------------------------

_RELU_FUNCTIONS = {F.relu, torch.relu, torch.relu_, getattr(F, "relu_", F.relu)}
_PASS_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute, torch.transpose,
                   F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d,
                   F.adaptive_max_pool3d}
_IDENTITY_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout}
_PASS_METHODS = {"view", "reshape", "flatten", "contiguous", "permute", "transpose", "squeeze", "unsqueeze",
                 "unflatten"}
_META_METHODS = {"size", "dim", "numel"}
_PASS_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                 nn.AdaptiveMaxPool3d, nn.Flatten, nn.Unflatten)
_IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _is_zero(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0


def _is_six(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == 6


def _nodes_in(value) -> list[fx.Node]:
    """The graph nodes inside an fx argument structure (nested tuples, lists and dicts)."""
    found: list[fx.Node] = []
    fx.node.map_arg(value, lambda n: found.append(n))
    return found


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    return _nodes_in((node.args, node.kwargs))


def _activation(node: fx.Node, modules: dict[str, nn.Module]) -> Optional[str]:
    """``"relu"`` / ``"relu6"`` when ``node`` applies that activation to ``node.args[0]`` alone."""
    if not node.args or not isinstance(node.args[0], fx.Node) or len(set(_tensor_args(node))) != 1:
        return None
    if node.op == "call_module":
        m = modules.get(node.target)
        if type(m) is nn.ReLU:
            return "relu"
        if type(m) is nn.ReLU6:
            return "relu6"
        if type(m) is nn.Hardtanh and _is_zero(m.min_val) and _is_six(m.max_val):
            return "relu6"
        return None
    args, kwargs = node.args[1:], node.kwargs
    if node.op == "call_function":
        if node.target in _RELU_FUNCTIONS:
            return "relu"
        if node.target in (F.relu6,):
            return "relu6"
        if node.target is F.hardtanh:
            lo = args[0] if len(args) > 0 else kwargs.get("min_val", -1.0)
            hi = args[1] if len(args) > 1 else kwargs.get("max_val", 1.0)
            return "relu6" if _is_zero(lo) and _is_six(hi) else None
        if node.target in (torch.clamp, torch.clip):
            return _clamp_activation(args, kwargs)
        if node.target is torch.clamp_min:
            return "relu" if args and _is_zero(args[0]) else None
        return None
    if node.op == "call_method":
        if node.target in ("relu", "relu_"):
            return "relu"
        if node.target in ("clamp", "clip", "clamp_", "clip_"):
            return _clamp_activation(args, kwargs)
        if node.target in ("clamp_min", "clamp_min_"):
            return "relu" if args and _is_zero(args[0]) else None
    return None


def _clamp_activation(args, kwargs) -> Optional[str]:
    lo = args[0] if len(args) > 0 else kwargs.get("min")
    hi = args[1] if len(args) > 1 else kwargs.get("max")
    if not _is_zero(lo):
        return None
    if hi is None:
        return "relu"
    return "relu6" if _is_six(hi) else None


def _passthrough(node: fx.Node, modules: dict[str, nn.Module]) -> Optional[str]:
    """How a node treats a quantized first argument without changing its grid.

    ``"same"``: selects or rearranges elements (the same op runs on codes); ``"identity"``:
    dropout / identity (removed on conversion); ``"relu"``: ``max(x, 0)`` (``max(q, z)`` on codes);
    ``"meta"``: reads only the shape. None: a float operation.
    """
    if not node.args or not isinstance(node.args[0], fx.Node):
        return None
    first = node.args[0]
    if any(n is not first and not _is_shape_node(n) for n in _tensor_args(node)):
        return None
    if _activation(node, modules) == "relu":
        return "relu"
    if node.op == "call_module":
        m = modules.get(node.target)
        if isinstance(m, _PASS_MODULES) and not getattr(m, "return_indices", False):
            return "same"
        if type(m) in _IDENTITY_MODULES:
            return "identity"
        return None
    if node.op == "call_function":
        if node.target in _PASS_FUNCTIONS and not node.kwargs.get("return_indices", False):
            return "same"
        if node.target in _IDENTITY_FUNCTIONS:
            return "identity"
        if node.target is getattr and len(node.args) > 1 and node.args[1] == "shape":
            return "meta"
        return None
    if node.op == "call_method":
        if node.target in _PASS_METHODS:
            return "same"
        if node.target in _META_METHODS:
            return "meta"
    return None


_SHAPE_FUNCTIONS = {operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv, operator.neg}


def _is_shape_node(n: fx.Node) -> bool:
    """Shape arithmetic (``x.size(0)``, ``x.shape[1] * 2``): Python ints at run time, not tensors."""
    if n.op == "call_method" and n.target in _META_METHODS:
        return True
    if n.op == "call_function":
        if n.target is getattr:
            return len(n.args) > 1 and n.args[1] == "shape"
        if n.target in _SHAPE_FUNCTIONS:
            return all(_is_shape_node(a) for a in _tensor_args(n))
    return False


def _avg_pool(node: fx.Node, modules: dict[str, nn.Module]) -> Optional[I.AvgPool]:
    """The average pooling ``node`` applies to ``node.args[0]`` (grid-preserving on codes), else None."""
    if not node.args or not isinstance(node.args[0], fx.Node):
        return None
    if any(n is not node.args[0] and not _is_shape_node(n) for n in _tensor_args(node)):
        return None
    if node.op == "call_module":
        m = modules.get(node.target)
        if type(m) is nn.AvgPool2d:
            return I.AvgPool("avg_pool2d", kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                             ceil_mode=m.ceil_mode, count_include_pad=m.count_include_pad,
                             divisor_override=m.divisor_override)
        if type(m) is nn.AdaptiveAvgPool2d:
            return I.AvgPool("adaptive_avg_pool2d", output_size=m.output_size)
        return None
    args, kwargs = list(node.args[1:]), dict(node.kwargs)

    def arg(i, name, default):
        return args[i] if len(args) > i else kwargs.get(name, default)

    if node.op == "call_function" and node.target is F.avg_pool2d:
        return I.AvgPool("avg_pool2d", kernel_size=arg(0, "kernel_size", None), stride=arg(1, "stride", None),
                         padding=arg(2, "padding", 0), ceil_mode=arg(3, "ceil_mode", False),
                         count_include_pad=arg(4, "count_include_pad", True),
                         divisor_override=arg(5, "divisor_override", None))
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        return I.AvgPool("adaptive_avg_pool2d", output_size=arg(0, "output_size", None))
    if (node.op == "call_method" and node.target == "mean") or (node.op == "call_function"
                                                                 and node.target is torch.mean):
        dim = arg(0, "dim", None)
        if dim is None or kwargs.get("dtype") is not None:
            return None  # a full mean returns a 0-d tensor; keep it simple: float
        if not (isinstance(dim, int) or (isinstance(dim, (tuple, list)) and all(isinstance(d, int) for d in dim))):
            return None
        return I.AvgPool("mean", dim=tuple(dim) if isinstance(dim, list) else dim, keepdim=bool(arg(1, "keepdim",
                                                                                                   False)))
    return None


def _add_operands(node: fx.Node) -> Optional[tuple[fx.Node, fx.Node]]:
    """The two tensor operands of a plain ``a + b`` (operator, ``torch.add``, ``a.add(b)``), else None."""
    if node.op == "call_function" and node.target in (operator.add, torch.add):
        pass
    elif node.op == "call_method" and node.target in ("add", "__add__"):
        pass
    else:
        return None
    if len(node.args) != 2 or any(k != "alpha" for k in node.kwargs) or node.kwargs.get("alpha", 1) != 1:
        return None
    a, b = node.args
    if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)):
        return None
    return a, b


def _is_tensor_source(n: fx.Node, modules: dict[str, nn.Module]) -> bool:
    # Values that can enter the integer region through an entry quantizer: model inputs and module
    # outputs (not shape arithmetic, tuples or attributes).
    if n.op == "placeholder":
        return True
    return n.op == "call_module" and not isinstance(modules.get(n.target), Quantizer)


def _layer_module(node: fx.Node, modules: dict[str, nn.Module]) -> Optional[nn.Module]:
    if node.op == "call_module" and isinstance(modules.get(node.target), _LAYERS):
        return modules[node.target]
    return None


def _layer_input(node: fx.Node) -> fx.Node:
    x = node.args[0] if node.args else node.kwargs.get("input", node.kwargs.get("x"))
    return x


# ---- checks ----------------------------------------------------------------------------------------------


# A quantizer class that defines calculate_qparams() states that its forward is exactly affine fake
# quantization on the (scale, zero_point) it returns: FakeQuantize ("ste"), LSQQuantizer ("lsq":
# zero point 0, codes clamp(RNE(x·(1/s)))) and LearnableFakeQuantize ("learnable"). LSQ+'s offset is
# not a multiple of the step in general, and PACT, QIL, DSQ and the sigmoid staircase compute their
# codes with other formulas, so their classes define none.
def _on_affine_grid(q: Quantizer) -> bool:
    return callable(getattr(q, "calculate_qparams", None))


def _affine_estimators() -> list[str]:
    return [name for name, cls in estimators().items() if callable(getattr(cls, "calculate_qparams", None))]


def _check_layers(gm: fx.GraphModule, caller: str) -> list[fx.Node]:
    modules = dict(gm.named_modules(remove_duplicate=False))
    layer_nodes = [n for n in gm.graph.nodes if _layer_module(n, modules) is not None]
    problems: list[str] = []
    calls: dict[int, list[fx.Node]] = defaultdict(list)
    for n in layer_nodes:
        calls[id(modules[n.target])].append(n)
    for nodes in calls.values():
        if len(nodes) > 1:
            problems.append(f"module '{nodes[0].target}' is called at {len(nodes)} places (nodes "
                            f"{', '.join(n.name for n in nodes)}): each call needs its own output grid, use "
                            f"separate modules")
    for n in layer_nodes:
        layer = modules[n.target]
        name = n.target
        x = _layer_input(n)
        if not isinstance(x, fx.Node) or len(n.args) + len(n.kwargs) != 1:
            problems.append(f"layer '{name}' must be called with one tensor input, got args={n.args}, "
                            f"kwargs={n.kwargs}")
        if layer.input_quantizer is None or layer.weight_quantizer is None:
            which = "input (activation=None)" if layer.input_quantizer is None else "weight (weight=None)"
            problems.append(f"layer '{name}' does not quantize its {which}: integer layers need both quantized "
                            f"(prepare_qat with weight= and activation=); a 4-bit weight-only model deploys with "
                            f"lowbit.quantize_int4_weight_only")
            continue
        for role, q in (("input", layer.input_quantizer), ("weight", layer.weight_quantizer)):
            if not _on_affine_grid(q):
                problems.append(f"layer '{name}': its {role} quantizer is {type(q).__name__} "
                                f"(estimator={q.spec.estimator!r}), whose forward is not on an affine integer grid; "
                                f"conversion supports the estimators {', '.join(map(repr, _affine_estimators()))}")
        aspec, wspec = layer.input_quantizer.spec, layer.weight_quantizer.spec
        if aspec.granularity != "per_tensor":
            problems.append(f"layer '{name}': activation granularity {aspec.granularity!r} cannot run in integer: "
                            f"a per-input-channel scale does not factor out of the sum over channels; use "
                            f"granularity='per_tensor' activations")
        if wspec.granularity == "per_group" or (wspec.granularity == "per_channel"
                                                 and wspec.resolved_axis(layer.weight.dim()) != 0):
            problems.append(f"layer '{name}': weight quantization {wspec.describe()!r} cannot run in integer: "
                            f"only per-tensor or per-output-channel (axis 0) weight scales factor out of the "
                            f"accumulator")
    if problems:
        raise ConversionError(f"{caller}: cannot run these layers in integer arithmetic:\n  - " +
                              "\n  - ".join(problems))
    return layer_nodes


# ---- wiring ----------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    layers: list[fx.Node]
    adds: dict[fx.Node, tuple[fx.Node, fx.Node]]
    # value node -> producer node whose grid it is on (a layer, an add, or an entry value)
    src: dict[fx.Node, fx.Node] = field(default_factory=dict)
    # float value node -> integer consumer nodes that need it quantized
    entries: dict[fx.Node, list[fx.Node]] = field(default_factory=dict)
    # producer -> integer consumer nodes that read its grid
    readers: dict[fx.Node, list[fx.Node]] = field(default_factory=lambda: defaultdict(list))
    # average poolings of quantized values (integer simulation only): same grid, rounded averages
    pools: list[fx.Node] = field(default_factory=list)


def _analyse(gm: fx.GraphModule, layers: list[fx.Node], adds: dict[fx.Node, tuple[fx.Node, fx.Node]],
             allow_entry: Callable[[fx.Node, fx.Node], bool], pools: bool) -> _Plan:
    modules = dict(gm.named_modules(remove_duplicate=False))
    plan = _Plan(layers, dict(adds))
    layer_set = set(layers)
    for node in gm.graph.nodes:
        if pools and node.args and isinstance(node.args[0], fx.Node) and node.args[0] in plan.src \
                and _avg_pool(node, modules) is not None:
            plan.src[node] = plan.src[node.args[0]]
            plan.pools.append(node)
        elif node in layer_set or node in plan.adds:
            operands = [_layer_input(node)] if node in layer_set else list(plan.adds[node])
            ok = True
            for v in operands:
                if v in plan.src:
                    continue
                if not allow_entry(node, v):
                    ok = False
            if not ok:  # only adds can fail: an operand that cannot be quantized keeps the add in float
                del plan.adds[node]
                continue
            for v in operands:
                if v in plan.src:
                    plan.readers[plan.src[v]].append(node)
                else:
                    plan.entries.setdefault(v, []).append(node)
            plan.src[node] = node
        elif node.args and isinstance(node.args[0], fx.Node) and node.args[0] in plan.src and (
                _passthrough(node, modules) in ("same", "identity", "relu")
                or _fusable_after_add(node, plan.adds, modules)):
            plan.src[node] = plan.src[node.args[0]]
    for v, consumers in plan.entries.items():
        plan.src[v] = v
        plan.readers[v].extend(consumers)
    return plan


def _fusable_after_add(node: fx.Node, adds: dict, modules: dict[str, nn.Module]) -> bool:
    # A ReLU6 (or ReLU) that will be fused into the integer add before it carries the add's grid.
    producer = node.args[0]
    return producer in adds and len(producer.users) == 1 and _activation(node, modules) is not None


def _fuse_activations(gm: fx.GraphModule, producers: Iterable[fx.Node]) -> dict[fx.Node, str]:
    """Fuse ``producer -> ReLU/ReLU6`` pairs (the producer's only user); returns the activations."""
    modules = dict(gm.named_modules(remove_duplicate=False))
    fused = {}
    for p in producers:
        users = list(p.users)
        if len(users) != 1:
            continue
        act_node = users[0]
        act = _activation(act_node, modules)
        if act is None or act_node.args[0] is not p:
            continue
        act_node.replace_all_uses_with(p)
        gm.graph.erase_node(act_node)
        fused[p] = act
    return fused


def _fresh_name(gm: fx.GraphModule, base: str) -> str:
    name, i = base, 1
    while hasattr(gm, name):
        name, i = f"{base}_{i}", i + 1
    return name


def _wire(gm: fx.GraphModule, *, mode: str, activation: Optional[QuantSpec], requant_rounding: str,
          caller: str) -> fx.GraphModule:
    """Rewrite ``gm`` in place for integer simulation (see the module docstring); returns it.

    ``mode="integer"``: new output / entry quantizers from ``activation``. ``mode="float"``: grids
    from the layers' existing input quantizers (a model prepared with float simulation).
    """
    layers = _check_layers(gm, caller)
    layer_set = set(layers)
    # Layers take a following ReLU/ReLU6 first (their output grid then covers the activation's
    # range); adds take theirs once it is known which adds run in integer.
    fused = _fuse_activations(gm, layers)
    modules = dict(gm.named_modules(remove_duplicate=False))
    candidates = {n: ops_ for n in gm.graph.nodes if (ops_ := _add_operands(n)) is not None}

    if mode == "integer":
        def allow_entry(consumer: fx.Node, v: fx.Node) -> bool:
            return consumer in layer_set or _is_tensor_source(v, modules)
    else:
        def allow_entry(consumer: fx.Node, v: fx.Node) -> bool:
            return consumer in layer_set  # a float-simulation add has no quantizer for its operands

    def has_layer_reader(plan: _Plan, producer: fx.Node) -> bool:
        return any(r in layer_set for r in plan.readers.get(producer, ()))

    # An add stays float when its result reaches no integer consumer (float simulation: no layer
    # whose input quantizer gives its grid, and operands without one). Dropping an add can strand
    # its operands, so iterate to a fixed point.
    adds = dict(candidates)
    while True:
        plan = _analyse(gm, layers, adds, allow_entry, pools=mode == "integer")
        if mode == "integer":
            drop = {a for a in plan.adds if not plan.readers.get(a)}
        else:
            drop = {a for a, operands in plan.adds.items()
                    if not has_layer_reader(plan, a)
                    or not all(has_layer_reader(plan, plan.src[v]) for v in operands)}
        if not drop:
            break
        adds = {a: o for a, o in plan.adds.items() if a not in drop}

    # The grid (quantizer) of every producer that has integer readers.
    grids: dict[fx.Node, Quantizer] = {}
    for producer, readers in plan.readers.items():
        if not readers:
            continue
        if mode == "integer":
            # An entry value read by a layer uses that layer's own input quantizer (built by
            # prepare_qat from the activation spec); everything else gets a fresh one.
            reader_layer = next((r for r in readers if r in layer_set), None) if producer in plan.entries else None
            grids[producer] = (modules[reader_layer.target].input_quantizer if reader_layer is not None
                               else make_quantizer(activation, (1,), device=_device_of(gm)))
            continue
        owners = [(r, modules[r.target].input_quantizer) for r in readers if r in layer_set]
        first_reader, first = owners[0]
        for reader, other in owners[1:]:
            if other is not first and not _same_grid(first, other):
                raise ConversionError(
                    f"{caller}: value '{producer.name}' feeds layers '{first_reader.target}' and '{reader.target}' "
                    f"whose input quantizers observed different ranges ({_grid_text(first)} vs {_grid_text(other)}); "
                    f"an integer tensor has one grid. Prepare with simulation='integer' (one quantizer per value)")
        grids[producer] = first

    # Each integer node's operand grids, before the graph changes.
    operand_grids = {n: [grids[plan.src[_layer_input(n)]]] for n in layers}
    operand_grids.update({a: [grids[plan.src[v]] for v in operands] for a, operands in plan.adds.items()})

    fused.update(_fuse_activations(gm, plan.adds))

    # Entry quantizers for float values read by integer nodes.
    for v, consumers in plan.entries.items():
        name = _fresh_name(gm, f"{v.name}_quantizer")
        gm.add_submodule(name, grids[v])
        with gm.graph.inserting_after(v):
            qn = gm.graph.call_module(name, (v,))
        for c in consumers:
            c.replace_input_with(v, qn)

    for n in layers:
        layer = modules[n.target]
        layer.input_quantizer = operand_grids[n][0]
        layer.output_quantizer = grids.get(n)
        layer.fused_activation = fused.get(n)
        layer.requant_rounding = requant_rounding
        layer.simulation = "integer"
        _check_bound(layer, n.target)

    for p in plan.pools:
        if plan.src[p] not in grids:
            continue  # the pooled value has no grid (its producer returns float): a float pooling
        module = QuantAvgPool(grids[plan.src[p]], _avg_pool(p, modules))
        name = _fresh_name(gm, f"{p.name}_avg" if p.op == "call_module" else p.name)
        gm.add_submodule(name, module)
        with gm.graph.inserting_after(p):
            new = gm.graph.call_module(name, (p.args[0],))
        p.replace_all_uses_with(new)
        gm.graph.erase_node(p)

    for a in plan.adds:
        lhs_grid, rhs_grid = operand_grids[a]
        module = QuantAdd(grids[a], lhs_grid, rhs_grid, activation=fused.get(a), requant_rounding=requant_rounding)
        name = _fresh_name(gm, a.name)
        gm.add_submodule(name, module)
        with gm.graph.inserting_after(a):
            new = gm.graph.call_module(name, tuple(a.args[:2]))
        a.replace_all_uses_with(new)
        gm.graph.erase_node(a)

    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _device_of(gm: nn.Module) -> Optional[torch.device]:
    for t in gm.parameters():
        return t.device
    return None


def _same_grid(a: Quantizer, b: Quantizer) -> bool:
    sa, za = a.calculate_qparams()
    sb, zb = b.calculate_qparams()
    return (a.qmin, a.qmax) == (b.qmin, b.qmax) and torch.equal(sa, sb) and torch.equal(za, zb)


def _grid_text(q: Quantizer) -> str:
    s, z = q.calculate_qparams()
    return f"scale {s.flatten()[0].item():.6g}, zero_point {int(z.flatten()[0].item())}"


def _max_offset(q: Quantizer) -> int:
    """Largest ``|code - zero_point|`` the quantizer can produce."""
    if not q.spec.symmetric:
        return q.qmax - q.qmin  # the zero point can be anywhere in range
    z = 0 if q.spec.format.signed else (q.qmin + q.qmax + 1) // 2
    return max(q.qmax - z, z - q.qmin)


def _check_bound(layer: nn.Module, name: str) -> None:
    terms = layer.weight[0].numel()  # in_features, or in_channels/groups * kh * kw
    I.check_accumulator_bound(f"layer '{name}'", terms, _max_offset(layer.input_quantizer),
                              _max_offset(layer.weight_quantizer))


def check_integer_simulation_args(weight: Optional[QuantSpec], activation: Optional[QuantSpec],
                                  requant_rounding: str, caller: str) -> None:
    """Argument errors of ``prepare_qat(..., simulation="integer")``, before any layer is swapped."""
    if requant_rounding not in I.REQUANT_ROUNDINGS:
        raise ValueError(f"{caller}: requant_rounding must be one of {', '.join(map(repr, I.REQUANT_ROUNDINGS))}, "
                         f"got requant_rounding={requant_rounding!r}")
    if activation is None or weight is None:
        which = "activation" if activation is None else "weight"
        raise ValueError(f"{caller}: simulation='integer' needs both weight= and activation= (integer layers "
                         f"quantize weights, inputs and outputs), got {which}=None")
    for role, spec in (("weight", weight), ("activation", activation)):
        if spec.estimator != "ste":
            raise ValueError(f"{caller}: simulation='integer' runs the observer-driven 'ste' estimator (its forward "
                             f"is the integer pipeline itself), got {role} estimator={spec.estimator!r}; "
                             f"train with simulation='float' and convert: 'lsq' and 'learnable' models convert")
    if activation.granularity != "per_tensor":
        raise ValueError(f"{caller}: simulation='integer' needs per-tensor activations (a per-channel input scale "
                         f"does not factor out of the sum over channels), got "
                         f"activation granularity={activation.granularity!r}")
    if weight.granularity == "per_group" or (weight.granularity == "per_channel" and weight.axis not in (None, 0)):
        raise ValueError(f"{caller}: simulation='integer' needs per-tensor or per-output-channel (axis 0) weights, "
                         f"got weight={weight.describe()!r}")


def prepare_integer_simulation(model: nn.Module, *, activation: QuantSpec, requant_rounding: str = "double",
                               caller: str = "prepare_qat") -> fx.GraphModule:
    """The graph of ``model`` (whose layers are already swapped) wired for integer simulation."""
    training = model.training
    gm = _trace(model, caller)
    _wire(gm, mode="integer", activation=activation, requant_rounding=requant_rounding, caller=caller)
    gm._lowbit_simulation = "integer"
    return gm.train(training)


# ---- conversion ------------------------------------------------------------------------------------------


def _check_calibrated(gm: fx.GraphModule, caller: str) -> None:
    problems = []
    for name, m in gm.named_modules():
        if not isinstance(m, Quantizer):
            continue
        if not bool(m.fake_quant_enabled.all()):
            problems.append(f"'{name}': fake quantization is switched off (lowbit.enable_fake_quant first)")
        if isinstance(m, FakeQuantize) and m.param_shape is not None and not bool(
                (torch.isfinite(m.min_val) & torch.isfinite(m.max_val)).all()):
            problems.append(f"'{name}': it never observed data (run calibration batches in training mode first)")
        if isinstance(m, LearnableQuantizer) and not bool(m.initialized.all()):
            problems.append(f"'{name}': its learnable parameters were never initialised (run a forward first)")
    if problems:
        raise ConversionError(f"{caller}: the model is not ready for conversion:\n  - " + "\n  - ".join(problems))


def convert(model: nn.Module, *, requant_rounding: str = "double", use_kernels: bool = True,
            strict: bool = False) -> fx.GraphModule:
    """An integer model from a calibrated or QAT-trained model (``lowbit.prepare_qat``).

    Integer codes flow between the converted layers (:mod:`lowbit.nn.integer`): ``Quantize`` at each
    entry into the integer region (float in), ``IntLinear`` / ``IntConv2d`` with fused ReLU/ReLU6,
    ``IntAdd`` for residual adds, max pooling / flatten / reshapes / ReLU on codes, and
    ``Dequantize`` where a float operation or the model output reads a quantized value (float
    out). The model itself is left unchanged; the result is a ``torch.fx.GraphModule`` in eval mode.

    * A model prepared with ``simulation="integer"`` converts to exactly what it computes:
      ``convert(model)(x)`` equals ``model.eval()(x)`` bit for bit (``torch.equal``).
    * A model prepared with the default float simulation is wired from its layers' input
      quantizers first (see the module docstring); its outputs then differ by requantization's
      ±1 LSB here and there (:func:`compare_simulation`).

    Args:
        requant_rounding: fixed-point rounding for models prepared with float simulation
            (``"double"``, TFLite's default, or ``"single"``); integer-simulation models keep theirs.
        use_kernels: run layers whose codes fit on the int8 GEMM ops (default); False keeps every
            layer on the reference route (exact float64 accumulation + ``lowbit.ops.requantize``).
            Both give the same integers.
        strict: raise ConversionError naming every node that reads integer codes but runs in
            float (on dequantized values), instead of converting with those float islands.
            ``converted.float_nodes`` lists them either way.

    Quantizers convert when their forward is affine fake quantization with the grid their
    ``calculate_qparams()`` reports: estimators ``"ste"``, ``"lsq"`` and ``"learnable"``.

    Raises ConversionError naming every layer or node it cannot convert (untraceable forward,
    weight-only or activation-only quantization, per-channel activations, per-group weights, a
    layer called twice, quantizers that never saw data, were never initialised or are switched
    off, estimators off the affine grid (LSQ+, PACT, QIL, DSQ, sigmoid), int32 overflow).
    """
    caller = "lowbit.convert"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{caller}: model must be an nn.Module, got model={type(model).__name__}")
    if getattr(model, "_lowbit_converted", False):
        raise ConversionError(f"{caller}: the model is already converted")
    if getattr(model, "_lowbit_simulation", None) == "integer":
        gm = copy.deepcopy(model)
    else:
        if not any(isinstance(m, _LAYERS) for m in model.modules()):
            raise ConversionError(f"{caller}: {type(model).__name__} has no quantized layers (QuantLinear / "
                                  f"QuantConv2d); call lowbit.prepare_qat and calibrate or train it first")
        if requant_rounding not in I.REQUANT_ROUNDINGS:
            raise ValueError(f"{caller}: requant_rounding must be one of {I.REQUANT_ROUNDINGS}, got "
                             f"requant_rounding={requant_rounding!r}")
        gm = _trace(copy.deepcopy(model), caller)
        _wire(gm, mode="float", activation=None, requant_rounding=requant_rounding, caller=caller)
    if not isinstance(use_kernels, bool):
        raise TypeError(f"{caller}: use_kernels must be a bool, got use_kernels={use_kernels!r}")
    _check_calibrated(gm, caller)
    converted = _lower(gm.eval(), caller, use_kernels)
    if strict and converted.float_nodes:
        graph_nodes = {n.name: n for n in converted.graph.nodes}
        described = [f"{name} ({_describe_node(graph_nodes[name])})" for name in converted.float_nodes]
        raise ConversionError(f"{caller}(strict=True): these nodes read integer codes but run in float on dequantized "
                              f"values: {', '.join(described)}")
    return converted


def _describe_node(node: fx.Node) -> str:
    if node.op == "call_module":
        return f"module {node.target}"
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"{node.op} {target}"


def _lower(gm: fx.GraphModule, caller: str, use_kernels: bool) -> fx.GraphModule:
    modules = dict(gm.named_modules(remove_duplicate=False))
    graph = gm.graph
    new_modules: dict[str, Any] = {}
    grid: dict[fx.Node, Quantizer] = {}  # nodes that carry codes -> their grid
    dequantized: dict[fx.Node, fx.Node] = {}
    float_nodes: list[str] = []

    def dequantize(v: fx.Node, before: fx.Node) -> fx.Node:
        if v not in dequantized:
            name = _fresh_key(new_modules, gm, f"{v.name}_dequantize")
            new_modules[name] = Dequantize.from_quantizer(grid[v])
            with graph.inserting_after(v):
                dequantized[v] = graph.create_node("call_module", name, (v,))
        return dequantized[v]

    for node in list(graph.nodes):
        if node in dequantized.values():
            continue
        m = modules.get(node.target) if node.op == "call_module" else None
        if isinstance(m, _LAYERS):
            cls = IntConv2d if isinstance(m, QuantConv2d) else IntLinear
            new_modules[node.target] = cls.from_simulation(m, use_kernels=use_kernels)
            if m.output_quantizer is not None:
                grid[node] = m.output_quantizer
            continue
        if isinstance(m, QuantAdd):
            new_modules[node.target] = IntAdd.from_simulation(m)
            grid[node] = m.output_quantizer
            continue
        if isinstance(m, QuantAvgPool):
            new_modules[node.target] = IntAvgPool.from_simulation(m)
            grid[node] = m.quantizer
            continue
        if isinstance(m, Quantizer):  # an entry quantizer
            new_modules[node.target] = Quantize.from_quantizer(m)
            grid[node] = m
            continue
        if node.op in ("call_module", "call_function", "call_method") and node.args \
                and isinstance(node.args[0], fx.Node) and node.args[0] in grid:
            kind = _passthrough(node, modules)
            first = node.args[0]
            if kind == "identity":
                node.replace_all_uses_with(first)
                graph.erase_node(node)
                continue
            if kind == "relu":
                name = _fresh_key(new_modules, gm, f"{node.name}_int")
                relu = IntReLU(grid[first].calculate_qparams()[1])
                new_modules[name] = relu
                with graph.inserting_after(node):
                    new = graph.create_node("call_module", name, (first,))
                node.replace_all_uses_with(new)
                graph.erase_node(node)
                grid[new] = grid[first]
                continue
            pool = _int_max_pool(node, m, grid[first]) if kind == "same" else None
            if pool is not None:  # max pooling of 8-bit codes: lowbit's integer kernel
                if node.op == "call_module":
                    new_modules[node.target] = pool
                else:
                    name = _fresh_key(new_modules, gm, f"{node.name}_int")
                    new_modules[name] = pool
                    with graph.inserting_after(node):
                        new = graph.create_node("call_module", name, (first,))
                    node.replace_all_uses_with(new)
                    graph.erase_node(node)
                    node = new
                grid[node] = grid[first]
                continue
            if kind in ("same", "meta"):
                if kind == "same":
                    grid[node] = grid[first]
                    if _lacks_integer_kernel(node, m):
                        _through_float32(graph, node, first, grid[first])
                if m is not None:
                    new_modules[node.target] = copy.deepcopy(m)
                continue
        # A float operation: it reads dequantized values.
        if node.op == "call_module":
            new_modules[node.target] = m
        elif node.op == "get_attr":
            new_modules[node.target] = _get_attr(gm, node.target)
        if node.op not in ("placeholder", "get_attr"):
            reads = [a for a in _tensor_args(node) if a in grid]
            for a in reads:
                node.replace_input_with(a, dequantize(a, node))
            if reads and node.op != "output":
                float_nodes.append(node.name)
    converted = fx.GraphModule(new_modules, graph, class_name=type(gm).__name__.replace("Graph", "") + "Int")
    converted.graph.lint()
    converted._lowbit_converted = True
    converted.float_nodes = float_nodes
    return converted.eval()


# Grid-preserving ops that PyTorch implements for floating-point tensors only: they run on a float32
# copy of the codes (exact for codes of up to 24 bits) and convert back.
_FLOAT_ONLY_MODULES = (nn.MaxPool1d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_FLOAT_ONLY_FUNCTIONS = {F.max_pool1d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d}


_MAX_POOL2D_ARGS = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_MAX_POOL2D_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False}


def _int_max_pool(node: fx.Node, module: Optional[nn.Module], quantizer: Quantizer) -> Optional[IntMaxPool2d]:
    """The ``IntMaxPool2d`` for a 2-D max pooling of 8-bit codes (``lowbit.ops.int8_max_pool2d``), else None.

    Codes wider than 8 bits, ``return_indices`` and arguments computed in the graph keep PyTorch's pooling.
    """
    if code_dtype(quantizer.qmin, quantizer.qmax) not in (torch.uint8, torch.int8):
        return None
    if node.op == "call_module":
        if type(module) is not nn.MaxPool2d or module.return_indices:
            return None
        return IntMaxPool2d.from_float(module)
    if node.op != "call_function" or node.target is not F.max_pool2d:
        return None
    params = dict(_MAX_POOL2D_DEFAULTS)
    params.update(zip(_MAX_POOL2D_ARGS, node.args[1:]))
    params.update({k: v for k, v in node.kwargs.items() if k in _MAX_POOL2D_ARGS})
    if "kernel_size" not in params or params.pop("return_indices") or _nodes_in(list(params.values())):
        return None
    return IntMaxPool2d(**params)


def _lacks_integer_kernel(node: fx.Node, module: Optional[nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(module, _FLOAT_ONLY_MODULES)
    return node.op == "call_function" and node.target in _FLOAT_ONLY_FUNCTIONS


def _through_float32(graph: fx.Graph, node: fx.Node, codes: fx.Node, quantizer: Quantizer) -> None:
    with graph.inserting_before(node):
        as_float = graph.call_method("to", (codes, torch.float32))
    node.replace_input_with(codes, as_float)
    with graph.inserting_after(node):
        back = graph.call_method("to", (node, code_dtype(quantizer.qmin, quantizer.qmax)))
    node.replace_all_uses_with(back, delete_user_cb=lambda user: user is not back)


def _fresh_key(taken: dict, gm: nn.Module, base: str) -> str:
    name, i = base, 1
    while name in taken or hasattr(gm, name):
        name, i = f"{base}_{i}", i + 1
    return name


def _get_attr(root: nn.Module, target: str):
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


# ---- comparison ------------------------------------------------------------------------------------------


@dataclass
class Mismatch:
    """Element-wise comparison of one tensor of a quantized model with its converted counterpart.

    Attributes:
        total: elements compared.
        mismatched: elements that differ (``!=``).
        max_abs_diff: largest absolute difference (in codes for code tensors).
        lsb_histogram: ``{k: count}``: mismatched elements that differ by ``k`` LSBs
            (``round(|diff| / lsb)``; ``k = 0`` means less than half an LSB).
        lsb: what one LSB is.
    """

    total: int
    mismatched: int
    max_abs_diff: float
    lsb_histogram: dict[int, int]
    lsb: str

    @property
    def exact(self) -> bool:
        return self.mismatched == 0

    def __str__(self) -> str:
        items = sorted(self.lsb_histogram.items())
        shown = items if len(items) <= 8 else items[:5]
        hist = ", ".join(f"{k}: {v}" for k, v in shown) or "none"
        if len(items) > len(shown):
            hist += f", ... ({len(items) - len(shown)} more values up to {items[-1][0]}; median {self.median_lsb})"
        return (f"{self.mismatched} of {self.total} differ ({100.0 * self.mismatched / max(1, self.total):.3f}%), "
                f"max |diff| {self.max_abs_diff:.6g}; count by {self.lsb}: {hist}")

    @property
    def median_lsb(self) -> int:
        """The median LSB distance of the mismatched elements (0 when none differ)."""
        seen, half = 0, (self.mismatched + 1) // 2
        for k, v in sorted(self.lsb_histogram.items()):
            seen += v
            if seen >= half:
                return k
        return 0


def _mismatch(expected: torch.Tensor, got: torch.Tensor, lsb: torch.Tensor, what: str) -> Mismatch:
    diff = (expected.double() - got.double()).abs()
    differ = expected != got
    steps = torch.round(diff / lsb.double()).to(torch.int64)
    steps = torch.broadcast_to(steps, differ.shape)[differ]
    values, counts = torch.unique(steps, return_counts=True)
    return Mismatch(total=expected.numel(), mismatched=int(differ.sum()),
                    max_abs_diff=float(diff.max()) if diff.numel() else 0.0,
                    lsb_histogram={int(v): int(c) for v, c in zip(values, counts)}, lsb=what)


@dataclass
class SimulationReport:
    """:func:`compare_simulation`'s answer: the model output and every requantized tensor.

    Attributes:
        output: the models' outputs compared (see :class:`Mismatch`). Its LSB is the output grid's
            step: the scale of a requantized output, or ``S_x·S_w`` (one int32 accumulator unit, per
            channel) of a last layer returning float, or the float32 ulp otherwise.
        layers: for every converted layer / add whose output is requantized, by module name: its
            output codes against the simulation's output for that module mapped onto the same grid
            (``quantize_affine`` with the converted output scale and zero point, after the fused
            activation); one LSB is one code. Here the ±1 LSB of float simulation shows up.
    """

    output: Mismatch
    layers: dict[str, Mismatch]

    @property
    def exact(self) -> bool:
        """True when the outputs and every requantized tensor agree exactly."""
        return self.output.exact and all(m.exact for m in self.layers.values())

    def __str__(self) -> str:
        lines = [f"output: {self.output}"]
        lines += [f"{name}: {m}" for name, m in self.layers.items()]
        return "\n".join(lines)


def _output_lsb(converted: fx.GraphModule) -> tuple[Optional[torch.Tensor], str]:
    modules = dict(converted.named_modules(remove_duplicate=False))
    out = next(n for n in converted.graph.nodes if n.op == "output")
    value = out.args[0]
    if isinstance(value, fx.Node) and value.op == "call_module":
        m = modules[value.target]
        if isinstance(m, Dequantize):
            return m.scale, "LSB (output scale)"
        if isinstance(m, (IntLinear, IntConv2d)) and not m.quantized_output:
            return m.output_lsb(), "LSB (accumulator unit S_x*S_w of the last layer)"
    return None, "float32 ulp"


def compare_simulation(model: nn.Module, converted: nn.Module, *inputs: torch.Tensor,
                       lsb: Optional[torch.Tensor] = None) -> SimulationReport:
    """Compare a quantized model (evaluated in eval mode) with its conversion, output and layer by layer.

    Args:
        model: the model ``converted`` came from (``lowbit.convert(model)``), prepared with float
            or integer simulation. Its training mode is restored afterwards.
        converted: the converted model.
        inputs: the inputs to run both on.
        lsb: optional tensor (broadcasting against the output) to measure output differences in,
            instead of the converted output's own grid step.

    Returns a :class:`SimulationReport`: for integer simulation every count is 0; for float
    simulation it shows how many requantized codes land one (or more) LSB away, and what that does
    to the output.
    """
    if not isinstance(model, nn.Module) or not isinstance(converted, nn.Module):
        raise TypeError(f"compare_simulation: model and converted must be nn.Modules, got "
                        f"{type(model).__name__} and {type(converted).__name__}")
    if not getattr(converted, "_lowbit_converted", False):
        raise TypeError(f"compare_simulation: converted must come from lowbit.convert, got "
                        f"{type(converted).__name__}")
    sim_modules = dict(model.named_modules(remove_duplicate=False))
    pairs = []
    for name, m in converted.named_modules():
        if isinstance(m, IntAdd) or (isinstance(m, (IntLinear, IntConv2d)) and m.quantized_output):
            sim = sim_modules.get(name)
            if isinstance(sim, _LAYERS + (QuantAdd,)):
                pairs.append((name, sim, m))
    captured: dict[tuple[str, str], torch.Tensor] = {}
    handles = []

    def hook(key):
        def fn(module, args, output):
            captured[key] = output.detach()
        return fn

    for name, sim, conv_m in pairs:
        handles.append(sim.register_forward_hook(hook((name, "sim"))))
        handles.append(conv_m.register_forward_hook(hook((name, "int"))))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(*inputs)
            got = converted(*inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if not isinstance(expected, torch.Tensor) or not isinstance(got, torch.Tensor):
        raise TypeError("compare_simulation: both models must return one tensor")
    if expected.shape != got.shape:
        raise ValueError(f"compare_simulation: output shapes differ: model {tuple(expected.shape)} vs converted "
                         f"{tuple(got.shape)}")
    if lsb is None:
        lsb, what = _output_lsb(converted)
        if lsb is None:
            lsb = torch.finfo(torch.float32).eps * got.abs().clamp_min(torch.finfo(torch.float32).tiny)
    else:
        what = "LSB (given)"
    report = SimulationReport(output=_mismatch(expected, got, lsb, what), layers={})
    one = torch.ones(1, dtype=torch.float64)
    for name, sim, conv_m in pairs:
        if (name, "sim") not in captured or (name, "int") not in captured:
            continue
        y = I.apply_float_activation(captured[(name, "sim")].float(), conv_m.fused_activation)
        sim_codes = ops.quantize_affine(y, conv_m.output_scale, conv_m.output_zero_point, conv_m.output_qmin,
                                        conv_m.output_qmax)
        report.layers[name] = _mismatch(sim_codes.to(torch.int32), captured[(name, "int")].to(torch.int32), one,
                                        "codes")
    return report
