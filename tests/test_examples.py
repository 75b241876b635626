"""The example files in docs/examples stay valid."""

from pathlib import Path

from scaling.app.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def test_example_workload_plans(capsys):
    assert main(["plan", str(EXAMPLES / "workload.yaml")]) == 0
    out = capsys.readouterr().out
    assert "h100-sxm" in out and "CO2e" in out and "jobs on h100-sxm" in out


def test_example_gpu_sweep_expands(capsys):
    assert main(["sweep", str(EXAMPLES / "sweep-gpu.yaml"), "--dry-run"]) == 0
    assert "27 settings" in capsys.readouterr().out
