"""Name → law. A new law adds one line here and nothing else changes."""

from __future__ import annotations

from scalinglab.errors import InputError
from scalinglab.laws.base import Law
from scalinglab.laws.broken_power_law import BrokenPowerLaw
from scalinglab.laws.chinchilla import Chinchilla
from scalinglab.laws.data_constrained import DataConstrained
from scalinglab.laws.kaplan import ComputePowerLaw, Kaplan
from scalinglab.laws.lr_schedule import Tissue
from scalinglab.laws.multi_power import MultiPower

LAWS: dict[str, type[Law]] = {
    "chinchilla": Chinchilla,
    "kaplan": Kaplan,
    "compute": ComputePowerLaw,
    "data_constrained": DataConstrained,
    "broken_power_law": BrokenPowerLaw,
    "tissue": Tissue,
    "multi_power": MultiPower,
}


def get_law(name: str) -> Law:
    try:
        return LAWS[name]()
    except KeyError:
        raise InputError(f"--law: unknown law '{name}'; expected one of {', '.join(sorted(LAWS))}") from None
