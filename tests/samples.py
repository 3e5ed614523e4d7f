"""Shared sample inputs for the affine ops: used by opcheck (test_ops_compile.py), the reference
tests (test_ops_affine.py) and the kernel-path tests (test_isa_paths.py).

Everything is generated from a fixed seed, so a failure names a reproducible case id.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from reference import code_dtype

# (qmin, qmax) of 2-16 bit signed and unsigned ranges, plus the narrow and reduce_range variants.
QRANGES = {
    "s2": (-2, 1), "u2": (0, 3), "s3": (-4, 3), "s4": (-8, 7), "u4": (0, 15), "s8": (-128, 127),
    "u8": (0, 255), "s8narrow": (-127, 127), "u7": (0, 127), "s7": (-64, 63), "s12": (-2048, 2047),
    "s16": (-32768, 32767), "u16": (0, 65535),
}


@dataclasses.dataclass
class AffineCase:
    """One input with its block parameters. ``x`` may be non-contiguous, 0-d or empty."""

    id: str
    x: torch.Tensor
    scale: torch.Tensor
    zero_point: torch.Tensor
    qmin: int
    qmax: int

    def args(self):
        return self.x, self.scale, self.zero_point, self.qmin, self.qmax


def random_params(param_shape, qmin, qmax, gen, *, zero_point="random", pow2=False):
    """Log-uniform scales in [1e-3, 1] (powers of two if ``pow2``) and zero points inside [qmin, qmax].

    Power-of-two scales make ``x * (1/s)`` exact, so ties survive in float16/bfloat16 inputs too.
    """
    if pow2:
        scale = torch.pow(2.0, torch.randint(-10, 1, param_shape, generator=gen).float())
    else:
        scale = torch.exp(torch.empty(param_shape).uniform_(math.log(1e-3), 0.0, generator=gen)).float()
    if zero_point == "random":
        zp = torch.randint(qmin, qmax + 1, param_shape, generator=gen, dtype=torch.int32)
    else:
        zp = torch.full(param_shape, max(qmin, min(qmax, 0)), dtype=torch.int32)
    return scale, zp


def spread_input(shape, scale, zero_point, qmin, qmax, gen):
    """Values spread over the whole clip range of each element's block and a bit beyond both edges."""
    from reference import expand_param

    s = expand_param(scale, shape).float()
    z = expand_param(zero_point, shape).float()
    codes = torch.empty(shape).uniform_(qmin - 3.0, qmax + 3.0, generator=gen)
    return ((codes - z) * s).contiguous()


def adversarial_input(shape, scale, zero_point, qmin, qmax, gen):
    """Float32 values that sit on the decisions of every rounding and STE, per element's own block.

    Kinds (chosen at random per element): exact ties k + 1/2 of x·inv, the clip edges, half a step
    past each edge (the integer-STE boundary), ±1-2 ulp around all of these, integers on the grid,
    zeros of both signs, huge values and ±Inf.
    """
    from reference import expand_param

    s = expand_param(scale, shape).float()
    z = expand_param(zero_point, shape).float()
    n = int(torch.Size(shape).numel())
    kind = torch.randint(0, 9, (n,), generator=gen).reshape(shape)
    k = torch.randint(qmin - 2, qmax + 3, (n,), generator=gen).reshape(shape).float()
    lo_code, hi_code = torch.full(shape, float(qmin)), torch.full(shape, float(qmax))
    code = torch.where(kind == 0, k + 0.5, k)                      # ties
    code = torch.where(kind == 1, lo_code, code)                   # clip edges
    code = torch.where(kind == 2, hi_code, code)
    code = torch.where(kind == 3, lo_code - 0.5, code)             # half a step past the edges
    code = torch.where(kind == 4, hi_code + 0.5, code)
    code = torch.where(kind == 5, k - 0.5, code)
    x = (code - z) * s
    # x·inv lands on the tie only approximately for a general scale; its float neighbours cover both
    # sides. Nudge about a third of the elements by one or two ulps.
    nudge = torch.randint(-2, 3, (n,), generator=gen).reshape(shape)
    nudge = torch.where(torch.rand(shape, generator=gen) < 0.35, nudge, 0)
    for _ in range(2):
        x = torch.where(nudge > 0, torch.nextafter(x, torch.tensor(math.inf)), x)
        x = torch.where(nudge < 0, torch.nextafter(x, torch.tensor(-math.inf)), x)
        nudge = nudge - nudge.sign()
    x = torch.where(kind == 6, torch.where(k > 0, 0.0, -0.0), x)
    x = torch.where(kind == 7, torch.where(k > 0, 3e38, -3e38), x)
    x = torch.where(kind == 8, torch.where(k > 0, math.inf, -math.inf), x)
    return x.contiguous()


def _layouts():
    """(id, x shape, param shape, how to make x non-contiguous or None)."""
    return [
        ("per_tensor_1d", (257,), (1,), None),
        ("per_tensor_0d_scale", (7, 9), (), None),
        ("per_tensor_0d_x", (), (1,), None),
        ("per_tensor_empty", (0, 5), (1,), None),
        ("per_channel_nchw", (2, 6, 5, 7), (1, 6, 1, 1), None),
        ("per_channel_nchw_channels_last", (2, 6, 5, 7), (1, 6, 1, 1), "channels_last"),
        ("per_channel_rows", (12, 33), (12, 1), None),
        ("per_channel_rows_transposed", (12, 33), (12, 1), "transpose"),
        ("per_channel_last_axis", (5, 11, 8), (8,), None),
        ("per_group", (6, 48), (6, 3), None),
        ("per_group_sliced", (6, 48), (6, 4), "slice"),
        ("blocks_2d", (8, 12), (2, 3), None),
        ("blocks_3d", (4, 6, 10), (2, 1, 5), None),
        ("per_channel_empty", (0, 4), (1, 4), None),
    ]


def _make_x(shape, base, how):
    if how is None:
        return base
    if how == "channels_last":
        return base.contiguous(memory_format=torch.channels_last)
    if how == "transpose":
        return base.t().contiguous().t()              # same values, transposed strides
    if how == "slice":
        wide = torch.zeros(shape[0], shape[1] * 2)
        wide[:, ::2] = base
        return wide[:, ::2]                           # stride 2 along the last dim
    raise ValueError(how)


def affine_cases(dtype=torch.float32, qranges=("s8", "u8", "s4", "u16"), seed=0, adversarial=False):
    """Every layout x the given ranges, float32/16/bf16 (params float32 / int32)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for qname in qranges:
        qmin, qmax = QRANGES[qname]
        for i, (lid, shape, pshape, how) in enumerate(_layouts()):
            scale, zp = random_params(pshape, qmin, qmax, gen, pow2=adversarial and i % 2 == 1)
            make = adversarial_input if adversarial else spread_input
            base = make(shape, scale, zp, qmin, qmax, gen)
            x = _make_x(shape, base, how).to(dtype)
            out.append(AffineCase(f"{lid}-{qname}-{str(dtype).split('.')[-1]}", x, scale, zp, qmin, qmax))
    return out


def case_ids(cases):
    return [c.id for c in cases]


# ---- op samples for opcheck ---------------------------------------------------------------------


@dataclasses.dataclass
class OpSample:
    id: str
    op: object                  # an OpOverload
    args: tuple
    kwargs: dict


def op_samples(seed=0) -> list[OpSample]:
    """A few samples of every op, covering granularity, dtypes, roundings, STEs, enable switches,
    stochastic seeds/offsets, the backward op and the in-place observers."""
    L = torch.ops.lowbit
    gen = torch.Generator().manual_seed(seed)
    samples: list[OpSample] = []
    cases = {c.id: c for c in affine_cases(torch.float32, ("s8", "u4"), seed=seed)}
    pick = ["per_tensor_1d-s8-float32", "per_channel_nchw_channels_last-u4-float32", "per_group-s8-float32",
            "per_tensor_0d_x-s8-float32", "blocks_3d-u4-float32"]
    seed_t = torch.tensor([1234], dtype=torch.int64)
    for i, cid in enumerate(pick):
        c = cases[cid]
        dtype = (torch.float32, torch.bfloat16, torch.float16)[i % 3]
        x = c.x.to(dtype).detach().requires_grad_(True)
        rounding = ("half_even", "stochastic", "half_away", "floor", "half_up")[i]
        ste = ("integer", "real", "identity")[i % 3]
        seed = seed_t if rounding == "stochastic" else None
        samples.append(OpSample(f"fake_quantize_affine-{cid}-{rounding}-{ste}", L.fake_quantize_affine.default,
                                (x, c.scale, c.zero_point, c.qmin, c.qmax, rounding, ste, seed, 5 * i), {}))
        g = torch.randn(x.shape, generator=gen).to(dtype)
        samples.append(OpSample(f"fake_quantize_affine_backward-{cid}-{rounding}-{ste}",
                                L.fake_quantize_affine_backward.default,
                                (g, x.detach(), c.scale, c.zero_point, c.qmin, c.qmax, rounding, ste, seed, 5 * i),
                                {}))
        samples.append(OpSample(f"quantize_affine-{cid}-{rounding}", L.quantize_affine.default,
                                (x.detach(), c.scale, c.zero_point, c.qmin, c.qmax, rounding, seed, 3 * i), {}))
        q = torch.randint(c.qmin, c.qmax + 1, x.shape, generator=gen).to(code_dtype(c.qmin, c.qmax))
        if i % 2 == 0:
            samples.append(OpSample(f"dequantize_affine-{cid}", L.dequantize_affine.default,
                                    (q, c.scale, c.zero_point), {"dtype": dtype}))
    c = cases["per_channel_rows-s8-float32"]
    for enabled in (True, False):
        samples.append(OpSample(f"fake_quantize_affine-enabled={enabled}", L.fake_quantize_affine.default,
                                (c.x.detach().requires_grad_(True), c.scale, c.zero_point, c.qmin, c.qmax),
                                {"enabled": torch.tensor(enabled)}))
    samples.append(OpSample("quantize_affine-int16_codes", L.quantize_affine.default,
                            (c.x, c.scale, torch.zeros_like(c.zero_point), -2048, 2047), {}))
    samples.append(OpSample("fake_quantize_affine-empty", L.fake_quantize_affine.default,
                            (torch.empty(0, 33, requires_grad=True), c.scale[:1], c.zero_point[:1], -8, 7), {}))
    samples.append(OpSample("dequantize_affine-int32_codes", L.dequantize_affine.default,
                            (torch.randint(-5000, 5000, (12, 33), dtype=torch.int32), c.scale,
                             torch.zeros_like(c.zero_point)), {}))
    # qparams: elementwise over any shape.
    mn = -torch.rand(3, 4, generator=gen)
    mx = torch.rand(3, 4, generator=gen)
    for method, sym in (("observer", False), ("fbgemm", True)):
        samples.append(OpSample(f"choose_qparams-{method}-sym={sym}", L.choose_qparams.default,
                                (mn, mx, -128, 127, sym, method), {}))
    samples.append(OpSample("choose_qparams-0d-unobserved", L.choose_qparams.default,
                            (torch.tensor(math.inf), torch.tensor(-math.inf), 0, 255), {}))
    # Observers, in place; buffers' shape sets the granularity.
    for cid, fresh in (("per_channel_nchw-s8-float32", True), ("per_group-s8-float32", False),
                       ("per_channel_empty-u4-float32", False)):
        c = cases[cid]
        shape = c.scale.shape if c.scale.dim() else (1,)
        if fresh:
            lo, hi = torch.full(shape, math.inf), torch.full(shape, -math.inf)
        else:
            lo, hi = -torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)
        samples.append(OpSample(f"observe_minmax_-{cid}", L.observe_minmax_.default, (c.x, lo.clone(), hi.clone()),
                                {}))
        samples.append(OpSample(f"observe_moving_average_minmax_-{cid}", L.observe_moving_average_minmax_.default,
                                (c.x.to(torch.bfloat16), lo.clone(), hi.clone(), 0.25), {}))
    samples.append(OpSample("observe_minmax_-disabled", L.observe_minmax_.default,
                            (cases["per_group-s8-float32"].x, torch.zeros(6, 3), torch.zeros(6, 3)),
                            {"enabled": torch.tensor([False])}))
    return samples
