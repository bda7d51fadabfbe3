"""Quantized checkpoints reload without re-quantizing and give bit-identical outputs."""

from __future__ import annotations

import json

import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.quant import QuantLinear, config_for, quantize_
from scalinglab.quant.io import QUANT_MAP, load_quantized, save_quantized
from scalinglab.quant.models import forward_logits

from .tiny_models import build_model

CASES = [("gpt2", "llm.int8", 8), ("gpt2", "outliertune", 6), ("opt", "smoothquant", 8), ("llama", "rtn", 4),
         ("llama", "outliertune", 8)]


@pytest.mark.parametrize(("arch", "method", "bits"), CASES, ids=[f"{a}-{m}-W{b}A{b}" for a, m, b in CASES])
def test_save_load_bit_identical(arch, method, bits, batches, tmp_path, monkeypatch):
    m = build_model(arch)
    cfg = config_for(method, bits=bits)
    quantize_(m, cfg, calib=batches, forward=forward_logits)
    out = forward_logits(m, batches[1])
    save_quantized(m, tmp_path, cfg.to_dict())
    qmap = json.loads((tmp_path / QUANT_MAP).read_text())
    assert qmap["config"]["method"] == method and len(qmap["modules"]) > 0

    import scalinglab.quant.apply as apply_mod

    monkeypatch.setattr(apply_mod, "quantize_", lambda *a, **k: pytest.fail("re-quantized on load"))
    m2, _ = load_quantized(tmp_path)
    assert sum(isinstance(x, QuantLinear) for x in m2.modules()) == len(qmap["modules"])
    assert torch.equal(forward_logits(m2, batches[1]), out)
    for (k, v), (k2, v2) in zip(sorted(m.state_dict().items()), sorted(m2.state_dict().items()), strict=True):
        assert k == k2 and torch.equal(v, v2), k


# What format 1 stored: one config class with every method's fields, module entries without a kind.
V1_CONFIG = {"bits_w": 8, "bits_a": 8, "w_granularity": "channel", "a_granularity": "token", "a_dynamic": True,
             "threshold": 6.0, "alpha": 0.5, "skip": ["lm_head"]}
V1_CASES = [("gpt2", "llm.int8", 8), ("llama", "outliertune", 6)]


def _as_format_1(d, method, bits):
    qmap = json.loads((d / QUANT_MAP).read_text())
    assert qmap["format_version"] == 2 and all(s["kind"] == "QuantLinear" for s in qmap["modules"].values())
    modules = {n: {k: v for k, v in s.items() if k != "kind"} for n, s in qmap["modules"].items()}
    old = {"format_version": 1, "config": {"method": method, **V1_CONFIG, "bits_w": bits, "bits_a": bits},
           "modules": modules}
    (d / QUANT_MAP).write_text(json.dumps(old))
    return old


@pytest.mark.parametrize(("arch", "method", "bits"), V1_CASES, ids=[f"{a}-{m}-W{b}" for a, m, b in V1_CASES])
def test_format_1_dirs_still_load(arch, method, bits, batches, tmp_path):
    m = build_model(arch)
    cfg = config_for(method, bits=bits)
    quantize_(m, cfg, calib=batches, forward=forward_logits)
    out = forward_logits(m, batches[1])
    save_quantized(m, tmp_path, cfg)
    _as_format_1(tmp_path, method, bits)
    m2, qmap = load_quantized(tmp_path)
    assert qmap["config"] == cfg.to_dict()  # read back as the method's own config
    assert torch.equal(forward_logits(m2, batches[1]), out)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda q: q["config"].update(bits_w=4, bits_a=4), "bits_w"),  # llm.int8 is 8-bit only
    (lambda q: q["config"].update(colour=1), "colour"),
    (lambda q: next(iter(q["modules"].values())).update(kind="QuantLinear"), "unknown key 'kind'"),
], ids=["int8-at-4-bits", "unknown-field", "kind-key-in-format-1"])
def test_format_1_checked_like_format_2(edit, needle, batches, tmp_path):
    m = build_model("gpt2")
    cfg = config_for("llm.int8")
    quantize_(m, cfg, calib=batches, forward=forward_logits)
    save_quantized(m, tmp_path, cfg)
    old = _as_format_1(tmp_path, "llm.int8", 8)
    edit(old)
    (tmp_path / QUANT_MAP).write_text(json.dumps(old))
    with pytest.raises(InputError) as exc:
        load_quantized(tmp_path)
    assert needle in str(exc.value) and "\n" not in str(exc.value)
