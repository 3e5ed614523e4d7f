"""int8_conv2d: every kernel path against an exact int64 reference (stride, padding, dilation,
groups, depthwise, zero points, u8/s8 codes), FBGEMM within one LSB, bad inputs, opcheck,
torch.compile."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import lowbit
from lowbit import ops
from _int8_ref import ALL_PATHS, path_or_skip, requantize_ref

CONFIGS = [
    # (B, C, H, W, OC, kernel, stride, padding, dilation, groups)
    (1, 3, 8, 8, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 6, 9, 7, 8, (3, 2), (2, 1), (1, 1), (1, 2), 2),
    (1, 8, 10, 10, 8, (3, 3), (1, 1), (1, 1), (1, 1), 8),     # depthwise
    (2, 4, 7, 9, 8, (3, 3), (2, 2), (0, 2), (2, 1), 4),       # depthwise, channel multiplier 2
    (1, 16, 5, 5, 33, (1, 1), (1, 1), (0, 0), (1, 1), 1),     # pointwise, OC not a multiple of 16
    (1, 5, 1, 1, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1),       # 1x1 image
    (5, 30, 9, 11, 20, (1, 1), (1, 1), (0, 0), (1, 1), 1),    # pointwise on the input itself (no im2col), K % 4 = 2
    (3, 2, 6, 11, 5, (5, 3), (3, 2), (2, 0), (1, 1), 1),
    (3, 6, 5, 13, 18, (2, 4), (3, 1), (4, 3), (1, 3), 6),    # depthwise x3, padding wider than the kernel
    (1, 2, 4, 3, 2, (1, 2), (1, 1), (0, 3), (1, 6), 2),       # depthwise, a tap column entirely in padding
    (2, 3, 6, 6, 48, (3, 3), (1, 1), (1, 1), (1, 1), 3),      # groups of one input channel, 16 outputs each
    (2, 4, 20, 19, 8, (3, 3), (1, 1), (2, 2), (2, 2), 4),     # depthwise stride 1, dilated, multiplier 2
    (1, 3, 17, 23, 3, (5, 5), (1, 1), (2, 2), (1, 1), 3),     # depthwise 5x5 (odd tap count), stride 1
    (3, 64, 12, 13, 40, (1, 1), (1, 1), (0, 0), (1, 1), 1),   # pointwise, rows gathered from NCHW in chunks
    (3, 3, 12, 13, 20, (1, 1), (1, 1), (0, 0), (1, 1), 1),    # the same with 3 channels (rows padded to 4)
]


def _reference(x, w, bias, zx, zw, mult, shift, zo, qmin, qmax, stride, padding, dilation, groups, rounding):
    oc = w.shape[0]
    zw = torch.as_tensor(zw, dtype=torch.float64).expand(oc)
    xp = F.pad(x.double() - zx, (padding[1], padding[1], padding[0], padding[0]))  # zero-point padding = real 0
    acc = F.conv2d(xp, w.double() - zw[:, None, None, None], None, stride, 0, dilation, groups)
    if bias is not None:
        acc = acc + bias.double()[None, :, None, None]
    assert acc.abs().max() < 2**31
    nhwc = acc.permute(0, 2, 3, 1)
    out = requantize_ref(nhwc.numpy().astype("int64"), mult.expand(oc).numpy(), shift.expand(oc).numpy(), zo, qmin,
                         qmax, rounding)
    return torch.from_numpy(out.reshape(nhwc.shape)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("cfg", range(len(CONFIGS)))
@pytest.mark.parametrize("path", ALL_PATHS)
def test_int8_conv2d_matches_reference(path, cfg):
    path_or_skip(path)
    b, c, h, w_, oc, k, st, pd, dl, groups = CONFIGS[cfg]
    gen = torch.Generator().manual_seed(cfg)
    for xdtype, zx, per_channel, zw_nonzero, rounding, (qmin, qmax) in [
        (torch.uint8, 128, True, False, "double", (0, 255)),
        (torch.uint8, 3, False, True, "single", (-128, 127)),
        (torch.int8, -5, True, True, "double", (100, 255)),      # fused ReLU-like clamp
        ("u7", 60, True, False, "double", (-128, 127)),
    ]:
        if xdtype == "u7":
            x = torch.randint(0, 128, (b, c, h, w_), dtype=torch.uint8, generator=gen)
        elif xdtype == torch.uint8:
            x = torch.randint(0, 256, (b, c, h, w_), dtype=torch.uint8, generator=gen)
        else:
            x = torch.randint(-128, 128, (b, c, h, w_), dtype=torch.int8, generator=gen)
        w = torch.randint(-127, 128, (oc, c // groups, *k), dtype=torch.int8, generator=gen)
        zw = torch.randint(-4, 5, (oc,), dtype=torch.int32, generator=gen) if zw_nonzero else torch.tensor([0])
        bias = torch.randint(-3000, 3000, (oc,), dtype=torch.int32, generator=gen)
        real = torch.rand(oc if per_channel else 1, dtype=torch.float64, generator=gen) * 2e-3 + 1e-4
        mult, shift = ops.quantize_multiplier(real, rounding=rounding)
        zo = (qmin + qmax + 1) // 2
        packed, cs = ops.int8_pack_conv_weight(w, groups)
        with lowbit.use_kernel_path(path):
            got = ops.int8_conv2d(x, packed, cs, bias, zx, zw, mult, shift, zo, qmin, qmax, k, st, pd, dl, groups,
                                  rounding=rounding)
        want = _reference(x, w, bias, zx, zw, mult, shift, zo, qmin, qmax, st, pd, dl, groups, rounding)
        assert got.shape == want.shape and got.dtype == (torch.uint8 if qmin >= 0 else torch.int8)
        assert torch.equal(got.long(), want), (path, cfg, xdtype)


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("c", [3, 16])
@pytest.mark.parametrize("where", [(0, 0, 0), (1, 5, 6), (1, 11, 11)])
def test_int8_conv2d_one_8bit_code_among_7bit_codes(path, c, where):
    """7-bit codes take AVX2's vpmaddubsw tiles only when every byte of the block is <= 127; one
    code of 255 among them (first pixel, middle, last pixel), against weights of 127 that make a
    vpmaddubsw pair saturate (255·127 + 100·127 > 32767), must send its block to the exact tiles."""
    path_or_skip(path)
    gen = torch.Generator().manual_seed(c)
    x = torch.randint(100, 128, (2, c, 12, 12), dtype=torch.uint8, generator=gen)
    x[where[0], 0, where[1], where[2]] = 255  # channel 0: its vpmaddubsw partner is channel 1, inside
    w = torch.full((24, c, 3, 3), 127, dtype=torch.int8)
    # Outputs span most of [0, 255], so a saturated pair sum (off by > 15000) moves them by LSBs.
    mult, shift = ops.quantize_multiplier(torch.full((24,), 200 / (9 * c * 128 * 127), dtype=torch.float64))
    packed, cs = ops.int8_pack_conv_weight(w)
    with lowbit.use_kernel_path(path):
        got = ops.int8_conv2d(x, packed, cs, None, 0, 0, mult, shift, 0, 0, 255, 3, 1, 1)
    want = _reference(x, w, None, 0, torch.tensor([0]), mult, shift, 0, 0, 255, (1, 1), (1, 1), (1, 1), 1, "double")
    assert torch.equal(got.long(), want)


@pytest.mark.parametrize("c", [1, 2, 3, 5, 7, 8, 9, 17])
def test_int8_conv2d_channels_last_copy_of_nchw_input(c):
    """int8_conv2d makes its own channels-last copy of an NCHW input (an SSE2 interleave for 3
    channels, unrolled moves for the other counts below 8, 8x8 byte transposes from 8): each form,
    from a non-contiguous slice, with 2 threads splitting the pixel rows inside an image."""
    gen = torch.Generator().manual_seed(30 + c)
    big = torch.randint(0, 256, (2, c, 102, 73), dtype=torch.uint8, generator=gen)
    x = big[:, :, 1:101, 2:72]  # 2 x c x 100 x 70, not contiguous
    w = torch.randint(-127, 128, (4, c, 3, 3), dtype=torch.int8, generator=gen)
    bias = torch.randint(-3000, 3000, (4,), dtype=torch.int32, generator=gen)
    mult, shift = ops.quantize_multiplier(torch.rand(4, dtype=torch.float64, generator=gen) * 1e-3 + 1e-4)
    packed, cs = ops.int8_pack_conv_weight(w)
    want = _reference(x, w, bias, 7, torch.tensor([0]), mult, shift, 128, 0, 255, (2, 1), (1, 1), (1, 1), 1,
                      "double")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = ops.int8_conv2d(x, packed, cs, bias, 7, 0, mult, shift, 128, 0, 255, 3, (2, 1), 1)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(got.long(), want)


def test_int8_conv2d_threads_and_channels_last_input():
    gen = torch.Generator().manual_seed(20)
    x = torch.randint(0, 256, (2, 32, 20, 20), dtype=torch.uint8, generator=gen)
    w = torch.randint(-127, 128, (48, 32, 3, 3), dtype=torch.int8, generator=gen)
    packed, cs = ops.int8_pack_conv_weight(w)
    mult, shift = ops.quantize_multiplier(torch.rand(48, dtype=torch.float64, generator=gen) * 1e-4)
    args = (packed, cs, None, 128, 0, mult, shift, 128, 0, 255, 3, 1, 1)
    with lowbit.use_kernel_path("scalar"):
        want = ops.int8_conv2d(x, *args)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.equal(ops.int8_conv2d(x, *args), want)
        assert torch.equal(ops.int8_conv2d(x.to(memory_format=torch.channels_last), *args), want)
    finally:
        torch.set_num_threads(previous)


def test_int8_conv2d_agrees_with_fbgemm_within_one_lsb():
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    gen = torch.Generator().manual_seed(21)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conv = torch.ao.nn.quantized.Conv2d(8, 12, 3, stride=1, padding=1)
        wq = torch.quantize_per_channel(torch.randn(12, 8, 3, 3, generator=gen) * 0.2, torch.rand(12) * 0.004 + 0.002,
                                        torch.zeros(12, dtype=torch.long), 0, torch.qint8)
        bf = torch.randn(12, generator=gen)
        conv.set_weight_bias(wq, bf)
        conv.scale, conv.zero_point = 0.08, 110
        xq = torch.quantize_per_tensor(torch.rand(2, 8, 9, 9, generator=gen), 0.01, 2, torch.quint8)
        want = conv(xq).int_repr()
    w_scale = wq.q_per_channel_scales().double()
    qb = torch.round(bf.double() / (0.01 * w_scale)).to(torch.int32)
    mult, shift = ops.quantize_multiplier(0.01 * w_scale / 0.08)
    packed, cs = ops.int8_pack_conv_weight(wq.int_repr())
    got = ops.int8_conv2d(xq.int_repr(), packed, cs, qb, 2, 0, mult, shift, 110, 0, 255, 3, 1, 1)
    assert (got.int() - want.int()).abs().max() <= 1


def _conv_args():
    w = torch.randint(-127, 128, (8, 2, 3, 3), dtype=torch.int8)
    packed, cs = ops.int8_pack_conv_weight(w, 2)
    mult, shift = ops.quantize_multiplier(torch.tensor([1e-3], dtype=torch.float64))
    return dict(x=torch.zeros((1, 4, 6, 6), dtype=torch.uint8), packed_weight=packed, weight_col_sums=cs,
                bias=None, x_zero_point=torch.tensor([0]), weight_zero_point=torch.tensor([0]), multiplier=mult,
                shift=shift, out_zero_point=torch.tensor([128]), qmin=0, qmax=255, kernel_size=[3, 3],
                stride=[1, 1], padding=[0, 0], dilation=[1, 1], groups=2, rounding="double")


@pytest.mark.parametrize("change, match", [
    (dict(x=torch.zeros((1, 4, 6, 6))), r"x must be uint8 or int8 activation codes"),
    (dict(x=torch.zeros((4, 6, 6), dtype=torch.uint8)), r"x must be 4-D NCHW"),
    (dict(kernel_size=[3, 2]), r"packed_weight has shape \[2, 1, 18, 16\] but .* pack to \[2, 1, 12, 16\]"),
    (dict(groups=3), r"groups = 3 must divide in_channels = 4 and out_channels = 8"),
    (dict(groups=1), r"packed_weight has shape .* groups = 1 pack to \[1, 1, 36, 16\]"),
    (dict(stride=[0, 1]), r"stride must be >= 1"),
    (dict(padding=[-1, 0]), r"padding must be >= 0"),
    (dict(dilation=[1]), r"dilation must have 2 elements"),
    (dict(kernel_size=[3, 3], dilation=[4, 4]), r"the output would be empty"),
    (dict(bias=torch.zeros(7, dtype=torch.int32)), r"bias must have shape \[8\]"),
    (dict(multiplier=torch.full((5,), 2**30, dtype=torch.int32)), r"multiplier must hold one element .* \(8\)"),
    (dict(x_zero_point=torch.tensor([-1])), r"x_zero_point = -1 is outside the range"),
    (dict(weight_col_sums=torch.zeros(8)), r"weight_col_sums must be the 1-D int32"),
])
def test_int8_conv2d_bad_inputs(change, match):
    args = _conv_args()
    args.update(change)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.lowbit.int8_conv2d(*args.values())


def test_int8_pack_conv_weight_bad_inputs():
    with pytest.raises(RuntimeError, match=r"weight must be 4-D"):
        ops.int8_pack_conv_weight(torch.zeros(8, 9, dtype=torch.int8))
    with pytest.raises(RuntimeError, match=r"groups = 3 must be >= 1 and divide out_channels = 8"):
        ops.int8_pack_conv_weight(torch.zeros(8, 1, 3, 3, dtype=torch.int8), 3)
    with pytest.raises(RuntimeError, match=r"weight must be an int8 tensor"):
        ops.int8_pack_conv_weight(torch.zeros(8, 1, 3, 3), 1)


def test_opcheck_and_compile_int8_conv2d():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    args = _conv_args()
    args["x"] = torch.randint(0, 256, (2, 4, 7, 6), dtype=torch.uint8)
    torch.library.opcheck(torch.ops.lowbit.int8_pack_conv_weight.default, (torch.zeros(8, 2, 3, 3, dtype=torch.int8), 2))
    torch.library.opcheck(torch.ops.lowbit.int8_conv2d.default, tuple(args.values()))
    args["stride"], args["padding"], args["dilation"] = [2, 1], [1, 2], [1, 2]
    torch.library.opcheck(torch.ops.lowbit.int8_conv2d.default, tuple(args.values()))

    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend("inductor")
    rest = list(args.values())[1:]

    def f(x):
        return torch.ops.lowbit.int8_conv2d(x, *rest)

    cf = torch.compile(f, backend=backend, fullgraph=True)
    for _ in range(2):
        x = torch.randint(0, 256, (2, 4, 7, 6), dtype=torch.uint8)
        assert torch.equal(cf(x), f(x))
    assert backend.frame_count == 1 and not counters["recompiles"] and not counters["graph_break"]
