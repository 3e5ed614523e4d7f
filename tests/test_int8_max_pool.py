"""lowbit.ops.int8_max_pool2d: max pooling on uint8 / int8 codes equals torch's max_pool2d element for
element (padding never selected, ceil_mode, dilation, stride defaulting to the kernel), raises where
torch raises with errors naming the argument, passes opcheck and compiles with fullgraph=True."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import lowbit  # noqa: F401  (registers the ops)
from lowbit import ops

SIZES = [(8, 8), (7, 9), (1, 1), (5, 3), (33, 17), (2, 40)]
KERNELS = [(1, 1), (2, 2), (3, 3), (2, 3), (4, 1)]
STRIDES = [None, (1, 1), (2, 2), (3, 2)]
PADDINGS = [(0, 0), (1, 1), (0, 1), (2, 2)]
DILATIONS = [(1, 1), (2, 1), (2, 2)]


def codes(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = (-128, 128) if dtype == torch.int8 else (0, 256)
    return torch.randint(lo, hi, shape, dtype=dtype, generator=g)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8], ids=["u8", "s8"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_equals_torch_max_pool2d_over_a_grid_of_parameters(dtype, size):
    x = codes((2, 3, *size), dtype, seed=size[0] * 100 + size[1])
    compared = 0
    for k, s, p, d, ceil_mode in itertools.product(KERNELS, STRIDES, PADDINGS, DILATIONS, (False, True)):
        try:
            expected = F.max_pool2d(x, k, s, p, d, ceil_mode)
        except RuntimeError:
            with pytest.raises(RuntimeError, match=r"lowbit\.int8_max_pool2d: "):
                ops.int8_max_pool2d(x, k, s, p, d, ceil_mode)
            continue
        got = ops.int8_max_pool2d(x, k, s, p, d, ceil_mode)
        assert got.dtype == dtype and got.is_contiguous()
        assert torch.equal(got, expected), (k, s, p, d, ceil_mode)
        # the extreme codes: a window of only the lowest code, or of only the highest
        for fill in (torch.iinfo(dtype).min, torch.iinfo(dtype).max):
            xf = torch.full_like(x, fill)
            assert torch.equal(ops.int8_max_pool2d(xf, k, s, p, d, ceil_mode), F.max_pool2d(xf, k, s, p, d, ceil_mode))
        compared += 1
    assert compared > 50  # (torch rejects most combinations on a 1x1 input)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8], ids=["u8", "s8"])
def test_non_contiguous_unbatched_and_empty_batch(dtype):
    x = codes((4, 6, 13, 11), dtype, seed=3)
    views = {
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "sliced": x[:, ::2, 1:, ::2],
        "transposed": x.transpose(2, 3),
        "unbatched": x[1],
        "empty batch": x[:0],
    }
    for name, v in views.items():
        for args in [(2, None, 0, 1, False), (3, 2, 1, 1, True), ((3, 2), (1, 2), (1, 0), (2, 1), False)]:
            # reference on a contiguous copy: torch's uint8 channels-last kernel fails an int32-limit
            # check even on small inputs
            assert torch.equal(ops.int8_max_pool2d(v, *args), F.max_pool2d(v.contiguous(), *args)), (name, args)


def test_the_digits_cnn_pooling_and_a_large_plane():
    for shape, args in [((360, 32, 8, 8), (2,)), ((64, 32, 32, 32), (3, 2, 1)), ((2, 3, 112, 112), (3, 2, 1, 1, True))]:
        x = codes(shape, torch.uint8, seed=shape[0])
        assert torch.equal(ops.int8_max_pool2d(x, *args), F.max_pool2d(x, *args))


def test_threads_do_not_change_the_result():
    x = codes((16, 8, 9, 9), torch.int8, seed=9)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(ops.int8_max_pool2d(x, 3, 2, 1, 1, True))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("args, message", [
    (((2, 2), [], (2, 2), (1, 1), False), r"padding must be at most half of kernel_size, got padding \[2, 2\]"),
    (((0, 2), [], (0, 0), (1, 1), False), r"kernel_size must be >= 1, got \[0, 2\]"),
    (((2, 2), (0, 1), (0, 0), (1, 1), False), r"stride must be >= 1, got \[0, 1\]"),
    (((2, 2), [], (-1, 0), (1, 1), False), r"padding must be >= 0, got \[-1, 0\]"),
    (((2, 2), [], (0, 0), (0, 1), False), r"dilation must be >= 1, got \[0, 1\]"),
    (((9, 2), [], (0, 0), (1, 1), False), r"the output would be empty: input 8x8, kernel_size \[9, 2\]"),
    (((2,), [], (0, 0), (1, 1), False), r"kernel_size must have 2 elements, got \[2\]"),
])
def test_bad_arguments_name_argument_and_value(args, message):
    x = codes((1, 2, 8, 8), torch.uint8)
    with pytest.raises(RuntimeError, match=message):
        torch.ops.lowbit.int8_max_pool2d(x, *args)


def test_bad_inputs():
    with pytest.raises(RuntimeError, match=r"x must be uint8 or int8 codes, got Float"):
        ops.int8_max_pool2d(torch.zeros(1, 1, 4, 4), 2)
    with pytest.raises(RuntimeError, match=r"x must be 4-D NCHW or 3-D CHW, got shape \[4, 4\]"):
        ops.int8_max_pool2d(torch.zeros(4, 4, dtype=torch.uint8), 2)
    with pytest.raises(RuntimeError, match=r"non-empty channel and spatial dimensions, got shape \[1, 0, 4, 4\]"):
        ops.int8_max_pool2d(torch.zeros(1, 0, 4, 4, dtype=torch.uint8), 2)


def test_opcheck_and_compile():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    op = torch.ops.lowbit.int8_max_pool2d.default
    torch.library.opcheck(op, (codes((2, 3, 7, 6), torch.uint8), [2, 2], [], [0, 0], [1, 1], False))
    torch.library.opcheck(op, (codes((2, 3, 7, 6), torch.int8), [3, 2], [2, 1], [1, 1], [1, 2], True))
    torch.library.opcheck(op, (codes((3, 9, 9), torch.uint8), [3, 3], [2, 2], [1, 1], [1, 1], True))

    torch._dynamo.reset()
    counters.clear()
    backend = CompileCounterWithBackend("inductor")

    def f(x):
        return ops.int8_max_pool2d(x, 3, 2, 1, ceil_mode=True)

    cf = torch.compile(f, backend=backend, fullgraph=True)
    for seed in range(2):
        x = codes((2, 4, 9, 7), torch.uint8, seed=seed)
        assert torch.equal(cf(x), F.max_pool2d(x, 3, 2, 1, ceil_mode=True))
    assert backend.frame_count == 1 and not counters["recompiles"] and not counters["graph_break"]
