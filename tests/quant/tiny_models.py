"""Tiny Hugging Face causal LMs built from configs (never the hub) and a tiny byte-level BPE tokenizer."""

from __future__ import annotations

import torch

TEXT = (
    "Shall I compare thee to a summer's day? Thou art more lovely and more temperate: rough winds do shake "
    "the darling buds of May, and summer's lease hath all too short a date. "
) * 40


def make_tokenizer():
    from transformers import PreTrainedTokenizerFast

    from scalinglab.ladder.data import train_tokenizer

    tok = train_tokenizer(TEXT, 300, special_tokens=("<|endoftext|>",))
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def build_model(arch: str, vocab: int = 300, outlier: bool = True, post_ln: bool = False):
    """A 2-layer model of the given family; ``outlier`` plants LLM.int8-style outlier dims (a large norm gain)."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        OPTConfig,
        OPTForCausalLM,
    )

    torch.manual_seed(0)
    if arch == "gpt2":
        m = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=vocab, n_positions=64,
                                       bos_token_id=0, eos_token_id=0))
        norms = [b.ln_1 for b in m.transformer.h] + [b.ln_2 for b in m.transformer.h]
    elif arch == "opt":
        m = OPTForCausalLM(OPTConfig(num_hidden_layers=2, hidden_size=64, ffn_dim=128, num_attention_heads=2,
                                     vocab_size=vocab, max_position_embeddings=64, word_embed_proj_dim=64,
                                     do_layer_norm_before=not post_ln, bos_token_id=0, eos_token_id=0,
                                     pad_token_id=1))
        norms = [b.self_attn_layer_norm for b in m.model.decoder.layers]
    elif arch == "llama":
        m = LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                         num_attention_heads=2, num_key_value_heads=1, vocab_size=vocab,
                                         max_position_embeddings=64, bos_token_id=0, eos_token_id=0))
        norms = [b.input_layernorm for b in m.model.layers]
    else:
        raise ValueError(arch)
    if outlier:
        with torch.no_grad():
            for n in norms:
                n.weight[[3, 17]] = 25.0
                if getattr(n, "bias", None) is not None:
                    n.bias.normal_(0, 0.5)
    return m.eval()
