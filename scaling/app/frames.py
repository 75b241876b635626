"""Estimates as table rows: the columns of the planning DataFrames, with their units and flags.

``estimate_record(estimate, memory)`` is one row; :data:`COLUMNS` documents every column of
``Comparison.to_frame()``, ``PredictionGrid.to_frame()``, ``PlanResult.to_frame()`` and
``PlanResult.jobs_frame()`` (scaling/app/planning.py).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from profilers.flops.memory import GiB, MemoryProfile
from scaling.app.estimate import Estimate
from scaling.errors import InvalidSettingError

EXTRAPOLATION_NOTE = "outside the law's data"
"""The phrase the law's notes use when the precision or the total FLOP lies outside its data."""

COLUMNS: dict[str, str] = {
    # what was predicted
    "label": "compare: the option (GPU, and precision / steps when they are compared)",
    "rank": "1 = least energy (compare: per output; plan: kWh) among the options that fit in memory; empty for "
            "those that do not",
    "option": "plan: GPU [precision] [steps scale] @ region",
    "job": "plan: the job's name (or its number and model)",
    "model": "model id", "model_key": "registry key", "modality": "image | video | audio",
    "gpu": "GPU registry key", "gpu_name": "GPU name",
    "precision": "weights / compute precision (plan: `as in the file` when not compared)",
    "res": "WxH, width first (image, video)", "width": "px (image, video)", "height": "px (image, video)",
    "frames": "video frames",
    "seconds": "audio seconds requested", "steps": "denoising steps", "cfg": "classifier-free guidance on",
    "guidance": "guidance scale", "batch_size": "prompts per call", "outputs_per_prompt": "outputs per prompt",
    "n_outputs": "outputs per call = batch_size x outputs_per_prompt",
    "steps_scale": "plan: each job's steps multiplied by this (1 = as in the workload)",
    # per call and per output
    "flop_per_call": "FLOP of one call (all outputs of the batch)", "flop_per_output": "flop_per_call / n_outputs",
    "energy_per_call_j": "GPU energy of one call, J (central estimate)",
    "energy_per_call_lo_j": "low bound of the interval (see `interval`), J",
    "energy_per_call_hi_j": "high bound of the interval, J",
    "energy_per_output_j": "energy_per_call_j / n_outputs", "energy_per_output_lo_j": "low bound, J",
    "energy_per_output_hi_j": "high bound, J",
    "energy_per_output_wh": "energy_per_output_j / 3600", "energy_per_output_lo_wh": "low bound, Wh",
    "energy_per_output_hi_wh": "high bound, Wh",
    "time_s": "wall time of one call (the latency of a request), s", "time_lo_s": "low bound, s",
    "time_hi_s": "high bound, s", "time_per_output_s": "time_s / n_outputs",
    "co2e_per_call_g": "CO2e of one call (energy x PUE x intensity), g",
    "co2e_per_output_g": "co2e_per_call_g / n_outputs", "co2e_per_output_lo_g": "low bound, g",
    "co2e_per_output_hi_g": "high bound, g",
    # fleet (count calls)
    "count": "calls (a call makes n_outputs outputs)", "outputs": "count x n_outputs",
    "kwh": "facility energy of `count` calls (GPU energy x PUE), kWh",
    "kwh_lo": "low bound, kWh (a plan option: the sum of its jobs' bounds)",
    "kwh_hi": "high bound, kWh", "gpu_hours": "GPU-hours of `count` calls", "gpu_hours_lo": "low bound",
    "gpu_hours_hi": "high bound", "co2e_kg": "CO2e of `count` calls, kg", "co2e_kg_lo": "low bound, kg",
    "co2e_kg_hi": "high bound, kg",
    "region": "ISO code of the grid (empty: `intensity_g_per_kwh` as given or assumed)",
    "intensity_g_per_kwh": "grid carbon intensity, g CO2e/kWh", "intensity_source": "where the intensity comes from",
    "pue": "power usage effectiveness of the facility",
    # memory
    "gpu_memory_gib": "memory of the GPU, GiB",
    "memory_need_gib": "the least memory the pipeline needs: the largest component's weights + its activation "
                       "estimate + 1 GiB runtime overhead (model CPU offload), GiB",
    "memory_resident_gib": "memory with every component resident: all weights + the largest activation + 1 GiB, GiB",
    "memory_fit": "all resident | with model CPU offload | does not fit | unknown (no parameter counts)",
    "fits_memory": "False when the memory model (profilers/flops/memory.py) says the pipeline does not fit this GPU "
                   "even with model CPU offload; True otherwise. The energy of a pipeline that fits only with "
                   "offload does not include the offload transfers",
    "jobs_not_fitting": "plan: the jobs that do not fit this GPU",
    "pareto": "plan: not beaten on both kWh and GPU-hours by another option that fits",
    # trust
    "gpu_measured": "the law saw measurements on this GPU",
    "extrapolated": "True when the GPU was never measured, or the law's notes say the precision's compute type or "
                    "the total FLOP lies outside its data. It does not cover model families, resolutions, frame "
                    "counts, step counts or batch sizes that lie inside the FLOP range but were never measured",
    "interval": "coverage of the lo/hi bounds (e.g. 0.9)", "law": "the law that predicted",
    "notes": "the estimate's notes, joined with '; '",
}
"""Every column of the frames below, with its unit."""


# -- one estimate as a row -------------------------------------------------------------------------

def is_extrapolated(est: Estimate) -> bool:
    """The GPU was never measured, or the law says the precision or the FLOP lies outside its data."""
    return (not est.gpu_measured) or any(EXTRAPOLATION_NOTE in n for n in est.notes)


def memory_verdict(mem: MemoryProfile | None) -> str:
    """'all resident' | 'with model CPU offload' | 'does not fit' | 'unknown'."""
    if mem is None or mem.gpu_memory_byte is None:
        return "unknown"
    verdict = mem.pipeline_fit()
    if verdict != "does not fit" and any(c.weights_byte is None for c in mem.components):
        return "unknown"  # some weights not counted: a fit would be a lower bound
    return verdict or "unknown"


def memory_need_gib(mem: MemoryProfile | None) -> float | None:
    """The least memory the pipeline needs (one component at a time + the runtime overhead), GiB."""
    return None if mem is None else (mem.offload_peak_byte + mem.overhead_byte) / GiB


def estimate_record(est: Estimate, memory: MemoryProfile | None = None, region: str | None = None) -> dict[str, Any]:
    """One row of a frame: the figures per call and per output, the fleet of ``est.count`` calls,
    the memory verdict and the trust flags (see :data:`COLUMNS`)."""
    s = est.setting
    n = s.n_outputs
    kwh_lo, kwh_hi = est.fleet_kwh_interval
    co2_lo, co2_hi = est.fleet_co2e_kg_interval
    verdict = memory_verdict(memory)
    return {
        "model": est.model_id, "model_key": s.model, "modality": s.modality, "gpu": est.gpu,
        "gpu_name": est.gpu_name, "precision": est.precision,
        "res": f"{s.width}x{s.height}" if s.width and s.height else None, "width": s.width, "height": s.height,
        "frames": s.frames, "seconds": s.audio_seconds, "steps": s.steps, "cfg": s.cfg,
        "guidance": s.guidance_scale, "batch_size": s.batch_size, "outputs_per_prompt": s.outputs_per_prompt,
        "n_outputs": n,
        "flop_per_call": est.flop, "flop_per_output": est.flop / n,
        "energy_per_call_j": est.energy_j, "energy_per_call_lo_j": est.energy_lo_j,
        "energy_per_call_hi_j": est.energy_hi_j,
        "energy_per_output_j": est.energy_j / n, "energy_per_output_lo_j": est.energy_lo_j / n,
        "energy_per_output_hi_j": est.energy_hi_j / n,
        "energy_per_output_wh": est.energy_j / n / 3600.0, "energy_per_output_lo_wh": est.energy_lo_j / n / 3600.0,
        "energy_per_output_hi_wh": est.energy_hi_j / n / 3600.0,
        "time_s": est.time_s, "time_lo_s": est.time_lo_s, "time_hi_s": est.time_hi_s,
        "time_per_output_s": est.time_s / n,
        "co2e_per_call_g": est.co2e_g, "co2e_per_output_g": est.co2e_g / n,
        "co2e_per_output_lo_g": est.co2e_lo_g / n, "co2e_per_output_hi_g": est.co2e_hi_g / n,
        "count": est.count, "outputs": est.count * n,
        "kwh": est.fleet_kwh, "kwh_lo": kwh_lo, "kwh_hi": kwh_hi,
        "gpu_hours": est.fleet_gpu_hours, "gpu_hours_lo": est.time_lo_s * est.count / 3600.0,
        "gpu_hours_hi": est.time_hi_s * est.count / 3600.0,
        "co2e_kg": est.fleet_co2e_kg, "co2e_kg_lo": co2_lo, "co2e_kg_hi": co2_hi,
        "region": region, "intensity_g_per_kwh": est.intensity_g_per_kwh, "intensity_source": est.intensity_source,
        "pue": est.pue,
        "gpu_memory_gib": None if memory is None or memory.gpu_memory_byte is None else memory.gpu_memory_byte / GiB,
        "memory_need_gib": memory_need_gib(memory),
        "memory_resident_gib": None if memory is None else (memory.resident_peak_byte + memory.overhead_byte) / GiB,
        "memory_fit": verdict, "fits_memory": verdict != "does not fit",
        "gpu_measured": est.gpu_measured, "extrapolated": is_extrapolated(est), "interval": est.interval,
        "law": est.law, "notes": "; ".join(est.notes),
    }


def as_list(value: Any) -> list | None:
    """A notebook's list parameter as a list: a list or tuple as given, None as None, and text
    as ``papermill -p`` passes it: JSON (``-p gpus '["h100","l40s"]'``) or comma-separated
    (``-p gpus h100,l40s``); one name is a list of one."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import yaml  # JSON is YAML: '["h100","l40s"]' and '[h100, l40s]' both read

            try:
                out = yaml.safe_load(text)
            except yaml.YAMLError:
                out = None
            if not isinstance(out, list):
                raise InvalidSettingError(f"parameter {value!r} is not a list: write it as '[\"h100\", \"l40s\"]'")
            return out
        return [x.strip() for x in text.split(",") if x.strip()]
    return [value]


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(records)
    if "rank" in df:
        df["rank"] = df["rank"].astype("Int64")
    return df
