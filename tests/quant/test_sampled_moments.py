"""Data-free input moments: sampling follows the model's own next-token distribution, the moments equal a
plain mean / variance of the recorded inputs, and ``--method squant`` (stats="sampled") rounds every linear
for them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.models import forward_logits
from scalinglab.quant.sampled_moments import input_moments, sample_sequences


class Counter(nn.Module):
    """Logits that put all mass on (last token + 1) mod V: sampling must count upwards."""

    def __init__(self, vocab: int = 11):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, ids):
        nxt = (ids + 1) % self.vocab
        return torch.full((*ids.shape, self.vocab), -1e9).scatter(-1, nxt[..., None], 0.0)


def test_sampling_follows_the_model_and_is_seeded():
    ids = sample_sequences(Counter(), forward_logits, 5, 9, seed=3)
    assert ids.shape == (5, 9)
    assert torch.equal(ids[:, 1:], (ids[:, :-1] + 1) % 11)
    assert torch.equal(ids, sample_sequences(Counter(), forward_logits, 5, 9, seed=3))
    assert not torch.equal(ids[:, 0], sample_sequences(Counter(), forward_logits, 5, 9, seed=4)[:, 0])


def test_moments_equal_plain_mean_and_variance():
    from scalinglab.quant.apply import find_linears

    from .tiny_models import build_model

    model = build_model("gpt2")
    linears = find_linears(model)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, 300, (3, 16), generator=g) for _ in range(2)]
    seen: dict[str, list] = {}
    hooks = [m.register_forward_pre_hook(lambda _m, a, n=n: seen.setdefault(n, []).append(a[0].reshape(-1, a[0].shape[-1])))
             for n, m in linears.items()]
    for b in batches:
        forward_logits(model, b)
    for h in hooks:
        h.remove()
    got = input_moments(model, linears, batches, forward_logits)
    assert set(got) == set(linears)
    for name, xs in seen.items():
        x = torch.cat(xs).double()
        mean, var = got[name]
        assert torch.allclose(mean.double(), x.mean(0), atol=1e-5)
        assert torch.allclose(var.double(), x.var(0, unbiased=False), rtol=1e-4, atol=1e-6)


def test_method_rounds_every_linear_for_sampled_moments():
    from scalinglab.quant.apply import find_linears, quantize_
    from scalinglab.quant.calibrate import linear_weight
    from scalinglab.quant.methods.squant import SQuantConfig, sampled_moments
    from scalinglab.quant.primitives import quantize_weight
    from scalinglab.quant.squant import moment_codes

    from .tiny_models import build_model

    model = build_model("gpt2")
    cfg = SQuantConfig(bits_w=4, stats="sampled", sample_seqs=4, sample_len=16)
    linears = find_linears(model)
    hints = sampled_moments(model, linears, cfg, forward_logits)
    assert set(hints) == set(linears)
    expected = {}
    for name, lin in linears.items():
        w = linear_weight(lin).detach().float()
        rtn, scale = quantize_weight(w, 4)
        expected[name] = moment_codes(w, scale[:, None], 4, hints[name]["mean"], hints[name]["var"])
    assert sum(not torch.equal(c, quantize_weight(linear_weight(linears[n]).detach().float(), 4)[0])
               for n, c in expected.items()) >= len(expected) // 2
    quantize_(model, cfg)
    modules = dict(model.named_modules())
    for name, codes in expected.items():
        assert torch.equal(modules[name].codes().T, codes), name


@pytest.mark.parametrize(("kw", "needle"), [({"sample_seqs": 1}, "sample_seqs"), ({"sample_len": 1.5}, "sample_len"),
                                            ({"stats": "data"}, "stats")])
def test_config_errors(kw, needle):
    from scalinglab.quant.methods.squant import SQuantConfig

    with pytest.raises(InputError, match=needle):
        SQuantConfig(**kw)


def test_default_stats_follow_the_scale_layout():
    import json

    from scalinglab.quant.methods.squant import SQuantConfig

    assert SQuantConfig(bits_w=4).stats == "sampled"
    assert SQuantConfig(bits_w=4, activations="none").stats == "sampled"  # one scale per row
    grouped = SQuantConfig(bits_w=4, activations="none", group_size=128)
    assert grouped.stats == "none"
    assert SQuantConfig(bits_w=4, activations="none", group_size=32, stats="sampled").stats == "sampled"
    assert SQuantConfig.from_dict(json.loads(json.dumps(grouped.to_dict()))) == grouped


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_kv_cache_sampling_equals_full_recompute(arch):
    from .tiny_models import build_model

    model = build_model(arch)
    fast = sample_sequences(model, forward_logits, 4, 20, seed=1)
    slow = sample_sequences(model, forward_logits, 4, 20, seed=1, cache=False)
    assert torch.equal(fast, slow)
