"""`scalinglab evaluate --device`: auto resolves to the CPU here, cuda without a GPU is one line and exit 2,
and a quantized model's results say where they ran (the CUDA path itself: tests/kernels/test_int8_torch.py)."""

import json

import pytest

from scalinglab.cli import main
from scalinglab.ladder import device as D


def _evaluate(gpt2_dir, capsys, *extra):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", str(gpt2_dir), "--data", str(gpt2_dir / "calib.txt"), "--seq-len", "32", "--max-seqs", "4",
              "--json", *extra])
    cap = capsys.readouterr()
    return exc.value.code or 0, cap.out, cap.err


def test_evaluate_device_auto_and_cuda_without_gpu(gpt2_dir, capsys, monkeypatch):
    monkeypatch.setattr(D, "cuda_available", lambda: False)
    code, out, err = _evaluate(gpt2_dir, capsys)
    assert code == 0, err
    assert json.loads(out)["device"] == "cpu"
    code, out, err = _evaluate(gpt2_dir, capsys, "--device", "cuda")
    assert code == 2 and "device 'cuda'" in err and "sees no CUDA GPU" in err and len(err.strip().splitlines()) == 1
