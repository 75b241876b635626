"""Energy meters: one small interface, one backend per source.

::

    meter = make_meter("auto", device="cuda")   # Zeus (NVML), RAPL, CodeCarbon; estimates where none measures
    meter.begin_window("call")
    meter.begin_window("denoiser")       # windows nest
    ...
    m = meter.end_window("denoiser")     # -> Measurement (J, s; measured vs estimated flags)
    meter.end_window("call")
    meter.close()

Backends: :class:`NvmlMeter` (GPU, through Zeus: energy counter + sampled power), :class:`RaplMeter`
(CPU package, DRAM), :class:`CodeCarbonMeter` (CPU/RAM, mostly estimates, and carbon
intensity; offline), :class:`EstimateMeter` (time x stated power), :class:`ReplayMeter`
(recorded power traces, for tests). :class:`CompositeMeter` runs several over the same
windows and merges their figures, a measured value winning over an estimate.
:func:`make_meter` (:mod:`.factory`) is the one place meters are made from a name
(``auto``, ``nvml``, ``estimate``, ``replay:TRACE.csv``); :func:`default_meter` is its
``auto`` meter over every visible GPU.

Nothing here imports torch; ``zeus`` (with the ``pynvml`` it uses) and ``codecarbon`` are
imported when a meter that needs them is created.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import CompositeMeter, CounterAccumulator, Measurement, Meter, merge_measurements
from .codecarbon_meter import CodeCarbonMeter, check_country_iso_code
from .estimate import EstimateMeter
from .factory import DEFAULT_CPU_POWER_W, METER_KINDS, check_meter, check_meter_name, make_meter
from .rapl import POWERCAP_ROOT as _POWERCAP_ROOT
from .rapl import RaplMeter
from .replay import PowerTrace, ReplayMeter, parse_trace_name
from .zeus_meter import NvmlMeter

__all__ = [
    "DEFAULT_CPU_POWER_W",
    "METER_KINDS",
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
    "check_meter",
    "check_meter_name",
    "default_meter",
    "make_meter",
    "merge_measurements",
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
    rapl_root: str = _POWERCAP_ROOT,
) -> CompositeMeter:
    """The best meter this machine allows: ``make_meter("auto")`` over every visible GPU.

    Probes, in order: NVML (through Zeus) for the GPUs; RAPL for CPU package and DRAM; CodeCarbon
    (offline, ``country_iso_code``) for CPU/RAM where RAPL is missing and for carbon
    intensity. What cannot be measured is estimated and flagged, or left out, and the
    notes of every window say which probe failed and why.

    Parameters
    ----------
    gpu_indices : sequence of int, optional
        GPUs to measure, as the process numbers them (``cuda:N``). Default: all
        visible. When given and Zeus cannot measure them, :class:`NoGPUError` is raised
        unless ``gpu_tdp_w`` allows an estimate.
    country_iso_code : str or None
        Where the machine runs, for CodeCarbon's carbon intensity. None: skip CodeCarbon.
        An unknown code raises :class:`~scaling.errors.UnknownCountryError` (a
        :class:`MeterError`) up front.
    assume_power_w : float, optional
        CPU power to assume when RAPL cannot measure it (an estimate, flagged; it takes
        precedence over CodeCarbon's own TDP guess).
    gpu : str, optional
        The GPU's name (``"h100"``, ``"NVIDIA A100-SXM4-80GB"``): when Zeus cannot
        measure, its TDP from the hardware registry is assumed (an estimate, flagged).
        An unknown name raises :class:`~scaling.errors.UnknownGPUError` up front.
    gpu_tdp_w : float, optional
        Power of one GPU to assume when Zeus cannot measure; overrides ``gpu``'s TDP.
    sample_interval_s : float
        GPU power sampling period, 0.01 to 0.1 s.
    rapl_root : str
        The powercap directory.
    """
    return make_meter("auto", device=None, gpu_indices=gpu_indices, country=country_iso_code,
                      cpu_power_w=assume_power_w, gpu=gpu, gpu_tdp_w=gpu_tdp_w,
                      sample_interval_s=sample_interval_s, rapl_root=rapl_root)
