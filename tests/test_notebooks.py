"""The planning notebooks run headless (papermill) on the shipped law, with their default
parameters and with one set of overrides, and their HTML export renders in headless Chromium
(the slow lane).

They are committed without outputs and hold no helper functions: every table comes from a
library DataFrame. Each run checks the figures (plotly's JSON in the outputs) against the
library: a configuration that does not fit in memory (or is over ``max_latency_s``) is not
drawn, an extrapolated one is hatched, every figure has a subtitle and an interval, and no
legend entry is duplicated.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (extra [notebooks])")
papermill = pytest.importorskip("papermill", reason="the notebook tests need papermill (extra [notebooks])")
pytest.importorskip("plotly", reason="the notebooks draw with plotly (extra [report])")

import scaling  # noqa: E402
from scaling.app.frames import as_list  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import _console_lines, _run_chromium  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PLOTLY = "application/vnd.plotly.v1+json"

FIGURES = {
    "video_planning": ["gpus", "fleet", "steps", "frames"],
    "image_planning": ["models", "gpus", "curves", "precision", "fleet"],
    "audio_planning": ["models", "curves", "gpus", "fleet"],
    "workload_planning": ["kwh", "pareto", "co2e", "jobs"],
}
TABLE_COLUMNS = {
    "video_planning": ["per_call_flop", "energy_per_output_lo_wh", "kwh_hi", "co2e_kg_lo", "gpu_hours_hi", "rank"],
    "image_planning": ["energy_per_output_hi_j", "memory_fit", "co2e_kg_hi", "rank"],
    "audio_planning": ["energy_per_output_lo_wh", "shape", "kwh_lo", "co2e_kg_hi"],
    "workload_planning": ["kwh_lo", "gpu_hours_hi", "co2e_kg_hi", "pareto", "energy_per_output_wh"],
}
OVERRIDES = {
    # as `papermill -p gpus '["h100","l40s","l4"]'` passes them: text
    "video_planning": {"models": '["wan2.1", "wan2.1-14b"]', "gpus": '["h100","l40s","l4"]', "resolutions": "480p",
                       "regions": ["DE"], "count": 20000, "max_latency_s": 300},
    "image_planning": {"gpus": ["t4", "l4", "h100"], "regions": ["DE", "FR"], "count": 5000, "max_latency_s": 20},
    "audio_planning": {"gpus": "t4,a100", "curve_models": ["audioldm2", "stable-audio-open", "tango"],
                       "clip_s": 5.0, "regions": ["US"], "pue": 1.0, "count": 1000, "max_latency_s": 10},
    "workload_planning": {"gpus": ["h100", "l4", "t4"], "regions": ["FR"], "precisions": ["bf16"],
                          "step_scales": [1.0]},
}
NAMES = sorted(FIGURES)


def _read(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _parameters(name) -> dict:
    """The notebook's parameter cell, evaluated (literals only)."""
    cell = next(c for c in _read(name).cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    return {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets}


_RUNS: dict = {}


def _execute(name, variant, tmp_dir: Path):
    """Run a notebook once per test process (papermill, kernel python3); returns (nb, params)."""
    key = (name, variant)
    if key not in _RUNS:
        overrides = OVERRIDES[name] if variant == "overrides" else {}
        out = tmp_dir / f"{name}-{variant}.ipynb"
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("PLOTLY_RENDERER", raising=False)   # the notebook's own renderer: JSON + offline HTML
            for k, v in env.items():
                mp.setenv(k, v)
            # defaults run where Jupyter runs them (notebooks/), overrides from the repository root
            nb = papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=overrides,
                                            kernel_name="python3", progress_bar=False,
                                            cwd=str(NOTEBOOKS if variant == "defaults" else ROOT))
        defaults = _parameters(name)
        _RUNS[key] = (nb, out, {**defaults, **{k: as_list(v) if isinstance(defaults[k], list) else v
                                               for k, v in overrides.items()}})
    return _RUNS[key]


def _figures(nb) -> list[dict]:
    return [o["data"][PLOTLY] for c in nb.cells for o in c.get("outputs", []) if PLOTLY in o.get("data", {})]


def _tables(nb) -> list[str]:
    return [o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", [])
            if "dataframe" in o.get("data", {}).get("text/html", "")]


def _truth(name, params):
    """What the 'gpus' figure (the workload's 'kwh') may draw, from the library: (trace, gpu) -> hatched,
    and how many options the notebook must leave out (memory or latency)."""
    limit = params["max_latency_s"]
    if name == "workload_planning":
        res = scaling.plan(ROOT / params["workload"], gpus=params["gpus"], regions=params["regions"],
                           precisions=params["precisions"], step_scales=params["step_scales"], pue=params["pue"])
        df, jobs = res.to_frame(), res.jobs_frame()
        slow = set() if limit is None else set(jobs[jobs.time_s > limit].option)
        ok = df.fits_memory & ~df.option.isin(slow)
        df["trace"] = df.precision + ", steps x" + df.steps_scale.map("{:g}".format)
    else:
        if name == "video_planning":
            df = scaling.predict_grid(params["models"], gpus=params["gpus"], res=params["resolutions"],
                                      frames=params["frames"]).to_frame()
            df["trace"] = df.model_key + " " + df.res
        else:
            models = params["gpu_models"] if name == "image_planning" else params["gpu_model"]
            df = scaling.predict_grid(models, gpus=params["gpus"]).to_frame()
            df["trace"] = df.model_key
        ok = df.fits_memory & (True if limit is None else df.time_s <= limit)
    return {(r.trace, r.gpu): bool(r.extrapolated) for r in df[ok].itertuples()}, int((~ok).sum())


def _check_run(name, nb, params) -> int:
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                   if o.get("output_type") == "stream")
    assert "Traceback" not in text
    figs = _figures(nb)
    assert [f["layout"].get("meta", {}).get("figure") for f in figs] == FIGURES[name]
    for f in figs:
        lay, fid = f["layout"], f["layout"]["meta"]["figure"]
        assert lay["title"]["text"] and lay["title"].get("subtitle", {}).get("text"), f"{name}/{fid}: no subtitle"
        assert any(t.get("error_y", {}).get("array") is not None for t in f["data"]), f"{name}/{fid}: no intervals"
        legend = [t.get("name") for t in f["data"] if t.get("showlegend", True) is not False]
        assert len(legend) == len(set(legend)), f"{name}/{fid}: duplicated legend entries {legend}"
    tables = "".join(_tables(nb))
    for col in TABLE_COLUMNS[name]:
        assert f">{col}<" in tables, f"{name}: no table with the column {col}"
    # the GPU figure draws exactly what fits (and meets the latency limit), hatched where extrapolated
    fig = next(f for f in figs if f["layout"]["meta"]["figure"] == ("kwh" if name == "workload_planning" else "gpus"))
    allowed, n_left_out = _truth(name, params)
    drawn = set()
    for t in fig["data"]:
        assert t["type"] == "bar"
        for gpu, shape in zip(t["x"], t["marker"]["pattern"]["shape"]):
            key = (t["name"], gpu)
            assert key not in drawn, f"{name}: {key} drawn twice"
            assert key in allowed, f"{name}: {key} is drawn but does not fit in memory or is over max_latency_s"
            assert shape == ("/" if allowed[key] else ""), f"{name}: {key}: hatching {shape!r}"
            drawn.add(key)
    assert drawn == set(allowed), f"{name}: not drawn: {sorted(set(allowed) - drawn)}"
    return n_left_out


@pytest.mark.parametrize("name", NAMES)
def test_notebook_committed_without_outputs_and_without_helpers(name):
    nb = _read(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: a cell was committed with outputs"
        assert not re.search(r"^\s*(def|class)\s|lambda\b", cell.source, re.M), f"{name}: a helper in the notebook"
    assert nb.cells[0].cell_type == "markdown"
    assert code[0].metadata.get("tags") == ["parameters"], "the first code cell holds the parameters (papermill)"
    params = _parameters(name)
    assert {"gpus", "regions", "pue", "max_latency_s"} <= set(params)
    assert name == "workload_planning" or {"count"} <= set(params)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code)


def test_every_notebook_is_tested():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_with_default_parameters(name, tmp_path_factory):
    nb, _, params = _execute(name, "defaults", tmp_path_factory.mktemp(name))
    _check_run(name, nb, params)


@pytest.mark.slow  # runs the notebook, nbconvert and chromium (which .ci/run installs)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_html_export_renders_in_chromium(name, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(name)
    _, out, _ = _execute(name, "defaults", tmp)
    # the HTML export of the README: jupyter nbconvert --to html
    proc = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = out.with_suffix(".html")
    html = page.read_text(encoding="utf-8")
    assert "plotly.js v" in html, "plotly.js is inlined: the figures draw offline"
    chrome = _run_chromium(tmp, page, "--dump-dom")
    dom = chrome.stdout.decode(errors="replace")
    n = len(FIGURES[name])
    assert len(re.findall(r'<div[^>]* class="plotly-graph-div js-plotly-plot"', dom)) == n, \
        "every figure was drawn by plotly in the browser"
    assert dom.count('class="main-svg"') >= n
    assert _console_lines(chrome.stderr) == [], "the browser console logged messages"


@pytest.mark.slow  # a second papermill run of every notebook; the fast lane runs each with its defaults
@pytest.mark.parametrize("name", NAMES)
def test_notebook_with_overridden_parameters(name, tmp_path_factory):
    nb, _, params = _execute(name, "overrides", tmp_path_factory.mktemp(name))
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and all(k in injected[0].source for k in OVERRIDES[name])
    n_left_out = _check_run(name, nb, params)
    assert n_left_out, f"{name}: the overrides leave something out (memory or latency), and it is listed"
    tables = "".join(_tables(nb))
    assert ">memory_need_gib<" in tables and ">gpu_memory_gib<" in tables
    assert json.dumps(_figures(nb))  # the figures are plain JSON
