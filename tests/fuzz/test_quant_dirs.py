"""Checkpoint directories and quantize/evaluate flags: refused in one line, never code run, never a traceback."""

from __future__ import annotations

import json
import pickle
import shutil

import pytest

from .harness import assert_refused, run_cli


def _json_edit(name: str, edit):
    def apply(d):
        p = d / name
        doc = json.loads(p.read_text())
        out = edit(doc)
        p.write_text(json.dumps(doc if out is None else out))
    return apply


def _first(doc):
    return next(iter(doc["modules"].values()))


def _all(doc, **kv):
    for v in doc["modules"].values():
        v.update(kv)


class _Planted:
    """A pickle that would create a file if anything unpickled it."""

    def __reduce__(self):
        return (open, ("/tmp/scalinglab-fuzz-pickle-ran", "w"))


QUANTIZED = {
    "config-list": (lambda d: (d / "config.json").write_text("[1, 2]"), "JSON object"),
    "config-missing": (lambda d: (d / "config.json").unlink(), "config.json"),
    "config-not-json": (lambda d: (d / "config.json").write_text("{"), "not a JSON file"),
    "auto-map": (_json_edit("config.json", lambda c: c.update(auto_map={"AutoModelForCausalLM": "m.M"})), "auto_map"),
    "tokenizer-auto-map": (_json_edit("tokenizer_config.json", lambda c: c.update(auto_map={"AutoTokenizer": ["t.T", None]})),
                           "auto_map"),
    "model-type-unknown": (_json_edit("config.json", lambda c: c.update(model_type="nonexistent")), "cannot build"),
    "fewer-layers": (_json_edit("config.json", lambda c: c.update(n_layer=1)), "does not exist"),
    "map-not-json": (lambda d: (d / "quantization.json").write_text("{"), "quantization map"),
    "map-list": (lambda d: (d / "quantization.json").write_text("[]"), "'modules'"),
    "map-version": (_json_edit("quantization.json", lambda q: q.update(format_version=99)), "format_version"),
    "map-config-bits-3": (_json_edit("quantization.json", lambda q: q["config"].update(bits_w=3)), "bits_w"),
    "map-config-method": (_json_edit("quantization.json", lambda q: q["config"].update(method="gptq")), "method"),
    "map-config-unknown": (_json_edit("quantization.json", lambda q: q["config"].update(colour=1)), "config"),
    "module-bits-3": (_json_edit("quantization.json", lambda q: _all(q, bits_w=3)), "bits_w = 3"),
    "module-act": (_json_edit("quantization.json", lambda q: _first(q).update(act="zz")), "act"),
    "module-shape": (_json_edit("quantization.json", lambda q: _first(q).update(in_features=10**9)), "do not match"),
    "module-text-shape": (_json_edit("quantization.json", lambda q: _first(q).update(out_features="64")), "out_features"),
    "module-unknown-key": (_json_edit("quantization.json", lambda q: _first(q).update(colour=1)), "unknown key"),
    "module-missing-key": (_json_edit("quantization.json", lambda q: _first(q).pop("act") and None), "lacks 'act'"),
    "module-not-linear": (_json_edit("quantization.json", lambda q: q["modules"].update(
        {"transformer.wte": _first(q)})), "not a linear layer"),
    "module-unknown-name": (_json_edit("quantization.json", lambda q: q["modules"].update({"nope.x": {}})), "does not exist"),
    "weights-missing": (lambda d: (d / "model.safetensors").unlink(), "missing"),
    "weights-corrupt": (lambda d: (d / "model.safetensors").write_bytes(b"\x10" + b"\x00" * 7 + b"{garbage"),
                        "not a readable safetensors"),
    "weights-truncated": (lambda d: open(d / "model.safetensors", "r+b").truncate(4000), "not a readable safetensors"),
    "weights-pickled": (lambda d: (d / "model.safetensors").write_bytes(pickle.dumps(_Planted())),
                        "not a readable safetensors"),
    "weights-float-codes": (lambda d: _retype(d), "the model needs torch.int8"),
    "weights-nan-scale": (lambda d: _nan_scale(d), "NaN"),
    "weights-extra-tensor": (lambda d: _extra(d), "unexpected tensor"),
    "tokenizer-corrupt": (lambda d: (d / "tokenizer.json").write_text("{}"), "tokenizer"),
}


def _rewrite(d, edit):
    from safetensors.torch import load_file, save_file

    tensors = load_file(d / "model.safetensors")
    edit(tensors)
    save_file(tensors, d / "model.safetensors")


def _retype(d):
    _rewrite(d, lambda t: t.update({k: v.float() for k, v in t.items() if k.endswith("w_t")}))


def _nan_scale(d):
    def edit(t):
        k = next(k for k in t if k.endswith("w_scale"))
        t[k] = t[k].clone()
        t[k][0] = float("nan")
    _rewrite(d, edit)


def _extra(d):
    import torch

    _rewrite(d, lambda t: t.update({"planted": torch.zeros(1)}))


FLOAT = {
    "float-config-list": (lambda d: (d / "config.json").write_text("[1]"), "JSON object"),
    "float-auto-map": (_json_edit("config.json", lambda c: c.update(auto_map={"AutoModelForCausalLM": "m.M"})), "auto_map"),
    "float-pickle-weights": (lambda d: ((d / "model.safetensors").unlink(),
                                        (d / "pytorch_model.bin").write_bytes(pickle.dumps(_Planted()))), "safetensors"),
}


def _copy(src, tmp_path):
    dst = tmp_path / "m"
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("case", list(QUANTIZED), ids=list(QUANTIZED))
def test_tampered_quantized_dir_is_refused(tmp_path, gpt2_dirs, case):
    _, q, calib = gpt2_dirs
    d = _copy(q, tmp_path)
    edit, needle = QUANTIZED[case]
    edit(d)
    assert_refused(run_cli(["evaluate", d, "--data", calib, "--seq-len", "16", "--max-seqs", "1"]), needle)


@pytest.mark.parametrize("case", list(FLOAT), ids=list(FLOAT))
def test_tampered_float_dir_is_refused(tmp_path, gpt2_dirs, case):
    fp, _, calib = gpt2_dirs
    d = _copy(fp, tmp_path)
    edit, needle = FLOAT[case]
    edit(d)
    assert_refused(run_cli(["evaluate", d, "--data", calib, "--seq-len", "16", "--max-seqs", "1"]), needle)


def test_no_pickle_ever_ran():
    import os

    assert not os.path.exists("/tmp/scalinglab-fuzz-pickle-ran")


FLAGS = {
    "calib-seqs-0": (["quantize", "{fp}", "--calib", "{calib}", "--out", "{tmp}/o", "--calib-seqs", "0"], "--calib-seqs"),
    "seq-len-negative": (["quantize", "{fp}", "--calib", "{calib}", "--out", "{tmp}/o", "--seq-len", "-5"], "--seq-len"),
    "seq-len-beyond-context": (["quantize", "{fp}", "--calib", "{calib}", "--out", "{tmp}/o", "--seq-len", "4096"],
                               "context"),
    "out-existing-file": (["quantize", "{fp}", "--calib", "{calib}", "--out", "{calib}"], "existing file"),
    "out-is-input": (["quantize", "{fp}", "--calib", "{calib}", "--out", "{fp}"], "input checkpoint"),
    "out-under-file": (["quantize", "{fp}", "--calib", "{calib}", "--out", "{calib}/sub"], "not a directory"),
    "bits-3": (["quantize", "{fp}", "--calib", "{calib}", "--out", "{tmp}/o", "--bits", "3"], "--bits"),
    "eval-max-seqs-negative": (["evaluate", "{q}", "--data", "{calib}", "--max-seqs", "-3"], "--max-seqs"),
    "eval-seq-len-negative": (["evaluate", "{q}", "--data", "{calib}", "--seq-len", "-1"], "--seq-len"),
    "eval-seq-len-beyond-context": (["evaluate", "{fp}", "--data", "{calib}", "--seq-len", "4096"], "context"),
    "eval-dtype": (["evaluate", "{fp}", "--data", "{calib}", "--dtype", "fp8"], "--dtype"),
    "eval-data-missing": (["evaluate", "{fp}", "--data", "{tmp}/none.txt"], "none.txt"),
}


@pytest.mark.parametrize("case", list(FLAGS), ids=list(FLAGS))
def test_bad_quant_flags_are_refused(tmp_path, gpt2_dirs, case):
    fp, q, calib = gpt2_dirs
    argv, needle = FLAGS[case]
    out = run_cli([a.format(fp=fp, q=q, calib=calib, tmp=tmp_path) for a in argv])
    assert_refused(out, needle)


CLASSES = len(QUANTIZED) + len(FLOAT) + len(FLAGS)
