"""Checkpoints: bit-identical round trip, and transformers opens the GPT-2-compatible layout."""

import pytest
import torch

from scalinglab.ladder.data import synthetic_tokenizer
from scalinglab.ladder.hf import load_model, load_tokenizer, save_model
from scalinglab.ladder.model import GPT, GPTConfig


@pytest.mark.parametrize("kw", [dict(), dict(norm="rmsnorm", placement="peri", parametrization="mup")],
                         ids=["gpt2-layout", "native-layout"])
def test_round_trip_bit_identical(tmp_path, kw):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, seq_len=8, d_model=16, n_layer=2, n_head=2, **kw))
    save_model(model, tmp_path, synthetic_tokenizer(40))
    loaded = load_model(tmp_path)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.config == model.config
    assert load_tokenizer(tmp_path).encode("t3 t7").ids == [3, 7]


def test_transformers_opens_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, seq_len=8, d_model=16, n_layer=2, n_head=2)).eval()
    save_model(model, tmp_path, synthetic_tokenizer(40))
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path)).eval()
    x = torch.randint(0, 40, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(hf(input_ids=x).logits, model(x), atol=1e-5, rtol=1e-5)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    assert tok("t1 t2 t39")["input_ids"] == [1, 2, 39]
