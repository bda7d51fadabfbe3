"""The precision walk-through on a SYNTHETIC ladder of quantized evaluations (docs/precision.md).

    python examples/precision_synthetic.py [OUT_DIR] [--bootstrap 1000] [--figure docs/precision_ptq.png]

The ladder is synthetic: 20 runs of N = 30M–220M at 5–400 tokens per parameter, each "quantized" at 3/4/5/6
bits, losses drawn from Kumar et al. 2024's published constants (App. K Table 2) with noise
(`scalinglab.fitting.ptq_synthetic`). It shows the method, not a measurement. Steps:

1. fit δ_PTQ and L(N, D) together on the ladder with the largest-D/N run held out; is its loss after
   quantization inside the predicted interval?
2. fit δ_PTQ on all runs on top of the bundled Gemstones Chinchilla fit; plan at 1e21 and 1e23 FLOPs for
   serving at 4 bits vs bf16: how N* and tokens per parameter shift, with intervals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default="precision-synthetic")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--figure", default="")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from scalinglab import data as bundled
    from scalinglab.fitting.api import fit
    from scalinglab.fitting.ptq_fit import fit_ptq
    from scalinglab.fitting.ptq_synthetic import synthetic_quant_ladder
    from scalinglab.planning.precision import plan_served

    table = synthetic_quant_ladder(seed=0)
    table.to_csv(out / "quant_synthetic.csv", index=False)

    # 1. Hold out the largest-D/N run; L and δ refitted on the same resampled runs.
    ladder = fit_ptq(table, base_law="chinchilla", bootstrap=args.bootstrap, holdout="largest-dn=1", seed=0)
    ladder.save(out / "ladder_fit.json")
    print("## 1. ptq law fitted on the synthetic ladder (largest-D/N run held out)")
    for k, v in ladder.ptq.params.items():
        lo, hi = ladder.ptq.bootstrap.ci[k]
        print(f"  {k:10s} {v:.4g}  [{lo:.4g}, {hi:.4g}]")
    for r in ladder.holdout["rows"]:
        d = r["ptq_delta"]
        pi, dpi = r["prediction_interval"], d["prediction_interval"]
        print(f"  held out {r['run']} @ {r['bits']:g} bits: loss measured {r['actual_loss']:.4f}, predicted "
              f"{r['loss']:.4f} [{r['interval'][0]:.4f}, {r['interval'][1]:.4f}] {'inside' if r['inside'] else 'OUTSIDE'}"
              f", one run [{pi[0]:.4f}, {pi[1]:.4f}]; δ measured {r['actual_ptq_delta']:.4g}, predicted {d['value']:.4g} "
              f"[{d['interval'][0]:.4g}, {d['interval'][1]:.4g}], one run [{dpi[0]:.4g}, {dpi[1]:.4g}]")
    print(f"  scatter (log sd): {ladder.evaluations['scatter']}")

    # 2. δ on all runs, on top of the Gemstones base fit (two data sets: independent bootstraps, paired by index).
    gem = fit(bundled.path(bundled.GEMSTONES), "chinchilla", bootstrap=args.bootstrap, seed=0)
    gem.save(out / "gemstones_fit.json")
    served = fit_ptq(table, base=out / "gemstones_fit.json", bootstrap=args.bootstrap, seed=0)
    served.save(out / "served.json")
    print("\n## 2. plan --serve-bits 4 vs bf16 (Gemstones base fit + synthetic δ_PTQ)")
    plans = {}
    for flops in (1e21, 1e23):
        p = plan_served(served, flops, 4)
        plans[flops] = p
        (out / f"plan_{flops:.0e}.json").write_text(json.dumps(p, indent=2))
        fl, sv, sh = p["full_precision"], p["served"], p["shift"]

        def iv(part, key, f="{:.3g}"):
            lo, hi = part["intervals"][key]
            return f"{f.format(part[key])} [{f.format(lo)}, {f.format(hi)}]"

        print(f"  C = {flops:.0e}: N* bf16 {iv(fl, 'params')}, W4 {iv(sv, 'params')}, ratio {iv(sh, 'params_ratio')}")
        print(f"             D/N bf16 {iv(fl, 'tokens_per_param')}, W4 {iv(sv, 'tokens_per_param')}, "
              f"ratio {iv(sh, 'tokens_per_param_ratio')}; loss gain at 4 bits {iv(sh, 'loss_gain')}")
    if args.figure:
        figure(table, ladder, served, Path(args.figure))


def figure(table, ladder, served, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scalinglab.fitting.quant_evals import load_quant_evals
    from scalinglab.laws.ptq import delta_ptq
    from scalinglab.planning.precision import plan_served

    ev = load_quant_evals(table)
    held = {r["run"] for r in ladder.holdout["rows"]}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {3.0: "C3", 4.0: "C1", 5.0: "C2", 6.0: "C0"}
    N0 = 120e6
    dn = np.geomspace(4, 500, 100)
    for bits, c in colors.items():
        rows = ev.all_rows[ev.all_rows["bits"] == bits]
        pos = rows[rows["ptq_delta"] > 0]
        # At fixed D/N, δ ∝ N^(γ_D − γ_N): points rescaled to N0 with the fitted exponents share one line per bit width.
        g = ladder.ptq.params
        scale = (N0 / pos["params"]) ** (g["gamma_D"] - g["gamma_N"])
        x = pos["tokens"] / pos["params"]
        is_held = pos["run"].isin(held)
        ax1.scatter(x[~is_held], (pos["ptq_delta"] * scale)[~is_held], s=14, color=c, label=f"{bits:g} bits")
        ax1.scatter(x[is_held], (pos["ptq_delta"] * scale)[is_held], s=60, facecolors="none", edgecolors=c)
        ax1.plot(dn, delta_ptq(ladder.ptq.params, N0, dn * N0, bits), color=c, lw=1)
    ax1.set(xscale="log", yscale="log", xlabel="tokens per parameter D/N", ylabel="δ_PTQ (rescaled to N = 120M)",
            title="synthetic ladder: δ_PTQ grows with D/N (held-out run circled)")
    ax1.legend(fontsize=8)
    budgets = np.geomspace(1e19, 1e25, 13)
    for bits, c in ((3.0, "C3"), (4.0, "C1"), (6.0, "C0")):
        ps = [plan_served(served, C, bits) for C in budgets]
        r = np.array([p["shift"]["tokens_per_param_ratio"] for p in ps])
        lo = np.array([p["shift"]["intervals"]["tokens_per_param_ratio"][0] for p in ps])
        hi = np.array([p["shift"]["intervals"]["tokens_per_param_ratio"][1] for p in ps])
        ax2.plot(budgets, r, color=c, label=f"serve at {bits:g} bits")
        ax2.fill_between(budgets, lo, hi, color=c, alpha=0.15)
    ax2.axhline(1.0, color="k", lw=0.5)
    ax2.set(xscale="log", xlabel="compute C (FLOPs)", ylabel="D*/N* served ÷ D*/N* bf16",
            title="plan --serve-bits: tokens per parameter shift (95 % band)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main()
