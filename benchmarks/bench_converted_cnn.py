"""A ResNet-style CNN written the usual way, end to end: float32 against its converted int8 model.

    LOWBIT_DEV_BUILD=build/<name> PYTHONPATH=python python benchmarks/bench_converted_cnn.py \
        [--threads 1 2] [--batch 32] [--budget 2] [--markdown benchmarks/RESULTS.md]

The model: a 3x3 stride-2 stem (3 -> 32 channels) and three basic blocks (Conv-BN-ReLU,
Conv-BN, ``out += identity``, ReLU), global average pooling and a Linear head, on 64x64 RGB
images. It goes through ``prepare_qat(simulation="integer")`` (which folds the BatchNorms into the
convolutions), calibration on random batches and ``lowbit.convert``; the table gives the float32
model's time (oneDNN convolutions) and the converted model's (``int8_conv2d``, ``int8_add``,
integer average pooling), each the best of interleaved rounds, and checks that the converted
model equals its integer simulation. ``--no-fold`` keeps the BatchNorms as float layers, the
route taken before folding existed.

Random weights and statistics: the speed does not depend on them.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _machine  # noqa: E402
from bench_int8_gemm import best_time  # noqa: E402

import lowbit  # noqa: E402
from lowbit import QuantSpec  # noqa: E402
from lowbit.formats import Int  # noqa: E402


class BasicBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class SmallResNet(nn.Module):
    def __init__(self, width: int = 32, blocks: int = 3, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*[BasicBlock(width) for _ in range(blocks)])
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def randomize_statistics(model: nn.Module, gen: torch.Generator) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model


def build(batch: int, fold: bool):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    float_model = randomize_statistics(SmallResNet(), gen).eval()
    qat = SmallResNet()
    qat.load_state_dict(float_model.state_dict())
    weight = QuantSpec(Int(8, narrow_range=True), granularity="per_channel")
    activation = QuantSpec(Int(8, signed=False), symmetric=False, observer="ema")
    qat = lowbit.prepare_qat(qat, weight=weight, activation=activation, simulation="integer", fold_batchnorm=fold)
    qat.train()
    with torch.no_grad():
        for _ in range(4):
            qat(torch.randn(batch, 3, 64, 64, generator=gen))
    lowbit.disable_observer(qat)
    qat.eval()
    converted = lowbit.convert(qat)
    x = torch.randn(batch, 3, 64, 64, generator=gen)
    with torch.no_grad():
        exact = torch.equal(converted(x), qat(x))
    return float_model, converted, x, exact


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing per thread count")
    parser.add_argument("--no-fold", action="store_true", help="keep the BatchNorms as float layers")
    parser.add_argument("--markdown", help="append the table to this markdown file")
    args = parser.parse_args(argv)

    float_model, converted, x, exact = build(args.batch, fold=not args.no_fold)
    lines = [f"    CPU: {_machine.cpu_model()}; torch {torch.__version__}; lowbit kernel path {lowbit.kernel_path()}",
             f"    model: stem + 3 basic blocks, 32 channels, batch {args.batch} x 3 x 64 x 64; BatchNorm "
             f"{'kept in float' if args.no_fold else 'folded'}; converted == integer simulation: {exact}",
             f"    float nodes left in the converted model: {converted.float_nodes or 'none'}",
             "",
             "| thr | float32 ms | int8 ms | int8 speed / float |",
             "|---|---|---|---|"]
    for line in lines:
        print(line, flush=True)
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.no_grad():
            t = best_time({"float": lambda: float_model(x), "int8": lambda: converted(x)}, args.budget)
        row = f"| {threads} | {t['float'] * 1e3:.2f} | {t['int8'] * 1e3:.2f} | {t['float'] / t['int8']:.2f} |"
        lines.append(row)
        print(row, flush=True)
    if args.markdown:
        _machine.append_markdown(args.markdown, "bench_converted_cnn.py", lines)


if __name__ == "__main__":
    main()
