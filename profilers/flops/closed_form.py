"""Closed-form FLOP counts: exact polynomials shipped as package data. No torch.

For the architectures in the registry, the FLOPs of one call are a polynomial in a few shape
variables (token count ``L``, latent pixels ``P``, latent frames ``f``, ...): linear layers
and convolutions are linear in them, attention is quadratic. ``build_closed_form`` traces the
real classes at a design of settings and solves for the coefficients exactly; this module
only evaluates them (``scaling/_registry/flops/<model>.json``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Mapping

from scaling.errors import ProfilerError
from scaling.registry import ModelSpec
from scaling.shapes import ComponentCall

OP_CLASSES = ("attention", "linear", "conv", "other")


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
