"""Name → law. A new law adds one line here and nothing else changes."""

from __future__ import annotations

from scalinglab.errors import InputError
from scalinglab.laws.base import Law
from scalinglab.laws.batch import BatchTradeoff, CriticalBatch
from scalinglab.laws.broken_power_law import BrokenPowerLaw
from scalinglab.laws.chinchilla import Chinchilla
from scalinglab.laws.data_constrained import DataConstrained
from scalinglab.laws.exp_error import ExpError
from scalinglab.laws.hparams import OptimalBatch, OptimalLR
from scalinglab.laws.kaplan import ComputePowerLaw, Kaplan
from scalinglab.laws.loss_to_loss import LossToLoss
from scalinglab.laws.lr_schedule import Tissue
from scalinglab.laws.multi_power import MultiPower
from scalinglab.laws.overtraining import Overtraining
from scalinglab.laws.ptq import PTQ
from scalinglab.laws.sigmoid import Sigmoid

LAWS: dict[str, type[Law]] = {
    "chinchilla": Chinchilla,
    "kaplan": Kaplan,
    "compute": ComputePowerLaw,
    "data_constrained": DataConstrained,
    "broken_power_law": BrokenPowerLaw,
    "tissue": Tissue,
    "multi_power": MultiPower,
    "sigmoid": Sigmoid,
    "exp_error": ExpError,
    "overtraining": Overtraining,
    "loss_to_loss": LossToLoss,
    "batch_tradeoff": BatchTradeoff,
    "critical_batch": CriticalBatch,
    "optimal_lr": OptimalLR,
    "optimal_batch": OptimalBatch,
    "ptq": PTQ,
}


def _value(text: str):
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def get_law(name: str) -> Law:
    """A law from its name, with options for laws that take them: ``broken_power_law:column=params,n_breaks=2``.

    A law built with non-default options reports that same spec as its ``name``, so a fit result (and the
    bootstrap workers, which rebuild the law from its name) get the same law back.
    """
    base, _, opts = name.partition(":")
    try:
        # Case and '-' vs '_' do not matter: data-constrained, Data_Constrained and data_constrained agree.
        cls = LAWS[base.strip().lower().replace("-", "_")]
    except KeyError:
        raise InputError(f"--law: unknown law '{base}'; expected one of {', '.join(sorted(LAWS))}") from None
    kwargs = {}
    for part in filter(str.strip, opts.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise InputError(f"--law: option '{part}' of '{base}' is not of the form key=value")
        kwargs[key.strip()] = _value(value)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InputError(f"--law: bad options for '{base}': {exc}") from None
