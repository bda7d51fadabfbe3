"""Model surgery: find the linears, find norm → linear pairs, calibrate, transform, swap in QuantLinear.

Works on any ``nn.Module`` built from ``nn.Linear`` (or GPT-2's ``Conv1D``) and norm layers: the
ladder's GPT and Hugging Face causal LMs. Norm → linear pairs are found by tracing, not by name: one
forward pass records which linears receive a norm's output tensor itself as their input. SmoothQuant
and OutlierTune's symmetrization rewrite exactly those pairs, then check on the calibration batch that
the float model's outputs did not move; a post-LN block (whose norm output is also the residual stream)
fails that check and is refused with a message naming the norm.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.calibrate import ChannelStats, calibrate, linear_weight
from scalinglab.quant.config import QuantConfig
from scalinglab.quant.llm_int8 import llm_int8_linear
from scalinglab.quant.outliertune import outliertune_linear, symmetrization_shift, symmetrize_
from scalinglab.quant.rtn import rtn_linear
from scalinglab.quant.smoothquant import smooth_, smoothing_factors, smoothquant_linear

__all__ = ["find_linears", "find_norm_pairs", "quantize_", "QuantReport", "Forward"]

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]
TRANSFORM_RTOL = 1e-4  # float outputs must not move by more than this (relative to their scale)


def _is_linear(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"


def _is_norm(m: nn.Module) -> bool:
    return ("Norm" in type(m).__name__ and isinstance(getattr(m, "weight", None), torch.Tensor)
            and m.weight.dim() == 1)


def find_linears(model: nn.Module, skip: Sequence[str] = ("lm_head",)) -> dict[str, nn.Module]:
    """Named linear layers to quantize, minus those whose name contains a ``skip`` substring."""
    return {n: m for n, m in model.named_modules() if _is_linear(m) and not any(s in n for s in skip)}


@torch.no_grad()
def find_norm_pairs(model: nn.Module, linears: dict[str, nn.Module], batch: torch.Tensor,
                    forward: Forward) -> dict[str, list[str]]:
    """{norm name: [names of linears whose input *is* that norm's output tensor]} from one forward pass."""
    outputs: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # hold outputs so their storage is not reused mid-trace
    pairs: dict[str, list[str]] = {}
    norms = {n: m for n, m in model.named_modules() if _is_norm(m)}

    def on_norm(name):
        def hook(_m, _args, out):
            if isinstance(out, torch.Tensor):
                outputs[out.data_ptr()] = name
                keep.append(out)
        return hook

    def on_linear(name):
        def hook(_m, args):
            x = args[0]
            src = outputs.get(x.data_ptr())
            if src is not None and any(x is t for t in keep):
                pairs.setdefault(src, []).append(name)
        return hook

    handles = [m.register_forward_hook(on_norm(n)) for n, m in norms.items()]
    handles += [m.register_forward_pre_hook(on_linear(n)) for n, m in linears.items()]
    try:
        forward(model, batch)
    finally:
        for h in handles:
            h.remove()
    return pairs


def _check_post_ln(model: nn.Module, method: str) -> None:
    cfg = getattr(model, "config", None)
    if cfg is not None and getattr(cfg, "do_layer_norm_before", True) is False:
        raise InputError(f"{method}: model is post-LN (config.json do_layer_norm_before=false, as in OPT-350M); "
                         "scaling a norm's output would change the residual stream — use rtn or llm.int8")


class QuantReport(dict):
    """What quantize_ did: method, per-layer outlier statistics, pairs transformed."""


@torch.no_grad()
def quantize_(model: nn.Module, cfg: QuantConfig, calib: Sequence[torch.Tensor], forward: Forward) -> QuantReport:
    """Quantize ``model`` in place; ``calib`` are token-id batches run through ``forward(model, batch)``.

    Returns a report with the calibration statistics per linear (the outlier analysis).
    """
    model.eval()
    linears = find_linears(model, cfg.skip)
    if not linears:
        raise InputError("model: found no nn.Linear / Conv1D layers to quantize")
    if cfg.method in ("smoothquant", "outliertune"):
        _check_post_ln(model, cfg.method)
    stats = calibrate(model, linears, calib, forward, cfg.threshold) if calib else {}
    if cfg.needs_calibration and not stats:
        raise InputError(f"--calib: method {cfg.method} needs calibration text, got none")
    # A linear whose forward never ran (its .weight is read by a parent, e.g. a fused QKV matmul) cannot be
    # swapped for a QuantLinear: it stays in float and the report names it.
    uncalled = sorted(n for n, st in stats.items() if st.tokens == 0)
    for n in uncalled:
        del linears[n], stats[n]
    folded: set[str] = set()
    pairs: dict[str, list[str]] = {}
    if cfg.method in ("smoothquant", "outliertune"):
        pairs = find_norm_pairs(model, linears, calib[0], forward)
        reference = forward(model, calib[0]).float()
        modules = dict(model.named_modules())
        touched = {n: modules[n] for n in pairs} | {n: linears[n] for ns in pairs.values() for n in ns}
        backup = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in touched.items()}
        for norm_name, lin_names in pairs.items():
            norm, lins = modules[norm_name], [linears[n] for n in lin_names]
            st = stats[lin_names[0]]
            if cfg.method == "smoothquant":
                w_amax = torch.stack([linear_weight(m).abs().amax(0).float() for m in lins]).amax(0)
                s = smoothing_factors(st.amax, w_amax, cfg.alpha)
                smooth_(norm, lins, s)
                for n in lin_names:  # X' = X / s: statistics follow analytically
                    stats[n] = _scaled(stats[n], s)
            elif getattr(norm, "bias", None) is not None:
                symmetrize_(norm, lins, symmetrization_shift(st.max, st.min))
                folded.update(lin_names)
        after = forward(model, calib[0]).float()
        err = float((after - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
        if err > TRANSFORM_RTOL:
            for n, m in touched.items():  # leave the caller's model as it was
                m.load_state_dict(backup[n], strict=False)
            raise InputError(f"{cfg.method}: rescaling norm outputs changed the float model's outputs "
                             f"(max rel. error {err:.1e}); the blocks look post-LN — use rtn or llm.int8")
    builders = {"rtn": rtn_linear, "llm.int8": llm_int8_linear, "smoothquant": smoothquant_linear}
    modules = dict(model.named_modules())
    for name, lin in linears.items():
        w = linear_weight(lin).detach().float()
        bias = None if lin.bias is None else lin.bias.detach().float()
        if cfg.method == "outliertune":
            q = outliertune_linear(w, bias, stats[name], cfg, folded=name in folded)
        else:
            q = builders[cfg.method](w, bias, stats.get(name), cfg)
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, q)
        del lin  # the float weight goes with the module
    return QuantReport(method=cfg.method, config=cfg.to_dict(), stats=stats, pairs=pairs,
                       n_quantized=len(linears), left_in_float=uncalled)


def _scaled(st: ChannelStats, s: torch.Tensor) -> ChannelStats:
    out = ChannelStats(st.k, st.threshold)
    out.max, out.min = st.max / s, st.min / s
    out.outlier_tokens, out.tokens_touched, out.tokens = st.outlier_tokens, st.tokens_touched, st.tokens
    return out
