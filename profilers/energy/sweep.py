"""Sweeps: a grid of models and settings measured into one runs table.

A sweep file (YAML)::

    out: runs.parquet              # optional (--out wins)
    device: cuda                   # optional: auto | cuda | cuda:N | cpu
    meter: auto                    # optional: auto | nvml | estimate
    weights: null                  # optional: a local diffusers folder (one model only; safetensors)
    allow_pickle: false            # optional: also load pickled weights (.bin/.pt/.ckpt): they can run code
    protocol:                      # optional: repeats, warmup, idle_s, subtract_idle, seed,
      repeats: 3                   #   repeat_short, country, cpu_power_w
      warmup: 1
    defaults:                      # optional: fields every grid entry starts from
      precision: bf16
    grid:                          # required: each entry is expanded as a product of its lists
      - model: [sd2.1, sd3.5-medium]
        res: [512, 768]
        steps: [20, 50]
      - model: wan2.1
        res: 480p
        frames: [33, 81]
        steps: 30

Grid fields: ``model``, ``res``, ``height``, ``width``, ``frames``, ``seconds``, ``steps``,
``guidance``, ``cfg``, ``batch_size``, ``outputs_per_prompt``, ``precision``. The file is read
strictly and checked against :class:`SweepFile` (pydantic): a key given twice, an unknown key, a
quoted ``"false"`` for ``cfg``, ``steps: .inf`` or a list inside a list is one line with the
file's line number; then every setting is checked (:func:`scaling.settings.make_setting`), the
meter and the protocol (a replay trace read, ``nvml`` with ``device: cpu``, the CodeCarbon
``country``), the output table (:func:`scaling.runs.check_runs_output`: a ``.parquet`` or ``.csv``
name in an existing folder; an existing table must be a runs table) and the weights folder
(:func:`profilers.energy.weights.check_weights_dir`), all before anything runs.

A sweep holds ``<table>.sweep.lock`` (:func:`scaling._files.hold_lock`) for its whole length: a
second sweep on the same runs table refuses at once with one line
(:class:`~scaling.errors.TableBusyError`) instead of measuring every setting a second time.

Executors:

- ``local`` (default): this process, one setting after the other, settings of one model
  together so its pipeline is built once; a progress bar shows the time per setting and
  the time left.
- ``slurm``: a submitit job array (``AutoExecutor``), one GPU per task; each task measures
  a chunk of settings into its own shard table under ``<table>.shards/``; the shards are
  merged into the one runs table as tasks finish (and again at the start of the next
  sweep, should this process have died meanwhile).
- ``submitit-local`` / ``debug``: the same job path through submitit's ``LocalExecutor``
  (subprocesses on this machine) or ``DebugExecutor`` (in this process); used by the tests.

``resume=True`` skips settings, and repeats, already in the table.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaling._files import hold_lock
from scaling.errors import ScalingError, WorkloadError
from scaling.runs import check_runs_output

from .failures import record_failure
from .runner import Protocol, Runner, SettingOutcome, SettingRequest, failures_path
from .sweep_file import GridEntry, Sweep, SweepFile, check_settings, expand_grid, load_sweep  # noqa: F401

__all__ = [
    "EXECUTORS",
    "Sweep",
    "SweepResult",
    "expand_grid",
    "load_sweep",
    "merge_shards",
    "run_sweep",
]

EXECUTORS = ("local", "slurm", "submitit-local", "debug")


@dataclass
class SweepResult:
    outcomes: list[SettingOutcome]
    out: Path
    seconds: float

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("measured", "skipped", "partial", "failed") if self.count(s)]
        return f"{len(self.outcomes)} settings: {', '.join(parts) or 'none'} in {self.seconds:.1f} s -> {self.out}"


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------

def _grouped(settings: Sequence[SettingRequest]) -> list[SettingRequest]:
    """Settings of one model (and precision) together, in first-seen order."""
    order: dict[tuple, int] = {}
    for s in settings:
        order.setdefault((s.model, s.precision), len(order))
    return sorted(settings, key=lambda s: order[(s.model, s.precision)])


def run_sweep(
    sweep: Sweep,
    *,
    out: str | os.PathLike | None = None,
    executor: str | Any = "local",
    resume: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    after_call: Callable[[SettingOutcome, int], None] | None = None,
    settings_per_job: int = 4,
    slurm: Mapping[str, Any] | None = None,
    logs: str | os.PathLike | None = None,
    poll_s: float = 5.0,
    lock_wait_s: float = 0.0,
) -> SweepResult:
    """Measure every setting of ``sweep`` into one runs table.

    ``executor``: ``local`` (this process), ``slurm`` (submitit job array), ``submitit-local``
    or ``debug`` (submitit's local / in-process executors), or a submitit Executor object.
    ``slurm``: extra submitit parameters (``slurm_partition``, ``timeout_min``, ...).
    ``after_call(outcome, n)`` runs after each appended call (local executor only).
    ``lock_wait_s``: how long to wait for another sweep on the same table to finish (default 0:
    refuse at once with :class:`~scaling.errors.TableBusyError`).
    """
    table = Path(out) if out is not None else sweep.out
    if table is None:
        raise WorkloadError(f"{sweep.source}: no output table: give `out:` in the sweep file or --out")
    table = Path(table)
    # before the sweep lock and any setting: a .parquet/.csv name in an existing folder; an existing table is
    # one to append to (a truncated or foreign file is one line now, not a failure after every build)
    check_runs_output(table, inputs=[sweep.source], what="runs table")
    local = isinstance(executor, str) and executor == "local"
    if local:  # here, before any setting: `cuda` without a GPU is one line, not every setting failed
        from .devices import resolve_device
        from .meters import check_meter

        check_meter(sweep.meter, device=resolve_device(sweep.device))  # nvml where `auto` is the CPU
    t0 = time.perf_counter()
    with hold_lock(sweep_lock_path(table), what=f"runs table {table}", wait_s=lock_wait_s,
                   rule="another sweep is measuring into it; wait for it to finish, or give another --out"):
        if local:
            outcomes = _run_local(sweep, table, resume, progress, echo, after_call)
        else:
            outcomes = _run_submitit(sweep, table, executor, resume, progress, echo, settings_per_job, slurm, logs,
                                     poll_s)
    return SweepResult(outcomes=outcomes, out=table, seconds=time.perf_counter() - t0)


def sweep_lock_path(table: str | os.PathLike) -> Path:
    """The lock a sweep holds on its runs table for the whole sweep: ``<table>.sweep.lock``."""
    p = Path(table)
    return p.with_name(p.name + ".sweep.lock")


def _bar(total: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="setting", disable=not progress, file=sys.stderr, dynamic_ncols=True)


def _run_local(sweep, table, resume, progress, echo, after_call) -> list[SettingOutcome]:
    settings = _grouped(sweep.settings)
    outcomes: list[SettingOutcome] = []
    bar = _bar(len(settings), progress, "sweep")
    say = echo if echo is not None else (bar.write if progress else (lambda s: None))
    durations: list[float] = []
    try:
        with Runner(table, device=sweep.device, meter=sweep.meter, weights=sweep.weights, protocol=sweep.protocol,
                    resume=resume, echo=say, after_call=after_call, allow_pickle=sweep.allow_pickle) as runner:
            for req in settings:
                bar.set_description(f"sweep: {req.model}")
                o = runner.run(req)
                outcomes.append(o)
                if o.status != "skipped":
                    durations.append(o.seconds)
                bar.set_postfix_str(_postfix(o, durations))
                bar.update(1)
    finally:
        bar.close()
    return outcomes


def _postfix(o: SettingOutcome, durations: Sequence[float]) -> str:
    mean = sum(durations) / len(durations) if durations else 0.0
    return f"last {o.status} {o.seconds:.1f}s, mean {mean:.1f}s/setting"


# -- submitit ------------------------------------------------------------------------------------

def shards_dir(table: str | os.PathLike) -> Path:
    p = Path(table)
    return p.with_name(p.name + ".shards")


def _job(chunk: list[SettingRequest], shard: str, table: str, device: str, meter: str, weights: str | None,
         protocol: Protocol, resume: bool, allow_pickle: bool = False) -> list[SettingOutcome]:
    """One array task: measure a chunk of settings into its shard table."""
    # the table's side folder of shards: a merge of the tasks done before may have removed it once empty
    Path(shard).parent.mkdir(exist_ok=True)
    with Runner(shard, device=device, meter=meter, weights=weights, protocol=protocol, resume=resume,
                echo=lambda s: print(s, flush=True), also_done_in=[table], allow_pickle=allow_pickle) as runner:
        return [runner.run(req) for req in chunk]


def _make_executor(executor, folder: Path, n_jobs: int, slurm: Mapping[str, Any] | None):
    import submitit

    if not isinstance(executor, str):
        return executor
    if executor == "debug":
        return submitit.DebugExecutor(folder=folder)
    if executor == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=int((slurm or {}).get("timeout_min", 60)))
        return ex
    if executor == "slurm":
        try:
            ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        except RuntimeError as exc:
            raise WorkloadError(
                f"--executor slurm: no SLURM here ({exc}); run the sweep on a login node of a SLURM cluster, "
                "or use --executor local"
            ) from exc
        params = {"name": "scaling-sweep", "gpus_per_node": 1, "tasks_per_node": 1, "nodes": 1,
                  "cpus_per_task": 8, "timeout_min": 240, "slurm_array_parallelism": n_jobs}
        params.update(dict(slurm or {}))
        ex.update_parameters(**params)
        return ex
    raise WorkloadError(f"`executor` {executor!r} is unknown: use one of {', '.join(EXECUTORS)}")


def _chunks(settings: Sequence[SettingRequest], per_job: int) -> list[list[SettingRequest]]:
    """Settings of one model stay together (one pipeline build), at most ``per_job`` each."""
    per_job = max(1, int(per_job))
    groups: dict[tuple, list[SettingRequest]] = {}
    for s in settings:
        groups.setdefault((s.model, s.precision), []).append(s)
    out = []
    for g in groups.values():
        out.extend(g[i:i + per_job] for i in range(0, len(g), per_job))
    return out


def _dead_job_errors() -> tuple[type[Exception], ...]:
    """What submitit raises for a job that raised (``FailedJobError``) or never finished
    (``UncompletedJobError``: killed, timed out, preempted)."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    return (FailedJobError, UncompletedJobError)


def _run_submitit(sweep, table, executor, resume, progress, echo, per_job, slurm, logs, poll_s):
    say = echo or (lambda s: print(s, file=sys.stderr))
    dead_job = _dead_job_errors()
    merged = merge_shards(table)  # leftovers of an earlier sweep whose merge never ran
    if merged:
        say(f"merged {merged} rows left in {shards_dir(table)} by an earlier sweep")
    chunks = _chunks(_grouped(sweep.settings), per_job)
    folder = Path(logs) if logs is not None else table.with_name(table.name + ".submitit")
    ex = _make_executor(executor, folder, len(chunks), slurm)
    sdir = shards_dir(table)
    sdir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    args = []
    for i, chunk in enumerate(chunks):
        shard = sdir / f"{stamp}-{i:04d}.parquet"
        args.append((chunk, str(shard), str(table), sweep.device, sweep.meter, sweep.weights, sweep.protocol, resume,
                     sweep.allow_pickle))
    cols = list(zip(*args))
    jobs = ex.map_array(_job, *cols)
    say(f"submitted {len(jobs)} job(s) for {len(sweep.settings)} settings ({type(ex).__name__}); "
        f"logs in {folder}")
    outcomes: list[SettingOutcome] = []
    bar = _bar(len(sweep.settings), progress, "sweep")
    pending = [(job, chunk, Path(a[1])) for job, chunk, a in zip(jobs, chunks, args)]
    durations: list[float] = []
    try:
        while pending:
            still = []
            for job, chunk, shard in pending:
                if not job.done():
                    still.append((job, chunk, shard))
                    continue
                try:
                    result = job.result()
                except dead_job as exc:  # a job that raised or never finished: its settings are failures
                    result = [_job_failure(req, exc, table) for req in chunk]
                for o in result:
                    outcomes.append(o)
                    if o.status != "skipped":
                        durations.append(o.seconds)
                    bar.set_postfix_str(_postfix(o, durations))
                    bar.update(1)
                merge_shards(table, [shard])
            pending = still
            if pending:
                time.sleep(poll_s)
    finally:
        bar.close()
    return outcomes


def _job_failure(req: SettingRequest, exc: BaseException, table: Path) -> SettingOutcome:
    msg = f"the job died: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''}"
    rec = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request": req.to_dict(),
           "kind": "job_failed", "message": msg}
    record_failure(table, rec)
    return SettingOutcome(request=req, status="failed", message=msg, failure_kind="job_failed")


def merge_shards(table: str | os.PathLike, shards: Sequence[Path] | None = None) -> int:
    """Append the rows of shard tables into ``table`` (rows already there are skipped),
    carry the shards' failures over, and delete merged shards. Returns rows appended.

    ``shards``: the shards of finished jobs; default every shard in ``<table>.shards/``
    (call that only when no job of an earlier sweep is still writing).
    """
    import pandas as pd

    from scaling.runs import append_runs, read_run_keys, read_runs, remove_runs

    table = Path(table)
    sdir = shards_dir(table)
    if shards is None:
        if not sdir.is_dir():
            return 0
        shards = sorted(sdir.glob("*.parquet"))
    added = 0
    for shard in shards:
        fails = failures_path(shard)
        if not shard.exists():
            if fails.is_file():  # a job that failed every setting writes failures only
                with open(failures_path(table), "a", encoding="utf-8") as fh:
                    fh.write(fails.read_text(encoding="utf-8"))
                fails.unlink()
            continue
        try:
            rows = read_runs(shard)
        except ScalingError:
            continue  # being written right now, or empty: next time
        if table.exists():
            have = read_run_keys(table)
            key = pd.MultiIndex.from_frame(have.astype({"repeat": "float64"}).fillna({"repeat": -1}))
            mine = pd.MultiIndex.from_frame(rows[["run_id", "phase", "repeat"]].astype({"repeat": "float64"})
                                            .fillna({"repeat": -1}))
            rows = rows[~mine.isin(key)]
        if len(rows):
            append_runs(rows, table)
            added += len(rows)
        if fails.is_file():
            with open(failures_path(table), "a", encoding="utf-8") as fh:
                fh.write(fails.read_text(encoding="utf-8"))
            fails.unlink()
        remove_runs(shard)  # its base file, appended parts and lock
    if sdir.is_dir() and not any(sdir.iterdir()):
        sdir.rmdir()
    return added
