"""Per-method configs, the registry's dispatch on config type, and name → config for the CLI."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.quant import (
    LLMInt8Config,
    OutlierTuneConfig,
    RTNConfig,
    SmoothQuantConfig,
    config_for,
    config_from_dict,
    method_names,
    quantize_,
)
from scalinglab.quant import registry as R
from scalinglab.quant.config import MethodConfig
from scalinglab.quant.models import forward_logits

from .tiny_models import build_model

CONFIGS = [RTNConfig(), LLMInt8Config(), SmoothQuantConfig(), OutlierTuneConfig(), RTNConfig(bits_w=4, bits_a=6),
           SmoothQuantConfig(alpha=0.8, a_granularity="tensor")]
IDS = ["rtn", "llm.int8", "smoothquant", "outliertune", "rtn-W4A6", "smoothquant-alpha0.8"]


def test_paper_defaults_and_own_fields_only():
    assert LLMInt8Config().threshold == 6.0 and (LLMInt8Config.bits_w, LLMInt8Config.bits_a) == (8, 8)
    assert SmoothQuantConfig().alpha == 0.5
    assert "alpha" not in RTNConfig.field_names() and "threshold" not in SmoothQuantConfig.field_names()
    assert set(OutlierTuneConfig.field_names()) == {"skip", "bits_w", "bits_a"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        RTNConfig().bits_w = 4  # type: ignore[misc]


def test_needs_calibration():
    assert not RTNConfig().needs_calibration
    assert RTNConfig(a_granularity="tensor", a_dynamic=False).needs_calibration
    assert all(c().needs_calibration for c in (LLMInt8Config, SmoothQuantConfig, OutlierTuneConfig))


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_dict_round_trip(cfg):
    d = cfg.to_dict()
    assert d["method"] == cfg.name and config_from_dict(d) == cfg


BAD_DICTS = [
    ({"method": "gptq"}, "method"),
    ({"method": "rtn", "bits_w": 3}, "bits_w"),
    ({"method": "rtn", "bits_w": "8"}, "bits_w"),
    ({"method": "rtn", "bits_w": True}, "bits_w"),
    ({"method": "rtn", "a_dynamic": "yes"}, "a_dynamic"),
    ({"method": "rtn", "a_dynamic": False}, "a_granularity"),  # per-token scales exist only at run time
    ({"method": "rtn", "alpha": 0.5}, "'alpha'"),  # another method's field
    ({"method": "rtn", "skip": "lm_head"}, "skip"),
    ({"method": "smoothquant", "alpha": 1.5}, "alpha"),
    ({"method": "smoothquant", "alpha": float("nan")}, "alpha"),
    ({"method": "llm.int8", "threshold": -1}, "threshold"),
    ({"method": "llm.int8", "bits_w": 8}, "'bits_w'"),  # fixed by the method, not a field
    ([1, 2], "object"),
]


@pytest.mark.parametrize(("d", "needle"), BAD_DICTS, ids=[f"{i}-{n.strip(chr(39))}" for i, (_, n) in enumerate(BAD_DICTS)])
def test_from_dict_refuses_in_one_line(d, needle):
    with pytest.raises(InputError) as exc:
        config_from_dict(d)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_config_for_maps_cli_options():
    assert {"rtn", "llm.int8", "smoothquant", "outliertune", "weight_only"} <= set(method_names())
    assert config_for("rtn", bits=4) == RTNConfig(bits_w=4, bits_a=4)
    assert config_for("rtn", per_tensor=True) == RTNConfig(w_granularity="tensor", a_granularity="tensor")
    assert config_for("smoothquant", bits=6, alpha=0.7, per_tensor=True) == \
        SmoothQuantConfig(bits_w=6, bits_a=6, alpha=0.7, a_granularity="tensor")
    assert config_for("llm.int8", bits=8, threshold=5.0, alpha=None) == LLMInt8Config(threshold=5.0)
    assert config_for("outliertune", activations="int8") == OutlierTuneConfig()


@pytest.mark.parametrize(("name", "options", "needle"), [
    ("gptq", {}, "--method"),
    ("rtn", {"bits": 5}, "--bits"),
    ("llm.int8", {"bits": 4}, "llm.int8"),
    ("rtn", {"alpha": 0.6}, "--alpha: does not apply to --method rtn"),
    ("outliertune", {"group_size": 64}, "--group-size"),
    ("smoothquant", {"activations": "none"}, "--activations"),
    ("smoothquant", {"alpha": 2.0}, "--alpha"),
], ids=["unknown", "bits-5", "int8-at-4", "alpha-for-rtn", "group-for-outliertune", "weight-only-smoothquant",
        "alpha-range"])
def test_config_for_refuses_in_one_line(name, options, needle):
    with pytest.raises(InputError) as exc:
        config_for(name, **options)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


@dataclass(frozen=True, kw_only=True)
class _HalfConfig(MethodConfig):
    """A toy method: every linear becomes half its float self (enough to see dispatch and hints)."""

    name: ClassVar[str] = "toy-half"
    bits_w: ClassVar[int] = 32
    bits_a: ClassVar[None] = None
    factor: float = 0.5


def _half_linear(w, bias, stats, cfg, touched=False):
    lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(w * cfg.factor)
        if bias is not None:
            lin.bias.copy_(bias * cfg.factor)
    lin.touched = touched
    return lin


def _mark_pair(norm, linears, stats, cfg):
    return {n: {"touched": True} for n in linears}


def test_a_new_method_is_one_registration(monkeypatch, batches):
    """No code outside the method's own module needs to change: register, then quantize_ and config_for."""
    method = R.Method(config=_HalfConfig, linear=_half_linear, pair_rewrite=_mark_pair)
    R._load()
    monkeypatch.setitem(R._BY_CONFIG, _HalfConfig, method)
    monkeypatch.setitem(R._BY_NAME, "toy-half", method)
    m = build_model("gpt2", outlier=False)
    w = m.transformer.h[0].mlp.c_fc.weight.detach().clone()  # Conv1D: in × out
    cfg = config_for("toy-half")
    assert cfg == _HalfConfig() and config_from_dict(cfg.to_dict()) == cfg
    report = quantize_(m, cfg, calib=batches[:1], forward=forward_logits,
                       filter_fn=lambda mod, name: name.endswith("c_fc"))
    assert report["n_quantized"] == 2 and report["method"] == "toy-half"
    fc = m.transformer.h[0].mlp.c_fc
    assert isinstance(fc, torch.nn.Linear) and fc.touched  # c_fc is fed by ln_2: the pair hint arrived
    torch.testing.assert_close(fc.weight, w.t() * 0.5)
    assert type(m.transformer.h[0].attn.c_attn).__name__ == "Conv1D"  # filtered out


def test_data_free_method_runs_without_calibration(batches):
    m = build_model("llama", outlier=False)
    ref = forward_logits(m, batches[0])
    report = quantize_(m, RTNConfig(), forward=forward_logits)
    assert report["n_quantized"] > 0 and report["stats"] == {}
    out = forward_logits(m, batches[0])
    assert float((out - ref).norm() / ref.norm()) < 0.08
    with pytest.raises(InputError, match="--calib"):
        quantize_(build_model("llama"), SmoothQuantConfig(), forward=forward_logits)


def test_no_method_name_branches_outside_the_method_modules():
    """Dispatch is by config type: the shared modules never compare a method's name. (linear.py is the
    int8 run-time layer: its activation mode ``llm.int8`` names a kernel path, not a method.)"""
    import re

    root = Path(__file__).resolve().parents[2] / "src" / "scalinglab" / "quant"
    for path in root.glob("*.py"):
        if path.name == "linear.py":
            continue
        text = path.read_text()
        assert not re.search(r"\b(cfg|config)\.method\b", text), path.name  # the one-class-for-all config's field
        for n in method_names():
            q = re.escape(f'"{n}"')
            branch = rf"(==|!=)\s*{q}|{q}\s*(==|!=)|\bin\s*[(\[{{][^)\]}}]*{q}|{q}\s*:"
            assert not re.search(branch, text), f"{path.name} branches on {n}"
