"""The HTML report in a real browser (headless Chromium): header clicks sort their own table, and the page
needs no horizontal scroll at 1400 px. A test page loads the report in an iframe, clicks headers like a user,
and writes what it saw into its own DOM, which `chromium --dump-dom` returns."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from test_report import ROWS

from edgeopt.recommend import Budget
from edgeopt.report import build_report, write_reports

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="headless Chromium not installed "
                                                        "(apt-get install chromium)")

# Runs in the test page: click headers of the report (in the iframe), record each table's column values.
CLICKER = """
<iframe id="report" src="report.html" style="width:1400px;height:900px;border:0"></iframe>
<pre id="result"></pre>
<script>
document.getElementById('report').addEventListener('load', function(){
  var doc = this.contentDocument, out = {};
  var tables = {candidates: doc.querySelector('table.sortable.wide'),
                gains: doc.querySelectorAll('table.sortable')[0]};
  function header(table, name){
    return Array.prototype.find.call(table.tHead.rows[0].cells, function(th){ return th.textContent === name; });
  }
  function column(table, name){
    var col = header(table, name).cellIndex;
    return Array.prototype.map.call(table.tBodies[0].rows, function(r){
      var cell = r.cells[col];
      return cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
    });
  }
  function click(table, name, label){
    header(table, name).click();
    out[label] = {median: column(tables.candidates, 'median ms (95% CI)'),
                  p95: column(tables.candidates, 'p95 ms'), model: column(tables.candidates, 'model'),
                  speedup: column(tables.gains, 'speedup vs FP32 torch'),
                  sort: header(table, name).getAttribute('aria-sort')};
  }
  out.before = {model: column(tables.candidates, 'model')};
  click(tables.candidates, 'median ms (95% CI)', 'median_once');
  click(tables.candidates, 'median ms (95% CI)', 'median_twice');
  click(tables.candidates, 'p95 ms', 'p95');
  click(tables.gains, 'speedup vs FP32 torch', 'gains_speedup');
  out.scroll = {width: doc.documentElement.scrollWidth, client: doc.documentElement.clientWidth};
  document.getElementById('result').textContent = JSON.stringify(out);
});
</script>
"""


def _numbers(values: list[str]) -> list[float]:
    return [float(v) for v in values if v != ""]


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    """What the clicks did, as recorded by the test page."""
    folder = tmp_path_factory.mktemp("browser")
    rows = [r if r.ok else r.model_copy(update={"latency": {}}) for r in ROWS]  # a failure has no latency
    data = build_report(rows, budget=Budget(device="cpu-1t", max_latency_ms=1.2, min_accuracy=0.9))
    write_reports(data, folder, formats=("html",))
    page = folder / "clicker.html"
    page.write_text(f"<!DOCTYPE html><html><body style='margin:0'>{CLICKER}</body></html>")
    dom = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                          "--disable-background-networking", "--disable-component-update", "--no-first-run",
                          f"--user-data-dir={folder / 'profile'}", "--window-size=1420,1000",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, flags=re.S)
    assert found and found.group(1), "the test page recorded nothing: " + dom[-500:]
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_clicking_a_header_sorts_that_column(seen):
    once, twice = seen["median_once"], seen["median_twice"]
    assert once["sort"] == "ascending" and _numbers(once["median"]) == sorted(_numbers(once["median"]))
    assert twice["sort"] == "descending"
    assert _numbers(twice["median"]) == sorted(_numbers(twice["median"]), reverse=True)
    assert once["median"][-1] == twice["median"][-1] == ""  # the failed candidate (no latency) last either way
    p95 = seen["p95"]
    assert p95["sort"] == "ascending" and _numbers(p95["p95"]) == sorted(_numbers(p95["p95"]))
    assert once["model"] != seen["before"]["model"]  # the rows really moved


def test_each_table_sorts_only_itself(seen):
    """The old bug: column indices ran across all tables, so one table's header sorted by another's column."""
    gains = seen["gains_speedup"]
    assert _numbers(gains["speedup"]) == sorted(_numbers(gains["speedup"]))
    assert gains["p95"] == seen["p95"]["p95"]  # the candidates table did not move


def test_no_horizontal_scroll_at_1400_px(seen):
    assert seen["scroll"]["width"] <= seen["scroll"]["client"], seen["scroll"]
