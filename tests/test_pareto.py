"""Energy against quality (issue 6): the Pareto set, on synthetic points and the published audio study."""

import numpy as np
import pandas as pd
import pytest

from scaling.app.cli import main
from scaling.errors import DataError
from scaling.app.pareto import join_quality, pareto, pareto_mask


def test_pareto_mask_by_hand():
    energy = np.array([1.0, 2.0, 3.0, 2.5, 4.0])
    quality = np.array([0.1, 0.5, 0.4, 0.6, 0.6])
    assert pareto_mask(energy, quality).tolist() == [True, True, False, True, False]
    # lower is better (FAD): the cheapest and the lowest distance
    assert pareto_mask(energy, -quality, higher_is_better=False).tolist() == [True, True, False, True, False]


def _runs(rows):
    return pd.DataFrame(rows, columns=["model", "steps", "batch_size", "energy_gpu_j", "phase"])


def test_pareto_per_model_and_across():
    runs = _runs([("a", 10, 1, 100.0, "total"), ("a", 50, 1, 500.0, "total"), ("a", 100, 1, 1000.0, "total"),
                  ("b", 10, 1, 300.0, "total"), ("b", 50, 1, 1500.0, "total")])
    runs["clap"] = [0.30, 0.36, 0.35, 0.40, 0.41]
    res = pareto(runs, "clap")
    pts = res.points.set_index(["model", "steps"])
    assert bool(pts.loc[("a", 100), "on_model_front"]) is False  # more energy, less quality than 50 steps
    assert bool(pts.loc[("a", 50), "on_model_front"]) is True
    assert bool(pts.loc[("a", 50), "on_front"]) is False  # beaten by b at 10 steps (0.40 at 300 J)
    assert set(res.front().index) == set(res.points.index[res.points["on_front"]])


def test_missing_quality_column_is_a_data_error():
    with pytest.raises(DataError, match="no quality column 'clap'"):
        pareto(_runs([("a", 10, 1, 1.0, "total")]), "clap")


def test_published_audio_study_front_has_no_setting_above_100_steps(public_data, tmp_path, capsys):
    """Diffused Responsibility found no setting above 100 steps on the energy/quality front."""
    from scaling.app.importers import import_public, import_quality

    runs = import_public(public_data / "diffused_responsibility_t2a.csv", flops=False).runs
    quality = import_quality(public_data / "diffused_responsibility_quality.csv")
    for metric, higher in (("clap", True), ("fad", False)):
        res = pareto(join_quality(runs, quality, metric), metric, higher_is_better=higher)
        assert res.front()["steps"].max() <= 100, metric
    out = tmp_path / "runs.parquet"
    assert main(["data", "import", str(public_data / "diffused_responsibility_t2a.csv"), "--out", str(out),
                 "--no-flops"]) == 0
    capsys.readouterr()
    assert main(["pareto", "--data", str(out), "--quality", "fad", "--quality-table",
                 str(public_data / "diffused_responsibility_quality.csv"), "--plot", str(tmp_path / "p.html")]) == 0
    text = capsys.readouterr().out
    assert "global front" in text and "lower fad is better" in text
    assert (tmp_path / "p.html").stat().st_size > 100_000
