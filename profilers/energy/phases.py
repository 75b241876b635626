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

The results (:class:`PhaseMeasurement`, :class:`CallMeasurement`, :func:`rows_of`,
:func:`meter_resolution_s`) live in :mod:`profilers.energy.phase_results` and are
re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from profilers.energy.meters.base import Clock
from profilers.energy.phase_results import (
    ENERGY_FIELDS,
    NVML_COUNTER_RESOLUTION_S,
    OTHER,
    PHASE_ORDER,
    CallMeasurement,
    PhaseMeasurement,
    meter_resolution_s,
    rows_of,
)
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
    from profilers.energy.devices import sync_device

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
    clock : callable
        Seconds, monotonic, for how long the replay of a short phase has run; default
        ``time.perf_counter`` (tests inject the fake clock their meter reads).

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
        clock: Clock = time.perf_counter,
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
        self._clock = clock
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
        self._resolution_notes: dict[str, str] = {}
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
                except MeterError:  # closing what the failed call left open; its own error is the news
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
                note = (f"shorter than the meter resolution ({ph.time_s * 1e3:.3g} ms < "
                        f"{self.resolution_s * 1e3:.3g} ms): low confidence")
                self._resolution_notes[role] = note
                ph.notes.insert(0, note)
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
            t0 = self._clock()
            try:
                with torch.no_grad():
                    while rounds < self.max_repeats and (rounds < 3 or self._clock() - t0 < self.min_repeat_s):
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
            note = self._resolution_notes.get(role)
            if note in ph.notes:
                ph.notes.remove(note)
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


