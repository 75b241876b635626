"""Bytes moved by a component call: the byte classes and the widths. No torch.

The traced profiler (:mod:`profilers.flops.counting`) and the closed-form tables count *values*
moved, not bytes, so that one count serves every precision. Per byte class they record

- ``activation``: floating-point activation values read and written by the ops (the tensors a
  model computes in its compute dtype);
- ``weight``: parameter and buffer values the ops read (the model's state);
- ``fixed_byte``: bytes of tensors whose width does not follow the compute dtype (integer ids
  and positions, boolean masks, float64 and complex tensors), at their own element size.

:func:`bytes_by_class` turns them into bytes at a setting's precision with
:mod:`scaling.precision`'s tables: activations at :data:`~scaling.precision.ACTIVATION_BYTE`
(4 for fp32/tf32, 2 otherwise); weights at the same width for the unquantised precisions, and
for the weight-only and fp8/int8 formats the linear layers' weights of the quantised roles
(:data:`~scaling.precision.DEQUANT_COMPONENT_ROLES`: the denoiser) at
:data:`~scaling.precision.WEIGHT_BYTE` (packed, block scales included; the dequantisation
round trip is :func:`scaling.precision.dequant_cost`'s, not counted here) and every other
weight at :data:`~scaling.precision.UNQUANTISED_BYTE`.
"""

from __future__ import annotations

from typing import Mapping

from scaling.precision import (
    ACTIVATION_BYTE,
    DEQUANT_COMPONENT_ROLES,
    UNQUANTISED_BYTE,
    UNQUANTISED_PRECISIONS,
    WEIGHT_BYTE,
    normalize_precision,
)

OP_CLASSES = ("attention", "linear", "conv", "other")
"""The FLOP op classes (see :mod:`profilers.flops.traced`)."""

BYTE_CLASSES = OP_CLASSES + ("elementwise",)
"""The byte classes: the FLOP op classes plus ``elementwise`` (every op that counts no FLOP:
norms, activations, adds and muls, softmax outside attention, rotary embeddings, modulation,
casts, copies, concatenations, embedding lookups)."""

KINDS = ("activation", "weight", "fixed_byte")
"""What a traffic count is made of (values, values, bytes)."""


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
