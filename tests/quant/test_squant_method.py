"""`--method squant`: data-free (no --calib), codes are SQuant's, checkpoints save and load bit-identically."""

from __future__ import annotations

import json

import pytest
import torch

from scalinglab.errors import InputError
from scalinglab.quant.apply import quantize_

from .test_cli import _run


@pytest.mark.parametrize("extra", [[], ["--activations", "none", "--group-size", "32"]], ids=["w4a8", "w4a16-g32"])
def test_quantize_without_calib_save_load(gpt2_dir, tmp_path, capsys, extra):
    from scalinglab.quant.io import load_quantized
    from scalinglab.quant.models import forward_logits

    out = tmp_path / "sq"
    code, stdout, err = _run(["quantize", str(gpt2_dir), "--method", "squant", "--bits", "4", "--out", str(out),
                              *extra], capsys)
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["method"] == "squant" and summary["bits_w"] == 4 and summary["calib_tokens"] == 0
    assert summary["linear_bytes"] < summary["linear_bytes_before"] / 3
    model, qmap = load_quantized(out)
    assert qmap["config"]["method"] == "squant"
    ids = torch.arange(32).view(1, 32) % 300
    first = forward_logits(model, ids)
    again, _ = load_quantized(out)
    assert torch.equal(first, forward_logits(again, ids))
    code, stdout, err = _run(["evaluate", str(out), "--data", str(gpt2_dir / "calib.txt"), "--seq-len", "32",
                              "--max-seqs", "4", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["perplexity"] > 0


def test_codes_are_squant_codes(tmp_path):
    from scalinglab.quant.calibrate import linear_weight
    from scalinglab.quant.methods.squant import SQuantConfig
    from scalinglab.quant.squant import squant_weight

    from .tiny_models import build_model

    model = build_model("gpt2")
    w = linear_weight(model.transformer.h[0].mlp.c_fc).detach().float().clone()
    quantize_(model, SQuantConfig(bits_w=4, stats="none"))
    layer = model.transformer.h[0].mlp.c_fc
    codes, scale = squant_weight(w, 4)
    assert torch.equal(layer.codes().T, codes)  # stored (in × out)
    assert torch.allclose(layer.w_scale, scale)


@pytest.mark.parametrize(("kw", "needle"), [({"bits_w": 5}, "bits_w"), ({"activations": "fp8"}, "activations"),
                                            ({"kernel_size": 0}, "kernel_size"), ({"group_size": 32}, "group_size"),
                                            ({"stats": "calib"}, "stats")],
                         ids=["bits", "activations", "kernel-size", "group-with-int8", "stats"])
def test_config_errors(kw, needle):
    from scalinglab.quant.methods.squant import SQuantConfig

    with pytest.raises(InputError, match=needle):
        SQuantConfig(**kw)


def test_weight_only_config_has_no_activation_bits():
    from scalinglab.quant.methods.squant import SQuantConfig

    cfg = SQuantConfig(bits_w=4, activations="none", group_size=128)
    assert cfg.bits_a is None and cfg.label == "squant W4A16 g128"
    assert SQuantConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("arch", ["gpt2", "opt", "opt-post-ln", "llama"])
def test_norm_fed_linears_get_moment_codes(arch):
    """stats="norm": every linear a norm feeds rounds for μ = β, v = γ² (RMSNorm: μ = 0, i.e. RTN), the
    others stay plain SQuant; post-LN blocks are fine (nothing is rewritten)."""
    from scalinglab.quant.apply import find_linears, find_norm_pairs
    from scalinglab.quant.calibrate import linear_weight
    from scalinglab.quant.methods.squant import SQuantConfig
    from scalinglab.quant.models import forward_logits
    from scalinglab.quant.primitives import quantize_weight
    from scalinglab.quant.squant import moment_codes, squant_weight

    from .tiny_models import build_model

    model = build_model(arch.split("-")[0], post_ln=arch.endswith("post-ln"))
    linears = find_linears(model)
    pairs = find_norm_pairs(model, linears, torch.zeros(1, 8, dtype=torch.long), forward_logits)
    modules = dict(model.named_modules())
    expected, n_fed, n_moved = {}, 0, 0
    for name, lin in linears.items():
        w = linear_weight(lin).detach().float()
        norm = next((modules[n] for n, fed in pairs.items() if name in fed), None)
        if norm is None:
            expected[name] = squant_weight(w, 4)[0]
            continue
        n_fed += 1
        gamma, beta = norm.weight.detach().float(), getattr(norm, "bias", None)
        beta = torch.zeros_like(gamma) if beta is None else beta.detach().float()
        rtn, scale = quantize_weight(w, 4)
        expected[name] = moment_codes(w, scale[:, None], 4, beta, gamma.pow(2))
        assert torch.equal(expected[name], rtn) == (not beta.any())  # no β (RMSNorm, zero bias): RTN
        n_moved += not torch.equal(expected[name], rtn)
    assert n_fed >= 2 and len(expected) > n_fed
    assert (n_moved > 0) == (arch in ("gpt2", "opt"))  # the tiny models' LayerNorms carry random β
    quantize_(model, SQuantConfig(bits_w=4, stats="norm"))
    modules = dict(model.named_modules())
    for name, codes in expected.items():
        assert torch.equal(modules[name].codes().T, codes), name


def test_stats_flag(gpt2_dir, tmp_path, capsys):
    from scalinglab.quant.io import load_quantized

    out = tmp_path / "sq-norm"
    code, _, err = _run(["quantize", str(gpt2_dir), "--method", "squant", "--bits", "4", "--stats", "norm",
                         "--out", str(out)], capsys)
    assert code == 0, err
    assert load_quantized(out)[1]["config"]["stats"] == "norm"
    code, _, err = _run(["quantize", str(gpt2_dir), "--method", "rtn", "--stats", "norm", "--out",
                         str(tmp_path / "r")], capsys)
    assert code == 2 and "--stats" in err
