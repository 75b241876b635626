"""Estimates as table rows: the columns of the planning DataFrames, with their units and flags.

``estimate_record(estimate, memory)`` is one row; :data:`COLUMNS` documents every column of
``Comparison.to_frame()``, ``PredictionGrid.to_frame()``, ``PlanResult.to_frame()`` and
``PlanResult.jobs_frame()`` (scaling/app/planning.py), and of ``scaling.profile(...).to_frame()``
(``FlopProfile.to_frame()``, profilers/flops/profile.py: one row per component call).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from profilers.flops import BYTE_CLASSES, OP_CLASSES
from profilers.flops.memory import GiB, MemoryProfile
from scaling.app.estimate import RANKED_FITS, Estimate, memory_verdict
from scaling.errors import InvalidSettingError
from scaling.units import J_PER_WH

__all__ = ["COLUMNS", "as_list", "estimate_record", "is_extrapolated", "memory_need_gib", "memory_verdict",
           "records_frame"]

COLUMNS: dict[str, str] = {
    # what was predicted
    "label": "compare: the option (GPU, and precision / steps when they are compared); profile: the sub-call of "
             "the component (e.g. prefill, decode; empty when the component is called one way)",
    "rank": "1 = least energy (compare: per output; plan: kWh) among the options that fit in memory with every "
            "component resident; empty for those that do not (they need CPU offload, which is not modelled, or do "
            "not fit at all)",
    "option": "plan: GPU [precision] [steps scale] @ region",
    "job": "plan: the job's name (or its number and model)",
    "model": "model id", "model_key": "registry key", "modality": "image | video | audio",
    "gpu": "GPU registry key", "gpu_name": "GPU name",
    "gpu_count": "GPUs of one call (1, or the product of the parallel plan)",
    "plan": "the parallel plan, ulysses=U,ring=R,cfg=C (empty on one GPU without a plan)",
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
    "time_hi_s": "high bound, s", "time_per_output_s": "time_s / n_outputs (GPU time per output)",
    "time_per_output_lo_s": "low bound, s", "time_per_output_hi_s": "high bound, s",
    "power_w": "implied average GPU power of a call, energy_per_call_j / time_s, W (between the idle floor and "
               "the TDP: scaling/app/physics.py); several GPUs: all of them together",
    "average_power_w": "= power_w: the call's energy over all its GPUs / its time, W",
    "co2e_per_call_g": "CO2e of one call (energy x PUE x intensity), g",
    "co2e_per_output_g": "co2e_per_call_g / n_outputs", "co2e_per_output_lo_g": "low bound, g",
    "co2e_per_output_hi_g": "high bound, g",
    # fleet (count outputs)
    "count": "outputs (a call makes n_outputs of them; a batch of 4 is 4 outputs)", "outputs": "= count",
    "calls": "pipeline calls that make `count` outputs: count / n_outputs; profile: calls of the component per "
             "generation (e.g. steps x 2 with CFG run as two passes)",
    "kwh": "facility energy of `count` outputs (GPU energy per output x count x PUE), kWh",
    "kwh_lo": "low bound, kWh (a plan option: the sum of its jobs' bounds)",
    "kwh_hi": "high bound, kWh", "gpu_hours": "GPU-hours of `count` outputs (time per output x count x gpu_count)",
    "gpu_hours_lo": "low bound", "gpu_hours_hi": "high bound", "co2e_kg": "CO2e of `count` outputs, kg",
    "co2e_kg_lo": "low bound, kg", "co2e_kg_hi": "high bound, kg",
    "region": "ISO code of the grid (empty: `intensity_g_per_kwh` as given or assumed)",
    "intensity_g_per_kwh": "grid carbon intensity, g CO2e/kWh", "intensity_source": "where the intensity comes from",
    "pue": "power usage effectiveness of the facility",
    # memory
    "gpu_memory_gib": "memory of the GPU, GiB",
    "memory_need_gib": "the least memory the pipeline needs: the largest component's weights + its activation "
                       "estimate + 1 GiB runtime overhead (model CPU offload), GiB",
    "memory_resident_gib": "memory with every component resident: all weights + the largest activation + 1 GiB, GiB",
    "memory_fit": "all resident | with model CPU offload | does not fit | unknown (no parameter counts)",
    "fits_memory": "True when the memory model (profilers/flops/memory.py, the rule `predict` applies) says every "
                   "component fits this GPU resident (or cannot say: unknown); False when it needs model CPU "
                   "offload (its transfers are not modelled) or does not fit at all. Only these rows are ranked",
    "jobs_not_fitting": "plan: the jobs that do not fit this GPU resident (they need CPU offload or do not fit)",
    "jobs_needing_offload": "plan: those of jobs_not_fitting that would fit with model CPU offload (not modelled)",
    "max_latency_s": "plan: the job's latency limit of one call, s (empty: none)",
    "meets_latency": "plan: the chosen GPU count and plan meet max_latency_s (an option: every job does)",
    "jobs_over_latency": "plan: the jobs whose fastest GPU count and plan are slower than their max_latency_s",
    "pareto": "plan: not dominated on (kWh, GPU-hours, CO2e kg) by another option that fits: no other option is as "
              "good on all three and better on one",
    # trust
    "gpu_measured": "the law saw measurements on this GPU",
    "precision_measured_on_gpu_class": "the precision's class (the matmul format) was measured on this GPU's "
                                       "architecture in the law's data",
    "flop_in_range": "the call's FLOP count lies in the FLOP range of the law's data",
    "byte_in_range": "the bytes the call moves lie in the byte range of the law's data (laws that read bytes)",
    "model_in_data": "the model is in the law's data", "family_in_data": "the model's registry family is in it",
    "extrapolated": "True when any of gpu_measured, precision_measured_on_gpu_class, flop_in_range, byte_in_range, "
                    "model_in_data, "
                    "family_in_data is False, or the pipeline needs CPU offload (not modelled); `extrapolation` says "
                    "which. Resolutions, frame or step counts and batch sizes inside the FLOP range are not checked",
    "extrapolation": "the reasons, joined with '; '",
    "interval_widened_by": "the law file's residual_spread splits added to the interval (gpu_out, model_out, "
                           "family_out), joined with ', '",
    "clamps": "physical bounds that changed the time (roofline, TDP, idle floor: scaling/app/physics.py), "
              "joined with '; '",
    "interval": "coverage of the lo/hi bounds (e.g. 0.9)", "law": "the law that predicted",
    "notes": "the estimate's notes, joined with '; '",
    # profile: FlopProfile.to_frame(), one row per component call (label, calls: above)
    "component": "profile: the pipeline component (its attribute name: transformer, unet, vae, text_encoder, ...)",
    "role": "profile: the component's role (text_encoder, denoiser, decoder, vocoder, ...), the key of the law's "
            "per-role FLOPs and bytes",
    "shape": "profile: the shape of one call in words (tokens, latent size, output size)",
    "batch": "profile: samples per call of the component (batch_size x outputs_per_prompt)",
    "per_call_flop": "profile: FLOP of one call of the component (whole batch)",
    "flop": "profile: FLOP of the component per generation = per_call_flop x calls",
    **{f"{k}_flop": f"profile: FLOP per generation of the {k} ops (op class {k!r}; the classes sum to flop)"
       for k in OP_CLASSES},
    "per_call_byte": "profile: bytes moved by one call of the component (activations read and written x batch + "
                     "weights read once), byte; empty counts without a byte table",
    "byte": "profile: bytes moved by the component per generation = per_call_byte x calls, byte",
    **{f"{k}_byte": f"profile: bytes moved per generation by the {k} ops (byte class {k!r}; the classes sum to "
                    f"byte), byte" for k in BYTE_CLASSES},
    "flop_per_byte": "profile: arithmetic intensity of the component, flop / byte, FLOP per byte (empty without "
                     "byte counts)",
}
"""Every column of the frames below, with its unit."""


# -- one estimate as a row -------------------------------------------------------------------------

def is_extrapolated(est: Estimate) -> bool:
    """The estimate's own summary flag (:attr:`Estimate.extrapolated`)."""
    return est.extrapolated


def memory_need_gib(mem: MemoryProfile | None) -> float | None:
    """The least memory the pipeline needs (one component at a time + the runtime overhead), GiB."""
    return None if mem is None else (mem.offload_peak_byte + mem.overhead_byte) / GiB


def estimate_record(est: Estimate, memory: MemoryProfile | None = None, region: str | None = None) -> dict[str, Any]:
    """One row of a frame: the figures per call and per output, the fleet of ``est.count`` outputs,
    the memory verdict and the trust flags (see :data:`COLUMNS`). ``memory`` is the estimate's
    memory profile when given; the verdict is the estimate's own otherwise (the same rule)."""
    s = est.setting
    n = s.n_outputs
    kwh_lo, kwh_hi = est.fleet_kwh_interval
    co2_lo, co2_hi = est.fleet_co2e_kg_interval
    gh_lo, gh_hi = est.fleet_gpu_hours_interval
    verdict = memory_verdict(memory) if memory is not None else est.memory_fit
    return {
        "model": est.model_id, "model_key": s.model, "modality": s.modality, "gpu": est.gpu,
        "gpu_name": est.gpu_name, "gpu_count": est.gpu_count, "plan": est.plan, "precision": est.precision,
        "res": f"{s.width}x{s.height}" if s.width and s.height else None, "width": s.width, "height": s.height,
        "frames": s.frames, "seconds": s.audio_seconds, "steps": s.steps, "cfg": s.cfg,
        "guidance": s.guidance_scale, "batch_size": s.batch_size, "outputs_per_prompt": s.outputs_per_prompt,
        "n_outputs": n,
        "flop_per_call": est.flop, "flop_per_output": est.flop / n,
        "energy_per_call_j": est.energy_j, "energy_per_call_lo_j": est.energy_lo_j,
        "energy_per_call_hi_j": est.energy_hi_j,
        "energy_per_output_j": est.energy_per_output_j, "energy_per_output_lo_j": est.energy_per_output_lo_j,
        "energy_per_output_hi_j": est.energy_per_output_hi_j,
        "energy_per_output_wh": est.energy_per_output_wh,
        "energy_per_output_lo_wh": est.energy_per_output_lo_j / J_PER_WH,
        "energy_per_output_hi_wh": est.energy_per_output_hi_j / J_PER_WH,
        "time_s": est.time_s, "time_lo_s": est.time_lo_s, "time_hi_s": est.time_hi_s,
        "time_per_output_s": est.time_per_output_s, "time_per_output_lo_s": est.time_per_output_lo_s,
        "time_per_output_hi_s": est.time_per_output_hi_s, "power_w": est.power_w,
        "average_power_w": est.average_power_w,
        "co2e_per_call_g": est.co2e_g, "co2e_per_output_g": est.co2e_per_output_g,
        "co2e_per_output_lo_g": est.co2e_per_output_lo_g, "co2e_per_output_hi_g": est.co2e_per_output_hi_g,
        "count": est.count, "outputs": est.count, "calls": est.fleet_calls,
        "kwh": est.fleet_kwh, "kwh_lo": kwh_lo, "kwh_hi": kwh_hi,
        "gpu_hours": est.fleet_gpu_hours, "gpu_hours_lo": gh_lo, "gpu_hours_hi": gh_hi,
        "co2e_kg": est.fleet_co2e_kg, "co2e_kg_lo": co2_lo, "co2e_kg_hi": co2_hi,
        "region": region, "intensity_g_per_kwh": est.intensity_g_per_kwh, "intensity_source": est.intensity_source,
        "pue": est.pue,
        "gpu_memory_gib": est.gpu_memory_gib if memory is None else
        (None if memory.gpu_memory_byte is None else memory.gpu_memory_byte / GiB),
        "memory_need_gib": est.memory_offload_gib if memory is None else memory_need_gib(memory),
        "memory_resident_gib": est.memory_resident_gib if memory is None else
        (memory.resident_peak_byte + memory.overhead_byte) / GiB,
        "memory_fit": verdict, "fits_memory": verdict in RANKED_FITS,
        "gpu_measured": est.gpu_measured, "precision_measured_on_gpu_class": est.precision_measured_on_gpu_class,
        "flop_in_range": est.flop_in_range, "byte_in_range": est.byte_in_range, "model_in_data": est.model_in_data,
        "family_in_data": est.family_in_data,
        "extrapolated": est.extrapolated, "extrapolation": "; ".join(est.extrapolation),
        "interval_widened_by": ", ".join(est.interval_widened_by), "clamps": "; ".join(est.clamps),
        "interval": est.interval, "law": est.law, "notes": "; ".join(est.notes),
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
