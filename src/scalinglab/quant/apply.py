"""Model surgery: find the linears, calibrate, rewrite norm → linear pairs, swap in quantized modules.

``quantize_(model, config)`` dispatches on the type of ``config`` (quant/registry.py): the method module
supplies the per-linear conversion and, optionally, a rewrite of norm → linear pairs; this module holds
what every method shares.

Works on any ``nn.Module`` built from ``nn.Linear`` (or GPT-2's ``Conv1D``) and norm layers: the
ladder's GPT and Hugging Face causal LMs. Norm → linear pairs are found by tracing, not by name: one
forward pass records which linears receive a norm's output tensor itself as their input. A method's pair
rewrite (SmoothQuant's smoothing, OutlierTune's symmetrization) touches exactly those pairs, then
``quantize_`` checks on the calibration batch that the float model's outputs did not move; a post-LN
block (whose norm output is also the residual stream) fails that check and is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from scalinglab.errors import InputError
from scalinglab.quant.calibrate import ChannelStats, calibrate, linear_weight
from scalinglab.quant.config import OUTLIER_THRESHOLD, MethodConfig
from scalinglab.quant.models import forward_logits
from scalinglab.quant.registry import Method, method_for

__all__ = ["find_linears", "find_norm_pairs", "quantize_", "rewrite_pairs_", "QuantReport", "Forward", "FilterFn"]

Forward = Callable[[nn.Module, torch.Tensor], torch.Tensor]
FilterFn = Callable[[nn.Module, str], bool]
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
def rewrite_pairs_(model: nn.Module, method: Method, cfg: MethodConfig, linears: dict[str, nn.Module],
                   stats: dict[str, ChannelStats], batch: torch.Tensor, forward: Forward
                   ) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """Run the method's pair rewrite on every norm → linears pair, then check on ``batch`` that the float
    model's outputs did not move (a post-LN block, whose norm output is also the residual stream, fails);
    on failure every touched module is restored and the method refused. Returns (pairs, hints per linear)."""
    _check_post_ln(model, cfg.name)
    pairs = find_norm_pairs(model, linears, batch, forward)
    reference = forward(model, batch).float()
    modules = dict(model.named_modules())
    touched = {n: modules[n] for n in pairs} | {n: linears[n] for ns in pairs.values() for n in ns}
    backup = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in touched.items()}
    hints: dict[str, dict] = {}
    for norm_name, lin_names in pairs.items():
        hints.update(method.pair_rewrite(modules[norm_name], {n: linears[n] for n in lin_names}, stats, cfg))
    after = forward(model, batch).float()
    err = float((after - reference).abs().max() / reference.abs().max().clamp_min(1e-12))
    if err > TRANSFORM_RTOL:
        for n, m in touched.items():  # leave the caller's model as it was
            m.load_state_dict(backup[n], strict=False)
        raise InputError(f"{cfg.name}: rescaling norm outputs changed the float model's outputs "
                         f"(max rel. error {err:.1e}); the blocks look post-LN — use rtn or llm.int8")
    return pairs, hints


@torch.no_grad()
def quantize_(model: nn.Module, config: MethodConfig, *, calib: Sequence[torch.Tensor] | None = None,
              forward: Forward = forward_logits, filter_fn: FilterFn | None = None,
              threshold: float = OUTLIER_THRESHOLD) -> QuantReport:
    """Quantize ``model``'s linear layers in place with the method of ``config``'s type.

    calib:     token-id batches run through ``forward(model, batch)`` for the calibration statistics
               (required when ``config.needs_calibration``); without them one probe batch of zeros
               finds the linears whose forward runs
    filter_fn: ``(module, name) → bool``: quantize only the linears it accepts (besides ``config.skip``)
    threshold: outlier magnitude counted in the statistics (the report's outlier analysis)

    Returns a report with the calibration statistics per linear, the norm → linear pairs rewritten and
    the linears left in float.
    """
    method = method_for(config)
    model.eval()
    linears = find_linears(model, config.skip)
    if filter_fn is not None:
        linears = {n: m for n, m in linears.items() if filter_fn(m, n)}
    if not linears:
        raise InputError("model: found no nn.Linear / Conv1D layers to quantize")
    if config.needs_calibration and not calib:
        raise InputError(f"--calib: method {config.name} needs calibration text, got none")
    batches = list(calib) if calib else [_probe_batch(model)]
    stats = calibrate(model, linears, batches, forward, threshold)
    # A linear whose forward never ran (its .weight is read by a parent, e.g. a fused QKV matmul) cannot be
    # swapped for a quantized module: it stays in float and the report names it.
    uncalled = sorted(n for n, st in stats.items() if st.tokens == 0)
    for n in uncalled:
        del linears[n], stats[n]
    if not calib:
        stats = {}  # a probe's statistics say nothing about the data
    pairs: dict[str, list[str]] = {}
    hints: dict[str, dict] = {}
    if method.pair_rewrite is not None:
        pairs, hints = rewrite_pairs_(model, method, config, linears, stats, batches[0], forward)
    modules = dict(model.named_modules())
    if method.pair_hints is not None:
        for norm_name, lin_names in find_norm_pairs(model, linears, batches[0], forward).items():
            hints.update(method.pair_hints(modules[norm_name], {n: linears[n] for n in lin_names}, config))
    if method.model_hints is not None:
        hints.update(method.model_hints(model, linears, config, forward))
    for name, lin in linears.items():
        w = linear_weight(lin).detach().float()
        bias = None if lin.bias is None else lin.bias.detach().float()
        q = method.linear(w, bias, stats.get(name), config, **hints.get(name, {}))
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, child, q)
        del lin  # the float weight goes with the module
    return QuantReport(method=config.name, config=config.to_dict(), stats=stats, pairs=pairs,
                       n_quantized=len(linears), left_in_float=uncalled)


PROBE_TOKENS = 8


def _probe_batch(model: nn.Module) -> torch.Tensor:
    """One (1 × PROBE_TOKENS) batch of token 0, on the model's device: enough to see which linears run."""
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    return torch.zeros(1, PROBE_TOKENS, dtype=torch.long, device=device)
