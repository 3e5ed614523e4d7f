"""QAT accuracy of every estimator on scikit-learn's digits (8x8 images, 10 classes).

A small CNN (lowbit.demo.build_model: conv 1->16, conv 16->32, maxpool, linear 512->10) is trained
in float once; then, for each bit width (W8A8, W4A4, W2A2) and each estimator, a copy goes through
lowbit.prepare_qat (every conv and linear: weights per-channel symmetric with a narrow signed
range, inputs per-tensor unsigned and asymmetric) and is fine-tuned with Adam. Everything is
seeded; QAT uses Adam with a cosine learning-rate decay over its epochs. The table prints test
accuracy and the difference from float.

    LOWBIT_DEV_BUILD=build/<name> PYTHONPATH=python python benchmarks/qat_digits.py
    ... --configs W4A4 W2A2 --estimators lsq pact --qat-epochs 10

Estimator specifics: "ste" observes ranges (EMA for activations) and freezes its observers after
half the QAT epochs; "pact" adds the paper's L2 regulariser PACT_ALPHA_L2·Σα² on its activation
clips to the loss (not on its weight clips: see lowbit.learnable_quantizers.PACTQuantizer);
"sigmoid" advances its temperature every epoch (T = 10·(epoch+1)).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

import lowbit
from lowbit import QuantSpec, learnable_quantizers
from lowbit.demo import build_model, evaluate, load_data
from lowbit.formats import Int

from _machine import cpu_model

ESTIMATORS = ["ste", "lsq", "lsq+", "learnable", "pact", "qil", "dsq", "sigmoid"]
CONFIGS = {"W8A8": (8, 8), "W4A4": (4, 4), "W2A2": (2, 2)}
# PACT's λ_α, "comparable to weight decay" (METHODS §3). Applied to the activation clips only, as in
# the paper (pact_regularizer's default): with Adam an L2 pull on the sparsely-driven weight clips
# collapses them (PACTQuantizer's docstring).
PACT_ALPHA_L2 = 2e-4


def specs(estimator: str, wbits: int, abits: int) -> tuple[QuantSpec, QuantSpec]:
    extra = {"observer": "ema"} if estimator == "ste" else {}
    weight = QuantSpec(Int(wbits, narrow_range=True), granularity="per_channel", symmetric=True, estimator=estimator)
    activation = QuantSpec(Int(abits, signed=False), symmetric=False, estimator=estimator, **extra)
    return weight, activation


def train(model, data, *, epochs, lr, seed, forward=None, on_epoch=None, extra_loss=None, batch_size=32,
          cosine=False):
    forward = forward or model
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = data.x_train.shape[0]
    steps = epochs * (n // batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, steps)) if cosine else None
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(forward(data.x_train[idx]), data.y_train[idx])
            if extra_loss is not None:
                loss = loss + extra_loss()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()


def qat(float_model, data, estimator, wbits, abits, *, epochs, lr, seed, compile_forward):
    torch.manual_seed(seed)
    model = copy.deepcopy(float_model)
    weight, activation = specs(estimator, wbits, abits)
    lowbit.prepare_qat(model, weight=weight, activation=activation)
    # Learnable quantizers initialise from the first batch they see (eagerly).
    model.train()
    with torch.no_grad():
        model(data.x_train[:256])
    forward = torch.compile(model, fullgraph=True) if compile_forward else model

    def on_epoch(epoch):
        if estimator == "ste" and epoch == max(1, epochs // 2):
            lowbit.disable_observer(model)
        if estimator == "sigmoid":
            lowbit.set_sigmoid_temperature(model, epoch)

    extra = ((lambda: learnable_quantizers.pact_regularizer(model, PACT_ALPHA_L2, include_weight_quantizers=False))
             if estimator == "pact" else None)
    train(model, data, epochs=epochs, lr=lr, seed=seed + 1, forward=forward, on_epoch=on_epoch, extra_loss=extra,
          cosine=True)
    return evaluate(model, data.x_test, data.y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--estimators", nargs="+", default=ESTIMATORS, choices=ESTIMATORS)
    parser.add_argument("--float-epochs", type=int, default=15)
    parser.add_argument("--qat-epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3, help="QAT learning rate (Adam, cosine decay)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="one float model and one QAT run per estimator and config for each seed; the "
                             "table shows the mean (the data split is seed 0's for all)")
    parser.add_argument("--compile", action="store_true", help="QAT under torch.compile(fullgraph=True)")
    args = parser.parse_args()

    data = load_data(0)
    info = lowbit.build_info()
    print(f"digits: {len(data.y_train)} train / {len(data.y_test)} test | torch {torch.__version__} | "
          f"lowbit {info['version']} kernel path {info['kernel_path']} | {cpu_model()} | seeds {args.seeds}")
    t0 = time.perf_counter()
    float_models, float_accs = {}, {}
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = build_model()
        train(model, data, epochs=args.float_epochs, lr=1e-2, seed=seed)
        float_models[seed] = model
        float_accs[seed] = evaluate(model, data.x_test, data.y_test)
    float_mean = sum(float_accs.values()) / len(float_accs)
    print("float: " + ", ".join(f"{a * 100:.2f}%" for a in float_accs.values()) +
          f" (mean {float_mean * 100:.2f}%) after {args.float_epochs} epochs\n")

    header = f"{'estimator':<11}" + "".join(f"{c:>22}" for c in args.configs)
    print(header + "   (mean test accuracy %, mean difference from float in points [worst seed])")
    print("-" * len(header))
    results = {}
    for estimator in args.estimators:
        row = f"{estimator:<11}"
        for config in args.configs:
            wbits, abits = CONFIGS[config]
            diffs, accs = [], []
            for seed in args.seeds:
                acc = qat(float_models[seed], data, estimator, wbits, abits, epochs=args.qat_epochs, lr=args.lr,
                          seed=seed, compile_forward=args.compile)
                accs.append(acc)
                diffs.append(acc - float_accs[seed])
            results[(estimator, config)] = accs
            mean_acc = sum(accs) / len(accs)
            mean_diff = sum(diffs) / len(diffs)
            row += f"{mean_acc * 100:>8.2f} ({mean_diff * 100:+5.1f} [{min(diffs) * 100:+5.1f}])"
        print(row, flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return float_accs, results


if __name__ == "__main__":
    main()
