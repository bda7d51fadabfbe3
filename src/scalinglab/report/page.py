"""The self-contained HTML page: styles, sortable tables, embedded plotly.js and figure specs, all inline.

The page makes no network request: plotly.js (the ``plotly`` package's bundled ``plotly.min.js``) is
inlined, styles use system fonts, and figure specs travel as JSON in a ``<script type="application/json">``
block that one inline script hands to ``Plotly.newPlot``. Everything user-controlled (run names, file
names, fit parameters) is HTML-escaped in the markup, and the JSON block escapes ``<``, ``>`` and ``&``
so a run called ``</script>`` cannot end the block.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

__all__ = ["Page", "plotly_js", "table_html", "esc", "fmt"]


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def fmt(v, digits: int = 4) -> str:
    """A number for a table cell: 4 significant digits, scientific beyond 1e5; '—' for missing."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, (int, float)):
        return f"{v:.{digits}g}" if abs(v) < 1e5 else f"{v:.{digits - 1}e}"
    return str(v)


def plotly_js() -> str:
    """plotly.js as shipped inside the ``plotly`` Python package (no CDN)."""
    try:
        return resources.files("plotly").joinpath("package_data/plotly.min.js").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        from scalinglab.errors import InputError

        raise InputError("scalinglab report needs the plotly package: pip install plotly") from None


def _clean(obj):
    """JSON-safe copy: NaN and ±inf become null (plotly leaves gaps), numpy scalars become floats."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item"):  # numpy scalar
        return _clean(obj.item())
    return obj


def _json_for_script(obj) -> str:
    text = json.dumps(_clean(obj), allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def table_html(columns: Sequence[str], rows: Sequence[Sequence], sortable: bool = True, numeric: Sequence[bool] | None = None,
               caption: str = "") -> str:
    """An HTML table; sortable ones sort by a column when its header is clicked (numbers by value)."""
    numeric = numeric or [all(isinstance(r[i], (int, float)) or r[i] is None for r in rows) for i in range(len(columns))]
    head = "".join(f'<th data-num="{int(n)}" title="click to sort">{esc(c)}</th>' if sortable else f"<th>{esc(c)}</th>"
                   for c, n in zip(columns, numeric, strict=True))
    body = []
    for r in rows:
        cells = []
        for v, n in zip(r, numeric, strict=True):
            if n:
                key = "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else repr(float(v))
                cells.append(f'<td class="num" data-v="{key}">{esc(fmt(v))}</td>')
            else:
                cells.append(f"<td>{esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cls = "sortable" if sortable else "plain"
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="tablewrap"><table class="{cls}">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


@dataclass
class Page:
    """Sections of markup and the figures they reference, rendered to one HTML document."""

    title: str
    subtitle: str = ""
    sections: list[tuple[str, str, str]] = field(default_factory=list)  # (anchor, heading, inner HTML)
    figures: list[dict] = field(default_factory=list)

    def figure(self, spec: dict, caption: str = "") -> str:
        """Register a plotly spec; returns the placeholder markup that the page script fills in."""
        i = len(self.figures)
        self.figures.append(spec)
        cap = f'<p class="caption">{esc(caption)}</p>' if caption else ""
        return f'<div class="figure"><div class="plot" id="fig-{i}" data-fig="{i}"></div>{cap}</div>'

    def add(self, anchor: str, heading: str, inner: str) -> None:
        self.sections.append((anchor, heading, inner))

    def render(self) -> str:
        nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in self.sections)
        body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{inner}</section>' for a, h, inner in self.sections)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{esc(self.title)}</title><style>{CSS}</style>"
                f"<script>{plotly_js()}</script></head><body>"
                f'<header><h1>{esc(self.title)}</h1><p class="sub">{esc(self.subtitle)}</p><nav>{nav}</nav></header>'
                f"<main>{body}</main>"
                f'<script type="application/json" id="figures">{_json_for_script(self.figures)}</script>'
                f"<script>{SCRIPT}</script></body></html>\n")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2937;color:#fff;padding:16px 28px}
header h1{margin:0 0 4px;font-size:22px}
header .sub{margin:0 0 10px;color:#cbd5e1;font-size:13px}
nav a{color:#93c5fd;margin-right:14px;font-size:13px;text-decoration:none}
main{max-width:1180px;margin:0 auto;padding:8px 28px 40px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 20px;margin:18px 0}
h2{font-size:18px;margin:4px 0 10px}
h3{font-size:15px;margin:16px 0 6px}
p,li{font-size:14px;line-height:1.45}
.note{color:#6b7280;font-size:13px}
.warn{color:#92400e;font-size:13px}
.figure{margin:8px 0 14px}
.plot{width:100%;min-height:300px}
.caption{color:#6b7280;font-size:12px;margin:2px 0 0}
.tablewrap{overflow-x:auto;max-height:460px;overflow-y:auto;margin:6px 0 12px}
table{border-collapse:collapse;font-size:13px}
caption{text-align:left;color:#6b7280;font-size:12px;padding:2px 0}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:left;white-space:nowrap}
th{background:#f3f4f6;position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th.asc::after{content:" ▲"} table.sortable th.desc::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
"""

SCRIPT = """
(function(){
  var specs = JSON.parse(document.getElementById('figures').textContent);
  document.querySelectorAll('.plot').forEach(function(el){
    var f = specs[+el.dataset.fig];
    // no cloud buttons: the page stays offline even when a reader clicks around
    Plotly.newPlot(el, f.data, f.layout, {responsive:true, displaylogo:false, showLink:false, showSendToCloud:false,
        modeBarButtonsToRemove:['sendDataToCloud', 'sendChartToCloud', 'lasso2d', 'select2d']});
  });
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th').forEach(function(th, col){
      th.addEventListener('click', function(){
        var asc = !th.classList.contains('asc');
        t.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
        th.classList.add(asc ? 'asc' : 'desc');
        var num = th.dataset.num === '1', body = t.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function(a, b){
          var x = a.cells[col], y = b.cells[col], r;
          if (num) {
            var u = x.dataset.v === '' ? Infinity : +x.dataset.v, v = y.dataset.v === '' ? Infinity : +y.dataset.v;
            r = u - v;
          } else { r = x.textContent.localeCompare(y.textContent, undefined, {numeric:true}); }
          return asc ? r : -r;
        });
        rows.forEach(function(row){ body.appendChild(row); });
      });
    });
  });
})();
"""
