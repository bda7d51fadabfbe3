"""The HTML report without a browser: sections present, figures carry the right numbers (checked against
the planning code and a known law), hostile names escaped, chain and quantization inputs validated."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scalinglab.errors import InputError
from scalinglab.fitting.result import FitResult
from scalinglab.laws.chinchilla import compute_optimal
from scalinglab.planning.compute_optimal import plan
from scalinglab.planning.predict import predict
from scalinglab.report import figures as F
from scalinglab.report.html import ReportConfig, build_report, write_report


def figures_of(html: str) -> list[dict]:
    start = html.index('<script type="application/json" id="figures">') + len('<script type="application/json" id="figures">')
    return json.loads(html[start:html.index("</script>", start)])


def body_of(html: str) -> str:
    return html[html.index("</head>"):]


def test_gemstones_report_has_every_section_and_no_external_reference(gemstones_path, gemstones_fit):
    html = build_report(ReportConfig(data=gemstones_path, fits=(gemstones_fit,), plan_flops=(1e23, 1e24)))
    for anchor in ("runs", "curves", "fit-1", "compute-optimal", "plan"):
        assert f'<section id="{anchor}">' in html
    assert "Held-out extrapolation check" in html and 'id="holdout"' not in html  # the fit's own check is used
    figs = figures_of(html)
    assert len(figs) == 6  # loss curves, fit (with band), residuals, held-out check, IsoFLOP, frontier
    for f in figs:
        assert any(any(v is not None for v in t.get("y", [])) for t in f["data"])
    head = html[:html.index("</head>")]
    assert "<link" not in head and "<script src" not in html and "@import" not in html
    assert "http://" not in body_of(html) and "https://" not in body_of(html)
    assert html.count("<tr>") > 20 + 5 + 2  # runs, parameters, plan rows


def test_figures_carry_the_fit_and_the_plan(gemstones_path, gemstones_fit):
    from scalinglab.laws.registry import get_law
    from scalinglab.runs.io import read_runs

    fit = FitResult.load(gemstones_fit)
    table = read_runs(gemstones_path)
    runs = F.fit_figure(fit, table)["data"][0]
    fitted = np.array(runs["customdata"])[:, -1]
    expected = predict(fit, {"params": table["params"].to_numpy(), "tokens": table["tokens"].to_numpy()})["loss"]
    np.testing.assert_allclose(fitted, expected, rtol=1e-12)
    assert runs["text"][0] == table["run"].iloc[0]  # hover names the run
    n_opt, l_opt = F.frontier(get_law(fit.law), np.asarray(fit.theta), np.array([1e23]))
    p = plan(fit, 1e23)
    assert n_opt[0, 0] == pytest.approx(p["params"], rel=1e-9) and l_opt[0, 0] == pytest.approx(p["loss"], rel=1e-9)


def test_isoflop_vertices_recover_the_compute_optimal_size():
    """Approach 2 on noise-free Chinchilla losses (Hoffmann et al. 2022, Eq. 4 fit) lands on the closed-form N*."""
    true = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    rows = []
    for c in (1e19, 1e20, 1e21):
        n_star = compute_optimal(true, c)[0]
        for i, n in enumerate(n_star * np.logspace(-0.6, 0.6, 9)):
            d = c / (6 * n)
            loss = true["E"] + true["A"] / n ** true["alpha"] + true["B"] / d ** true["beta"]
            rows.append({"run": f"C{c:.0e}-{i}", "params": n, "tokens": d, "flops": c, "loss": loss})
    fig, vertices = F.isoflop_figure(F.isoflop_levels(pd.DataFrame(rows)))
    assert fig is not None and len(vertices) == 3
    for c, n in vertices:
        assert n == pytest.approx(compute_optimal(true, c)[0], rel=0.03)


def test_hostile_run_names_are_escaped(tmp_path):
    evil = "</script><img src=x onerror=alert(1)>"
    rng = np.random.default_rng(0)
    n = np.repeat([1e7, 3e7, 1e8], 3)
    d = np.tile([1e9, 3e9, 1e10], 3)
    table = pd.DataFrame({"run": [evil] + [f"r{i}" for i in range(8)], "params": n, "tokens": d,
                          "loss": 1.7 + 400 / n**0.34 + 400 / d**0.28 + rng.normal(0, 1e-3, 9)})
    table.to_csv(tmp_path / "runs.csv", index=False)
    html = build_report(ReportConfig(data=tmp_path / "runs.csv", holdout=None))
    assert evil not in html and "&lt;/script&gt;&lt;img" in html
    names = [t for f in figures_of(html) for tr in f["data"] for t in tr.get("text", [])]
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in names


def _chain(tmp_path, **drop) -> str:
    step = {"law": "compute", "params": {"E": 0.1, "A": 30.0, "alpha": 0.2}, "inputs": {"flops": [1.0, 4.0]},
            "bootstrap": {"ci": {"E": [0.05, 0.15]}}}
    chain = {"kind": "chain", "target": "acc:hellaswag", "via": "task_loss", "law": "chinchilla", "link": "compute",
             "step1": {"params": {"E": 1.7, "A": 400, "B": 410, "alpha": 0.34, "beta": 0.28}}, "step2": step}
    for k in drop:
        chain.pop(k)
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(chain))
    return str(path)


def test_chain_section_renders_documented_keys_and_skips_others(tmp_path, gemstones_path):
    html = build_report(ReportConfig(data=gemstones_path, chain=_chain(tmp_path), holdout=None))
    assert "Downstream chain: acc:hellaswag" in html and "[0.05, 0.15]" in html
    assert any("Step 2" in f["layout"]["title"]["text"] for f in figures_of(html))
    html = build_report(ReportConfig(data=gemstones_path, chain=_chain(tmp_path, link=None), holdout=None))
    assert "Not shown" in html and "has no 'link'" in html and 'id="chain"' in html
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not a JSON chain file"):
        build_report(ReportConfig(data=gemstones_path, chain=tmp_path / "bad.json", holdout=None))


def test_quantization_results(tmp_path, gemstones_path):
    ok = [{"perplexity": 25.7, "weight_bytes": 5e8, "linear_bytes": 3e8, "latency_ms": 9.0, "throughput_tok_s": 1e4,
           "quantization": "none"},
          {"perplexity": 25.8, "weight_bytes": 3e8, "linear_bytes": 8e7, "quantization": "llm.int8 W8A8"}]
    (tmp_path / "q.json").write_text(json.dumps(ok))
    html = build_report(ReportConfig(data=gemstones_path, quant=(tmp_path / "q.json",), holdout=None))
    assert '<section id="quant">' in html and "q: llm.int8 W8A8" in html
    (tmp_path / "bad.json").write_text(json.dumps({"perplexity": 3}))
    with pytest.raises(InputError, match="bad.json: entry 1 lacks perplexity, weight_bytes, linear_bytes"):
        build_report(ReportConfig(data=gemstones_path, quant=(tmp_path / "bad.json",), holdout=None))


def test_cli_writes_the_page_and_bad_input_exits_2(tmp_path, gemstones_path, gemstones_fit, capsys):
    from scalinglab.cli import main

    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as exc:
        main(["report", str(gemstones_path), "--fit", str(gemstones_fit), "--plan-flops", "1e22", "--out", str(out)])
    assert exc.value.code in (0, None) and out.stat().st_size > 1_000_000 and str(out) in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "missing.csv"), "--out", str(out)])
    assert exc.value.code == 2 and "missing.csv: no such file" in capsys.readouterr().err
    with pytest.raises(InputError, match="--plan-flops"):
        ReportConfig(data=gemstones_path, plan_flops=(-1.0,))


def test_write_report_is_readable_by_others(tmp_path, gemstones_path):
    path = write_report(ReportConfig(data=gemstones_path, holdout=None), tmp_path / "r.html")
    assert path.stat().st_mode & 0o044  # group/other may read it (the atomic temp file is owner-only)


def test_a_fit_with_an_overflowed_replicate_still_renders(tmp_path, gemstones_path, gemstones_fit):
    """A bootstrap replicate whose B overflowed is stored as null; the band and the plan skip it (NaN)."""
    data = json.loads(gemstones_fit.read_text())
    data["bootstrap"]["samples"]["B"][0] = None
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(data))
    fit = FitResult.load(path)
    assert np.isnan(fit.samples_matrix()[0, list(fit.params).index("B")])
    assert np.isfinite(plan(fit, 1e23)["intervals"]["loss"]).all()
    html = build_report(ReportConfig(data=gemstones_path, fits=(path,), plan_flops=(1e23,)))
    assert "95% bootstrap band of L*(C)" in json.dumps(figures_of(html))
