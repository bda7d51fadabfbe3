"""Rich renderings of hyperparameter fits, batch trade-off forecasts and training plans."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from scalinglab.report.tables import fmt


def _iv(d: dict | None) -> str:
    if not d or d.get("interval") is None:
        return "—"
    lo, hi = d["interval"]
    return f"[{fmt(lo)}, {fmt(hi)}]"


def print_tradeoff_prediction(console: Console, pred: dict) -> None:
    at = ", ".join(f"{k}={fmt(v)}" for k, v in pred["inputs"].items()) or "the fitted size"
    t = Table(title=f"steps/batch trade-off at {at}", title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column(f"{pred.get('level', 0.95):.0%} interval", justify="right")
    t.add_row("S_min (steps at B ≫ B_crit)", fmt(pred["S_min"]["value"]), _iv(pred["S_min"]))
    t.add_row("B_crit (critical batch)", fmt(pred["B_crit"]["value"]), _iv(pred["B_crit"]))
    console.print(t)
    for w in pred.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def print_hparams_fit(console: Console, hp: dict) -> None:
    for key, label in (("optimal_lr", "optimal learning rate"), ("optimal_batch", "optimal batch size")):
        fit = hp.get(key)
        if not fit:
            continue
        ci = (fit.get("bootstrap") or {}).get("ci", {})
        parts = [f"{k} = {fmt(v)}" + (f" [{fmt(ci[k][0])}, {fmt(ci[k][1])}]" if k in ci else "")
                 for k, v in fit["params"].items()]
        ok = sum(o["status"] == "ok" for o in fit["optima"])
        console.print(f"{label}: {fit['formula']}: " + ", ".join(parts)
                      + f"  ({ok}/{len(fit['optima'])} sweeps with an interior optimum, "
                        f"rms log residual {fit['diagnostics']['rms_log_residual']:.3f})")
        for r in (fit.get("heldout") or {}).get("rows", []):
            console.print(f"  held-out largest size N = {fmt(r['params'])}, D = {fmt(r['tokens'])}: predicted "
                          f"{fmt(r['predicted'])}, measured {fmt(r['measured'])} ({r['grid_steps']:.2f} grid steps; "
                          f"{'within' if r['within_one_step'] else 'outside'} the sweep's resolution)")
    trade = hp.get("tradeoff") or {}
    if trade.get("batch_tradeoff"):
        p = trade["batch_tradeoff"]["params"]
        console.print(f"steps/batch trade-off: {trade['batch_tradeoff']['formula']}: "
                      + ", ".join(f"{k} = {fmt(v)}" for k, v in p.items()))
    for row in trade.get("per_size", []):
        noise = row.get("B_simple")
        extra = (f", gradient noise scale B_simple {fmt(noise)} (B_crit/B_simple = {row['ratio']:.2f})"
                 if noise is not None and noise == noise else "")
        console.print(f"  N = {fmt(row['params'])}: S_min {fmt(row['S_min'])} steps, B_crit {fmt(row['B_crit'])}"
                      f"{extra} (target loss {row['target']:.4f})")
    crit = hp.get("critical_batch")
    if crit:
        parts = []
        for k, v in crit["rms_log_residual"].items():
            p = crit["fits"][k]["params"]
            parts.append(f"over {'D' if k == 'tokens' else 'N'}: c = {fmt(p['c'])}, a = {p['a']:.3f}, rms log residual {v:.3f}")
        console.print(f"critical batch B_crit = c·X^a ({crit.get('data', '')}): " + "; ".join(parts)
                      + f"; explained better by {'D' if crit['better'] == 'tokens' else 'N'}")
    for note in hp.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")


def print_hparams_plan(console: Console, hp_plan: dict) -> None:
    t = Table(title=f"how to train N = {fmt(hp_plan['params'])}, D = {fmt(hp_plan['tokens'])}", title_justify="left")
    t.add_column("quantity")
    t.add_column("value", justify="right")
    t.add_column("interval", justify="right")
    if "lr" in hp_plan:
        t.add_row("η* (peak learning rate)", fmt(hp_plan["lr"]["value"]), _iv(hp_plan["lr"]))
    for key, label in (("batch_size", "B* (sequences per step)"), ("batch_tokens", "B* (tokens per step)")):
        if key in hp_plan:
            d = hp_plan[key]
            bound = f"{d['bound']} " if d.get("bound") else ""
            t.add_row(label, bound + fmt(d["value"]), _iv(d))
    if "B_crit" in hp_plan:
        t.add_row(f"B_crit ({hp_plan['B_crit']['source']})", fmt(hp_plan["B_crit"]["value"]), _iv(hp_plan["B_crit"]))
    console.print(t)
    if hp_plan.get("tradeoff"):
        tt = Table(title="steps vs batch size (McCandlish et al. 2018)", title_justify="left")
        for col in ("batch (sequences)", "steps", "sequences", "steps ÷ at B*", "data ÷ planned"):
            tt.add_column(col, justify="right")
        for r in hp_plan["tradeoff"]:
            tt.add_row(fmt(r["batch_size"]), fmt(r["steps"]), fmt(r["sequences"]), f"{r['relative_steps']:.2f}",
                       f"{r['relative_sequences']:.2f}")
        console.print(tt)
    for w in hp_plan.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
