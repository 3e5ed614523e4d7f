"""opcheck on every estimator op (forward and backward ops), and torch.compile(fullgraph=True)
forward + backward with no graph break and no recompile when parameter values change."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.testing

import lowbit  # noqa: F401  (registers the ops)
from lowbit import ops

lib = torch.ops.lowbit


def _p(*values, shape=(1,)):
    return [torch.full(shape, v, requires_grad=True) for v in values]


def _x(shape=(4, 6, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 2).requires_grad_(True)


def _grad(shape=(4, 6, 5)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(1))


SEED = torch.tensor([77], dtype=torch.int64)
LEVELS = torch.tensor([-1.0, 0.0, 1.0])
THRESH = torch.tensor([-0.5, 0.5])
TEMP = torch.tensor([8.0])

FORWARD_CASES = {
    "lsq": (lib.fake_quantize_lsq, lambda: (_x(), *_p(0.2), None, -8, 7, 0.1, "half_even", None, 0)),
    "lsq_plus_stochastic": (lib.fake_quantize_lsq, lambda: (_x(), *_p(0.2, shape=(6, 1)), *_p(0.1, shape=(6, 1)),
                                                            0, 15, 1.0, "stochastic", SEED, 3)),
    "learnable": (lib.fake_quantize_learnable, lambda: (_x(), *_p(0.05), *_p(2.4), 0, 255, 0.5)),
    "learnable_per_channel": (lib.fake_quantize_learnable,
                              lambda: (_x(), *_p(0.05, shape=(4, 1, 1)), *_p(-2.6, shape=(4, 1, 1)), -8, 7, 1.0)),
    "pact": (lib.fake_quantize_pact, lambda: (_x(), *_p(1.5), 4, False, "half_even", None, 0)),
    "pact_signed_stochastic": (lib.fake_quantize_pact, lambda: (_x(), *_p(1.5), 4, True, "stochastic", SEED, 0)),
    "qil": (lib.fake_quantize_qil, lambda: (_x(), *_p(0.8, 0.5, 1.2), 4, True, "half_even", None, 0)),
    "qil_activation": (lib.fake_quantize_qil, lambda: (_x(), *_p(1.0, 0.7), None, 3, False, "half_even", None, 0)),
    "dsq_hard": (lib.fake_quantize_dsq, lambda: (_x(), *_p(-1.0, 1.0, 0.2), 2, "hard", "half_even", None, 0)),
    "dsq_soft": (lib.fake_quantize_dsq, lambda: (_x(), *_p(-1.0, 1.0, 0.2, shape=(6, 1)), 2, "soft", "half_even",
                                                 None, 0)),
    "sigmoid": (lib.fake_quantize_sigmoid, lambda: (_x(), LEVELS, THRESH, *_p(1.0, 1.5), TEMP, False)),
    "sigmoid_hard": (lib.fake_quantize_sigmoid, lambda: (_x(), LEVELS, THRESH, *_p(1.0, 1.5), TEMP, True)),
    "lsq_disabled": (lib.fake_quantize_lsq, lambda: (_x(), *_p(0.2), None, -8, 7, 0.1, "half_even", None, 0,
                                                     torch.tensor([False]))),
    "qil_enabled": (lib.fake_quantize_qil, lambda: (_x(), *_p(0.8, 0.5, 1.2), 4, True, "half_even", None, 0,
                                                    torch.tensor([True]))),
    "sigmoid_disabled": (lib.fake_quantize_sigmoid, lambda: (_x(), LEVELS, THRESH, *_p(1.0, 1.5), TEMP, False,
                                                             torch.tensor([False]))),
}

BACKWARD_OPS = {
    lib.fake_quantize_lsq: lib.fake_quantize_lsq_backward,
    lib.fake_quantize_learnable: lib.fake_quantize_learnable_backward,
    lib.fake_quantize_pact: lib.fake_quantize_pact_backward,
    lib.fake_quantize_qil: lib.fake_quantize_qil_backward,
    lib.fake_quantize_dsq: lib.fake_quantize_dsq_backward,
    lib.fake_quantize_sigmoid: lib.fake_quantize_sigmoid_backward,
}


@pytest.mark.parametrize("name", sorted(FORWARD_CASES))
def test_opcheck_forward(name):
    op, args = FORWARD_CASES[name]
    torch.library.opcheck(op, args())


@pytest.mark.parametrize("name", sorted(FORWARD_CASES))
def test_opcheck_backward_op(name):
    op, args = FORWARD_CASES[name]
    a = [t.detach() if isinstance(t, torch.Tensor) else t for t in args()]
    torch.library.opcheck(BACKWARD_OPS[op], (_grad(), *a))


def _counted(fn):
    counter = torch._dynamo.testing.CompileCounterWithBackend("aot_eager")
    return torch.compile(fn, backend=counter, fullgraph=True), counter


WRAPPER_CASES = {
    "lsq": lambda x, p: ops.fake_quantize_lsq(x, p[0], -8, 7, grad_scale=0.05),
    "lsq+": lambda x, p: ops.fake_quantize_lsq(x, p[0], 0, 15, offset=p[1], grad_scale=0.05),
    "lsq_stochastic": lambda x, p: ops.fake_quantize_lsq(x, p[0], -8, 7, rounding="stochastic"),
    "learnable": lambda x, p: ops.fake_quantize_learnable(x, p[0], p[1], 0, 255, grad_factor=0.1),
    "pact": lambda x, p: ops.fake_quantize_pact(x, p[0], 4),
    "qil": lambda x, p: ops.fake_quantize_qil(x, p[0], p[1], p[2], 4),
    "dsq": lambda x, p: ops.fake_quantize_dsq(x, p[0], p[1], p[2], 3),
    "dsq_soft": lambda x, p: ops.fake_quantize_dsq(x, p[0], p[1], p[2], 3, mode="soft"),
    "sigmoid": lambda x, p: ops.fake_quantize_sigmoid(x, LEVELS, THRESH, p[0], p[1], p[2]),
}
WRAPPER_PARAMS = {
    "lsq": [0.1], "lsq+": [0.1, -0.2], "lsq_stochastic": [0.1], "learnable": [0.02, 100.0], "pact": [2.0],
    "qil": [0.9, 0.6, 1.1], "dsq": [-1.0, 1.5, 0.2], "dsq_soft": [-1.0, 1.5, 0.2], "sigmoid": [1.0, 1.2, 5.0],
}


@pytest.mark.parametrize("name", sorted(WRAPPER_CASES))
def test_compile_fullgraph_forward_backward_no_recompile(name):
    fn = WRAPPER_CASES[name]
    torch._dynamo.reset()  # the nested function's code object is shared by all parametrizations

    def loss_only(x, params):
        return (fn(x, params) ** 2).sum()

    compiled, counter = _counted(loss_only)
    for i, scale in enumerate((1.0, 1.5, 0.7)):
        x = _x((3, 8, 5), seed=i)
        params = [torch.tensor([v * scale if j == 0 else v], requires_grad=True)
                  for j, v in enumerate(WRAPPER_PARAMS[name])]
        eager_params = [p.detach().clone().requires_grad_(True) for p in params]
        xe = x.detach().clone().requires_grad_(True)
        eager = loss_only(xe, eager_params)
        eager.backward()
        got = compiled(x, params)
        got.backward()
        if "stochastic" not in name:  # a fresh seed is drawn per call
            torch.testing.assert_close(got.detach(), eager.detach())
            torch.testing.assert_close(x.grad, xe.grad)
            for p, q in zip(params, eager_params):
                torch.testing.assert_close(p.grad, q.grad)
    assert counter.frame_count == 1, f"recompiled: {counter.frame_count} frames"


def test_compile_inductor_qat_style_step():
    # A small layer with an LSQ weight quantizer and a PACT activation quantizer, compiled with the
    # default backend; no graph break (fullgraph) and a gradient for every learnable parameter.
    torch.manual_seed(0)
    w = torch.randn(16, 32, requires_grad=True)
    ws = torch.tensor([0.05], requires_grad=True)
    alpha = torch.tensor([3.0], requires_grad=True)
    g = ops.lsq_grad_scale(w.numel(), 7)

    def step(x):
        wq = ops.fake_quantize_lsq(w, ws, -8, 7, grad_scale=g)
        h = torch.nn.functional.linear(x, wq).relu()
        hq = ops.fake_quantize_pact(h, alpha, 4)
        return hq.square().mean()

    compiled = torch.compile(step, fullgraph=True)
    x = torch.randn(8, 32)
    loss = compiled(x)
    loss.backward()
    ref = step(x)
    torch.testing.assert_close(loss, ref)
    assert w.grad is not None and ws.grad is not None and alpha.grad is not None


def test_no_graph_break_explain():
    def f(x, s, a):
        return ops.fake_quantize_lsq(x, s, -8, 7) + ops.fake_quantize_dsq(x, -a, a, torch.tensor([0.2]), 2)

    explanation = torch._dynamo.explain(f)(torch.randn(10), torch.tensor([0.1]), torch.tensor([1.0]))
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


def test_enabled_switch_no_recompile():
    torch._dynamo.reset()
    on = torch.tensor([True])
    x = _x()
    s = torch.tensor([0.3], requires_grad=True)

    def f(x, s, on):
        return ops.fake_quantize_lsq(x, s, -8, 7, enabled=on).sum()

    compiled, counter = _counted(f)
    y_on = compiled(x, s, on)
    on.fill_(False)
    y_off = compiled(x, s, on)
    assert counter.frame_count == 1
    assert torch.equal(y_off, x.sum())
    assert not torch.equal(y_on, y_off)
