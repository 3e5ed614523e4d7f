"""Forward + backward time of lowbit's fused estimator ops vs the same math composed of torch ops
under autograd, and of lowbit.ops.fake_quantize_learnable vs PyTorch's learnable op, measured
side by side in one run.

    LOWBIT_DEV_BUILD=build/<name> PYTHONPATH=python python benchmarks/bench_estimators.py
    ... --sizes 1M 16M --threads 1 2 --repeat 5

Each timing is the median of --repeat runs of: y = op(x, params); y.backward(dy) with fresh
parameter gradients (dy preallocated, so no op pays for materialising an expanded gradient).
Ratios > 1 mean lowbit is faster. The machine, kernel path and thread counts are printed with
the table; numbers from a busy machine are indicative only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lowbit
from lowbit import ops

from _machine import cpu_model


def round_ste(v):
    return v + (torch.round(v) - v).detach()


# ---- the same estimators, composed of torch ops (what a user writes without lowbit) -------------


def composed_lsq(x, s, qmin, qmax, g):
    s = s * g + (s - s * g).detach()
    v = torch.clamp(x / s, qmin, qmax)
    return round_ste(v) * s


def composed_lsq_plus(x, s, b, qmin, qmax, g):
    s = s * g + (s - s * g).detach()
    b = b * g + (b - b * g).detach()
    v = torch.clamp((x - b) / s, qmin, qmax)
    return round_ste(v) * s + b


def composed_pact(x, alpha, bits):
    levels = 2**bits - 1
    y = 0.5 * (x.abs() - (x - alpha).abs() + alpha)
    step = alpha.detach() / levels
    return round_ste(y / step) * step


def composed_qil(x, c, d, gamma, bits):
    qd = 2 ** (bits - 1) - 1
    a = x.abs()
    sign = torch.sign(x)
    alpha = 0.5 / d
    beta = -0.5 * c / d + 0.5
    u = (alpha * a + beta).clamp(1e-6, 1.0)
    t = torch.where(a < c - d, torch.zeros_like(a), torch.where(a > c + d, torch.ones_like(a), u**gamma))
    return sign * round_ste(t * qd) / qd


def composed_dsq(x, lower, upper, alpha, bits):
    levels = 2**bits - 1
    delta = (upper - lower) / levels
    i = torch.clamp(torch.floor((x - lower) / delta), 0, levels - 1).detach()
    m = lower + (i + 0.5) * delta
    s = 1.0 / (1.0 - alpha)
    k = torch.log(2.0 / alpha - 1.0) / delta
    phi = s * torch.tanh(k * (x - m))
    qs = lower + delta * (i + (phi + 1.0) / 2.0)
    qs = torch.where(x < lower, lower, torch.where(x > upper, upper, qs))
    hard = lower + delta * torch.clamp(torch.round((x - lower) / delta), 0, levels)
    return qs + (hard - qs).detach()


def composed_sigmoid(x, levels, thresholds, alpha, beta, temperature):
    steps = levels[1:] - levels[:-1]
    bx = beta * x
    y = levels[0] + torch.zeros_like(x)
    for i in range(steps.numel()):
        y = y + steps[i] * torch.sigmoid(temperature * (bx - thresholds[i]))
    return alpha * y


# ---- cases: (lowbit fn, reference fn, parameter factory) -----------------------------------------

LEVELS = ops.sigmoid_levels(2)
THRESH = ops.sigmoid_thresholds(LEVELS)
TEMP = torch.tensor([10.0])


def p(*values):
    return [torch.tensor([v], requires_grad=True) for v in values]


CASES = {
    "lsq (W4)": (lambda x, q: ops.fake_quantize_lsq(x, q[0], -8, 7, grad_scale=1e-3),
                 lambda x, q: composed_lsq(x, q[0], -8, 7, 1e-3), lambda: p(0.05), "composed"),
    "lsq+ (A4)": (lambda x, q: ops.fake_quantize_lsq(x, q[0], 0, 15, offset=q[1], grad_scale=1e-3),
                  lambda x, q: composed_lsq_plus(x, q[0], q[1], 0, 15, 1e-3), lambda: p(0.1, -0.3), "composed"),
    "pact (A4)": (lambda x, q: ops.fake_quantize_pact(x, q[0], 4), lambda x, q: composed_pact(x, q[0], 4),
                  lambda: p(2.0), "composed"),
    "qil (W4)": (lambda x, q: ops.fake_quantize_qil(x, q[0], q[1], q[2], 4),
                 lambda x, q: composed_qil(x, q[0], q[1], q[2], 4), lambda: p(0.9, 0.6, 1.1), "composed"),
    "dsq (W2)": (lambda x, q: ops.fake_quantize_dsq(x, q[0], q[1], q[2], 2),
                 lambda x, q: composed_dsq(x, q[0], q[1], q[2], 2), lambda: p(-1.5, 1.5, 0.2), "composed"),
    "sigmoid (ternary)": (lambda x, q: ops.fake_quantize_sigmoid(x, LEVELS, THRESH, q[0], q[1], TEMP),
                          lambda x, q: composed_sigmoid(x, LEVELS, THRESH, q[0], q[1], TEMP),
                          lambda: p(1.0, 1.2), "composed"),
    "learnable (A8)": (lambda x, q: ops.fake_quantize_learnable(x, q[0], q[1], 0, 255, grad_factor=1e-3),
                       lambda x, q: torch._fake_quantize_learnable_per_tensor_affine(x, q[0], q[1], 0, 255, 1e-3),
                       lambda: p(0.02, 128.0), "torch._fake_quantize_learnable"),
}


def time_pair(fns, x, dy, make_params, repeat):
    """Median forward+backward time of each fn, the runs interleaved so that load from other
    processes affects every contender alike."""
    params = [make_params() for _ in fns]
    times = [[] for _ in fns]
    for i in range(repeat + 1):
        for k, fn in enumerate(fns):
            for q in params[k]:
                q.grad = None
            x.grad = None
            t0 = time.perf_counter()
            y = fn(x, params[k])
            y.backward(dy)
            t1 = time.perf_counter()
            del y
            if i > 0:  # the first round warms caches and allocators
                times[k].append(t1 - t0)
    return [statistics.median(t) for t in times]


def parse_size(text: str) -> int:
    text = text.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20}.get(text[-1], 1)
    return int(text[:-1]) * mult if text[-1] in "KM" else int(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["1M", "16M"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cases", nargs="*", default=sorted(CASES))
    args = parser.parse_args()

    info = lowbit.build_info()
    print(f"lowbit {info['version']} | torch {torch.__version__} | {cpu_model()} | "
          f"kernel path {info['kernel_path']} (supported {info['supported_kernel_paths']}) | "
          f"ATen CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("forward+backward, median of", args.repeat, "runs; ratio = reference time / lowbit time\n")
    header = f"{'estimator':<20}{'elements':>10}{'threads':>8}{'lowbit ms':>12}{'reference ms':>14}{'ratio':>8}  reference"
    print(header)
    print("-" * len(header))
    saved_threads = torch.get_num_threads()
    try:
        for name in args.cases:
            ours, theirs, make_params, ref_name = CASES[name]
            for size_text in args.sizes:
                n = parse_size(size_text)
                g = torch.Generator().manual_seed(0)
                x = (torch.randn(n, generator=g) * 1.5).requires_grad_(True)
                dy = torch.randn(n, generator=g)
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    t_ours, t_ref = time_pair([ours, theirs], x, dy, make_params, args.repeat)
                    print(f"{name:<20}{size_text:>10}{threads:>8}{t_ours * 1e3:>12.2f}{t_ref * 1e3:>14.2f}"
                          f"{t_ref / t_ours:>8.2f}  {ref_name}", flush=True)
    finally:
        torch.set_num_threads(saved_threads)


if __name__ == "__main__":
    main()
