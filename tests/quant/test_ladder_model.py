"""The ladder's own GPT (plain nn.Linear + LayerNorm / RMSNorm) quantizes, transforms exactly, saves and reloads."""

from __future__ import annotations

import pytest
import torch

from scalinglab.quant import QuantLinear, config_for, find_linears, find_norm_pairs, quantize_
from scalinglab.quant.evaluate import load_any
from scalinglab.quant.io import save_quantized
from scalinglab.quant.models import forward_logits

ladder_model = pytest.importorskip("scalinglab.ladder.model")
ladder_hf = pytest.importorskip("scalinglab.ladder.hf")


def _gpt(norm: str, placement: str = "pre"):
    torch.manual_seed(0)
    cfg = ladder_model.GPTConfig(vocab_size=300, seq_len=32, d_model=64, n_layer=2, n_head=2, norm=norm,
                                 placement=placement)
    m = ladder_model.GPT(cfg).eval()
    with torch.no_grad():
        for b in m.blocks:
            b.norm_attn.weight[[3, 17]] = 25.0  # planted outlier dims
    return m


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_norm_pairs_traced(norm, batches):
    m = _gpt(norm)
    pairs = find_norm_pairs(m, find_linears(m), batches[0], forward_logits)
    # per block: norm_attn feeds q, k, v; norm_mlp feeds fc_in
    assert sum(len(v) for v in pairs.values()) == 8


CASES = [("layernorm", "llm.int8", 8), ("layernorm", "smoothquant", 8), ("layernorm", "outliertune", 6),
         ("rmsnorm", "smoothquant", 8), ("rmsnorm", "outliertune", 8), ("rmsnorm", "rtn", 4)]


@pytest.mark.parametrize(("norm", "method", "bits"), CASES, ids=[f"{n}-{m}-W{b}A{b}" for n, m, b in CASES])
def test_ladder_gpt_quantize_save_reload(norm, method, bits, batches, tokenizer, tmp_path):
    m = _gpt(norm)
    src = tmp_path / "src"
    ladder_hf.save_model(m, src)
    tokenizer.save_pretrained(src)
    ref = forward_logits(m, batches[0])
    cfg = config_for(method, bits=bits)
    report = quantize_(m, cfg, calib=batches, forward=forward_logits)
    n_quant = sum(isinstance(x, QuantLinear) for x in m.modules())
    assert n_quant == 12 and report["left_in_float"] == []
    out = forward_logits(m, batches[0])
    assert float((out - ref).norm() / ref.norm()) < {8: 0.08, 6: 0.25, 4: 0.6}[bits]
    save_quantized(m, tmp_path / "q", cfg.to_dict(), source_dir=src)
    m2, label = load_any(tmp_path / "q")
    assert method in label and torch.equal(forward_logits(m2, batches[0]), out)


def test_post_ln_ladder_gpt_refused(batches):
    from scalinglab.errors import InputError

    m = _gpt("layernorm", placement="post")
    with pytest.raises(InputError, match="post-LN"):
        quantize_(m, config_for("smoothquant"), calib=batches, forward=forward_logits)
