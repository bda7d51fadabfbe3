"""Fixtures for the quant tests; the tiny models themselves live in tiny_models.py."""

from __future__ import annotations

import pytest

from .tiny_models import TEXT, build_model, make_tokenizer

__all__ = ["build_model"]


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def batches(tokenizer):
    from scalinglab.quant.models import text_to_batches

    return text_to_batches(TEXT, tokenizer, 32, n_seqs=8, batch_size=4)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory, tokenizer):
    d = tmp_path_factory.mktemp("gpt2")
    build_model("gpt2").save_pretrained(d)
    tokenizer.save_pretrained(d)
    (d / "calib.txt").write_text(TEXT)
    return d
