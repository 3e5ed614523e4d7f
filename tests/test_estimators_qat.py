"""The estimator quantizer modules inside QuantSpec / prepare_qat: every estimator name builds
QuantLinear / QuantConv2d quantizers, trains under torch.compile(fullgraph=True) with no graph
break and no recompile, round-trips through state dicts, honours the switches, and keeps only
its input for backward."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend

import lowbit
from lowbit import QuantSpec, learnable_quantizers as lq
from lowbit.formats import Int

ESTIMATORS = ["ste", "lsq", "lsq+", "learnable", "pact", "qil", "dsq", "sigmoid"]
CLASSES = {"lsq": lq.LSQQuantizer, "lsq+": lq.LSQPlusQuantizer, "learnable": lq.LearnableFakeQuantize,
           "pact": lq.PACTQuantizer, "qil": lq.QILQuantizer, "dsq": lq.DSQQuantizer, "sigmoid": lq.SigmoidQuantizer,
           "ste": lowbit.quantizers.FakeQuantize}


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def specs(estimator, bits=4):
    weight = QuantSpec(Int(bits), granularity="per_channel", estimator=estimator)
    act = QuantSpec(Int(bits, signed=False), symmetric=False, estimator=estimator)
    return weight, act


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


def prepared(estimator, seed=0):
    torch.manual_seed(seed)
    w, a = specs(estimator)
    return lowbit.prepare_qat(small_cnn(), weight=w, activation=a)


def batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(n)]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_spec_and_prepare_qat_build_the_estimator(estimator):
    model = prepared(estimator)
    quantizers = dict(lowbit.named_quantizers(model))
    assert len(quantizers) == 6  # weight + input quantizer of 3 layers
    assert all(type(q) is CLASSES[estimator] for q in quantizers.values())
    assert isinstance(model[0], lowbit.nn.QuantConv2d) and isinstance(model[6], lowbit.nn.QuantLinear)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_qat_step_compiled_fullgraph_matches_eager(estimator):
    model = prepared(estimator)
    data = batches(4)
    model(data[0][0])  # eager forward: learnable quantizers initialise from it
    twin = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    opt_twin = torch.optim.SGD(twin.parameters(), lr=0.05)
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    for x, y in data[1:]:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()
        opt_twin.zero_grad()
        loss_twin = nn.functional.cross_entropy(twin(x), y)
        loss_twin.backward()
        opt_twin.step()
        torch.testing.assert_close(loss, loss_twin, rtol=1e-5, atol=1e-6)
    assert counter.frame_count == 1, f"{estimator}: {counter.frame_count} compiled frames (recompiled)"
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6, msg=f"{estimator}: {name}")
    learnable = [n for n, p in model.named_parameters() if "quantizer" in n]
    assert (estimator == "ste") == (not learnable)


@pytest.mark.parametrize("estimator", ["lsq", "pact", "sigmoid"])
def test_qat_step_inductor(estimator):
    model = prepared(estimator)
    data = batches(3)
    model(data[0][0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    compiled = torch.compile(model, fullgraph=True)
    for x, y in data[1:]:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()
    assert torch.isfinite(loss)
    explanation = torch._dynamo.explain(model)(data[0][0])
    assert explanation.graph_break_count == 0


def test_initialisation_inside_compile_is_refused_with_a_clear_error():
    model = prepared("lsq")
    with pytest.raises(Exception, match="run one eager forward"):
        torch.compile(model, backend="aot_eager", fullgraph=True)(torch.rand(2, 1, 8, 8))


@pytest.mark.parametrize("estimator", ESTIMATORS[1:])
def test_state_dict_round_trip(estimator):
    model = prepared(estimator)
    x = batches(1)[0][0]
    model(x)
    fresh = prepared(estimator, seed=5)
    fresh.load_state_dict(model.state_dict())
    model.eval()
    fresh.eval()
    assert torch.equal(model(x), fresh(x))
    for (_, q), (_, r) in zip(lowbit.named_quantizers(model), lowbit.named_quantizers(fresh)):
        assert r._initialized and r._grad_scale == q._grad_scale


@pytest.mark.parametrize("estimator", ESTIMATORS[1:])
def test_disable_fake_quant_without_recompiling(estimator):
    model = prepared(estimator)
    x = batches(1)[0][0]
    model(x)
    float_twin = copy.deepcopy(model)
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    quantized = compiled(x)
    lowbit.disable_fake_quant(model)
    passthrough = compiled(x)
    assert counter.frame_count == 1
    # Off, each layer sees float inputs and weights: the float network's output.
    plain = float_twin
    for _, q in lowbit.named_quantizers(plain):
        q.disable_fake_quant()
    torch.testing.assert_close(passthrough, plain(x))
    assert not torch.allclose(quantized, passthrough)


@pytest.mark.parametrize("estimator", ESTIMATORS[1:])
def test_module_saved_bytes_per_element(estimator):
    w, _ = specs(estimator)
    q = lowbit.quantizers.make_quantizer(w, (64, 32, 3, 3))
    x = torch.randn(64, 32, 3, 3, requires_grad=True)
    q(x.detach())  # initialise
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = q(x)
    big = sum(t.numel() * t.element_size() for t in saved if t.numel() >= x.numel())
    # QIL's rescale multiplies by a detached per-channel tensor; that saves nothing full-size.
    assert big / x.numel() == q.saved_bytes_per_element(torch.float32) == 4
    y.sum().backward()


def test_sigmoid_temperature_schedule_and_hard_eval():
    model = prepared("sigmoid")
    x = batches(1)[0][0]
    model(x)
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    outs = []
    for epoch in range(3):
        assert lowbit.set_sigmoid_temperature(model, epoch) == 6
        outs.append(compiled(x))
    assert counter.frame_count == 1
    assert not torch.equal(outs[0], outs[2])
    q = model[0].weight_quantizer
    assert q.temperature.item() == 30.0
    model.eval()
    w = q(model[0].weight)
    # Evaluation uses the hard staircase: weights land exactly on alpha * level.
    codes = (w / q.effective_alpha).detach()
    assert torch.allclose(codes, codes.round(), atol=1e-5)


def test_dsq_modes_and_qil_rescale():
    w, _ = specs("dsq")
    q = lowbit.quantizers.make_quantizer(w, (16, 8))
    x = torch.randn(16, 8)
    hard = q(x)
    q.mode = "soft"
    soft = q(x)
    assert not torch.equal(hard, soft)
    q.eval()
    assert torch.equal(q(x), hard)  # evaluation is always hard
    wq, _ = specs("qil")
    qil = lowbit.quantizers.make_quantizer(wq, (16, 8))
    y = qil(x)
    # Initialised to uniform levels over [-clip, clip]: y = clip * k / 7 with |k| <= 7.
    clip = (qil.c + qil.d).detach()
    k = y / clip * 7
    assert torch.allclose(k, k.round(), atol=1e-4) and k.abs().max() <= 7 + 1e-4
    raw = lq.QILQuantizer(wq, (16, 8), rescale=False)
    assert raw(x).abs().max() <= 1.0


def test_pact_regularizer_over_model():
    # Default: the activation clips only (the paper's L2 term); the weight clips get no gradient.
    model = prepared("pact")
    model(batches(1)[0][0])
    named = dict(lowbit.named_quantizers(model))
    acts = [q.alpha for n, q in named.items() if n.endswith("input_quantizer")]
    weights = [q.alpha for n, q in named.items() if n.endswith("weight_quantizer")]
    assert len(acts) == 3 and len(weights) == 3
    reg = lq.pact_regularizer(model, 1e-3)
    assert reg.item() == pytest.approx(1e-3 * sum(float(a.detach().square().sum()) for a in acts), rel=1e-6)
    reg.backward()
    assert all(a.grad is not None and torch.equal(a.grad, 2e-3 * a.detach()) for a in acts)
    assert all(w.grad is None for w in weights)
    # Opt in: every PACT quantizer.
    everything = lq.pact_regularizer(model, 1e-3, include_weight_quantizers=True)
    expected = 1e-3 * sum(float(a.detach().square().sum()) for a in acts + weights)
    assert everything.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(TypeError, match=r"include_weight_quantizers must be a bool, got include_weight_quantizers=1"):
        lq.pact_regularizer(model, 1e-3, include_weight_quantizers=1)
    # No PACT quantizer: zero.
    assert lq.pact_regularizer(prepared("lsq"), 1e-3).item() == 0.0


@pytest.mark.parametrize("estimator,kwargs,match", [
    ("lsq", dict(rounding="half_away"), "supports rounding in"),
    ("learnable", dict(rounding="stochastic"), "supports rounding in"),
    ("sigmoid", dict(rounding="stochastic"), "supports rounding in"),
    ("pact", dict(ste="real"), "has its own gradient"),
])
def test_bad_specs(estimator, kwargs, match):
    spec = QuantSpec(Int(4), estimator=estimator, **kwargs)
    with pytest.raises(ValueError, match=match):
        lowbit.quantizers.make_quantizer(spec, (4, 4))


def test_per_channel_without_shape_is_an_error():
    spec = QuantSpec(Int(4), granularity="per_channel", estimator="lsq")
    with pytest.raises(ValueError, match="needs shape="):
        lowbit.quantizers.make_quantizer(spec)


def test_stochastic_rounding_in_training_only():
    spec = QuantSpec(Int(3), estimator="lsq", rounding="stochastic")
    q = lowbit.quantizers.make_quantizer(spec, (32, 32))
    x = torch.randn(32, 32)
    q(x)
    a, b = q(x), q(x)
    assert not torch.equal(a, b)  # a fresh seed per training step
    q.eval()
    assert torch.equal(q(x), q(x))
