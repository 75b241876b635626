"""Precision: the one definition of the numeric formats the toolkit knows.

(Being filled in: names, bytes per weight and activation, name normalisation, which chip runs
which rate, weight-only dequantisation. Until then only the names live here.)
"""

from __future__ import annotations

__all__ = ["PRECISIONS"]

PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "nf4", "fp4")
"""Every precision a setting, a runs row or a hardware figure may name."""
