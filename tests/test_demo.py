"""The README demo (python -m lowbit.demo), in a short configuration."""

import pytest
import torch

import lowbit
from lowbit import demo


@pytest.fixture
def one_thread():
    # The demo's layers are tiny: on a shared CPU, intra-op threads only add contention.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_demo_runs_and_learns(one_thread):
    lines = []
    result = demo.run(float_epochs=2, qat_epochs=2, freeze_observers_after=1, log=lines.append)
    text = "\n".join(lines)
    # Chance is 0.1; two float epochs reach ~0.93 and QAT keeps it.
    assert result.float_accuracy > 0.8, text
    assert result.qat_accuracy > 0.8, text
    assert result.float_steps == result.qat_steps == 2 * (1437 // 32)
    for expected in ("float test accuracy", "prepare_qat", "Conv2d -> QuantConv2d", "Linear -> QuantLinear",
                     "int8_narrow per_channel(axis=0) symmetric", "uint8 per_tensor affine ema(0.01)",
                     "froze the observers of 6 quantizers", "QAT test accuracy", "W8A8 QAT accuracy",
                     "lowbit.convert", "IntConv2d", "IntLinear", "0 of 3600 differ (bit-exact)", "int8 (converted)",
                     "weights 3.9", "int8 accuracy"):
        assert expected in text, f"missing {expected!r} in:\n{text}"
    # Integer simulation: the converted model is the QAT model, bit for bit.
    assert result.mismatched_outputs == 0
    assert result.integer_accuracy == result.qat_accuracy
    assert result.weight_bytes["int8"] < result.weight_bytes["float"] / 3.5
    assert set(result.inference_ms) == {"float", "qat", "int8"}
    quantizers = dict(lowbit.named_quantizers(result.model))
    assert len(quantizers) == 6
    assert not any(q.observer_enabled.item() for q in quantizers.values())
    # Observers saw data: every range is finite, every scale below 1.
    for name, q in quantizers.items():
        assert torch.isfinite(q.min_val).all() and torch.isfinite(q.max_val).all(), name
        assert (q.calculate_qparams()[0] < 1).all(), name


def test_demo_float_simulation_converts_with_few_lsb_differences(one_thread):
    lines = []
    result = demo.run(float_epochs=1, qat_epochs=1, freeze_observers_after=1, simulation="float", log=lines.append)
    text = "\n".join(lines)
    assert "simulation=float" in text and "int8 accuracy" in text
    # Float simulation is not bit-exact with the integer model, but its predictions barely move.
    assert result.mismatched_outputs > 0, text
    assert "codes:" in text and abs(result.integer_accuracy - result.qat_accuracy) < 0.02, text


def test_demo_cli_arguments(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--freeze-observers-after", "0"])
    assert "--freeze-observers-after must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="freeze_observers_after=0"):
        demo.run(freeze_observers_after=0)
    with pytest.raises(SystemExit):
        demo.main(["--simulation", "fixed"])
    assert "invalid choice: 'fixed'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="simulation='fixed'"):
        demo.run(simulation="fixed")
