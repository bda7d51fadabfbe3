"""Evaluate a float or quantized checkpoint: perplexity, measured weight bytes, latency, throughput.

Memory is measured, not estimated: the bytes of every distinct storage behind the model's parameters
and buffers (tied tensors counted once). ``linear_bytes`` is the same sum restricted to the layers
quantization replaces, which is where the 4× lives; embeddings and the LM head stay in float.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from scalinglab.kernels.softmax_dispatch import cross_entropy_fastest
from scalinglab.quant.models import forward_logits

__all__ = ["tensor_bytes", "model_bytes", "linear_bytes", "perplexity", "EvalResult", "evaluate_model"]


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def _held_outside_buffers(modules) -> int:
    """Weights a quantized module holds outside its buffers (``packed_nbytes``: fbgemm's packed int8 weights
    of QuantLinears, which replace the ``w_t`` buffer once packed). The dequant path's float cache is a
    run-time cache and not counted (``QuantLinear.cache_nbytes``)."""
    return sum(m.packed_nbytes() for m in modules if hasattr(m, "packed_nbytes"))


def model_bytes(model: nn.Module) -> int:
    return tensor_bytes(list(model.parameters()) + list(model.buffers())) + _held_outside_buffers(model.modules())


def _is_linear(m: nn.Module) -> bool:
    from scalinglab.quant.registry import runtime_kind_of

    return isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D" or runtime_kind_of(m) is not None


def linear_bytes(model: nn.Module, skip: Sequence[str] = ("lm_head",)) -> int:
    """Bytes of the (possibly quantized) linear layers, those named in ``skip`` left out."""
    ts, mods = [], []
    for name, m in model.named_modules():
        if _is_linear(m) and not any(s in name for s in skip):
            ts += list(m.parameters(recurse=False)) + list(m.buffers(recurse=False))
            mods.append(m)
    return tensor_bytes(ts) + _held_outside_buffers(mods)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (token ids are sent there)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def perplexity(model: nn.Module, batches: Sequence[torch.Tensor]) -> tuple[float, int]:
    """exp(mean next-token NLL) over every position of every sequence; returns (ppl, tokens scored)."""
    nll, n = 0.0, 0
    device = model_device(model)
    for ids in batches:
        ids = ids.to(device)
        logits = forward_logits(model, ids).float()[:, :-1]
        tgt = ids[:, 1:]
        # Two-pass kernel where it measured faster than torch (kernels/softmax_dispatch.py), torch elsewhere.
        nll += float(cross_entropy_fastest(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="sum"))
        n += tgt.numel()
    return math.exp(nll / n), n


@dataclass(frozen=True)
class EvalResult:
    perplexity: float
    tokens: int
    weight_bytes: int
    linear_bytes: int
    latency_ms: float  # one forward of a (1 × seq_len) batch, median
    throughput_tok_s: float  # tokens / second over the perplexity pass
    seq_len: int
    quantization: str

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def evaluate_model(model: nn.Module, batches: Sequence[torch.Tensor], quantization: str = "none",
                   latency_reps: int = 5) -> EvalResult:
    device = model_device(model)
    one = batches[0][:1].to(device)
    # warm-up on the first batch's shape, untimed: kernels compile, run-time layouts and per-shape plans
    # (oneDNN primitives, measured path choices) are set up once per process, not inside the timing
    forward_logits(model, batches[0].to(device))
    _sync(device)
    t0 = time.perf_counter()
    ppl, n = perplexity(model, batches)
    elapsed = time.perf_counter() - t0
    times = []
    for _ in range(latency_reps):
        t = time.perf_counter()
        forward_logits(model, one)
        _sync(device)
        times.append(time.perf_counter() - t)
    return EvalResult(perplexity=ppl, tokens=n, weight_bytes=model_bytes(model), linear_bytes=linear_bytes(model),
                      latency_ms=1e3 * sorted(times)[len(times) // 2], throughput_tok_s=n / elapsed,
                      seq_len=int(batches[0].shape[1]), quantization=quantization)


def load_any(model_dir: Path) -> tuple[nn.Module, str]:
    """A float or quantized checkpoint directory → (model, quantization label)."""
    from scalinglab.quant.io import is_quantized_dir, load_quantized
    from scalinglab.quant.models import load_float_model

    if is_quantized_dir(model_dir):
        from scalinglab.quant.registry import config_from_dict

        model, qmap = load_quantized(model_dir)
        return model, config_from_dict(qmap["config"]).label
    return load_float_model(model_dir), "none"
