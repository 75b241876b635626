"""Energy meters: one small interface, one backend per source.

::

    meter = default_meter()              # probes NVML, RAPL, CodeCarbon; falls back to estimates
    meter.begin_window("call")
    meter.begin_window("denoiser")       # windows nest
    ...
    m = meter.end_window("denoiser")     # -> Measurement (J, s; measured vs estimated flags)
    meter.end_window("call")
    meter.close()

Backends: :class:`NvmlMeter` (GPU: energy counter + sampled power), :class:`RaplMeter`
(CPU package, DRAM), :class:`CodeCarbonMeter` (CPU/RAM, mostly estimates, and carbon
intensity; offline), :class:`EstimateMeter` (time x stated power), :class:`ReplayMeter`
(recorded power traces, for tests). :class:`CompositeMeter` runs several over the same
windows and merges their figures, a measured value winning over an estimate.

Nothing here imports torch; ``pynvml`` and ``codecarbon`` are imported when a meter that
needs them is created.
"""

from __future__ import annotations

from collections.abc import Sequence

from scaling.errors import MeterError, NoGPUError

from .base import CompositeMeter, CounterAccumulator, Measurement, Meter, merge_measurements
from .codecarbon_meter import CodeCarbonMeter, check_country_iso_code
from .estimate import EstimateMeter
from .nvml import NvmlMeter, parse_cuda_visible_devices
from .rapl import RaplMeter
from .replay import PowerTrace, ReplayMeter, parse_trace_name

__all__ = [
    "CodeCarbonMeter",
    "CompositeMeter",
    "CounterAccumulator",
    "EstimateMeter",
    "Measurement",
    "Meter",
    "NvmlMeter",
    "PowerTrace",
    "RaplMeter",
    "ReplayMeter",
    "check_country_iso_code",
    "default_meter",
    "merge_measurements",
    "parse_cuda_visible_devices",
    "parse_trace_name",
]


def default_meter(
    gpu_indices: Sequence[int] | None = None,
    country_iso_code: str | None = "USA",
    assume_power_w: float | None = None,
    *,
    gpu: str | None = None,
    gpu_tdp_w: float | None = None,
    sample_interval_s: float = 0.05,
    rapl_root: str = "/sys/class/powercap",
) -> CompositeMeter:
    """The best meter this machine allows, as one :class:`CompositeMeter`.

    Probes, in order: NVML for the GPUs; RAPL for CPU package and DRAM; CodeCarbon
    (offline, ``country_iso_code``) for CPU/RAM where RAPL is missing and for carbon
    intensity. What cannot be measured is estimated and flagged, or left out, and the
    notes of every window say which probe failed and why.

    Parameters
    ----------
    gpu_indices : sequence of int, optional
        GPUs to measure, as the process numbers them (``cuda:N``). Default: all
        visible. When given and NVML cannot measure them, :class:`NoGPUError` is raised
        unless ``gpu_tdp_w`` allows an estimate.
    country_iso_code : str or None
        Where the machine runs, for CodeCarbon's carbon intensity. None: skip CodeCarbon.
        An unknown code raises :class:`MeterError` up front.
    assume_power_w : float, optional
        CPU power to assume when RAPL cannot measure it (an estimate, flagged; it takes
        precedence over CodeCarbon's own TDP guess).
    gpu : str, optional
        The GPU's name (``"h100"``, ``"NVIDIA A100-SXM4-80GB"``): when NVML cannot
        measure, its TDP from the hardware registry is assumed (an estimate, flagged).
        An unknown name raises :class:`~scaling.errors.UnknownGPUError` up front.
    gpu_tdp_w : float, optional
        Power of one GPU to assume when NVML cannot measure; overrides ``gpu``'s TDP.
    sample_interval_s : float
        NVML power sampling period, 0.01 to 0.1 s.
    rapl_root : str
        The powercap directory.
    """
    if gpu_tdp_w is None and gpu is not None:
        from scaling.hardware import resolve_gpu

        spec = resolve_gpu(gpu)  # an unknown name fails here, before any meter starts
        gpu_tdp_w, tdp_source = spec.tdp_w, f"the TDP of {spec.key} in the hardware registry"
    else:
        tdp_source = "the caller's GPU TDP"
    if country_iso_code is not None:
        try:
            country_iso_code = check_country_iso_code(country_iso_code)
        except MeterError as e:
            if "country_iso_code" in str(e):  # a user mistake: say so before anything starts
                raise
    gpu_parts: list = []
    cpu_parts: list = []
    notes: list[str] = []  # one line per failed probe, the cause only (rows carry these)
    try:
        return _probe(gpu_indices, country_iso_code, assume_power_w, gpu_tdp_w, tdp_source,
                      sample_interval_s, rapl_root, gpu_parts, cpu_parts, notes)
    except BaseException:
        for p in gpu_parts + cpu_parts:  # stop the samplers that did start
            try:
                p.close()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
        raise


def _cause(e: Exception) -> str:
    """The cause part of a meter error message (before the advice), for the row notes."""
    return str(e).split("; ")[0]


def _probe(gpu_indices, country_iso_code, assume_power_w, gpu_tdp_w, tdp_source,
           sample_interval_s, rapl_root, gpu_parts, cpu_parts, notes) -> CompositeMeter:
    try:
        gpu_parts.append(NvmlMeter(gpu_indices, sample_interval_s))
    except MeterError as e:  # NoGPUError included
        if gpu_indices is not None and gpu_tdp_w is None:
            raise NoGPUError(
                f"{e} (`gpu_indices`={list(gpu_indices)!r} was asked for; pass "
                "`gpu` or `gpu_tdp_w` to estimate instead, or leave `gpu_indices` unset)"
            ) from e
        if gpu_tdp_w is not None:
            count = len(gpu_indices) if gpu_indices else 1
            gpu_parts.append(EstimateMeter(gpu_power_w=gpu_tdp_w, gpu_count=count, source=tdp_source))
            notes.append(f"GPU not measured, estimated from TDP: {_cause(e)}")
        else:
            notes.append(f"GPU not measured: {_cause(e)}")

    rapl_ok = False
    try:
        cpu_parts.append(RaplMeter(rapl_root))
        rapl_ok = True
    except MeterError as e:
        notes.append(f"RAPL not read: {_cause(e)}")
    if assume_power_w is not None and not rapl_ok:
        cpu_parts.append(EstimateMeter(cpu_power_w=assume_power_w, source="the caller's stated CPU power"))
    if country_iso_code is not None:
        try:
            cpu_parts.append(CodeCarbonMeter(country_iso_code))
        except MeterError as e:
            notes.append(f"CodeCarbon not used: {_cause(e)}")

    parts = gpu_parts + cpu_parts
    if not parts:
        parts = [EstimateMeter()]  # time only; its notes say how to get estimates
    return CompositeMeter(parts, notes=notes)
