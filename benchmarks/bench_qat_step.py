"""Time and peak memory of one QAT training step of a small ResNet-style CNN.

Configurations, each measured in its own subprocess (so peak memory is not polluted by another):

  float        the float model
  lowbit-ste   lowbit.prepare_qat, W8A8, observer-driven fake quantization (estimator "ste")
  lowbit-lsq   lowbit.prepare_qat, W8A8, LSQ quantizers (fused C++ ops)
  composed-lsq the same LSQ math composed of torch ops under autograd (what a user writes
               without lowbit), on the same layers
  torch.ao     torch.ao.quantization eager QAT (prepare_qat with the "x86" default QAT qconfig)

    LOWBIT_DEV_BUILD=build/<name> PYTHONPATH=python python benchmarks/bench_qat_step.py
    ... --batch 64 --threads 2 --steps 20

A step is forward, cross-entropy, backward and an SGD step. Each configuration runs in two
child processes:

* memory run: glibc's MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ fixed at 128 KiB, so large
  tensors are mapped and unmapped and resident memory follows live memory; peak memory = the
  process's peak resident set during the measured steps minus its resident set just before
  them (the activations and temporaries a step needs). Its step time is reported too ("mmap"
  columns): every large tensor is fresh, page-faulted memory there, which charges each extra
  allocation with its page faults.
* time runs (--repeats processes): the default allocator (what a training script gets: glibc
  reuses freed heap, but returns the top of the heap to the OS, so how many pages a step faults
  in varies from process to process by a few percent).

Times are medians over --steps steps after warm-up ("step ms": the median over the time
processes); ratios are against the float step of the same run.
Numbers from a busy machine are indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

from _machine import cpu_model

CONFIGS = ["float", "lowbit-ste", "lowbit-lsq", "composed-lsq", "torch.ao"]


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + (x if self.down is None else self.down(x)))


def resnet_small(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        BasicBlock(32, 32, 1), BasicBlock(32, 64, 2), BasicBlock(64, 128, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))


# ---- composed LSQ: the same estimator from torch ops --------------------------------------------


class ComposedLSQ(nn.Module):
    def __init__(self, scale, qmin, qmax, grad_scale):
        super().__init__()
        self.scale = nn.Parameter(scale.detach().clone())
        self.qmin, self.qmax, self.g = qmin, qmax, grad_scale

    def forward(self, x):
        s = self.scale * self.g + (self.scale - self.scale * self.g).detach()
        v = torch.clamp(x / s, self.qmin, self.qmax)
        return (v + (torch.round(v) - v).detach()) * s


def compose_lsq(model):
    """Replace every lowbit LSQ quantizer by ComposedLSQ with the same (initialised) parameters."""
    import lowbit

    for name, q in list(lowbit.named_quantizers(model)):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, ComposedLSQ(q.scale, q.qmin, q.qmax, q._grad_scale))
    return model


def build(config, batch):
    torch.manual_seed(0)
    model = resnet_small().train()
    x = torch.randn(batch, 3, 32, 32)
    if config.startswith("lowbit") or config == "composed-lsq":
        import lowbit
        from lowbit import QuantSpec
        from lowbit.formats import Int

        estimator = "ste" if config == "lowbit-ste" else "lsq"
        extra = {"observer": "ema"} if estimator == "ste" else {}
        weight = QuantSpec(Int(8, narrow_range=True), granularity="per_channel", estimator=estimator)
        act = QuantSpec(Int(8, signed=False), symmetric=False, estimator=estimator, **extra)
        lowbit.prepare_qat(model, weight=weight, activation=act)
        with torch.no_grad():
            model(x)  # learnable quantizers initialise from a batch
        if config == "composed-lsq":
            compose_lsq(model)
    elif config == "torch.ao":
        import torch.ao.quantization as tq

        model.qconfig = tq.get_default_qat_qconfig("x86")
        tq.prepare_qat(model, inplace=True)
    return model, x


def run_one(config, batch, steps, threads):
    torch.set_num_threads(threads)
    model, x = build(config, batch)
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up: allocator caches, optimizer state, observer first batch
        step()
    with open("/proc/self/statm") as f:
        rss_before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # ru_maxrss is a lifetime maximum; the warm-up steps peak exactly like the measured ones.
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"config": config, "ms": statistics.median(times) * 1e3, "peak_mb": max(0, peak - rss_before) / 2**20,
            "rss_mb": rss_before / 2**20}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    parser.add_argument("--repeats", type=int, default=3, help="time-run processes per configuration")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.batch, args.steps, args.threads)))
        return
    print(f"ResNet-style CNN (3 stages, 32-128 channels), input {args.batch}x3x32x32, {args.threads} threads, "
          f"torch {torch.__version__}, CPU {cpu_model()}")
    rows = []
    tight = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    for config in args.configs:
        runs = {}
        kinds = [(f"time{i}", dict(os.environ)) for i in range(args.repeats)] + [("memory", tight)]
        for kind, env in kinds:
            out = subprocess.run([sys.executable, __file__, "--child", config, "--batch", str(args.batch), "--steps",
                                  str(args.steps), "--threads", str(args.threads)], capture_output=True, text=True,
                                 env=env)
            if out.returncode != 0:
                print(f"{config} ({kind} run): failed\n{out.stderr[-2000:]}")
                break
            runs[kind] = json.loads(out.stdout.strip().splitlines()[-1])
        else:
            times = sorted(r["ms"] for k, r in runs.items() if k.startswith("time"))
            rows.append({"config": config, "ms": times[len(times) // 2], "ms_mmap": runs["memory"]["ms"],
                         "peak_mb": runs["memory"]["peak_mb"]})
    base = next((r for r in rows if r["config"] == "float"), None)

    def ratio(r, key):
        return r[key] / base[key] if base and base[key] > 0 else float("nan")

    header = ["step ms", "vs float", "mmap ms", "vs float", "peak MB", "vs float"]
    print("\n" + f"{'config':<14}" + "".join(f"{h:>10}" for h in header))
    for r in rows:
        cells = [r["ms"], ratio(r, "ms"), r["ms_mmap"], ratio(r, "ms_mmap"), r["peak_mb"], ratio(r, "peak_mb")]
        print(f"{r['config']:<14}" + "".join(f"{c:>10.2f}" if i % 2 else f"{c:>10.1f}" for i, c in enumerate(cells)))
    print(f"\nstep ms: default allocator, median of {args.repeats} processes; mmap ms: the memory run's allocator (every large tensor page-faulted anew)")
    print("peak MB: peak resident set during the measured steps minus the resident set before them (memory run)")


if __name__ == "__main__":
    main()
