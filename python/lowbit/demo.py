"""lowbit demo: quantization-aware training of a small CNN on scikit-learn's digits.

Run ``python -m lowbit.demo`` (``--help`` for options). Steps, each a function so later stages
(e.g. integer conversion) append cleanly:

1. :func:`load_data`: the 8x8 digits, a fixed stratified train/test split, pixels scaled to [0, 1].
2. :func:`build_model` + :func:`train`: a float CNN, a few epochs of Adam.
3. :func:`prepare`: ``lowbit.prepare_qat`` with W8A8 (int8 per-channel symmetric weights, uint8
   per-tensor affine activations with an EMA observer), integer-exact simulation by default
   (``simulation="integer"``: the fake-quant forward computes what the integer model computes).
4. :func:`train` again (QAT fine-tuning), observers frozen part way (``lowbit.disable_observer``).
5. :func:`evaluate`: test accuracy of the float and the fake-quantized model.
6. :func:`deploy`: ``lowbit.convert`` to integer modules (int8 codes between layers, int8 GEMM
   kernels); its accuracy, weight size and batch inference time next to the float model's, and
   how many outputs differ from the QAT model (none with integer simulation).

Everything is seeded; on a CPU it takes a few seconds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

import lowbit
from lowbit import QuantSpec
from lowbit.formats import Int

Log = Callable[[str], None]


@dataclass
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class DemoResult:
    float_accuracy: float
    qat_accuracy: float
    float_steps: int
    qat_steps: int
    seconds: dict = field(default_factory=dict)
    model: Optional[nn.Module] = None
    data: Optional[Data] = None
    integer_accuracy: Optional[float] = None
    converted: Optional[nn.Module] = None
    float_model: Optional[nn.Module] = None
    mismatched_outputs: Optional[int] = None
    weight_bytes: dict = field(default_factory=dict)
    inference_ms: dict = field(default_factory=dict)


def load_data(seed: int = 0, test_fraction: float = 0.2) -> Data:
    """scikit-learn's digits as ``[N, 1, 8, 8]`` float tensors in [0, 1], stratified split."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError("the lowbit demo needs scikit-learn for its dataset: pip install scikit-learn") from e

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    idx_train, idx_test = train_test_split(range(len(y)), test_size=test_fraction, random_state=seed,
                                           stratify=digits.target)
    return Data(x[idx_train], y[idx_train], x[idx_test], y[idx_test])


def build_model() -> nn.Sequential:
    """conv(1->16) relu conv(16->32) relu maxpool flatten linear(512->10): about 10k parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


def qat_specs() -> tuple[QuantSpec, QuantSpec]:
    """W8A8: int8 per-channel symmetric weights (narrow range), uint8 per-tensor affine inputs (EMA)."""
    weight = QuantSpec(Int(8, narrow_range=True), granularity="per_channel", symmetric=True, observer="minmax")
    activation = QuantSpec(Int(8, signed=False), granularity="per_tensor", symmetric=False, observer="ema")
    return weight, activation


def prepare(model: nn.Module, log: Log = print, simulation: str = "integer") -> nn.Module:
    """Swap the float layers for QAT layers and report what was swapped; returns the QAT model.

    ``simulation="integer"`` returns a new ``torch.fx.GraphModule`` (ReLUs fused into the layers
    before them, an output quantizer per layer output that feeds another layer); ``"float"``
    modifies ``model`` in place (each layer quantizes its input and weight).
    """
    weight, activation = qat_specs()
    log(f"  weights:     {weight.describe()}")
    where = "each value between layers" if simulation == "integer" else "each layer's input"
    log(f"  activations: {activation.describe()} ({where})")
    before = {name: type(m).__name__ for name, m in model.named_modules()}
    model = lowbit.prepare_qat(model, weight=weight, activation=activation, simulation=simulation)
    after = dict(model.named_modules())
    for name, m in after.items():
        if before.get(name) != type(m).__name__ and name in before:
            log(f"  {name}: {before[name]} -> {type(m).__name__}")
    if simulation == "integer":
        fused = [f"{name} ({m.fused_activation})" for name, m in after.items()
                 if isinstance(m, (lowbit.nn.QuantLinear, lowbit.nn.QuantConv2d)) and m.fused_activation]
        log(f"  simulation=integer: ReLU fused into {', '.join(fused)} as an output clamp; integer-exact forward")
    return model


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in eval mode (which never changes quantizer state)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    model.train(was_training)
    return accuracy


def train(model: nn.Module, data: Data, *, epochs: int, lr: float, batch_size: int = 32, seed: int = 0,
          forward: Optional[Callable] = None, on_epoch: Optional[Callable[[int], None]] = None,
          log: Log = print) -> int:
    """Adam on cross-entropy; full batches only (a fixed shape, so a compiled forward compiles once).

    ``forward`` defaults to ``model`` (pass a ``torch.compile``d one to train compiled);
    ``on_epoch(epoch)`` runs before each epoch. Returns the number of optimizer steps.
    """
    forward = forward or model
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = data.x_train.shape[0]
    steps = 0
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(forward(data.x_train[idx]), data.y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
            steps += 1
        log(f"  epoch {epoch + 1}/{epochs}: mean loss {total / (n // batch_size):.4f}, "
            f"test accuracy {evaluate(model, data.x_test, data.y_test):.4f}")
    return steps


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights and biases of the Linear/Conv2d layers (float) or integer layers (codes + int32 bias)."""
    total = 0
    for m in model.modules():
        if isinstance(m, (lowbit.nn.integer.IntLinear, lowbit.nn.integer.IntConv2d)):
            total += m.weight_codes().numel() * m.weight_codes().element_size()
            total += 0 if m.bias is None else m.bias.numel() * m.bias.element_size()
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            total += sum(p.numel() * p.element_size() for p in (m.weight, m.bias) if p is not None)
    return total


def state_bytes(model: nn.Module) -> int:
    """Bytes of everything the model stores (parameters and buffers, packed weights included)."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def time_inference(model: nn.Module, x: torch.Tensor, repeats: int = 15) -> float:
    """Median milliseconds of one batch forward in eval mode, no grad (after two warm-up runs)."""
    model.eval()
    with torch.no_grad():
        for _ in range(2):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def deploy(model: nn.Module, float_model: nn.Module, data: Data, log: Log = print) -> dict:
    """Convert the QAT model to integers and compare accuracy, size and speed with the float model."""
    converted = lowbit.convert(model)
    for name, module in converted.named_children():
        log(f"  {name}: {module!r}")
    x = data.x_test
    with torch.no_grad():
        expected = model.eval()(x)
        got = converted(x)
    mismatched = int((expected != got).sum())
    integer_accuracy = (got.argmax(dim=1) == data.y_test).float().mean().item()
    log(f"  integer model outputs vs the QAT model's: {mismatched} of {got.numel()} differ "
        f"({'bit-exact' if mismatched == 0 else 'see lowbit.compare_simulation'})")
    if mismatched:
        report = lowbit.compare_simulation(model, converted, x)
        log("  " + str(report).replace("\n", "\n  "))
    sizes = {"float": weight_bytes(float_model), "int8": weight_bytes(converted),
             "float_state": state_bytes(float_model), "int8_state": state_bytes(converted)}
    ms = {"float": time_inference(float_model, x), "qat": time_inference(model, x),
          "int8": time_inference(converted, x)}
    routes = sorted({m.route for m in converted.modules() if hasattr(m, "route")})
    log(f"\n  {'model':22s} {'accuracy':>8s} {'weights+bias':>13s} {'stored':>9s} {'batch of ' + str(len(x)):>12s}")
    log(f"  {'float32':22s} {evaluate(float_model, x, data.y_test):8.4f} {sizes['float']:11d} B "
        f"{sizes['float_state']:7d} B {ms['float']:9.2f} ms")
    log(f"  {'QAT (simulated)':22s} {evaluate(model, x, data.y_test):8.4f} {'':>13s} {'':>9s} {ms['qat']:9.2f} ms")
    log(f"  {'int8 (converted)':22s} {integer_accuracy:8.4f} {sizes['int8']:11d} B {sizes['int8_state']:7d} B "
        f"{ms['int8']:9.2f} ms")
    log(f"  weights {sizes['float'] / sizes['int8']:.2f}x smaller; int8 inference {ms['float'] / ms['int8']:.2f}x the "
        f"float speed ({torch.get_num_threads()} threads, kernel path {lowbit.kernel_path()}, route "
        f"{'/'.join(routes)}; timings on a shared machine are indicative)")
    return dict(converted=converted, integer_accuracy=integer_accuracy, mismatched=mismatched, sizes=sizes, ms=ms)


def run(*, float_epochs: int = 6, qat_epochs: int = 3, freeze_observers_after: int = 2, compile: bool = False,
        seed: int = 0, simulation: str = "integer", log: Log = print) -> DemoResult:
    """The whole demo; returns accuracies, step counts, timings, the QAT model and its conversion.

    ``freeze_observers_after``: QAT epochs to run with observers on (>= 1: a never-observed
    quantizer has scale 1); values >= ``qat_epochs`` never freeze. ``simulation``: ``"integer"``
    (the converted model then equals the QAT model bit for bit) or ``"float"``.
    """
    if freeze_observers_after < 1:
        raise ValueError(f"run: freeze_observers_after must be >= 1 (observers need data), got "
                         f"freeze_observers_after={freeze_observers_after}")
    if simulation not in ("integer", "float"):
        raise ValueError(f"run: simulation must be 'integer' or 'float', got simulation={simulation!r}")
    torch.manual_seed(seed)
    seconds = {}
    data = load_data(seed)
    log(f"digits: {len(data.y_train)} train / {len(data.y_test)} test images, 8x8, 10 classes "
        f"(seed {seed}, torch {torch.__version__}, lowbit {lowbit.__version__}, kernels {lowbit.kernel_path()})")

    model = build_model()
    log(f"\n[1] float training, {float_epochs} epochs of Adam(lr=1e-2):\n{model}")
    t0 = time.perf_counter()
    float_steps = train(model, data, epochs=float_epochs, lr=1e-2, seed=seed, log=log)
    seconds["float"] = time.perf_counter() - t0
    float_accuracy = evaluate(model, data.x_test, data.y_test)
    log(f"  float test accuracy: {float_accuracy:.4f} ({float_steps} steps, {seconds['float']:.1f} s)")

    float_model = copy.deepcopy(model).eval()
    log(f"\n[2] prepare_qat (W8A8, simulation={simulation}):")
    model = prepare(model, log, simulation)

    forward = model
    if compile:
        forward = torch.compile(model, fullgraph=True)
        log("  training forward: torch.compile(fullgraph=True)")

    def freeze(epoch: int) -> None:
        if epoch == freeze_observers_after:
            count = lowbit.disable_observer(model)
            log(f"  froze the observers of {count} quantizers (scales and zero points fixed from here)")

    log(f"\n[3] QAT fine-tuning, {qat_epochs} epochs of Adam(lr=1e-3), observers frozen after epoch "
        f"{freeze_observers_after}:")
    t0 = time.perf_counter()
    qat_steps = train(model, data, epochs=qat_epochs, lr=1e-3, seed=seed + 1, forward=forward, on_epoch=freeze,
                      log=log)
    seconds["qat"] = time.perf_counter() - t0
    qat_accuracy = evaluate(model, data.x_test, data.y_test)
    log(f"  QAT test accuracy: {qat_accuracy:.4f} ({qat_steps} steps, {seconds['qat']:.1f} s)")

    log("\n[4] learned quantization parameters:")
    for name, quantizer in lowbit.named_quantizers(model):
        scale, zero_point = quantizer.calculate_qparams()
        if scale.numel() == 1:
            log(f"  {name:26s} scale {scale.item():.6f}  zero_point {zero_point.item()}")
        else:
            log(f"  {name:26s} scale [{scale.min().item():.6f}, {scale.max().item():.6f}] over "
                f"{scale.numel()} channels, zero_point 0")

    log("\n[5] lowbit.convert: integer model (codes between layers, int8 GEMM kernels):")
    t0 = time.perf_counter()
    deployed = deploy(model, float_model, data, log)
    seconds["convert"] = time.perf_counter() - t0

    log(f"\nfloat accuracy {float_accuracy:.4f} -> W8A8 QAT accuracy {qat_accuracy:.4f} -> int8 accuracy "
        f"{deployed['integer_accuracy']:.4f} ({float_steps} + {qat_steps} steps, {sum(seconds.values()):.1f} s)")
    return DemoResult(float_accuracy, qat_accuracy, float_steps, qat_steps, seconds, model, data,
                      integer_accuracy=deployed["integer_accuracy"], converted=deployed["converted"],
                      float_model=float_model, mismatched_outputs=deployed["mismatched"],
                      weight_bytes=deployed["sizes"], inference_ms=deployed["ms"])


def main(argv=None) -> DemoResult:
    parser = argparse.ArgumentParser(prog="python -m lowbit.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--float-epochs", type=int, default=6)
    parser.add_argument("--qat-epochs", type=int, default=3)
    parser.add_argument("--freeze-observers-after", type=int, default=2,
                        help="QAT epochs with observers on before they are frozen (>= 1)")
    parser.add_argument("--compile", action="store_true",
                        help="train the QAT model under torch.compile(fullgraph=True) (inductor; compiling "
                             "takes tens of seconds on a small CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simulation", choices=("integer", "float"), default="integer",
                        help="QAT forward: integer-exact (the converted model equals it bit for bit; default) or "
                             "float fake quantization (torch.ao-style; conversion differs by +-1 LSB here and there)")
    args = parser.parse_args(argv)
    for name, low in (("float_epochs", 0), ("qat_epochs", 0), ("freeze_observers_after", 1)):
        if getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    return run(float_epochs=args.float_epochs, qat_epochs=args.qat_epochs,
               freeze_observers_after=args.freeze_observers_after, compile=args.compile, seed=args.seed,
               simulation=args.simulation)


if __name__ == "__main__":
    main()
