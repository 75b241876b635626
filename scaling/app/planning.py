"""Plan across hardware: compare GPUs, precisions and step counts; price a workload.

A workload file (YAML)::

    jobs:                      # a mix of generation jobs
      - model: wan2.1
        res: 480p
        frames: 81
        count: 100000
      - model: flux-dev
        steps: 28
        count: 1000000
    gpus: [h100, a100, l40s]   # candidates (default: h100, a100)
    regions: [FR, US]          # ISO codes (optional; or `intensity: 300`)
    precision: bf16            # optional, for every job
    pue: 1.2                   # optional

Errors name the file and line: ``workload.yaml:7: job 2: `frames` 80 is not accepted ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.errors import ScalingError, WorkloadError
from scaling.hardware import GPUSpec, resolve_gpu
from scaling.app.estimate import Estimate, predict

JOB_KEYS = {"model", "res", "frames", "seconds", "steps", "guidance", "cfg", "batch", "batch_size",
            "outputs_per_prompt", "precision", "count", "name"}
TOP_KEYS = {"jobs", "gpus", "regions", "intensity", "precision", "pue", "law"}


@dataclass(frozen=True)
class CompareRow:
    label: str
    estimate: Estimate


def compare(model: str, *, gpus: list[str] | None = None, precisions: list[str] | None = None,
            step_counts: list[int] | None = None, law: Any = None, region: str | None = None,
            intensity: float | None = None, pue: float = 1.0, **setting_kwargs: Any) -> list[CompareRow]:
    """Predict ``model`` across GPUs x precisions x step counts; rows ranked by energy.

    ``setting_kwargs`` fix the rest of the setting (res, frames, ..., and ``precision`` /
    ``steps`` when they are not compared)."""
    from fits.law_file import load_law

    law_obj = load_law(law) if law is None or isinstance(law, (str, Path)) else law
    gpus = gpus or ["a100", "a6000", "l40s", "h100", "h200"]
    fixed_precision = setting_kwargs.pop("precision", None)
    fixed_steps = setting_kwargs.pop("steps", None)
    rows = []
    for g in gpus:
        for p in precisions or [fixed_precision]:
            for st in step_counts or [fixed_steps]:
                est = predict(model, gpu=g, law=law_obj, region=region, intensity=intensity, pue=pue,
                              precision=p, steps=st, **setting_kwargs)
                label = " ".join(x for x in (est.gpu, est.precision if precisions else "",
                                             f"{est.setting.steps} steps" if step_counts else "") if x)
                rows.append(CompareRow(label, est))
    return sorted(rows, key=lambda r: r.estimate.energy_j)


@dataclass
class PlanResult:
    candidates: list[dict[str, Any]]     # one per (gpu, region): totals
    jobs: list[dict[str, Any]]           # per job and candidate
    pareto: list[str] = field(default_factory=list)


def load_workload(path: str | Path) -> tuple[dict[str, Any], dict[int, int]]:
    """Parse a workload file; returns (data, job index -> line number)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise WorkloadError(f"{path}: no such workload file")
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise WorkloadError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise WorkloadError(f"{path}:1: a workload is a mapping with a `jobs` list")
    lines: dict[int, int] = {}
    top_lines: dict[str, int] = {}
    for key_node, value_node in root.value:
        top_lines[key_node.value] = key_node.start_mark.line + 1
        if key_node.value == "jobs" and isinstance(value_node, yaml.SequenceNode):
            for i, item in enumerate(value_node.value):
                lines[i] = item.start_mark.line + 1
    for key in data:
        if key not in TOP_KEYS:
            raise WorkloadError(f"{path}:{top_lines.get(key, 1)}: unknown key `{key}`; allowed: {', '.join(sorted(TOP_KEYS))}")
    jobs = data.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise WorkloadError(f"{path}:{top_lines.get('jobs', 1)}: `jobs` must be a non-empty list of jobs")
    for i, job in enumerate(jobs):
        where = f"{path}:{lines.get(i, 1)}: job {i + 1}"
        if not isinstance(job, dict):
            raise WorkloadError(f"{where}: a job is a mapping with at least `model` and `count`")
        unknown = set(job) - JOB_KEYS
        if unknown:
            raise WorkloadError(f"{where}: unknown key `{sorted(unknown)[0]}`; allowed: {', '.join(sorted(JOB_KEYS))}")
        if "model" not in job:
            raise WorkloadError(f"{where}: `model` is missing")
        count = job.get("count", 1)
        if isinstance(count, str):  # YAML 1.1 reads 1e6 as a string
            try:
                count = float(count.replace("_", ""))
            except ValueError:
                pass
        if isinstance(count, float) and count.is_integer():
            job["count"] = count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise WorkloadError(f"{where}: `count` {count!r} must be a positive whole number")
    data["_lines"] = {"top": top_lines, "jobs": lines, "path": str(path)}
    return data, lines


def plan(path: str | Path, law: Any = None) -> PlanResult:
    """Price every job of a workload on every candidate GPU and region."""
    from fits.law_file import load_law

    data, lines = load_workload(path)
    law_obj = load_law(law or data.get("law"))
    gpus = [resolve_gpu(g) for g in (data.get("gpus") or ["h100", "a100"])]
    regions = data.get("regions") or [None]
    intensity = data.get("intensity")
    pue = data.get("pue", 1.0)
    candidates, per_job = [], []
    for gpu in gpus:
        for region in regions:
            tot = {"gpu": gpu.key, "gpu_name": gpu.name, "region": region or "-", "kwh": 0.0, "kwh_lo": 0.0,
                   "kwh_hi": 0.0, "gpu_hours": 0.0, "co2e_kg": 0.0, "co2e_kg_lo": 0.0, "co2e_kg_hi": 0.0,
                   "gpu_measured": True}
            for i, job in enumerate(data["jobs"]):
                est = _predict_job(job, gpu, region, intensity, pue, law_obj, data, path, lines.get(i, 1), i)
                lo, hi = est.fleet_kwh_interval
                clo, chi = est.fleet_co2e_kg_interval
                tot["kwh"] += est.fleet_kwh
                tot["kwh_lo"] += lo
                tot["kwh_hi"] += hi
                tot["gpu_hours"] += est.fleet_gpu_hours
                tot["co2e_kg"] += est.fleet_co2e_kg
                tot["co2e_kg_lo"] += clo
                tot["co2e_kg_hi"] += chi
                tot["gpu_measured"] &= est.gpu_measured
                per_job.append({"job": job.get("name") or f"{i + 1}: {est.model_id}", "gpu": gpu.key,
                                "region": region or "-", "count": est.count, "kwh": est.fleet_kwh,
                                "gpu_hours": est.fleet_gpu_hours, "co2e_kg": est.fleet_co2e_kg})
            candidates.append(tot)
    candidates.sort(key=lambda c: c["kwh"])
    return PlanResult(candidates=candidates, jobs=per_job, pareto=pareto_labels(candidates))


def _predict_job(job, gpu: GPUSpec, region, intensity, pue, law_obj, data, path, line, i) -> Estimate:
    kw = {k: v for k, v in job.items() if k not in ("model", "count", "name", "batch")}
    if "batch" in job:
        kw["batch_size"] = job["batch"]
    kw.setdefault("precision", data.get("precision"))
    try:
        return predict(job["model"], gpu=gpu, law=law_obj, region=region, intensity=intensity, pue=pue,
                       count=job.get("count", 1), **kw)
    except WorkloadError:
        raise
    except ScalingError as exc:
        raise WorkloadError(f"{path}:{line}: job {i + 1}: {exc}") from None
    except TypeError as exc:
        raise WorkloadError(f"{path}:{line}: job {i + 1}: {exc}") from None


def pareto_labels(candidates: list[dict[str, Any]]) -> list[str]:
    """Candidates not beaten on both energy and GPU-hours (the energy vs time Pareto set)."""
    out = []
    for c in candidates:
        dominated = any(o is not c and o["kwh"] <= c["kwh"] and o["gpu_hours"] <= c["gpu_hours"]
                        and (o["kwh"] < c["kwh"] or o["gpu_hours"] < c["gpu_hours"]) for o in candidates)
        if not dominated:
            out.append(f"{c['gpu']}@{c['region']}")
    return out
