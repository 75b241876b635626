"""What the phase recorder returns: per-phase measurements of one call, and their runs-table rows.

:class:`PhaseMeasurement` is one phase of one call (energies in J for the whole call, batch
included); :class:`CallMeasurement` is the call: its phases, the unattributed rest
(``other``), the call measured on its own (``total``) and the gap between them.
:func:`rows_of` turns a call into runs-table fields, one row per phase plus a ``total`` row.
:func:`meter_resolution_s` says how short a window a meter can resolve; shorter phases are
flagged. See :mod:`profilers.energy.phases` for how the windows are cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from profilers.energy.meters.zeus_meter import NVML_COUNTER_RESOLUTION_S
from profilers.energy.meters.rapl import RAPL_RESOLUTION_S

__all__ = [
    "ENERGY_FIELDS",
    "NVML_COUNTER_RESOLUTION_S",
    "OTHER",
    "PHASE_ORDER",
    "RAPL_RESOLUTION_S",
    "CallMeasurement",
    "PhaseMeasurement",
    "meter_resolution_s",
    "rows_of",
]

ENERGY_FIELDS = ("energy_gpu_j", "energy_cpu_j", "energy_ram_j")
PHASE_ORDER = ("text_encoder", "denoiser", "upsampler", "decoder", "vocoder")
OTHER = "other"


# --------------------------------------------------------------------------------------------
# meter resolution
# --------------------------------------------------------------------------------------------

def meter_resolution_s(meter: Any) -> float:
    """The shortest window whose energy ``meter`` can resolve, in seconds.

    Meters state it (``resolution_s``): NVML its counter's 0.1 s, or twice its sampling
    period for a GPU without the counter; RAPL and CodeCarbon 1 ms; a replayed trace its
    median row spacing; estimates (time x power) 0; a composite meter its coarsest part.
    A meter that states none, and has no parts that do, resolves any window (0).
    """
    stated = getattr(meter, "resolution_s", None)
    if stated is not None:
        return float(stated)
    parts = getattr(meter, "parts", None)
    if parts:
        return max(meter_resolution_s(p) for p in parts)
    return 0.0


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

@dataclass
class PhaseMeasurement:
    """What one phase of one call cost. Energies in J for the whole call (batch included)."""

    phase: str
    time_s: float = 0.0
    energy_gpu_j: float | None = None
    energy_cpu_j: float | None = None
    energy_ram_j: float | None = None
    estimated: dict[str, bool] = field(default_factory=dict)
    calls: int = 0
    components: tuple[str, ...] = ()
    windows: int = 0
    samples: int = 0
    flop: float | None = None
    low_confidence: bool = False
    repeated: int = 0
    meter: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def energy_j(self) -> float | None:
        """GPU + CPU + RAM over the fields that have a value."""
        vals = [getattr(self, f) for f in ENERGY_FIELDS if getattr(self, f) is not None]
        return sum(vals) if vals else None

    def energy(self, fld: str) -> float | None:
        return getattr(self, fld)

    def add(self, m: Any) -> None:
        """Accumulate one meter window (a :class:`Measurement`)."""
        self.time_s += m.time_s
        self.windows += 1
        self.samples += getattr(m, "samples", 0) or 0
        for f in ENERGY_FIELDS:
            v = getattr(m, f)
            if v is not None:
                setattr(self, f, (getattr(self, f) or 0.0) + v)
                self.estimated[f] = self.estimated.get(f, False) or bool(m.estimated.get(f, False))
        if not self.meter:
            self.meter = m.meter
        if m.notes and m.notes not in self.notes:
            self.notes.append(m.notes)

    @property
    def any_estimated(self) -> bool:
        return any(self.estimated.get(f, False) for f in ENERGY_FIELDS if getattr(self, f) is not None)

    @property
    def primary_estimated(self) -> bool:
        """Whether the figure that matters most is an estimate: the GPU energy where there
        is one, else CPU, else RAM."""
        for f in ENERGY_FIELDS:
            if getattr(self, f) is not None:
                return bool(self.estimated.get(f, False))
        return True


@dataclass
class CallMeasurement:
    """One pipeline call: its phases, the unattributed rest, the total and the gap."""

    total: PhaseMeasurement
    phases: dict[str, PhaseMeasurement]
    other: PhaseMeasurement
    resolution_s: float
    gap_time_s: float
    gap_j: dict[str, float | None]
    component_calls: dict[str, int]

    @property
    def primary_field(self) -> str | None:
        for f in ENERGY_FIELDS:
            if self.total.energy(f) is not None:
                return f
        return None

    def gap_fraction(self) -> float | None:
        """|total - (phases + other)| / total, on the primary energy field."""
        f = self.primary_field
        if f is None or not self.total.energy(f):
            return None
        g = self.gap_j.get(f)
        return None if g is None else abs(g) / self.total.energy(f)

    def summary(self) -> str:
        """One line: how the phases add up to the whole call."""
        f = self.primary_field
        if f is None:
            return f"no energy measured; phases cover {self._time_share():.0%} of {self.total.time_s:.3g} s"
        tot = self.total.energy(f) or 0.0
        ph = sum((p.energy(f) or 0.0) for p in self.phases.values())
        oth = self.other.energy(f) or 0.0
        label = f.removeprefix("energy_").removesuffix("_j").upper()
        parts = [
            f"{label}: phases {ph:.4g} J + unattributed {oth:.4g} J vs total {tot:.4g} J measured on its own",
            f"gap {self.gap_j.get(f) or 0.0:+.3g} J ({(self.gap_fraction() or 0.0):.1%})",
            f"phases cover {ph / tot:.1%} of the call's energy" if tot else "",
            f"{self._time_share():.1%} of its {self.total.time_s:.4g} s",
        ]
        return "; ".join(p for p in parts if p)

    def _time_share(self) -> float:
        t = sum(p.time_s for p in self.phases.values())
        return t / self.total.time_s if self.total.time_s > 0 else 0.0


def rows_of(result: CallMeasurement, *, include_total: bool = True) -> list[dict[str, Any]]:
    """Runs-table fields of each phase (and the total) of one call: ``phase``, energies,
    ``duration_s``, ``meter``, ``estimated``, ``flop``, ``flags``, ``notes``.

    The unattributed rest (``other``) has no row of its own (the runs schema has no such
    phase): its size and the gap are written into the total row's notes.
    """
    rows = []
    for ph in result.phases.values():
        rows.append(_row(ph))
    if include_total:
        row = _row(result.total)
        f = result.primary_field
        extra = [result.summary()]
        if result.other.time_s > 0:
            extra.append(f"unattributed (latent set-up, between phases, post-processing): "
                         f"{result.other.time_s:.4g} s" + (f", {result.other.energy(f):.4g} J" if f and result.other.energy(f) is not None else ""))
        row["notes"] = "; ".join([*extra, row["notes"]] if row["notes"] else extra)
        gf = result.gap_fraction()
        flags = [x for x in row["flags"].split(";") if x]
        if gf is not None and gf > 0.05:
            flags.append("phase_gap")
        if any(p.low_confidence for p in result.phases.values()):
            flags.append("phase_low_confidence")
        row["flags"] = ";".join(dict.fromkeys(flags))
        rows.append(row)
    return rows


def _row(ph: PhaseMeasurement) -> dict[str, Any]:
    flags = []
    if ph.low_confidence:
        flags.append("low_confidence")
    if ph.repeated:
        flags.append("phase_repeated")
    est = sorted(f for f in ENERGY_FIELDS if getattr(ph, f) is not None and ph.estimated.get(f, False))
    notes = list(ph.notes)
    if est:
        notes.insert(0, "estimated: " + ", ".join(est))
    if ph.calls and ph.phase != "total":
        notes.insert(0, f"{ph.calls} call(s) of {', '.join(ph.components)}")
    return {
        "phase": ph.phase,
        "duration_s": ph.time_s if ph.time_s > 0 else None,
        "energy_gpu_j": _pos(ph.energy_gpu_j),
        "energy_cpu_j": _pos(ph.energy_cpu_j),
        "energy_ram_j": _pos(ph.energy_ram_j),
        "meter": ph.meter or "none",
        "estimated": ph.primary_estimated,
        "flop": ph.flop,
        "flags": ";".join(flags),
        "notes": "; ".join(notes),
    }


def _pos(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) and v > 0 else None
