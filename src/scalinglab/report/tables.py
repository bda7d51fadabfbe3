"""Rich renderings of fits, forecasts and plans for the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from scalinglab.fitting.result import FitResult


def fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"


def fit_table(fit: FitResult) -> Table:
    level = f"{fit.bootstrap.level:.0%} CI" if fit.bootstrap else "CI"
    t = Table(title=f"{fit.law}: {fit.formula}", title_justify="left", min_width=60)
    t.add_column("param")
    t.add_column("value", justify="right")
    t.add_column(f"{level} (bootstrap n={fit.bootstrap.n})" if fit.bootstrap else level, justify="right")
    for k, v in fit.params.items():
        ci = fit.bootstrap.ci.get(k) if fit.bootstrap else None
        t.add_row(k, fmt(v), f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "—")
    return t


def print_fit(console: Console, fit: FitResult) -> None:
    console.print(fit_table(fit))
    auto = ", auto: 1.345 × MAD of residuals" if "huber_delta_auto" in (fit.diagnostics or {}) else ""
    console.print(f"objective (Σ Huber δ={fit.huber_delta:g}{auto}) = {fit.objective:.10g} over {fit.n_points} points, "
                  f"{fit.starts} starts")
    d = fit.diagnostics
    if d:
        parts = [f"condition number {d['condition_number']:.3g}"]
        if "alpha_beta_correlation" in d:
            parts.append(f"corr(alpha, beta) = {d['alpha_beta_correlation']:+.3f}")
        console.print("identifiability: " + ", ".join(parts))
        for w in d.get("warnings", []):
            console.print(f"[yellow]warning:[/] {w}")
    if fit.holdout:
        h = fit.holdout
        console.print(f"held-out check ({h['rule']}): mean |relative error| {h['mean_abs_relative_error']:.2%}, "
                      f"max {h['max_abs_relative_error']:.2%}")
        for p, a, r in zip(h["predicted"], h["actual"], h["relative_error"], strict=True):
            console.print(f"  predicted {p:.4f}  actual {a:.4f}  error {r:+.2%}")


def print_prediction(console: Console, pred: dict) -> None:
    inputs = ", ".join(f"{k}={fmt(v)}" for k, v in pred["inputs"].items())
    line = f"predicted {pred.get('target', 'loss')} at {inputs}: {pred['loss']:.4f}"
    if "interval" in pred:
        line += f"  ({pred['level']:.0%} interval {pred['interval'][0]:.4f} – {pred['interval'][1]:.4f})"
    console.print(line)
    far = {k: v for k, v in pred.get("extrapolation", {}).items() if v > 1}
    if far:
        console.print("extrapolation: " + ", ".join(f"{k} {v:.3g}× the largest fitted" for k, v in far.items()))


def print_plan(console: Console, plan: dict) -> None:
    iv = plan.get("intervals", {})

    def cell(key):
        return f"[{fmt(iv[key][0])}, {fmt(iv[key][1])}]" if key in iv else "—"

    title = f"compute-optimal plan for C = {plan['flops']:.3e} FLOPs"
    if "target_loss" in plan:
        title += f" (smallest budget reaching loss {plan['target_loss']:g})"
    t = Table(title=title, title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column(f"{plan.get('level', 0.95):.0%} interval" if iv else "interval", justify="right")
    t.add_row("N* (parameters)", fmt(plan["params"]), cell("params"))
    t.add_row("D* (tokens)", fmt(plan["tokens"]), cell("tokens"))
    t.add_row("tokens per parameter", f"{plan['tokens_per_param']:.1f}", cell("tokens_per_param"))
    t.add_row("predicted loss", f"{plan['loss']:.4f}", cell("loss"))
    t.add_row("loss change from 2× compute", f"{plan['doubling']['delta_loss']:+.4f}", cell("delta_loss"))
    console.print(t)
