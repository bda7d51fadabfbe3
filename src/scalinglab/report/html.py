"""`scalinglab report`: one self-contained HTML page from a run store or table, fits, a chain and a plan.

    from scalinglab.report.html import ReportConfig, write_report
    write_report(ReportConfig(data="runs.db", fits=("fit.json",), plan_flops=(1e23,)), "report.html")

Sections, each present when its inputs are: the runs (sortable table), loss curves per run, every fit
with its data, residuals and bootstrap band, the held-out extrapolation check (the fits' own, or one run
here: refit without the largest-compute points), IsoFLOP profiles and the compute-optimal frontier, the
plan at the requested budgets, quantization results (``--quant`` files from ``scalinglab evaluate --json``,
and precision columns ``bits_*`` of the run table), and downstream chains (``--chain``).

A chain file is rendered when it holds the keys documented in docs/report.md (``target``, ``via``,
``law``, ``link``, ``step1`` and ``step2`` fit objects with ``params``; optional ``holdout``); any other
JSON gets a one-line note in the page instead of a section.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scalinglab import __version__
from scalinglab.errors import InputError
from scalinglab.fitting.result import FitResult, write_text_atomic
from scalinglab.report import figures as F
from scalinglab.report.page import Page, esc, fmt, table_html

__all__ = ["ReportConfig", "build_report", "write_report", "CHAIN_KEYS", "QUANT_KEYS"]

CHAIN_KEYS = ("target", "via", "law", "link", "step1", "step2")
QUANT_KEYS = ("perplexity", "weight_bytes", "linear_bytes")
HOLDOUT_FRACTION = 0.1  # the report's own held-out check leaves out this share of the points (at least 1)
AUTO_PLAN_DECADES = (1, 2, 3)  # without --plan-flops: budgets 10×, 100×, 1000× the largest compute in the data


@dataclass(frozen=True)
class ReportConfig:
    data: str | Path
    fits: tuple[str | Path, ...] = ()
    chain: str | Path | None = None
    plan_flops: tuple[float, ...] = ()
    quant: tuple[str | Path, ...] = ()
    holdout: str | None = "auto"  # "auto", a rule like "largest-compute=3", or None for no check of our own
    title: str = "scalinglab report"

    def __post_init__(self) -> None:
        for c in self.plan_flops:
            if not (isinstance(c, (int, float)) and math.isfinite(c) and c > 0):
                raise InputError(f"--plan-flops: {c!r} is not a positive number of FLOPs")


def _load_data(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """(fit table, curves table, is_store): the points fits use and every logged point per run."""
    from scalinglab.runs.io import SQLITE_SUFFIXES, read_runs

    table = read_runs(path)
    if "run" not in table.columns:
        table = table.assign(run=path.stem)  # no run column: the file is one run
    if "loss" not in table.columns:
        raise InputError(f"{path}: no 'loss' column; the report needs a run table with losses")
    is_store = path.suffix.lower() in SQLITE_SUFFIXES
    curves = table
    if is_store:
        from scalinglab.runs.store import load_run_table

        curves = load_run_table(path, final_only=False)
    return table, curves, is_store


def _runs_section(page: Page, table: pd.DataFrame, curves: pd.DataFrame, is_store: bool, source: Path) -> None:
    cols = [c for c in ("params", "tokens", "flops", "loss") if c in table.columns]
    extra = [c for c in ("group", "lr", "batch_size", "seed", "floor", "bits_w", "bits_a", "bits_post")
             if c in table.columns]
    rows = []
    for run, g in table.groupby("run", sort=False):
        last = g.loc[g["flops"].idxmax()] if "flops" in g.columns else g.iloc[-1]
        rows.append([str(run)] + [float(last[c]) for c in cols] + [len(curves[curves["run"] == run])]
                    + [last[c] if isinstance(last[c], str) else float(last[c]) for c in extra])
    names = ["run"] + ["N (params)" if c == "params" else "D (tokens)" if c == "tokens" else
                       "C (FLOPs)" if c == "flops" else "loss" for c in cols] + ["points"] + extra
    what = "final evaluation of each finished run in the store" if is_store else "the row of largest compute per run"
    inner = (f'<p class="note">{len(rows)} runs, {len(table)} fitted points from <code>{esc(source.name)}</code>; '
             f"each row shows {what}. Click a column header to sort.</p>" + table_html(names, rows))
    page.add("runs", "Runs", inner)
    fig = F.loss_curves(curves)
    if fig is not None:
        note = ("validation loss at every evaluation of each run (intermediate points of a decaying schedule "
                "are not shorter runs and are not fitted)" if is_store else "every point of each run")
        page.add("curves", "Loss curves", page.figure(fig, f"Hover a point for its run; {note}."))


def _params_table(fit: FitResult) -> str:
    level = f"{fit.bootstrap.level:.0%} CI (bootstrap n={fit.bootstrap.n})" if fit.bootstrap else "CI"
    rows = [[k, float(v), (f"[{fmt(fit.bootstrap.ci[k][0])}, {fmt(fit.bootstrap.ci[k][1])}]"
                          if fit.bootstrap and k in fit.bootstrap.ci else "—")] for k, v in fit.params.items()]
    return table_html(["parameter", "value", level], rows, sortable=False, numeric=[False, True, False])


def _holdout_block(page: Page, fit: FitResult, held: pd.DataFrame | None, origin: str) -> str:
    h = fit.holdout
    n = len(h["predicted"])
    names = [str(r) for r in held["run"]] if held is not None and len(held) == n else [str(i + 1) for i in range(n)]
    rows = [[r, float(p), float(a), float(e)]
            for r, p, a, e in zip(names, h["predicted"], h["actual"], h["relative_error"], strict=True)]
    return (f"<p>{esc(origin)}: {esc(fit.law)} fitted without the held-out points ({esc(h['rule'])}), then asked to "
            f"predict them. Mean |relative error| <b>{h['mean_abs_relative_error']:.2%}</b>, max "
            f"{h['max_abs_relative_error']:.2%}.</p>"
            + page.figure(F.holdout_figure(h, held), "Stars on the dashed y = x line would be perfect forecasts.")
            + table_html(["held-out run", "predicted", "actual", "relative error"], rows))


def _split(table: pd.DataFrame, rule: str, source: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from scalinglab.fitting.validate import parse_holdout, split

    return split(table, parse_holdout(rule), source)


def _fits_section(page: Page, fits: list[tuple[Path, FitResult]], table: pd.DataFrame, source: str) -> None:
    for i, (path, fit) in enumerate(fits, 1):
        law_inputs = F.get_law(fit.law).inputs
        parts = [f"<p><b>{esc(fit.formula or fit.law)}</b> from <code>{esc(path.name)}</code>: {fit.n_points} points, "
                 f"objective {fit.objective:.6g} (Σ Huber δ={fit.huber_delta:g}).</p>", _params_table(fit)]
        for w in (fit.diagnostics or {}).get("warnings", []):
            parts.append(f'<p class="warn">warning: {esc(w)}</p>')
        missing = [c for c in law_inputs if c not in table.columns]
        if missing:
            parts.append(f'<p class="note">The data has no column {esc(missing[0])!s}, which {esc(fit.law)} needs: '
                         "no plots for this fit.</p>")
        else:
            data, held = table, None
            if fit.holdout and fit.holdout.get("rule"):
                try:
                    data, held = _split(table, fit.holdout["rule"], source)
                except InputError:
                    data, held = table, None
            if fit.data_sha256 and fit.n_points != len(data):
                parts.append(f'<p class="warn">This fit used {fit.n_points} points; the report\'s data has {len(data)}: '
                             "it may come from other data.</p>")
            band = " and the 95% bootstrap band of the frontier" if fit.bootstrap else ""
            parts.append(page.figure(F.fit_figure(fit, data, held), f"Data, fitted law{band}; hover for the run."))
            parts.append(page.figure(F.residual_figure(fit, data)))
            if fit.holdout and held is not None:
                parts.append("<h3>Held-out extrapolation check</h3>" + _holdout_block(page, fit, held, "This fit"))
        page.add(f"fit-{i}", f"Fit {i}: {fit.law}", "".join(parts))


def _auto_holdout(page: Page, fits: list[tuple[Path, FitResult]], table: pd.DataFrame, rule: str | None,
                  source: str) -> None:
    """Our own held-out check when no fit carries one: refit the first (N, D) law without the largest points."""
    if rule is None or any(f.holdout for _, f in fits) or not {"params", "tokens", "flops"} <= set(table.columns):
        return
    law = next((f.law for _, f in fits if F.is_nd_law(f.law)), "chinchilla" if not fits else None)
    if law is None:
        return
    if rule == "auto":
        rule = f"largest-compute={max(1, round(HOLDOUT_FRACTION * len(table)))}"
    if len(table) < 8:
        page.add("holdout", "Held-out extrapolation check",
                 f'<p class="note">Skipped: {len(table)} points are too few to hold some out and still fit {esc(law)}.</p>')
        return
    from scalinglab.fitting.api import fit as run_fit

    check = run_fit(table, law, holdout=rule)
    fitted, held = _split(table, rule, source)
    inner = _holdout_block(page, check, held, "Refitted for this report")
    inner += page.figure(F.fit_figure(check, fitted, held), "The held-out fit and its data; red stars were not fitted.")
    page.add("holdout", "Held-out extrapolation check", inner)


def _compute_optimal_section(page: Page, fits: list[FitResult], table: pd.DataFrame, curves: pd.DataFrame,
                             plan_flops: Sequence[float]) -> None:
    from scalinglab.planning.compute_optimal import plan

    if not {"params", "flops", "loss"} <= set(table.columns):
        return
    levels, note = F.isoflop_levels(table), ""
    if not levels and curves is not table and len(curves) > len(table):
        levels, note = F.isoflop_levels(curves), "interpolated along training curves"
    fig, vertices = F.isoflop_figure(levels, note)
    nd = [f for f in fits if F.is_nd_law(f.law)]
    budgets = list(plan_flops) or ([float(table["flops"].max()) * 10**k for k in AUTO_PLAN_DECADES] if nd else [])
    plans = [plan(nd[0], c) for c in budgets] if nd else []
    front = F.frontier_figure(table, nd, vertices, plans)
    if fig is None and front is None:
        return
    inner = ""
    if fig is not None:
        inner += page.figure(fig, "Each colour is one compute level; × marks a parabola's interior minimum.")
    else:
        inner += '<p class="note">No IsoFLOP profiles: no compute level has runs of 3 or more sizes.</p>'
    if front is not None:
        inner += page.figure(front, "Lines: N*(C) of each (N, D) fit with its bootstrap band; diamonds: the plan.")
    page.add("compute-optimal", "IsoFLOP profiles and compute-optimal frontier", inner)
    if plans:
        rows = []
        for p in plans:
            iv = p.get("intervals", {})
            rows.append([p["flops"], p["params"], p["tokens"], p["tokens_per_param"], p["loss"],
                         f"[{fmt(iv['loss'][0])}, {fmt(iv['loss'][1])}]" if "loss" in iv else "—",
                         p["doubling"]["delta_loss"]])
        how = "requested" if plan_flops else "10×, 100× and 1000× the largest compute in the data (no --plan-flops given)"
        page.add("plan", "Plan", f"<p>Compute-optimal allocation from fit 1 ({esc(nd[0].law)}) at the {how} budgets; "
                 "the last column is what doubling the budget buys.</p>"
                 + table_html(["C (FLOPs)", "N*", "D*", "D*/N*", "loss", f"{nd[0].bootstrap.level:.0%} interval"
                               if nd[0].bootstrap else "interval", "Δloss at 2×C"], rows, sortable=False,
                              numeric=[True] * 5 + [False, True]))


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON {what} file ({exc})") from None


def _quant_section(page: Page, paths: Sequence[Path], table: pd.DataFrame) -> None:
    rows = []
    for path in paths:
        data = _read_json(path, "evaluation")
        items = data if isinstance(data, list) else [data]
        for j, r in enumerate(items):
            if not isinstance(r, dict) or any(not isinstance(r.get(k), (int, float)) for k in QUANT_KEYS):
                raise InputError(f"{path}: entry {j + 1} lacks {', '.join(QUANT_KEYS)} "
                                 "(expected the output of `scalinglab evaluate --json`)")
            rows.append({**r, "label": f"{path.stem}: {r.get('quantization', 'none')}"})
    bits = [c for c in ("bits_w", "bits_a", "bits_kv", "bits_post") if c in table.columns]
    if not rows and not bits:
        return
    inner = ""
    if rows:
        inner += page.figure(F.quant_figure(rows), "One point per evaluated checkpoint; hover for bytes and speed.")
        inner += table_html(["checkpoint", "perplexity", "linear bytes", "weight bytes", "latency ms", "tokens/s"],
                            [[r["label"], r["perplexity"], r["linear_bytes"], r["weight_bytes"], r.get("latency_ms"),
                              r.get("throughput_tok_s")] for r in rows])
    if bits:
        sub = table[["run"] + bits + [c for c in ("params", "tokens", "loss") if c in table.columns]]
        inner += "<h3>Precision columns of the run table</h3>" + table_html(
            list(sub.columns), [[v if isinstance(v, str) else float(v) for v in r] for r in sub.itertuples(index=False)])
    page.add("quant", "Quantization", inner)


def _chain_section(page: Page, path: Path) -> None:
    data = _read_json(path, "chain")
    missing = [k for k in CHAIN_KEYS if not isinstance(data, dict) or k not in data]
    if not missing:
        missing = [f"{k}.params" for k in ("step1", "step2") if not isinstance(data[k], dict)
                   or not isinstance(data[k].get("params"), dict)]
    if missing:
        page.add("chain", "Downstream chain", f'<p class="note">Not shown: <code>{esc(path.name)}</code> has no '
                 f"'{esc(missing[0])}' (a chain needs {', '.join(CHAIN_KEYS)}; see docs/report.md).</p>")
        return
    parts = [f"<p>Two steps fitted together: {esc(data['law'])} predicts <b>{esc(data['via'])}</b> from (N, D); "
             f"{esc(data['link'])} maps it to <b>{esc(data['target'])}</b>.</p>"]
    for key, what in (("step1", f"step 1: {data['law']} → {data['via']}"), ("step2", f"step 2: {data['link']} → {data['target']}")):
        step = data[key]
        ci = (step.get("bootstrap") or {}).get("ci") or {}
        rows = [[str(k), float(v) if isinstance(v, (int, float)) else None,
                 f"[{fmt(ci[k][0])}, {fmt(ci[k][1])}]" if isinstance(ci.get(k), list) and len(ci[k]) == 2 else "—"]
                for k, v in step["params"].items()]
        parts.append(f"<h3>{esc(what)}</h3>" + table_html(["parameter", "value", "CI"], rows, sortable=False,
                                                          numeric=[False, True, False]))
    fig = F.chain_figure(data)
    if fig is not None:
        parts.append(page.figure(fig, "The link over the range of the via metric it was fitted on."))
    h = data.get("holdout")
    if isinstance(h, dict) and isinstance(h.get("predicted"), list) and isinstance(h.get("actual"), list) \
            and len(h["predicted"]) == len(h["actual"]) > 0:
        pred, act = h["predicted"], h["actual"]
        err = [p / a - 1 if a else None for p, a in zip(pred, act, strict=True)]
        hh = {"rule": h.get("rule", ""), "predicted": pred, "actual": act,
              "mean_abs_relative_error": sum(abs(e) for e in err if e is not None) / len(err)}
        parts.append("<h3>Held-out check of the chain</h3>" + page.figure(F.holdout_figure(hh)))
    page.add("chain", f"Downstream chain: {data['target']}", "".join(parts))


def build_report(cfg: ReportConfig) -> str:
    """The report as one HTML string."""
    source = Path(cfg.data)
    table, curves, is_store = _load_data(source)
    fits = [(Path(p), FitResult.load(p)) for p in cfg.fits]
    page = Page(cfg.title, f"{source.name} · {len(fits)} fit(s) · scalinglab {__version__} · "
                           f"{time.strftime('%Y-%m-%d %H:%M', time.localtime())}")
    _runs_section(page, table, curves, is_store, source)
    _fits_section(page, fits, table, str(source))
    _auto_holdout(page, fits, table, cfg.holdout, str(source))
    _compute_optimal_section(page, [f for _, f in fits], table, curves, cfg.plan_flops)
    _quant_section(page, [Path(p) for p in cfg.quant], table)
    if cfg.chain is not None:
        _chain_section(page, Path(cfg.chain))
    return page.render()


def write_report(cfg: ReportConfig, out: str | Path) -> Path:
    """Build the report and write it atomically; returns the path."""
    out = Path(out)
    write_text_atomic(out, build_report(cfg))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out, 0o666 & ~umask)  # a page to share: the temporary file's owner-only mode is not wanted here
    return out
