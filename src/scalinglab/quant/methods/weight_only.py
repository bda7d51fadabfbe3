"""Weight-only round-to-nearest (W8A16 / W6A16 / W4A16): integer weights, activations left in float.

Each output row's weights are cut into groups of ``group_size`` inputs; a group gets an asymmetric
step s = (max − min)/(2^b − 1) and zero point z, and codes q = clamp(round(w/s) + z, 0, 2^b − 1)
(the group-wise scheme GPTQ and AWQ store; Frantar et al. 2023, Lin et al. 2024). Smaller groups follow
the weights more closely at the cost of one float16 step and one uint8 zero point per group. The codes
are packed (two per byte at 4 bits) in ``WeightOnlyLinear`` (quant/weight_only.py), whose fused
dequant-matmul never materialises the float weight. No calibration data is needed.

``--method weight_only`` or ``--method rtn --activations none``; ``--bits`` 8/6/4, ``--group-size``
32/64/128 or 0 (one group per output row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.calibrate import ChannelStats
from scalinglab.quant.checks import linear_features
from scalinglab.quant.config import MethodConfig, check_bits, check_choice
from scalinglab.quant.registry import Method, RuntimeModule, register, register_runtime
from scalinglab.quant.weight_only import WeightOnlyLinear, check_tensors

__all__ = ["WeightOnlyConfig", "weight_only_linear", "GROUP_SIZES"]

GROUP_SIZES = (32, 64, 128, 0)  # 0: one group per output row (per-channel)
DEFAULT_GROUP = 128  # the usual choice of GPTQ / AWQ checkpoints
SPEC_KEYS = ("format", "in_features", "out_features", "bits", "group_size", "bias", "tensors")


@dataclass(frozen=True, kw_only=True)
class WeightOnlyConfig(MethodConfig):
    """bits_w: 8, 6 or 4; group_size: inputs per step and zero point, 32/64/128 (0: one per output row)."""

    name: ClassVar[str] = "weight_only"
    activations: ClassVar[str] = "none"
    bits_a: ClassVar[None] = None
    option_fields: ClassVar[dict[str, tuple[str, ...]]] = {"bits": ("bits_w",)}

    bits_w: int = 8
    group_size: int = DEFAULT_GROUP

    def validate(self) -> None:
        check_bits("bits_w", self.bits_w)
        if isinstance(self.group_size, bool):
            raise InputError(f"group_size: expected one of 32, 64, 128 or 0 (per row), got {self.group_size!r}")
        check_choice("group_size", self.group_size, GROUP_SIZES)

    @property
    def label(self) -> str:
        return f"{self.name} W{self.bits_w}A16 " + (f"g{self.group_size}" if self.group_size else "per-channel")


def weight_only_linear(w: torch.Tensor, bias: torch.Tensor | None, stats: ChannelStats | None,
                       cfg: WeightOnlyConfig) -> WeightOnlyLinear:
    """Group-wise RTN of float W (out × in) into a packed ``WeightOnlyLinear``; ``stats`` unused."""
    return WeightOnlyLinear.from_float(w, bias, cfg.bits_w, cfg.group_size)


def check_spec(name: str, spec: Any, module: nn.Module, where: str) -> None:
    """A quantization-map entry rebuilds a WeightOnlyLinear the shape of the layer it replaces."""
    prefix = f"{where}: module {name!r}"
    if not isinstance(spec, dict):
        raise InputError(f"{prefix}: expected an object, got {type(spec).__name__}")
    for key in spec:
        if key not in SPEC_KEYS:
            raise InputError(f"{prefix}: unknown key {key!r}")
    if "tensors" not in spec:
        raise InputError(f"{prefix} lacks 'tensors'")
    WeightOnlyLinear.from_spec(spec, prefix)  # fields, types, ranges and the tensor layout
    shape = linear_features(module)
    if shape is None:
        raise InputError(f"{prefix} is a {type(module).__name__}, not a linear layer")
    if (spec["in_features"], spec["out_features"]) != shape:
        raise InputError(f"{prefix}: in/out features {spec['in_features']}×{spec['out_features']} "
                         f"do not match the model's {shape[0]}×{shape[1]}")


def check_loaded(name: str, module: WeightOnlyLinear, where: str) -> None:
    """After loading: codes and zero points within the bit width, steps finite and positive."""
    tensors = {k: v for k, v in module.state_dict().items() if v is not None}
    check_tensors(module.spec(), tensors, f"{where}: module {name!r}")


METHOD = register(Method(config=WeightOnlyConfig, linear=weight_only_linear, also_serves=(("rtn", "none"),)))
register_runtime(RuntimeModule(kind="WeightOnlyLinear", cls=WeightOnlyLinear, spec=lambda m: m.spec(),
                               check=check_spec, build=WeightOnlyLinear.from_spec, validate=check_loaded))
