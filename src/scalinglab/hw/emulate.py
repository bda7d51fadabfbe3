"""Run a command as if on an AVX2-only CPU: the environment caps each library's instruction sets.

torch's own kernels honour ``ATEN_CPU_CAPABILITY``, oneDNN (fp32/bf16 matmul) ``ONEDNN_MAX_CPU_ISA``,
fbgemm (quantized linears) ``FBGEMM_ENABLE_INSTRUCTIONS`` and numba ``NUMBA_CPU_NAME``. The caps are read
when each library initialises, so they must be set before the process starts: :func:`reexec` replaces
the current process with the same command under them.
"""

from __future__ import annotations

import os
import sys

__all__ = ["AVX2_ENV", "reexec"]

AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
            "NUMBA_CPU_NAME": "haswell"}


def reexec(argv: list[str], env: dict[str, str] = AVX2_ENV) -> None:
    """Replace this process by ``python argv…`` with ``env`` added (no return)."""
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *argv], {**os.environ, **env})
