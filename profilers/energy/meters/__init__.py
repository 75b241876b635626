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
from .codecarbon_meter import CodeCarbonMeter
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
        Where the machine runs, for CodeCarbon. None: skip CodeCarbon.
    assume_power_w : float, optional
        CPU power to assume when RAPL cannot measure it (an estimate, flagged; it takes
        precedence over CodeCarbon's own TDP guess).
    gpu_tdp_w : float, optional
        Power of one GPU to assume when NVML cannot measure (the GPU's TDP from the
        hardware registry, looked up by the caller).
    sample_interval_s : float
        NVML power sampling period, 0.01 to 0.1 s.
    rapl_root : str
        The powercap directory.
    """
    gpu_parts: list = []
    cpu_parts: list = []
    notes: list[str] = []  # one line per failed probe, the cause only (rows carry these)

    def cause(e: Exception) -> str:
        return str(e).split("; ")[0]

    try:
        gpu_parts.append(NvmlMeter(gpu_indices, sample_interval_s))
    except MeterError as e:  # NoGPUError included
        if gpu_indices is not None and gpu_tdp_w is None:
            raise NoGPUError(
                f"{e} (`gpu_indices`={list(gpu_indices)!r} was asked for; pass "
                "`gpu_tdp_w` to estimate instead, or leave `gpu_indices` unset)"
            ) from e
        if gpu_tdp_w is not None:
            count = len(gpu_indices) if gpu_indices else 1
            gpu_parts.append(EstimateMeter(gpu_power_w=gpu_tdp_w, gpu_count=count, source="the caller's GPU TDP"))
            notes.append(f"GPU not measured, estimated from TDP: {cause(e)}")
        else:
            notes.append(f"GPU not measured: {cause(e)}")

    rapl_ok = False
    try:
        cpu_parts.append(RaplMeter(rapl_root))
        rapl_ok = True
    except MeterError as e:
        notes.append(f"RAPL not read: {cause(e)}")
    if assume_power_w is not None and not rapl_ok:
        cpu_parts.append(EstimateMeter(cpu_power_w=assume_power_w, source="the caller's stated CPU power"))
    if country_iso_code is not None:
        try:
            cpu_parts.append(CodeCarbonMeter(country_iso_code))
        except MeterError as e:
            notes.append(f"CodeCarbon not used: {cause(e)}")

    parts = gpu_parts + cpu_parts
    if not parts:
        parts = [EstimateMeter()]  # time only; its notes say how to get estimates
    try:
        return CompositeMeter(parts, notes=notes)
    except BaseException:
        for p in parts:
            p.close()
        raise
