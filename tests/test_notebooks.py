"""The planning notebooks run headless (nbclient) on the shipped law, each in under a minute.

They are committed without outputs; any cell error fails the test. plotly's renderer is set
to ``json`` for the run, so a figure becomes a small JSON output instead of the whole
plotly.js bundle.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat (extra [notebooks])")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient (extra [notebooks])")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["video_planning", "image_planning", "audio_planning"]
TIME_LIMIT_S = 60


def _figures(nb) -> int:
    n = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if out.get("output_type") == "display_data" and any(
                    isinstance(v, dict) and "data" in v and "layout" in v for v in data.values()):
                n += 1
            elif any(k.startswith("application/vnd.plotly") for k in data):
                n += 1
    return n


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: a cell was committed with outputs"
    assert nb.cells[0].cell_type == "markdown"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= sum(c.cell_type == "code" for c in nb.cells)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_headless(name, monkeypatch, tmp_path):
    monkeypatch.setenv("PLOTLY_RENDERER", "json")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIME_LIMIT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()       # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT_S, f"{name} took {elapsed:.1f} s"
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert _figures(nb) >= 3, f"{name} drew {_figures(nb)} plotly figures"
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "Traceback" not in text
