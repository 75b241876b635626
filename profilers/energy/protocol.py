"""What a measurement is asked for, how it is measured, and what happened: the runner's records.

- :class:`SettingRequest`: one setting as the user states it (unset fields: the model's defaults);
- :class:`Protocol`: repeats, warm-up, idle baseline, seeds, short-phase replay, meters' inputs;
- :class:`SettingOutcome`: what happened to one setting (measured, skipped, failed, partial);
- :func:`setting_key`: the stable id of what is measured, which starts every ``run_id``.

See :mod:`profilers.energy.runner` for the protocol itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from scaling.errors import InvalidSettingError

__all__ = ["Protocol", "SettingOutcome", "SettingRequest", "check_country", "setting_key"]


@dataclass(frozen=True)
class SettingRequest:
    """One setting to measure, as the user states it (unset fields: the model's defaults)."""

    model: str
    res: str | int | None = None
    height: int | None = None
    width: int | None = None
    frames: int | None = None
    seconds: float | None = None
    steps: int | None = None
    guidance: float | None = None
    cfg: bool | None = None
    batch_size: int = 1
    outputs_per_prompt: int = 1
    precision: str | None = None

    def setting(self, spec, precision: str, gpu: str | None):
        from scaling.settings import make_setting

        return make_setting(
            spec, res=self.res, height=self.height, width=self.width, frames=self.frames, seconds=self.seconds,
            steps=self.steps, guidance=self.guidance, cfg=self.cfg, batch_size=self.batch_size,
            outputs_per_prompt=self.outputs_per_prompt, precision=precision, gpu=gpu,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Protocol:
    """How each setting is measured.

    Attributes
    ----------
    repeats : int
        Measured calls per setting (each appended as soon as it completes).
    warmup : int
        Calls before the measured ones, not recorded.
    idle_s : float
        Length of the idle-baseline window before the warm-up (0: skip). Only a measured GPU
        gives an idle power; estimates do not.
    subtract_idle : bool
        Subtract ``idle_power_w x duration_s`` from the GPU energy of every row (flagged
        ``idle_subtracted``; the raw figure goes into the notes).
    seed : int
        Repeat ``r`` uses seed ``seed + r`` and prompt ``r`` of the shipped set.
    repeat_short : bool
        Replay phases shorter than the meter's resolution in isolation.
    country : str or None
        ISO code for CodeCarbon (offline); None: no CodeCarbon.
    cpu_power_w : float, optional
        CPU power to assume where nothing measures it.
    """

    repeats: int = 3
    warmup: int = 1
    idle_s: float = 5.0
    subtract_idle: bool = False
    seed: int = 0
    repeat_short: bool = True
    country: str | None = "USA"
    cpu_power_w: float | None = None

    def check(self) -> "Protocol":
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise InvalidSettingError(f"`repeats` {self.repeats!r}: at least 1 measured call per setting")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise InvalidSettingError(f"`warmup` {self.warmup!r}: a whole number >= 0")
        if not (isinstance(self.idle_s, (int, float)) and 0 <= self.idle_s <= 600):
            raise InvalidSettingError(f"`idle_s` {self.idle_s!r}: seconds between 0 and 600")
        if self.cpu_power_w is not None and not (isinstance(self.cpu_power_w, (int, float)) and self.cpu_power_w > 0):
            raise InvalidSettingError(f"`cpu_power_w` {self.cpu_power_w!r}: watts > 0")
        if self.country is not None:
            check_country(self.country)
        return self


def check_country(country: Any, name: str = "`country`", hint: str = "") -> str:
    """The CodeCarbon country code, checked against CodeCarbon's bundled energy-mix table before any
    work (read without importing CodeCarbon, whose import prints warnings); no CodeCarbon installed:
    nothing to check (the meter notes that it is not used). Returns the upper-cased code."""
    import importlib.util

    from scaling.carbon import intensity_for
    from scaling.errors import UnknownCountryError

    if not isinstance(country, str) or not country.strip():
        raise UnknownCountryError(f"{name} {country!r}: use a three-letter ISO code such as USA, FRA or DEU")
    code = country.strip().upper()
    if importlib.util.find_spec("codecarbon") is None:
        return code
    try:
        found = intensity_for(code)
    except InvalidSettingError:
        raise UnknownCountryError(f"{name} {country!r} is not in CodeCarbon's energy-mix table: use a "
                                  f"three-letter ISO code such as USA, FRA or DEU{hint}") from None
    if found.region != code:
        raise UnknownCountryError(f"{name} {country!r}: use the three-letter ISO code {found.region}")
    return code


@dataclass
class SettingOutcome:
    """What happened to one setting."""

    request: SettingRequest
    status: str  # measured | skipped | failed | partial
    key: str = ""
    label: str = ""
    calls: int = 0
    rows: int = 0
    seconds: float = 0.0
    message: str = ""
    failure_kind: str = ""
    totals_j: list[float] = field(default_factory=list)


def setting_key(spec, setting, *, device: str, gpu: str | None, weights: str, seed: int) -> str:
    """A stable id of what is measured: ``<model key>-<10 hex>``; it starts every run_id."""
    fields = {
        "model": spec.id, "height": setting.height, "width": setting.width, "frames": setting.frames,
        "audio_seconds": setting.audio_seconds, "steps": setting.steps, "guidance_scale": setting.guidance_scale,
        "cfg": setting.cfg, "batch_size": setting.batch_size, "outputs_per_prompt": setting.outputs_per_prompt,
        "precision": setting.precision, "device": device.split(":")[0], "gpu": gpu or "", "weights": weights,
        "seed": seed,
    }
    digest = hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{spec.key}-{digest}"
