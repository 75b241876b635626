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
built) print one clear line, are appended to the failures log next to the table
(``<table>.failures.jsonl``; never as an energy row) and the runner goes on with the next
setting. Ctrl-C stops the runner; what was appended stays.

Without a GPU the runner still runs, on the CPU; its energies come from RAPL where readable,
else CodeCarbon's or a stated power model, and are marked as estimates wherever no meter
read them; every such row carries the ``cpu_only`` flag.

A row's ``estimated`` is about its main figure: the GPU energy where there is one (a GPU run
with NVML is a measurement even though CodeCarbon's CPU and RAM figures are modelled), else
the CPU energy. The notes name every estimated field and the power it assumed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import secrets
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scaling.errors import InvalidSettingError, MeterError, NoGPUError, ScalingError

__all__ = [
    "DEFAULT_CPU_POWER_W",
    "METER_KINDS",
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

RUNNER_SOURCE = "scaling-runner"
"""The ``source`` of every row this runner writes."""

METER_KINDS = ("auto", "nvml", "estimate")

#: CPU power assumed when nothing on the machine measures or models it (a typical desktop
#: CPU package under load); pass ``cpu_power_w`` for your machine.
DEFAULT_CPU_POWER_W = 65.0


class ModelTooLargeError(InvalidSettingError):
    """The pipeline's weights do not fit in the GPU's free memory."""


# --------------------------------------------------------------------------------------------
# requests, protocol, outcomes
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SettingRequest:
    """One setting to measure, as the user states it (unset fields: the model's defaults)."""

    model: str
    res: str | int | None = None
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    seconds: float | None = None
    steps: int | None = None
    guidance: float | None = None
    cfg: bool | None = None
    batch_size: int = 1
    outputs_per_prompt: int = 1
    precision: str | None = None

    def setting(self, spec, precision: str, gpu: str | None):
        from scaling.settings import make_setting

        return make_setting(
            spec, res=self.res, height=self.height, width=self.width, frames=self.frames, seconds=self.seconds,
            steps=self.steps, guidance=self.guidance, cfg=self.cfg, batch_size=self.batch_size,
            outputs_per_prompt=self.outputs_per_prompt, precision=precision, gpu=gpu,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Protocol:
    """How each setting is measured.

    Attributes
    ----------
    repeats : int
        Measured calls per setting (each appended as soon as it completes).
    warmup : int
        Calls before the measured ones, not recorded.
    idle_s : float
        Length of the idle-baseline window before the warm-up (0: skip). Only a measured GPU
        gives an idle power; estimates do not.
    subtract_idle : bool
        Subtract ``idle_power_w x duration_s`` from the GPU energy of every row (flagged
        ``idle_subtracted``; the raw figure goes into the notes).
    seed : int
        Repeat ``r`` uses seed ``seed + r`` and prompt ``r`` of the shipped set.
    repeat_short : bool
        Replay phases shorter than the meter's resolution in isolation.
    country : str or None
        ISO code for CodeCarbon (offline); None: no CodeCarbon.
    cpu_power_w : float, optional
        CPU power to assume where nothing measures it.
    """

    repeats: int = 3
    warmup: int = 1
    idle_s: float = 5.0
    subtract_idle: bool = False
    seed: int = 0
    repeat_short: bool = True
    country: str | None = "USA"
    cpu_power_w: float | None = None

    def check(self) -> "Protocol":
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise InvalidSettingError(f"`repeats` {self.repeats!r}: at least 1 measured call per setting")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise InvalidSettingError(f"`warmup` {self.warmup!r}: a whole number >= 0")
        if not (isinstance(self.idle_s, (int, float)) and 0 <= self.idle_s <= 600):
            raise InvalidSettingError(f"`idle_s` {self.idle_s!r}: seconds between 0 and 600")
        if self.cpu_power_w is not None and not (isinstance(self.cpu_power_w, (int, float)) and self.cpu_power_w > 0):
            raise InvalidSettingError(f"`cpu_power_w` {self.cpu_power_w!r}: watts > 0")
        return self


@dataclass
class SettingOutcome:
    """What happened to one setting."""

    request: SettingRequest
    status: str  # measured | skipped | failed | partial
    key: str = ""
    label: str = ""
    calls: int = 0
    rows: int = 0
    seconds: float = 0.0
    message: str = ""
    failure_kind: str = ""
    totals_j: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# identities and files
# --------------------------------------------------------------------------------------------

def setting_key(spec, setting, *, device: str, gpu: str | None, weights: str, seed: int) -> str:
    """A stable id of what is measured: ``<model key>-<10 hex>``; it starts every run_id."""
    fields = {
        "model": spec.id, "height": setting.height, "width": setting.width, "frames": setting.frames,
        "audio_seconds": setting.audio_seconds, "steps": setting.steps, "guidance_scale": setting.guidance_scale,
        "cfg": setting.cfg, "batch_size": setting.batch_size, "outputs_per_prompt": setting.outputs_per_prompt,
        "precision": setting.precision, "device": device.split(":")[0], "gpu": gpu or "", "weights": weights,
        "seed": seed,
    }
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{spec.key}-{digest}"


def failures_path(out: str | os.PathLike) -> Path:
    """The failures log next to a runs table: ``runs.parquet`` -> ``runs.failures.jsonl``."""
    p = Path(out)
    name = p.name
    for suffix in (".parquet", ".csv.gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + ".failures.jsonl")


def read_failures(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The failures recorded next to a runs table (empty when none)."""
    path = failures_path(out)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _record_failure(out: Path, record: dict[str, Any]) -> None:
    path = failures_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:  # one write per line: appends do not interleave
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def _done_repeats(out: Path, key: str) -> set[int]:
    if not out.exists():
        return set()
    from scaling.runs import read_runs

    df = read_runs(out)
    mine = df[(df["phase"] == "total") & df["run_id"].str.startswith(key + "/").fillna(False)]
    return {int(r) for r in mine["repeat"].dropna()}


# --------------------------------------------------------------------------------------------
# meters
# --------------------------------------------------------------------------------------------

def make_meter(kind: str | Any = "auto", *, device: str = "cpu", country: str | None = "USA",
               cpu_power_w: float | None = None, gpu_tdp_w: float | None = None):
    """The meter for ``device``.

    ``auto``: on a GPU, NVML (estimates from the GPU's TDP, flagged, if NVML cannot read it)
    plus RAPL / CodeCarbon for CPU and RAM; on the CPU, RAPL, else CodeCarbon (offline),
    else ``cpu_power_w`` (default :data:`DEFAULT_CPU_POWER_W`) x time. ``nvml``: NVML or a
    :class:`NoGPUError`. ``estimate``: time x the GPU's TDP (on a GPU) or x ``cpu_power_w``.
    ``replay:PATH``: plays back a recorded GPU power trace (tests). A Meter object is
    returned as is.
    """
    from profilers.energy import meters as M

    if not isinstance(kind, str):
        return kind
    index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
    on_gpu = device.startswith("cuda")
    if kind.startswith("replay:"):
        return M.ReplayMeter(kind.split(":", 1)[1], loop=True)
    if kind == "estimate":
        if on_gpu:
            if gpu_tdp_w is None:
                raise MeterError("--meter estimate on a GPU needs its TDP: the GPU is not in the hardware "
                                 "registry; pass --gpu-tdp-w")
            return M.EstimateMeter(gpu_power_w=gpu_tdp_w, source="the GPU's TDP from the hardware registry")
        return M.EstimateMeter(cpu_power_w=cpu_power_w or DEFAULT_CPU_POWER_W,
                               source="--cpu-power-w" if cpu_power_w else f"the default CPU power ({DEFAULT_CPU_POWER_W:g} W)")
    if kind not in ("auto", "nvml"):
        raise MeterError(f"`meter` {kind!r} is unknown: use one of {', '.join(METER_KINDS)} or replay:TRACE.csv")
    if on_gpu:
        if kind == "nvml":
            gpu = M.NvmlMeter([index])
            cpu = _cpu_parts(country, cpu_power_w, required=False)
            return M.CompositeMeter([gpu, *cpu[0]], notes=cpu[1])
        return M.default_meter(gpu_indices=[index], country_iso_code=country, assume_power_w=cpu_power_w,
                               gpu_tdp_w=gpu_tdp_w)
    if kind == "nvml":
        raise NoGPUError("--meter nvml measures a GPU, but the pipeline runs on the CPU (--device cpu); "
                         "use --meter auto or estimate")
    parts, notes = _cpu_parts(country, cpu_power_w, required=True)
    return M.CompositeMeter(parts, notes=notes)


def _cpu_parts(country, cpu_power_w, required: bool):
    from profilers.energy import meters as M

    parts, notes = [], []
    try:
        parts.append(M.RaplMeter())
    except MeterError as e:
        notes.append(f"RAPL not read: {str(e).split('; ')[0]}")
    if cpu_power_w is not None and not parts:
        parts.append(M.EstimateMeter(cpu_power_w=cpu_power_w, source="--cpu-power-w"))
    if country is not None:
        try:
            parts.append(M.CodeCarbonMeter(country))
        except MeterError as e:
            notes.append(f"CodeCarbon not used: {str(e).split('; ')[0]}")
    if required and not parts:
        parts.append(M.EstimateMeter(cpu_power_w=DEFAULT_CPU_POWER_W,
                                     source=f"the default CPU power ({DEFAULT_CPU_POWER_W:g} W); pass --cpu-power-w"))
    return parts, notes


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------

def _is_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except Exception:  # noqa: BLE001
        pass
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and ("out of memory" in text or isinstance(exc, MemoryError))


class Runner:
    """Measures settings one after the other into one runs table.

    Parameters
    ----------
    out : path
        The runs table (``.parquet``; ``.csv`` works too). Created when missing.
    device : str
        ``auto`` (a GPU when one is visible), ``cuda``, ``cuda:N`` or ``cpu``.
    meter : str or Meter
        ``auto``, ``nvml``, ``estimate``, ``replay:TRACE.csv``, or a meter object (which the
        caller closes).
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
    """

    def __init__(self, out: str | os.PathLike, *, device: str = "auto", meter: str | Any = "auto",
                 weights: str | os.PathLike | None = None, protocol: Protocol | None = None, resume: bool = False,
                 echo: Callable[[str], None] | None = lambda s: print(s, file=sys.stderr),
                 after_call: Callable[[SettingOutcome, int], None] | None = None,
                 also_done_in: Sequence[str | os.PathLike] = ()) -> None:
        self.out = Path(out)
        self.also_done_in = [Path(p) for p in also_done_in]
        self.device_request = device
        self.meter_kind = meter
        self.weights = str(weights) if weights is not None else None
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
            except Exception:  # noqa: BLE001
                pass
        self._meter = None

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- environment ------------------------------------------------------------------------
    def _resolve_device(self) -> str:
        if self._device is None:
            from profilers.energy.pipelines import resolve_device

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
                                     cpu_power_w=self.protocol.cpu_power_w, gpu_tdp_w=gs.tdp_w if gs else None)
        return self._meter

    def _drop_pipeline(self) -> None:
        self._built = None
        self._built_key = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass

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
                                   seed=self.protocol.seed)
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
        except Exception:  # noqa: BLE001 - the check is a courtesy; the build will tell
            return
        bytes_per = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2}.get(precision, 2)
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
        """Measure one setting; failures are recorded and returned, never raised (except
        Ctrl-C and errors in the arguments themselves)."""
        t0 = time.perf_counter()
        outcome = SettingOutcome(request=request, status="failed", label=_label(request))
        try:
            self._run(request, outcome)
        except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on (Ctrl-C is not caught)
            self._fail(outcome, exc)
        outcome.seconds = time.perf_counter() - t0
        return outcome

    def _fail(self, outcome: SettingOutcome, exc: BaseException) -> None:
        if _is_oom(exc):
            kind = "out_of_memory"
            where = self._gpu_name or self._device or "the device"
            msg = (f"out of memory on {where} for {outcome.label}: try a smaller resolution, fewer frames or a "
                   f"smaller batch, a lower precision, or a GPU with more memory ({str(exc).splitlines()[0][:200]})")
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
        if not isinstance(exc, ScalingError) and not _is_oom(exc):
            record["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
        _record_failure(self.out, record)
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
        counted on one real call."""
        errors = []
        if built.spec.family != "tiny":
            from profilers.flops.profile import profile

            for method in ("closed-form", "traced"):
                try:
                    return profile(setting, method=method, spec=built.spec).by_role(), None
                except Exception as exc:  # noqa: BLE001 - FLOPs are optional on a measured row
                    errors.append(f"{method}: {type(exc).__name__}: {str(exc)[:150]}")
            if built.device.startswith("cuda"):
                return {}, "no FLOP profile: " + "; ".join(errors)
        from profilers.energy.phases import count_phase_flops
        from profilers.energy.pipelines import call_kwargs, load_prompts

        try:
            kw = call_kwargs(built, setting, _prompts(load_prompts(setting.modality), 0, setting.batch_size),
                             self.protocol.seed)
            return _quiet(count_phase_flops, built.pipe, built.roles, built.pipe, **kw), None
        except Exception as exc:  # noqa: BLE001
            errors.append(f"counted: {type(exc).__name__}: {str(exc)[:150]}")
            return {}, "no FLOP count: " + "; ".join(errors)

    def _idle(self, meter) -> tuple[float | None, str]:
        from profilers.energy.pipelines import sync_device

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
        table = []
        for row in rows:
            full = {**base, **row}
            flags = [f for f in (row.get("flags") or "").split(";") if f]
            if not built.device.startswith("cuda"):
                flags.append("cpu_only")
            if self.protocol.subtract_idle and idle_w is not None and full.get("energy_gpu_j") and full.get("duration_s"):
                raw = full["energy_gpu_j"]
                net = raw - idle_w * full["duration_s"]
                if net > 0:
                    full["energy_gpu_j"] = net
                    flags.append("idle_subtracted")
                    row["notes"] = f"GPU energy net of idle ({raw:.4g} J raw - {idle_w:.1f} W x {full['duration_s']:.4g} s); " + row["notes"]
                else:
                    row["notes"] = "idle not subtracted: it would leave <= 0 J; " + row["notes"]
            full["flags"] = ";".join(dict.fromkeys(flags))
            full["notes"] = "; ".join(x for x in (row["notes"], context) if x)
            table.append(full)
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
        spec = built.spec
        gs = self._gpu_spec()
        registered = spec.family != "tiny" and not spec.key.startswith("local:")
        row = {
            "run_id": f"{key}/{self.session}-r{repeat}",
            "timestamp": started,
            "source": RUNNER_SOURCE,
            "model": spec.id,
            "model_key": spec.key if registered else None,
            "modality": setting.modality,
            "gpu": self._gpu_name,
            "gpu_key": gs.key if gs else None,
            "gpu_count": 1,
            "precision": setting.precision,
            "height": setting.height,
            "width": setting.width,
            "frames": setting.frames,
            "fps": spec.defaults.get("fps") if setting.modality == "video" else None,
            "audio_seconds": setting.audio_seconds,
            "steps": setting.steps,
            "guidance_scale": setting.guidance_scale,
            "cfg": setting.cfg,
            "batch_size": setting.n_outputs,
            "idle_power_w": idle_w,
            "n_repeats": 1,
            "repeat": repeat,
            "warmup": self.protocol.warmup,
            "flop_error": flop_error if not flops else None,
        }
        for role in ("text_encoder", "denoiser", "decoder", "vocoder"):
            row[f"flop_{role}"] = flops.get(role) if flops else None
        return row


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
    """Run ``fn`` with diffusers' and transformers' chatter (truncation notices,
    deprecations) silenced."""
    import warnings

    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = (dlog.get_verbosity(), tlog.get_verbosity())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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
