"""FLOP profile of one generation: per component and per role, split by op class.

``profile(setting)`` uses the shipped closed-form polynomials (no torch, microseconds);
``profile(setting, method="traced")`` traces the real classes on the meta device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting
from scaling.shapes import ComponentCall, component_calls

OP_CLASSES = ("attention", "linear", "conv", "other")
METHODS = ("closed-form", "traced")


@dataclass(frozen=True)
class ComponentFlops:
    """One component (or sub-call) of a generation."""

    component: str
    role: str
    label: str
    description: str
    batch: int
    calls: int
    per_sample_call_flop: Mapping[str, float]   # one call, one sample, by op class

    @property
    def per_call_flop(self) -> float:
        """One call, whole batch."""
        return sum(self.per_sample_call_flop.values()) * self.batch

    @property
    def by_op_flop(self) -> dict[str, float]:
        """Per generation, by op class."""
        return {k: v * self.batch * self.calls for k, v in self.per_sample_call_flop.items()}

    @property
    def flop(self) -> float:
        """Per generation."""
        return self.per_call_flop * self.calls


@dataclass(frozen=True)
class FlopProfile:
    model_id: str
    model_key: str
    setting: GenerationSetting
    method: str
    components: tuple[ComponentFlops, ...] = field(default_factory=tuple)
    attention: Mapping[str, str] = field(default_factory=dict)  # component -> attention variant (absent: full)

    @property
    def total_flop(self) -> float:
        return sum(c.flop for c in self.components)

    def by_role(self) -> dict[str, float]:
        """role -> FLOP per generation (text_encoder, denoiser, decoder, vocoder, ...)."""
        out: dict[str, float] = {}
        for c in self.components:
            out[c.role] = out.get(c.role, 0.0) + c.flop
        return out

    def by_op(self) -> dict[str, float]:
        out = dict.fromkeys(OP_CLASSES, 0.0)
        for c in self.components:
            for k, v in c.by_op_flop.items():
                out[k] += v
        return out

    def to_dict(self) -> dict:
        return {
            "model_id": self.model_id,
            "method": self.method,
            "setting": self.setting.to_dict(),
            "total_flop": self.total_flop,
            "by_role_flop": self.by_role(),
            "by_op_flop": self.by_op(),
            "attention": dict(self.attention),
            "components": [
                {"component": c.component, "role": c.role, "label": c.label, "shape": c.description,
                 "batch": c.batch, "calls": c.calls, "per_call_flop": c.per_call_flop, "flop": c.flop,
                 "by_op_flop": c.by_op_flop}
                for c in self.components
            ],
        }


def _count(spec: ModelSpec, call: ComponentCall, method: str) -> dict[str, float]:
    if method == "closed-form":
        from profilers.flops.closed_form import evaluate

        return evaluate(spec, call)
    from profilers.flops.traced import count_call  # torch only here

    return count_call(spec, call).as_dict()


def profile(setting: GenerationSetting, method: str = "closed-form", spec: ModelSpec | None = None,
            attention: str | Mapping[str, str] | None = None) -> FlopProfile:
    """FLOPs of one generation at ``setting``.

    ``attention``: attention variants per component (``"litefocus:r=0.1"``, ``"unet=tome:ratio=0.5"``,
    ``{"transformer": "window:size=512"}``; see :mod:`profilers.flops.attention_variants`)."""
    if method not in METHODS:
        raise ValueError(f"method {method!r}: use one of {METHODS}")
    spec = spec or resolve_model(setting.model)
    comps = []
    for call in component_calls(spec, setting):
        comps.append(ComponentFlops(
            component=call.component, role=call.role, label=call.label, description=call.description,
            batch=call.batch, calls=call.calls, per_sample_call_flop=_count(spec, call, method),
        ))
    prof = FlopProfile(model_id=spec.id, model_key=spec.key, setting=setting, method=method, components=tuple(comps))
    if attention:
        from profilers.flops.attention_variants import apply_to_profile

        prof = apply_to_profile(prof, attention, spec)
    return prof
