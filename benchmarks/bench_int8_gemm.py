"""int8 GEMM benchmark: lowbit.ops.int8_linear against PyTorch's quantized Linear (x86/FBGEMM
engine), torch._int_mm and float32 matmul, side by side in one process.

    LOWBIT_DEV_BUILD=build/<name> PYTHONPATH=python python benchmarks/bench_int8_gemm.py [--threads 1 2]
        [--quick] [--markdown benchmarks/RESULTS.md]

Workload per shape (M, N, K): a Linear layer y = x W^T + b with N output channels.
* lowbit: ``int8_linear`` on uint8 codes with per-channel int8 weights (packed once), int32 bias,
  fixed-point requantization to uint8 fused in the epilogue. Two activation ranges:
  ``u8``: full 8-bit codes (exact int16 vpmaddwd tiles on AVX2); ``u7``: codes <= 127 (PyTorch's
  ``reduce_range`` default for x86; exact vpmaddubsw tiles).
* fbgemm: ``torch.ao.nn.quantized.Linear`` (per-channel qint8 weights, quint8 in and out) on the
  7-bit codes: FBGEMM's AVX2 kernel saturates on full 8-bit codes, which is why PyTorch's x86
  qconfig reduces the activation range; its speed does not depend on the values.
* int_mm: ``torch._int_mm`` (int8 x int8 -> int32, no requantization); skipped where it would take
  too long (it is a slow reference loop on CPU).
* fp32: ``torch.nn.functional.linear`` in float32 (MKL / oneDNN).

Second table: ``int4_weight_linear_packed`` (4-bit weights and their per-group parameters packed
once, as a deployed layer holds them; group 128, float32 and bfloat16 activations) against
``torch.nn.functional.linear`` on the float weights, at LLM decode shapes (M = 1, 8, 32;
N = K = 4096); "unpacked-params" is ``int4_weight_linear``, which checks and packs scale and zero
point on every call. ``--int4-groups 32 64 128 256`` adds M = 1 rows at other group sizes: every
group ends with 7 vector adds and a scale/zero-point step.

GOPS counts 2·M·N·K operations. "% peak" divides lowbit's GOPS by the measured exact-int8 ceiling of
this CPU (the best of the vpmaddwd and vpmaddubsw+vpmaddwd instruction streams, or vpdpbusd on
VNNI CPUs, times the thread count; see cpp/kernels/peak_probe.h). Timings take the best of several
interleaved rounds, so load from other processes inflates them less; re-run on a quiet machine for
numbers to quote.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

import lowbit
from _machine import append_markdown, cpu_model
from lowbit import ops

SQUARE = [512, 1024, 2048, 4096]
LLM_M = [1, 8, 32]
LLM_NK = 4096


def measure_peaks(repeats: int = 5, seconds: float = 0.1) -> dict:
    """Best of several probe runs (a busy machine only ever makes a probe slower)."""
    best: dict = {}
    for _ in range(repeats):
        for key, value in lowbit._C.probe_peak(seconds).items():
            best[key] = max(best.get(key, 0.0), value)
    return best


def best_time(fns: dict, budget_s: float, min_rounds: int = 3, max_rounds: int = 30) -> dict:
    """Interleaved rounds: every method runs once per round; keep each method's minimum."""
    for fn in fns.values():  # warm-up (packing caches, thread pools, first-touch of outputs)
        fn()
    best = {name: float("inf") for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (time.perf_counter() - start < budget_s and rounds < max_rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
        rounds += 1
    return best


def make_case(m: int, n: int, k: int, gen: torch.Generator):
    w_scale = torch.rand(n, generator=gen, dtype=torch.float64) * 0.01 + 0.005
    w = torch.randint(-127, 128, (n, k), dtype=torch.int8, generator=gen)
    bias_f = torch.randn(n, generator=gen)
    x_scale, x_zp, out_scale, out_zp = 0.02, 0, 0.5, 128
    x_u8 = torch.randint(0, 256, (m, k), dtype=torch.uint8, generator=gen)
    x_u7 = torch.randint(0, 128, (m, k), dtype=torch.uint8, generator=gen)
    packed, col_sums = ops.int8_pack_weight(w)
    qbias = torch.round(bias_f.double() / (x_scale * w_scale)).to(torch.int32)
    mult, shift = ops.quantize_multiplier(x_scale * w_scale / out_scale)
    zx = torch.tensor([x_zp], dtype=torch.int32)
    zw = torch.tensor([0], dtype=torch.int32)
    zo = torch.tensor([out_zp], dtype=torch.int32)

    def lowbit_linear(x):
        return lambda: ops.int8_linear(x, packed, col_sums, qbias, zx, zw, mult, shift, zo, 0, 255)

    fns = {"lowbit_u8": lowbit_linear(x_u8), "lowbit_u7": lowbit_linear(x_u7)}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qw = torch.quantize_per_channel(w.float() * w_scale.float()[:, None], w_scale.float(),
                                        torch.zeros(n, dtype=torch.long), 0, torch.qint8)
        lin = torch.ao.nn.quantized.Linear(k, n)
        lin.set_weight_bias(qw, bias_f)
        lin.scale, lin.zero_point = out_scale, out_zp
        xq = torch._make_per_tensor_quantized_tensor(x_u7, x_scale, x_zp)
    fns["fbgemm"] = lambda: lin(xq)

    x_s8 = (x_u8.to(torch.int16) - 128).to(torch.int8)
    w_t = w.t().contiguous()
    if m * n * k <= 1024**3 // 8:
        fns["int_mm"] = lambda: torch._int_mm(x_s8, w_t)
    xf, wf = torch.randn(m, k, generator=gen), torch.randn(n, k, generator=gen)
    fns["fp32"] = lambda: torch.nn.functional.linear(xf, wf)
    return fns


def run(threads_list, shapes, budget_s, peaks, print_fn=print):
    rows = []
    int8_peak = max(peaks.get("int8_madd16", 0), peaks.get("int8_maddubs", 0), peaks.get("int8_vnni", 0))
    gen = torch.Generator().manual_seed(0)
    for threads in threads_list:
        torch.set_num_threads(threads)
        for (m, n, k) in shapes:
            fns = make_case(m, n, k, gen)
            t = best_time(fns, budget_s)
            ops_count = 2.0 * m * n * k
            gops = {name: ops_count / secs / 1e9 for name, secs in t.items()}
            row = dict(threads=threads, m=m, n=n, k=k, gops=gops,
                       peak_pct=100.0 * gops["lowbit_u8"] * 1e9 / (int8_peak * threads) if int8_peak else float("nan"),
                       peak_pct_u7=100.0 * gops["lowbit_u7"] * 1e9 / (int8_peak * threads) if int8_peak else float("nan"))
            rows.append(row)
            print_fn(format_row(row))
    return rows


HEADER = ("| thr | M | N | K | lowbit u8 GOPS | lowbit u7 GOPS | fbgemm GOPS | _int_mm GOPS | fp32 GFLOPS "
          "| u8/fbgemm | u7/fbgemm | u8/fp32 | u7/fp32 | u8 % peak | u7 % peak |")
SEPARATOR = "|" + "---|" * 15


def format_row(r) -> str:
    g = r["gops"]
    int_mm = f"{g['int_mm']:.1f}" if "int_mm" in g else "skipped"
    return (f"| {r['threads']} | {r['m']} | {r['n']} | {r['k']} | {g['lowbit_u8']:.1f} | {g['lowbit_u7']:.1f} "
            f"| {g['fbgemm']:.1f} | {int_mm} | {g['fp32']:.1f} | {g['lowbit_u8'] / g['fbgemm']:.2f} "
            f"| {g['lowbit_u7'] / g['fbgemm']:.2f} | {g['lowbit_u8'] / g['fp32']:.2f} | {g['lowbit_u7'] / g['fp32']:.2f} "
            f"| {r['peak_pct']:.0f} | {r['peak_pct_u7']:.0f} |")


INT4_HEADER = ("| thr | M | N | K | group | int4 f32 ms | int4 unpacked-params ms | fp32 ms | fp32/int4 "
               "| int4 bf16 ms | bf16 ms | bf16/int4 | int4 Gweights/s |")
INT4_SEPARATOR = "|" + "---|" * 13


def run_int4(threads_list, budget_s, print_fn=print, group=128, rows=LLM_M):
    gen = torch.Generator().manual_seed(1)
    n = k = LLM_NK
    q = torch.randint(0, 16, (n, k), dtype=torch.uint8, generator=gen)
    scale = torch.rand(n, k // group, generator=gen) * 0.01 + 1e-3
    zero = torch.full((n, k // group), 8, dtype=torch.int32)
    packed = ops.int4_pack_weight(q)
    params = ops.int4_pack_params(scale, zero)
    w = ((q.float() - 8) * scale.repeat_interleave(group, 1)).contiguous()
    wb = w.bfloat16()
    for threads in threads_list:
        torch.set_num_threads(threads)
        for m in rows:
            x = torch.randn(m, k, generator=gen)
            xb = x.bfloat16()
            t = best_time({
                "int4": lambda: ops.int4_weight_linear_packed(x, packed, params, n),
                "int4_raw": lambda: ops.int4_weight_linear(x, packed, scale, zero),
                "fp32": lambda: torch.nn.functional.linear(x, w),
                "int4_bf16": lambda: ops.int4_weight_linear_packed(xb, packed, params, n),
                "bf16": lambda: torch.nn.functional.linear(xb, wb),
            }, budget_s)
            print_fn(f"| {threads} | {m} | {n} | {k} | {group} | {t['int4'] * 1e3:.3f} | {t['int4_raw'] * 1e3:.3f} "
                     f"| {t['fp32'] * 1e3:.3f} "
                     f"| {t['fp32'] / t['int4']:.2f} | {t['int4_bf16'] * 1e3:.3f} | {t['bf16'] * 1e3:.3f} "
                     f"| {t['bf16'] / t['int4_bf16']:.2f} | {m * n * k / t['int4'] / 1e9:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="square shapes up to 2048 only, short budget")
    parser.add_argument("--budget", type=float, default=None, help="seconds of rounds per shape (default 2, quick 0.5)")
    parser.add_argument("--markdown", default=None, help="append the table to this file")
    parser.add_argument("--only", choices=["int8", "int4"], default=None, help="run one of the two tables")
    parser.add_argument("--int4-groups", type=int, nargs="+", default=[128],
                        help="int4 group sizes (128: every M; others: M = 1 rows)")
    args = parser.parse_args()

    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    squares = [s for s in SQUARE if not args.quick or s <= 2048]
    shapes = [(s, s, s) for s in squares] + [(m, LLM_NK, LLM_NK) for m in LLM_M]
    budget = args.budget if args.budget is not None else (0.5 if args.quick else 2.0)

    peaks = measure_peaks()
    info = lowbit.build_info()
    lines = [
        f"CPU: {cpu_model()} ({info['cpu_features']}); torch {torch.__version__}; quantized engine "
        f"{torch.backends.quantized.engine}",
        f"lowbit kernel path: {lowbit.kernel_path()}; GEMM kernels: {ops.int8_gemm_kernel_name(torch.uint8, 'rq')} "
        "(u7 rows take the vpmaddubsw tiles on AVX2)",
        "measured ceilings per core (GOPS): " + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in peaks.items() if v),
    ]
    if args.only != "int4":
        lines += ["", HEADER, SEPARATOR]
    for line in lines:
        print(line)
    out_rows = []
    emit = lambda s: (print(s, flush=True), out_rows.append(s))  # noqa: E731
    if args.only != "int4":
        run(args.threads, shapes, budget, peaks, print_fn=emit)
    if args.only != "int8":
        emit("")
        emit(f"int4 weight-only kernel: {lowbit._C.int4_kernel_name()}")
        emit("")
        emit(INT4_HEADER)
        emit(INT4_SEPARATOR)
        for group in args.int4_groups:
            run_int4(args.threads, budget, print_fn=emit, group=group, rows=LLM_M if group == 128 else (1,))
    if args.markdown:
        append_markdown(args.markdown, "bench_int8_gemm.py", lines + out_rows)


if __name__ == "__main__":
    main()
