"""`quantize --method auto`: the smallest quantized model whose held-out loss stays within a budget.

Candidates (method × bits × activations × group size; those whose method is not installed, or that need
calibration text when none was given, are listed as skipped) are tried in order of their nominal storage
per weight, smallest first: 4-bit packed weight-only, then the int8 containers (8-, 6- and 4-bit codes all
take one byte), then 8-bit weight-only. Each is quantized from the float checkpoint and evaluated on the
held-out batches; its loss change is (L_q − L_fp) / L_fp with L the mean next-token NLL (log perplexity).
Once a storage level holds a candidate within the budget, larger levels are not tried (``try_all``
tries them anyway). The choice: the smallest measured weight bytes within the budget; ties → the faster
(tokens/s of the evaluation pass; within 10% counts as equally fast), then the smaller loss change.

Every measurement is written to ``decision.json`` in the output directory as soon as it is taken
(atomically), so a killed search resumes where it stopped when run again with the same model, data and
options; ``decision.md`` is the human table. The chosen model is quantized again and saved beside them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from scalinglab.atomic import write_text_atomic
from scalinglab.errors import InputError

__all__ = ["Candidate", "DEFAULT_CANDIDATES", "parse_budget", "choose", "format_table", "auto_quantize_dir",
           "run_auto"]

DECISION_FILE = "decision.json"
TABLE_FILE = "decision.md"
DECISION_VERSION = 1


@dataclass(frozen=True)
class Candidate:
    """One configuration to try. ``activations``: "int8" (weights and activations quantized) or "none"
    (weight-only); ``bits_a`` applies to int8 only; ``group_size`` to weight-only (0: one scale per row)."""

    method: str
    bits_w: int
    activations: str = "int8"
    bits_a: int | None = 8
    group_size: int = 0

    @property
    def key(self) -> str:
        a = f"A{self.bits_a}" if self.activations == "int8" else "A16"
        g = f" g{self.group_size}" if self.group_size else ""
        return f"{self.method} W{self.bits_w}{a}{g}"

    @property
    def storage_bits(self) -> int:
        """Nominal bits stored per weight: int8 containers hold 8-, 6- and 4-bit codes alike; weight-only
        4-bit codes are packed two per byte."""
        return 4 if self.activations == "none" and self.bits_w == 4 else 8


DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("weight_only", 4, "none", None, 32),
    Candidate("squant", 4, "none", None, 32),
    Candidate("weight_only", 4, "none", None, 128),
    Candidate("squant", 4, "none", None, 128),
    Candidate("rtn", 4, "int8", 8),
    Candidate("squant", 4, "int8", 8),
    Candidate("rtn", 6, "int8", 8),
    Candidate("squant", 6, "int8", 8),
    Candidate("rtn", 8, "int8", 8),
    Candidate("smoothquant", 8, "int8", 8),
    Candidate("outliertune", 8, "int8", 8),
    Candidate("llm.int8", 8, "int8", 8),
    Candidate("weight_only", 8, "none", None, 0),
)


def parse_budget(text: str) -> float:
    """``"0.5%"`` or ``"0.005"`` → 0.005 (a fraction of the float model's loss); one-line errors."""
    s = str(text).strip()
    pct = s.endswith("%")
    try:
        value = float(s[:-1] if pct else s)
    except ValueError:
        raise InputError(f"--max-loss-increase: expected a percentage like 0.5% or a fraction like 0.005, "
                         f"got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"--max-loss-increase: must be a positive number, got {text!r}")
    frac = value / 100 if pct else value
    if frac >= 1:
        hint = f" (did you mean {value}%?)" if not pct else ""
        raise InputError(f"--max-loss-increase: {text!r} allows the loss to double or more; give a fraction "
                         f"below 1 or a percentage below 100%{hint}")
    return frac


SPEED_TIE = 0.10  # tokens/s within 10% of the fastest count as equally fast (one timed pass is that noisy)


def choose(rows: Sequence[dict], budget: float) -> dict | None:
    """The measured row within ``budget`` with the fewest weight bytes; among equal bytes the fastest, where
    rows within ``SPEED_TIE`` of the fastest tie and the smaller loss change wins. None when no row is
    within the budget."""
    ok = [r for r in rows if r.get("status") == "measured" and r["loss_change"] <= budget]
    if not ok:
        return None
    fewest = min(r["weight_bytes"] for r in ok)
    same = [r for r in ok if r["weight_bytes"] == fewest]
    fastest = max(r["tokens_per_s"] for r in same)
    fast = [r for r in same if r["tokens_per_s"] >= (1 - SPEED_TIE) * fastest]
    return min(fast, key=lambda r: r["loss_change"])


def format_table(decision: dict) -> str:
    """Markdown table of every candidate (measured or skipped), the float model first."""
    fp = decision["float"]
    lines = [f"Model {decision['model_dir']}, held-out {decision['data']} ({fp['tokens']:,} tokens), "
             f"budget {100 * decision['budget']:.3g}% of the float loss {fp['loss']:.4f}.", "",
             "| method | bits | activations | group size | loss change | weight bytes | tokens/s | chosen |",
             "|---|---|---|---:|---:|---:|---:|---|",
             f"| float32 | 32 | float | — | — | {fp['weight_bytes']:,} | {fp['tokens_per_s']:,.0f} | |"]
    chosen = decision.get("chosen")
    for r in decision["candidates"]:
        c = r["candidate"]
        bits = f"W{c['bits_w']}A{c['bits_a'] if c['activations'] == 'int8' else 16}"
        act = "int8" if c["activations"] == "int8" else "none (float)"
        group = str(c["group_size"]) if c["group_size"] else "row"
        if r["status"] == "measured":
            within = "" if r["loss_change"] <= decision["budget"] else " (over)"
            cells = f"{100 * r['loss_change']:+.3f}%{within} | {r['weight_bytes']:,} | {r['tokens_per_s']:,.0f}"
        else:
            cells = f"{r['status']}: {r['reason']} | | "
        mark = "**yes**" if chosen == r["key"] else ""
        lines.append(f"| {c['method']} | {bits} | {act} | {group} | {cells} | {mark} |")
    lines.append("")
    lines.append(f"Chosen: {chosen}." if chosen else "No candidate met the budget; no model was written.")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ I/O


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _identity(model_dir: Path, data: Path, calib: Path | None, seq_len: int, max_seqs: int | None,
              calib_seqs: int) -> dict:
    """What a resumed search must match to reuse measurements."""
    weights = sorted(Path(model_dir).glob("*.safetensors"))
    return {"model_sha256": hashlib.sha256(b"".join(_sha256(p).encode() for p in weights)).hexdigest(),
            "data_sha256": _sha256(data), "calib_sha256": _sha256(calib) if calib else None,
            "seq_len": seq_len, "max_seqs": max_seqs, "calib_seqs": calib_seqs}


_ROW_NUMBERS = ("loss", "loss_change", "perplexity", "weight_bytes", "linear_bytes", "tokens_per_s")


def _valid_row(r) -> bool:
    if not isinstance(r, dict) or not isinstance(r.get("key"), str) or r.get("status") != "measured":
        return False
    return all(isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool) and math.isfinite(r[k])
               for k in _ROW_NUMBERS)


def _previous(out: Path, identity: dict, say: Callable[[str], None]) -> dict[str, dict]:
    """Measured rows of an earlier run of the same search in ``out`` (validated), keyed by candidate."""
    path = out / DECISION_FILE
    if not path.is_file():
        return {}
    from scalinglab.jsonfile import read_json

    d = read_json(path, "decision file")
    if not isinstance(d, dict) or d.get("version") != DECISION_VERSION or d.get("identity") != identity:
        say(f"{path}: from another model, data or options; starting afresh")
        return {}
    rows = d.get("candidates")
    if not isinstance(rows, list):
        raise InputError(f"{path}: candidates: expected a list, got {type(rows).__name__}")
    return {r["key"]: r for r in rows if _valid_row(r)}


# ------------------------------------------------------------------------------------------- search


def auto_quantize_dir(model_dir: Path, out: Path, data: Path, budget: float, calib: Path | None = None,
                      seq_len: int = 0, max_seqs: int | None = None, calib_seqs: int = 128,
                      candidates: Sequence[Candidate] = DEFAULT_CANDIDATES, try_all: bool = False,
                      say: Callable[[str], None] | None = None) -> dict:
    """Run the search; writes ``out``/decision.json, decision.md and (when one fits) the chosen model."""
    import copy

    from scalinglab.paths import output_dir
    from scalinglab.quant.apply import quantize_
    from scalinglab.quant.evaluate import evaluate_model
    from scalinglab.quant.io import save_quantized
    from scalinglab.quant.models import (
        forward_logits,
        load_float_model,
        load_tokenizer,
        read_text,
        text_to_batches,
    )
    from scalinglab.quant.pipeline import _check_seq_len, _resolve_seq_len

    say = say or (lambda line: print(line, flush=True))
    if not 0 < budget < 1:
        raise InputError(f"--max-loss-increase: expected a fraction in (0, 1), got {budget!r}")
    if max_seqs is not None and max_seqs < 0:
        raise InputError(f"--max-seqs: {max_seqs} must be >= 0 (0: all)")
    if calib_seqs < 1:
        raise InputError(f"--calib-seqs: {calib_seqs} must be >= 1")
    _check_seq_len(seq_len)
    model_dir, data = Path(model_dir), Path(data)
    out = output_dir(out, "--out")
    if out.resolve() == model_dir.resolve():
        raise InputError(f"--out: {out} is the input checkpoint; give a new directory")
    max_seqs = max_seqs or None
    text = read_text(data)
    calib_text = read_text(calib) if calib is not None else None
    model = load_float_model(model_dir)
    tok = load_tokenizer(model_dir)
    seq_len = _resolve_seq_len(seq_len, model)
    batches = text_to_batches(text, tok, seq_len, max_seqs, source=str(data))
    calib_batches = (text_to_batches(calib_text, tok, seq_len, calib_seqs, source=str(calib))
                     if calib_text is not None else None)
    identity = _identity(model_dir, data, calib, seq_len, max_seqs, calib_seqs)
    done = _previous(out, identity, say)

    fp = evaluate_model(model, batches)
    fp_loss = math.log(fp.perplexity)
    decision = {"version": DECISION_VERSION, "identity": identity, "model_dir": str(model_dir),
                "data": str(data), "budget": budget,
                "float": {"loss": fp_loss, "perplexity": fp.perplexity, "tokens": fp.tokens,
                          "weight_bytes": fp.weight_bytes, "linear_bytes": fp.linear_bytes,
                          "tokens_per_s": fp.throughput_tok_s},
                "candidates": [], "chosen": None}

    def save_decision() -> None:
        write_text_atomic(out / DECISION_FILE, json.dumps(decision, indent=1))
        write_text_atomic(out / TABLE_FILE, format_table(decision))

    configs = {}
    rows: dict[str, dict] = {}
    for c in candidates:
        row = {"key": c.key, "candidate": asdict(c)}
        try:
            cfg = _config(c)
        except InputError as exc:
            row.update(status="skipped", reason=f"not available ({exc})")
        else:
            if cfg.needs_calibration and calib_batches is None:
                row.update(status="skipped", reason="needs --calib")
            else:
                configs[c.key] = cfg
                row.update(status="pending", reason="a smaller storage level met the budget")
        rows[c.key] = row
    decision["candidates"] = list(rows.values())

    def measure(c: Candidate) -> None:
        if c.key in done:
            rows[c.key].update({k: v for k, v in done[c.key].items() if k not in ("key", "candidate")})
            say(f"{c.key}: resumed ({100 * rows[c.key]['loss_change']:+.3f}%)")
            return
        m = copy.deepcopy(model)
        t0 = time.perf_counter()
        quantize_(m, configs[c.key], calib=calib_batches, forward=forward_logits)
        seconds = time.perf_counter() - t0
        r = evaluate_model(m, batches)
        loss = math.log(r.perplexity)
        rows[c.key].update(status="measured", reason="", loss=loss, loss_change=(loss - fp_loss) / fp_loss,
                           perplexity=r.perplexity, weight_bytes=r.weight_bytes, linear_bytes=r.linear_bytes,
                           tokens_per_s=r.throughput_tok_s, quantize_seconds=round(seconds, 2))
        del m
        say(f"{c.key}: loss {100 * rows[c.key]['loss_change']:+.3f}%, {r.weight_bytes:,} bytes, "
            f"{r.throughput_tok_s:,.0f} tok/s")
        save_decision()

    runnable = [c for c in candidates if c.key in configs]
    for level in sorted({c.storage_bits for c in runnable}):
        for c in (c for c in runnable if c.storage_bits == level):
            measure(c)
        if not try_all and choose(list(rows.values()), budget) is not None:
            break
    best = choose(list(rows.values()), budget)
    decision["chosen"] = best["key"] if best else None
    save_decision()
    if best is not None:
        m = copy.deepcopy(model)
        quantize_(m, configs[best["key"]], calib=calib_batches, forward=forward_logits)
        try:
            save_quantized(m, out, configs[best["key"]], source_dir=model_dir)
        except OSError as exc:
            raise InputError(f"--out: cannot write {out} ({exc.strerror or type(exc).__name__})") from None
    return decision


def _config(c: Candidate):
    """The method's config for a candidate (InputError when the method or the option does not exist)."""
    from scalinglab.quant.registry import config_for, config_from_dict, method_names

    if c.method not in method_names():
        raise InputError(f"method {c.method} is not installed")
    if c.activations == "none":
        return config_for(c.method, bits=c.bits_w, activations="none", group_size=c.group_size)
    if c.bits_w == c.bits_a:
        return config_for(c.method, bits=c.bits_w)
    return config_from_dict({"method": c.method, "bits_w": c.bits_w, "bits_a": c.bits_a})


def run_auto(model_dir: Path, out: Path, data: Path | None, max_loss_increase: str | None, calib: Path | None,
             seq_len: int, max_seqs: int, calib_seqs: int, try_all: bool) -> int:
    """``quantize --method auto``: check the flags, search, print the table; returns the exit status
    (0: a model within the budget was written, 1: none was within it)."""
    if max_loss_increase is None:
        raise InputError("--max-loss-increase: --method auto needs a loss budget, e.g. 0.5% or 0.005")
    if data is None:
        raise InputError("--data: --method auto needs held-out text to measure each candidate's loss on")
    budget = parse_budget(max_loss_increase)
    decision = auto_quantize_dir(model_dir, out, data, budget, calib=calib, seq_len=seq_len, max_seqs=max_seqs,
                                 calib_seqs=calib_seqs, try_all=try_all)
    print(format_table(decision), end="")
    return 0 if decision["chosen"] else 1
