"""The meter interface, the measurement record, and the pieces every backend shares.

A meter measures *windows*: ``begin_window(key)`` ... ``end_window(key)`` returns one
:class:`Measurement`. Windows may nest (a whole pipeline call and each of its phases) and
are told apart by ``key``. Every figure says whether it was measured or estimated.

Units: joules, watts and seconds in the record. Vendor units (NVML's mJ and mW, RAPL's
uJ, CodeCarbon's kWh) stay in variable names (``power_mw``, ``energy_mj``) and are
converted once, with the constants below, when a :class:`Measurement` is built.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from contextlib import ExitStack
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from scaling.errors import MeterError

# One conversion per vendor unit, used at the edge only.
J_PER_MJ = 1e-3  # NVML energy counter: millijoules
W_PER_MW = 1e-3  # NVML power: milliwatts
J_PER_UJ = 1e-6  # RAPL energy_uj: microjoules

#: Field names of :class:`Measurement` that can carry an ``estimated`` flag.
ENERGY_FIELDS = ("energy_gpu_j", "energy_cpu_j", "energy_ram_j")
GPU_FIELDS = ("energy_gpu_j", "energy_gpu_counter_j", "energy_gpu_sampled_j")

Clock = Callable[[], float]


def _copy(mapping: Mapping | None) -> dict:
    # A plain dict copy (not a MappingProxyType): measurements must pickle, since
    # sweeps hand them between processes.
    return dict(mapping or {})


@dataclass(frozen=True)
class Measurement:
    """What one meter saw during one window.

    Attributes
    ----------
    name : str
        The window key.
    time_s : float
        Wall-clock length of the window.
    energy_gpu_j : float or None
        GPU energy summed over the measured GPUs; the preferred source per GPU is the
        hardware energy counter, else the integral of sampled power. None: not measured.
    energy_gpu_counter_j, energy_gpu_sampled_j : float or None
        Both GPU sources, kept because they can disagree (NVML power readings on
        recent GPUs are averaged over about one second; the counter is not). None
        where at least one measured GPU lacks that source.
    energy_cpu_j, energy_ram_j : float or None
        CPU package and RAM energy. None: not measured.
    per_gpu_j : Mapping[int, float]
        GPU energy per GPU, keyed by the index the process uses (``cuda:N``).
    samples : int
        Power samples taken inside the window.
    estimated : Mapping[str, bool]
        For each energy field that has a value: True when it is an estimate
        (a TDP, a constant, a model), False when a hardware counter or sensor read it.
    meter : str
        The backends that produced the figures, e.g. ``"nvml+codecarbon"``.
    notes : str
        Fallbacks taken, in words (``"no energy counter: integrated sampled power"``).
    carbon_intensity_g_per_kwh : float or None
        Grid carbon intensity used for CO2e (CodeCarbon, offline), if known.
    assumed_power_w : Mapping[str, float]
        The powers an estimate assumed, e.g. ``{"gpu": 700.0}``; empty when nothing
        was assumed.
    """

    name: str
    time_s: float
    energy_gpu_j: float | None
    energy_gpu_counter_j: float | None
    energy_gpu_sampled_j: float | None
    energy_cpu_j: float | None
    energy_ram_j: float | None
    per_gpu_j: Mapping[int, float]
    samples: int
    estimated: Mapping[str, bool]
    meter: str
    notes: str
    carbon_intensity_g_per_kwh: float | None = None
    assumed_power_w: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_gpu_j", _copy(self.per_gpu_j))
        object.__setattr__(self, "estimated", _copy(self.estimated))
        object.__setattr__(self, "assumed_power_w", _copy(self.assumed_power_w))
        for name in (*GPU_FIELDS, "energy_cpu_j", "energy_ram_j"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise MeterError(
                    f"`{name}`={value!r} in window {self.name!r} from the {self.meter} "
                    "meter: an energy must be a finite number >= 0; this is a meter bug, "
                    "please report it with the meter's notes"
                )

    @property
    def any_estimated(self) -> bool:
        """True when at least one energy figure is an estimate."""
        return any(self.estimated.values())

    @property
    def energy_total_j(self) -> float | None:
        """GPU + CPU + RAM energy over the fields that have a value; None if none has."""
        parts = [getattr(self, f) for f in ENERGY_FIELDS if getattr(self, f) is not None]
        return sum(parts) if parts else None

    def as_row(self) -> dict[str, Any]:
        """The runs-table columns this window fills (``phase`` is the window key)."""
        flagged = sorted(k for k, v in self.estimated.items() if v)
        notes = self.notes
        if flagged:
            est = "estimated: " + ", ".join(flagged)
            notes = f"{est}; {notes}" if notes else est
        return {
            "phase": self.name,
            "duration_s": self.time_s,
            "energy_gpu_j": self.energy_gpu_j,
            "energy_cpu_j": self.energy_cpu_j,
            "energy_ram_j": self.energy_ram_j,
            "meter": self.meter,
            "notes": notes,
        }


@runtime_checkable
class Meter(Protocol):
    """What the measurement runner calls. Windows may nest; keys tell them apart."""

    name: str

    def begin_window(self, key: str) -> None: ...

    def end_window(self, key: str) -> Measurement: ...

    def close(self) -> None: ...


class MeterBase:
    """Shared window bookkeeping: one open window per key, and a context manager.

    Subclasses implement ``_snapshot()`` (cheap, returns anything) and
    ``_measure(key, start, end) -> Measurement``.
    """

    name = "meter"

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._open: dict[str, Any] = {}
        self._closed = False

    # -- the interface -------------------------------------------------------------
    def begin_window(self, key: str) -> None:
        self._check_new_window(key)
        self._open[key] = self._snapshot()

    def end_window(self, key: str) -> Measurement:
        self._check_usable()
        try:
            start = self._open.pop(key)
        except KeyError:
            raise MeterError(
                f"no open window {key!r} on the {self.name} meter "
                f"(open: {sorted(self._open) or 'none'}); call begin_window({key!r}) first"
            ) from None
        return self._measure(key, start, self._snapshot())

    def close(self) -> None:
        self._closed = True

    @property
    def open_windows(self) -> tuple[str, ...]:
        return tuple(self._open)

    # -- helpers -------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closed:
            raise MeterError(f"the {self.name} meter is closed; create a new one")

    def _check_new_window(self, key: str) -> None:
        """The meter is open and no window ``key`` is open on it yet."""
        self._check_usable()
        if key in self._open:
            raise MeterError(
                f"window {key!r} is already open on the {self.name} meter; "
                "end it first or give the nested window another key"
            )

    def _snapshot(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _measure(self, key: str, start: Any, end: Any) -> Measurement:  # pragma: no cover
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CounterAccumulator:
    """Turns a raw, wrapping or resettable hardware energy counter into a monotonic total.

    Units are the counter's own (mJ for NVML, uJ for RAPL). ``modulus`` is where the
    counter wraps to 0 (RAPL's ``max_energy_range_uj``; 2**64 for NVML's unsigned
    64-bit counter). A decrease is read as a wrap when the counter is known to wrap
    within a small range (``resettable=False``) or when the previous value sat in the
    upper half of the range; otherwise as a reset (driver reload), in which case the
    new raw value is the energy since the reset (a lower bound for the tick). The
    total never decreases.
    """

    __slots__ = ("modulus", "resettable", "last", "total", "wraps", "resets")

    def __init__(self, first: int, modulus: int | None = None, resettable: bool = True):
        self.modulus = modulus
        self.resettable = resettable
        self.last = first
        self.total = 0
        self.wraps = 0
        self.resets = 0

    def update(self, raw: int) -> None:
        delta = raw - self.last
        if delta < 0:
            m = self.modulus
            if m is not None and (not self.resettable or self.last >= m // 2):
                delta += m
                self.wraps += 1
            else:
                delta = raw
                self.resets += 1
            if delta < 0:  # raw beyond the stated range: never count negative energy
                delta = 0
        self.total += delta
        self.last = raw


def _pick(parts: Sequence[Measurement], fld: str) -> Measurement | None:
    """The part that supplies ``fld``: the first measured value, else the first estimate."""
    fallback = None
    for m in parts:
        if getattr(m, fld) is None:
            continue
        if not m.estimated.get(fld, False):
            return m
        if fallback is None:
            fallback = m
    return fallback


def merge_measurements(
    name: str, time_s: float, parts: Sequence[Measurement], notes: Sequence[str] = ()
) -> Measurement:
    """Merge what several meters saw in the same window.

    Per field, a measured value wins over an estimate; among equals, the earlier part
    wins. The GPU fields (both sources, per-GPU figures, sample count) come together
    from the one part that supplied ``energy_gpu_j``.
    """
    gpu = _pick(parts, "energy_gpu_j")
    cpu = _pick(parts, "energy_cpu_j")
    ram = _pick(parts, "energy_ram_j")
    estimated: dict[str, bool] = {}
    for fld, src in (("energy_gpu_j", gpu), ("energy_cpu_j", cpu), ("energy_ram_j", ram)):
        if src is not None:
            estimated[fld] = src.estimated.get(fld, False)
    used = [m for m in parts if m is gpu or m is cpu or m is ram]
    assumed: dict[str, float] = {}
    for m in used:
        for k, v in m.assumed_power_w.items():
            assumed.setdefault(k, v)
    carbon = next(
        (m.carbon_intensity_g_per_kwh for m in parts if m.carbon_intensity_g_per_kwh is not None),
        None,
    )
    all_notes = list(notes) + [f"{m.meter}: {m.notes}" for m in parts if m.notes]
    return Measurement(
        name=name,
        time_s=time_s,
        energy_gpu_j=gpu.energy_gpu_j if gpu else None,
        energy_gpu_counter_j=gpu.energy_gpu_counter_j if gpu else None,
        energy_gpu_sampled_j=gpu.energy_gpu_sampled_j if gpu else None,
        energy_cpu_j=cpu.energy_cpu_j if cpu else None,
        energy_ram_j=ram.energy_ram_j if ram else None,
        per_gpu_j=gpu.per_gpu_j if gpu else {},
        samples=gpu.samples if gpu else max((m.samples for m in parts), default=0),
        estimated=estimated,
        meter="+".join(dict.fromkeys(m.meter for m in parts)) or "none",
        notes="; ".join(all_notes),
        carbon_intensity_g_per_kwh=carbon,
        assumed_power_w=assumed,
    )


class CompositeMeter(MeterBase):
    """Several meters run over the same windows; their figures are merged.

    Order the parts by priority (GPU meter first). Windows open in reverse order and
    close in order, so the GPU meter's window is the innermost one, closest to the work.
    """

    def __init__(self, parts: Sequence[Meter], notes: Sequence[str] = (), clock: Clock = time.perf_counter):
        super().__init__(clock)
        if not parts:
            raise MeterError("CompositeMeter needs at least one meter; pass e.g. [EstimateMeter()]")
        self.parts = tuple(parts)
        self.notes = tuple(notes)
        self.name = "+".join(p.name for p in self.parts)

    @property
    def resolution_s(self) -> float:
        """As coarse as the coarsest part (a part that states none resolves any window)."""
        return max(float(getattr(p, "resolution_s", 0.0)) for p in self.parts)

    def begin_window(self, key: str) -> None:
        self._check_new_window(key)
        begun: list[Meter] = []
        try:
            for p in reversed(self.parts):
                p.begin_window(key)
                begun.append(p)
        except BaseException:
            for p in begun:
                try:
                    p.end_window(key)
                except MeterError:  # undoing what began; the error that stopped it is the news
                    pass
            raise
        self._open[key] = self._clock()

    def end_window(self, key: str) -> Measurement:
        self._check_usable()
        if key not in self._open:
            raise MeterError(
                f"no open window {key!r} on the {self.name} meter "
                f"(open: {sorted(self._open) or 'none'}); call begin_window({key!r}) first"
            )
        parts = [p.end_window(key) for p in self.parts]
        t1 = self._clock()
        t0 = self._open.pop(key)
        return merge_measurements(key, t1 - t0, parts, self.notes)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []

        def close(p: Meter) -> None:
            try:
                p.close()
            except MeterError as e:  # close them all, then report
                errors.append(f"{p.name}: {e}")

        with ExitStack() as stack:  # every part closes even if one raises something else
            for p in reversed(self.parts):
                stack.callback(close, p)
        if errors:
            raise MeterError("could not close every meter: " + "; ".join(errors))


class _OwnerGone(Exception):
    """The object a :class:`SleepLoop` served was garbage-collected."""


class SleepLoop:
    """A daemon thread that calls ``fn`` every ``interval_s`` until stopped.

    Sleep-based (``Event.wait``), scheduled on a fixed grid so it does not drift; when it
    falls behind it skips ahead instead of bursting. An exception stops the loop and is
    kept in ``error``: the owner raises it at its next window boundary (mapped to a
    :class:`MeterError` when it is the vendor's, as it is otherwise).
    """

    def __init__(self, fn: Callable[[], None], interval_s: float, name: str) -> None:
        self._fn = fn
        self._interval = interval_s
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @classmethod
    def calling(cls, method: Callable[[], None], interval_s: float, name: str) -> SleepLoop:
        """A loop that holds ``method``'s owner weakly, so a forgotten meter can be
        garbage-collected (its ``__del__`` then stops the loop) and the loop ends."""
        ref = weakref.WeakMethod(method)

        def tick() -> None:
            bound = ref()
            if bound is None:
                raise _OwnerGone
            bound()

        return cls(tick, interval_s, name)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        clock = time.perf_counter
        interval = self._interval
        wait = self._stop.wait
        fn = self._fn
        next_t = clock() + interval
        try:
            while not wait(max(0.0, next_t - clock())):
                fn()
                next_t += interval
                now = clock()
                if next_t < now:
                    next_t = now + interval
        except _OwnerGone:
            pass
        except Exception as e:  # noqa: BLE001 - a thread's error: handed to the owner, who raises it
            self.error = e

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(1.0, 5 * self._interval))
