"""The resume state of a training run, stored without pickle: tensors in safetensors, the rest in JSON.

    from scalinglab.ladder.checkpoint import save_state, load_state
    save_state(path, model, opt, step=120, elapsed=3.2, evals=[...])
    step, elapsed, evals = load_state(path, model, opt, total_steps=400)   # fills model and opt in place

One file, ``state.safetensors``, written atomically:

    model.<name>             every tensor of ``model.state_dict()``
    optim.<i>.<key>          AdamW's per-parameter state (``step``, ``exp_avg``, ``exp_avg_sq``) of parameter i
    rng.torch                ``torch.get_rng_state()`` (uint8)
    metadata "scalinglab"    JSON: {"format", "version", "step", "elapsed", "evals": [EvalPoint as a dict]}

A checkpoint folder may sit on a shared filesystem where others can write, so the file is untrusted.
safetensors holds only raw tensors (nothing in it can run code), and everything read back is validated
before use: tensor names, shapes and dtypes against the model and optimizer being resumed, and every
JSON field's type and range. The optimizer's hyperparameters (``param_groups``) are not read from the
file at all: they come from the run's config. A pickle ``state.pt`` (what older versions wrote, or a
planted file) is never opened; :func:`refuse_pickle` turns it into an :class:`InputError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, fields
from pathlib import Path

import torch

from scalinglab.atomic import atomic_write
from scalinglab.errors import InputError

__all__ = ["STATE", "PICKLE_STATE", "save_state", "load_state", "refuse_pickle"]

STATE = "state.safetensors"
PICKLE_STATE = "state.pt"
FORMAT, VERSION = "scalinglab-train-state", 1
ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")


def refuse_pickle(workdir: Path) -> None:
    """InputError when the checkpoint folder holds a pickle state file (it is never loaded)."""
    planted = workdir / PICKLE_STATE
    if planted.exists():
        raise InputError(f"{planted}: a pickle checkpoint; scalinglab never loads pickles (unpickling can run "
                         f"code) and resumes only from {STATE}: delete {PICKLE_STATE} to train this run again")


def save_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, elapsed: float,
               evals: list) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{i}.{key}"] = torch.as_tensor(value).detach().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"format": FORMAT, "version": VERSION, "step": int(step), "elapsed": float(elapsed),
            "evals": [asdict(e) for e in evals]}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"scalinglab": json.dumps(meta)}))


def load_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, total_steps: int,
               eval_type: type) -> tuple[int, float, list]:
    """Validate ``path`` and load it into ``model`` and ``opt``; returns (step, elapsed, evals)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:  # safetensors raises its own error types (and OSError) on a damaged file
        raise InputError(f"{path}: not a readable training state ({type(exc).__name__}: {exc})") from None

    def bad(what: str) -> InputError:
        return InputError(f"{path}: {what}; delete the file to train this run again")

    try:
        meta = json.loads(header.get("scalinglab", ""))
    except json.JSONDecodeError:
        raise bad("no valid 'scalinglab' JSON metadata") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise bad(f"metadata is not a {FORMAT} version {VERSION}")
    step, elapsed, raw_evals = meta.get("step"), meta.get("elapsed"), meta.get("evals")
    if type(step) is not int or not 0 <= step <= total_steps:
        raise bad(f"'step' = {step!r}, expected an integer in [0, {total_steps}]")
    if type(elapsed) not in (int, float) or not math.isfinite(elapsed) or elapsed < 0:
        raise bad(f"'elapsed' = {elapsed!r}, expected a finite number >= 0")
    evals = _evals(raw_evals, step, eval_type, bad)

    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _check_tensors(model_sd, model.state_dict(), "model", bad)
    opt_state = _optimizer_state(tensors, opt, bad)
    rng = tensors.get("rng.torch")
    current_rng = torch.get_rng_state()
    if rng is None or rng.dtype != torch.uint8 or rng.shape != current_rng.shape:
        raise bad(f"'rng.torch' missing or not a uint8 tensor of shape {tuple(current_rng.shape)}")
    extra = set(tensors) - {f"model.{k}" for k in model_sd} - {"rng.torch"} - {
        f"optim.{i}.{key}" for i, st in opt_state.items() for key in st}
    if extra:
        raise bad(f"unexpected tensors {sorted(extra)[:3]}")

    model.load_state_dict(model_sd, strict=True)
    if opt_state:
        opt.load_state_dict({"state": opt_state, "param_groups": opt.state_dict()["param_groups"]})
    torch.set_rng_state(rng)
    return step, float(elapsed), evals


OPTIONAL_EVAL_FIELDS = ("noise_scale",)  # None when a run does not measure it


def _evals(raw, step: int, eval_type: type, bad) -> list:
    names = [f.name for f in fields(eval_type)]
    if not isinstance(raw, list):
        raise bad("'evals' is not a list")
    out = []
    for n, e in enumerate(raw):
        if not isinstance(e, dict) or sorted(e) != sorted(names):
            raise bad(f"evals[{n}] is not an object with keys {', '.join(names)}")
        for name in names:
            v = e[name]
            if v is None and name in OPTIONAL_EVAL_FIELDS:
                continue
            if type(v) not in (int, float) or not math.isfinite(v):
                raise bad(f"evals[{n}].{name} = {v!r}, expected a finite number")
        if type(e["step"]) is not int or not 0 < e["step"] <= step:
            raise bad(f"evals[{n}].step = {e['step']!r}, expected an integer in [1, {step}]")
        out.append(eval_type(**e))
    return out


def _check_tensors(got: dict, expected: dict, what: str, bad) -> None:
    if set(got) != set(expected):
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        raise bad(f"{what} tensors do not match the run's model (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in expected.items():
        if got[k].shape != v.shape or got[k].dtype != v.dtype:
            raise bad(f"{what} tensor {k!r} is {got[k].dtype} {tuple(got[k].shape)}, expected {v.dtype} {tuple(v.shape)}")


def _optimizer_state(tensors: dict, opt: torch.optim.Optimizer, bad) -> dict[int, dict[str, torch.Tensor]]:
    """AdamW's per-parameter state from the file, checked against the parameters it belongs to: either every
    parameter has (step, exp_avg, exp_avg_sq) or none has (a state saved before the first step)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if not k.startswith("optim."):
            continue
        parts = k.split(".")
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params) or parts[2] not in ADAM_KEYS:
            raise bad(f"unexpected optimizer tensor {k!r}")
        state.setdefault(int(parts[1]), {})[parts[2]] = v
    if not state:
        return {}
    if len(state) != len(params):
        raise bad(f"optimizer state for {len(state)} of {len(params)} parameters")
    for i, p in enumerate(params):
        st = state[i]
        if sorted(st) != sorted(ADAM_KEYS):
            raise bad(f"optimizer state of parameter {i} has {sorted(st)}, expected {list(ADAM_KEYS)}")
        if st["step"].numel() != 1 or not st["step"].is_floating_point() or not torch.isfinite(st["step"]).all():
            raise bad(f"optimizer step of parameter {i} is not a finite scalar")
        for key in ("exp_avg", "exp_avg_sq"):
            if st[key].shape != p.shape or st[key].dtype != p.dtype:
                raise bad(f"optimizer {key} of parameter {i} is {st[key].dtype} {tuple(st[key].shape)}, "
                          f"expected {p.dtype} {tuple(p.shape)}")
    return state
