"""The row and chunk schedules of the softmax drivers agree with each other and with the serial loop."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.kernels import softmax_driver as drv
from scalinglab.kernels.softmax_api import ALGORITHMS

# log-softmax is computed by the two-pass code only, so it is paired with that algorithm alone.
CASES = [(a, False) for a in ALGORITHMS] + [("two-pass", True)]


@pytest.mark.parametrize(("algorithm", "log"), CASES, ids=[f"{a}-{'log' if lg else 'softmax'}" for a, lg in CASES])
def test_schedules_agree(algorithm, log):
    code = ALGORITHMS[algorithm]
    x = (np.random.default_rng(3).standard_normal((3, 2 * drv.CHUNK + 777)) * 5).astype(np.float32)
    outs = []
    for schedule in (drv._rows_serial, drv._rows_parallel, drv._chunks_parallel):
        y = np.empty_like(x)
        schedule(x, y, code, log)
        outs.append(y)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)
    np.testing.assert_allclose(outs[2], outs[0], rtol=1e-5, atol=1e-12 if not log else 1e-4)


def test_cross_entropy_rows_skips_ignored_targets():
    x = np.random.default_rng(4).standard_normal((5, 100)).astype(np.float32)
    t = np.array([1, -100, 99, 0, 50])
    loss = drv.cross_entropy_rows(x, t, -100)
    x64 = x.astype(np.float64)
    lse = np.log(np.exp(x64).sum(1))
    want = lse - x64[np.arange(5), np.where(t < 0, 0, t)]
    want[1] = 0
    np.testing.assert_allclose(loss, want, rtol=2e-6)
