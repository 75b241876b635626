"""CPU and RAM energy, and grid carbon intensity, from CodeCarbon, offline only.

Always ``codecarbon.OfflineEmissionsTracker`` with a country code, no outputs
(``output_methods=[]``, CodeCarbon 3's form of ``save_to_file=False``) and
``log_level="error"``: the online tracker calls out to the network to locate the
machine and silently assumes a location when it cannot. Nothing is written or sent.

CodeCarbon reads RAPL where it can; otherwise its CPU figure comes from a TDP x load
model or a constant, and its RAM figure always comes from a power model. Those figures
are reported as estimates (``estimated["energy_cpu_j"] = True``); the CPU figure counts
as measured only when CodeCarbon's CPU mode read RAPL.

CodeCarbon also finds NVIDIA GPUs on its own (it calls ``nvmlInit`` when imported); its
GPU figures are ignored here: the NVML meter is the GPU source.

CodeCarbon (pinned to 3.3.x here) has no public per-window API that nests, so this
module reads the tracker's running totals at each window boundary; the few private
attributes it touches are checked when the meter starts, and a change in CodeCarbon
raises a :class:`~scaling.errors.MeterError` saying so instead of returning wrong figures.
"""

from __future__ import annotations

import logging
import threading
import time

from scaling.errors import MeterError, MissingMeterDependencyError, UnknownCountryError

from scaling.units import J_PER_KWH

from .base import Clock, Measurement, MeterBase

#: RAPL counters, which CodeCarbon reads where it can, update about every millisecond.
CODECARBON_RESOLUTION_S = 0.001

#: CodeCarbon CPU modes that read hardware energy counters (RAPL or its Windows driver).
MEASURED_CPU_MODES = frozenset({"intel_rapl", "windows_emi", "intel_power_gadget"})

_INSTALL_HINT = "install codecarbon (`pip install 'diffusion-energy-scaling[carbon]'`)"
_PRIVATE = ("_measure_power_and_energy", "_total_cpu_energy", "_total_ram_energy", "_hardware", "_start_time")


def _known_countries() -> dict:
    from codecarbon.input import DataSource

    return DataSource().get_global_energy_mix_data()


def check_country_iso_code(country_iso_code: str) -> str:
    """The upper-cased code if CodeCarbon's offline energy-mix table knows it.

    Raises :class:`~scaling.errors.UnknownCountryError` for an unknown code, and
    :class:`~scaling.errors.MissingMeterDependencyError` when CodeCarbon is not installed.
    """
    try:
        known = _known_countries()
    except ImportError as e:
        raise MissingMeterDependencyError(f"cannot import codecarbon ({e}); {_INSTALL_HINT}") from e
    code = str(country_iso_code).upper()
    if code not in known:
        raise UnknownCountryError(
            f"`country_iso_code`={country_iso_code!r} is not in CodeCarbon's energy-mix "
            "table; pass a three-letter ISO code such as 'USA', 'FRA' or 'DEU'"
        )
    return code


class CodeCarbonMeter(MeterBase):
    """CPU and RAM energy (mostly estimates) and carbon intensity, offline.

    Parameters
    ----------
    country_iso_code : str
        Three-letter ISO code of where the machine runs (``"USA"``, ``"FRA"``); sets the
        carbon intensity. Required: there is no network lookup.
    tracking_mode : {"machine", "process"}
        CodeCarbon's scope for CPU load and RAM.
    clock : callable
        Seconds, monotonic.

    Raises
    ------
    MissingMeterDependencyError
        CodeCarbon is not installed.
    UnknownCountryError
        The country code is unknown.
    MeterError
        The tracker did not start, or this CodeCarbon lacks what the meter reads.
    """

    name = "codecarbon"
    resolution_s = CODECARBON_RESOLUTION_S

    def __init__(
        self,
        country_iso_code: str = "USA",
        *,
        tracking_mode: str = "machine",
        clock: Clock = time.perf_counter,
    ) -> None:
        super().__init__(clock)
        try:
            from codecarbon import OfflineEmissionsTracker
            from codecarbon.external.hardware import CPU
        except ImportError as e:
            raise MissingMeterDependencyError(f"cannot import codecarbon ({e}); {_INSTALL_HINT}") from e
        code = check_country_iso_code(country_iso_code)
        if tracking_mode not in ("machine", "process"):
            raise MeterError(f"`tracking_mode`={tracking_mode!r}: pass 'machine' or 'process'")
        self.country_iso_code = code
        self._lock = threading.Lock()
        # CodeCarbon applies log_level only after its first messages; quiet it up front.
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = OfflineEmissionsTracker(
            country_iso_code=code,
            # No outputs at all: CodeCarbon 3.x's form of save_to_file=False (and no API,
            # logger, Prometheus or Logfire), which a user's .codecarbon.config cannot
            # turn back on. The save_to_* flags are deprecated in 3.x.
            output_methods=[],
            log_level="error",
            # We measure at window boundaries; its own periodic measurement would race ours.
            measure_power_secs=3600,
            tracking_mode=tracking_mode,
            allow_multiple_runs=True,
        )
        missing = [a for a in _PRIVATE if not hasattr(tracker, a)]
        if missing:
            raise MeterError(
                f"this CodeCarbon ({_version()}) lacks {missing}, which the meter reads; "
                "install codecarbon 3.3.x or use the rapl / estimate meters"
            )
        tracker.start()  # CodeCarbon swallows its own errors here: check it started
        if tracker._start_time is None:
            raise MeterError(
                "CodeCarbon's offline tracker did not start (run with "
                "CODECARBON_LOG_LEVEL=debug to see why); use the rapl / estimate meters"
            )
        scheduler = getattr(tracker, "_scheduler", None)
        if scheduler is not None:
            scheduler.stop()  # the 1 s power monitor keeps running, as it should
        self._tracker = tracker
        self.cpu_mode = next(
            (getattr(h, "_mode", None) for h in tracker._hardware if isinstance(h, CPU)), None
        )
        self.cpu_measured = self.cpu_mode in MEASURED_CPU_MODES
        self.carbon_intensity_g_per_kwh = self._carbon_intensity()

    def _carbon_intensity(self) -> float | None:
        tr = self._tracker
        try:
            from codecarbon.core.units import Energy

            tr._ensure_geo_metadata()
            tr._ensure_emissions_engine()
            kg = tr._emissions.get_private_infra_emissions(Energy.from_energy(kWh=1.0), tr._geo)
            return float(kg) * 1000.0
        # private API drift (AttributeError) or a table without this country (KeyError,
        # ValueError): the intensity is optional, the energy still counts
        except (AttributeError, KeyError, ValueError):
            entry = _known_countries().get(self.country_iso_code, {})
            value = entry.get("carbon_intensity")
            return float(value) if value is not None else None

    def _snapshot(self):
        with self._lock:
            tr = self._tracker
            tr._measure_power_and_energy()
            return self._clock(), tr._total_cpu_energy.kWh, tr._total_ram_energy.kWh

    def _measure(self, key, start, end) -> Measurement:
        (t0, cpu0, ram0), (t1, cpu1, ram1) = start, end
        cpu_j = max(0.0, cpu1 - cpu0) * J_PER_KWH
        ram_j = max(0.0, ram1 - ram0) * J_PER_KWH
        if self.cpu_measured:
            cpu_note = f"CPU read from RAPL by CodeCarbon ({self.cpu_mode})"
        else:
            cpu_note = f"CPU estimated by CodeCarbon ({self.cpu_mode or 'unknown'} mode: TDP/load model)"
        notes = f"{cpu_note}; RAM estimated by CodeCarbon's RAM power model; offline, {self.country_iso_code}"
        return Measurement(
            name=key,
            time_s=t1 - t0,
            energy_gpu_j=None,
            energy_gpu_counter_j=None,
            energy_gpu_sampled_j=None,
            energy_cpu_j=cpu_j,
            energy_ram_j=ram_j,
            per_gpu_j={},
            samples=0,
            estimated={"energy_cpu_j": not self.cpu_measured, "energy_ram_j": True},
            meter=self.name,
            notes=notes,
            carbon_intensity_g_per_kwh=self.carbon_intensity_g_per_kwh,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._tracker.stop()


def _version() -> str:
    try:
        from codecarbon import __version__

        return f"codecarbon {__version__}"
    except ImportError:
        return "codecarbon (unknown version)"
