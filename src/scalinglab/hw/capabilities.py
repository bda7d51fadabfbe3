"""What this machine can do: CPU model and instruction sets, torch's dispatch level, CUDA.

Two views of the instruction sets are kept. ``cpu_flags`` is what /proc/cpuinfo says the silicon has;
``flags`` is what the libraries will actually use, after the environment caps them:
``ATEN_CPU_CAPABILITY`` (torch's vectorised kernels), ``ONEDNN_MAX_CPU_ISA`` (oneDNN: matmul, bf16)
and ``FBGEMM_ENABLE_INSTRUCTIONS`` (fbgemm's int8 kernels). Setting them to AVX2 makes an AVX-512
machine behave — and be reported — as an AVX2-only one, which is how the dispatch is tested.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["Capabilities", "detect", "ENV_OVERRIDES", "RELEVANT_FLAGS", "effective_flags"]

# Flags that change which int8 / bf16 kernels are fast (Linux /proc/cpuinfo spelling).
RELEVANT_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                  "amx_tile", "amx_int8", "amx_bf16")
# Environment variables that cap the instruction sets a library uses (they change the right answer,
# so they are part of the calibration cache key).
ENV_OVERRIDES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "FBGEMM_ENABLE_INSTRUCTIONS", "NUMBA_CPU_NAME",
                 "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_AVX512 = ("avx512f", "avx512bw", "avx512_vnni", "avx512_bf16")
_AMX = ("amx_tile", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class Capabilities:
    cpu_model: str
    arch: str
    torch_version: str
    torch_capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    cpu_flags: tuple[str, ...]  # relevant flags the CPU reports
    flags: tuple[str, ...]  # relevant flags left after the environment's caps
    threads: int
    cuda: bool
    cuda_devices: tuple[str, ...] = ()
    quantized_engines: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def isa(self) -> str:
        """One word for the effective CPU level: amx, avx512-vnni-bf16, avx512-vnni, avx512, avx2, base."""
        if self.has("amx_int8"):
            return "amx"
        if self.has("avx512_vnni"):
            return "avx512-vnni-bf16" if self.has("avx512_bf16") else "avx512-vnni"
        if self.has("avx512f"):
            return "avx512"
        if self.has("avx2"):
            return "avx2-vnni" if self.has("avx_vnni") else "avx2"
        return "base"

    def cache_key(self) -> str:
        """Everything a measurement depends on; a change in any of them means calibrating again."""
        parts = {"cpu": self.cpu_model, "arch": self.arch, "torch": self.torch_version,
                 "capability": self.torch_capability, "flags": list(self.flags), "threads": self.threads,
                 "env": self.env}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["isa"] = self.isa
        return d


def _cpuinfo(path: Path = Path("/proc/cpuinfo")) -> tuple[str, set[str]]:
    """(model name, flags) of the first processor listed; the platform's name and no flags elsewhere."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features"):
            flags = set(value.split())
            break
    return model, flags


def effective_flags(cpu_flags, env: dict[str, str], torch_capability: str) -> tuple[str, ...]:
    """The relevant flags the libraries may use once the environment caps them: torch's dispatch level
    when below AVX-512, ``ONEDNN_MAX_CPU_ISA`` (AVX2, AVX2_VNNI, AVX512_CORE, AVX512_CORE_VNNI,
    AVX512_CORE_BF16, …) and ``FBGEMM_ENABLE_INSTRUCTIONS`` (AVX2, AVX512, AVX512_E1 = VNNI)."""
    have = {f for f in RELEVANT_FLAGS if f in set(cpu_flags)}
    caps = [env.get(k, "").upper() for k in ("ONEDNN_MAX_CPU_ISA", "FBGEMM_ENABLE_INSTRUCTIONS")]
    if not torch_capability.upper().startswith("AVX512"):
        caps.append(torch_capability.upper())
    for cap in caps:
        if not cap or cap in ("ALL", "DEFAULT_ISA") or "AMX" in cap:
            continue
        if cap.startswith("AVX512"):
            have -= set(_AMX)
            if "BF16" not in cap:
                have.discard("avx512_bf16")
                if "VNNI" not in cap and cap != "AVX512_E1":
                    have.discard("avx512_vnni")
            continue
        have -= set(_AVX512) | set(_AMX)  # anything below AVX-512
        if "VNNI" not in cap:
            have.discard("avx_vnni")
        if not cap.startswith("AVX2"):
            have -= {"avx2", "fma", "avx_vnni"}
    return tuple(f for f in RELEVANT_FLAGS if f in have)


@lru_cache(maxsize=1)
def detect() -> Capabilities:
    """Capabilities of this process's machine (cached for the process)."""
    import torch

    model, cpu_flags = _cpuinfo()
    capability = str(torch.backends.cpu.get_cpu_capability())
    env = {k: os.environ[k] for k in ENV_OVERRIDES if os.environ.get(k)}
    cuda = bool(torch.cuda.is_available())
    devices = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ()
    return Capabilities(
        cpu_model=model, arch=platform.machine(), torch_version=torch.__version__, torch_capability=capability,
        cpu_flags=tuple(f for f in RELEVANT_FLAGS if f in cpu_flags),
        flags=effective_flags(cpu_flags, env, capability), threads=torch.get_num_threads(), cuda=cuda,
        cuda_devices=devices, quantized_engines=tuple(torch.backends.quantized.supported_engines), env=env)
