"""Fake quantization throughput: lowbit vs PyTorch's fake-quant ops vs a plain copy, in one run.

    python benchmarks/bench_fake_quant.py            # 1M and 64M float32 elements, 1 and 2 threads
    python benchmarks/bench_fake_quant.py --quick    # smoke run: small sizes, few repetitions

    # the same with glibc keeping freed large buffers on the heap (no mmap/munmap + page faults
    # per output tensor), the second of the two modes the results are reported in:
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 python benchmarks/bench_fake_quant.py

Compared, for per-tensor and per-channel (axis 1 of NCHW) int8 fake quantization:

* ``clone``  : ``x.clone()`` (forward) or ``x.clone(); dy.clone()`` (forward+backward), the
               memory-bandwidth yardstick: fake quant reads x and writes y like a copy does.
* ``torch``  : ``torch.fake_quantize_per_tensor_affine`` (tensor qparams, what torch.ao's
               FakeQuantize calls) / ``torch.fake_quantize_per_channel_affine``; forward+backward
               goes through torch's autograd (its forward caches a bool mask).
* ``lowbit`` : ``torch.ops.lowbit.fake_quantize_affine``; forward+backward calls the op and then
               its backward op ``fake_quantize_affine_backward`` (which recomputes the mask from x).

Every time is the median of several repetitions after warm-up. Ratios: ``lowbit/clone`` is the
copy's time over lowbit's (1.0 = lowbit streams at copy bandwidth), ``vs torch`` is torch's time
over lowbit's (> 1: lowbit is faster). Numbers from a busy machine are not results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import lowbit
from _machine import cpu_model

L = torch.ops.lowbit
QMIN, QMAX = -128, 127
TUNED_MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def malloc_mode() -> str:
    present = {k: os.environ.get(k) for k in TUNED_MALLOC}
    if all(present[k] == v for k, v in TUNED_MALLOC.items()):
        return "tuned (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736: freed buffers stay on the heap)"
    if any(v is not None for v in present.values()):
        return f"custom ({', '.join(f'{k}={v}' for k, v in present.items() if v is not None)})"
    return "plain (glibc defaults: each large output is a fresh mmap, page-faulted on first write)"


def median_times(fns, reps: int, warmup: int) -> list[float]:
    """Median time of each function. Repetitions are interleaved (a, b, c, a, b, c, ...) so that a
    change in machine load or clock during the run affects every candidate alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def shape_for(numel: int) -> tuple[int, int, int, int]:
    """An NCHW activation of exactly ``numel`` elements with 64 channels (numel a multiple of 2^12)."""
    c, hw = 64, 16
    n = numel // (c * hw * hw)
    assert n * c * hw * hw == numel, f"--sizes must be multiples of {c * hw * hw}"
    return n, c, hw, hw


def make_cases(numel: int):
    gen = torch.Generator().manual_seed(0)
    shape = shape_for(numel)
    x = torch.randn(shape, generator=gen) * 2
    dy = torch.randn(shape, generator=gen)
    C = shape[1]
    pc_scale = torch.rand(C, generator=gen) * 0.02 + 0.01
    pc_zp = torch.randint(-10, 10, (C,), generator=gen, dtype=torch.int32)
    pt_scale, pt_zp = torch.tensor([0.0157]), torch.tensor([3], dtype=torch.int32)
    return x, dy, {
        "per-tensor": dict(lb=(pt_scale, pt_zp), torch=lambda t: torch.fake_quantize_per_tensor_affine(
            t, pt_scale, pt_zp, QMIN, QMAX)),
        "per-channel": dict(lb=(pc_scale.reshape(1, C, 1, 1), pc_zp.reshape(1, C, 1, 1)),
                            torch=lambda t: torch.fake_quantize_per_channel_affine(t, pc_scale, pc_zp, 1, QMIN, QMAX)),
    }


def check_same_result(x, cases):
    """The comparison is only fair if both libraries compute the same thing: they agree bit for bit."""
    xs = x.reshape(-1)[: 1 << 16].reshape(-1, x.shape[1], 1, 1)
    for name, case in cases.items():
        ours = L.fake_quantize_affine(xs, *case["lb"], QMIN, QMAX)
        theirs = case["torch"](xs)
        if not torch.equal(ours, theirs):
            raise SystemExit(f"lowbit and torch disagree on {name}; fix that before timing")


def run(numel: int, threads: int, reps: int, warmup: int):
    torch.set_num_threads(threads)
    x, dy, cases = make_cases(numel)
    check_same_result(x, cases)
    xg = x.detach().clone().requires_grad_(True)
    rows = []

    def torch_fwd_bwd(fn):
        def step():
            xg.grad = None
            fn(xg).backward(dy)
        return step

    def lowbit_fwd_bwd(scale, zp):
        def step():
            L.fake_quantize_affine(x, scale, zp, QMIN, QMAX)
            L.fake_quantize_affine_backward(dy, x, scale, zp, QMIN, QMAX)
        return step

    for name, case in cases.items():
        scale, zp = case["lb"]
        t_clone, t_torch, t_lb = median_times(
            [lambda: x.clone(), lambda: case["torch"](x), lambda: L.fake_quantize_affine(x, scale, zp, QMIN, QMAX)],
            reps, warmup)
        rows.append((numel, threads, "fwd", name, t_clone, t_torch, t_lb))
        t_clone2, t_torch, t_lb = median_times(
            [lambda: (x.clone(), dy.clone()), torch_fwd_bwd(case["torch"]), lowbit_fwd_bwd(scale, zp)], reps, warmup)
        rows.append((numel, threads, "fwd+bwd", name, t_clone2, t_torch, t_lb))
    del x, dy, xg
    return rows


def fmt_size(n: int) -> str:
    return f"{n // (1 << 20)}M" if n >= 1 << 20 else f"{n // 1024}K"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 256K and 1M elements, 3 repetitions")
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated element counts (default 1M,64M)")
    parser.add_argument("--threads", type=str, default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per measurement (default 9)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up runs (default 2)")
    parser.add_argument("--kernel-path", type=str, default=None,
                        help=f"lowbit kernel path to use (supported here: {lowbit.supported_kernel_paths()})")
    args = parser.parse_args()

    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    else:
        sizes = [1 << 18, 1 << 20] if args.quick else [1 << 20, 1 << 26]
    reps = args.reps or (3 if args.quick else 9)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    threads = [int(t) for t in args.threads.split(",")]
    if args.kernel_path:
        lowbit.set_kernel_path(args.kernel_path)

    info = lowbit.build_info()
    print(f"CPU          : {cpu_model()} ({os.cpu_count()} logical CPUs)")
    print(f"lowbit       : {info['version']}, kernel path {info['kernel_path']} "
          f"(supported {info['supported_kernel_paths']}), built with {info['compiler']}")
    print(f"torch        : {torch.__version__}")
    print(f"malloc mode  : {malloc_mode()}")
    print(f"timing       : median of {reps} after {warmup} warm-up; int8 range [{QMIN}, {QMAX}], float32, "
          f"NCHW with 64 channels{'; QUICK smoke run' if args.quick else ''}")
    print()
    header = (f"{'size':>5} {'thr':>3} {'pass':<8} {'granularity':<12} {'clone ms':>9} {'torch ms':>9} "
              f"{'lowbit ms':>9} {'lowbit GB/s':>11} {'lowbit/clone':>12} {'vs torch':>8}")
    print(header)
    print("-" * len(header))
    for numel in sizes:
        for t in threads:
            for n, thr, pas, name, t_clone, t_torch, t_lb in run(numel, t, reps, warmup):
                # Bytes a fused pass must move: fwd reads x, writes y; fwd+bwd also reads dy and x, writes dx.
                bytes_moved = n * 4 * (2 if pas == "fwd" else 5)
                print(f"{fmt_size(n):>5} {thr:>3} {pas:<8} {name:<12} {t_clone * 1e3:>9.3f} {t_torch * 1e3:>9.3f} "
                      f"{t_lb * 1e3:>9.3f} {bytes_moved / t_lb / 1e9:>11.2f} {t_clone / t_lb:>12.2f} "
                      f"{t_torch / t_lb:>7.2f}x", flush=True)
    print()
    print("lowbit/clone: copy time / lowbit time (fwd+bwd: two copies); vs torch: torch time / lowbit time.")


if __name__ == "__main__":
    main()
