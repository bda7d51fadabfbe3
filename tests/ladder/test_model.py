"""Model: exact parameter counts against a hand count, FLOPs formula, shapes, determinism."""

import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.ladder.flops import flops_per_token, non_embedding_params, param_counts, total_params
from scalinglab.ladder.model import GPT, GPTConfig

VARIANTS = [
    dict(),
    dict(norm="rmsnorm"),
    dict(placement="post"),
    dict(placement="peri", norm="rmsnorm"),
    dict(parametrization="mup", base_width=16),
    dict(bias=False),
]
IDS = ["pre-layernorm", "pre-rmsnorm", "post-layernorm", "peri-rmsnorm", "mup", "no-bias"]


def small(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 50, "seq_len": 16, "d_model": 32, "n_layer": 3, "n_head": 4, **kw})


def test_param_count_by_hand():
    # d=32, L=3, V=50, T=16, ratio 4, pre-LN layernorm with biases:
    # per block: attention 4·32·32 + 4·32 = 4224; MLP 2·4·32·32 + 4·32 + 32 = 8352; 2 layernorms 2·64 = 128
    # final layernorm 64; embeddings 50·32 = 1600; positions 16·32 = 512.
    cfg = small()
    non_embedding = 3 * (4224 + 8352 + 128) + 64
    assert non_embedding_params(cfg) == non_embedding == 38176
    assert total_params(cfg) == non_embedding + 1600 + 512


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_param_counts_match_module(kw):
    cfg = small(**kw)
    model = GPT(cfg)
    counts = param_counts(cfg)
    assert sum(p.numel() for p in model.parameters()) == counts["total"]
    embed = model.wte.weight.numel() + model.wpe.weight.numel()
    assert counts["non_embedding"] == counts["total"] - embed


def test_flops_per_token_formula():
    cfg = small()
    # 6N + 6·L·T·d + 6·d·V
    assert flops_per_token(cfg) == 6 * 38176 + 6 * 3 * 16 * 32 + 6 * 32 * 50


@pytest.mark.parametrize("kw", VARIANTS, ids=IDS)
def test_forward_shapes_and_loss(kw):
    torch.manual_seed(0)
    model = GPT(small(**kw))
    x = torch.randint(0, 50, (2, 16))
    logits = model(x)
    assert logits.shape == (2, 16, 50)
    _, loss = model(x, x)
    assert abs(loss.item() - torch.log(torch.tensor(50.0))) < 0.5  # near-uniform at init
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_causal():
    torch.manual_seed(0)
    model = GPT(small())
    x = torch.randint(0, 50, (1, 16))
    y = x.clone()
    y[0, 10] = (y[0, 10] + 1) % 50
    a, b = model(x), model(y)
    assert torch.equal(a[0, :10], b[0, :10])
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_init_is_deterministic():
    torch.manual_seed(3)
    a = GPT(small()).state_dict()
    torch.manual_seed(3)
    b = GPT(small()).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_linear_and_norm_types_for_quantization():
    model = GPT(small())
    names = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {"blocks.0.attn.q_proj", "blocks.0.attn.k_proj", "blocks.0.attn.v_proj", "blocks.0.attn.o_proj",
            "blocks.0.mlp.fc_in", "blocks.0.mlp.fc_out"} <= names
    assert isinstance(model.blocks[0].norm_attn, torch.nn.LayerNorm)


@pytest.mark.parametrize("bad", [dict(d_model=30, n_head=4), dict(norm="batchnorm"), dict(placement="mid"),
                                 dict(n_layer=0)], ids=["indivisible-heads", "norm", "placement", "zero-layers"])
def test_bad_config_is_input_error(bad):
    with pytest.raises(InputError):
        small(**bad)
