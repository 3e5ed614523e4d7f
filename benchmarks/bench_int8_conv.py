"""int8 convolution and max-pooling benchmark: lowbit.ops.int8_conv2d against PyTorch's quantized
Conv2d (x86 engine = FBGEMM) and float32 conv2d (oneDNN), and lowbit.ops.int8_max_pool2d against
torch's max_pool2d on the same uint8 codes, side by side in one process.

    LOWBIT_DEV_BUILD=build/<name> PYTHONPATH=python python benchmarks/bench_int8_conv.py [--threads 1 2]
        [--budget 2] [--markdown benchmarks/RESULTS.md]

Workload per convolution: NCHW uint8 codes in, NCHW uint8 codes out, per-channel int8 weights packed
once, int32 bias, fixed-point requantization fused in the epilogue (the layer ``lowbit.convert``
produces).
* lowbit ``u8``: full 8-bit activation codes (exact int16 ``vpmaddwd`` tiles on AVX2); ``u7``: codes
  <= 127 (PyTorch's ``reduce_range`` for x86; exact ``vpmaddubsw`` tiles).
* fbgemm: ``torch.ao.nn.quantized.Conv2d`` (per-channel qint8 weights, quint8 in and out) on the
  7-bit codes, NCHW in and out like lowbit (FBGEMM's AVX2 kernels saturate on full 8-bit codes;
  its speed does not depend on the values).
* fp32: ``torch.nn.functional.conv2d`` in float32.

The shapes: the two convolutions of ``lowbit.demo``'s digits CNN at its test batch (360 images of
8x8), a ResNet-style 3x3 64->64 layer, a 1x1 256->64 layer, a MobileNet-style depthwise 3x3 and a
stride-2 stem. GOPS counts 2·MACs. Timings take the best of interleaved rounds (load from other
processes only ever makes a round slower); re-run on a quiet machine for numbers to quote.
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F

import lowbit
from _machine import append_markdown, cpu_model
from bench_int8_gemm import best_time
from lowbit import ops

# name, (batch, in_channels, height, width), out_channels, kernel, stride, padding, groups
CONVS = [
    ("digits conv0", (360, 1, 8, 8), 16, 3, 1, 1, 1),
    ("digits conv2", (360, 16, 8, 8), 32, 3, 1, 1, 1),
    ("resnet 3x3", (8, 64, 56, 56), 64, 3, 1, 1, 1),
    ("bottleneck 1x1", (8, 256, 56, 56), 64, 1, 1, 0, 1),
    ("depthwise 3x3", (8, 64, 56, 56), 64, 3, 1, 1, 64),
    ("stem s2", (8, 3, 112, 112), 32, 3, 2, 1, 1),
]
# name, (batch, channels, height, width), kernel, stride, padding
POOLS = [
    ("digits 2x2", (360, 32, 8, 8), 2, 2, 0),
    ("resnet stem 3x3 s2", (8, 64, 112, 112), 3, 2, 1),
    ("3x3 s2 p1", (64, 32, 32, 32), 3, 2, 1),
]

CONV_HEADER = ("| thr | layer | input | out | k/s/g | lowbit u8 ms | lowbit u7 ms | fbgemm ms | fp32 ms "
               "| u8 GOPS | u8/fbgemm | u7/fbgemm | u8/fp32 |")
POOL_HEADER = "| thr | pooling | input | lowbit ms | torch uint8 ms | torch fp32 ms | vs torch uint8 | vs fp32 |"


def conv_case(shape, oc, k, stride, pad, groups, gen):
    b, c, h, w = shape
    w_scale = torch.rand(oc, generator=gen, dtype=torch.float64) * 0.01 + 0.005
    wq = torch.randint(-127, 128, (oc, c // groups, k, k), dtype=torch.int8, generator=gen)
    bias_f = torch.randn(oc, generator=gen)
    x_scale, out_scale, out_zp = 0.02, 0.5, 128
    x_u8 = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
    x_u7 = torch.randint(0, 128, shape, dtype=torch.uint8, generator=gen)
    packed, col_sums = ops.int8_pack_conv_weight(wq, groups)
    qbias = torch.round(bias_f.double() / (x_scale * w_scale)).to(torch.int32)
    mult, shift = ops.quantize_multiplier(x_scale * w_scale / out_scale)

    def lowbit_conv(x):
        return lambda: ops.int8_conv2d(x, packed, col_sums, qbias, 0, 0, mult, shift, out_zp, 0, 255, k, stride, pad,
                                       1, groups)

    fns = {"u8": lowbit_conv(x_u8), "u7": lowbit_conv(x_u7)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qw = torch.quantize_per_channel(wq.float() * w_scale.float()[:, None, None, None], w_scale.float(),
                                        torch.zeros(oc, dtype=torch.long), 0, torch.qint8)
        conv = torch.ao.nn.quantized.Conv2d(c, oc, k, stride=stride, padding=pad, groups=groups)
        conv.set_weight_bias(qw, bias_f)
        conv.scale, conv.zero_point = out_scale, out_zp
        xq = torch._make_per_tensor_quantized_tensor(x_u7, x_scale, 0)
    fns["fbgemm"] = lambda: conv(xq)
    xf, wf = x_u8.float(), wq.float()
    fns["fp32"] = lambda: F.conv2d(xf, wf, bias_f, stride, pad, 1, groups)
    out = fns["u8"]()
    macs = out.numel() * (c // groups) * k * k
    return fns, macs, tuple(out.shape)


def run_convs(threads_list, budget_s, print_fn=print):
    gen = torch.Generator().manual_seed(0)
    print_fn(CONV_HEADER)
    print_fn("|" + "---|" * 13)
    for threads in threads_list:
        torch.set_num_threads(threads)
        for name, shape, oc, k, stride, pad, groups in CONVS:
            fns, macs, out_shape = conv_case(shape, oc, k, stride, pad, groups, gen)
            t = best_time(fns, budget_s)
            print_fn(f"| {threads} | {name} | {'x'.join(map(str, shape))} | {'x'.join(map(str, out_shape))} "
                     f"| {k}/{stride}/{groups} | {t['u8'] * 1e3:.3f} | {t['u7'] * 1e3:.3f} | {t['fbgemm'] * 1e3:.3f} "
                     f"| {t['fp32'] * 1e3:.3f} | {2 * macs / t['u8'] / 1e9:.1f} | {t['fbgemm'] / t['u8']:.2f} "
                     f"| {t['fbgemm'] / t['u7']:.2f} | {t['fp32'] / t['u8']:.2f} |")


def run_pools(threads_list, budget_s, print_fn=print):
    gen = torch.Generator().manual_seed(1)
    print_fn(POOL_HEADER)
    print_fn("|" + "---|" * 8)
    for threads in threads_list:
        torch.set_num_threads(threads)
        for name, shape, k, stride, pad in POOLS:
            x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)
            xf = x.float()
            fns = {
                "lowbit": lambda: ops.int8_max_pool2d(x, k, stride, pad),
                "torch_u8": lambda: F.max_pool2d(x, k, stride, pad),
                "torch_f32": lambda: F.max_pool2d(xf, k, stride, pad),
            }
            assert torch.equal(fns["lowbit"](), fns["torch_u8"]())
            t = best_time(fns, budget_s)
            print_fn(f"| {threads} | {name} | {'x'.join(map(str, shape))} | {t['lowbit'] * 1e3:.3f} "
                     f"| {t['torch_u8'] * 1e3:.3f} | {t['torch_f32'] * 1e3:.3f} | {t['torch_u8'] / t['lowbit']:.2f} "
                     f"| {t['torch_f32'] / t['lowbit']:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of rounds per case")
    parser.add_argument("--markdown", default=None, help="append the tables to this file")
    args = parser.parse_args()
    if any(t < 1 for t in args.threads):
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.budget <= 0:
        parser.error(f"--budget must be > 0, got {args.budget}")

    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    info = lowbit.build_info()
    if info["cpu_features"].get("avx512_emulated"):
        raise SystemExit("this lowbit build runs its AVX-512 paths on emulated intrinsics (a test build); "
                         "benchmark a normal build")
    lines = [
        f"CPU: {cpu_model()}; torch {torch.__version__}; quantized engine {torch.backends.quantized.engine}",
        f"lowbit kernel path: {lowbit.kernel_path()}; GEMM kernels: {ops.int8_gemm_kernel_name(torch.uint8, 'rq')}",
        "",
    ]
    out_rows = []

    def emit(s):
        print(s, flush=True)
        out_rows.append(s)

    for line in lines:
        print(line)
    run_convs(args.threads, args.budget, print_fn=emit)
    emit("")
    run_pools(args.threads, args.budget, print_fn=emit)
    if args.markdown:
        append_markdown(args.markdown, "bench_int8_conv.py", lines + out_rows)


if __name__ == "__main__":
    main()
