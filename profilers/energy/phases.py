"""Per-phase energy, time and FLOPs of one diffusers pipeline call.

Hooks wrap each computing component of a pipeline (``forward``; ``decode`` for a VAE) and
cut the call into a chain of meter windows that touch end to end::

    call:   |head| text_encoder |btw| text_encoder |btw| denoiser |btw| denoiser ... |btw| decoder |tail|
    phase:   other  text_encoder  te    text_encoder other denoiser  den  denoiser      other decoder  other

- A window *inside* a component call goes to that component's phase (``text_encoder``,
  ``denoiser``, ``decoder``, ``vocoder``, ``upsampler``).
- A window *between* two calls of the same phase goes to that phase too: the scheduler step
  between two denoiser calls is part of "denoiser, all steps"; tokenising the negative
  prompt between two text-encoder calls is text encoding.
- Everything else (before the first component, between phases, after the last: latent set-up,
  unpacking, post-processing) is ``other``, the unattributed part, reported, never hidden.

The device is synchronised at every boundary (CUDA runs asynchronously), so the work queued
by a component is counted in its own window. Because consecutive windows share their
boundary readings, a hardware counter's quantisation does not pile up over many short
windows. The whole call is also measured as one window of its own (``total``), and the gap
``total - (phases + other)`` is reported: it is the meter's own inconsistency, and should be
near zero.

A phase shorter than the meter can resolve (:func:`meter_resolution_s`) is flagged
``low_confidence``; with ``repeat_short=True`` its component calls are replayed in isolation
(same inputs, after the measured call) until the meter can resolve them, and the phase takes
the per-repeat energy (flag ``phase_repeated``). A phase whose meter read zero or nothing is
never reported as zero: it takes its time share of the whole call's energy, marked as an
estimate.

Nested components (a component calling another hooked one) count toward the outer one.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scaling.errors import MeterError

__all__ = [
    "NVML_COUNTER_RESOLUTION_S",
    "OTHER",
    "PHASE_ORDER",
    "CallMeasurement",
    "PhaseMeasurement",
    "PhaseRecorder",
    "count_phase_flops",
    "meter_resolution_s",
    "rows_of",
]

ENERGY_FIELDS = ("energy_gpu_j", "energy_cpu_j", "energy_ram_j")
PHASE_ORDER = ("text_encoder", "denoiser", "upsampler", "decoder", "vocoder")
OTHER = "other"

#: How often NVML's total-energy counter changes value. Conservative: reported update
#: periods are 20 to 100 ms depending on the GPU generation.
NVML_COUNTER_RESOLUTION_S = 0.1
#: RAPL counters update about every millisecond.
RAPL_RESOLUTION_S = 0.001


# --------------------------------------------------------------------------------------------
# meter resolution
# --------------------------------------------------------------------------------------------

def meter_resolution_s(meter: Any) -> float:
    """The shortest window whose energy ``meter`` can resolve, in seconds.

    A meter may state it (``resolution_s``); otherwise: NVML counter 0.1 s, NVML sampled
    power twice its sampling period, RAPL 1 ms, a replayed trace its median row spacing,
    estimates (time x power) 0. A composite meter is as coarse as its coarsest part.
    """
    stated = getattr(meter, "resolution_s", None)
    if stated is not None:
        return float(stated)
    parts = getattr(meter, "parts", None)
    if parts:
        return max(meter_resolution_s(p) for p in parts)
    kind = type(meter).__name__
    if kind == "NvmlMeter":
        devices = getattr(meter, "devices", ())
        if devices and all(getattr(d, "has_counter", False) for d in devices):
            return NVML_COUNTER_RESOLUTION_S
        return 2.0 * float(getattr(meter, "sample_interval_s", 0.05))
    if kind in ("RaplMeter", "CodeCarbonMeter"):
        return RAPL_RESOLUTION_S
    if kind == "ReplayMeter":
        spacings = []
        for tr in getattr(meter, "traces", {}).values():
            t = tr.t_s
            spacings.append(statistics.median(t[i + 1] - t[i] for i in range(len(t) - 1)))
        return max(spacings) if spacings else 0.0
    return 0.0


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

@dataclass
class PhaseMeasurement:
    """What one phase of one call cost. Energies in J for the whole call (batch included)."""

    phase: str
    time_s: float = 0.0
    energy_gpu_j: float | None = None
    energy_cpu_j: float | None = None
    energy_ram_j: float | None = None
    estimated: dict[str, bool] = field(default_factory=dict)
    calls: int = 0
    components: tuple[str, ...] = ()
    windows: int = 0
    samples: int = 0
    flop: float | None = None
    low_confidence: bool = False
    repeated: int = 0
    meter: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def energy_j(self) -> float | None:
        """GPU + CPU + RAM over the fields that have a value."""
        vals = [getattr(self, f) for f in ENERGY_FIELDS if getattr(self, f) is not None]
        return sum(vals) if vals else None

    def energy(self, fld: str) -> float | None:
        return getattr(self, fld)

    def add(self, m: Any) -> None:
        """Accumulate one meter window (a :class:`Measurement`)."""
        self.time_s += m.time_s
        self.windows += 1
        self.samples += getattr(m, "samples", 0) or 0
        for f in ENERGY_FIELDS:
            v = getattr(m, f)
            if v is not None:
                setattr(self, f, (getattr(self, f) or 0.0) + v)
                self.estimated[f] = self.estimated.get(f, False) or bool(m.estimated.get(f, False))
        if not self.meter:
            self.meter = m.meter
        if m.notes and m.notes not in self.notes:
            self.notes.append(m.notes)

    @property
    def any_estimated(self) -> bool:
        return any(self.estimated.get(f, False) for f in ENERGY_FIELDS if getattr(self, f) is not None)

    @property
    def primary_estimated(self) -> bool:
        """Whether the figure that matters most is an estimate: the GPU energy where there
        is one, else CPU, else RAM."""
        for f in ENERGY_FIELDS:
            if getattr(self, f) is not None:
                return bool(self.estimated.get(f, False))
        return True


@dataclass
class CallMeasurement:
    """One pipeline call: its phases, the unattributed rest, the total and the gap."""

    total: PhaseMeasurement
    phases: dict[str, PhaseMeasurement]
    other: PhaseMeasurement
    resolution_s: float
    gap_time_s: float
    gap_j: dict[str, float | None]
    component_calls: dict[str, int]

    @property
    def primary_field(self) -> str | None:
        for f in ENERGY_FIELDS:
            if self.total.energy(f) is not None:
                return f
        return None

    def gap_fraction(self) -> float | None:
        """|total - (phases + other)| / total, on the primary energy field."""
        f = self.primary_field
        if f is None or not self.total.energy(f):
            return None
        g = self.gap_j.get(f)
        return None if g is None else abs(g) / self.total.energy(f)

    def summary(self) -> str:
        """One line: how the phases add up to the whole call."""
        f = self.primary_field
        if f is None:
            return f"no energy measured; phases cover {self._time_share():.0%} of {self.total.time_s:.3g} s"
        tot = self.total.energy(f) or 0.0
        ph = sum((p.energy(f) or 0.0) for p in self.phases.values())
        oth = self.other.energy(f) or 0.0
        label = f.removeprefix("energy_").removesuffix("_j").upper()
        parts = [
            f"{label}: phases {ph:.4g} J + unattributed {oth:.4g} J vs total {tot:.4g} J measured on its own",
            f"gap {self.gap_j.get(f) or 0.0:+.3g} J ({(self.gap_fraction() or 0.0):.1%})",
            f"phases cover {ph / tot:.1%} of the call's energy" if tot else "",
            f"{self._time_share():.1%} of its {self.total.time_s:.4g} s",
        ]
        return "; ".join(p for p in parts if p)

    def _time_share(self) -> float:
        t = sum(p.time_s for p in self.phases.values())
        return t / self.total.time_s if self.total.time_s > 0 else 0.0


# --------------------------------------------------------------------------------------------
# wrapping components
# --------------------------------------------------------------------------------------------

Around = Callable[[str, str, Callable[[], Any], tuple, dict], Any]


class _Hooks:
    """Replace ``forward`` (``decode`` for a VAE) of each component by a wrapper that calls
    ``around(role, name, call, args, kwargs)``; ``remove()`` restores what was there."""

    def __init__(self, pipe: Any, roles: Mapping[str, str], around: Around) -> None:
        self._saved: list[tuple[Any, str, bool, Any]] = []
        self.originals: dict[str, Callable] = {}
        try:
            for name, role in roles.items():
                module = getattr(pipe, name, None)
                if module is None:
                    continue
                method = "decode" if role == "decoder" and hasattr(module, "decode") else "forward"
                self._wrap(module, method, name, role, around)
        except BaseException:
            self.remove()
            raise

    def _wrap(self, module: Any, method: str, name: str, role: str, around: Around) -> None:
        had = method in module.__dict__
        previous = module.__dict__.get(method)
        original = getattr(module, method)

        def wrapper(*args, **kwargs):
            return around(role, name, lambda: original(*args, **kwargs), args, kwargs)

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        object.__setattr__(module, method, wrapper)
        self._saved.append((module, method, had, previous))
        self.originals[name] = original

    def remove(self) -> None:
        while self._saved:
            module, method, had, previous = self._saved.pop()
            if had:
                object.__setattr__(module, method, previous)
            else:
                try:
                    object.__delattr__(module, method)
                except AttributeError:
                    pass


def _sync_fn(device: str | None) -> Callable[[], None]:
    if not device or device == "cpu":
        return lambda: None
    from profilers.energy.pipelines import sync_device

    return lambda: sync_device(device)


# --------------------------------------------------------------------------------------------
# the recorder
# --------------------------------------------------------------------------------------------

class PhaseRecorder:
    """Measures pipeline calls phase by phase with one :class:`~profilers.energy.meters.Meter`.

    Parameters
    ----------
    pipe : diffusers pipeline
    meter : Meter
        Any meter (``begin_window`` / ``end_window``); windows nest.
    roles : mapping
        Component attribute -> phase, e.g. ``{"text_encoder": "text_encoder", "unet":
        "denoiser", "vae": "decoder"}`` (:attr:`BuiltPipeline.roles`).
    device : str
        Synchronised at every boundary (``cuda``, ``cuda:1``; ``cpu`` needs none).
    flops : mapping, optional
        Phase -> FLOP of the whole call, copied onto the results.
    resolution_s : float, optional
        Shortest window the meter resolves; default :func:`meter_resolution_s`.
    repeat_short : bool
        Replay phases shorter than the resolution in isolation (see module docstring).
    min_repeat_s : float, optional
        How long the replay of a short phase runs at least; default 5 x the resolution.
    sync : callable, optional
        The device synchronisation (default: from ``device``); tests count its calls.

    Use as a context manager (hooks are installed on enter and removed on exit)::

        with PhaseRecorder(pipe, meter, roles, device="cuda") as rec:
            out, m = rec.measure(pipe, **kwargs)
    """

    def __init__(
        self,
        pipe: Any,
        meter: Any,
        roles: Mapping[str, str],
        *,
        device: str | None = "cpu",
        flops: Mapping[str, float] | None = None,
        resolution_s: float | None = None,
        repeat_short: bool = False,
        min_repeat_s: float | None = None,
        max_repeats: int = 1000,
        sync: Callable[[], None] | None = None,
    ) -> None:
        self.pipe = pipe
        self.meter = meter
        self.roles = dict(roles)
        self.device = device
        self.flops = dict(flops or {})
        self.resolution_s = meter_resolution_s(meter) if resolution_s is None else float(resolution_s)
        self.repeat_short = repeat_short
        self.min_repeat_s = (5.0 * self.resolution_s) if min_repeat_s is None else float(min_repeat_s)
        self.max_repeats = int(max_repeats)
        self._sync = sync if sync is not None else _sync_fn(device)
        self._hooks: _Hooks | None = None
        self._active = False
        self._inside: str | None = None
        self._n = 0

    # -- lifetime ---------------------------------------------------------------------------
    def install(self) -> "PhaseRecorder":
        if self._hooks is None:
            self._hooks = _Hooks(self.pipe, self.roles, self._around)
        return self

    def remove(self) -> None:
        if self._hooks is not None:
            self._hooks.remove()
            self._hooks = None

    def __enter__(self) -> "PhaseRecorder":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.remove()

    # -- one call ---------------------------------------------------------------------------
    def measure(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, CallMeasurement]:
        """Run ``fn(*args, **kwargs)`` (usually the pipeline) and measure it phase by phase."""
        if self._hooks is None:
            raise MeterError("PhaseRecorder.measure() needs the hooks: use `with PhaseRecorder(...) as rec:`")
        self._phases: dict[str, PhaseMeasurement] = {}
        self._other = PhaseMeasurement(OTHER)
        self._component_calls: dict[str, int] = {}
        self._captured: dict[str, tuple[tuple, dict]] = {}
        self._open_keys: list[str] = []
        self._sync()
        self.meter.begin_window("phases:call")
        self._open_keys.append("phases:call")
        try:
            self._open("head", None)
            self._active = True
            out = fn(*args, **kwargs)
            self._active = False
            self._sync()
            self._close_segment(next_role=None)
            total_m = self.meter.end_window("phases:call")
            self._open_keys.pop()
        except BaseException:
            self._active = False
            self._inside = None
            for key in reversed(self._open_keys):
                try:
                    self.meter.end_window(key)
                except Exception:  # noqa: BLE001 - the call's own error wins
                    pass
            self._open_keys.clear()
            raise
        total = PhaseMeasurement("total")
        total.add(total_m)
        total.calls = 1
        result = self._result(total)
        if self.repeat_short:
            self._repeat_short(result)
        return out, result

    # -- the chain of windows ---------------------------------------------------------------
    def _open(self, kind: str, role: str | None) -> None:
        self._n += 1
        self._seg_key = f"phases:seg{self._n}"
        self._seg_kind = kind
        self._seg_role = role
        self.meter.begin_window(self._seg_key)
        self._open_keys.append(self._seg_key)

    def _close_segment(self, next_role: str | None) -> None:
        m = self.meter.end_window(self._seg_key)
        self._open_keys.remove(self._seg_key)
        kind, role = self._seg_kind, self._seg_role
        if kind == "in" or (kind == "between" and role is not None and role == next_role):
            self._phase(role).add(m)
        else:
            self._other.add(m)

    def _phase(self, role: str) -> PhaseMeasurement:
        if role not in self._phases:
            self._phases[role] = PhaseMeasurement(role)
        return self._phases[role]

    def _around(self, role: str, name: str, call: Callable[[], Any], args: tuple, kwargs: dict) -> Any:
        if not self._active or self._inside is not None:
            return call()  # not measuring, or nested inside another component
        self._sync()
        self._close_segment(next_role=role)
        self._open("in", role)
        self._inside = name
        if self.repeat_short and name not in self._captured:
            self._captured[name] = (args, kwargs)
        try:
            out = call()
        finally:
            self._inside = None
        self._sync()
        self._close_segment(next_role=None)
        self._open("between", role)
        ph = self._phase(role)
        ph.calls += 1
        if name not in ph.components:
            ph.components = (*ph.components, name)
        self._component_calls[name] = self._component_calls.get(name, 0) + 1
        return out

    # -- results ------------------------------------------------------------------------------
    def _result(self, total: PhaseMeasurement) -> CallMeasurement:
        order = {r: i for i, r in enumerate(PHASE_ORDER)}
        phases = dict(sorted(self._phases.items(), key=lambda kv: order.get(kv[0], len(order))))
        for role, ph in phases.items():
            ph.flop = self.flops.get(role)
            ph.meter = ph.meter or total.meter
            if ph.time_s < self.resolution_s:
                ph.low_confidence = True
                ph.notes.insert(0, f"shorter than the meter resolution ({ph.time_s * 1e3:.3g} ms < "
                                   f"{self.resolution_s * 1e3:.3g} ms): low confidence")
        fl = [p.flop for p in phases.values()]
        total.flop = sum(fl) if fl and all(v is not None for v in fl) else None
        parts = [*phases.values(), self._other]
        gap_j: dict[str, float | None] = {}
        for f in ENERGY_FIELDS:
            t = total.energy(f)
            gap_j[f] = None if t is None else t - sum((p.energy(f) or 0.0) for p in parts)
        gap_t = total.time_s - sum(p.time_s for p in parts)
        result = CallMeasurement(total=total, phases=phases, other=self._other, resolution_s=self.resolution_s,
                                 gap_time_s=gap_t, gap_j=gap_j, component_calls=dict(self._component_calls))
        for ph in phases.values():
            _never_zero(ph, total)
        return result

    def _repeat_short(self, result: CallMeasurement) -> None:
        """Replay each low-confidence phase's component calls until the meter resolves them."""
        import torch

        if self.resolution_s <= 0 or self._hooks is None:
            return
        for role, ph in result.phases.items():
            if not ph.low_confidence:
                continue
            calls = [(name, self._captured[name], result.component_calls.get(name, 1))
                     for name in ph.components if name in self._captured]
            if not calls:
                continue
            rounds = 0
            key = f"phases:repeat:{role}"
            self._sync()
            self.meter.begin_window(key)
            t0 = time.perf_counter()
            try:
                with torch.no_grad():
                    while rounds < self.max_repeats and (rounds < 3 or time.perf_counter() - t0 < self.min_repeat_s):
                        for name, (args, kwargs), n in calls:
                            fn = self._hooks.originals[name]
                            for _ in range(n):
                                fn(*args, **kwargs)
                        rounds += 1
                self._sync()
            finally:
                m = self.meter.end_window(key)
            rep = PhaseMeasurement(role)
            rep.add(m)
            if m.time_s < self.resolution_s:
                ph.notes.append(f"replayed {rounds}x in {m.time_s * 1e3:.3g} ms: still below the resolution")
                continue
            for f in ENERGY_FIELDS:
                v = rep.energy(f)
                if v is not None and v > 0:
                    setattr(ph, f, v / rounds)
                    ph.estimated[f] = bool(rep.estimated.get(f, False))
            ph.repeated = rounds
            ph.low_confidence = False
            ph.notes[:] = [n for n in ph.notes if "low confidence" not in n]
            ph.notes.insert(0, f"energy from {rounds} isolated repeats of the phase's calls "
                               f"({m.time_s:.3g} s in all; in-call time {ph.time_s * 1e3:.3g} ms was below the "
                               f"{self.resolution_s * 1e3:.3g} ms meter resolution)")


def _never_zero(ph: PhaseMeasurement, total: PhaseMeasurement) -> None:
    """A phase the meter read as 0 J (or not at all) takes its time share of the call."""
    share = ph.time_s / total.time_s if total.time_s > 0 else 0.0
    for f in ENERGY_FIELDS:
        tot = total.energy(f)
        v = ph.energy(f)
        if tot is None or tot <= 0 or (v is not None and v > 0):
            continue
        setattr(ph, f, tot * share if share > 0 else None)
        if getattr(ph, f) is not None:
            ph.estimated[f] = True
            ph.low_confidence = True
            ph.notes.append(f"{f}: the meter read {'0 J' if v is not None else 'nothing'}; "
                            f"estimated as the phase's time share ({share:.2%}) of the call's {f}")


# --------------------------------------------------------------------------------------------
# FLOPs by phase, counted on a real call
# --------------------------------------------------------------------------------------------

def count_phase_flops(pipe: Any, roles: Mapping[str, str], fn: Callable[..., Any], *args: Any,
                      **kwargs: Any) -> dict[str, float]:
    """FLOP of each phase over one real call of ``fn`` (forward, 1 multiply-add = 2 FLOP).

    Each outermost component call runs under ``FlopCounterMode`` with the math attention
    kernel forced (on real CPU tensors the fused SDPA kernels escape the counter). For small
    and test pipelines; full-size models take their FLOPs from :func:`profilers.flops.profile`.
    """
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    out: dict[str, float] = {}
    state = {"inside": False}

    def around(role, name, call, a, kw):
        if state["inside"]:
            return call()
        state["inside"] = True
        counter = FlopCounterMode(display=False)
        try:
            with sdpa_kernel([SDPBackend.MATH]), counter:
                result = call()
        finally:
            state["inside"] = False
        out[role] = out.get(role, 0.0) + float(counter.get_total_flops())
        return result

    hooks = _Hooks(pipe, roles, around)
    try:
        with torch.no_grad():
            fn(*args, **kwargs)
    finally:
        hooks.remove()
    return out


def rows_of(result: CallMeasurement, *, include_total: bool = True) -> list[dict[str, Any]]:
    """Runs-table fields of each phase (and the total) of one call: ``phase``, energies,
    ``duration_s``, ``meter``, ``estimated``, ``flop``, ``flags``, ``notes``.

    The unattributed rest (``other``) has no row of its own (the runs schema has no such
    phase): its size and the gap are written into the total row's notes.
    """
    rows = []
    for ph in result.phases.values():
        rows.append(_row(ph))
    if include_total:
        row = _row(result.total)
        f = result.primary_field
        extra = [result.summary()]
        if result.other.time_s > 0:
            extra.append(f"unattributed (latent set-up, between phases, post-processing): "
                         f"{result.other.time_s:.4g} s" + (f", {result.other.energy(f):.4g} J" if f and result.other.energy(f) is not None else ""))
        row["notes"] = "; ".join([*extra, row["notes"]] if row["notes"] else extra)
        gf = result.gap_fraction()
        flags = [x for x in row["flags"].split(";") if x]
        if gf is not None and gf > 0.05:
            flags.append("phase_gap")
        if any(p.low_confidence for p in result.phases.values()):
            flags.append("phase_low_confidence")
        row["flags"] = ";".join(dict.fromkeys(flags))
        rows.append(row)
    return rows


def _row(ph: PhaseMeasurement) -> dict[str, Any]:
    flags = []
    if ph.low_confidence:
        flags.append("low_confidence")
    if ph.repeated:
        flags.append("phase_repeated")
    est = sorted(f for f in ENERGY_FIELDS if getattr(ph, f) is not None and ph.estimated.get(f, False))
    notes = list(ph.notes)
    if est:
        notes.insert(0, "estimated: " + ", ".join(est))
    if ph.calls and ph.phase != "total":
        notes.insert(0, f"{ph.calls} call(s) of {', '.join(ph.components)}")
    return {
        "phase": ph.phase,
        "duration_s": ph.time_s if ph.time_s > 0 else None,
        "energy_gpu_j": _pos(ph.energy_gpu_j),
        "energy_cpu_j": _pos(ph.energy_cpu_j),
        "energy_ram_j": _pos(ph.energy_ram_j),
        "meter": ph.meter or "none",
        "estimated": ph.primary_estimated,
        "flop": ph.flop,
        "flags": ";".join(flags),
        "notes": "; ".join(notes),
    }


def _pos(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) and v > 0 else None
