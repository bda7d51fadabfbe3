"""scalinglab.kernels.softmax / log_softmax / cross_entropy against a float64 reference and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scalinglab.errors import InputError
from scalinglab.kernels import ALGORITHMS, cross_entropy, log_softmax, softmax

RTOL = {np.float32: 2e-6, np.float64: 1e-13}  # the bound for float32; float64 near its ulp
# The max-subtracting baselines round x − max to the working precision before exp, so their float32
# error grows with |x − max| (≈ 60 · 2^-24 here); two-pass reduces x − n·ln2 exactly and meets RTOL.
BASELINE_RTOL = {np.float32: 1e-5, np.float64: 1e-13}
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]


def reference_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def reference_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x.astype(np.float64)
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def assert_close(y: np.ndarray, ref: np.ndarray, rtol: float) -> None:
    """|y − ref| ≤ rtol·|ref|, except below the smallest normal number where flushing to 0 is allowed."""
    tiny = np.finfo(y.dtype).tiny
    err = np.abs(y.astype(np.float64) - ref)
    bad = err > rtol * np.abs(ref) + 2 * tiny
    assert not bad.any(), f"max rel err {np.max(err / np.maximum(np.abs(ref), tiny)):.3g} at {np.argwhere(bad)[:3]}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((7,), -1), ((3, 1000), -1), ((5, 33), 0), ((2, 3, 37), 1), ((4, 65), -1), ((2, 300_000), -1)],
    ids=["vector", "rows", "first-axis", "middle-axis", "lane-tail", "long-rows-chunked"],
)
def test_softmax_matches_float64_reference(shape, axis, algorithm, dtype):
    x = (np.random.default_rng(0).standard_normal(shape) * 8).astype(dtype)
    rtol = RTOL[dtype] if algorithm == "two-pass" else BASELINE_RTOL[dtype]
    y = softmax(x, axis=axis, algorithm=algorithm)
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, reference_softmax(x, axis), rtol)


EDGE_ROWS = {
    "huge-positive": [1e30, 1e30, 9e29, -1e30],
    "huge-negative": [-1e30, -1e30 * 1.5, -2e30, -1e30],
    "mixed-huge": [1e30, -1e30, 0.0, 5.0],
    "neg-inf-entries": [-np.inf, 0.0, 1.0, -np.inf],
    "all-equal": [3.25, 3.25, 3.25, 3.25],
    "all-equal-large": [7e4, 7e4, 7e4, 7e4],
    "far-below": [0.0, -60.0, -80.0, -100.0],
    "near-safe-limit": [65535.0, 65536.0, 65537.0, 65530.0],
}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize("row", list(EDGE_ROWS.values()), ids=list(EDGE_ROWS))
def test_edge_rows_neither_overflow_nor_underflow(row, algorithm, dtype):
    x = np.array([row], dtype)
    y = softmax(x, algorithm=algorithm)
    assert np.isfinite(y).all()
    assert_close(y, reference_softmax(x), RTOL[dtype] if algorithm == "two-pass" else BASELINE_RTOL[dtype])


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize(
    "bad_row", [[np.nan, 1.0, 2.0], [1.0, np.inf, 2.0], [-np.inf, -np.inf, -np.inf]], ids=["nan", "plus-inf", "all-neg-inf"]
)
def test_bad_row_is_nan_and_only_that_row(bad_row, algorithm):
    x = np.array([[0.0, 1.0, 2.0], bad_row, [5.0, 5.0, -1.0]], np.float32)
    y = softmax(x, algorithm=algorithm)
    assert np.isnan(y[1]).all()
    assert_close(y[[0, 2]], reference_softmax(x[[0, 2]]), BASELINE_RTOL[np.float32])
    torch_nan = torch.softmax(torch.from_numpy(x), -1)[1].isnan().all().item()
    assert torch_nan  # the behaviour we copy


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_nan_in_long_chunked_row_stays_in_its_row(algorithm):
    x = np.random.default_rng(1).standard_normal((2, 300_000)).astype(np.float32)
    x[0, 200_001] = np.nan
    y = softmax(x, algorithm=algorithm)
    assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=40),
        elements=st.one_of(
            st.floats(float(np.float32(-1e30)), float(np.float32(1e30)), width=32),
            st.floats(-50, 50, width=32),
            st.just(-np.inf),
        ),
    ),
    st.integers(0, 2),
)
@example(np.array([14.15625] + [2.8] * 30, dtype=np.float32), 0)  # log-softmax of the max: 4.9e-7 off
def test_two_pass_property_against_reference(x, axis_pick):
    axis = axis_pick % x.ndim
    with np.errstate(invalid="ignore"):  # all −inf rows: the reference is NaN too
        ref = reference_softmax(x, axis)
    y = softmax(x, axis=axis)
    all_neg_inf = np.all(x == -np.inf, axis=axis, keepdims=True)
    assert np.array_equal(np.isnan(y), np.broadcast_to(all_neg_inf, y.shape))
    ok = ~np.broadcast_to(all_neg_inf, y.shape)
    assert_close(y[ok], ref[ok], RTOL[np.float32])
    keep = ok & (ref > 0)
    with np.errstate(invalid="ignore"):
        log_ref = reference_log_softmax(x, axis)[keep]
    # log y has the absolute error that y has relative error (the sum's and the exponential's rounding),
    # so near 0 — the row's max when the others are far below — the bound is absolute: RTOL itself
    np.testing.assert_allclose(log_softmax(x, axis=axis)[keep], log_ref, rtol=2e-6, atol=RTOL[np.float32])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(("shape", "axis"), [((3, 500), -1), ((40, 6), 0), ((1, 300_000), -1)], ids=["rows", "first-axis", "chunked"])
def test_log_softmax_matches_reference(shape, axis, dtype):
    x = (np.random.default_rng(2).standard_normal(shape) * 10).astype(dtype)
    ref = reference_log_softmax(x, axis)
    y = log_softmax(x, axis=axis)
    # Absolute error of ~1 ulp of ln Σe^x is unavoidable where the output cancels to ~0.
    np.testing.assert_allclose(y, ref, rtol=RTOL[dtype], atol=4 * np.finfo(dtype).eps)


def test_log_softmax_keeps_neg_inf_and_huge_inputs():
    x = np.array([[-np.inf, 0.0, 0.0], [1e30, 1e30, -1e30]], np.float32)
    y = log_softmax(x)
    assert y[0, 0] == -np.inf
    np.testing.assert_allclose(y[0, 1:], -np.log(2), rtol=2e-6)
    np.testing.assert_allclose(y[1], [-np.log(2), -np.log(2), -2e30], rtol=2e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=DTYPE_IDS)
def test_torch_in_torch_out_without_copies(dtype):
    x = torch.randn(6, 50, dtype=dtype)
    y = softmax(x)
    assert isinstance(y, torch.Tensor) and y.dtype == dtype
    torch.testing.assert_close(y, torch.softmax(x, -1), rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(log_softmax(x, axis=0), torch.log_softmax(x, 0), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=DTYPE_IDS)
def test_cross_entropy_matches_torch(reduction, dtype):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(257, 1003, generator=g, dtype=dtype) * 4
    targets = torch.randint(0, 1003, (257,), generator=g)
    targets[[3, 100]] = -100
    ours = cross_entropy(logits, targets, reduction=reduction)
    theirs = torch.nn.functional.cross_entropy(logits, targets, reduction=reduction)
    assert isinstance(ours, torch.Tensor) and ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=2e-6, atol=1e-6)


def test_cross_entropy_numpy_and_edge_rows():
    logits = np.array([[1e30, 0.0, -1e30], [-np.inf, 0.0, 0.0], [2.0, 2.0, 2.0]], np.float32)
    loss = cross_entropy(logits, np.array([0, 1, 2]), reduction="none")
    np.testing.assert_allclose(loss, [0.0, np.log(2), np.log(3)], rtol=2e-6, atol=1e-7)
    assert isinstance(cross_entropy(logits, np.array([0, 1, 2])), np.floating)
    assert np.isnan(cross_entropy(logits, np.array([-100, -100, -100])))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: softmax(np.ones(3, np.int64)), "float32 or float64"),
        (lambda: softmax(np.ones(3, np.float32), algorithm="fast"), "algorithm"),
        (lambda: softmax(np.ones((2, 3), np.float32), axis=2), "axis"),
        (lambda: softmax(np.float32(1.0)), "scalar"),
        (lambda: cross_entropy(np.ones((2, 3), np.float32), np.array([0, 3])), r"\[0, 3\)"),
        (lambda: cross_entropy(np.ones((2, 3), np.float32), np.array([0.0, 1.0])), "integer"),
        (lambda: cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1]), reduction="avg"), "reduction"),
    ],
    ids=["int-dtype", "unknown-algorithm", "axis-out-of-range", "scalar", "target-out-of-range", "float-targets", "bad-reduction"],
)
def test_bad_input_is_an_input_error(call, match):
    with pytest.raises(InputError, match=match):
        call()


def test_empty_arrays_pass_through():
    assert softmax(np.zeros((0, 5), np.float32)).shape == (0, 5)
    assert softmax(np.zeros((3, 0), np.float64)).shape == (3, 0)


# --------------------------------------------------------------------------- out= buffers


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize(("shape", "axis"), [((3, 1000), -1), ((2, 300_000), -1), ((40, 6), 0)], ids=["rows", "chunked", "first-axis"])
def test_out_buffer_numpy_is_written_and_returned(shape, axis, algorithm):
    x = (np.random.default_rng(3).standard_normal(shape) * 8).astype(np.float32)
    out = np.full(shape, 7.0, np.float32)
    y = softmax(x, axis=axis, algorithm=algorithm, out=out)
    assert y is out
    rtol = RTOL[np.float32] if algorithm == "two-pass" else BASELINE_RTOL[np.float32]
    assert_close(out, reference_softmax(x, axis), rtol)


def test_out_buffer_torch_and_non_contiguous_and_in_place():
    x = torch.randn(6, 50)
    out = torch.empty(6, 50)
    assert softmax(x, out=out) is out
    torch.testing.assert_close(out, torch.softmax(x, -1), rtol=2e-6, atol=1e-7)
    out_t = torch.empty(50, 6).T  # a transposed (non-contiguous) buffer: written through one copy
    assert log_softmax(x, out=out_t) is out_t
    torch.testing.assert_close(out_t, torch.log_softmax(x, -1), rtol=2e-6, atol=1e-6)
    xn = (np.random.default_rng(4).standard_normal((4, 300)) * 5).astype(np.float64)
    ref = reference_softmax(xn)
    assert softmax(xn, out=xn) is xn  # in place
    assert_close(xn, ref, RTOL[np.float64])
    mixed = np.empty((6, 50), np.float32)
    softmax(x, out=mixed)  # torch in, NumPy buffer out
    np.testing.assert_allclose(mixed, torch.softmax(x, -1).numpy(), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("out", "match"),
    [
        (np.empty((3, 2), np.float32), r"out: expected shape \(2, 3\) \(the shape of x\), got \(3, 2\)"),
        (np.empty((2, 3), np.float64), "out: expected dtype float32 \\(the dtype of x\\), got float64"),
        (torch.empty(2, 3, dtype=torch.float64), "out: expected dtype float32"),
        (torch.empty(2, 4), r"out: expected shape \(2, 3\)"),
        ([[0.0] * 3] * 2, "out: expected a NumPy array or a CPU torch tensor, got list"),
        (torch.empty(2, 3, requires_grad=True), "requires grad"),
    ],
    ids=["shape", "dtype", "torch-dtype", "torch-shape", "list", "requires-grad"],
)
def test_bad_out_buffer_is_an_input_error(out, match):
    with pytest.raises(InputError, match=match):
        softmax(np.ones((2, 3), np.float32), out=out)


def test_read_only_or_partly_overlapping_out_is_an_input_error():
    x = np.ones((2, 3), np.float32)
    ro = np.empty((2, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(InputError, match="read-only"):
        softmax(x, out=ro)
    buf = np.ones(7, np.float32)
    with pytest.raises(InputError, match="overlaps x only in part"):
        softmax(buf[:6].reshape(2, 3), out=buf[1:].reshape(2, 3))
