"""Fit the Chinchilla law to a ladder store: fitted E vs the known entropy floor, held-out error, plot.

    flock /tmp/scalinglab-cpu.lock python benchmarks/ladder_floor.py --train --store full.db          # synthetic
    python benchmarks/ladder_floor.py --train --corpus shakespeare --store sh.db --plot docs/ladder_shakespeare.png

Fits L = E + A·N^-α + B·D^-β (Hoffmann et al. 2022) to each run's final validation loss with the
package fitter (``scalinglab.fitting.api.fit``: Huber δ = 1e-3 on log residuals, full 4,500-start grid,
bootstrap intervals over runs). Held-out check: refit without the run of largest compute and predict it.
"""

import argparse
import time

import numpy as np

from scalinglab.fitting.api import fit
from scalinglab.runs.store import load_run_table


def predict(p, N, D):
    return p["E"] + p["A"] * N ** -p["alpha"] + p["B"] * D ** -p["beta"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="ladder-full.db")
    ap.add_argument("--train", action="store_true", help="train the built-in ladder into --store first")
    ap.add_argument("--corpus", default="synthetic", choices=["synthetic", "shakespeare"])
    ap.add_argument("--scale", default="full", choices=["demo", "full"])
    ap.add_argument("--plot", help="write a PNG of loss vs tokens with the fitted curves")
    ap.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits for the intervals")
    args = ap.parse_args()
    if args.train:
        from scalinglab.ladder.demo import run_demo_ladder

        t0 = time.perf_counter()
        run_demo_ladder(args.store, scale=args.scale, corpus=args.corpus)
        print(f"ladder wall time {time.perf_counter() - t0:.0f}s")
    t = load_run_table(args.store, final_only=True)
    N, D, L = (t[c].to_numpy(float) for c in ("params", "tokens", "loss"))
    result = fit(t, "chinchilla", bootstrap=args.bootstrap)
    p, ci = result.params, result.bootstrap.ci if result.bootstrap else {}
    print(f"{len(t)} runs, N {N.min():.0f}..{N.max():.0f}, D {D.min():.3g}..{D.max():.3g}")
    print("fit: " + ", ".join(f"{k}={v:.4g}" + (f" [{ci[k][0]:.4g}, {ci[k][1]:.4g}]" if k in ci else "")
                              for k, v in p.items()))
    floor = t["floor"].iloc[0]
    if np.isfinite(floor):
        print(f"true entropy floor {floor:.4f} nats; fitted E {p['E']:.4f}; relative error {p['E'] / floor - 1:+.2%}")
    held = fit(t, "chinchilla", holdout="largest-compute=1")
    C = t["flops"].to_numpy(float)
    big = C == C.max()
    pred = predict(held.params, N[big], D[big])[0]
    print(f"held-out largest run ({t['run'][big].iloc[0]}): predicted {pred:.4f}, actual {L[big][0]:.4f}, "
          f"error {pred / L[big][0] - 1:+.2%} (fit without it: E={held.params['E']:.4f})")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        grid = np.geomspace(D.min() / 1.5, D.max() * 3, 100)
        for i, n in enumerate(sorted(set(N))):
            m = N == n
            ax.scatter(D[m], L[m], color=f"C{i}", label=f"N={n:,.0f}")
            ax.plot(grid, predict(p, n, grid), color=f"C{i}", lw=1)
        ax.axhline(p["E"], color="k", ls="--", lw=1, label=f"fitted E={p['E']:.3f}")
        if np.isfinite(floor):
            ax.axhline(floor, color="r", ls=":", lw=1, label=f"true floor={floor:.3f}")
        ax.set(xscale="log", xlabel="training tokens D", ylabel="validation loss (nats/token)",
               title=f"{t['group'].iloc[0]}: L = E + A/N^{p['alpha']:.2f} + B/D^{p['beta']:.2f}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
