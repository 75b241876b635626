"""FLOP profile of one generation: per component and per role, split by op class.

``profile(setting)`` uses the shipped closed-form polynomials (no torch, microseconds);
``profile(setting, method="traced")`` traces the real classes on the meta device.

Closed form: for the architectures in the registry, the FLOPs of one call are a polynomial in a
few shape variables (token count ``L``, latent pixels ``P``, latent frames ``f``, ...): linear
layers and convolutions are linear in them, attention is quadratic. ``build_closed_form``
traces the real classes at a design of settings and solves for the coefficients exactly; this
module only evaluates them (``scaling/_registry/flops/<model>.json``). The closed-form profile
of one setting runs this module, the family's shape function (``scaling/shapes/_<modality>.py``)
and the shape helpers (``scaling/shapes/_common.py``), and imports no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any, Mapping

from profilers.flops.attention_variants import apply_variant, component_sites, variants_for
from scaling.errors import ProfilerError
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting
from scaling.shapes import FAMILIES, ComponentCall

OP_CLASSES = ("attention", "linear", "conv", "other")
METHODS = ("closed-form", "traced")


# -- the closed-form tables ---------------------------------------------------------------------

@cache
def _table(architecture_key: str) -> dict[str, Any]:
    path = resources.files("scaling").joinpath("_registry", "flops", f"{architecture_key}.json")
    if not path.is_file():
        raise ProfilerError(
            f"no closed-form FLOP table for {architecture_key!r}: run `python -m profilers.flops.build_closed_form "
            f"{architecture_key}` or profile with --traced"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def has_table(spec: ModelSpec) -> bool:
    try:
        _table(spec.architecture_key)
        return True
    except ProfilerError:
        return False


def evaluate(spec: ModelSpec, call: ComponentCall) -> dict[str, float]:
    """FLOPs of ONE call for ONE sample, by op class, from the shipped polynomial."""
    table = _table(spec.architecture_key)
    entry = table["components"].get(call.key)
    if entry is None:
        raise ProfilerError(f"{spec.id}: the closed-form table has no entry for {call.key}")
    return evaluate_entry(entry, call.features)


def evaluate_entry(entry: Mapping[str, Any], features: Mapping[str, float]) -> dict[str, float]:
    values = []
    for mono in entry["basis"]:
        v = 1.0
        for name, power in mono:
            v *= float(features[name]) ** power
        values.append(v)
    return {op: float(sum(c * v for c, v in zip(entry["coef"][op], values))) for op in OP_CLASSES}


def parameter_counts(spec: ModelSpec) -> dict[str, int]:
    """Parameters per component, recorded when the table was built."""
    return dict(_table(spec.architecture_key).get("params", {}))


# -- the profile --------------------------------------------------------------------------------


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

    def to_frame(self):
        """One row per component (pandas): component, role, label, shape, batch, calls,
        per_call_flop, flop (per generation) and ``<op>_flop`` per op class (per generation)."""
        import pandas as pd

        return pd.DataFrame.from_records([
            {"component": c.component, "role": c.role, "label": c.label, "shape": c.description, "batch": c.batch,
             "calls": c.calls, "per_call_flop": c.per_call_flop, "flop": c.flop,
             **{f"{k}_flop": c.by_op_flop.get(k, 0.0) for k in OP_CLASSES}}
            for c in self.components
        ], columns=["component", "role", "label", "shape", "batch", "calls", "per_call_flop", "flop",
                    *(f"{k}_flop" for k in OP_CLASSES)])

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
    calls = FAMILIES[spec.family](spec, setting)
    comps = []
    for call in calls:
        comps.append(ComponentFlops(
            component=call.component, role=call.role, label=call.label, description=call.description,
            batch=call.batch, calls=call.calls, per_sample_call_flop=_count(spec, call, method),
        ))
    prof = FlopProfile(model_id=spec.id, model_key=spec.key, setting=setting, method=method, components=tuple(comps))
    if attention:
        prof = _with_attention(prof, calls, attention, spec)
    return prof


def _with_attention(prof: FlopProfile, calls: list[ComponentCall], attention: str | Mapping[str, str],
                    spec: ModelSpec) -> FlopProfile:
    """The profile with the attention variants applied: closed-form profiles from the site tables
    (no torch), traced profiles by tracing the call again with the chosen sites patched to run the
    variant (``build_attention_sites.trace_variant``)."""
    chosen = variants_for(prof.components, attention, spec.id)
    for comp in chosen:
        component_sites(spec, comp)  # InvalidSettingError naming the component if it has no sites
    new = []
    for call, c in zip(calls, prof.components):  # one ComponentFlops per call, in order
        v = chosen.get(c.component)
        if v is None or v.kind == "full":
            new.append(c)
            continue
        if prof.method == "traced":
            from profilers.flops.build_attention_sites import trace_variant  # torch only here

            flops = trace_variant(spec, call, v)
        else:
            flops = apply_variant(c.per_sample_call_flop, v, call.features, model=spec, component=c.component)
        new.append(replace(c, per_sample_call_flop=flops))
    return replace(prof, components=tuple(new), attention={k: str(v) for k, v in chosen.items()})
