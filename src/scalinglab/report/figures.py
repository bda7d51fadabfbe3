"""Interactive figures for the HTML report, as plotly.js figure specs (plain dicts: ``data`` + ``layout``).

Every function is pure: tables and fit results in, a JSON-able dict out (NaN becomes null when the page
is written). Points carry the run they came from, so hovering names it; every series has a legend entry
that toggles it. Figures over (params, tokens) laws mirror :mod:`scalinglab.report.plots`: loss against
compute C with the compute-optimal frontier L*(C) extrapolated past the data and its bootstrap band.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from scalinglab.fitting.result import FitResult
from scalinglab.laws.registry import get_law
from scalinglab.planning.compute_optimal import _optimal_rows
from scalinglab.planning.predict import log_loss_batch, theta_samples

__all__ = ["loss_curves", "fit_figure", "residual_figure", "holdout_figure", "isoflop_figure", "frontier_figure",
           "quant_figure", "chain_figure", "is_nd_law", "fit_predictions", "isoflop_levels"]

EXTRAPOLATE_DECADES = 2.0  # the frontier runs this far past the largest compute in the data
BAND_SAMPLES = 200  # bootstrap replicates drawn for the band (its percentiles are stable by then)
BAND_LEVEL = 0.95
GRID_POINTS = 48
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]
LOG_AXIS = {"type": "log", "exponentformat": "power"}
AXIS = {"showgrid": True, "gridcolor": "#e5e7eb", "zeroline": False, "linecolor": "#9ca3af"}


def _layout(title: str, x: str, y: str, xlog: bool = True, ylog: bool = False, height: int = 420) -> dict:
    return {"title": {"text": title, "font": {"size": 14}}, "height": height, "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
            "xaxis": {**AXIS, **(LOG_AXIS if xlog else {}), "title": {"text": x}},
            "yaxis": {**AXIS, **(LOG_AXIS if ylog else {}), "title": {"text": y}},
            "legend": {"font": {"size": 10}}, "hovermode": "closest", "paper_bgcolor": "#ffffff",
            "plot_bgcolor": "#ffffff"}


def _arr(v) -> list:
    return np.asarray(v, dtype=float).tolist()


def _names(values) -> list[str]:
    """Run names for hover text: plotly reads a few HTML tags in text, so names are entity-escaped."""
    return [html.escape(str(v)) for v in values]


def is_nd_law(law_name: str) -> bool:
    return set(get_law(law_name).inputs) == {"params", "tokens"}


def _hover(table: pd.DataFrame, extra: dict[str, np.ndarray] | None = None) -> tuple[list, str]:
    """customdata rows and a hovertemplate naming the run and its N, D, C, loss (and extras)."""
    cols = [c for c in ("params", "tokens", "flops", "loss") if c in table.columns]
    data = [table[c].to_numpy(dtype=float) for c in cols]
    names = list(cols)
    for k, v in (extra or {}).items():
        data.append(np.asarray(v, dtype=float))
        names.append(k)
    custom = np.column_stack(data).tolist() if data else []
    lines = [f"{n}=%{{customdata[{i}]:.4g}}" for i, n in enumerate(names)]
    return custom, "<b>%{text}</b><br>" + "<br>".join(lines) + "<extra></extra>"


def loss_curves(curves: pd.DataFrame) -> dict | None:
    """Validation loss against tokens, one line per run (None when no run has two points)."""
    x_col = next((c for c in ("tokens", "step", "flops") if c in curves.columns), None)
    if x_col is None or "run" not in curves.columns or curves.groupby("run").size().max() < 2:
        return None
    fig = {"data": [], "layout": _layout("Loss curves (one line per run; click a legend entry to hide it)",
                                          {"tokens": "tokens D", "step": "step", "flops": "compute C (FLOPs)"}[x_col],
                                          "loss")}
    for i, (run, g) in enumerate(curves.groupby("run", sort=False)):
        g = g.sort_values(x_col)
        custom, tmpl = _hover(g)
        fig["data"].append({"type": "scatter", "mode": "lines+markers", "name": html.escape(str(run)), "x": _arr(g[x_col]),
                            "y": _arr(g["loss"]), "text": _names([run] * len(g)), "customdata": custom,
                            "hovertemplate": tmpl, "marker": {"size": 4}, "line": {"width": 1.2,
                            "color": PALETTE[i % len(PALETTE)]}})
    return fig


def fit_predictions(fit: FitResult, table: pd.DataFrame) -> np.ndarray:
    """Fitted loss at every row of ``table`` (which must hold the law's input columns)."""
    law = get_law(fit.law)
    return np.exp(log_loss_batch(law, np.asarray(fit.theta, float), {c: table[c].to_numpy() for c in law.inputs})[0])


def _samples(fit: FitResult, law) -> np.ndarray | None:
    samples = theta_samples(law, fit)
    if samples is not None and len(samples) > BAND_SAMPLES:
        samples = samples[np.random.default_rng(0).choice(len(samples), BAND_SAMPLES, replace=False)]
    return samples


def frontier(law, theta: np.ndarray, flops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N*, L*) along ``flops`` for parameter rows (S, P) → two (S, len(flops)) arrays."""
    rows = [_optimal_rows(law, theta, float(c)) for c in flops]
    return np.array([r[0] for r in rows]).T, np.array([r[1] for r in rows]).T


def _band(fig: dict, x, lo, hi, name: str, color: str = "rgba(0,0,0,0.15)") -> None:
    fig["data"].append({"type": "scatter", "mode": "lines", "x": _arr(x), "y": _arr(hi), "line": {"width": 0},
                        "showlegend": False, "hoverinfo": "skip", "legendgroup": name, "name": name})
    fig["data"].append({"type": "scatter", "mode": "lines", "x": _arr(x), "y": _arr(lo), "line": {"width": 0},
                        "fill": "tonexty", "fillcolor": color, "name": name, "legendgroup": name,
                        "hoverinfo": "skip"})


def fit_figure(fit: FitResult, table: pd.DataFrame, held: pd.DataFrame | None = None) -> dict:
    """The data, the fitted law and (with a bootstrap) its 95% band; held-out points as stars."""
    law = get_law(fit.law)
    theta = np.asarray(fit.theta, dtype=float)
    pred = fit_predictions(fit, table)
    params = ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items())
    if set(law.inputs) == {"params", "tokens"}:
        fig = {"data": [], "layout": _layout(f"{fit.law}: {params}", "compute C (FLOPs)", "loss")}
        fig["layout"]["legend"] = {"x": 0.01, "y": 0.01, "xanchor": "left", "yanchor": "bottom", "font": {"size": 10},
                                   "bgcolor": "rgba(255,255,255,0.85)"}  # clear of the colour bar on the right
        custom, tmpl = _hover(table, {"fitted": pred})
        fig["data"].append({"type": "scatter", "mode": "markers", "name": "runs", "x": _arr(table["flops"]),
                            "y": _arr(table["loss"]), "text": _names(table["run"]), "customdata": custom,
                            "hovertemplate": tmpl, "marker": {"size": 7, "color": _arr(np.log10(table["params"])),
                            "colorscale": "Viridis", "showscale": True, "colorbar": {"title": {"text": "log10 N"}}}})
        c_max = max(table["flops"].max(), held["flops"].max() if held is not None and len(held) else 0)
        grid = np.logspace(np.log10(table["flops"].min()), np.log10(c_max * 10**EXTRAPOLATE_DECADES), GRID_POINTS)
        samples = _samples(fit, law)
        if samples is not None:
            lo, hi = np.nanpercentile(frontier(law, samples, grid)[1], [2.5, 97.5], axis=0)
            _band(fig, grid, lo, hi, f"{BAND_LEVEL:.0%} bootstrap band of L*(C)")
        fig["data"].append({"type": "scatter", "mode": "lines", "name": "compute-optimal L*(C)", "x": _arr(grid),
                            "y": _arr(frontier(law, theta, grid)[1][0]), "line": {"color": "black", "width": 2},
                            "hovertemplate": "C=%{x:.3g}<br>L*=%{y:.4f}<extra>frontier</extra>"})
        x_col = "flops"
    else:
        x_col = "step" if "step" in law.inputs else law.inputs[0]
        fig = {"data": [], "layout": _layout(f"{fit.law}: {params}", x_col, "loss")}
        groups = table["run"] if "run" in table.columns else pd.Series(["all"] * len(table), index=table.index)
        for i, name in enumerate(pd.unique(groups)):
            sel = (groups == name).to_numpy()
            sub, p = table[sel], pred[sel]
            order = np.argsort(sub[x_col].to_numpy())
            color = PALETTE[i % len(PALETTE)]
            custom, tmpl = _hover(sub.iloc[order], {"fitted": p[order]})
            fig["data"].append({"type": "scatter", "mode": "markers", "name": f"{html.escape(str(name))} (data)",
                                "legendgroup": str(name), "x": _arr(sub[x_col].iloc[order]),
                                "y": _arr(sub["loss"].iloc[order]), "text": _names([name] * len(sub)),
                                "customdata": custom, "hovertemplate": tmpl, "marker": {"size": 5, "color": color}})
            fig["data"].append({"type": "scatter", "mode": "lines", "name": f"{html.escape(str(name))} (fit)", "legendgroup": str(name),
                                "x": _arr(sub[x_col].iloc[order]), "y": _arr(p[order]), "line": {"color": color},
                                "hoverinfo": "skip"})
    if held is not None and len(held):
        custom, tmpl = _hover(held, {"fitted": fit_predictions(fit, held)})
        fig["data"].append({"type": "scatter", "mode": "markers", "name": "held out (not fitted)",
                            "x": _arr(held[x_col]), "y": _arr(held["loss"]), "text": _names(held["run"]),
                            "customdata": custom, "hovertemplate": tmpl,
                            "marker": {"symbol": "star", "size": 13, "color": "#d62728"}})
    return fig


def residual_figure(fit: FitResult, table: pd.DataFrame) -> dict:
    """log L̂ − log L of every fitted point against its x (compute for (N, D) laws)."""
    law = get_law(fit.law)
    x_col = "flops" if set(law.inputs) == {"params", "tokens"} else ("step" if "step" in law.inputs else law.inputs[0])
    pred = fit_predictions(fit, table)
    resid = np.log(pred) - np.log(table["loss"].to_numpy(dtype=float))
    custom, tmpl = _hover(table, {"fitted": pred, "log residual": resid})
    fig = {"data": [{"type": "scatter", "mode": "markers", "name": "log L̂ − log L", "x": _arr(table[x_col]),
                     "y": _arr(resid), "text": _names(table["run"]), "customdata": custom,
                     "hovertemplate": tmpl, "marker": {"size": 6}}],
           "layout": _layout(f"Residuals of {fit.law} (RMS {np.sqrt(np.mean(resid**2)):.4f})",
                             "compute C (FLOPs)" if x_col == "flops" else x_col, "log residual", height=300)}
    fig["layout"]["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0,
                                "line": {"color": "black", "width": 1}}]
    return fig


def holdout_figure(holdout: dict, held: pd.DataFrame | None = None) -> dict:
    """Predicted against actual loss of the held-out runs, with the y = x line."""
    pred, act = np.asarray(holdout["predicted"], float), np.asarray(holdout["actual"], float)
    names = _names(held["run"]) if held is not None and len(held) == len(pred) else \
        [f"held-out {i + 1}" for i in range(len(pred))]
    lo, hi = float(min(pred.min(), act.min())), float(max(pred.max(), act.max()))
    pad = 0.02 * (hi - lo or 1.0)
    err = pred / act - 1
    return {"data": [
        {"type": "scatter", "mode": "lines", "name": "y = x (perfect)", "x": [lo - pad, hi + pad], "y": [lo - pad, hi + pad],
         "line": {"color": "grey", "dash": "dash"}, "hoverinfo": "skip"},
        {"type": "scatter", "mode": "markers", "name": "held-out runs", "x": _arr(act), "y": _arr(pred), "text": names,
         "customdata": np.column_stack([act, pred, err]).tolist(),
         "hovertemplate": "<b>%{text}</b><br>actual=%{customdata[0]:.4f}<br>predicted=%{customdata[1]:.4f}"
                          "<br>error=%{customdata[2]:+.2%}<extra></extra>",
         "marker": {"size": 10, "symbol": "star", "color": "#d62728"}}],
        "layout": _layout(f"Held-out check ({holdout.get('rule', '')}): mean |error| "
                          f"{holdout.get('mean_abs_relative_error', float(np.mean(np.abs(err)))):.2%}",
                          "actual loss", "predicted loss", xlog=False, height=360)}


def isoflop_levels(table: pd.DataFrame, levels: int = 12) -> list[tuple[float, pd.DataFrame]]:
    """IsoFLOP groups (C, rows of run, params, loss) with ≥ 3 distinct N, formed as Approach 2 forms them:
    runs logged at several points are interpolated (linearly in log C, log L) to ``levels`` shared compute
    levels; one-point runs are grouped when their compute agrees within ``GROUP_TOL_DECADES``."""
    from scalinglab.fitting.approaches import GROUP_TOL_DECADES

    curves = []
    for run, g in table.groupby("run", sort=False):
        if len(g) >= 2 and g["params"].nunique() == 1:
            g = g.sort_values("flops")
            curves.append((str(run), float(g["params"].iloc[0]), np.log(g["flops"].to_numpy(float)),
                           np.log(g["loss"].to_numpy(float))))
    out = []
    if len(curves) >= 3:
        grid = np.linspace(min(c[2][0] for c in curves), max(c[2][-1] for c in curves), levels + 2)[1:-1]
        for lc in grid:
            rows = [(r, n, float(np.exp(np.interp(lc, x, y)))) for r, n, x, y in curves if x[0] <= lc <= x[-1]]
            sub = pd.DataFrame(rows, columns=["run", "params", "loss"])
            if sub["params"].nunique() >= 3:
                out.append((float(np.exp(lc)), sub))
        return out
    logc = np.log10(table["flops"].to_numpy(dtype=float))
    order = list(np.argsort(logc))
    current = [order[0]]
    for i in order[1:] + [None]:
        if i is not None and logc[i] - logc[current[0]] <= GROUP_TOL_DECADES:
            current.append(i)
            continue
        sub = table.iloc[current]
        if sub["params"].nunique() >= 3:
            out.append((float(10 ** logc[current].mean()), sub[["run", "params", "loss"]].reset_index(drop=True)))
        if i is not None:
            current = [i]
    return out


def isoflop_figure(levels: list[tuple[float, pd.DataFrame]], note: str = "") -> tuple[dict | None, list]:
    """Loss against N at each IsoFLOP level with its parabola in log N; returns the figure and the interior
    vertices (C, N*) (Hoffmann et al. 2022, Approach 2)."""
    if not levels:
        return None, []
    fig = {"data": [], "layout": _layout("IsoFLOP profiles: loss vs N at fixed compute, parabola in log N"
                                          + (f" ({note})" if note else ""), "parameters N", "loss")}
    vertices = []
    for i, (c, sub) in enumerate(levels):
        color = PALETTE[i % len(PALETTE)]
        name = f"C ≈ {c:.2e}"
        x, y = np.log(sub["params"].to_numpy(float)), sub["loss"].to_numpy(float)
        fig["data"].append({"type": "scatter", "mode": "markers", "name": name, "legendgroup": name,
                            "x": _arr(sub["params"]), "y": _arr(y), "text": _names(sub["run"]),
                            "hovertemplate": "<b>%{text}</b><br>N=%{x:.4g}<br>loss=%{y:.4f}<extra>" + name + "</extra>",
                            "marker": {"color": color, "size": 7}})
        a2, a1, a0 = np.polyfit(x, y, 2)
        xs = np.linspace(x.min(), x.max(), 40)
        fig["data"].append({"type": "scatter", "mode": "lines", "name": f"{name} parabola", "legendgroup": name,
                            "showlegend": False, "x": _arr(np.exp(xs)), "y": _arr(a2 * xs**2 + a1 * xs + a0),
                            "line": {"color": color, "width": 1}, "hoverinfo": "skip"})
        if a2 > 0 and x.min() <= -a1 / (2 * a2) <= x.max():
            v = -a1 / (2 * a2)
            vertices.append((c, float(np.exp(v))))
            fig["data"].append({"type": "scatter", "mode": "markers", "name": f"{name} optimum", "legendgroup": name,
                                "showlegend": False, "x": [float(np.exp(v))], "y": [float(a2 * v * v + a1 * v + a0)],
                                "marker": {"symbol": "x", "size": 11, "color": color},
                                "hovertemplate": "N*=%{x:.4g}<br>loss=%{y:.4f}<extra>" + name + " vertex</extra>"})
    return fig, vertices


def frontier_figure(table: pd.DataFrame, fits: list[FitResult], vertices: list[tuple[float, float]],
                    plans: list[dict]) -> dict | None:
    """N*(C) on log-log axes: each (N, D) fit's frontier with its band, the IsoFLOP vertices, the plan."""
    nd = [f for f in fits if is_nd_law(f.law)]
    if not nd and not vertices:
        return None
    fig = {"data": [], "layout": _layout("Compute-optimal frontier N*(C)", "compute C (FLOPs)", "optimal parameters N*",
                                          ylog=True)}
    c_hi = max([table["flops"].max()] + [p["flops"] for p in plans]) * 3
    grid = np.logspace(np.log10(table["flops"].min()), np.log10(c_hi), GRID_POINTS)
    for i, f in enumerate(nd):
        law = get_law(f.law)
        color = PALETTE[i % len(PALETTE)]
        samples = _samples(f, law)
        if samples is not None:
            lo, hi = np.nanpercentile(frontier(law, samples, grid)[0], [2.5, 97.5], axis=0)
            _band(fig, grid, lo, hi, f"fit {i + 1} ({f.law}) {BAND_LEVEL:.0%} band", "rgba(31,119,180,0.15)")
        fig["data"].append({"type": "scatter", "mode": "lines", "name": f"fit {i + 1} ({f.law}) N*(C)", "x": _arr(grid),
                            "y": _arr(frontier(law, np.asarray(f.theta, float), grid)[0][0]),
                            "line": {"color": color, "width": 2},
                            "hovertemplate": "C=%{x:.3g}<br>N*=%{y:.4g}<extra>fit " + str(i + 1) + "</extra>"})
    if vertices:
        c, n = zip(*vertices, strict=True)
        fig["data"].append({"type": "scatter", "mode": "markers", "name": "IsoFLOP vertices (Approach 2)",
                            "x": list(c), "y": list(n), "marker": {"symbol": "x", "size": 10, "color": "black"},
                            "hovertemplate": "C=%{x:.3g}<br>N*=%{y:.4g}<extra>Approach 2</extra>"})
    data_pts = table.loc[table.groupby("run")["flops"].idxmax()] if "run" in table.columns else table
    custom, tmpl = _hover(data_pts)
    fig["data"].append({"type": "scatter", "mode": "markers", "name": "runs (largest C of each)",
                        "x": _arr(data_pts["flops"]), "y": _arr(data_pts["params"]),
                        "text": _names(data_pts["run"]), "customdata": custom, "hovertemplate": tmpl,
                        "marker": {"size": 5, "color": "rgba(100,100,100,0.5)"}})
    if plans:
        fig["data"].append({"type": "scatter", "mode": "markers", "name": "plan", "x": [p["flops"] for p in plans],
                            "y": [p["params"] for p in plans], "text": [f"plan at {p['flops']:.2e} FLOPs" for p in plans],
                            "customdata": [[p["tokens"], p["loss"]] for p in plans],
                            "hovertemplate": "<b>%{text}</b><br>N*=%{y:.4g}<br>D*=%{customdata[0]:.4g}"
                                             "<br>loss=%{customdata[1]:.4f}<extra></extra>",
                            "marker": {"symbol": "diamond", "size": 12, "color": "#d62728"}})
    return fig


def quant_figure(rows: list[dict]) -> dict:
    """Perplexity of each evaluated checkpoint (float and quantized) against its linear-layer bytes."""
    fig = {"data": [], "layout": _layout("Quantization: perplexity vs weight bytes of the linear layers",
                                          "linear-layer bytes", "perplexity", ylog=False)}
    for i, r in enumerate(rows):
        fig["data"].append({"type": "scatter", "mode": "markers", "name": html.escape(r["label"]), "x": [r["linear_bytes"]],
                            "y": [r["perplexity"]], "text": _names([r["label"]]),
                            "customdata": [[r["weight_bytes"], r.get("latency_ms", float("nan")),
                                            r.get("throughput_tok_s", float("nan"))]],
                            "hovertemplate": "<b>%{text}</b><br>perplexity=%{y:.4f}<br>linear bytes=%{x:.4g}"
                                             "<br>all weight bytes=%{customdata[0]:.4g}<br>latency=%{customdata[1]:.3g} ms"
                                             "<br>throughput=%{customdata[2]:.4g} tok/s<extra></extra>",
                            "marker": {"size": 12, "color": PALETTE[i % len(PALETTE)]}})
    return fig


def chain_figure(chain: dict) -> dict | None:
    """Step 2 of a chain (target against the via metric over its fitted range), when its link law is known."""
    step2 = chain["step2"]
    try:
        link = get_law(chain["link"])
    except Exception:  # a link law this version does not know: the tables still show the chain
        return None
    lo, hi = (step2.get("inputs") or {}).get(link.inputs[0], [None, None])
    if lo is None or not hi > lo:
        return None
    xs = np.linspace(lo, hi, GRID_POINTS)
    try:
        ys = link.predict(step2["params"], {link.inputs[0]: xs})
    except Exception:  # parameters that do not match the law: skip the curve
        return None
    return {"data": [{"type": "scatter", "mode": "lines", "name": f"{chain['link']} link", "x": _arr(xs), "y": _arr(ys),
                      "hovertemplate": f"{chain['via']}=%{{x:.4g}}<br>{chain['target']}=%{{y:.4g}}<extra></extra>"}],
            "layout": _layout(f"Step 2: {chain['target']} as a function of {chain['via']}", str(chain["via"]),
                              str(chain["target"]), xlog=False, height=360)}
