"""`scalinglab data …`: write the files the README's tour uses into a folder (default: the current one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scalinglab.console import stdout_console as console

data_app = typer.Typer(help="Write example data into a folder: bundled runs, loss curves, a quantization example.",
                       no_args_is_help=True)

OutOpt = Annotated[Path, typer.Option("--out", help="Folder to write into (created if absent).")]


@data_app.command("gemstones")
def gemstones_cmd(out: OutOpt = Path(".")) -> None:
    """cool_end.jsonl: final losses of the 199 Gemstones runs (McLeish et al. 2025, MIT), bundled.

    Example: scalinglab data gemstones && scalinglab fit cool_end.jsonl
    """
    from scalinglab.data.examples import write_gemstones

    console.print(f"wrote {write_gemstones(out)}")


@data_app.command("multipowerlaw")
def multipowerlaw_cmd(out: OutOpt = Path("."),
                      model: Annotated[str, typer.Option(help="Model size: 25, 100 or 400 (M parameters).")] = "100") -> None:
    """multipowerlaw_<M>M.csv: nine loss curves (run, step, lr, loss) under different schedules (Luo et al. 2025).

    Example: scalinglab data multipowerlaw && scalinglab fit multipowerlaw_100M.csv --law tissue
    """
    from scalinglab.data.examples import write_multipowerlaw

    console.print(f"wrote {write_multipowerlaw(out, model)}")


@data_app.command("ptq-ladder")
def ptq_ladder_cmd(out: OutOpt = Path("."),
                   corpus: Annotated[str, typer.Option(help="synthetic (12 runs, order-2 Markov language) or "
                                                            "shakespeare (24 runs, real text).")] = "synthetic") -> None:
    """ptq_evals.csv (or ptq_evals_shakespeare.csv): a ladder over tokens per parameter 8–250, every run
    quantized at 8/6/4 bits, one row per precision.

    Example: scalinglab data ptq-ladder && scalinglab fit ptq_evals.csv --law ptq --base-law chinchilla

        scalinglab data ptq-ladder --corpus shakespeare && scalinglab fit ptq_evals_shakespeare.csv --law ptq \
            --quant-method rtn:group_size=0 --base-law chinchilla --holdout largest-dn=1
    """
    from scalinglab.data.examples import write_ptq_ladder

    console.print(f"wrote {write_ptq_ladder(out, corpus)}")


@data_app.command("quant-example")
def quant_example_cmd(out: OutOpt = Path(".")) -> None:
    """example-model/ (a small GPT trained here, ~10 s), calib.txt and valid.txt for `quantize` and `evaluate`.

    Example: scalinglab data quant-example && scalinglab quantize example-model --calib calib.txt --out q8
    """
    from scalinglab.data.examples import make_quant_example

    paths = make_quant_example(out, log=console.print)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `scalinglab data` to the root app."""
    app.add_typer(data_app, name="data")
