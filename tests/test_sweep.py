"""Sweeps: grid files, the local executor with its progress bar, crash + resume, submitit executors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from profilers.energy.runner import Runner, read_failures  # noqa: E402
from profilers.energy.sweep import expand_grid, load_sweep, run_sweep, shards_dir  # noqa: E402
from scaling.app.cli import main  # noqa: E402
from scaling.errors import WorkloadError  # noqa: E402
from scaling.runs import read_runs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def _write(tmp_path, grid, repeats=2, idle_s=0.0, name="sweep.yaml", **top):
    doc = {"out": "runs.parquet", "device": "cpu", "meter": "estimate",
           "protocol": {"repeats": repeats, "warmup": 0, "idle_s": idle_s, "country": None}, "grid": grid, **top}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def _totals(out):
    df = read_runs(out)
    return df[df["phase"] == "total"]


def test_grid_expansion_and_checks_before_work(tmp_path):
    reqs = expand_grid([{"model": ["tiny:sd", "tiny:wan"], "steps": [1, 2, 3]}, {"model": "tiny:audioldm"}],
                       defaults={"precision": "fp32"})
    assert len(reqs) == 7 and all(r.precision == "fp32" for r in reqs)
    with pytest.raises(WorkloadError, match="unknown field.*resolution"):
        load_sweep(_write(tmp_path, [{"model": "tiny:sd", "resolution": 8}]))
    with pytest.raises(WorkloadError, match=r"setting 2 \(tiny:sd\).*`height` 12"):
        load_sweep(_write(tmp_path, [{"model": "tiny:sd", "res": [8, 12]}]))
    with pytest.raises(WorkloadError, match="unknown model"):
        load_sweep(_write(tmp_path, [{"model": "no-such-model"}]))
    with pytest.raises(WorkloadError, match="repeats"):
        load_sweep(_write(tmp_path, [{"model": "tiny:sd"}], repeats=0))
    assert main(["sweep", str(_write(tmp_path, [{"model": "tiny:sd", "resolution": 8}]))]) == 2


def test_an_unknown_meter_fails_before_any_setting_runs(tmp_path, capsys):
    with pytest.raises(WorkloadError, match=r"sweep.yaml: `meter` 'nvlm' is unknown: use one of auto, nvml"):
        load_sweep(_write(tmp_path, [{"model": "tiny:sd"}], meter="nvlm"))
    path = _write(tmp_path, [{"model": "tiny:sd"}])
    assert main(["sweep", str(path), "--meter", "replay:", "--no-progress"]) == 2  # the override is checked too
    err = capsys.readouterr().err
    assert "`meter` 'replay:' names no trace" in err and not (tmp_path / "runs.parquet").exists()


@pytest.mark.slow
def test_local_sweep_with_progress_bar(tmp_path, capsys):
    path = _write(tmp_path, [{"model": "tiny:sd", "steps": [1, 2]}, {"model": "tiny:audioldm"}])
    rc = main(["sweep", str(path)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "3 settings: 3 measured" in captured.out
    assert "setting" in captured.err and "s/setting" in captured.err and "3/3" in captured.err  # bar, rate, done
    tot = _totals(tmp_path / "runs.parquet")
    assert len(tot) == 3 * 2
    assert sorted(tot.loc[tot["model"] == "tiny:sd", "steps"].unique()) == [1, 2]
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "3 settings" in capsys.readouterr().out


def test_sweep_interrupted_after_n_calls_then_resumed(tmp_path):
    sweep = load_sweep(_write(tmp_path, [{"model": "tiny:wan", "steps": [1, 2, 3]}], repeats=2))
    out = tmp_path / "runs.parquet"

    def crash_after_3(outcome, n):
        if n == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of setting 2

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, progress=False, after_call=crash_after_3)
    before = read_runs(out)
    assert len(before[before["phase"] == "total"]) == 3  # every completed call survived
    result = run_sweep(sweep, resume=True, progress=False)
    assert [o.status for o in result.outcomes] == ["skipped", "measured", "measured"]
    assert [o.calls for o in result.outcomes] == [0, 1, 2]  # setting 2 only needed its second repeat
    after = read_runs(out)
    assert set(before["run_id"]) <= set(after["run_id"])
    tot = after[after["phase"] == "total"]
    assert len(tot) == 6 and tot.groupby("steps")["repeat"].apply(sorted).tolist() == [[0, 1]] * 3


@pytest.mark.slow
def test_sweep_killed_with_sigkill_then_resumed(tmp_path):
    # idle_s makes each setting last long enough to be killed in the middle of the sweep
    path = _write(tmp_path, [{"model": "tiny:sd", "steps": [1, 2, 3, 4, 5, 6]}], repeats=1, idle_s=0.4)
    out = tmp_path / "runs.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "scaling", "sweep", str(path), "--no-progress"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not out.exists():  # the table appears with the first completed call
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no call completed in 90 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    survived = read_runs(out)  # a killed writer never leaves a broken table
    n_done = len(survived[survived["phase"] == "total"])
    assert 1 <= n_done < 6
    sweep = load_sweep(path)  # the idle window is not part of a setting's identity: skip it now
    sweep.protocol = replace(sweep.protocol, idle_s=0.0)
    result = run_sweep(sweep, resume=True, progress=False)
    assert [o.status for o in result.outcomes].count("skipped") == n_done
    after = read_runs(out)
    assert set(survived["run_id"]) <= set(after["run_id"])
    assert sorted(after.loc[after["phase"] == "total", "steps"]) == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_submitit_debug_executor_merges_shards_and_failures(tmp_path, monkeypatch):
    pytest.importorskip("submitit", reason="needs submitit (the [sweep] extra)")
    real_warmup = Runner._warmup

    def warmup(self, built, setting):
        if setting.steps == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_warmup(self, built, setting)

    monkeypatch.setattr(Runner, "_warmup", warmup)
    sweep = load_sweep(_write(tmp_path, [{"model": "tiny:wan", "steps": [1, 2, 3]}, {"model": "tiny:sd"}]))
    out = tmp_path / "runs.parquet"
    result = run_sweep(sweep, executor="debug", settings_per_job=2, progress=False, poll_s=0.01,
                       echo=lambda s: None)
    assert sorted(o.status for o in result.outcomes) == ["failed", "measured", "measured", "measured"]
    tot = _totals(out)
    assert len(tot) == 3 * 2 and set(tot["model"]) == {"tiny:wan", "tiny:sd"}
    assert [f["kind"] for f in read_failures(out)] == ["out_of_memory"]
    assert not list(shards_dir(out).glob("*.parquet"))  # merged and removed
    # resume through the executor: nothing left to measure but the failed setting
    result = run_sweep(sweep, executor="debug", resume=True, progress=False, poll_s=0.01, echo=lambda s: None)
    assert sorted(o.status for o in result.outcomes) == ["failed", "skipped", "skipped", "skipped"]
    assert len(_totals(out)) == 6


@pytest.mark.slow
def test_submitit_local_executor_resumes_in_subprocesses(tmp_path, monkeypatch):
    """Jobs in real subprocesses (submitit's LocalExecutor): arguments and outcomes cross the
    process boundary, each job reads the main table to resume. The settings were measured
    before, so the jobs only check and skip (no pipeline is built: this stays fast)."""
    pytest.importorskip("submitit", reason="needs submitit (the [sweep] extra)")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    sweep = load_sweep(_write(tmp_path, [{"model": "tiny:audioldm", "steps": [1, 2]}], repeats=1))
    run_sweep(sweep, progress=False)
    result = run_sweep(sweep, executor="submitit-local", resume=True, settings_per_job=1, progress=False,
                       poll_s=0.2, echo=lambda s: None)
    assert [o.status for o in result.outcomes] == ["skipped", "skipped"], [o.message for o in result.outcomes]
    assert all(o.key.startswith("tiny-audioldm-") for o in result.outcomes)
    assert len(_totals(tmp_path / "runs.parquet")) == 2
    assert len(list((tmp_path / "runs.parquet.submitit").glob("*_result.pkl"))) == 2


def test_slurm_executor_parameters(tmp_path, monkeypatch):
    pytest.importorskip("submitit", reason="needs submitit (the [sweep] extra)")
    import shutil

    from profilers.energy.sweep import _make_executor

    with pytest.raises(WorkloadError, match="no SLURM here"):
        if shutil.which("srun"):
            pytest.skip("this machine has SLURM")
        _make_executor("slurm", tmp_path, 3, None)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}" if name == "srun" else real_which(name, *a, **k))
    ex = _make_executor("slurm", tmp_path, 3, {"slurm_partition": "gpu", "timeout_min": 30})
    params = ex._executor.parameters
    assert params["gpus_per_node"] == 1 and params["array_parallelism"] == 3  # one GPU per array task
    assert params["partition"] == "gpu" and params["time"] == 30
