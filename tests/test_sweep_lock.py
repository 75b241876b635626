"""A sweep holds its runs table's lock for its whole length (profilers/energy/sweep.py): a second
sweep on the same table (`sweep --resume` twice) refuses at once with one line instead of
measuring every setting a second time; a killed sweep never leaves the table locked."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from profilers.energy.sweep import load_sweep, run_sweep, sweep_lock_path  # noqa: E402
from scaling.app.cli import main  # noqa: E402
from scaling.errors import OutputError, TableBusyError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

SWEEP = """\
out: runs.parquet
device: cpu
meter: estimate
protocol: {repeats: 1, warmup: 0, idle_s: 0, country: null}
grid:
  - model: tiny:sd
    steps: [1, 2]
"""


@pytest.fixture()
def sweep_file(tmp_path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def _holder(table: Path) -> subprocess.Popen:
    """Another process that holds the table's sweep lock until it is killed."""
    code = textwrap.dedent(f"""
        import time
        from scaling._files import hold_lock
        with hold_lock({str(sweep_lock_path(table))!r}, what="t"):
            print("holding", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_sweep_on_the_same_table_refuses_before_measuring(sweep_file, tmp_path, capsys):
    table = tmp_path / "runs.parquet"
    holder = _holder(table)
    try:
        with pytest.raises(TableBusyError) as err:
            run_sweep(load_sweep(sweep_file), resume=True, progress=False)
        msg = str(err.value)
        assert f"pid {holder.pid}" in msg and str(table) in msg and "another sweep" in msg and "\n" not in msg
        assert not table.exists(), "nothing was measured"
        assert main(["sweep", str(sweep_file), "--resume", "--no-progress"]) == 2
        err_text = capsys.readouterr().err
        assert err_text.count("\n") == 1 and "in use by" in err_text and "Traceback" not in err_text
        assert not table.exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


@pytest.mark.slow
def test_a_killed_sweep_leaves_no_lock_and_a_resume_skips_what_is_done(sweep_file, tmp_path):
    table = tmp_path / "runs.parquet"
    holder = _holder(table)
    holder.kill()  # kill -9: the OS releases its lock
    holder.wait()
    holder.stdout.close()
    result = run_sweep(load_sweep(sweep_file), progress=False)
    assert result.count("measured") == 2 and table.exists()
    assert sweep_lock_path(table).exists(), "the lock file stays (it is never deleted), unlocked"
    again = run_sweep(load_sweep(sweep_file), resume=True, progress=False)
    assert again.count("skipped") == 2


def test_the_output_table_is_checked_before_the_sweep(sweep_file, tmp_path):
    with pytest.raises(OutputError, match="a folder"):
        run_sweep(load_sweep(sweep_file), out=tmp_path, progress=False)
    with pytest.raises(OutputError, match="it is the input"):
        run_sweep(load_sweep(sweep_file), out=sweep_file, progress=False)


def test_cuda_without_a_gpu_is_one_line_before_the_sweep(sweep_file, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    sweep_file.write_text(SWEEP.replace("device: cpu", "device: cuda"))
    assert main(["sweep", str(sweep_file), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA GPU" in err and not (tmp_path / "runs.parquet").exists()
