"""The sweep file of ``scaling sweep``: its schema (pydantic, strict) and its loader.

The format is described in :mod:`profilers.energy.sweep`. :func:`load_sweep` reads the file with
:func:`scaling._inputs.read_yaml` (UTF-8, YAML 1.2 booleans and numbers, a key given twice
refused), checks it against :class:`SweepFile`, expands the grid (:func:`expand_grid`) and checks
every setting against its model (:func:`check_settings`), the meter (its name, a replay trace's
content, ``nvml`` with ``device: cpu``: :func:`~profilers.energy.meters.check_meter`), the
protocol (its ranges and the CodeCarbon ``country``) and the weights folder
(:func:`profilers.energy.weights.check_weights_dir`), all before anything runs. The first fault
is one :class:`~scaling.errors.WorkloadError` line with the file's line number:
``sweep.yaml:11: grid entry 1: `cfg` is 'false' (text); rule: true or false, unquoted ...``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scaling._inputs import (boolean, checked, finite_number, one_or_list, precision_name, read_yaml, resolution,
                             schema_error, text, validate, whole_number)
from scaling.errors import ScalingError, WorkloadError

from .meters import check_meter
from .protocol import Protocol, SettingRequest
from .weights import check_weights_dir

__all__ = ["GridEntry", "ProtocolFields", "Sweep", "SweepFile", "check_settings", "expand_grid", "load_sweep"]


@dataclass
class Sweep:
    """A checked sweep: the settings and how to measure them."""

    settings: list[SettingRequest]
    out: Path | None = None
    device: str = "auto"
    meter: str = "auto"
    weights: str | None = None
    protocol: Protocol = field(default_factory=Protocol)
    source: str = "sweep"
    allow_pickle: bool = False      # load pickled weights (.bin/.pt/.ckpt) from `weights`: they can run code
    notes: tuple[str, ...] = ()     # values read in another form than written (count 1e6 -> 1000000)

    def __post_init__(self) -> None:
        # before any setting runs, here or in a job (an override too: dataclasses.replace checks again):
        # the name, a replay trace's content, nvml with device cpu
        check_meter(self.meter, device=self.device)



def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


# The sweep file's schema (pydantic, strict): every grid field is one value or a list of values,
# each checked by its rule (scaling._inputs); a quoted "false" for `cfg` is text and refused.
_STRICT = ConfigDict(strict=True, extra="forbid")


class GridEntry(BaseModel):
    """One grid entry (or the `defaults`): setting fields, each one value or a list of them."""

    model_config = _STRICT

    model: one_or_list(text) = None
    res: one_or_list(resolution) = None
    height: one_or_list(whole_number) = None
    width: one_or_list(whole_number) = None
    frames: one_or_list(whole_number) = None
    seconds: one_or_list(finite_number, gt=0) = None
    steps: one_or_list(whole_number) = None
    guidance: one_or_list(finite_number) = None
    cfg: one_or_list(boolean) = None
    batch_size: one_or_list(whole_number) = None
    outputs_per_prompt: one_or_list(whole_number) = None
    precision: one_or_list(precision_name) = None


class ProtocolFields(BaseModel):
    """The `protocol` mapping (types here; :meth:`Protocol.check` checks the ranges)."""

    model_config = _STRICT

    repeats: checked(whole_number) = None
    warmup: checked(whole_number, lo=0) = None
    idle_s: checked(finite_number, ge=0) = None
    subtract_idle: bool | None = None
    seed: checked(whole_number, lo=0) = None
    repeat_short: bool | None = None
    country: checked(text) = None
    cpu_power_w: checked(finite_number, gt=0) = None


class SweepFile(BaseModel):
    """A sweep file (see the module docstring)."""

    model_config = _STRICT

    out: checked(text) = None
    device: checked(text) = None
    meter: checked(text) = None
    weights: checked(text) = None
    allow_pickle: bool = False
    protocol: ProtocolFields | None = None
    defaults: GridEntry | None = None
    grid: list[GridEntry] = Field(min_length=1)


_TOP_KEYS = set(SweepFile.model_fields)
_GRID_KEYS = set(GridEntry.model_fields)
_PROTOCOL_KEYS = set(ProtocolFields.model_fields)
assert _GRID_KEYS == {f.name for f in fields(SettingRequest)}, "the grid schema lists every SettingRequest field"
assert _PROTOCOL_KEYS == {f.name for f in fields(Protocol)}, "the protocol schema lists every Protocol field"


def _where(loc: tuple) -> str:
    if len(loc) >= 2 and loc[0] == "grid" and isinstance(loc[1], int):
        return f"grid entry {loc[1] + 1}"
    return str(loc[0]) if len(loc) >= 2 and loc[0] in ("defaults", "protocol") else ""


def _checked_entry(entry: Any, where: str) -> dict[str, Any]:
    """A grid entry (or `defaults`) checked without a file: the keys given, each as a list."""
    if not isinstance(entry, Mapping):
        raise WorkloadError(f"{where} is {type(entry).__name__}, not a mapping of setting fields")
    try:
        return GridEntry.model_validate(dict(entry)).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise WorkloadError(schema_error(exc, source=where, root=None, model=GridEntry,
                                         unknown="unknown field").replace(f"{where}:1: ", f"{where}: ", 1)) from None


def expand_grid(entries: Sequence[Mapping[str, Any]], defaults: Mapping[str, Any] | None = None,
                where: str = "sweep") -> list[SettingRequest]:
    """Expand grid entries (each a product of its list values) into setting requests."""
    if not isinstance(entries, (list, tuple)) or not entries:
        raise WorkloadError(f"{where}: `grid` must be a non-empty list of entries (each a mapping of setting fields)")
    base = _checked_entry(defaults, f"{where}: `defaults`") if defaults else {}
    out: list[SettingRequest] = []
    for i, entry in enumerate(entries, 1):
        merged = {**base, **_checked_entry(entry, f"{where}: grid entry {i}")}
        if "model" not in merged:
            raise WorkloadError(f"{where}: grid entry {i} names no `model`")
        keys = list(merged)
        for combo in itertools.product(*(_as_list(merged[k]) for k in keys)):
            out.append(SettingRequest(**dict(zip(keys, combo))))
    return out


def check_settings(settings: Sequence[SettingRequest], where: str = "sweep") -> None:
    """Resolve every model and check every setting before anything runs."""
    from profilers.energy.pipelines import resolve_spec

    for i, req in enumerate(settings, 1):
        try:
            spec = resolve_spec(req.model)
            req.setting(spec, req.precision or "bf16", None)
        except ScalingError as exc:
            raise WorkloadError(f"{where}: setting {i} ({req.model}): {exc}") from exc


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and check a sweep YAML file (see the module docstring).

    The file is read strictly (:func:`scaling._inputs.read_yaml`: UTF-8, YAML 1.2 booleans and
    numbers, a key given twice refused) and checked against :class:`SweepFile`; the first fault
    is one :class:`WorkloadError` line, ``sweep.yaml:LINE: grid entry 2: `cfg` is 'false' (text);
    rule: ...``. Then every setting is checked against its model, before anything runs.
    """
    p = Path(path)
    raw, root = read_yaml(p, what="sweep", error=WorkloadError)
    if not isinstance(raw, Mapping):
        raise WorkloadError(f"{p}:1: a sweep file is a mapping with a `grid` list (see `scaling sweep --help`), "
                            f"not {'an empty file' if raw is None else type(raw).__name__}")
    notes: list[str] = []
    doc = validate(SweepFile, raw, source=p, root=root, error=WorkloadError, where=_where, notes=notes,
                   unknown="unknown field")
    proto = doc.protocol.model_dump(exclude_none=True) if doc.protocol is not None else {}
    try:
        protocol = Protocol(**proto).check()
    except ScalingError as exc:
        raise WorkloadError(f"{p}: protocol: {exc}") from exc
    settings = expand_grid([e.model_dump(exclude_none=True) for e in doc.grid],
                           doc.defaults.model_dump(exclude_none=True) if doc.defaults else None, where=str(p))
    check_settings(settings, where=str(p))
    out = doc.out
    if out is not None:
        out = Path(out) if Path(out).is_absolute() else p.parent / out
    meter = doc.meter or "auto"
    try:
        check_meter(meter, device=doc.device)
    except ScalingError as exc:
        raise WorkloadError(f"{p}: {exc}") from exc
    weights = doc.weights
    if weights is not None:
        weights = weights if Path(weights).is_absolute() else str(p.parent / weights)
        try:
            check_weights_dir(weights, allow_pickle=doc.allow_pickle)
        except ScalingError as exc:
            raise WorkloadError(f"{p}: {exc}") from exc
    return Sweep(settings=settings, out=out, device=doc.device or "auto", meter=meter, weights=weights,
                 protocol=protocol, source=str(p), allow_pickle=doc.allow_pickle,
                 notes=tuple(f"{p}: {n}" for n in notes))
