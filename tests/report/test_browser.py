"""The report in a real browser (headless Chromium over the DevTools protocol): it loads with no console
error, makes no network request, and every figure is drawn, sized and visibly not blank.

Runs on the bundled Gemstones data with its fit and on a tiny ladder trained for real. Chromium is
installed by ``.ci/run``; the tests skip only where no Chromium binary exists at all.
"""

from __future__ import annotations

import io

import pytest
from browser import find_chromium, open_page  # tests/report/browser.py (conftest puts it on the path)

from scalinglab.report.html import ReportConfig, write_report

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_chromium() is None, reason="no chromium binary (.ci/run installs Debian's)")]

MIN_INK = 0.02  # share of a figure's pixels that differ from its background: axes alone give less than this
MIN_COLOURS = 4


def ink(png: bytes) -> tuple[float, int]:
    """(share of non-background pixels, number of distinct colours) of a screenshot."""
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB")
    colours = im.getcolors(maxcolors=1 << 20)
    background = max(colours)[1]
    total = im.width * im.height
    return 1 - sum(n for n, c in colours if c == background) / total, len(colours)


def check_page(html_path, expected_figures: int) -> None:
    with open_page(html_path) as page:
        assert page.console_errors == []
        assert page.external_requests == [] and page.requests == [html_path.resolve().as_uri()]
        boxes = page.figure_boxes()
        assert len(boxes) == expected_figures
        for box in boxes:
            assert box["plotted"] and box["marks"] > 0, box
            assert box["width"] > 600 and box["height"] >= 300, box
            share, colours = ink(page.screenshot({k: box[k] for k in ("x", "y", "width", "height")}))
            assert share > MIN_INK and colours >= MIN_COLOURS, (box["id"], share, colours)
        assert page.eval("document.querySelectorAll('.modebar-btn').length") > 0
        assert page.eval("Array.from(document.querySelectorAll('.modebar-btn')).filter(b => "
                         "/share|cloud/i.test(b.getAttribute('data-title'))).length") == 0  # no upload buttons
        assert page.eval("document.querySelectorAll('table.sortable').length") >= 1
        # sorting: click the loss header twice, the first row is then the worst run
        page.eval("var th = Array.from(document.querySelectorAll('#runs th')).find(h => h.textContent === 'loss');"
                  "th.click(); th.click(); 1")
        worst = page.eval("document.querySelector('#runs tbody tr').cells[4].dataset.v")
        every = page.eval("Array.from(document.querySelectorAll('#runs tbody tr')).map(r => +r.cells[4].dataset.v)")
        assert float(worst) == max(every)
        assert page.console_errors == [] and page.external_requests == []


def test_gemstones_report_in_chromium(tmp_path, gemstones_path, gemstones_fit):
    path = write_report(ReportConfig(data=gemstones_path, fits=(gemstones_fit,), plan_flops=(1e23,)), tmp_path / "g.html")
    check_page(path, expected_figures=6)


def test_tiny_ladder_report_in_chromium(tmp_path, tiny_ladder):
    store, fit = tiny_ladder
    path = write_report(ReportConfig(data=store, fits=(fit,)), tmp_path / "l.html")
    check_page(path, expected_figures=5)  # curves, fit, residuals, IsoFLOP (along curves), frontier


def test_the_harness_sees_errors_and_requests(tmp_path):
    """The checks above can fail: a page that logs an error, throws and fetches is caught on all three."""
    page_path = tmp_path / "bad.html"
    page_path.write_text("<html><body><script>console.error('boom'); fetch('http://127.0.0.1:9/x').catch(function(){});"
                         "setTimeout(function(){ undefinedFunction(); }, 0);</script></body></html>")
    with open_page(page_path) as page:
        page.wait_for("true")
        assert any("boom" in e for e in page.console_errors)
        assert any("undefinedFunction" in e for e in page.console_errors)
        assert page.external_requests == ["http://127.0.0.1:9/x"]
