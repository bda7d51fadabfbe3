"""Hardware-aware dispatch: what this machine can do, what it measured, and the choices that follow.

Every backend or precision choice asks here (``int8_plan``, ``use_bf16``, ``use_ce_kernel``) instead of carrying a
constant measured on another CPU. ``scalinglab doctor`` prints all of it.
"""

from scalinglab.hw.capabilities import Capabilities, detect
from scalinglab.hw.dispatch import Int8Plan, calibration, int8_plan, use_bf16, use_ce_kernel

__all__ = ["Capabilities", "detect", "Int8Plan", "calibration", "int8_plan", "use_bf16", "use_ce_kernel"]
