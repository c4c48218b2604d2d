"""The interactive co-embedding of an HTML report renders in a real browser (headless Chromium).

The report is made the way `gluekit run` makes one: `report.interactive_embedding` -> `report.show_interactive` as a
cell output -> `cli.render_html` (nbconvert). A probe script appended to a copy of the page runs after load, asks
plotly for what it drew, hovers one cell and switches the colour menu; Chromium's `--dump-dom` returns the result.
Skips when no Chromium/Chrome binary is installed (Debian: `apt-get install -y chromium`).
"""
import html
import json
import re
import shutil
import subprocess

import anndata as ad
import nbformat
import numpy as np
import pandas as pd
import pytest

from gluekit import report as rp
from gluekit.cli import render_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER = next((p for p in map(shutil.which, BROWSERS) if p), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason=f"no headless browser on PATH (looked for {', '.join(BROWSERS)}); "
                                "install Debian's `chromium` package (apt-get install -y chromium) to run this check")

PROBE = """<script>
window.addEventListener("load", function () { setTimeout(function () {
  var gd = document.querySelector(".js-plotly-plot"), out = {plotly: typeof window.Plotly, plot: !!gd};
  var c = document.createElement("canvas");
  out.webgl = !!(c.getContext("webgl") || c.getContext("experimental-webgl"));
  var done = function () { document.body.setAttribute("data-probe", JSON.stringify(out)); };
  if (!gd || !gd._fullData || !window.Plotly) { done(); return; }
  var shown = function () { return gd._fullData.filter(function (t) { return t.visible === true; }); };
  out.traces = gd._fullData.length;
  out.shown = shown().map(function (t) { return t.name; });
  out.points = shown().reduce(function (s, t) { return s + t._length; }, 0);
  out.menu = (gd.layout.updatemenus || []).map(function (m) { return m.buttons.map(function (b) { return b.label; }); });
  out.no_webgl_msg = document.body.innerText.indexOf("WebGL is not supported") >= 0;
  var t0 = shown()[0];
  window.Plotly.Fx.hover(gd, {xval: t0.x[0], yval: t0.y[0]}, "xy");
  setTimeout(function () {
    out.hover = Array.from(document.querySelectorAll(".hoverlayer .hovertext text")).map(function (e) {
      return e.getAttribute("data-unformatted"); });
    var b = gd.layout.updatemenus[0].buttons[1];             // the second colour choice
    window.Plotly.update(gd, b.args[0]).then(function () { out.shown_after_menu = shown().map(function (t) { return t.name; });
                                                         done(); });
  }, 300);
}, 500); });
</script>"""


def _adatas(n=80, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("rna", "atac"):
        obs = pd.DataFrame({"cell_type": rng.choice(["Astro", "L2/3 IT", "Oligo"], n), "batch": rng.choice(["b1", "b2"], n)},
                           index=[f"{name}_cell{i}" for i in range(n)])
        a = ad.AnnData(np.zeros((n, 2), np.float32), obs=obs)
        a.obsm["X_umap"] = rng.normal(size=(n, 2)) + (name == "atac")
        out[name] = a
    return out


def _report(tmp_path, adatas, *, include_plotlyjs=True):
    "A one-cell executed notebook holding the interactive figure, rendered to HTML by nbconvert as `gluekit run` does."
    fig = rp.interactive_embedding(adatas, basis="X_umap", color=["layer", "cell_type", "batch"])
    body = rp.show_interactive(fig).data if include_plotlyjs else fig.to_html(full_html=False, include_plotlyjs=False)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("rp.show_interactive(fig)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/html": body, "text/plain": "<HTML>"},
                                           execution_count=1)]
    nb.cells = [nbformat.v4.new_markdown_cell("# Report"), cell]
    nbformat.write(nb, tmp_path / "report.ipynb")
    return render_html(tmp_path / "report.ipynb", tmp_path / "report.html")


def _render(tmp_path, page):
    "Load `page` plus the probe in headless Chromium; return (rendered DOM, probe result)."
    text = page.read_text(encoding="utf-8")
    i = text.rindex("</body>")
    probed = tmp_path / "probed.html"
    probed.write_text(text[:i] + PROBE + text[i:], encoding="utf-8")
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
           "--enable-unsafe-swiftshader", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000",
           "--dump-dom", probed.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r'data-probe="([^"]*)"', res.stdout)
    assert m, f"the probe did not run; stderr: {res.stderr[-2000:]}"
    return res.stdout, json.loads(html.unescape(m.group(1)))


def test_report_plot_renders_with_hover(tmp_path):
    adatas = _adatas()
    dom, probe = _render(tmp_path, _report(tmp_path, adatas))
    assert probe["plotly"] == "object" and probe["plot"], probe     # plotly.js is embedded: the report works offline
    assert 'class="plot-container' in dom and re.search(r'<svg class="main-svg"', dom), "plotly drew no SVG layers"
    assert probe["webgl"] and not probe["no_webgl_msg"], probe      # Scattergl points need WebGL
    assert probe["menu"] == [["layer", "cell_type", "batch"]], probe
    assert sorted(probe["shown"]) == ["atac", "rna"], probe          # first colouring: one trace per layer
    assert probe["points"] == sum(a.n_obs for a in adatas.values()), probe
    # hover names the cell, its layer and its type, and they agree with the AnnData it came from
    assert len(probe["hover"]) == 1, probe
    cell, *fields = re.split(r"<br>", probe["hover"][0])
    cell = re.sub(r"</?b>", "", cell)
    layer = cell.split("_")[0]
    assert fields[0] == f"layer: {layer}", probe["hover"]
    assert f"cell_type: {adatas[layer].obs.loc[cell, 'cell_type']}" in fields, probe["hover"]
    assert f"batch: {adatas[layer].obs.loc[cell, 'batch']}" in fields, probe["hover"]
    # the colour menu recolours by cell type: the visible traces become the cell types
    assert sorted(probe["shown_after_menu"]) == ["Astro", "L2/3 IT", "Oligo"], probe


def test_probe_detects_a_broken_report(tmp_path):
    "Control: without plotly.js embedded (offline), nothing is drawn and the probe says so."
    dom, probe = _render(tmp_path, _report(tmp_path, _adatas(), include_plotlyjs=False))
    assert probe["plotly"] == "undefined" and not probe.get("traces"), probe
    assert not re.search(r'<svg class="main-svg"', dom)
