"""Making a meter: :func:`make_meter`, the one function every caller uses (the runner, sweeps,
``scaling measure``, :func:`~profilers.energy.meters.default_meter`).

Meter names::

    auto              Zeus (NVML) for the GPU where one is used, RAPL / CodeCarbon (offline) for CPU and RAM;
                      estimates, flagged, where nothing measures
    nvml              the same, but the GPU must be measured (Zeus over NVML; NoGPUError otherwise)
    estimate          time x a stated power: the GPU's TDP on a GPU, the CPU power on the CPU
    replay:TRACE.csv  plays back a recorded GPU power trace (tests)

The name is checked (:func:`check_meter_name`) before any meter starts, so a typo fails in one
line before a pipeline is built; :func:`check_meter` also reads a replay trace and refuses
``nvml`` for work on the CPU, before the build too. The device says what the work runs on:
``cuda`` / ``cuda:N`` (that GPU), ``cpu`` or ``mps`` (no GPU measured; the CPU energy is the figure, so it is
estimated at :data:`DEFAULT_CPU_POWER_W` when nothing measures or models it), or None
(library use: every visible GPU, or ``gpu_indices``; what nothing measures is left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from scaling.errors import InvalidSettingError, MeterError, MissingMeterDependencyError, NoGPUError, UnknownMeterError

from .base import CompositeMeter, Meter
from .codecarbon_meter import CodeCarbonMeter, check_country_iso_code
from .estimate import EstimateMeter
from .rapl import POWERCAP_ROOT, RaplMeter
from .replay import ReplayMeter
from .zeus_meter import NvmlMeter

__all__ = ["DEFAULT_CPU_POWER_W", "METER_KINDS", "REPLAY_PREFIX", "check_meter", "check_meter_name", "make_meter"]

METER_KINDS = ("auto", "nvml", "estimate")
"""The meter names, besides ``replay:TRACE.csv``."""

REPLAY_PREFIX = "replay:"

#: CPU power assumed when nothing on the machine measures or models it (a typical desktop
#: CPU package under load); pass ``cpu_power_w`` for your machine.
DEFAULT_CPU_POWER_W = 65.0

_ACCEPTED = ", ".join(METER_KINDS) + f" or {REPLAY_PREFIX}TRACE.csv"


def check_meter_name(name: str) -> str:
    """``name`` if it is a meter name (see the module docstring), else
    :class:`~scaling.errors.UnknownMeterError`. A replay trace must exist."""
    if not isinstance(name, str):
        raise UnknownMeterError(f"`meter` {name!r} is not a meter name: use one of {_ACCEPTED}")
    if name in METER_KINDS:
        return name
    if name.startswith(REPLAY_PREFIX):
        path = name[len(REPLAY_PREFIX):]
        if not path:
            raise UnknownMeterError(f"`meter` {name!r} names no trace: use {REPLAY_PREFIX}TRACE.csv")
        if not Path(path).is_file():
            raise UnknownMeterError(f"`meter` {name!r}: no trace file {path!r}")
        return name
    raise UnknownMeterError(f"`meter` {name!r} is unknown: use one of {_ACCEPTED}")


def _nvml_off_gpu(device: str) -> NoGPUError:
    return NoGPUError(f"`meter` 'nvml' measures a GPU, but the work runs on {device!r}; "
                      "use the auto or estimate meter (rule: nvml needs the work on a CUDA GPU)")


def check_meter(name: str, *, device: str | None = None) -> str:
    """Everything about the meter ``name`` that can be known before any work (a pipeline build),
    refused in one line: the name (:func:`check_meter_name`); a replay trace, read now as the meter
    will read it (its header, its rows); and ``nvml`` on a device that is no GPU (``device`` ``cpu``
    or ``mps``: give the resolved device; ``auto``, ``cuda`` or None is not checked here)."""
    kind = check_meter_name(name)
    if kind.startswith(REPLAY_PREFIX):
        from scaling.errors import DataError

        from .replay import PowerTrace

        path = kind[len(REPLAY_PREFIX):]
        try:
            PowerTrace.read_csv(path)
        except DataError as exc:
            raise DataError(f"`meter` {kind!r}: {exc} (rule: a replay trace is a CSV "
                            "`t_s,power_w[,energy_j]` with >= 2 rows)") from None
    if kind == "nvml" and device is not None and device.strip().lower() in ("cpu", "mps"):
        raise _nvml_off_gpu(device)
    return kind


def _gpu_indices(device: str | None, gpu_indices: Sequence[int] | None) -> tuple[bool, list[int] | None]:
    """(measure a GPU?, which ones: None for every visible GPU) for ``device``."""
    if device is None:
        return True, None if gpu_indices is None else [int(i) for i in gpu_indices]
    text = device.strip().lower()
    if text in ("cpu", "mps"):
        return False, []
    if text == "cuda":
        return True, [0]
    if text.startswith("cuda:") and text[5:].isdigit():
        return True, [int(text[5:])]
    raise InvalidSettingError(f"`device` {device!r} is unknown: use cuda, cuda:N, cpu or mps")


def make_meter(
    name: str | Meter = "auto",
    *,
    device: str | None = None,
    gpu_indices: Sequence[int] | None = None,
    country: str | None = "USA",
    cpu_power_w: float | None = None,
    gpu: str | None = None,
    gpu_tdp_w: float | None = None,
    sample_interval_s: float = 0.05,
    rapl_root: str = POWERCAP_ROOT,
) -> Meter:
    """The meter called ``name`` for work on ``device`` (see the module docstring).

    Parameters
    ----------
    name : str or Meter
        ``auto``, ``nvml``, ``estimate`` or ``replay:TRACE.csv``; a meter object is returned
        as it is (its caller closes it).
    device : str, optional
        ``cuda``, ``cuda:N``, ``cpu``, ``mps``; None: every visible GPU (or ``gpu_indices``).
    gpu_indices : sequence of int, optional
        With ``device=None``: the GPUs to measure, as the process numbers them. When given
        and Zeus cannot measure them, :class:`~scaling.errors.NoGPUError` is raised unless a
        TDP allows an estimate.
    country : str or None
        ISO code for CodeCarbon's offline CPU/RAM model and carbon intensity; None: no
        CodeCarbon. An unknown code raises :class:`~scaling.errors.UnknownCountryError` up front.
    cpu_power_w : float, optional
        CPU power to assume where RAPL cannot measure it (an estimate, flagged).
    gpu : str, optional
        The GPU's name in the hardware registry: its TDP is assumed where Zeus cannot
        measure (an estimate, flagged). An unknown name raises
        :class:`~scaling.errors.UnknownGPUError` up front.
    gpu_tdp_w : float, optional
        Power of one GPU to assume where Zeus cannot measure; overrides ``gpu``'s TDP.
    sample_interval_s : float
        GPU power sampling period, 0.01 to 0.1 s.
    rapl_root : str
        The powercap directory.

    Every failed probe leaves a note (which meter, and why) in the notes of every window.
    """
    if not isinstance(name, str):
        return name
    kind = check_meter_name(name)  # before anything starts
    on_gpu, indices = _gpu_indices(device, gpu_indices)
    tdp_source = "the caller's GPU TDP"
    if gpu_tdp_w is None and gpu is not None:
        from scaling.hardware import resolve_gpu

        spec = resolve_gpu(gpu)  # an unknown name fails here, before any meter starts
        gpu_tdp_w, tdp_source = spec.tdp_w, f"the TDP of {spec.key} in the hardware registry"
    if kind.startswith(REPLAY_PREFIX):
        return ReplayMeter(kind[len(REPLAY_PREFIX):], loop=True)
    if kind == "estimate":
        return _estimate(device, on_gpu, indices, cpu_power_w, gpu_tdp_w, tdp_source)
    if kind == "nvml" and not on_gpu:
        raise _nvml_off_gpu(device)
    if country is not None:
        try:
            country = check_country_iso_code(country)  # an unknown code fails before any probe
        except MissingMeterDependencyError:
            pass  # no CodeCarbon: the probe below says so in the notes
    with ExitStack() as stack:  # a failed probe stops the samplers that did start
        notes: list[str] = []
        parts: list[Meter] = []
        if on_gpu:
            parts += _gpu_parts(kind, indices, gpu_tdp_w, tdp_source, sample_interval_s, notes, stack)
        fallback_w = DEFAULT_CPU_POWER_W if device is not None and not on_gpu else None
        parts += _cpu_parts(country, cpu_power_w, fallback_w, rapl_root, notes, stack)
        if not parts:
            parts = [EstimateMeter()]  # time only; its notes say how to get estimates
        meter = CompositeMeter(parts, notes=notes)
        stack.pop_all()
        return meter


def _cause(e: MeterError) -> str:
    """The cause part of a meter error message (before the advice), for the row notes."""
    return str(e).split("; ")[0]


def _estimate(device, on_gpu, indices, cpu_power_w, gpu_tdp_w, tdp_source) -> EstimateMeter:
    if device is not None and on_gpu:
        if gpu_tdp_w is None:
            raise MeterError(f"`meter` 'estimate' on {device!r} needs the GPU's TDP: this GPU is not in the "
                             "hardware registry; use the auto or nvml meter")
        return EstimateMeter(gpu_power_w=gpu_tdp_w, gpu_count=len(indices), source=tdp_source)
    if device is not None:  # CPU work: the CPU energy is the figure
        if cpu_power_w is not None:
            return EstimateMeter(cpu_power_w=cpu_power_w, source="the stated CPU power")
        return EstimateMeter(cpu_power_w=DEFAULT_CPU_POWER_W,
                             source=f"the default CPU power ({DEFAULT_CPU_POWER_W:g} W)")
    sources = ([tdp_source] if gpu_tdp_w is not None else []) + (["the stated CPU power"] if cpu_power_w else [])
    return EstimateMeter(gpu_power_w=gpu_tdp_w, gpu_count=len(indices) if indices else 1, cpu_power_w=cpu_power_w,
                         source=" and ".join(sources))


def _gpu_parts(kind, indices, gpu_tdp_w, tdp_source, sample_interval_s, notes, stack) -> list[Meter]:
    try:
        meter = NvmlMeter(indices, sample_interval_s)
    except MeterError as e:  # NoGPUError and a missing zeus included
        if kind == "nvml":
            raise
        if indices is not None and gpu_tdp_w is None:
            raise NoGPUError(
                f"{e} (`gpu_indices`={list(indices)!r} was asked for; pass "
                "`gpu` or `gpu_tdp_w` to estimate instead, or leave `gpu_indices` unset)"
            ) from e
        if gpu_tdp_w is None:
            notes.append(f"GPU not measured: {_cause(e)}")
            return []
        notes.append(f"GPU not measured, estimated from TDP: {_cause(e)}")
        return [EstimateMeter(gpu_power_w=gpu_tdp_w, gpu_count=len(indices) if indices else 1, source=tdp_source)]
    stack.callback(meter.close)
    return [meter]


def _cpu_parts(country, cpu_power_w, fallback_w, rapl_root, notes, stack) -> list[Meter]:
    """RAPL, else the stated CPU power; CodeCarbon (also for carbon intensity); else, for CPU
    work, the default CPU power."""
    parts: list[Meter] = []
    try:
        rapl = RaplMeter(rapl_root)
    except MeterError as e:
        notes.append(f"RAPL not read: {_cause(e)}")
    else:
        stack.callback(rapl.close)
        parts.append(rapl)
    if cpu_power_w is not None and not parts:
        parts.append(EstimateMeter(cpu_power_w=cpu_power_w, source="the stated CPU power"))
    if country is not None:
        try:
            cc = CodeCarbonMeter(country)
        except MeterError as e:  # a missing codecarbon included
            notes.append(f"CodeCarbon not used: {_cause(e)}")
        else:
            stack.callback(cc.close)
            parts.append(cc)
    if not parts and fallback_w is not None:
        parts.append(EstimateMeter(cpu_power_w=fallback_w,
                                   source=f"the default CPU power ({fallback_w:g} W); state yours with cpu_power_w"))
    return parts
