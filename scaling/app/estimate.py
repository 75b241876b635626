"""Predict energy, time and CO2e of a generation: the main job.

``predict("wan2.1", frames=81, res="480p")`` -> :class:`Estimate`. Pure Python on the shipped
closed-form FLOP tables and the shipped default law: no torch, no GPU, no network.

Every figure is an estimate from a fitted law, with a 90% interval; the output says which law
and whether the GPU appears in the law's training data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fits.law_file import load_law
from scaling.carbon import Intensity, check_pue, intensity_for
from scaling.errors import InvalidSettingError, LawError
from scaling.hardware import DEFAULT_GPU, GPUSpec, resolve_gpu
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting, make_setting

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6


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
    """Predicted energy, time and carbon of one generation call (and of ``count`` of them)."""

    model_id: str
    setting: GenerationSetting
    gpu: str
    gpu_name: str
    gpu_measured: bool              # the law saw measurements on this GPU
    precision: str
    law: str
    interval: float                 # e.g. 0.9
    components: tuple[ComponentEstimate, ...]
    energy_j: float
    energy_lo_j: float
    energy_hi_j: float
    time_s: float
    time_lo_s: float
    time_hi_s: float
    flop: float
    intensity_g_per_kwh: float
    intensity_source: str
    pue: float
    count: int = 1
    notes: tuple[str, ...] = field(default_factory=tuple)

    # -- per generation ---------------------------------------------------------------------
    @property
    def energy_wh(self) -> float:
        return self.energy_j / J_PER_WH

    @property
    def co2e_g(self) -> float:
        return self.energy_j * self.pue / J_PER_KWH * self.intensity_g_per_kwh

    @property
    def co2e_lo_g(self) -> float:
        return self.energy_lo_j * self.pue / J_PER_KWH * self.intensity_g_per_kwh

    @property
    def co2e_hi_g(self) -> float:
        return self.energy_hi_j * self.pue / J_PER_KWH * self.intensity_g_per_kwh

    # -- fleet (count generations) -----------------------------------------------------------
    @property
    def fleet_kwh(self) -> float:
        """Facility energy of ``count`` generations (GPU energy x PUE)."""
        return self.energy_j * self.count * self.pue / J_PER_KWH

    @property
    def fleet_kwh_interval(self) -> tuple[float, float]:
        return (self.energy_lo_j * self.count * self.pue / J_PER_KWH,
                self.energy_hi_j * self.count * self.pue / J_PER_KWH)

    @property
    def fleet_gpu_hours(self) -> float:
        return self.time_s * self.count / 3600.0

    @property
    def fleet_co2e_kg(self) -> float:
        return self.co2e_g * self.count / 1000.0

    @property
    def fleet_co2e_kg_interval(self) -> tuple[float, float]:
        return self.co2e_lo_g * self.count / 1000.0, self.co2e_hi_g * self.count / 1000.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["setting"] = self.setting.to_dict()
        d.update(energy_wh=self.energy_wh, co2e_g=self.co2e_g, co2e_lo_g=self.co2e_lo_g, co2e_hi_g=self.co2e_hi_g,
                 fleet_kwh=self.fleet_kwh, fleet_kwh_interval=self.fleet_kwh_interval,
                 fleet_gpu_hours=self.fleet_gpu_hours, fleet_co2e_kg=self.fleet_co2e_kg,
                 fleet_co2e_kg_interval=self.fleet_co2e_kg_interval, estimate=True)
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
    **setting_kwargs: Any,
) -> Estimate:
    """Predict one generation of ``model``.

    ``setting_kwargs`` are those of :func:`scaling.settings.make_setting` (res, frames,
    seconds, steps, guidance, cfg, batch_size, outputs_per_prompt, precision). ``law`` is a
    path to a law JSON, a loaded law, or None for the shipped default. ``attention`` names
    attention variants (``"litefocus:r=0.1"``, ``"tome:ratio=0.5"``, ``"window:size=512"``;
    see :mod:`profilers.flops.attention_variants`): they change the FLOPs the law sees.
    """
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    gpu_spec = gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu or DEFAULT_GPU)
    setting = make_setting(spec, gpu=gpu_spec.key, **setting_kwargs)
    return predict_setting(setting, gpu=gpu_spec, law=law, region=region, intensity=intensity, pue=pue,
                           count=count, spec=spec, attention=attention)


def predict_setting(setting: GenerationSetting, *, gpu: GPUSpec, law: Any = None, region: str | None = None,
                    intensity: float | None = None, pue: float = 1.0, count: int = 1,
                    spec: ModelSpec | None = None, attention: str | None = None) -> Estimate:
    from profilers.flops.profile import profile

    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidSettingError(f"`count` {count!r}: it must be a positive whole number of generations")
    pue = check_pue(pue)
    carbon: Intensity = intensity_for(region, intensity)
    spec = spec or resolve_model(setting.model)
    law_obj = _load_law(law)
    prof = profile(setting, spec=spec, attention=attention)
    role_flops = prof.by_role()
    res = law_obj.predict(setting, role_flops, gpu, spec)
    comps = tuple(
        ComponentEstimate(role=r, flop=role_flops[r], energy_j=res.energy_j[r].value,
                          energy_lo_j=res.energy_j[r].lo, energy_hi_j=res.energy_j[r].hi,
                          time_s=res.time_by_role_s.get(r))
        for r in res.roles
    )
    total, time = res.energy_j["total"], res.time_s
    notes = list(res.notes)
    if prof.attention:
        notes.append("attention variant " + "; ".join(f"{k}={v}" for k, v in prof.attention.items())
                     + ": the law sees the reduced FLOPs; kernel efficiency of sparse attention is not modelled")
    if carbon.source.startswith("assumed"):
        notes.append(f"carbon intensity {carbon.g_per_kwh:g} g/kWh is an assumed world average: pass --region or --intensity")
    return Estimate(
        model_id=spec.id, setting=setting, gpu=gpu.key, gpu_name=gpu.name, gpu_measured=res.gpu_measured,
        precision=setting.precision, law=res.law_name, interval=res.level, components=comps,
        energy_j=total.value, energy_lo_j=total.lo, energy_hi_j=total.hi,
        time_s=time.value, time_lo_s=time.lo, time_hi_s=time.hi, flop=prof.total_flop,
        intensity_g_per_kwh=carbon.g_per_kwh, intensity_source=carbon.source, pue=pue, count=count,
        notes=tuple(notes),
    )


def _load_law(law: Any):
    """``law`` as a loaded law: a path (or None: the shipped default) is read, a loaded law kept."""
    if law is None or isinstance(law, str) or hasattr(law, "__fspath__"):
        return load_law(law)
    if not callable(getattr(law, "predict", None)):
        raise LawError(f"`law` {law!r}: pass a law file path or a loaded law (scaling.load_law)")
    return law
