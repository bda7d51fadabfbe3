"""Outlier analysis as in the LLM.int8() paper (Sec. 4): per layer, the outlier feature dimensions.

From the calibration statistics of each linear's input: how many input dimensions reach
``|x| ≥ threshold``, the largest magnitude among them, and the share of tokens that carry at least one
outlier value. Returned as rows; the CLI prints them as a table.
"""

from __future__ import annotations

from scalinglab.quant.calibrate import ChannelStats

__all__ = ["outlier_rows", "format_table"]

MAX_DIMS_SHOWN = 6


def outlier_rows(stats: dict[str, ChannelStats]) -> list[dict]:
    rows = []
    for name, st in stats.items():
        amax = st.amax
        cols = st.outlier_cols()
        top = sorted(((float(amax[c]), int(c)) for c in cols), reverse=True)[:MAX_DIMS_SHOWN]
        rows.append({
            "layer": name,
            "in_features": st.k,
            "outlier_dims": int(cols.numel()),
            "max_abs": float(amax.max()),
            "median_abs": float(amax.median()),
            "token_share": st.tokens_touched / max(st.tokens, 1),
            "top_dims": [f"{c}:{v:.1f}" for v, c in top],
        })
    return rows


def format_table(rows: list[dict], threshold: float) -> str:
    head = f"{'layer':<34} {'in':>5} {'#dims≥' + format(threshold, 'g'):>8} {'max|x|':>8} {'med|x|':>7} {'tokens':>7}  dims:magnitude"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['layer']:<34} {r['in_features']:>5} {r['outlier_dims']:>8} {r['max_abs']:>8.2f} "
                     f"{r['median_abs']:>7.2f} {100 * r['token_share']:>6.1f}%  {' '.join(r['top_dims'])}")
    return "\n".join(lines)
