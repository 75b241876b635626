"""A fitted law as the predict path sees it: load a law JSON, predict per component.

The predict path needs no torch, scikit-learn or statsmodels: a law file holds its
coefficients and the covariance needed for intervals, and this module evaluates them with
numpy only. ``load_law(None)`` loads the shipped default law (``scaling/_laws/default.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Protocol

from scaling.errors import LawError


@dataclass(frozen=True)
class EnergyInterval:
    energy_j: float
    lo_j: float
    hi_j: float
    time_s: float | None = None


@dataclass(frozen=True)
class LawPrediction:
    """What a law says about one generation."""

    components: Mapping[str, EnergyInterval]   # role -> energy (and time) with interval
    total: EnergyInterval
    time_s: float
    time_lo_s: float
    time_hi_s: float
    gpu_measured: bool
    law_name: str
    interval: float = 0.9
    notes: tuple[str, ...] = field(default_factory=tuple)


class Law(Protocol):
    name: str

    def predict(self, *, role_flops: Mapping[str, float], gpu: Any, precision: str, setting: Any,
                spec: Any) -> LawPrediction: ...


def default_law_path():
    return resources.files("scaling").joinpath("_laws", "default.json")


@cache
def _read(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise LawError(f"law file {path!r} does not exist")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LawError(f"law file {path!r} is not a law JSON ({exc})") from None


def load_law(path: str | Path | None = None) -> Law:
    """Load a law JSON (None: the shipped default law)."""
    from fits.shipped import law_from_dict

    if path is None:
        p = default_law_path()
        if not p.is_file():
            raise LawError("the shipped default law is missing: rebuild it with `python -m fits.default_law`")
        path = str(p)
    data = _read(str(path))
    return law_from_dict(data, source=str(path))
