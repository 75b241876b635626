"""Units: the one definition of the energy and time conversions, and of a value with its interval.

Vendor units (mJ, mW, kWh) are converted once, at the edge where they enter, with these
constants; everything inside the toolkit is in J, W, s, FLOP and byte, and says so in its names.

:class:`Interval` is the one shape of a predicted figure with its interval (energy in J, time
in s, CO2e in g): the law returns it, the estimate holds it, the renderers print it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["J_PER_KWH", "J_PER_WH", "S_PER_HOUR", "Interval", "j_to_kwh", "j_to_wh"]

J_PER_WH = 3600.0
J_PER_KWH = 3.6e6
S_PER_HOUR = 3600.0


def j_to_wh(energy_j: float) -> float:
    return energy_j / J_PER_WH


def j_to_kwh(energy_j: float) -> float:
    return energy_j / J_PER_KWH


@dataclass(frozen=True)
class Interval:
    """A predicted value and its interval, ``lo <= value <= hi``, all in one unit.

    ``level`` is the interval's coverage (0.9 for a 90% interval). A plain record: the law that
    makes one has checked its numbers (finite, ordered), so it is not checked again here.
    """

    value: float
    lo: float
    hi: float
    level: float = 0.9

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.value, self.lo, self.hi))

    def scaled(self, factor: float) -> "Interval":
        """The interval of ``factor`` times the quantity (a share, a count, a unit change)."""
        return Interval(self.value * factor, self.lo * factor, self.hi * factor, self.level)

    def shifted(self, offset: float) -> "Interval":
        """The interval of the quantity plus a known ``offset`` (it moves the bounds, it does not widen them)."""
        return Interval(self.value + offset, self.lo + offset, self.hi + offset, self.level)

    def as_tuple(self) -> tuple[float, float, float]:
        return self.value, self.lo, self.hi
