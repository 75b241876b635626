"""FLOP and byte profile of one generation: per component and per role, split by op class.

``profile(setting)`` uses the shipped closed-form polynomials (no torch, microseconds);
``profile(setting, method="traced")`` traces the real classes on the meta device.

Closed form: for the architectures in the registry, the FLOPs of one call are a polynomial in a
few shape variables (token count ``L``, latent pixels ``P``, latent frames ``f``, ...): linear
layers and convolutions are linear in them, attention is quadratic. ``build_closed_form``
traces the real classes at a design of settings and solves for the coefficients exactly; this
module only evaluates them (``scaling/_registry/flops/<model>.json``). The closed-form profile
of one setting runs this module, the family's shape function (``scaling/shapes/_<modality>.py``)
and the shape helpers (``scaling/shapes/_common.py``), and imports no torch.

Bytes moved: the same tables carry, per component call, the values each op class reads and
writes (``traffic``: activations, weights, fixed-width tensors; the fusion assumptions are
:mod:`profilers.flops.counting`'s: eager element-wise ops, fused SDPA moving Q, K, V and O, eager
attention moving its score matrix, views moving nothing). Byte classes
(:data:`BYTE_CLASSES`): the FLOP op classes plus ``elementwise``; kinds (:data:`KINDS`):

- ``activation``: floating-point activation values read and written by the ops (the tensors a
  model computes in its compute dtype);
- ``weight``: parameter and buffer values the ops read (the model's state);
- ``fixed_byte``: bytes of tensors whose width does not follow the compute dtype (integer ids
  and positions, boolean masks, float64 and complex tensors), at their own element size.

The counts are values, not bytes, so that one count serves every precision; this module holds
the widths (:func:`bytes_by_class`, :func:`weight_width_byte`, with :mod:`scaling.precision`'s
tables): activations at :data:`~scaling.precision.ACTIVATION_BYTE` (4 for fp32/tf32, 2
otherwise); weights at the same width for the unquantised precisions, and for the weight-only
and fp8/int8 formats the linear layers' weights of the quantised roles
(:data:`~scaling.precision.DEQUANT_COMPONENT_ROLES`: the denoiser) at
:data:`~scaling.precision.WEIGHT_BYTE` (packed, block scales included; the dequantisation round
trip is :func:`scaling.precision.dequant_cost`'s, not counted here) and every other weight at
:data:`~scaling.precision.UNQUANTISED_BYTE`. The class names themselves are defined in
:mod:`profilers.flops` (the package, no imports) and re-exported here, so that the torch-side
tracers this module imports lazily can use them without an import cycle.

Per generation, activations scale with the samples of a call and the weights are read once per
call: ``byte = (activation_byte x batch + weight_byte) x calls``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from profilers.flops import BYTE_CLASSES, KINDS, OP_CLASSES  # defined there, re-exported here (module doc)
from profilers.flops.attention_variants import apply_variant, component_sites, variant_traffic_delta, variants_for
from scaling.errors import ProfilerError
from scaling.precision import (
    ACTIVATION_BYTE,
    DEQUANT_COMPONENT_ROLES,
    UNQUANTISED_BYTE,
    UNQUANTISED_PRECISIONS,
    WEIGHT_BYTE,
    normalize_precision,
)
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting
from scaling.shapes import FAMILIES, ComponentCall

METHODS = ("closed-form", "traced")


# -- the byte widths ------------------------------------------------------------------------------

def zero_traffic() -> dict[str, dict[str, float]]:
    return {k: dict.fromkeys(BYTE_CLASSES, 0.0) for k in KINDS}


def weight_width_byte(precision: str, op_class: str, role: str) -> float:
    """Bytes per weight value an op of ``op_class`` reads in a component of ``role``."""
    p = normalize_precision(precision)
    if p in UNQUANTISED_PRECISIONS:
        return ACTIVATION_BYTE[p]
    if op_class == "linear" and role in DEQUANT_COMPONENT_ROLES:
        return WEIGHT_BYTE[p]
    return UNQUANTISED_BYTE


def bytes_by_class(traffic: Mapping[str, Mapping[str, float]], precision: str, role: str) -> dict[str, float]:
    """Bytes of one call (one sample) per byte class at ``precision``."""
    p = normalize_precision(precision)
    act = ACTIVATION_BYTE[p]
    out = {}
    for c in BYTE_CLASSES:
        out[c] = (float(traffic["activation"].get(c, 0.0)) * act
                  + float(traffic["weight"].get(c, 0.0)) * weight_width_byte(p, c, role)
                  + float(traffic["fixed_byte"].get(c, 0.0)))
    return out


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


CACHE_ENV = "SCALING_CACHE_DIR"
"""The environment variable naming the user cache folder (default ``$XDG_CACHE_HOME`` or
``~/.cache``, then ``diffusion-energy-scaling``)."""


def cache_dir() -> Path:
    """The user cache folder of the tables built for local pipeline folders."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "diffusion-energy-scaling"


def local_table_path(spec: ModelSpec) -> Path:
    """Where the closed-form table of a local folder's spec (``local:...``) is cached."""
    return cache_dir() / "flops" / f"{spec.config_hash}.json"


@cache
def _cached_local(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _spec_table(spec: ModelSpec) -> dict[str, Any]:
    """The closed-form table of ``spec``: shipped, or cached for a local folder."""
    if not spec.config_hash:
        return _table(spec.architecture_key)
    path = local_table_path(spec)
    if not path.is_file():
        raise ProfilerError(
            f"no closed-form FLOP table for {spec.key!r} in the cache ({path}): the first "
            f"`scaling predict --config {spec.source_dir}` builds it, or profile with --traced")
    return _cached_local(str(path))


def has_table(spec: ModelSpec) -> bool:
    try:
        _spec_table(spec)
        return True
    except ProfilerError:
        return False


def evaluate(spec: ModelSpec, call: ComponentCall) -> dict[str, float]:
    """FLOPs of ONE call for ONE sample, by op class, from the shipped polynomial."""
    table = _spec_table(spec)
    entry = table["components"].get(call.key)
    if entry is None:
        raise ProfilerError(f"{spec.id}: the closed-form table has no entry for {call.key}")
    return evaluate_entry(entry, call.features)


def _monomials(basis, features: Mapping[str, float]) -> list[float]:
    values = []
    for mono in basis:
        v = 1.0
        for name, power in mono:
            v *= float(features[name]) ** power
        values.append(v)
    return values


def evaluate_entry(entry: Mapping[str, Any], features: Mapping[str, float]) -> dict[str, float]:
    values = _monomials(entry["basis"], features)
    return {op: float(sum(c * v for c, v in zip(entry["coef"][op], values))) for op in OP_CLASSES}


def evaluate_traffic(spec: ModelSpec, call: ComponentCall) -> dict[str, dict[str, float]] | None:
    """Values moved by ONE call for ONE sample (activation / weight / fixed_byte, by byte class),
    from the shipped polynomial; None where the table carries no byte counts (built before
    them: the profile then has FLOPs only, ``has_bytes`` False)."""
    entry = _spec_table(spec)["components"].get(call.key)
    if entry is None:
        raise ProfilerError(f"{spec.id}: the closed-form table has no entry for {call.key}")
    if "traffic" not in entry:
        return None
    return evaluate_traffic_entry(entry, call.features, spec.id)


def evaluate_traffic_entry(entry: Mapping[str, Any], features: Mapping[str, float],
                           model_id: str = "") -> dict[str, dict[str, float]]:
    if "traffic" not in entry:
        raise ProfilerError(f"{model_id}: the closed-form table has no byte counts: rebuild it with "
                            "`python -m profilers.flops.build_closed_form`")
    values = _monomials(entry.get("traffic_basis", entry["basis"]), features)
    return {kind: {c: max(0.0, float(sum(a * v for a, v in zip(entry["traffic"][kind][c], values))))
                   for c in BYTE_CLASSES} for kind in KINDS}


ROUGH_TRAFFIC = 1e-3
"""A closed-form byte polynomial that misses one of its traced design points by more than this
(relative to the call's traffic) is an approximation: CogVideoX's and Mochi's VAEs split large
convolution inputs into parts by a memory threshold (``CogVideoXSafeConv3d``), a step function."""


def traffic_is_rough(spec: ModelSpec, key: str) -> bool:
    """Whether the closed-form bytes of component call ``key`` are approximate (:data:`ROUGH_TRAFFIC`)."""
    entry = _spec_table(spec)["components"].get(key) or {}
    return float(entry.get("traffic_max_rel_residual", 0.0)) > ROUGH_TRAFFIC


def parameter_counts(spec: ModelSpec) -> dict[str, int]:
    """Parameters per component, recorded when the table was built."""
    return dict(_spec_table(spec).get("params", {}))


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
    # bytes by byte class: activations (and fixed-width tensors) of one call for one sample, and
    # the weights one call reads (once per call, whatever its batch); empty without byte counts
    per_sample_call_activation_byte: Mapping[str, float] = field(default_factory=dict)
    per_call_weight_byte: Mapping[str, float] = field(default_factory=dict)

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

    @property
    def has_bytes(self) -> bool:
        return bool(self.per_sample_call_activation_byte or self.per_call_weight_byte)

    @property
    def by_class_per_call_byte(self) -> dict[str, float]:
        """One call, whole batch, by byte class."""
        return {c: self.per_sample_call_activation_byte.get(c, 0.0) * self.batch + self.per_call_weight_byte.get(c, 0.0)
                for c in BYTE_CLASSES}

    @property
    def per_call_byte(self) -> float:
        """Bytes moved by one call (whole batch)."""
        return sum(self.by_class_per_call_byte.values())

    @property
    def by_class_byte(self) -> dict[str, float]:
        """Per generation, by byte class."""
        return {c: v * self.calls for c, v in self.by_class_per_call_byte.items()}

    @property
    def byte(self) -> float:
        """Bytes moved per generation."""
        return self.per_call_byte * self.calls

    @property
    def weight_byte(self) -> float:
        """Weight bytes read per generation."""
        return sum(self.per_call_weight_byte.values()) * self.calls

    @property
    def flop_per_byte(self) -> float | None:
        """Arithmetic intensity of the component (FLOP per byte moved); None without byte counts."""
        return self.flop / self.byte if self.byte else None


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

    @property
    def has_bytes(self) -> bool:
        return bool(self.components) and all(c.has_bytes for c in self.components)

    @property
    def total_byte(self) -> float:
        """Bytes moved per generation (at the setting's precision)."""
        return sum(c.byte for c in self.components)

    @property
    def flop_per_byte(self) -> float | None:
        """Arithmetic intensity of the whole generation (FLOP per byte); None without byte counts."""
        return self.total_flop / self.total_byte if self.total_byte else None

    def by_role_byte(self) -> dict[str, float]:
        """role -> bytes moved per generation."""
        out: dict[str, float] = {}
        for c in self.components:
            out[c.role] = out.get(c.role, 0.0) + c.byte
        return out

    def by_class_byte(self) -> dict[str, float]:
        """byte class -> bytes moved per generation."""
        out = dict.fromkeys(BYTE_CLASSES, 0.0)
        for c in self.components:
            for k, v in c.by_class_byte.items():
                out[k] += v
        return out

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
        per_call_flop, flop (per generation), ``<op>_flop`` per op class (per generation), and
        per_call_byte, byte, ``<class>_byte`` per byte class (per generation) and flop_per_byte."""
        import pandas as pd

        return pd.DataFrame.from_records([
            {"component": c.component, "role": c.role, "label": c.label, "shape": c.description, "batch": c.batch,
             "calls": c.calls, "per_call_flop": c.per_call_flop, "flop": c.flop,
             **{f"{k}_flop": c.by_op_flop.get(k, 0.0) for k in OP_CLASSES},
             "per_call_byte": c.per_call_byte, "byte": c.byte,
             **{f"{k}_byte": c.by_class_byte.get(k, 0.0) for k in BYTE_CLASSES},
             "flop_per_byte": c.flop_per_byte}
            for c in self.components
        ], columns=["component", "role", "label", "shape", "batch", "calls", "per_call_flop", "flop",
                    *(f"{k}_flop" for k in OP_CLASSES), "per_call_byte", "byte",
                    *(f"{k}_byte" for k in BYTE_CLASSES), "flop_per_byte"])

    def to_dict(self) -> dict:
        return {
            "model_id": self.model_id,
            "method": self.method,
            "setting": self.setting.to_dict(),
            "total_flop": self.total_flop,
            "by_role_flop": self.by_role(),
            "by_op_flop": self.by_op(),
            "total_byte": self.total_byte if self.has_bytes else None,
            "by_role_byte": self.by_role_byte() if self.has_bytes else None,
            "by_class_byte": self.by_class_byte() if self.has_bytes else None,
            "flop_per_byte": self.flop_per_byte if self.has_bytes else None,
            "byte_precision": self.setting.precision,
            "attention": dict(self.attention),
            "components": [
                {"component": c.component, "role": c.role, "label": c.label, "shape": c.description,
                 "batch": c.batch, "calls": c.calls, "per_call_flop": c.per_call_flop, "flop": c.flop,
                 "by_op_flop": c.by_op_flop, "per_call_byte": c.per_call_byte, "byte": c.byte,
                 "weight_byte": c.weight_byte, "by_class_byte": c.by_class_byte, "flop_per_byte": c.flop_per_byte}
                for c in self.components
            ],
        }


def _count(spec: ModelSpec, call: ComponentCall, method: str) -> tuple[dict[str, float], dict]:
    """(FLOP by op class, traffic) of one call for one sample."""
    if method == "closed-form":
        return evaluate(spec, call), evaluate_traffic(spec, call)
    from profilers.flops.traced import trace_call  # torch only here

    tr = trace_call(spec, call)
    return tr.flops.as_dict(), tr.traffic


def split_bytes(traffic: Mapping[str, Mapping[str, float]], precision: str,
                role: str) -> tuple[dict[str, float], dict[str, float]]:
    """(activation + fixed-width bytes of one sample, weight bytes of one call), by byte class."""
    act = bytes_by_class({"activation": traffic["activation"], "weight": {}, "fixed_byte": traffic["fixed_byte"]},
                         precision, role)
    weight = {c: float(traffic["weight"].get(c, 0.0)) * weight_width_byte(precision, c, role) for c in BYTE_CLASSES}
    return act, weight


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
        flops, traffic = _count(spec, call, method)
        act, weight = split_bytes(traffic, setting.precision, call.role) if traffic is not None else ({}, {})
        comps.append(ComponentFlops(
            component=call.component, role=call.role, label=call.label, description=call.description,
            batch=call.batch, calls=call.calls, per_sample_call_flop=flops,
            per_sample_call_activation_byte=act, per_call_weight_byte=weight,
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
        if v is None or (v.kind == "full" and v.kernel == "sdpa"):
            new.append(c)
            continue
        if v.kind == "full":  # an eager kernel: the same FLOPs, more bytes
            flops = dict(c.per_sample_call_flop)
        elif prof.method == "traced":
            from profilers.flops.build_attention_sites import trace_variant  # torch only here

            flops = trace_variant(spec, call, v)
        else:
            flops = apply_variant(c.per_sample_call_flop, v, call.features, model=spec, component=c.component)
        if not c.has_bytes:
            new.append(replace(c, per_sample_call_flop=flops))
            continue
        # bytes: the same rule for both methods (attention_variants' module doc)
        dact, dweight = split_bytes(variant_traffic_delta(spec, c.component, v, call.features),
                                    prof.setting.precision, c.role)
        act = {k: max(0.0, c.per_sample_call_activation_byte.get(k, 0.0) + dact[k]) for k in BYTE_CLASSES}
        weight = {k: max(0.0, c.per_call_weight_byte.get(k, 0.0) + dweight[k]) for k in BYTE_CLASSES}
        new.append(replace(c, per_sample_call_flop=flops, per_sample_call_activation_byte=act,
                           per_call_weight_byte=weight))
    return replace(prof, components=tuple(new), attention={k: str(v) for k, v in chosen.items()})
