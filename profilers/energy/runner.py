"""The measurement protocol: per-phase energy of repeated pipeline calls, appended to a runs table.

For each setting (model, resolution / frames / seconds, steps, guidance, batch, precision):

1. build the pipeline (random weights from the registry configs, or local weights), or reuse
   it from the previous setting of the same model;
2. count the FLOP of each phase (:func:`profilers.flops.profile.profile`; tiny and local
   pipelines are counted on one real call);
3. measure the idle baseline: the GPU's power over ``idle_s`` seconds with the model loaded
   and nothing running (recorded in ``idle_power_w``; subtracted only with
   ``subtract_idle``, and then flagged);
4. warm-up calls (not recorded);
5. ``repeats`` measured calls, each with its own prompt from the shipped prompt set
   (``scaling/_prompts/<modality>.txt``) and its own fixed seed (``seed + repeat``), measured
   phase by phase (:class:`~profilers.energy.phases.PhaseRecorder`). Each completed call is
   appended to the runs table at once (:func:`scaling.runs.append_runs`, atomic): one row
   per phase plus a ``total`` row, so a crash, Ctrl-C or a killed process loses at most the
   call in progress.

``resume=True`` skips the repeats of a setting already in the table (a setting is identified
by :func:`setting_key`: model, shape, steps, guidance, batch, precision, device, GPU name,
weights and seed; the key starts every ``run_id``).

Failures (out of memory, no GPU, a model too large for the GPU, a pipeline that cannot be
built; :data:`RECORDED_FAILURES`) print one clear line, are appended to the failures log next
to the table (``<table>.failures.jsonl``, :mod:`profilers.energy.failures`; never as an energy
row) and the runner goes on with the next setting. Their kind comes from their type
(torch's out-of-memory error is mapped to :class:`~scaling.errors.DeviceOutOfMemoryError`
where the work runs). A FLOP count in which attention dropped to zero
(:class:`~scaling.errors.AttentionNotCountedError`) fails the setting: it is a bug, never a
result. Any other error is a bug and propagates. Ctrl-C stops the runner; what was appended
stays.

The records (:class:`SettingRequest`, :class:`Protocol`, :class:`SettingOutcome`,
:func:`setting_key`) live in :mod:`profilers.energy.protocol`, the meter factory
(:func:`make_meter`) in :mod:`profilers.energy.meters`; all are re-exported here.

Without a GPU the runner still runs, on the CPU; its energies come from RAPL where readable,
else CodeCarbon's or a stated power model, and are marked as estimates wherever no meter
read them; every such row carries the ``cpu_only`` flag.

A row's ``estimated`` is about its main figure: the GPU energy where there is one (a GPU run
with NVML is a measurement even though CodeCarbon's CPU and RAM figures are modelled), else
the CPU energy. The notes name every estimated field and the power it assumed.

Length: a little over 500 lines on purpose: the protocol's steps (build, idle baseline, warm-up,
repeats, append, resume) share one state and are read top to bottom as one procedure.
"""

from __future__ import annotations

import gc
import os
import secrets
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from profilers.energy.devices import out_of_memory_as_error
from profilers.energy.failures import failures_path, read_failures, record_failure
from profilers.energy.meters import DEFAULT_CPU_POWER_W, METER_KINDS, check_meter, make_meter
from profilers.energy.protocol import Protocol, SettingOutcome, SettingRequest, setting_key
from profilers.energy.run_rows import RUNNER_SOURCE, base_row, call_rows
from scaling.errors import (
    AttentionNotCountedError,
    DeviceOutOfMemoryError,
    InvalidSettingError,
    MeterError,
    NoGPUError,
    ProfilerError,
    ScalingError,
)
from scaling.precision import UNQUANTISED_BYTE, UNQUANTISED_PRECISIONS, WEIGHT_BYTE

__all__ = [
    "DEFAULT_CPU_POWER_W",
    "METER_KINDS",
    "RECORDED_FAILURES",
    "RUNNER_SOURCE",
    "ModelTooLargeError",
    "Protocol",
    "Runner",
    "SettingOutcome",
    "SettingRequest",
    "failures_path",
    "make_meter",
    "measure",
    "read_failures",
    "setting_key",
]


#: What :meth:`Runner.run` records as a failure of one setting, and goes on: the toolkit's own
#: errors (out of memory, no GPU, a model too large, a meter that cannot measure ...), torch's
#: runtime errors (a CUDA or cuDNN failure), files that cannot be read or written, and a
#: package a pipeline needs that is not installed. Anything else is a bug and propagates.
RECORDED_FAILURES = (ScalingError, RuntimeError, OSError, ImportError)


class ModelTooLargeError(InvalidSettingError):
    """The pipeline's weights do not fit in the GPU's free memory."""


# --------------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------------

def _done_repeats(out: Path, key: str) -> set[int]:
    """Repeats of setting ``key`` already in the table ``out`` (reads its key columns only)."""
    if not out.exists():
        return set()
    from scaling.runs import read_run_keys

    df = read_run_keys(out, columns=("run_id", "phase", "repeat"))
    mine = df[(df["phase"] == "total") & df["run_id"].str.startswith(key + "/").fillna(False)]
    return {int(r) for r in mine["repeat"].dropna()}


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------

class Runner:
    """Measures settings one after the other into one runs table.

    Parameters
    ----------
    out : path
        The runs table (``.parquet``; ``.csv`` works too), in an existing folder. Created when
        missing; an existing one must be a runs table (checked here, before any work:
        :func:`scaling.runs.check_runs_output`).
    device : str
        ``auto`` (a GPU when one is visible), ``cuda``, ``cuda:N`` or ``cpu``.
    meter : str or Meter
        ``auto``, ``nvml``, ``estimate``, ``replay:TRACE.csv`` (checked here, before any
        work: :func:`~profilers.energy.meters.make_meter` makes it when the first setting
        runs), or a meter object (which the caller closes).
    weights : path, optional
        A local diffusers folder; default: random weights from the registry configs.
    protocol : Protocol
    resume : bool
        Skip repeats already in the table.
    echo : callable, optional
        Where progress lines go (default: stderr); None: silent.
    after_call : callable, optional
        ``after_call(outcome, call_index)`` after each appended call (tests inject failures).
    also_done_in : sequence of paths
        Further runs tables whose repeats count as done with ``resume`` (a sweep's main
        table, for a job that writes to its own shard).
    allow_pickle : bool
        Load pickled weights (``.bin``, ``.pt``, ``.ckpt``) from ``weights`` too; default: a
        component with pickled weights only is refused (:mod:`profilers.energy.weights`).
    """

    def __init__(self, out: str | os.PathLike, *, device: str = "auto", meter: str | Any = "auto",
                 weights: str | os.PathLike | None = None, protocol: Protocol | None = None, resume: bool = False,
                 echo: Callable[[str], None] | None = lambda s: print(s, file=sys.stderr),
                 after_call: Callable[[SettingOutcome, int], None] | None = None,
                 also_done_in: Sequence[str | os.PathLike] = (), allow_pickle: bool = False) -> None:
        from scaling.runs import check_runs_output

        # before any work: the table (a .parquet/.csv name in an existing folder; an existing one is a runs
        # table), the meter (its name, a replay trace, nvml for CPU work) and, below, the weights and protocol
        check_runs_output(out, inputs=[weights], what="runs table")
        self.out = Path(out)
        self.also_done_in = [Path(p) for p in also_done_in]
        self.device_request = device
        self.meter_kind = check_meter(meter, device=device) if isinstance(meter, str) else meter
        self.weights = str(weights) if weights is not None else None
        self.allow_pickle = bool(allow_pickle)
        if self.weights is not None:  # before any work: a folder, model_index.json, no pickles, no code
            from profilers.energy.weights import check_weights_dir

            check_weights_dir(self.weights, allow_pickle=self.allow_pickle)
        self.protocol = (protocol or Protocol()).check()
        self.resume = resume
        self.echo = echo or (lambda s: None)
        self.after_call = after_call
        self.session = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
        self._meter = None
        self._built = None
        self._built_key = None
        self._device: str | None = None
        self._gpu_name: str | None = None
        self._calls = 0
        self._keys_this_session: set[str] = set()

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        self._drop_pipeline()
        if self._meter is not None and isinstance(self.meter_kind, str):  # close only what we opened
            try:
                self._meter.close()
            except MeterError as e:  # what was measured is appended already: say so, do not raise
                self.echo(f"warning: {e}")
        self._meter = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- environment ------------------------------------------------------------------------
    def _resolve_device(self) -> str:
        if self._device is None:
            from profilers.energy.devices import resolve_device

            self._device = resolve_device(self.device_request)
            if self._device.startswith("cuda"):
                import torch

                idx = int(self._device.split(":")[1]) if ":" in self._device else 0
                self._gpu_name = torch.cuda.get_device_name(idx)
        return self._device

    def _gpu_spec(self):
        if not self._gpu_name:
            return None
        from scaling.errors import UnknownGPUError
        from scaling.hardware import resolve_gpu

        try:
            return resolve_gpu(self._gpu_name)
        except UnknownGPUError:
            return None

    def _get_meter(self):
        if self._meter is None:
            device = self._resolve_device()
            gs = self._gpu_spec()
            self._meter = make_meter(self.meter_kind, device=device, country=self.protocol.country,
                                     cpu_power_w=self.protocol.cpu_power_w, gpu=gs.key if gs else None)
        return self._meter

    def _drop_pipeline(self) -> None:
        self._built = None
        self._built_key = None
        gc.collect()
        torch = sys.modules.get("torch")  # never imported: nothing was built, nothing to free
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _pipeline(self, spec, precision: str):
        from profilers.energy.pipelines import build_pipeline, tiny_pipeline

        key = (spec.key, precision, self.weights)
        if self._built_key == key:
            return self._built
        self._drop_pipeline()
        device = self._resolve_device()
        if spec.family == "tiny":
            built = tiny_pipeline(spec.key.split("-", 1)[1], device=device, precision=precision,
                                  seed=self.protocol.seed)
        else:
            if self.weights is None and device.startswith("cuda"):
                self._check_fits(spec, precision)
            built = build_pipeline(spec, device=device, precision=precision, weights=self.weights,
                                   seed=self.protocol.seed, allow_pickle=self.allow_pickle)
        self._built, self._built_key = built, key
        self.echo(f"built {spec.id} ({'random weights' if built.weights == 'random' else built.weights}, "
                  f"{precision}, {device}) in {built.build_s:.1f} s")
        return built

    def _check_fits(self, spec, precision: str) -> None:
        """Refuse, before building, a model whose weights alone exceed the GPU's free memory."""
        import torch

        from profilers.flops.traced import parameter_count

        try:
            params = sum(parameter_count(spec, name) for name in spec.components)
        except (ProfilerError, ImportError):  # a component the meta build cannot make: the build will tell
            return
        bytes_per = WEIGHT_BYTE[precision] if precision in UNQUANTISED_PRECISIONS else UNQUANTISED_BYTE
        need = params * bytes_per
        free, total = torch.cuda.mem_get_info(self._device)
        if need > free:
            raise ModelTooLargeError(
                f"{spec.id} has {params / 1e9:.2f} B parameters: {need / 2**30:.1f} GiB in {precision}, more than the "
                f"{free / 2**30:.1f} GiB free on {self._gpu_name} ({total / 2**30:.0f} GiB); use a GPU with more "
                "memory or a smaller precision"
            )

    # -- one setting ------------------------------------------------------------------------
    def run(self, request: SettingRequest) -> SettingOutcome:
        """Measure one setting; its failures (:data:`RECORDED_FAILURES`) are recorded and
        returned, not raised. Ctrl-C and any other error (a bug) propagate."""
        t0 = time.perf_counter()
        outcome = SettingOutcome(request=request, status="failed", label=_label(request))
        try:
            self._run(request, outcome)
        except RECORDED_FAILURES as exc:  # recorded, and the sweep goes on
            self._fail(outcome, exc)
        outcome.seconds = time.perf_counter() - t0
        return outcome

    def _fail(self, outcome: SettingOutcome, exc: BaseException) -> None:
        if isinstance(exc, DeviceOutOfMemoryError):
            kind, msg = "out_of_memory", str(exc)
            self._drop_pipeline()
        elif isinstance(exc, NoGPUError):
            kind, msg = "no_gpu", str(exc)
        elif isinstance(exc, ModelTooLargeError):
            kind, msg = "model_too_large", str(exc)
        elif isinstance(exc, ScalingError):
            kind, msg = type(exc).__name__, str(exc)
        else:
            kind = type(exc).__name__
            msg = f"{type(exc).__name__}: {exc}"
        outcome.status = "partial" if outcome.calls else "failed"
        outcome.failure_kind = kind
        outcome.message = msg
        record = {
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "session": self.session,
            "key": outcome.key,
            "request": outcome.request.to_dict(),
            "device": self._device or self.device_request,
            "gpu": self._gpu_name,
            "kind": kind,
            "message": msg,
            "calls_completed": outcome.calls,
        }
        if not isinstance(exc, ScalingError):
            record["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
        record_failure(self.out, record)
        self.echo(f"FAILED {outcome.label}: {msg} (recorded in {failures_path(self.out)})")

    def _run(self, request: SettingRequest, outcome: SettingOutcome) -> None:
        from profilers.energy.pipelines import resolve_spec

        if request.model:
            spec = resolve_spec(request.model)
        elif self.weights is not None:
            from scaling.registry import model_from_dir

            spec = model_from_dir(self.weights)
        else:
            raise InvalidSettingError("give a model (--model) or a local weights folder (--weights DIR)")
        device = self._resolve_device()
        precision = request.precision or ("bf16" if device.startswith("cuda") else "fp32")
        setting = request.setting(spec, precision, self._gpu_name)
        weights = "random" if self.weights is None else str(Path(self.weights).resolve())
        key = setting_key(spec, setting, device=device, gpu=self._gpu_name, weights=weights, seed=self.protocol.seed)
        outcome.key = key
        outcome.label = _label(request, setting, spec)
        if key in self._keys_this_session:
            outcome.status = "skipped"
            outcome.message = "the same setting as an earlier request of this run (it was measured then)"
            self.echo(f"skip {outcome.label}: {outcome.message}")
            return
        self._keys_this_session.add(key)
        todo = list(range(self.protocol.repeats))
        if self.resume:
            done = set().union(*(_done_repeats(p, key) for p in [self.out, *self.also_done_in]))
            todo = [r for r in todo if r not in done]
            if not todo:
                outcome.status = "skipped"
                outcome.message = f"already measured ({len(done)} repeats in {self.out})"
                self.echo(f"skip {outcome.label}: {outcome.message}")
                return
        with out_of_memory_as_error(self._gpu_name or device, outcome.label):  # torch's OOM, by its type
            built = self._pipeline(spec, precision)
            meter = self._get_meter()
            flops, flop_error = self._flops(built, setting)
            idle_w, idle_note = self._idle(meter)
            self._warmup(built, setting)
            for r in todo:
                self._measure_call(built, setting, meter, key, r, flops, flop_error, idle_w, idle_note, outcome)
        outcome.status = "measured"

    # -- protocol steps ---------------------------------------------------------------------
    def _flops(self, built, setting) -> tuple[dict[str, float], str | None]:
        """FLOP per phase: the registry profile (closed form, else traced on the meta
        device); tiny pipelines, and local ones the profile cannot read on a CPU, are
        counted on one real call.

        A profile that cannot be made leaves the FLOPs empty with the reason in ``flop_error``
        (FLOPs are optional on a measured row): no closed-form table; for the traced one, no
        input builder, a package missing, an op the meta device lacks, or a model that refuses
        the shapes the registry guesses (a local folder: its own shape checks raise ValueError
        or RuntimeError). A count in which attention dropped to zero raises: it is a bug, never
        a result. The real call's errors are the pipeline's own, and raise as they would in the
        measured calls."""
        errors = []
        if built.spec.family != "tiny":
            from profilers.flops.profile import profile

            cannot = {"closed-form": ProfilerError,
                      "traced": (ProfilerError, ImportError, NotImplementedError, ValueError, RuntimeError)}
            for method in ("closed-form", "traced"):
                try:
                    return profile(setting, method=method, spec=built.spec).by_role(), None
                except AttentionNotCountedError:
                    raise
                except cannot[method] as exc:
                    errors.append(f"{method}: {type(exc).__name__}: {str(exc)[:150]}")
            if built.device.startswith("cuda"):
                return {}, "no FLOP profile: " + "; ".join(errors)
        from profilers.energy.phases import count_phase_flops
        from profilers.energy.pipelines import call_kwargs, load_prompts

        kw = call_kwargs(built, setting, _prompts(load_prompts(setting.modality), 0, setting.batch_size),
                         self.protocol.seed)
        return _quiet(count_phase_flops, built.pipe, built.roles, built.pipe, **kw), None

    def _idle(self, meter) -> tuple[float | None, str]:
        from profilers.energy.devices import sync_device

        if self.protocol.idle_s <= 0:
            return None, "idle baseline skipped"
        sync_device(self._device)
        meter.begin_window("runner:idle")
        time.sleep(self.protocol.idle_s)
        m = meter.end_window("runner:idle")
        if m.energy_gpu_j is None or m.time_s <= 0:
            return None, "idle baseline: no GPU measured"
        if m.estimated.get("energy_gpu_j", False):
            return None, "idle baseline: the GPU energy is an estimate, so no idle power is recorded"
        watts = m.energy_gpu_j / m.time_s
        return watts, f"idle baseline {watts:.1f} W over {m.time_s:.1f} s"

    def _warmup(self, built, setting) -> None:
        from profilers.energy.pipelines import call_kwargs, load_prompts

        prompts = load_prompts(setting.modality)
        for i in range(self.protocol.warmup):
            kw = call_kwargs(built, setting, _prompts(prompts, len(prompts) - 1 - i, setting.batch_size),
                             self.protocol.seed + 10_000 + i)
            _quiet_call(built.pipe, kw)

    def _measure_call(self, built, setting, meter, key, repeat, flops, flop_error, idle_w, idle_note, outcome):
        import pandas as pd

        from profilers.energy.phases import PhaseRecorder, rows_of
        from profilers.energy.pipelines import call_kwargs, load_prompts
        from scaling.runs import append_runs

        prompts = load_prompts(setting.modality)
        batch = _prompts(prompts, repeat * setting.batch_size, setting.batch_size)
        kw = call_kwargs(built, setting, batch, self.protocol.seed + repeat)
        started = datetime.now(timezone.utc)
        with PhaseRecorder(built.pipe, meter, built.roles, device=built.device, flops=flops,
                           repeat_short=self.protocol.repeat_short) as rec:
            _, result = _quiet_call(built.pipe, kw, rec)
        if not any((result.total.energy(f) or 0) > 0 for f in ("energy_gpu_j", "energy_cpu_j", "energy_ram_j")):
            raise MeterError(
                f"the call took {result.total.time_s * 1e3:.3g} ms and the {result.total.meter} meter read no energy "
                f"(it resolves about {result.resolution_s * 1e3:.3g} ms): measure a larger setting (more steps, "
                "higher resolution) or use --meter estimate"
            )
        rows = rows_of(result)
        base = self._base_row(built, setting, key, repeat, started, flops, flop_error, idle_w)
        prompt_idx = [prompts.index(p) for p in batch]
        context = f"prompt #{','.join(map(str, prompt_idx))}; seed {self.protocol.seed + repeat}; {idle_note}; " \
                  f"device {built.device}" + (f" ({self._gpu_name})" if self._gpu_name else "") + \
                  f"; weights {built.weights}" + "".join(f"; {n}" for n in built.notes)
        table = call_rows(rows, base, context=context, cpu_only=not built.device.startswith("cuda"),
                          idle_power_w=idle_w if self.protocol.subtract_idle else None)
        append_runs(pd.DataFrame(table), self.out)
        self._calls += 1
        outcome.calls += 1
        outcome.rows += len(table)
        f = result.primary_field
        outcome.totals_j.append(result.total.energy(f) if f else float("nan"))
        self.echo(f"  {outcome.label} repeat {repeat}: {result.total.time_s:.3g} s, "
                  + ", ".join(f"{p}={m.time_s:.3g}s" for p, m in result.phases.items())
                  + (f"; total {result.total.energy(f):.4g} J ({'estimated' if result.total.primary_estimated else 'measured'})" if f else ""))
        if self.after_call is not None:
            self.after_call(outcome, self._calls)

    def _base_row(self, built, setting, key, repeat, started, flops, flop_error, idle_w) -> dict[str, Any]:
        gs = self._gpu_spec()
        return base_row(built, setting, run_id=f"{key}/{self.session}-r{repeat}", started=started, repeat=repeat,
                        gpu=self._gpu_name, gpu_key=gs.key if gs else None, warmup=self.protocol.warmup,
                        flops=flops, flop_error=flop_error, idle_power_w=idle_w)


def _label(request: SettingRequest, setting=None, spec=None) -> str:
    if setting is None:
        bits = [str(request.model)] + [f"{k}={v}" for k, v in request.to_dict().items() if k != "model"]
        return " ".join(bits)
    shape = (f"{setting.width}x{setting.height}" if setting.height else "") + \
            (f"x{setting.frames}f" if setting.frames else "") + \
            (f"{setting.audio_seconds:g}s" if setting.audio_seconds else "")
    b = f" b{setting.n_outputs}" if setting.n_outputs > 1 else ""
    cfg = "" if setting.cfg else " no-cfg"
    return f"{spec.id if spec else setting.model} {shape} {setting.steps} steps {setting.precision}{b}{cfg}"


def _prompts(prompts, start: int, n: int) -> list[str]:
    return [prompts[(start + i) % len(prompts)] for i in range(n)]


def _quiet(fn, *args, **kwargs):
    """Run ``fn`` with diffusers' and transformers' chatter silenced: their log messages
    (truncation notices) below errors, and their deprecation warnings (``FutureWarning``,
    ``DeprecationWarning``). Any other warning is shown."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = (dlog.get_verbosity(), tlog.get_verbosity())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return fn(*args, **kwargs)
    finally:
        dlog.set_verbosity(levels[0])
        tlog.set_verbosity(levels[1])


def _quiet_call(pipe, kwargs, recorder=None):
    """Call the pipeline quietly; with a recorder, measure it phase by phase."""
    if recorder is None:
        return _quiet(pipe, **kwargs)
    return _quiet(recorder.measure, pipe, **kwargs)


def measure(model: str, *, out: str | os.PathLike, device: str = "auto", meter: str | Any = "auto",
            weights: str | None = None, protocol: Protocol | None = None, resume: bool = False,
            echo: Callable[[str], None] | None = None, **setting: Any) -> SettingOutcome:
    """Measure one setting of ``model`` into the runs table ``out`` (see :class:`Runner`)."""
    request = SettingRequest(model=model, **setting)
    with Runner(out, device=device, meter=meter, weights=weights, protocol=protocol, resume=resume,
                echo=echo) as runner:
        return runner.run(request)
