"""Quantized checkpoints reload without re-quantizing and give bit-identical outputs."""

from __future__ import annotations

import json

import pytest
import torch

from scalinglab.quant import QuantConfig, QuantLinear, quantize_
from scalinglab.quant.io import QUANT_MAP, load_quantized, save_quantized
from scalinglab.quant.models import forward_logits

from .tiny_models import build_model

CASES = [("gpt2", "llm.int8", 8), ("gpt2", "outliertune", 6), ("opt", "smoothquant", 8), ("llama", "rtn", 4),
         ("llama", "outliertune", 8)]


@pytest.mark.parametrize(("arch", "method", "bits"), CASES, ids=[f"{a}-{m}-W{b}A{b}" for a, m, b in CASES])
def test_save_load_bit_identical(arch, method, bits, batches, tmp_path, monkeypatch):
    m = build_model(arch)
    cfg = QuantConfig(method=method, bits_w=bits, bits_a=bits)
    quantize_(m, cfg, batches, forward_logits)
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
