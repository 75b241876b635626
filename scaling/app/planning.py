"""Plan across hardware: compare GPUs, precisions and step counts; sweep a grid; price a workload.

``compare`` -> :class:`Comparison`, ``predict_grid`` -> :class:`PredictionGrid`, ``plan`` ->
:class:`PlanResult`: each keeps its dataclasses and has ``.to_frame()`` (pandas; the columns,
with their units, are documented in :data:`scaling.app.frames.COLUMNS`). Every row carries the
memory verdict of profilers/flops/memory.py, by the rule :func:`scaling.predict` applies
(``fits_memory``: every component resident). Options that do not fit, or fit only with model CPU
offload (whose transfers the law does not model), are kept, unranked, after those that fit.
``count`` in a workload counts outputs (a batch of 4 is 4 outputs).

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
    regions: [FR, US]          # ISO codes (optional; or `intensity: 300`; not both)
    precision: bf16            # optional, for every job
    pue: 1.2                   # optional
    gpu_counts: [1, 2, 4, 8]   # optional: GPUs per call to choose from (default [1])
    max_latency_s: 120         # optional (also per job): the latency limit of one call, s

With ``gpu_counts`` or ``max_latency_s``, each job on each GPU type runs the GPU count and plan
(:func:`parallel_plans`) with the least energy per output whose call time is within the limit;
when none is, the fastest, marked ``meets_latency=False`` (and ranked after the options that meet it).

Errors name the file and line: ``workload.yaml:7: job 2: `frames` 80 is not accepted ...``; an option of
the command line is named as such (``--regions: `region` 'XX' ...``). Options that conflict (a region and an
intensity, a fixed precision and a list of them) and an option named twice once resolved (``h100`` and
``h100-sxm``) are refused before any prediction; when no option fits, not even with CPU offload,
``nothing_fits()`` gives the one line the command line refuses with.

Length: over 500 lines on purpose: compare, the grid and plan share one ranking, one memory verdict and one
set of option checks (:func:`check_named_once`, :func:`_checked_regions`), which would drift apart in separate modules.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from profilers.flops.memory import GiB, MemoryProfile, memory_profile
from scaling.errors import InvalidSettingError, ScalingError, WorkloadError
from scaling.hardware import GPUSpec, resolve_gpu
from scaling.registry import ModelSpec, resolve_model
from profilers.flops.comm import attention_shapes
from scaling.app.estimate import MEMORY_RULE, RANKED_FITS, Estimate, predict
from scaling.carbon import check_carbon_source, intensity_for
from scaling.precision import normalize_precision
from scaling.parallel import ParallelPlan, check_plan, default_plan
from scaling.settings import GenerationSetting
from scaling.app.frames import estimate_record, memory_verdict, records_frame
from scaling.app.workload import JOB_KEYS, TOP_KEYS, load_workload  # noqa: F401 (the file's schema)

DEFAULT_GPUS = ["a100", "a6000", "l40s", "h100", "h200"]


def _memory_for(est: Estimate, spec: ModelSpec | None = None) -> MemoryProfile:
    return memory_profile(est.setting, spec=spec, gpu=est.gpu)


def _load(law: Any):
    from fits.law_file import load_law

    return load_law(law) if law is None or isinstance(law, (str, Path)) else law


# -- compare ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CompareRow:
    label: str
    estimate: Estimate
    memory: MemoryProfile | None = None
    rank: int | None = None             # None: does not fit resident in the GPU's memory (not ranked)
    region: str | None = None

    @property
    def fits_memory(self) -> bool:
        """Every component fits resident (the rule of predict); False for CPU offload or no fit."""
        return (memory_verdict(self.memory) if self.memory is not None else self.estimate.memory_fit) in RANKED_FITS

    @property
    def energy_per_output_j(self) -> float:
        return self.estimate.energy_j / self.estimate.setting.n_outputs

    def to_record(self) -> dict[str, Any]:
        return {"label": self.label, "rank": self.rank, **estimate_record(self.estimate, self.memory, self.region)}


@dataclass(frozen=True)
class Comparison(Sequence):
    """Rows of :func:`compare`: those that fit in memory (every component resident) first, ranked by
    energy per output, then those that need CPU offload or do not fit (``rank`` None). Iterates and
    indexes like the list it used to be."""

    rows: tuple[CompareRow, ...] = ()

    def __getitem__(self, i):
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def fitting(self) -> list[CompareRow]:
        return [r for r in self.rows if r.fits_memory]

    @property
    def not_fitting(self) -> list[CompareRow]:
        return [r for r in self.rows if not r.fits_memory]

    @property
    def best(self) -> CompareRow | None:
        """The first-ranked option (least energy per output among those that fit), or None."""
        return next(iter(self.fitting), None)

    def to_frame(self) -> pd.DataFrame:
        """One row per option; columns in :data:`scaling.app.frames.COLUMNS`."""
        return records_frame([r.to_record() for r in self.rows])

    def nothing_fits(self) -> str | None:
        """One line when no option fits its GPU's memory, not even with model CPU offload (the model,
        its precisions, the GPUs and the memory need, as predict refuses it); None when one fits, resident
        or offloaded (the others are then listed unranked)."""
        verdicts = [memory_verdict(r.memory) if r.memory is not None else r.estimate.memory_fit for r in self.rows]
        if not self.rows or any(v != "does not fit" for v in verdicts):
            return None
        needs: dict[str, list[float]] = {}
        has: dict[str, float] = {}
        for r in self.rows:
            e = r.estimate
            need = needs.setdefault(e.precision, [0.0, 0.0])
            need[0] = max(need[0], e.memory_resident_gib or 0.0)
            need[1] = max(need[1], e.memory_offload_gib or 0.0)
            has[e.gpu] = e.gpu_memory_gib or 0.0
        need = "; ".join(f"{r:.1f} GiB in {p} ({o:.1f} GiB with model CPU offload)" for p, (r, o) in needs.items())
        first = self.rows[0].estimate
        return _no_fit_line(f"`model` {first.model_id} at {_batch(first.setting)} needs {need}", has)


def _batch(setting: GenerationSetting) -> str:
    return f"batch {setting.batch_size}" + (f" x {setting.outputs_per_prompt} outputs per prompt"
                                             if setting.outputs_per_prompt > 1 else "")


def _no_fit_line(need: str, has: dict[str, float]) -> str:
    """``no option fits ...: NEED; GPUs given: t4 (16 GiB) (rule: ...)``: what compare and plan refuse."""
    gpus = ", ".join(f"{g} ({m:.0f} GiB)" for g, m in has.items())
    return (f"no option fits its GPU's memory, not even with model CPU offload: {need}; GPUs given: {gpus} "
            f"(rule: {MEMORY_RULE}; a larger GPU, a lower precision or a smaller batch)")


def check_named_once(what: str, option: str, values: Sequence[Any] | None, key: Any = None) -> None:
    """Refuse a list of options that names one option twice, after resolving (``h100`` and ``h100-sxm``
    are one GPU; ``bf16`` and ``BF16`` one precision): two identical rows are not a comparison."""
    seen: dict[Any, Any] = {}
    for v in values or ():
        k = key(v) if key is not None else v
        if k in seen:
            same = (f"{what} {_shown(v)} is named twice" if str(seen[k]) == str(v)
                    else f"{_shown(seen[k])} and {_shown(v)} are one {what}, {k}")
            raise InvalidSettingError(f"{option}: {same} (rule: name each option once)")
        seen[k] = v


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _gpu_key(g: Any) -> str:
    return g.key if isinstance(g, GPUSpec) else resolve_gpu(g).key


def rank_rows(rows: Iterable[CompareRow]) -> Comparison:
    """Fitting rows first, by energy per output (ranks 1..k); the others after, unranked."""
    ordered = sorted(rows, key=lambda r: (not r.fits_memory, r.energy_per_output_j))
    out, k = [], 0
    for r in ordered:
        k += r.fits_memory
        out.append(CompareRow(r.label, r.estimate, r.memory, k if r.fits_memory else None, r.region))
    return Comparison(tuple(out))


def parallel_plans(spec: ModelSpec, setting: GenerationSetting, n_gpus: int, *, every: bool = True
                   ) -> list[tuple[ParallelPlan, bool]]:
    """(plan, is the default) for ``n_gpus`` GPUs: the default plan first, then (``every``) the other
    Ulysses x ring x CFG splits that pass :func:`scaling.parallel.check_plan`; [] when none passes."""
    shapes = attention_shapes(spec, setting)
    rules = {"heads": shapes.heads, "seq_len": shapes.split_len, "pads": shapes.pads}
    try:
        first = default_plan(n_gpus, cfg=setting.cfg, **rules)
    except InvalidSettingError:
        return []
    out = [(first, True)]
    if every:
        for c in ((1, 2) if setting.cfg else (1,)):
            if n_gpus % c:
                continue
            sp = n_gpus // c
            for u in sorted((d for d in range(1, sp + 1) if sp % d == 0), reverse=True):
                plan = ParallelPlan(ulysses=u, ring=sp // u, cfg=c)
                if plan == first:
                    continue
                try:
                    out.append((check_plan(plan, cfg=setting.cfg, n_gpus=n_gpus, **rules), False))
                except InvalidSettingError:
                    continue
    return out


def compare(model: str | ModelSpec, *, gpus: list[str] | None = None, precisions: list[str] | None = None,
            step_counts: list[int] | None = None, law: Any = None, region: str | None = None,
            intensity: float | None = None, pue: float = 1.0, gpu_counts: list[int] | None = None,
            every_plan: bool = True, **setting_kwargs: Any) -> Comparison:
    """Predict ``model`` across GPUs x precisions x step counts.

    Returns a :class:`Comparison`: the options that fit in the GPU's memory with every component
    resident first, ranked by energy per output, then those that need model CPU offload (not
    modelled) or do not fit (kept, unranked; their ``memory_fit`` says which). ``setting_kwargs``
    fix the rest of the setting (res, frames, ..., and ``precision`` / ``steps`` when they are not
    compared). ``gpus`` defaults to :data:`DEFAULT_GPUS` (``a100`` is the measured 40GB board).
    ``gpu_counts`` (e.g. ``[1, 2, 4, 8]``) adds, per GPU count above 1, the default plan and (``every_plan``)
    the other valid splits, predicted by the multi-GPU law; energy then counts every GPU of the call.

    Refused before any prediction (:class:`~scaling.errors.InvalidSettingError`): ``region`` with
    ``intensity``, a ``precision`` / ``steps`` with ``precisions`` / ``step_counts``, and an option named
    twice once resolved (``h100`` and ``h100-sxm``). :meth:`Comparison.nothing_fits` says when no
    option fits, not even with CPU offload (the command line then refuses, as predict does)."""
    check_carbon_source(region, intensity)
    fixed_precision = setting_kwargs.pop("precision", None)
    fixed_steps = setting_kwargs.pop("steps", None)
    if precisions and fixed_precision is not None:
        raise InvalidSettingError(f"`precision` {fixed_precision!r} and `precisions` {list(precisions)} conflict: "
                                  "one fixes the precision, the other compares precisions (rule: give one)")
    if step_counts and fixed_steps is not None:
        raise InvalidSettingError(f"`steps` {fixed_steps!r} and `step_counts` {list(step_counts)} conflict: "
                                  "one fixes the steps, the other compares step counts (rule: give one)")
    gpus = gpus or DEFAULT_GPUS
    check_named_once("GPU", "--gpu", gpus, _gpu_key)
    check_named_once("precision", "--precisions", precisions, normalize_precision)
    check_named_once("step count", "--steps-list", step_counts)
    check_named_once("GPU count", "--gpus", gpu_counts)
    law_obj = _load(law)
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    rows = []
    for g in gpus:
        for p in precisions or [fixed_precision]:
            for st in step_counts or [fixed_steps]:
                est = predict(spec, gpu=g, law=law_obj, region=region, intensity=intensity, pue=pue,
                              precision=p, steps=st, check_memory=False, **setting_kwargs)
                label = " ".join(x for x in (est.gpu, est.precision if precisions else "",
                                             f"{est.setting.steps} steps" if step_counts else "") if x)
                memory = _memory_for(est, spec)
                counts = gpu_counts or [1]
                if 1 in counts:
                    rows.append(CompareRow(label + (" x1" if gpu_counts else ""), est, memory, region=region))
                for n in (c for c in counts if c > 1):
                    for plan, is_default in parallel_plans(spec, est.setting, n, every=every_plan):
                        multi = predict(spec, gpu=g, law=law_obj, region=region, intensity=intensity, pue=pue,
                                        precision=p, steps=st, check_memory=False, gpus=n, parallel=plan,
                                        **setting_kwargs)
                        rows.append(CompareRow(f"{label} x{n} u{plan.ulysses}r{plan.ring}c{plan.cfg}" + ("*" if is_default else ""),
                                               multi, memory, region=region))
    return rank_rows(rows)


# -- a grid of predictions -------------------------------------------------------------------------

GRID_AXES = ("res", "height", "width", "frames", "seconds", "steps", "guidance", "cfg", "batch_size",
             "outputs_per_prompt", "precision")
AXIS_MODALITIES = {"res": ("image", "video"), "height": ("image", "video"), "width": ("image", "video"),
                   "frames": ("video",), "seconds": ("audio",)}
"""Axes that apply to some modalities only; a grid leaves them out for the other models."""


@dataclass(frozen=True)
class GridRow:
    estimate: Estimate
    memory: MemoryProfile | None = None
    region: str | None = None

    @property
    def fits_memory(self) -> bool:
        return (memory_verdict(self.memory) if self.memory is not None else self.estimate.memory_fit) in RANKED_FITS

    def to_record(self) -> dict[str, Any]:
        return estimate_record(self.estimate, self.memory, self.region)


@dataclass(frozen=True)
class PredictionGrid(Sequence):
    """Rows of :func:`predict_grid`, in grid order (models, then GPUs, regions and the axes)."""

    rows: tuple[GridRow, ...] = ()

    def __getitem__(self, i):
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def estimates(self) -> list[Estimate]:
        return [r.estimate for r in self.rows]

    def to_frame(self) -> pd.DataFrame:
        """One row per prediction; columns in :data:`scaling.app.frames.COLUMNS`."""
        return records_frame([r.to_record() for r in self.rows])


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple, range)) else [value]


def predict_grid(models: str | ModelSpec | Iterable[str | ModelSpec], *, gpus: Iterable[str] | str | None = None,
                 regions: Iterable[str | None] | str | None = None, law: Any = None, intensity: float | None = None,
                 pue: float = 1.0, count: int = 1, attention: str | None = None, **axes: Any) -> PredictionGrid:
    """Predict every combination of ``models`` x ``gpus`` x ``regions`` x the setting ``axes``.

    Each axis (``res``, ``frames``, ``seconds``, ``steps``, ``precision``, ``batch_size``, ...) is
    a value or a list of values; ``None`` in a list means the model's default. ``res``/``height``/
    ``width`` apply to image and video models, ``frames`` to video and ``seconds`` to audio: a grid
    over models of several modalities leaves an axis out for the models it does not apply to.
    A value a model does not accept raises its :class:`scaling.errors.InvalidSettingError`.

    ``scaling.predict_grid(["sdxl", "flux-dev"], gpus=["a100", "h100"], steps=[20, 28, 50]).to_frame()``
    """
    unknown = sorted(set(axes) - set(GRID_AXES))
    if unknown:
        raise InvalidSettingError(f"grid axis `{unknown[0]}` is unknown: use {', '.join(GRID_AXES)}")
    law_obj = _load(law)
    specs = [m if isinstance(m, ModelSpec) else resolve_model(m)
             for m in ([models] if isinstance(models, (str, ModelSpec)) else list(models))]
    gpu_list = _as_list(gpus) if gpus is not None else DEFAULT_GPUS
    region_list = _as_list(regions) if regions is not None else [None]
    rows = []
    for spec in specs:
        names = [a for a in axes if spec.modality in AXIS_MODALITIES.get(a, (spec.modality,))]
        for g in gpu_list:
            gpu = resolve_gpu(g)
            for region in region_list:
                for values in itertools.product(*(_as_list(axes[a]) for a in names)):
                    kw = {a: v for a, v in zip(names, values) if v is not None}
                    est = predict(spec, gpu=gpu, law=law_obj, region=region, intensity=intensity, pue=pue,
                                  count=count, attention=attention, check_memory=False, **kw)
                    rows.append(GridRow(est, _memory_for(est, spec), region))
    return PredictionGrid(tuple(rows))


# -- plan ------------------------------------------------------------------------------------------

@dataclass
class PlanResult:
    candidates: list[dict[str, Any]]     # one per option (gpu [, precision, steps scale], region): totals
    jobs: list[dict[str, Any]]           # per job and option
    pareto: list[str] = field(default_factory=list)
    interval: float = 0.9
    notes: list[str] = field(default_factory=list)  # the workload's values read in another form than written

    @property
    def fitting(self) -> list[dict[str, Any]]:
        return [c for c in self.candidates if c["fits_memory"]]

    @property
    def not_fitting(self) -> list[dict[str, Any]]:
        return [c for c in self.candidates if not c["fits_memory"]]

    def to_frame(self) -> pd.DataFrame:
        """One row per option (the workload's totals), fitting options first, ranked by kWh; the
        lo/hi columns sum the jobs' bounds (wider than a joint interval: errors taken as fully
        correlated)."""
        df = records_frame([dict(c, pareto=c["option"] in self.pareto) for c in self.candidates])
        df["jobs_not_fitting"] = df["jobs_not_fitting"].map("; ".join)
        df["jobs_needing_offload"] = df["jobs_needing_offload"].map("; ".join)
        df["jobs_over_latency"] = df["jobs_over_latency"].map("; ".join)
        return df

    def jobs_frame(self) -> pd.DataFrame:
        """One row per job and option; columns in :data:`scaling.app.frames.COLUMNS`."""
        return records_frame(self.jobs)

    def nothing_fits(self) -> str | None:
        """One line when no option fits: every option has a job that does not fit its GPU's memory, not
        even with model CPU offload (the jobs, models, precisions, GPUs and memory needs); None when one
        option fits, resident or offloaded (the others are then listed unranked)."""
        if not self.candidates or any(c["fits_memory"] or set(c["jobs_not_fitting"]) <= set(c["jobs_needing_offload"])
                                      for c in self.candidates):
            return None
        needs: dict[str, list[float]] = {}
        for j in self.jobs:
            if j["memory_fit"] != "does not fit":
                continue
            name = f"job {j['job']}" + ("" if j["model"] in j["job"] else f" ({j['model']})")
            need = needs.setdefault(f"{name} in {j['precision']}", [0.0, 0.0])
            need[0] = max(need[0], j["memory_resident_gib"] or 0.0)
            need[1] = max(need[1], j["memory_need_gib"] or 0.0)
        has = {c["gpu"]: c["gpu_memory_gib"] or 0.0 for c in self.candidates}
        return _no_fit_line("; ".join(f"{k} needs {r:.1f} GiB ({o:.1f} GiB with model CPU offload)"
                                      for k, (r, o) in needs.items()), has)


def plan(path: str | Path, law: Any = None, *, gpus: list[str] | None = None, regions: list[str] | None = None,
         precisions: list[str] | None = None, step_scales: list[float] | None = None,
         pue: float | None = None) -> PlanResult:
    """Price every job of a workload on every option: GPU x precision x steps scale x region.

    ``gpus``, ``regions`` and ``pue`` replace the file's (``regions`` the file's ``intensity`` too, with a
    note; the file may not give both ``regions`` and ``intensity``); each GPU, region, precision and steps
    scale is named once (``h100`` and ``h100-sxm`` are one GPU: refused); ``precisions`` sets every job's
    precision (default: each job's, or the file's); ``step_scales`` multiplies each job's steps
    (its own, or the model's default; rounded, at least 1). A job's ``count`` is a number of
    outputs. An option where a job does not fit in the GPU's memory with every component resident
    (it needs model CPU offload, not modelled, or does not fit at all) is kept, marked
    ``fits_memory=False`` and ranked after those that fit; the Pareto set is taken over the options
    that fit, on (kWh, GPU-hours, CO2e) (:data:`PARETO_OBJECTIVES`). ``jobs`` holds the per-job
    breakdown of every option (per call, per output and for the job's count); ``notes`` the file's
    values read in another form than written (``count: 1e6`` read as 1,000,000)."""
    data, lines = load_workload(path)
    top = data["_lines"]["top"]
    try:
        law_obj = _load(law or data.get("law"))
    except ScalingError as exc:
        if law is not None:
            raise
        raise WorkloadError(f"{path}:{top.get('law', 1)}: `law`: {exc}") from None
    notes = list(data.get("_notes", []))
    gpu_list = gpus or data.get("gpus") or ["h100", "a100"]
    try:
        gpu_specs = [resolve_gpu(g) for g in gpu_list]
    except ScalingError as exc:
        if gpus:
            raise
        raise WorkloadError(f"{path}:{top.get('gpus', 1)}: `gpus`: {exc}") from None
    try:
        check_named_once("GPU", "--gpu" if gpus else "`gpus`", gpu_list, _gpu_key)
    except ScalingError as exc:
        if gpus:
            raise
        raise WorkloadError(f"{path}:{top.get('gpus', 1)}: {exc}") from None
    intensity = data.get("intensity")
    if regions:  # the command line's: named as an option, not as a job of the file
        regions = _checked_regions(regions, "--regions")
        if intensity is not None:
            notes.append(f"--regions {','.join(regions)} replaces the file's `intensity: {intensity:g}` "
                         f"({path}:{top.get('intensity', 1)}): each region is priced at its grid's carbon intensity")
            intensity = None
    elif data.get("regions"):
        try:
            regions = _checked_regions(data["regions"], "`regions`")
        except ScalingError as exc:
            raise WorkloadError(f"{path}:{top.get('regions', 1)}: {exc}") from None
    else:
        regions = [None]
    if precisions:
        precisions = _checked_precisions(precisions)
    pue = data.get("pue", 1.0) if pue is None else pue
    scales = list(step_scales or [1.0])
    check_named_once("steps scale", "--steps-scale", step_scales)
    counts = sorted(set(data.get("gpu_counts") or ([1, 2, 4, 8] if "max_latency_s" in data
                                                   or any("max_latency_s" in j for j in data["jobs"]) else [1])))
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not s > 0:
            raise WorkloadError(f"steps scale {s!r}: it must be a positive number (1 = the job's own steps)")
    candidates, per_job = [], []
    for gpu, precision, scale, region in itertools.product(gpu_specs, precisions or [None], scales, regions):
        option = _option_label(gpu.key, precision, scale if step_scales else None, region)
        tot = {"option": option, "gpu": gpu.key, "gpu_name": gpu.name, "precision": precision or "as in the file",
               "steps_scale": float(scale), "region": region or "-", "kwh": 0.0, "kwh_lo": 0.0, "kwh_hi": 0.0,
               "gpu_hours": 0.0, "gpu_hours_lo": 0.0, "gpu_hours_hi": 0.0, "co2e_kg": 0.0, "co2e_kg_lo": 0.0,
               "co2e_kg_hi": 0.0, "outputs": 0, "gpu_measured": True, "extrapolated": False, "fits_memory": True,
               "gpu_memory_gib": gpu.memory_byte / GiB, "memory_need_gib": 0.0, "memory_resident_gib": 0.0,
               "jobs_not_fitting": [], "jobs_needing_offload": [], "meets_latency": True, "jobs_over_latency": []}
        for i, job in enumerate(data["jobs"]):
            limit = job.get("max_latency_s", data.get("max_latency_s"))
            est, meets = _fastest_within(
                lambda **kw: _predict_job(job, gpu, region, intensity, pue, law_obj, data, path, lines.get(i, 1), i,
                                          precision=precision, steps_scale=scale, **kw), counts, limit,
                spec=job["model"] if isinstance(job["model"], ModelSpec) else None)
            rec = estimate_record(est, _memory_for(est, job["model"] if isinstance(job["model"], ModelSpec) else None), region or "-")
            rec.update(max_latency_s=limit, meets_latency=meets)
            name = job.get("name") or f"{i + 1}: {est.model_id}"
            if not meets:
                tot["meets_latency"] = False
                tot["jobs_over_latency"].append(name)
            for k in ("kwh", "kwh_lo", "kwh_hi", "gpu_hours", "gpu_hours_lo", "gpu_hours_hi", "co2e_kg",
                      "co2e_kg_lo", "co2e_kg_hi"):
                tot[k] += rec[k]
            tot["gpu_measured"] &= est.gpu_measured
            tot["extrapolated"] |= rec["extrapolated"]
            tot["outputs"] += rec["outputs"]
            tot["memory_need_gib"] = max(tot["memory_need_gib"], rec["memory_need_gib"] or 0.0)
            tot["memory_resident_gib"] = max(tot["memory_resident_gib"], rec["memory_resident_gib"] or 0.0)
            if not rec["fits_memory"]:
                tot["fits_memory"] = False
                tot["jobs_not_fitting"].append(name)
                if rec["memory_fit"] == "with model CPU offload":
                    tot["jobs_needing_offload"].append(name)
            per_job.append({"job": name, "option": option, "steps_scale": float(scale), **rec})
        candidates.append(tot)
    candidates.sort(key=lambda c: (not c["fits_memory"], not c["meets_latency"], c["kwh"]))
    k = 0
    for c in candidates:
        k += c["fits_memory"]
        c["rank"] = k if c["fits_memory"] else None
    interval = per_job[0]["interval"] if per_job else 0.9
    front = pareto_labels([c for c in candidates if c["fits_memory"]])
    for c in candidates:
        c["pareto"] = c["option"] in front
    return PlanResult(candidates=candidates, jobs=per_job, pareto=front, interval=interval, notes=notes)


def _checked_regions(regions: Sequence[str], option: str) -> list[str]:
    """Each region known to CodeCarbon's data, and named once (``FR`` and ``FRA`` are one region);
    a refusal names ``option`` (``--regions``, or the file's ``regions``)."""
    codes = []
    for r in regions:
        try:
            codes.append(intensity_for(r).region)
        except ScalingError as exc:
            raise InvalidSettingError(f"{option}: {exc}") from None
    check_named_once("region", option, list(regions), dict(zip(regions, codes)).get)
    return list(regions)


def _checked_precisions(precisions: Sequence[str]) -> list[str]:
    """``--precisions``: each a known precision (normalised: `` FP8 `` is fp8), each once."""
    out = []
    for p in precisions:
        try:
            out.append(normalize_precision(p))
        except ScalingError as exc:
            raise InvalidSettingError(f"--precisions: {exc}") from None
    check_named_once("precision", "--precisions", list(precisions), normalize_precision)
    return out


def _option_label(gpu: str, precision: str | None, scale: float | None, region: str | None) -> str:
    parts = [gpu] + ([precision] if precision else []) + ([f"x{scale:g} steps"] if scale is not None else [])
    return " ".join(parts) + f"@{region or '-'}"


def _fastest_within(predict_job, counts: list[int], limit: float | None, *, spec: ModelSpec | None = None
                    ) -> tuple[Estimate, bool]:
    """(estimate, meets the limit): the GPU count and plan of ``counts`` with the least energy per output
    whose call time is at most ``limit`` s (any, when None); the fastest when none is. Options that fit in
    memory are preferred."""
    one = predict_job()
    if counts == [1] and limit is None:
        return one, True
    spec = spec or resolve_model(one.setting.model)
    options = [one] if 1 in counts else []
    for n in (c for c in counts if c > 1):
        options += [predict_job(gpus=n, parallel=p) for p, _ in parallel_plans(spec, one.setting, n)]
    options = [e for e in options if e.fits_memory] or options or [one]
    within = [e for e in options if limit is None or e.time_s <= limit]
    if within:
        return min(within, key=lambda e: e.energy_per_output_j), True
    return min(options, key=lambda e: e.time_s), False


def _predict_job(job, gpu: GPUSpec, region, intensity, pue, law_obj, data, path, line, i, *,
                 precision: str | None = None, steps_scale: float = 1.0, gpus: int | None = None,
                 parallel: ParallelPlan | None = None) -> Estimate:
    kw = {k: v for k, v in job.items() if k not in ("model", "count", "name", "batch", "max_latency_s")}
    if "batch" in job:
        kw["batch_size"] = job["batch"]
    kw.setdefault("precision", data.get("precision"))
    if precision:
        kw["precision"] = precision
    try:
        if steps_scale != 1.0:
            spec = job["model"] if isinstance(job["model"], ModelSpec) else resolve_model(job["model"])
            base = job.get("steps") or spec.defaults["steps"]
            kw["steps"] = max(1, round(base * steps_scale))
        return predict(job["model"], gpu=gpu, law=law_obj, region=region, intensity=intensity, pue=pue,
                       count=job.get("count", 1), check_memory=False, gpus=gpus, parallel=parallel, **kw)
    except WorkloadError:
        raise
    except ScalingError as exc:
        raise WorkloadError(f"{path}:{line}: job {i + 1}: {exc}") from None
    except TypeError as exc:
        raise WorkloadError(f"{path}:{line}: job {i + 1}: {exc}") from None


PARETO_OBJECTIVES = ("kwh", "gpu_hours", "co2e_kg")
"""What the Pareto set of a plan trades off: facility energy, GPU-hours and CO2e (all minimised)."""


def pareto_labels(candidates: list[dict[str, Any]], objectives: Sequence[str] = PARETO_OBJECTIVES) -> list[str]:
    """Candidates that no other candidate dominates on ``objectives`` (kWh, GPU-hours, CO2e kg):
    dominated = another is at least as good on every objective and better on one."""
    out = []
    for c in candidates:
        dominated = any(o is not c and all(o[k] <= c[k] for k in objectives)
                        and any(o[k] < c[k] for k in objectives) for o in candidates)
        if not dominated:
            out.append(c.get("option") or f"{c['gpu']}@{c['region']}")
    return out
