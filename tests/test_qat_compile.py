"""QAT under torch.compile(fullgraph=True) and torch.export: no graph break, no recompile."""

import copy

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

import lowbit
from lowbit import QuantSpec
from lowbit.formats import Int

WEIGHT = QuantSpec(Int(8, narrow_range=True), granularity="per_channel")
ACT = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema")


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


def _prepared(seed=0, **kwargs):
    torch.manual_seed(seed)
    return lowbit.prepare_qat(small_cnn(), weight=kwargs.get("weight", WEIGHT),
                              activation=kwargs.get("activation", ACT))


def _batches(n, batch=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch, 1, 8, 8, generator=g), torch.randint(0, 10, (batch,), generator=g))
            for _ in range(n)]


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("act", [ACT, QuantSpec(Int(8), granularity="per_channel", symmetric=True)],
                         ids=["per_tensor_ema", "per_channel_minmax"])
def test_training_loop_compiles_once_and_toggles_do_not_recompile(act):
    model = _prepared(activation=act).train()
    eager = copy.deepcopy(model)
    backend = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_eager = torch.optim.SGD(eager.parameters(), lr=0.1, momentum=0.9)

    for step, (x, t) in enumerate(_batches(10)):
        # Mid-training switches: freeze observers, then fake quant off and back on.
        if step == 4:
            lowbit.disable_observer(model), lowbit.disable_observer(eager)
        if step == 6:
            lowbit.disable_fake_quant(model), lowbit.disable_fake_quant(eager)
        if step == 8:
            lowbit.enable_fake_quant(model), lowbit.enable_fake_quant(eager)
        for net, forward, optimizer in ((model, compiled, opt), (eager, eager, opt_eager)):
            loss = nn.functional.cross_entropy(forward(x), t)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if net is model:
                compiled_loss = loss.detach()
            else:
                torch.testing.assert_close(compiled_loss, loss.detach(), rtol=1e-5, atol=1e-6)
        if step == 5:
            frozen = {n: q.min_val.clone() for n, q in lowbit.named_quantizers(model)}

    # torch 2.13 keeps no counters["recompiles"]: a recompile shows as a second compiled frame.
    assert backend.frame_count == 1, f"compiled {backend.frame_count} times"
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"], dict(counters["graph_break"])
    # The compiled graph really honoured the switches: observers froze after step 4 ...
    for name, quantizer in lowbit.named_quantizers(model):
        assert torch.equal(quantizer.min_val, frozen[name]), name
    # ... and the compiled model tracked the eager one throughout.
    for (name, a), (_, b) in zip(model.state_dict().items(), eager.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)

    # The counter does see recompiles: eval mode is a different graph (observers off), compiled
    # once; going back to training reuses the first graph.
    x, _ = _batches(1, seed=5)[0]
    model.eval()
    assert torch.equal(compiled(x), model(x))
    assert backend.frame_count == 2
    model.train()
    compiled(x)
    assert backend.frame_count == 2


def test_observer_and_fake_quant_ops_are_in_the_graph():
    model = _prepared().train()
    explanation = torch._dynamo.explain(model)(torch.randn(4, 1, 8, 8))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
    code = explanation.graphs[0].code
    assert code.count("lowbit.observe_moving_average_minmax_") == 3  # three activation quantizers (EMA)
    assert code.count("lowbit.observe_minmax_") == 3  # three weight quantizers
    assert code.count("lowbit.fake_quantize_affine") == 6


def _calibrated(seed=0):
    model = _prepared(seed).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for x, t in _batches(3, seed=seed + 7):
        loss = nn.functional.cross_entropy(model(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_export_in_eval_mode_equals_eager():
    model = _calibrated()
    x = torch.randn(5, 1, 8, 8)
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    program = torch.export.export(model, (x,))
    code = program.graph_module.code
    assert "lowbit.fake_quantize_affine" in code and "lowbit.observe" not in code  # eval: pure function
    assert not program.graph_signature.buffers_to_mutate
    expected = model(x)
    assert torch.equal(program.module()(x), expected)
    x2 = torch.randn(5, 1, 8, 8) * 3
    assert torch.equal(program.module()(x2), model(x2))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state_before[k]), k


def test_eval_forward_under_inductor_equals_eager():
    model = _calibrated(seed=3)
    backend = CompileCounterWithBackend("inductor")
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    for x, _ in _batches(3, seed=11):
        assert torch.equal(compiled(x), model(x))
    assert backend.frame_count == 1
    assert not counters["graph_break"]
