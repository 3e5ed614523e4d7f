"""QuantLinear / QuantConv2d do not keep their fake-quantized input for backward: they recompute
it (lowbit._recompute). The recomputation must be invisible: outputs and every gradient equal
(torch.equal) to saving the copy, for every estimator, stochastic rounding included; the copy is
really freed; in-place changes are caught; and the hook stays out of the way of user hooks."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

import lowbit
from lowbit import QuantSpec
from lowbit.formats import Int
from lowbit.nn import QuantConv2d, QuantLinear

ESTIMATORS = ["ste", "lsq", "lsq+", "learnable", "pact", "qil", "dsq", "sigmoid"]


class Net(nn.Module):
    """Conv -> ReLU -> conv (reflect padding: its saved input is a padded copy) -> a Linear on a
    3-D input (its saved input is a view of the quantized tensor) -> residual add."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, padding_mode="reflect", bias=False)
        self.conv3 = nn.Conv2d(6, 4, 1, stride=2)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h)) + h
        h = self.conv3(h)                      # [N, 4, 4, 4]
        return self.fc(h.flatten(2).transpose(1, 2))  # [N, 16, 5]


def prepared(estimator, rounding="half_even", seed=0):
    torch.manual_seed(seed)
    weight = QuantSpec(Int(4), granularity="per_channel", estimator=estimator, rounding=rounding)
    act = QuantSpec(Int(4, signed=False), symmetric=False, estimator=estimator, rounding=rounding)
    return lowbit.prepare_qat(Net(), weight=weight, activation=act)


def layers(model):
    return [m for m in model.modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def run(model, x, recompute, seed=5):
    for layer in layers(model):
        layer.recompute_input = recompute
    model.zero_grad(set_to_none=True)
    xin = x.clone().requires_grad_(True)
    torch.manual_seed(seed)  # stochastic rounding draws its seeds from torch's generator
    y = model(xin)
    torch.manual_seed(seed + 1)  # recomputation must not depend on the generator's state now
    y.backward(torch.linspace(-1, 1, y.numel()).reshape(y.shape))
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return y.detach(), xin.grad, grads


# "learnable" and "sigmoid" do not round stochastically (their specs reject it).
@pytest.mark.parametrize("estimator,rounding", [(e, "half_even") for e in ESTIMATORS] +
                         [(e, "stochastic") for e in ESTIMATORS if e not in ("learnable", "sigmoid")])
def test_recomputation_is_bit_exact(estimator, rounding):
    model = prepared(estimator, rounding)
    x = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        model(x)  # initialise learnable parameters / observers from one batch
    model.train()
    # Observers move on every training forward: give both runs the same starting state.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    y1, dx1, g1 = run(model, x, recompute=True)
    model.load_state_dict(state)
    y0, dx0, g0 = run(model, x, recompute=False)
    assert torch.equal(y1, y0)
    assert torch.equal(dx1, dx0)
    assert g1.keys() == g0.keys() and len(g1) >= 7  # 7 layer parameters (+ quantizer ones)
    for name in g0:
        assert torch.equal(g1[name], g0[name]), name


def _quantized_input_refs(model):
    refs = []

    def keep(module, args, output):
        refs.append(weakref.ref(output))

    handles = [layer.input_quantizer.register_forward_hook(keep) for layer in layers(model)]
    return refs, handles


@pytest.mark.parametrize("estimator", ["ste", "lsq"])
def test_quantized_input_is_freed_after_forward(estimator):
    model = prepared(estimator)
    x = torch.randn(3, 2, 8, 8)
    model(x)
    # Saving instead of recomputing keeps every copy: conv1, conv2 (reflect padding saves its
    # input), conv3, fc (the linear saves a view of it).
    for recompute, kept in ((True, False), (False, True)):
        for layer in layers(model):
            layer.recompute_input = recompute
        refs, handles = _quantized_input_refs(model)
        y = model(x)
        gc.collect()
        assert [r() is not None for r in refs] == [kept] * len(refs), f"recompute_input={recompute}"
        y.sum().backward()
        for handle in handles:
            handle.remove()


def test_in_place_change_of_the_input_is_an_error():
    torch.manual_seed(0)
    layer = QuantLinear.from_float(nn.Linear(4, 3), weight_spec=QuantSpec(Int(8)),
                                   activation_spec=QuantSpec(Int(8), estimator="lsq"))
    x = torch.randn(5, 4)
    layer(x)
    y = layer(x)
    x.mul_(2)
    with pytest.raises(RuntimeError, match="modified"):
        y.sum().backward()


def test_outer_saved_tensor_hooks_take_precedence():
    model = prepared("ste")
    x = torch.randn(3, 2, 8, 8)
    model(x)
    refs, _ = _quantized_input_refs(model)
    seen = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(1) or t, lambda t: t):
        y = model(x)
    gc.collect()
    assert [r() is not None for r in refs] == [True] * len(refs)  # saved as usual
    assert seen
    y.sum().backward()


def test_a_forward_hook_that_replaces_the_output_disables_recomputation():
    torch.manual_seed(0)
    layer = QuantLinear.from_float(nn.Linear(4, 3), weight_spec=QuantSpec(Int(8)), activation_spec=QuantSpec(Int(8)))
    layer.input_quantizer.register_forward_hook(lambda m, a, out: out * 0.5)
    x = torch.randn(5, 4)
    grads = []
    for recompute in (True, False):
        layer.recompute_input = recompute
        layer.weight.grad = None
        layer(x).pow(2).sum().backward()
        grads.append(layer.weight.grad.clone())
    assert torch.equal(grads[0], grads[1])


def test_no_recipe_without_grad_mode():
    model = prepared("lsq")
    x = torch.randn(3, 2, 8, 8)
    model(x)
    refs, _ = _quantized_input_refs(model)
    with torch.no_grad():
        model(x)
    assert all(q._recompute_wanted is False for _, q in lowbit.named_quantizers(model))
    assert all("_recompute_offer" not in q.__dict__ for _, q in lowbit.named_quantizers(model))


def test_a_hand_made_input_quantizer_module_still_works():
    """A plain nn.Module swapped in as input_quantizer (no recompute offer) is called and saved as usual."""

    class Half(nn.Module):
        def forward(self, x):
            return x * 0.5

    torch.manual_seed(0)
    layer = QuantConv2d.from_float(nn.Conv2d(2, 3, 3), weight_spec=QuantSpec(Int(8)), activation_spec=QuantSpec(Int(8)))
    layer.input_quantizer = Half()
    x = torch.randn(2, 2, 5, 5, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    expected = nn.functional.conv2d(x.detach() * 0.5, layer.weight_quantizer(layer.weight.detach()), layer.bias.detach())
    assert torch.allclose(y.detach(), expected)
    assert x.grad is not None


def test_recomputations_in_one_backward_pass_share_a_workspace_that_is_freed_after():
    """Inside a backward pass, a recomputation reuses the previous one's memory once that copy is
    gone, never while someone still holds it; the workspace is freed when the pass ends."""
    from lowbit._recompute import Recompute

    native = lowbit._C
    x = torch.randn(64, 300)
    scale = torch.tensor([0.05])
    recompute = Recompute(lambda: torch.ops.lowbit.fake_quantize_lsq(x, scale, None, 0, 255, 1.0), [x, scale])
    seen = {}

    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.clone()

        @staticmethod
        def backward(ctx, g):
            first = recompute()
            kept = recompute()  # `first` is alive: must get other memory
            seen["distinct"] = first.data_ptr() != kept.data_ptr()
            seen["equal"] = torch.equal(first, kept)
            pointer = kept.data_ptr()
            del first, kept
            again = recompute()  # both gone: the workspace is reused
            seen["reused"] = again.data_ptr() == pointer
            seen["bytes_during"] = native._recompute_workspace_bytes()
            return g

    assert native._recompute_workspace_bytes() == 0
    Probe.apply(torch.randn(3, requires_grad=True)).sum().backward()
    assert seen == {"distinct": True, "equal": True, "reused": True, "bytes_during": x.numel() * 4}
    assert native._recompute_workspace_bytes() == 0
    # Outside a backward pass a recomputation is a fresh tensor and leaves no workspace.
    outside = recompute()
    assert torch.equal(outside, torch.ops.lowbit.fake_quantize_lsq(x, scale, None, 0, 255, 1.0))
    assert native._recompute_workspace_bytes() == 0


def test_a_qat_model_recomputes_every_layer_input_into_one_buffer():
    """Layers of one size: only the first recomputation allocates a full-size tensor."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(4) for m in (nn.Linear(256, 256), nn.ReLU())])
    lowbit.prepare_qat(model, weight=QuantSpec(Int(8), granularity="per_channel", estimator="lsq"),
                       activation=QuantSpec(Int(8, signed=False), symmetric=False, estimator="lsq"))
    x = torch.randn(512, 256)
    with torch.no_grad():
        model(x)
    y = model(x)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        y.sum().backward()
    full = 512 * 256 * 4

    def allocated(event):  # bytes the op and the ops it called allocated
        return max(event.self_cpu_memory_usage, 0) + sum(allocated(c) for c in event.cpu_children)

    calls = [e for e in prof.events() if e.name == "lowbit::fake_quantize_lsq"]
    big = [allocated(e) for e in calls if allocated(e) >= full]
    assert len(calls) >= 4  # every layer's input recomputed
    assert len(big) == 1, big  # the first recomputation allocates the workspace, the others reuse it
    assert lowbit._C._recompute_workspace_bytes() == 0
