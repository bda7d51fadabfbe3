"""The serving-precision paths of `scalinglab fit --law ptq`, `predict --bits` and `plan --serve-bits`.

The commands themselves live in ``fitting/cli.py``; they hand over here when a precision option is given.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from scalinglab.report.tables import fmt


def fit_ptq_cmd(console: Console, data: Path, *, columns: str, base: Path | None, base_law: str | None,
                method: str | None, huber_delta: str, bootstrap: int, level: float, holdout: str, seed: int,
                out: Path | None, as_json: bool) -> None:
    from scalinglab.fitting.objective import parse_delta
    from scalinglab.fitting.ptq_fit import PTQFitConfig, fit_ptq

    delta = parse_delta(huber_delta)
    if delta == "auto":
        from scalinglab.errors import InputError

        raise InputError("--huber-delta auto is not available for --law ptq; give a number")
    config = PTQFitConfig(base=base, base_law=base_law, method=method, huber_delta=delta, bootstrap=bootstrap,
                          level=level, holdout=holdout or None, seed=seed, progress=not as_json)
    result = fit_ptq(data, config, columns=columns or None)
    if out:
        from scalinglab.fitting.cli import _write

        _write(lambda: result.save(out), out, "--out")
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    print_precision_fit(console, result)
    if out:
        console.print(f"fit written to {out}")


def print_precision_fit(console: Console, result) -> None:
    from scalinglab.report.tables import print_fit

    if result.base is not None:
        print_fit(console, result.base)
    print_fit(console, result.ptq)
    ev = result.evaluations
    console.print(f"quantized evaluations: {ev.get('rows')} rows of {ev.get('runs')} runs, bits {fmt(ev['bits'][0])}–"
                  f"{fmt(ev['bits'][1])}, tokens per parameter {ev['tokens_per_param'][0]:.3g}–"
                  f"{ev['tokens_per_param'][1]:.3g}" + (f", method {ev['method']}" if ev.get("method") else "")
                  + (f"; {ev['excluded_nonpositive']} rows with loss <= loss_float left out"
                     if ev.get("excluded_nonpositive") else ""))
    if result.pairing:
        console.print(f"bootstrap pairing of L and δ: {result.pairing}")
    h = result.holdout
    if h:
        for r in h["rows"]:
            line = f"held out {r['run']} at {fmt(r['bits'])} bits: measured {r['actual_loss']:.4f}"
            if "loss" in r:
                line += f", predicted {r['loss']:.4f}"
            if "interval" in r:
                line += f" [{r['interval'][0]:.4f}, {r['interval'][1]:.4f}] {'inside' if r['inside'] else 'OUTSIDE'}"
            if "prediction_interval" in r:
                lo, hi = r["prediction_interval"]
                line += f"; one-run interval [{lo:.4f}, {hi:.4f}] {'inside' if r['inside_prediction'] else 'OUTSIDE'}"
            console.print(line)


def predict_served_cmd(console: Console, fit_path: Path, params: float | None, tokens: float | None, bits: float,
                       as_json: bool) -> None:
    from scalinglab.errors import InputError
    from scalinglab.fitting.precision_file import PrecisionFit
    from scalinglab.planning.precision import predict_served

    if params is None or tokens is None:
        raise InputError(f"predict: --bits needs --{'params' if params is None else 'tokens'}")
    pred = predict_served(PrecisionFit.load(fit_path), params, tokens, bits)
    if as_json:
        print(json.dumps(pred, indent=2))
        return
    where = f"N={fmt(params)}, D={fmt(tokens)}, {fmt(pred['inputs']['bits'])} bits"

    def iv(d):
        text = f"  [{d['interval'][0]:.4g}, {d['interval'][1]:.4g}]" if "interval" in d else ""
        if "prediction_interval" in d:
            text += f", one run [{d['prediction_interval'][0]:.4g}, {d['prediction_interval'][1]:.4g}]"
        return text

    if "loss" in pred:
        line = f"loss after quantization at {where}: {pred['loss']:.4f}"
        if "interval" in pred:
            line += f"  ({pred['level']:.0%} interval {pred['interval'][0]:.4f} – {pred['interval'][1]:.4f}"
            if "prediction_interval" in pred:
                line += (f"; for one run {pred['prediction_interval'][0]:.4f} – "
                         f"{pred['prediction_interval'][1]:.4f}")
            line += ")"
        console.print(line)
        console.print(f"  float loss L(N, D):  {pred['loss_float']['value']:.4f}{iv(pred['loss_float'])}")
    console.print(f"  loss increase δ_PTQ: {pred['ptq_delta']['value']:.4g}{iv(pred['ptq_delta'])}")
    for w in pred["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")


def plan_served_cmd(console: Console, fit_path: Path, flops: float | None, target_loss: float | None,
                    serve_bits: float, as_json: bool) -> None:
    from scalinglab.errors import InputError
    from scalinglab.fitting.precision_file import PrecisionFit
    from scalinglab.planning.precision import plan_served

    if flops is None or target_loss is not None:
        raise InputError("plan: --serve-bits plans for a budget; give --flops (not --target-loss)")
    result = plan_served(PrecisionFit.load(fit_path), flops, serve_bits)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    print_served_plan(console, result)


def print_served_plan(console: Console, p: dict) -> None:
    fl, sv, sh = p["full_precision"], p["served"], p["shift"]

    def cell(part, key, digits=None):
        v = part[key]
        text = f"{v:.{digits}f}" if digits is not None else fmt(v)
        ivs = part.get("intervals", {})
        if key in ivs:
            lo, hi = ivs[key]
            text += f" [{lo:.{digits}f}, {hi:.{digits}f}]" if digits is not None else f" [{fmt(lo)}, {fmt(hi)}]"
        return text

    bits = fmt(p["serve_bits"])
    t = Table(title=f"compute-optimal plan for C = {p['flops']:.3e} FLOPs: trained for bf16 vs for serving at {bits} bits"
              + (f" ({p['level']:.0%} intervals)" if "level" in p else ""), title_justify="left")
    for col in ("quantity", "full precision", f"served at {bits} bits", "shift (served / full)"):
        t.add_column(col, justify="left" if col == "quantity" else "right")
    t.add_row("N* (parameters)", cell(fl, "params"), cell(sv, "params"), cell(sh, "params_ratio", 3) + "×")
    t.add_row("D* (tokens)", cell(fl, "tokens"), cell(sv, "tokens"), cell(sh, "tokens_ratio", 3) + "×")
    t.add_row("tokens per parameter", cell(fl, "tokens_per_param", 1), cell(sv, "tokens_per_param", 1),
              cell(sh, "tokens_per_param_ratio", 3) + "×")
    t.add_row("loss in bf16", cell(fl, "loss", 4), cell(sv, "loss_float", 4), "")
    t.add_row(f"loss after quantizing to {bits} bits", cell(fl, "loss_at_serve_bits", 4), cell(sv, "loss", 4),
              "gain " + cell(sh, "loss_gain", 4))
    console.print(t)
    for w in p["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
