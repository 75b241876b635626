"""Carbon intensity, offline only.

Country intensities come from the data file CodeCarbon bundles
(``codecarbon/data/private_infra/global_energy_mix.json``: gCO2e/kWh of each country's
electricity mix). The file is read directly, without importing CodeCarbon (its import is slow
and its online tracker is never wanted here). No network call, ever.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from scaling.errors import InvalidSettingError

WORLD_AVERAGE_G_PER_KWH = 475.0
"""Used only when the user names no region and no intensity; printed as an assumption.
IEA's world-average carbon intensity of electricity generation (about 475 g/kWh)."""


@dataclass(frozen=True)
class Intensity:
    g_per_kwh: float
    source: str          # "codecarbon global_energy_mix.json (USA, 2023)", "user", "assumed world average"
    region: str | None = None


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@cache
def _energy_mix() -> dict:
    root = _package_dir("codecarbon")
    if root is None:
        raise InvalidSettingError(
            "`region` needs CodeCarbon's bundled intensity data: pip install 'diffusion-energy-scaling[carbon]', "
            "or pass --intensity G_PER_KWH")
    return json.loads((root / "data" / "private_infra" / "global_energy_mix.json").read_text(encoding="utf-8"))


@cache
def _alpha2_to_alpha3() -> dict[str, str]:
    root = _package_dir("pycountry")
    if root is None:
        return {}
    data = json.loads((root / "databases" / "iso3166-1.json").read_text(encoding="utf-8"))
    return {c["alpha_2"]: c["alpha_3"] for c in data["3166-1"]}


def check_carbon_source(region: Any, intensity: Any) -> None:
    """A region and an intensity are two sources of one figure, the grid's gCO2e/kWh: given together,
    one would be dropped; refused (one line naming both values), in predict, compare, report and plan."""
    if region is not None and intensity is not None:
        shown = f"{intensity:g}" if isinstance(intensity, (int, float)) and not isinstance(intensity, bool) \
            else repr(intensity)
        raise InvalidSettingError(
            f"`region` {region!r} and `intensity` {shown} conflict: a region prices CO2e at its grid's carbon "
            "intensity (CodeCarbon's data), an intensity is your own gCO2e/kWh (rule: give one, --region or "
            "--intensity, not both)")


def intensity_for(region: str | None = None, g_per_kwh: float | None = None) -> Intensity:
    """The carbon intensity for an ISO country code (``FR``, ``FRA``) or a user figure (not both)."""
    check_carbon_source(region, g_per_kwh)
    if g_per_kwh is not None:
        if not isinstance(g_per_kwh, (int, float)) or not math.isfinite(g_per_kwh) or g_per_kwh < 0:
            raise InvalidSettingError(f"`intensity` {g_per_kwh!r}: it must be a finite number of gCO2e/kWh >= 0")
        return Intensity(float(g_per_kwh), "user", region)
    if region is None:
        return Intensity(WORLD_AVERAGE_G_PER_KWH, "assumed world average (no --region or --intensity given)")
    code = region.strip().upper()
    if len(code) == 2:
        code = _alpha2_to_alpha3().get(code, code)
    mix = _energy_mix()
    entry = mix.get(code)
    if entry is None:
        raise InvalidSettingError(
            f"`region` {region!r} is not an ISO country code in CodeCarbon's data (e.g. FR, DE, US, or FRA, DEU, USA)")
    return Intensity(float(entry["carbon_intensity"]),
                     f"CodeCarbon global_energy_mix.json ({entry.get('country_name', code)}, {entry.get('year', '?')})",
                     code)


def check_pue(pue: float) -> float:
    if not isinstance(pue, (int, float)) or not math.isfinite(pue) or pue < 1.0 or pue > 5.0:
        raise InvalidSettingError(f"`pue` {pue!r}: a power usage effectiveness is between 1.0 and 5.0")
    return float(pue)
