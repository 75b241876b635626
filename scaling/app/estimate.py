"""Predict energy, time and CO2e of a generation: the main job.

``predict("wan2.1", frames=81, res="480p")`` -> :class:`Estimate`. Pure Python on the shipped
closed-form FLOP tables and the shipped default law: no torch, no GPU, no network.

Every figure is an estimate from a fitted law, with a 90% interval. What an estimate means:

- **Per call and per output.** ``energy_j`` / ``time_s`` / ``co2e_g`` are one pipeline call,
  the whole batch (``setting.n_outputs`` = batch x outputs per prompt outputs); the
  ``*_per_output_*`` figures divide them by ``n_outputs``. ``count`` counts **outputs**: the
  fleet totals are per-output figures x ``count`` (a batch of 4 makes 4 outputs).
- **Memory fit.** The memory model (:mod:`profilers.flops.memory`: weights at the precision +
  the activation estimate, batch included, + 1 GiB runtime) must fit the GPU with every
  component resident; else :class:`~scaling.errors.DoesNotFitError`, one line with the need and
  the rule. A pipeline that fits only with model CPU offload is refused too, because the law
  does not model the offload transfers; ``allow_offload=True`` returns the GPU-side estimate
  without them, flagged. ``check_memory=False`` (compare, plan, grids) records the verdict in
  ``memory_fit`` and does not raise.
- **Extrapolation.** ``gpu_measured``, ``precision_measured_on_gpu_class``, ``flop_in_range``,
  ``byte_in_range``, ``model_in_data`` and ``family_in_data`` say where the call leaves the law's data,
  ``extrapolation`` says it in words and ``extrapolated`` sums it up; the interval is widened by
  the law file's out-of-split spread (:mod:`fits.extrapolation`, ``interval_widened_by``).
- **Physics.** The time is no faster than the roofline and the implied power lies between the
  idle floor and the TDP (:mod:`scaling.app.physics`); a clamp is listed in ``clamps``.
- **Several GPUs.** ``gpus=8`` and/or ``parallel="ulysses=2,ring=4"`` (a
  :class:`~scaling.parallel.ParallelPlan`): the plan is checked before any work
  (:func:`scaling.parallel.check_plan`; ``--gpus`` alone takes :func:`scaling.parallel.default_plan`),
  the one-GPU call is predicted as above and carried to the plan by the multi-GPU law
  (:func:`scaling.app.parallel_features.predict_parallel`). ``energy_j`` is then every GPU for the
  whole call (busy or waiting), ``time_s`` the call's latency, ``average_power_w`` all GPUs together,
  and the fleet GPU-hours count every GPU. Memory: xDiT sequence and CFG parallelism replicate the
  weights on each GPU, so the one-GPU memory rule applies per GPU. A GPU with no multi-GPU
  measurement in the law's data (anything but the H100) is flagged ``extrapolated``.

Length: a little over 500 lines on purpose: the :class:`Estimate` record and the one function
that fills it (:func:`predict_setting`) change together, field for field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fits.law_file import load_law
from profilers.flops.memory import RUNTIME_OVERHEAD_BYTE, GiB, MemoryProfile, memory_profile
from profilers.flops.profile import cache_dir, profile
from profilers.flops.comm import attention_shapes
from scaling.app.parallel_features import predict_parallel
from scaling.app.physics import IDLE_SOURCE, bound, profile_byte
from scaling.carbon import Intensity, check_carbon_source, check_pue, intensity_for
from scaling.errors import DoesNotFitError, InvalidSettingError, LawError
from scaling.hardware import DEFAULT_GPU, GPUSpec, family_default_note, resolve_gpu
from scaling.parallel import ParallelPlan, check_plan, default_plan, parse_plan
from scaling.precision import precision_plan
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting, make_setting
from scaling.units import J_PER_KWH, J_PER_WH, S_PER_HOUR

MEMORY_RULE = (f"all weights at the precision + the largest activation estimate (batch included) + "
               f"{RUNTIME_OVERHEAD_BYTE / GiB:g} GiB runtime must fit the GPU's memory (profilers/flops/memory.py)")

OFFLOAD_NOTE = ("fits only with model CPU offload: the offload transfers (the weights moved to the GPU every call) "
                "are not modelled; energy and time are the GPU work alone, a lower bound")

#: ``memory_fit`` values that a ranking ranks (compare, plan): the pipeline runs with every
#: component resident, or the memory model cannot say (weights not counted).
RANKED_FITS = ("all resident", "unknown")


@dataclass(frozen=True)
class ComponentEstimate:
    role: str
    flop: float
    energy_j: float
    energy_lo_j: float
    energy_hi_j: float
    time_s: float | None = None

    @property
    def energy_wh(self) -> float:
        return self.energy_j / J_PER_WH


@dataclass(frozen=True)
class Estimate:
    """Predicted energy, time and carbon of one generation call, per output, and of ``count`` outputs.

    ``energy_j``, ``time_s`` (and their ``lo`` / ``hi``) are ONE pipeline call, the whole batch of
    ``setting.n_outputs`` outputs; the ``*_per_output_*`` properties divide by ``n_outputs``;
    ``count`` is a number of outputs and the ``fleet_*`` totals are per output x ``count``.
    """

    model_id: str
    setting: GenerationSetting
    gpu: str
    gpu_name: str
    gpu_measured: bool              # the law saw measurements on this GPU
    precision: str
    law: str
    interval: float                 # e.g. 0.9
    components: tuple[ComponentEstimate, ...]
    energy_j: float                 # per call (the whole batch)
    energy_lo_j: float
    energy_hi_j: float
    time_s: float                   # per call (the latency of a request)
    time_lo_s: float
    time_hi_s: float
    flop: float                     # per call
    intensity_g_per_kwh: float
    intensity_source: str
    pue: float
    count: int = 1                  # outputs (not calls)
    notes: tuple[str, ...] = field(default_factory=tuple)
    # -- trust: where the call leaves the law's data (fits.law_file) ------------------------
    precision_measured_on_gpu_class: bool = True
    flop_in_range: bool = True
    byte_in_range: bool = True                  # bytes moved inside the law's data (laws that read bytes)
    model_in_data: bool = True
    family_in_data: bool = True
    extrapolation: tuple[str, ...] = ()         # one line per reason
    interval_widened_by: tuple[str, ...] = ()   # residual_spread splits added to the interval
    # -- memory (profilers.flops.memory) ----------------------------------------------------
    memory_fit: str = "unknown"                 # all resident | with model CPU offload | does not fit | unknown
    memory_resident_gib: float | None = None    # every component resident: what predict requires
    memory_offload_gib: float | None = None     # one component at a time (model CPU offload)
    gpu_memory_gib: float | None = None
    # -- physics (scaling.app.physics) ------------------------------------------------------
    law_time_s: float | None = None             # the time law's value before the bounds
    law_compute_time_s: float | None = None     # the roofline time law's compute term (FLOPs at its fitted rate)
    law_memory_time_s: float | None = None      # ... and its memory term (bytes at its fitted rate)
    roofline_time_s: float | None = None        # max(FLOP / peak, bytes / bandwidth)
    tdp_w: float | None = None
    idle_floor_w: float | None = None
    clamps: tuple[str, ...] = ()
    # -- several GPUs (scaling.parallel, fits.parallel) --------------------------------------
    gpu_count: int = 1                          # GPUs of the call; energy_j counts all of them
    plan: str | None = None                     # ulysses=U,ring=R,cfg=C; None on one GPU without a plan

    # -- trust --------------------------------------------------------------------------------
    @property
    def extrapolated(self) -> bool:
        """True when the call leaves the law's data in any way listed in ``extrapolation``."""
        return bool(self.extrapolation)

    @property
    def fits_memory(self) -> bool:
        """Every component fits resident (or the memory model cannot say): what a ranking ranks."""
        return self.memory_fit in RANKED_FITS

    @property
    def power_w(self) -> float:
        """Implied average GPU power of the call, energy / time (W; all GPUs together)."""
        return self.energy_j / self.time_s if self.time_s > 0 else float("nan")

    @property
    def average_power_w(self) -> float:
        """Average power of the call over all its GPUs together, energy / time (W): ``power_w``."""
        return self.power_w

    # -- per call ------------------------------------------------------------------------------
    @property
    def n_outputs(self) -> int:
        return self.setting.n_outputs

    @property
    def energy_wh(self) -> float:
        return self.energy_j / J_PER_WH

    @property
    def co2e_g(self) -> float:
        """CO2e of one call (energy x PUE x intensity), g."""
        return self.energy_j * self.pue / J_PER_KWH * self.intensity_g_per_kwh

    @property
    def co2e_lo_g(self) -> float:
        return self.energy_lo_j * self.pue / J_PER_KWH * self.intensity_g_per_kwh

    @property
    def co2e_hi_g(self) -> float:
        return self.energy_hi_j * self.pue / J_PER_KWH * self.intensity_g_per_kwh

    # -- per output ----------------------------------------------------------------------------
    @property
    def energy_per_output_j(self) -> float:
        return self.energy_j / self.n_outputs

    @property
    def energy_per_output_lo_j(self) -> float:
        return self.energy_lo_j / self.n_outputs

    @property
    def energy_per_output_hi_j(self) -> float:
        return self.energy_hi_j / self.n_outputs

    @property
    def energy_per_output_wh(self) -> float:
        return self.energy_per_output_j / J_PER_WH

    @property
    def time_per_output_s(self) -> float:
        """GPU time per output (call time / outputs of the call: throughput, not latency)."""
        return self.time_s / self.n_outputs

    @property
    def time_per_output_lo_s(self) -> float:
        return self.time_lo_s / self.n_outputs

    @property
    def time_per_output_hi_s(self) -> float:
        return self.time_hi_s / self.n_outputs

    @property
    def co2e_per_output_g(self) -> float:
        return self.co2e_g / self.n_outputs

    @property
    def co2e_per_output_lo_g(self) -> float:
        return self.co2e_lo_g / self.n_outputs

    @property
    def co2e_per_output_hi_g(self) -> float:
        return self.co2e_hi_g / self.n_outputs

    # -- fleet (count outputs) -----------------------------------------------------------------
    @property
    def fleet_calls(self) -> float:
        """Pipeline calls that make ``count`` outputs (count / n_outputs; fractional when it does not divide)."""
        return self.count / self.n_outputs

    @property
    def fleet_kwh(self) -> float:
        """Facility energy of ``count`` outputs (GPU energy per output x count x PUE), kWh."""
        return self.energy_per_output_j * self.count * self.pue / J_PER_KWH

    @property
    def fleet_kwh_interval(self) -> tuple[float, float]:
        return (self.energy_per_output_lo_j * self.count * self.pue / J_PER_KWH,
                self.energy_per_output_hi_j * self.count * self.pue / J_PER_KWH)

    @property
    def fleet_gpu_hours(self) -> float:
        """GPU-hours of ``count`` outputs: time per output x count x GPUs of a call."""
        return self.time_per_output_s * self.count * self.gpu_count / S_PER_HOUR

    @property
    def fleet_gpu_hours_interval(self) -> tuple[float, float]:
        k = self.count * self.gpu_count / S_PER_HOUR
        return self.time_per_output_lo_s * k, self.time_per_output_hi_s * k

    @property
    def fleet_co2e_kg(self) -> float:
        return self.co2e_per_output_g * self.count / 1000.0

    @property
    def fleet_co2e_kg_interval(self) -> tuple[float, float]:
        return self.co2e_per_output_lo_g * self.count / 1000.0, self.co2e_per_output_hi_g * self.count / 1000.0

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus the per-call, per-output and fleet figures under names that say which.

        ``energy_j`` / ``time_s`` / ``co2e_g`` (and lo / hi) stay the per-call figures, repeated
        as ``*_per_call_*``; ``units`` says what each group is per.
        """
        d = asdict(self)
        d["setting"] = self.setting.to_dict()
        d.update(
            energy_wh=self.energy_wh, co2e_g=self.co2e_g, co2e_lo_g=self.co2e_lo_g, co2e_hi_g=self.co2e_hi_g,
            n_outputs=self.n_outputs,
            energy_per_call_j=self.energy_j, energy_per_call_lo_j=self.energy_lo_j,
            energy_per_call_hi_j=self.energy_hi_j, energy_per_call_wh=self.energy_wh,
            time_per_call_s=self.time_s, time_per_call_lo_s=self.time_lo_s, time_per_call_hi_s=self.time_hi_s,
            co2e_per_call_g=self.co2e_g, co2e_per_call_lo_g=self.co2e_lo_g, co2e_per_call_hi_g=self.co2e_hi_g,
            energy_per_output_j=self.energy_per_output_j, energy_per_output_lo_j=self.energy_per_output_lo_j,
            energy_per_output_hi_j=self.energy_per_output_hi_j, energy_per_output_wh=self.energy_per_output_wh,
            time_per_output_s=self.time_per_output_s, time_per_output_lo_s=self.time_per_output_lo_s,
            time_per_output_hi_s=self.time_per_output_hi_s,
            co2e_per_output_g=self.co2e_per_output_g, co2e_per_output_lo_g=self.co2e_per_output_lo_g,
            co2e_per_output_hi_g=self.co2e_per_output_hi_g,
            fleet_outputs=self.count, fleet_calls=self.fleet_calls,
            fleet_kwh=self.fleet_kwh, fleet_kwh_interval=self.fleet_kwh_interval,
            fleet_gpu_hours=self.fleet_gpu_hours, fleet_gpu_hours_interval=self.fleet_gpu_hours_interval,
            fleet_co2e_kg=self.fleet_co2e_kg, fleet_co2e_kg_interval=self.fleet_co2e_kg_interval,
            extrapolated=self.extrapolated, fits_memory=self.fits_memory, power_w=self.power_w,
            average_power_w=self.average_power_w,
            units={"energy_j, time_s, co2e_g, flop, *_per_call_*": "one pipeline call (the whole batch)",
                   "*_per_output_*": "one output: the per-call figure / n_outputs",
                   "count, fleet_outputs": "outputs", "fleet_*": "per-output figure x count (kWh: x PUE)",
                   "energy_j, average_power_w (gpu_count > 1)": "every GPU of the call, busy or waiting"},
            estimate=True)
        return d


def predict(
    model: str | ModelSpec,
    *,
    gpu: str | GPUSpec | None = None,
    law: Any = None,
    region: str | None = None,
    intensity: float | None = None,
    pue: float = 1.0,
    count: int = 1,
    attention: str | None = None,
    allow_offload: bool = False,
    check_memory: bool = True,
    gpus: int | None = None,
    parallel: str | ParallelPlan | None = None,
    **setting_kwargs: Any,
) -> Estimate:
    """Predict one generation of ``model``.

    ``setting_kwargs`` are those of :func:`scaling.settings.make_setting` (res, frames,
    seconds, steps, guidance, cfg, batch_size, outputs_per_prompt, precision). ``law`` is a
    path to a law JSON, a loaded law, or None for the shipped default. ``attention`` names
    attention variants (``"litefocus:r=0.1"``, ``"tome:ratio=0.5"``, ``"window:size=512"``;
    see :mod:`profilers.flops.attention_variants`): they change the FLOPs the law sees.
    ``count`` is a number of outputs (the fleet totals). ``allow_offload`` accepts a pipeline
    that fits only with model CPU offload (its transfers are not modelled: flagged);
    ``check_memory=False`` never raises :class:`~scaling.errors.DoesNotFitError` and leaves the
    verdict in ``memory_fit`` (what compare and plan use). ``gpus`` (default 1, or the plan's
    product) and ``parallel`` (``"ulysses=2,ring=4[,cfg=2]"`` or a
    :class:`~scaling.parallel.ParallelPlan`; default :func:`~scaling.parallel.default_plan`)
    predict the call on several GPUs (the module doc, "Several GPUs").

    Raises
    ------
    InvalidSettingError
        A plan the engine cannot run (heads, sequence, CFG, product != ``gpus``), checked first.
    DoesNotFitError
        The pipeline does not fit the GPU's memory with every component resident (and
        ``allow_offload`` is off or offload does not fit either), when ``check_memory``.
    """
    check_carbon_source(region, intensity)
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    gpu_spec = gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu or DEFAULT_GPU)
    setting = make_setting(spec, gpu=gpu_spec.key, **setting_kwargs)
    est = predict_setting(setting, gpu=gpu_spec, law=law, region=region, intensity=intensity, pue=pue,
                          count=count, spec=spec, attention=attention, allow_offload=allow_offload,
                          check_memory=check_memory, gpus=gpus, parallel=parallel)
    note = family_default_note(gpu)
    return replace(est, notes=(note, *est.notes)) if note else est


def memory_verdict(mem: MemoryProfile | None) -> str:
    """'all resident' | 'with model CPU offload' | 'does not fit' | 'unknown': the one memory rule of
    predict, compare and plan (a fit with uncounted weights would be a lower bound: 'unknown')."""
    if mem is None or mem.gpu_memory_byte is None:
        return "unknown"
    verdict = mem.pipeline_fit()
    if verdict != "does not fit" and any(c.weights_byte is None for c in mem.components):
        return "unknown"
    return verdict or "unknown"


def _does_not_fit(setting: GenerationSetting, spec: ModelSpec, gpu: GPUSpec, mem: MemoryProfile, verdict: str) -> str:
    resident = (mem.resident_peak_byte + mem.overhead_byte) / GiB
    offload = (mem.offload_peak_byte + mem.overhead_byte) / GiB
    batch = f"batch {setting.batch_size}" + (f" x {setting.outputs_per_prompt} outputs per prompt"
                                             if setting.outputs_per_prompt > 1 else "")
    head = (f"`model` {spec.id} at {batch} in {setting.precision} needs {resident:.1f} GiB on GPU {gpu.key}, "
            f"which has {gpu.memory_byte / GiB:.0f} GiB (rule: {MEMORY_RULE}")
    if verdict == "with model CPU offload":
        return (head + f"; it fits only with model CPU offload, {offload:.1f} GiB, whose transfers the law does not "
                "model: allow_offload=True (`scaling predict --allow-offload`) gives the GPU-side estimate "
                "without them, a lower bound)")
    return head + f"; even with model CPU offload it needs {offload:.1f} GiB)"


def predict_setting(setting: GenerationSetting, *, gpu: GPUSpec, law: Any = None, region: str | None = None,
                    intensity: float | None = None, pue: float = 1.0, count: int = 1,
                    spec: ModelSpec | None = None, attention: str | None = None, allow_offload: bool = False,
                    check_memory: bool = True, gpus: int | None = None,
                    parallel: str | ParallelPlan | None = None) -> Estimate:
    """:func:`predict` of a made setting (arguments of :func:`predict`)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidSettingError(f"`count` {count!r}: it must be a positive whole number of outputs")
    spec = spec or resolve_model(setting.model)
    plan = resolve_plan(setting, spec, gpus, parallel)
    if plan is not None:
        if attention:
            raise InvalidSettingError(f"attention variant {attention!r} with a parallel plan ({plan}): the multi-GPU "
                                      "law is fitted on full attention; predict the variant on one GPU")
        one = predict_setting(setting, gpu=gpu, law=law, region=region, intensity=intensity, pue=pue, count=count,
                              spec=spec, allow_offload=allow_offload, check_memory=check_memory)
        return _on_several_gpus(one, setting, spec, gpu, plan, law)
    pue = check_pue(pue)
    carbon: Intensity = intensity_for(region, intensity)
    mem = memory_profile(setting, spec=spec, gpu=gpu)
    verdict = memory_verdict(mem)
    if check_memory and (verdict == "does not fit" or (verdict == "with model CPU offload" and not allow_offload)):
        raise DoesNotFitError(_does_not_fit(setting, spec, gpu, mem, verdict))
    law_obj = _load_law(law)
    prof = profile(setting, spec=spec, attention=attention)
    if law_obj.reads_bytes and not prof.has_bytes:
        raise LawError(f"`model` {spec.id}: its FLOP table has no byte counts and law {law_obj.name!r} reads the bytes "
                       f"moved (rule: rebuild the table with byte counts, a cached local table by deleting it under "
                       f"{cache_dir()}, or pass a FLOP-only law with --law)")
    role_flops = prof.by_role()
    res = law_obj.predict(setting, role_flops, gpu, spec,
                          byte_by_role=prof.by_role_byte() if prof.has_bytes else None)
    total, time = res.energy_j["total"], res.time_s
    plan = precision_plan(setting.precision, gpu)
    phys = bound(total.as_tuple(), time.as_tuple(), flop=prof.total_flop, peak_flop_per_s=plan.peak_flop_per_s,
                 gpu=gpu, byte=profile_byte(prof), precision=plan.compute)
    k_e = phys.energy_j[0] / total.value if total.value > 0 else 1.0
    comps = tuple(
        ComponentEstimate(role=r, flop=role_flops[r], energy_j=res.energy_j[r].value * k_e,
                          energy_lo_j=res.energy_j[r].lo * k_e, energy_hi_j=res.energy_j[r].hi * k_e,
                          time_s=None if res.time_by_role_s.get(r) is None
                          else res.time_by_role_s[r] * phys.time_factor)
        for r in res.roles
    )
    notes = list(res.notes)
    extrapolation = list(res.extrapolation)
    if verdict == "with model CPU offload":
        notes.append(OFFLOAD_NOTE)
        extrapolation.append("CPU offload is not modelled (the pipeline fits only with model CPU offload)")
    elif verdict == "does not fit":
        notes.append("does not fit the GPU's memory even with model CPU offload: a figure for comparison only")
        extrapolation.append("the pipeline does not fit this GPU's memory")
    elif verdict == "unknown":
        notes.append("memory fit unknown (some weights are not counted)")
    notes.extend(f"physics: {c}" for c in phys.clamps)
    if any("idle floor" in c for c in phys.clamps):
        notes.append(f"physics: {IDLE_SOURCE}")
    if prof.attention:
        notes.append("attention " + "; ".join(f"{k}={v}" for k, v in prof.attention.items())
                     + ": the law sees the variant's FLOPs and bytes (an eager kernel's score-matrix traffic included); "
                       "the kernel efficiency of sparse attention is not modelled")
    if carbon.source.startswith("assumed"):
        notes.append(f"carbon intensity {carbon.g_per_kwh:g} g/kWh is an assumed world average: pass --region or --intensity")
    (e, e_lo, e_hi), (t, t_lo, t_hi) = phys.energy_j, phys.time_s
    return Estimate(
        model_id=spec.id, setting=setting, gpu=gpu.key, gpu_name=gpu.name, gpu_measured=res.gpu_measured,
        precision=setting.precision, law=res.law_name, interval=res.level, components=comps,
        energy_j=e, energy_lo_j=e_lo, energy_hi_j=e_hi, time_s=t, time_lo_s=t_lo, time_hi_s=t_hi,
        flop=prof.total_flop, intensity_g_per_kwh=carbon.g_per_kwh, intensity_source=carbon.source, pue=pue,
        count=count, notes=tuple(notes),
        precision_measured_on_gpu_class=res.precision_measured_on_gpu_class, flop_in_range=res.flop_in_range,
        byte_in_range=res.byte_in_range, model_in_data=res.model_in_data, family_in_data=res.family_in_data, extrapolation=tuple(extrapolation),
        interval_widened_by=res.widened_by,
        memory_fit=verdict, memory_resident_gib=(mem.resident_peak_byte + mem.overhead_byte) / GiB,
        memory_offload_gib=(mem.offload_peak_byte + mem.overhead_byte) / GiB,
        gpu_memory_gib=gpu.memory_byte / GiB,
        law_time_s=time.value, roofline_time_s=phys.roofline_time_s, tdp_w=phys.tdp_w,
        law_compute_time_s=res.roofline_terms_s[0] if res.roofline_terms_s else None,
        law_memory_time_s=res.roofline_terms_s[1] if res.roofline_terms_s else None,
        idle_floor_w=phys.idle_floor_w, clamps=phys.clamps,
    )


def resolve_plan(setting: GenerationSetting, spec: ModelSpec, gpus: int | None,
                 parallel: str | ParallelPlan | None) -> ParallelPlan | None:
    """The checked plan of ``gpus`` / ``parallel``, or None for the one-GPU path (1 GPU, no plan).

    Raises
    ------
    InvalidSettingError
        ``gpus`` is not a positive whole number, or the plan breaks a rule of
        :func:`scaling.parallel.check_plan` (heads, sequence, CFG, ulysses x ring x cfg != ``gpus``).
    """
    if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1):
        raise InvalidSettingError(f"`gpus` {gpus!r}: it must be a positive whole number of GPUs")
    if parallel is None and (gpus is None or gpus == 1):
        return None
    shapes = attention_shapes(spec, setting)
    if parallel is None:
        return default_plan(gpus, cfg=setting.cfg, heads=shapes.heads, seq_len=shapes.split_len, pads=shapes.pads)
    plan = parse_plan(parallel) if isinstance(parallel, str) else parallel
    return check_plan(plan, heads=shapes.heads, seq_len=shapes.split_len, cfg=setting.cfg, n_gpus=gpus,
                      pads=shapes.pads)


MULTI_GPU_NOTE = ("energy counts every GPU for the whole call (busy or waiting: {n} GPUs); time is the call's "
                  "latency; average power is all GPUs together")


def _on_several_gpus(one: Estimate, setting: GenerationSetting, spec: ModelSpec, gpu: GPUSpec, plan: ParallelPlan,
                     law: Any) -> Estimate:
    """The one-GPU estimate ``one`` carried to ``plan`` by the multi-GPU law."""
    if plan.gpus == 1:
        return replace(one, plan=str(plan))
    pred = predict_parallel(spec, plan, gpu, setting=setting, single_law=_load_law(law))
    e, t = pred.energy_j, pred.time_s
    k = e.value / one.energy_j if one.energy_j > 0 else 1.0
    comps = tuple(replace(c, energy_j=c.energy_j * k, energy_lo_j=c.energy_lo_j * k, energy_hi_j=c.energy_hi_j * k,
                          time_s=None) for c in one.components)
    kept = [n for n in one.notes if not n.startswith("physics:")]  # the one-GPU bounds do not apply here
    notes = [*kept, *(n for n in pred.notes if n not in one.notes and n != "one GPU: the single-GPU call"),
             MULTI_GPU_NOTE.format(n=plan.gpus),
             "per-component energies on several GPUs: the one-GPU split scaled to the multi-GPU total",
             f"memory: the weights are replicated on each of the {plan.gpus} GPUs (xDiT sequence / CFG "
             "parallelism), so the one-GPU memory rule applies per GPU"]
    extrapolation = [*one.extrapolation,
                     *(n.removeprefix("extrapolation: ") for n in pred.notes
                       if n.startswith("extrapolation:") or "PCIe" in n)]
    if pred.extrapolation and len(extrapolation) == len(one.extrapolation):
        extrapolation.append(f"the multi-GPU law extrapolates for {plan} on {gpu.key}")
    return replace(one, gpu_count=plan.gpus, plan=str(plan), components=comps, energy_j=e.value, energy_lo_j=e.lo,
                   energy_hi_j=e.hi, time_s=t.value, time_lo_s=t.lo, time_hi_s=t.hi, interval=e.level,
                   law=f"{one.law} + multi-GPU law", notes=tuple(notes), extrapolation=tuple(extrapolation),
                   law_time_s=t.value, clamps=())


def _load_law(law: Any):
    """``law`` as a loaded law: a path (or None: the shipped default) is read, a loaded law kept."""
    if law is None or isinstance(law, str) or hasattr(law, "__fspath__"):
        return load_law(law)
    if not callable(getattr(law, "predict", None)):
        raise LawError(f"`law` {law!r}: pass a law file path or a loaded law (scaling.load_law)")
    return law
