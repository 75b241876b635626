"""Measure your own pipeline in one line: :func:`track`, a context manager and decorator.

::

    with scaling.track(pipe, out="runs.parquet") as run:
        pipe(prompt, num_inference_steps=30)
    run.phases      # {"text_encoder": ..., "denoiser": ..., "decoder": ...}: energy (J) and time (s)

    @scaling.track(pipe, out="runs.parquet")          # the decorator form: every call of generate()
    def generate(prompt): ...

    with scaling.track(name="upscale", out="runs.parquet") as run:   # code that is not a pipeline
        upscale(images)

- **Pipeline form.** Every call of ``pipe`` inside the block is one measured window, cut into
  phases by the hooks of :class:`~profilers.energy.phases.PhaseRecorder` (text encoders,
  denoiser, decoder, vocoder; the device synchronised at every boundary), and appended at
  once to ``out`` as runs rows (:func:`scaling.runs.append_runs`): one row per phase and a
  ``total`` row, with the columns ``scaling measure`` writes (see
  :mod:`profilers.energy.run_rows`). The setting is read from the call's arguments
  (``num_inference_steps``, ``height``, ``width``, ``num_frames``, ``audio_length_in_s``,
  ``guidance_scale``, ``num_*_per_prompt``, the batch from a prompt list), the signature's
  defaults, what the pipeline reports after the call (``num_timesteps``,
  ``do_classifier_free_guidance``) and the output's shape; the model from
  ``pipe.name_or_path`` (its registry id where it resolves, which also gives the phases'
  closed-form FLOPs) or ``local:<PipelineClass>``.
- **Plain form** (``name=...``, no pipeline): one ``total`` row for the whole block, whose
  ``model`` is ``name``.
- **Nesting.** A track inside a track shares the outer one's meter (windows nest) and writes
  its own rows: the inner one measures each call of its pipeline phase by phase; an outer
  track of the same pipeline records the call's ``total``; an outer plain track the whole block.
- **No GPU.** The meter is :func:`~profilers.energy.meters.make_meter`'s (``auto``: Zeus for a
  GPU, RAPL / CodeCarbon for the CPU); where nothing measures, energies are time x an assumed
  power, and every such row says so (``estimated`` true, ``meter`` ``estimate``, the power in
  the notes).

``out`` is checked when :func:`track` is called, before any work: a runs table (``.parquet``
or ``.csv``) in an existing folder, an existing one a runs table to append to
(:func:`scaling.runs.check_runs_output`), or None to keep the results in memory only.

How the model and setting of a call are read lives in :mod:`profilers.energy.track_setting`.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from profilers.energy.meters import make_meter
from profilers.energy.meters.base import Measurement
from profilers.energy.phase_results import ENERGY_FIELDS, PHASE_ORDER, CallMeasurement, PhaseMeasurement, rows_of
from profilers.energy.run_rows import call_rows
from profilers.energy.track_setting import (
    NO_SPEC,
    closed_form_flops,
    gpu_key,
    gpu_name,
    read_setting,
    registered,
    setting_digest,
)
from scaling.errors import InvalidSettingError, MeterError

__all__ = ["TRACK_SOURCE", "Tracker", "track"]

TRACK_SOURCE = "scaling-track"
"""The ``source`` of every row :func:`track` writes."""

_local = threading.local()  # this thread's active trackers (outermost first), and whether one records phases
_patch_lock = threading.Lock()
_patched: dict[type, list] = {}  # pipeline class -> [its own __call__ or None, trackers using the patch]
_uid = iter(range(1, 1 << 62))


def track(pipe: Any = None, *, out: str | Path | None = None, name: str | None = None, meter: Any = "auto",
          device: str | None = None, country: str | None = "USA", cpu_power_w: float | None = None,
          idle_s: float = 0.0, modality: str = "image") -> "Tracker":
    """Measure the calls of a diffusers pipeline (``pipe``), or a plain block of code (``name``).

    Parameters
    ----------
    pipe : diffusers pipeline, optional
        Its calls inside the block are measured phase by phase. None: the plain form.
    out : path, optional
        The runs table to append to (``.parquet`` or ``.csv``; created when missing). None:
        nothing is written; the results stay on the returned :class:`Tracker`.
    name : str, optional
        The plain form's ``model`` (required there); with a pipeline, a label in the notes.
    meter : str or Meter
        ``auto``, ``nvml``, ``estimate``, ``replay:TRACE.csv`` or a meter object (its caller
        closes it). Inside another track the default shares that track's meter.
    device : str, optional
        Where the work runs; default: the pipeline's device, or (plain form) ``cuda`` when torch
        sees a GPU, else ``cpu``.
    country : str or None
        ISO code for CodeCarbon's offline CPU/RAM model and carbon intensity; None: no CodeCarbon.
    cpu_power_w : float, optional
        CPU power to assume where nothing measures it (else 65 W for CPU work).
    idle_s : float
        Seconds of an idle window before the block, whose GPU power goes into ``idle_power_w``
        (recorded, never subtracted); 0: none.
    modality : str
        The plain form's ``modality`` column (``image``, ``video`` or ``audio``).
    """
    return Tracker(pipe, out=out, name=name, meter=meter, device=device, country=country,
                   cpu_power_w=cpu_power_w, idle_s=idle_s, modality=modality)


def _check_out(out: str | Path | None) -> Path | None:
    """The runs table, checked before any work by the rule every writer follows
    (:func:`scaling.runs.check_runs_output`): a ``.parquet`` or ``.csv`` name in an existing folder, a
    regular file, and an existing one a runs table to append to."""
    if out is None:
        return None
    from scaling.runs import check_runs_output

    p = Path(out).expanduser()
    check_runs_output(p, what="`out`")
    return p.resolve()


class Tracker:
    """What :func:`track` returns: a context manager, a decorator, and the results.

    Attributes (of the block in progress, else of the last one)
    ----------
    calls : list of CallMeasurement
        One per measured pipeline call (pipeline form).
    phases : dict
        Phase -> :class:`~profilers.energy.phase_results.PhaseMeasurement`, summed over the calls.
    total : PhaseMeasurement or None
        The calls' totals summed (pipeline form), or the whole block (plain form).
    rows : list of dict
        The runs rows written (or, with ``out=None``, that would have been).
    """

    def __init__(self, pipe: Any = None, *, out=None, name=None, meter="auto", device=None, country="USA",
                 cpu_power_w=None, idle_s=0.0, modality="image") -> None:
        if pipe is None and not (isinstance(name, str) and name.strip()):
            raise InvalidSettingError("scaling.track needs a pipeline, or `name` for a plain window "
                                      "(scaling.track(name='my-step'))")
        if pipe is not None and not callable(pipe):
            raise InvalidSettingError(f"scaling.track: {type(pipe).__name__} is not a pipeline (it cannot be called)")
        if modality not in ("image", "video", "audio"):
            raise InvalidSettingError(f"`modality` {modality!r}: use image, video or audio")
        if not (isinstance(idle_s, (int, float)) and 0 <= idle_s <= 600):
            raise InvalidSettingError(f"`idle_s` {idle_s!r}: seconds between 0 and 600")
        if isinstance(meter, str):
            from profilers.energy.meters import check_meter_name

            check_meter_name(meter)
        self.out = _check_out(out)  # before any work
        self.pipe, self.name, self.modality = pipe, name, modality
        self._meter_arg, self._device_arg = meter, device
        self._country, self._cpu_power_w, self._idle_s = country, cpu_power_w, float(idle_s)
        self._uid = next(_uid)
        self.session = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
        self._blocks: list[dict[str, Any]] = []
        self._last: dict[str, Any] = _new_block()
        self._entered = 0  # blocks begun so far: each has its own run ids

    # -- results ----------------------------------------------------------------------------
    @property
    def _block(self) -> dict[str, Any]:
        return self._blocks[-1] if self._blocks else self._last

    @property
    def calls(self) -> list[CallMeasurement]:
        return self._block["calls"]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self._block["rows"]

    @property
    def total(self) -> PhaseMeasurement | None:
        b = self._block
        if b["window"] is not None:
            return b["window"]
        return _sum("total", [c.total for c in b["calls"]]) if b["calls"] else None

    @property
    def phases(self) -> dict[str, PhaseMeasurement]:
        names = sorted({p for c in self.calls for p in c.phases}, key=_phase_order)
        return {p: _sum(p, [c.phases[p] for c in self.calls if p in c.phases]) for p in names}

    @property
    def estimated(self) -> bool:
        """Whether the main figure (GPU energy where there is one) is an estimate."""
        t = self.total
        return True if t is None else t.primary_estimated

    # -- the block --------------------------------------------------------------------------
    def __enter__(self) -> "Tracker":
        stack = _stack()
        outer = stack[-1] if stack else None
        block = _new_block()
        self._entered += 1
        block["index"] = self._entered
        self._blocks.append(block)
        try:
            block["device"] = self._device()
            block["meter"], block["owns_meter"] = self._open_meter(outer, block["device"])
            block["idle_w"] = outer._block["idle_w"] if outer is not None and not block["owns_meter"] else None
            if block["owns_meter"] and self._idle_s > 0:
                block["idle_w"] = self._idle(block["meter"], block["device"])
            if self.pipe is None:
                block["started"] = datetime.now(timezone.utc)
                block["key"] = f"track{self._uid}:block{block['index']}"
                block["meter"].begin_window(block["key"])
            else:
                _patch(type(self.pipe))
                block["patched"] = True
        except BaseException:
            self._finish(block)
            raise
        stack.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        stack = _stack()
        if stack and stack[-1] is self:
            stack.pop()
        block = self._blocks[-1]
        try:
            if self.pipe is None:
                m = block["meter"].end_window(block["key"])
                if exc_type is None:
                    total = _as_phase(m)
                    block["window"] = total
                    self._write(block, [_plain_row(total)], self._plain_base(block),
                                context=f"scaling.track; plain window {self.name!r}; device {block['device']}")
        finally:
            self._finish(block)

    def _finish(self, block: dict[str, Any]) -> None:
        if block.get("patched"):
            _unpatch(type(self.pipe))
        meter = block.get("meter")
        if meter is not None and block.get("owns_meter") and isinstance(self._meter_arg, str):
            meter.close()
        self._last = self._blocks.pop()

    def __call__(self, fn: Callable) -> Callable:
        """The decorator form: each call of ``fn`` is one block."""

        @functools.wraps(fn)
        def tracked(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)

        return tracked

    # -- set-up -------------------------------------------------------------------------------
    def _device(self) -> str:
        from profilers.energy.devices import resolve_device

        if self._device_arg is not None:
            return resolve_device(self._device_arg)
        if self.pipe is not None:
            return str(getattr(self.pipe, "device", "cpu"))
        try:
            return resolve_device("auto")
        except ImportError:  # no torch: the work cannot be on a GPU that torch drives
            return "cpu"

    def _open_meter(self, outer: "Tracker | None", device: str):
        if outer is not None and self._meter_arg == "auto" and outer._block.get("device") == device:
            return outer._block["meter"], False
        gpu = gpu_key(device)
        meter = make_meter(self._meter_arg, device=device, country=self._country, cpu_power_w=self._cpu_power_w,
                           gpu=gpu)
        return meter, True

    def _idle(self, meter, device: str) -> float | None:
        from profilers.energy.devices import sync_device

        sync_device(device)
        key = f"track{self._uid}:idle"
        meter.begin_window(key)
        time.sleep(self._idle_s)
        m = meter.end_window(key)
        if m.energy_gpu_j is None or m.time_s <= 0 or m.estimated.get("energy_gpu_j", False):
            return None
        return m.energy_gpu_j / m.time_s

    # -- one pipeline call --------------------------------------------------------------------
    def _measure_call(self, original: Callable, pipe: Any, args: tuple, kwargs: dict, outers: list["Tracker"]):
        from profilers.energy.pipelines import roles_of

        block = self._block
        meter = block["meter"]
        started = datetime.now(timezone.utc)
        n = len(block["calls"])
        outer_keys = [(t, f"track{t._uid}:call{len(t._block['calls'])}:{self._uid}") for t in outers]
        for t, key in outer_keys:
            t._block["meter"].begin_window(key)
        try:
            spec = registered(pipe)
            if getattr(_local, "recording", False):  # a call inside a call measured phase by phase
                meter.begin_window(f"track{self._uid}:call{n}")
                out = original(pipe, *args, **kwargs)
                result = _total_only(meter.end_window(f"track{self._uid}:call{n}"))
            else:
                from profilers.energy.phases import PhaseRecorder

                roles = roles_of(spec if spec is not None else NO_SPEC, pipe)
                _local.recording = True
                try:
                    with PhaseRecorder(pipe, meter, roles, device=block["device"]) as rec:
                        out, result = rec.measure(original, pipe, *args, **kwargs)
                finally:
                    _local.recording = False
        finally:
            ends = [(t, t._block["meter"].end_window(key)) for t, key in reversed(outer_keys)]
        setting = read_setting(pipe, original, args, kwargs, out, spec, block["device"])
        flops, flop_error = closed_form_flops(spec, setting)
        for role, ph in result.phases.items():
            ph.flop = flops.get(role) if flops else None
        fl = [p.flop for p in result.phases.values()]
        result.total.flop = sum(fl) if fl and all(v is not None for v in fl) else None
        block["calls"].append(result)
        base = self._call_base(setting, spec, started, n, flops, flop_error, block)
        self._write(block, rows_of(result), base, context=self._context(pipe, block))
        for t, m in ends:
            t._block["calls"].append(_total_only(m))
            t._write(t._block, [_plain_row(_as_phase(m))],
                     {**t._call_base(setting, spec, started, len(t._block["calls"]) - 1, flops, flop_error, t._block)},
                     context=t._context(pipe, t._block) + "; the whole call (an inner track measured its phases)")
        return out

    # -- rows ---------------------------------------------------------------------------------
    def _call_base(self, s: dict, spec, started, n: int, flops, flop_error, block) -> dict[str, Any]:
        key = f"{s['model_key'] or s['model']}-{setting_digest(s)}"
        row = {
            "run_id": f"{key}/{self.session}-t{self._uid}b{block['index']}c{n}", "timestamp": started,
            "source": TRACK_SOURCE, "model": s["model"], "model_key": s["model_key"], "modality": s["modality"],
            "gpu": s["gpu"], "gpu_key": gpu_key(block["device"]), "gpu_count": 1, "precision": s["precision"],
            "height": s["height"], "width": s["width"], "frames": s["frames"], "fps": s["fps"],
            "audio_seconds": s["audio_seconds"], "steps": s["steps"], "guidance_scale": s["guidance_scale"],
            "cfg": s["cfg"], "batch_size": s["n_outputs"], "idle_power_w": block["idle_w"], "n_repeats": 1,
            "repeat": n, "warmup": 0, "flop_error": flop_error if not flops else None,
        }
        for role in ("text_encoder", "denoiser", "decoder", "vocoder"):
            row[f"flop_{role}"] = flops.get(role) if flops else None
        return row

    def _plain_base(self, block) -> dict[str, Any]:
        s = {"model": self.name, "model_key": None, "modality": self.modality, "gpu": gpu_name(block["device"]),
             "precision": None, "height": None, "width": None, "frames": None, "fps": None, "audio_seconds": None,
             "steps": None, "guidance_scale": None, "cfg": None, "n_outputs": 1}
        return self._call_base(s, None, block["started"], 0, {}, "a plain window: no FLOP count", block)

    def _context(self, pipe, block) -> str:
        bits = ["scaling.track", f"{type(pipe).__name__}" + (f" ({self.name})" if self.name else ""),
                f"device {block['device']}"]
        if block["idle_w"] is not None:
            bits.append(f"idle baseline {block['idle_w']:.1f} W (not subtracted)")
        return "; ".join(bits)

    def _write(self, block, rows: list[dict[str, Any]], base: Mapping[str, Any], *, context: str) -> None:
        rows = [r for r in rows if any(r.get(f) is not None for f in ENERGY_FIELDS)]
        if not rows:
            raise MeterError(f"scaling.track: the {block['meter'].name} meter read no energy for this window "
                             "(shorter than it resolves?): measure a longer call, or pass meter='estimate'")
        table = call_rows(rows, base, context=context, cpu_only=not block["device"].startswith("cuda"),
                          idle_power_w=None)
        if self.out is not None:
            import pandas as pd

            from scaling.runs import append_runs

            append_runs(pd.DataFrame(table), self.out)
        block["rows"].extend(table)


# --------------------------------------------------------------------------------------------
# intercepting the pipeline's calls
# --------------------------------------------------------------------------------------------

def _stack() -> list[Tracker]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def _patch(cls: type) -> None:
    """Route ``cls.__call__`` through :func:`_dispatch` while a tracker of an instance is active.

    ``pipe(...)`` looks ``__call__`` up on the class, so the class is patched; the dispatcher
    passes the calls of every other instance, and of other threads, straight through."""
    with _patch_lock:
        entry = _patched.get(cls)
        if entry is None:
            own = cls.__dict__.get("__call__")
            original = cls.__call__

            @functools.wraps(original)
            def dispatch(self, *args, **kwargs):
                mine = list(dict.fromkeys(t for t in _stack() if t.pipe is self))  # a re-entered tracker once
                if not mine:
                    return original(self, *args, **kwargs)
                return mine[-1]._measure_call(original, self, args, kwargs, mine[:-1])

            setattr(cls, "__call__", dispatch)
            entry = _patched[cls] = [own, 0]
        entry[1] += 1


def _unpatch(cls: type) -> None:
    with _patch_lock:
        entry = _patched.get(cls)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            own = entry[0]
            if own is None:
                delattr(cls, "__call__")
            else:
                setattr(cls, "__call__", own)
            del _patched[cls]


# --------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------

def _new_block() -> dict[str, Any]:
    return {"calls": [], "rows": [], "window": None, "idle_w": None, "device": "cpu"}


def _phase_order(p: str) -> int:
    return PHASE_ORDER.index(p) if p in PHASE_ORDER else len(PHASE_ORDER)


def _as_phase(m: Measurement, phase: str = "total") -> PhaseMeasurement:
    pm = PhaseMeasurement(phase)
    pm.add(m)
    pm.calls = 1
    return pm


def _total_only(m: Measurement) -> CallMeasurement:
    """A call measured as one window (no phases)."""
    total = _as_phase(m)
    return CallMeasurement(total=total, phases={}, other=PhaseMeasurement("other"), resolution_s=0.0,
                           gap_time_s=0.0, gap_j={f: None for f in ENERGY_FIELDS}, component_calls={})


def _plain_row(total: PhaseMeasurement) -> dict[str, Any]:
    """The runs fields of one window measured whole (the ``total`` row, no phase summary)."""
    def pos(v):
        return v if v is not None and v > 0 else None

    est = sorted(f for f in ENERGY_FIELDS if getattr(total, f) is not None and total.estimated.get(f, False))
    notes = (["estimated: " + ", ".join(est)] if est else []) + list(total.notes)
    return {"phase": "total", "duration_s": total.time_s if total.time_s > 0 else None,
            "energy_gpu_j": pos(total.energy_gpu_j), "energy_cpu_j": pos(total.energy_cpu_j),
            "energy_ram_j": pos(total.energy_ram_j), "meter": total.meter or "none",
            "estimated": total.primary_estimated, "flop": None, "flags": "", "notes": "; ".join(notes)}


def _sum(phase: str, parts: list[PhaseMeasurement]) -> PhaseMeasurement:
    """Several calls' measurements of one phase, added up."""
    out = PhaseMeasurement(phase)
    for p in parts:
        out.time_s += p.time_s
        out.calls += p.calls
        out.windows += p.windows
        out.samples += p.samples
        for f in ENERGY_FIELDS:
            v = getattr(p, f)
            if v is not None:
                setattr(out, f, (getattr(out, f) or 0.0) + v)
                out.estimated[f] = out.estimated.get(f, False) or bool(p.estimated.get(f, False))
        out.meter = out.meter or p.meter
        out.low_confidence = out.low_confidence or p.low_confidence
        out.components = tuple(dict.fromkeys((*out.components, *p.components)))
        for n in p.notes:
            if n not in out.notes:
                out.notes.append(n)
    fl = [x.flop for x in parts]
    out.flop = sum(fl) if fl and all(v is not None for v in fl) else None
    return out
