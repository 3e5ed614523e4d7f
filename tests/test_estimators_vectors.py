"""METHODS.md test vectors for the estimators (§3 PACT, §4.1 LSQ, §5 QIL, §6.1 DSQ, §7 stochastic
rounding); §4.3's learnable vectors are in test_estimators_learnable_parity.py."""

from __future__ import annotations

import math

import pytest
import torch

from lowbit import ops


def grads(fn, x, *params):
    x = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    ps = [torch.tensor([v], dtype=torch.float32, requires_grad=True) for v in params]
    y = fn(x, *ps)
    y.backward(torch.ones_like(y))
    return y.detach(), x.grad, [p.grad for p in ps]


@pytest.mark.parametrize("v,vhat,dv,ds", [(-1.0, -0.8, 0, -4), (-0.33, -0.4, 1, -0.35), (0.05, 0.0, 1, -0.25),
                                          (0.26, 0.2, 1, -0.30), (0.8, 0.6, 0, 3)])
def test_lsq_vectors(v, vhat, dv, ds):
    y, dx, (dscale,) = grads(lambda x, s: ops.fake_quantize_lsq(x, s, -4, 3), [v], 0.2)
    assert y.item() == pytest.approx(vhat, abs=1e-6)
    assert dx.item() == dv
    assert dscale.item() == pytest.approx(ds, abs=1e-6)


def test_lsq_grad_scale_vector():
    assert ops.lsq_grad_scale(1000, 3) == pytest.approx(0.018257418583505537, rel=1e-15)
    # The op multiplies the step-size gradient by it.
    _, _, (plain,) = grads(lambda x, s: ops.fake_quantize_lsq(x, s, -4, 3), [-0.33, 0.8], 0.2)
    _, _, (scaled,) = grads(lambda x, s: ops.fake_quantize_lsq(x, s, -4, 3, grad_scale=0.018257418583505537),
                            [-0.33, 0.8], 0.2)
    assert scaled.item() == pytest.approx(plain.item() * 0.018257418583505537, rel=1e-6)


def test_lsq_plus_offset_gradient():
    # β gets dy where clamped, 0 inside; LSQ+ shares g with the step.
    y, dx, (ds, db) = grads(lambda x, s, b: ops.fake_quantize_lsq(x, s, 0, 3, offset=b, grad_scale=0.5),
                            [-1.0, 0.05, 0.3, 2.0], 0.2, 0.1)
    assert y.tolist() == pytest.approx([0.1, 0.1, 0.3, 0.7], abs=1e-6)
    assert dx.tolist() == [0, 0, 1, 0]
    assert db.item() == pytest.approx(0.5 * 3, abs=1e-6)  # x=-1, 0.05 (v=-0.25 <= 0), 2.0 clamped
    # ds: v=-5.5 -> qmin 0; v=-0.25 -> clamped (v <= qmin) -> 0; v=1 -> r - v = 0; v=9.5 -> qmax 3
    assert ds.item() == pytest.approx(0.5 * 3, abs=1e-6)


@pytest.mark.parametrize("x,yq,dx,da", [(-1, 0, 0, 0), (0.3, 0, 1, 0), (1.1, 1, 1, 0), (2.9, 3, 1, 0),
                                        (3.5, 3, 0, 1)])
def test_pact_vectors(x, yq, dx, da):
    y, gx, (ga,) = grads(lambda x, a: ops.fake_quantize_pact(x, a, 2), [x], 3.0)
    assert y.item() == yq and gx.item() == dx and ga.item() == da


def test_pact_one_bit_levels():
    y = ops.fake_quantize_pact(torch.tensor([-1.0, 0.2, 0.9, 1.2, 5.0]), torch.tensor([2.0]), 1)
    assert y.tolist() == [0.0, 0.0, 0.0, 2.0, 2.0]


@pytest.mark.parametrize("w,t,d3,t_gamma2", [(0.05, 0.0, 0.0, 0.0), (0.35, 0.416667, 0.333333, 0.173611),
                                             (-0.5, -0.666667, -0.666667, -0.444444), (0.9, 1.0, 1.0, 1.0)])
def test_qil_vectors(w, t, d3, t_gamma2):
    c, d = torch.tensor([0.4]), torch.tensor([0.3])
    x = torch.tensor([w])
    # 16 bits: the discretizer is within 1/65534 of the transformer's value.
    assert ops.fake_quantize_qil(x, c, d, None, 16).item() == pytest.approx(t, abs=2e-5)
    assert ops.fake_quantize_qil(x, c, d, None, 3).item() == pytest.approx(d3, abs=1e-6)
    assert ops.fake_quantize_qil(x, c, d, torch.tensor([2.0]), 16).item() == pytest.approx(t_gamma2, abs=2e-5)


def test_qil_vector_near_tie():
    # w = 0.2: u·qD = 0.5 exactly in real arithmetic; float32 lands on 1/3 (METHODS §5).
    assert ops.fake_quantize_qil(torch.tensor([0.2]), torch.tensor([0.4]), torch.tensor([0.3]), None, 16).item() == \
        pytest.approx(0.166667, abs=2e-5)
    assert ops.fake_quantize_qil(torch.tensor([0.2]), torch.tensor([0.4]), torch.tensor([0.3]), torch.tensor([2.0]),
                                 16).item() == pytest.approx(0.027778, abs=2e-5)


def test_qil_activation_gradients():
    # Activations (γ = 1): dx̂/dc = -0.5/d and dx̂/dd = 0.5(c - x)/d² inside.
    y, dx, (dc, dd) = grads(lambda x, c, d: ops.fake_quantize_qil(x, c, d, None, 4, weight=False), [0.5], 0.4, 0.3)
    assert dx.item() == pytest.approx(0.5 / 0.3, rel=1e-6)
    assert dc.item() == pytest.approx(-0.5 / 0.3, rel=1e-6)
    assert dd.item() == pytest.approx(0.5 * (0.4 - 0.5) / 0.09, rel=1e-5)


@pytest.mark.parametrize("x,qs,qh,dq", [(-0.9, -0.935985, -1.0, 0.799533), (-0.4, -0.372557, -1 / 3, 0.689047),
                                        (0.1, 0.132561, 1 / 3, 1.234267), (0.34, 0.336688, 1 / 3, 0.511975),
                                        (0.9, 0.935985, 1.0, 0.799533)])
def test_dsq_vectors(x, qs, qh, dq):
    soft, dx_soft, _ = grads(lambda x, l, u, a: ops.fake_quantize_dsq(x, l, u, a, 2, mode="soft"), [x], -1.0, 1.0,
                             0.2)
    hard, dx_hard, _ = grads(lambda x, l, u, a: ops.fake_quantize_dsq(x, l, u, a, 2), [x], -1.0, 1.0, 0.2)
    assert soft.item() == pytest.approx(qs, abs=2e-6)
    assert hard.item() == pytest.approx(qh, abs=1e-6)
    assert dx_soft.item() == pytest.approx(dq, abs=3e-6)
    assert dx_hard.item() == dx_soft.item()


def test_dsq_edges():
    # x = u falls in the last interval; outside, only the nearer bound gets the gradient.
    y, dx, (dl, du, da) = grads(lambda x, l, u, a: ops.fake_quantize_dsq(x, l, u, a, 2, mode="soft"), [1.0], -1.0,
                                1.0, 0.2)
    assert y.item() == pytest.approx(1.0, abs=1e-6)
    y, dx, (dl, du, da) = grads(lambda x, l, u, a: ops.fake_quantize_dsq(x, l, u, a, 2), [-3.0, 5.0], -1.0, 1.0, 0.2)
    assert y.tolist() == [-1.0, 1.0]
    assert dx.tolist() == [0.0, 0.0] and dl.item() == 1.0 and du.item() == 1.0 and da.item() == 0.0


def test_stochastic_rounding_statistics():
    # METHODS §7: x = 2.3 over 100000 draws: mean ≈ 2.3, P(3) ≈ 0.3 within 3σ.
    n = 100_000
    x = torch.full((n,), 2.3)
    y = ops.fake_quantize_lsq(x, torch.tensor([1.0]), -8, 7, rounding="stochastic", seed=2024)
    p3 = (y == 3).float().mean().item()
    sigma = math.sqrt(0.3 * 0.7 / n)
    assert abs(p3 - 0.3) < 3 * sigma
    assert set(y.unique().tolist()) == {2.0, 3.0}
    assert abs(y.mean().item() - 2.3) < 3 * sigma


@pytest.mark.parametrize("name", ["lsq", "pact", "qil", "dsq"])
def test_stochastic_rounding_reproducible(name):
    x = torch.randn(5000) * 2
    fns = {
        "lsq": lambda **k: ops.fake_quantize_lsq(x, torch.tensor([0.3]), -8, 7, rounding="stochastic", **k),
        "pact": lambda **k: ops.fake_quantize_pact(x, torch.tensor([2.0]), 3, rounding="stochastic", **k),
        "qil": lambda **k: ops.fake_quantize_qil(x, torch.tensor([1.0]), torch.tensor([0.8]), None, 3,
                                                 rounding="stochastic", **k),
        "dsq": lambda **k: ops.fake_quantize_dsq(x, torch.tensor([-2.0]), torch.tensor([2.0]), torch.tensor([0.2]), 3,
                                                 rounding="stochastic", **k),
    }
    fn = fns[name]
    a = fn(seed=5, seed_offset=0)
    assert torch.equal(a, fn(seed=5, seed_offset=0))
    assert not torch.equal(a, fn(seed=6, seed_offset=0))
    # Element i uses draw seed_offset + i: shifting the offset shifts the stream.
    shifted = fns[name](seed=5, seed_offset=1)
    xs = x[1:]
    assert not torch.equal(a, shifted)
    b = {
        "lsq": lambda: ops.fake_quantize_lsq(xs, torch.tensor([0.3]), -8, 7, rounding="stochastic", seed=5,
                                             seed_offset=1),
        "pact": lambda: ops.fake_quantize_pact(xs, torch.tensor([2.0]), 3, rounding="stochastic", seed=5,
                                               seed_offset=1),
        "qil": lambda: ops.fake_quantize_qil(xs, torch.tensor([1.0]), torch.tensor([0.8]), None, 3,
                                             rounding="stochastic", seed=5, seed_offset=1),
        "dsq": lambda: ops.fake_quantize_dsq(xs, torch.tensor([-2.0]), torch.tensor([2.0]), torch.tensor([0.2]), 3,
                                             rounding="stochastic", seed=5, seed_offset=1),
    }[name]()
    assert torch.equal(b, a[1:])


def test_stochastic_lsq_backward_uses_the_forward_draws():
    # ds_i = dy·(r - v) with the same r the forward drew: recover r from the output.
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(3000, generator=g) - 0.5) * 3
    s = torch.tensor([0.25], requires_grad=True)
    xx = x.clone().requires_grad_(True)
    y = ops.fake_quantize_lsq(xx, s, -8, 7, rounding="stochastic", seed=99, seed_offset=17)
    y.backward(torch.ones_like(y))
    v = x.double() / 0.25
    r = y.detach().double() / 0.25
    inside = (v > -8) & (v < 7)
    expected = torch.where(inside, r - v, torch.where(v <= -8, -8.0, 7.0)).sum()
    assert s.grad.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.equal(xx.grad, inside.float())
