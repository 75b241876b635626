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
    assert "global" in text and "front" in text and "lower fad is better" in text and "per output" in text
    assert (tmp_path / "p.html").stat().st_size > 100_000


def test_pareto_finds_the_shipped_quality_table_and_labels_do_not_merge(public_data, tmp_path, capsys):
    """The README's `scaling pareto --data runs.parquet --quality clap` works without --quality-table."""
    out = tmp_path / "runs.parquet"
    assert main(["data", "import", str(public_data / "diffused_responsibility_t2a.csv"), "--out", str(out),
                 "--no-flops", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["pareto", "--data", str(out), "--quality", "clap", "--json"]) == 0
    captured = capsys.readouterr()
    assert "diffused_responsibility_quality.csv" in captured.err, "says which quality table it joined"
    import json

    points = json.loads(captured.out)
    assert points and all(p["quality"] == p["quality"] for p in points)
    assert main(["pareto", "--data", str(out), "--quality", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "clap" in err and "\n" not in err, "an unknown metric names the known ones"

    from scaling.app.importers import import_quality
    from scaling.app.pareto import pareto_figure
    from scaling.runs import read_runs

    runs = join_quality(read_runs(out), import_quality(public_data / "diffused_responsibility_quality.csv"), "clap")
    fig = pareto_figure(pareto(runs, "clap"))
    for trace in fig.data:
        if trace.mode == "markers+text":
            labelled = [t for t in trace.text if t]
            front = [s == "star" for s in trace.marker.symbol]
            assert len(labelled) == sum(front), "only the points on a model's front carry a label"
            assert len(set(trace.textposition)) > 1 or len(labelled) <= 1, "labels alternate around their points"
            assert all(h for h in trace.hovertext), "every point says what it is on hover"
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.dtick == 1 and "per output" in fig.layout.xaxis.title.text
