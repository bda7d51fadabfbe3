"""CLI commands of the fitting engine: fit, predict, plan, demo, bench fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from scalinglab.console import stdout_console as console

LawOpt = Annotated[str, typer.Option("--law", help="Law to fit: chinchilla, kaplan, compute, data_constrained (or "
                                                   "data-constrained), broken_power_law, tissue, multi_power")]


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def _write(write, path: Path, option: str) -> None:
    """Run a write; an OS refusal (permissions, a full disk) becomes one line naming the option."""
    from scalinglab.errors import InputError

    try:
        write()
    except OSError as exc:
        raise InputError(f"{option}: cannot write {path} ({exc.strerror or type(exc).__name__})") from None


def _is_ptq(law: str) -> bool:
    from scalinglab.laws.registry import get_law

    return get_law(law).name == "ptq"


def fit_cmd(
    data: Annotated[Path, typer.Argument(help="Runs: CSV, TSV, JSONL, Parquet, or a run store (.db).")],
    law: LawOpt = "chinchilla",
    columns: Annotated[str, typer.Option(help='Map canonical names to yours: params="Model Size",loss=final')] = "",
    target: Annotated[str, typer.Option(help="Column the law predicts (any metric, e.g. acc:hellaswag).")] = "loss",
    x: Annotated[str, typer.Option("--x", help="Input column of a law of one input (sigmoid, exp_error, ...).")] = "loss",
    huber_delta: Annotated[str, typer.Option(
        help="Huber δ on log-loss residuals: a number (1e-3 is the published convention), or 'auto' = 1.345 × "
        "the MAD of a first fit's residuals (intervals with nominal coverage).")] = "1e-3",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates (resample runs, refit); 0 = none.")] = 0,
    level: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    holdout: Annotated[str, typer.Option(help="Extrapolation check: largest-compute=K holds out K points.")] = "",
    out: Annotated[Path | None, typer.Option(help="Write the fit JSON here (atomically).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a plot (.png, .svg or .pdf).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    jobs: Annotated[int | None, typer.Option(help="Threads for the bootstrap (default: all cores).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fit as JSON.")] = False,
    base: Annotated[Path | None, typer.Option(help="--law ptq: the loss law L(N, D) to add δ_PTQ to (a fit file).")] = None,
    base_law: Annotated[str | None, typer.Option(help="--law ptq: fit this loss law to the runs' float losses "
                                                      "(same bootstrap as δ_PTQ).")] = None,
    quant_method: Annotated[str | None, typer.Option(help="--law ptq: the quantization config to fit when the "
                                                          "table mixes several: rtn, or rtn:group_size=8.")] = None,
) -> None:
    """Fit a scaling law to runs.

    Examples:
      scalinglab fit runs.csv --law chinchilla --out fit.json
      scalinglab fit runs.csv --columns params="Model Size",tokens=D,loss=final --bootstrap 1000
      scalinglab fit runs.db --law chinchilla --holdout largest-compute=3 --plot fit.png
      scalinglab fit evals.csv --law sigmoid --target acc:hellaswag --x task_loss:hellaswag
      scalinglab fit quant.csv --law ptq --base-law chinchilla --bootstrap 200 --out fit.json
      scalinglab fit quant.csv --law ptq --base fit.json --holdout largest-dn=1 --out served.json
    """
    from scalinglab.fitting.api import fit
    from scalinglab.fitting.validate import parse_holdout, split
    from scalinglab.paths import output_file
    from scalinglab.report.tables import print_fit
    from scalinglab.runs.io import read_runs

    if out:
        output_file(out, "--out")
    if plot:
        output_file(plot, "--plot", PLOT_SUFFIXES)
    if _is_ptq(law):
        from scalinglab.planning.precision_cli import fit_ptq_cmd

        if plot:
            from scalinglab.errors import InputError

            raise InputError("fit --law ptq: --plot is not available; examples/precision_synthetic.py draws δ_PTQ by D/N")

        return fit_ptq_cmd(console, data, columns=columns, base=base, base_law=base_law, method=quant_method,
                           huber_delta=huber_delta, bootstrap=bootstrap, level=level, holdout=holdout, seed=seed,
                           out=out, as_json=as_json)
    if base is not None or base_law is not None or quant_method is not None:
        from scalinglab.errors import InputError

        raise InputError("fit: --base, --base-law and --quant-method go with --law ptq")
    table = read_runs(data, columns)
    result = fit(table, law, target=target, x=x, huber_delta=huber_delta, bootstrap=bootstrap, level=level, holdout=holdout or None,
                 seed=seed, jobs=jobs, progress=not as_json)
    if out:
        _write(lambda: result.save(out), out, "--out")
    if plot:
        from scalinglab.report.plots import plot_fit

        h = parse_holdout(holdout) if holdout else None
        fit_part, held = split(table, h, str(data)) if h else (table, None)
        _write(lambda: plot_fit(result, fit_part, plot, held), plot, "--plot")
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    print_fit(console, result)
    if out:
        console.print(f"fit written to {out}")
    if plot:
        console.print(f"plot written to {plot}")


def predict_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A fit JSON from `scalinglab fit --out`.")],
    params: Annotated[float | None, typer.Option(help="Model parameters N.")] = None,
    tokens: Annotated[float | None, typer.Option(help="Training tokens D.")] = None,
    flops: Annotated[float | None, typer.Option(help="Training compute C (compute laws).")] = None,
    unique_tokens: Annotated[float | None, typer.Option(help="Unique tokens U_D (data-constrained law).")] = None,
    x: Annotated[float | None, typer.Option("--x", help="Input value of a law of one input (a link).")] = None,
    bits: Annotated[float | None, typer.Option(help="Loss after quantizing to this many bits (a fit with a ptq "
                                                    "section, from `fit --law ptq`).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Forecast the loss (or the fitted target) of a run you have not trained, with its bootstrap interval.

    Examples:
      scalinglab predict fit.json --params 7e10 --tokens 1.4e12
      scalinglab predict chain.json --params 1.3e10 --tokens 5e12 --json
      scalinglab predict served.json --params 7e9 --tokens 1.4e12 --bits 4
    """
    if bits is not None:
        from scalinglab.planning.precision_cli import predict_served_cmd

        return predict_served_cmd(console, fit_path, params, tokens, bits, as_json)
    from scalinglab.fitting.chain_result import is_chain_file
    from scalinglab.fitting.result import FitResult
    from scalinglab.planning.predict import predict
    from scalinglab.report.tables import print_prediction

    if is_chain_file(fit_path):
        from scalinglab.fitting.chain_cli import predict_chain_cmd

        return predict_chain_cmd(fit_path, params, tokens, as_json)
    given = {"params": params, "tokens": tokens, "flops": flops, "unique_tokens": unique_tokens, "x": x}
    fit = FitResult.load(fit_path)
    if fit.law.startswith("batch_tradeoff"):  # S_min and B_crit at N (or D), not a loss
        from scalinglab.planning.hparams import tradeoff_scales
        from scalinglab.report.hparams import print_tradeoff_prediction

        pred = tradeoff_scales(fit, {k: v for k, v in given.items() if v is not None})
        print(json.dumps(pred, indent=2)) if as_json else print_tradeoff_prediction(console, pred)
        return
    pred = predict(fit, {k: v for k, v in given.items() if v is not None})
    if as_json:
        print(json.dumps(pred, indent=2))
    else:
        print_prediction(console, pred)


def plan_cmd(
    fit_path: Annotated[Path, typer.Argument(metavar="FIT", help="A fit JSON from `scalinglab fit --out`.")],
    flops: Annotated[float | None, typer.Option(help="Compute budget C in FLOPs.")] = None,
    target_loss: Annotated[float | None, typer.Option(help="Find the compute that reaches this loss.")] = None,
    hparams: Annotated[Path | None, typer.Option(help="Add η*, B*, B_crit and the steps/batch trade-off "
                                                      "from a hyperparameter fit (`scalinglab hparams --out`).")] = None,
    serve_bits: Annotated[float | None, typer.Option(help="Plan for serving at this many bits: minimise "
                                                          "L + δ_PTQ (a fit with a ptq section).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compute-optimal model size and tokens for a budget, or the budget for a target loss.

    Examples:
      scalinglab plan fit.json --flops 1e24
      scalinglab plan fit.json --target-loss 2.1
      scalinglab plan fit.json --flops 1e24 --hparams hp.json
      scalinglab plan served.json --flops 1e23 --serve-bits 4
    """
    if serve_bits is not None:
        if hparams is not None:
            from scalinglab.errors import InputError

            raise InputError("plan: --hparams and --serve-bits are not combined; run them separately")
        from scalinglab.planning.precision_cli import plan_served_cmd

        return plan_served_cmd(console, fit_path, flops, target_loss, serve_bits, as_json)
    from scalinglab.errors import InputError
    from scalinglab.fitting.result import FitResult
    from scalinglab.planning.compute_optimal import flops_for_target, plan
    from scalinglab.report.tables import print_plan

    if (flops is None) == (target_loss is None):
        raise InputError("plan: give exactly one of --flops or --target-loss")
    hp = None
    if hparams is not None:
        from scalinglab.fitting.hparams_file import load_hparams

        hp = load_hparams(hparams)  # validated before the plan's work
    fit = FitResult.load(fit_path)
    result = plan(fit, flops) if flops is not None else flops_for_target(fit, target_loss)
    if hp is not None:
        from scalinglab.planning.hparams import plan_hparams

        result["hparams"] = plan_hparams(hp, result["params"], result["tokens"])
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print_plan(console, result)
        if hp is not None:
            from scalinglab.report.hparams import print_hparams_plan

            print_hparams_plan(console, result["hparams"])


def approaches_cmd(
    data: Annotated[Path, typer.Argument(help="Runs: CSV, TSV, JSONL, Parquet, or a run store (.db).")],
    columns: Annotated[str, typer.Option(help='Map canonical names to yours: params="Model Size",loss=final')] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Hoffmann et al. Approaches 1 (curve envelope) and 2 (IsoFLOP parabolas): N* ∝ C^a, D* ∝ C^b.

    Example: scalinglab approaches runs.csv
    """
    from scalinglab.errors import InputError
    from scalinglab.fitting.approaches import approach1, approach2, curves
    from scalinglab.runs.io import read_runs
    from scalinglab.runs.schema import validate

    table = validate(read_runs(data, columns), ("params", "tokens", "flops", "loss"), str(data))
    runs = curves(table)  # shared by both approaches
    results = {}
    for name, fn in (("approach1", approach1), ("approach2", approach2)):
        try:
            results[name] = fn(table, runs=runs)
        except InputError as exc:
            results[name] = {"error": str(exc)}
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for name, r in results.items():
        if "error" in r:
            console.print(f"{name}: not applicable ({r['error']})")
        else:
            console.print(f"{name}: N* ∝ C^{r['a']:.3f}, D* ∝ C^{r['b']:.3f} from {r['levels']} compute levels "
                          f"(rms log residual {r['rms_log_residual']:.3f})")


def demo_cmd(
    out: Annotated[Path, typer.Option(help="Folder for the demo's fit JSON and plots.")] = Path("scalinglab-demo"),
    bootstrap: Annotated[int, typer.Option(help="Bootstrap replicates.")] = 1000,
    ladder: Annotated[bool, typer.Option(help="Also train and fit the small synthetic ladder (a few minutes).")] = True,
) -> None:
    """Run the whole pipeline on embedded data: fit, intervals, forecast, plan, plot; then a small ladder."""
    from scalinglab.demo import run_demo
    from scalinglab.extras import require_extra
    from scalinglab.paths import output_dir

    if ladder:
        require_extra("ladder")  # before the first part, not after it (--no-ladder needs only the core)
    run_demo(output_dir(out, "--out"), bootstrap=bootstrap, console=console, ladder=ladder)


def bench_fit_cmd(
    starts_fraction: Annotated[float, typer.Option(help="Fraction of the grid the slow loop runs (1 = all).")] = 1.0,
    n_boot: Annotated[int, typer.Option("--bootstrap", help="Bootstrap refits to time.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the timed rows as a JSON array (the "
                                                         "tables go to stderr).")] = False,
) -> None:
    """Batched multi-start fit vs a plain scipy loop on the same grid and data; bootstrap timing."""
    from scalinglab.clikit import json_or_tables
    from scalinglab.fitting.benchmark import run_fit_benchmark

    json_or_tables(as_json, lambda: run_fit_benchmark(console, starts_fraction=starts_fraction, n_boot=n_boot))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the fitting commands to the root app."""
    app.command("demo")(demo_cmd)
    app.command("fit")(fit_cmd)
    app.command("predict")(predict_cmd)
    app.command("plan")(plan_cmd)
    app.command("approaches")(approaches_cmd)
    bench_app.command("fit")(bench_fit_cmd)
