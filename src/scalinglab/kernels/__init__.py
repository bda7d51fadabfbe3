"""Fast CPU kernels: int8 matmul with outlier decomposition, softmax family.

Names are exported lazily (PEP 562 ``__getattr__``) so ``import scalinglab.kernels`` pulls in neither
numba nor torch; the numba kernels compile (or load from the on-disk cache) on first call.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["softmax", "log_softmax", "cross_entropy", "cross_entropy_fastest", "ALGORITHMS"]

_LAZY = {
    "softmax": "scalinglab.kernels.softmax_api",
    "log_softmax": "scalinglab.kernels.softmax_api",
    "cross_entropy": "scalinglab.kernels.softmax_api",
    "ALGORITHMS": "scalinglab.kernels.softmax_api",
    "cross_entropy_fastest": "scalinglab.kernels.softmax_dispatch",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
