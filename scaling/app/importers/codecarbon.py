"""CodeCarbon's ``emissions.csv`` -> the runs table, for one known generation setting.

CodeCarbon writes kWh (converted to J here, once) and multiplies by its PUE factor (divided
out here: the runs table holds device energy). Its CPU and RAM energies are estimates
(policy ``cpu_ram_estimate``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from scaling.errors import DataError, UnknownModelError
from scaling.registry import resolve_model
from scaling.runs import _read_csv_text, add_flag, validate_runs
from scaling.settings import GenerationSetting
from scaling.units import J_PER_KWH

from ._lookups import _cfg_column, _resolve_gpus, _resolve_models
from ._report import ImportReport, ImportResult
from .policies import POLICIES

__all__ = ["KWH_TO_J", "CODECARBON_COLUMNS", "import_codecarbon"]

KWH_TO_J = J_PER_KWH
"""CodeCarbon writes kWh; the runs table holds J. Converted here, once (with :data:`scaling.units.J_PER_KWH`)."""

CODECARBON_COLUMNS = ("duration", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed")
"""What :func:`import_codecarbon` needs from ``emissions.csv`` (CodeCarbon >= 2.0 writes all)."""


_SETTING_ALIASES = {"guidance": "guidance_scale", "seconds": "audio_seconds", "batch": "batch_size"}
_SETTING_FIELDS = ("model", "modality", "gpu", "gpu_count", "precision", "height", "width", "frames", "fps",
                   "audio_seconds", "steps", "guidance_scale", "cfg", "batch_size", "source", "notes", "warmup",
                   "n_repeats", "idle_power_w", "meter")


def _setting_fields(setting: Any) -> dict[str, Any]:
    """The runs-table fields of ``setting`` (a GenerationSetting or a dict, aliases resolved)."""
    if isinstance(setting, GenerationSetting):
        spec = resolve_model(setting.model)
        d = {"model": spec.id, "modality": setting.modality, "height": setting.height, "width": setting.width,
             "frames": setting.frames, "audio_seconds": setting.audio_seconds, "steps": setting.steps,
             "guidance_scale": setting.guidance_scale, "cfg": setting.cfg,
             "batch_size": setting.n_outputs, "precision": setting.precision}
        if setting.gpu:
            d["gpu"] = setting.gpu
        return d
    if not isinstance(setting, Mapping):
        raise DataError(f"setting {setting!r}: give a GenerationSetting or a dict of runs-table fields")
    d = {}
    for k, v in setting.items():
        k = _SETTING_ALIASES.get(k, k)
        if k not in _SETTING_FIELDS:
            raise DataError(f"setting field {k!r} is unknown: use {', '.join(_SETTING_FIELDS)}")
        d[k] = v
    if not d.get("model"):
        raise DataError("setting: `model` is required (a public id or registry alias)")
    try:  # store the resolved public id, as the rest of the toolkit prints it
        spec = resolve_model(str(d["model"]))
    except UnknownModelError:
        return d  # an unregistered model (with its `modality`): the runs-table rules check the fields
    d["model"] = spec.id
    _check_setting_rules(spec, d)
    return d


_MAKE_SETTING_ARGS = {"height": "height", "width": "width", "frames": "frames", "audio_seconds": "seconds",
                      "steps": "steps", "guidance_scale": "guidance", "batch_size": "batch_size",
                      "precision": "precision"}
"""The setting fields that :func:`scaling.settings.make_setting` checks, and its argument for each."""


def _check_setting_rules(spec, fields: Mapping[str, Any]) -> None:
    """The fields of a setting of a registered model obey the rules ``scaling predict`` applies
    (:func:`scaling.settings.make_setting`: what the model's modality takes, its resolution multiple,
    frame step, length, steps, guidance and CFG, the precision); one DataError line otherwise."""
    from scaling.errors import InvalidSettingError
    from scaling.settings import make_setting

    modality = fields.get("modality")
    if modality is not None and modality != spec.modality:
        article = "an" if spec.modality[:1] in "aeiou" else "a"
        raise DataError(f"setting: modality {modality!r} does not match {spec.id}: it is {article} {spec.modality} "
                        "model (rule: leave `modality` out for a registered model)")
    kwargs = {arg: fields[k] for k, arg in _MAKE_SETTING_ARGS.items() if fields.get(k) is not None}
    if isinstance(fields.get("cfg"), bool):
        kwargs["cfg"] = fields["cfg"]
    try:
        make_setting(spec, **kwargs)
    except InvalidSettingError as exc:
        raise DataError(f"setting: {exc} (rule: the setting rules of `scaling predict`)") from None


def _parse_gpu_model(text: Any) -> tuple[str | None, int | None]:
    """CodeCarbon writes ``"4 x NVIDIA A40"``; return (name, count)."""
    if not isinstance(text, str) or not text.strip():
        return None, None
    m = re.match(r"^\s*(\d+)\s*x\s*(.+?)\s*$", text)
    if m:
        return m.group(2), int(m.group(1))
    return text.strip(), None


def import_codecarbon(emissions_csv: str | Path, setting: Any, phase: str = "total", *,
                      source: str = "codecarbon", energy_tolerance: float = 0.01) -> ImportResult:
    """Import CodeCarbon's ``emissions.csv``: one row per tracked task, for one setting.

    ``setting`` is a :class:`~scaling.settings.GenerationSetting` or a dict of runs-table
    fields (``model`` required; ``guidance``, ``seconds``, ``batch`` accepted as aliases).
    ``cpu_energy``/``gpu_energy``/``ram_energy`` (kWh) become ``energy_*_j``; a component
    CodeCarbon did not track (written as 0) is left empty; ``duration`` becomes ``duration_s``.
    ``energy_consumed`` must equal their sum within ``energy_tolerance``. CodeCarbon's PUE
    factor (column ``pue``) is divided out: the table holds device energy. Rows with no GPU
    energy are ``estimated`` (CodeCarbon's CPU/RAM figures are estimates). The tracker's
    ``run_id`` becomes the run, each row one ``repeat``; CodeCarbon writes naive local
    timestamps, read here as UTC.
    """
    p = Path(emissions_csv)
    fields = _setting_fields(setting)
    raw = _read_csv_text(p)
    for c in CODECARBON_COLUMNS:
        if c not in raw.columns:
            raise DataError(f"{p}, column `{c}`: missing required column (rule: a CodeCarbon emissions.csv has "
                            f"{', '.join(CODECARBON_COLUMNS)})")
    n = len(raw)
    num: dict[str, pd.Series] = {}
    for c in CODECARBON_COLUMNS:
        text = raw[c].fillna("").str.strip()
        v = pd.to_numeric(text.where(text != "", None), errors="coerce").astype("float64")
        bad = (text == "") | v.isna() | ~np.isfinite(v) | (v < 0)
        if c in ("duration", "energy_consumed"):
            bad |= v <= 0
        i = np.flatnonzero(bad.to_numpy(dtype=bool))
        if i.size:
            rule = "> 0 and finite" if c in ("duration", "energy_consumed") else ">= 0 and finite (kWh)"
            raise DataError(f"{p}, row {i[0] + 1}, column `{c}`: {raw[c].iloc[i[0]]!r} breaks the rule: {rule}")
        num[c] = v
    parts = num["cpu_energy"] + num["gpu_energy"] + num["ram_energy"]
    off = (parts - num["energy_consumed"]).abs() > energy_tolerance * num["energy_consumed"]
    i = np.flatnonzero(off.to_numpy(dtype=bool))
    if i.size:
        raise DataError(f"{p}, row {i[0] + 1}, column `energy_consumed`: {float(num['energy_consumed'].iloc[i[0]])!r} kWh "
                        f"breaks the rule: equals cpu_energy + gpu_energy + ram_energy ({float(parts.iloc[i[0]])!r})")

    # CodeCarbon multiplies every energy by the PUE it was given; the runs table holds device energy
    pue = pd.Series(1.0, index=raw.index)
    if "pue" in raw:
        pue = pd.to_numeric(raw["pue"], errors="coerce").astype("float64")
        pue = pue.where(pue > 0, 1.0).fillna(1.0)
    df = pd.DataFrame(index=range(n))
    for name, col in (("energy_gpu_j", "gpu_energy"), ("energy_cpu_j", "cpu_energy"), ("energy_ram_j", "ram_energy")):
        j = num[col] * KWH_TO_J / pue
        df[name] = j.where(j > 0).to_numpy()
    df["duration_s"] = num["duration"]
    ts = raw["timestamp"] if "timestamp" in raw else pd.Series([None] * n)
    df["timestamp"] = ts.to_numpy()
    cc_run = raw["run_id"].fillna("") if "run_id" in raw else pd.Series([""] * n)
    run_ids = [(r if r else p.stem) for r in cc_run]
    df["run_id"] = [f"{source}:{r}" for r in run_ids]
    df["repeat"] = pd.Series(run_ids).groupby(run_ids).cumcount().to_numpy()
    gpu_name, gpu_count = (_parse_gpu_model(raw["gpu_model"].iloc[0]) if "gpu_model" in raw and n else (None, None))
    for k, v in fields.items():
        df[k] = [v] * n
    if "gpu" not in fields:
        df["gpu"] = gpu_name
    if "gpu_count" not in fields and gpu_count:
        df["gpu_count"] = gpu_count
    df["source"] = fields.get("source", source)
    df["meter"] = fields.get("meter", "codecarbon")
    df["phase"] = phase
    df["n_repeats"] = fields.get("n_repeats", 1)
    df["estimated"] = df["energy_gpu_j"].isna().to_numpy()
    if "modality" not in fields:
        try:
            df["modality"] = resolve_model(str(fields["model"])).modality
        except UnknownModelError as exc:
            raise DataError(f"setting: model {fields['model']!r} is not registered: give `modality` too") from exc
    if "cfg" in df:
        df["cfg"] = df["cfg"].astype(object)
    runs = validate_runs(df, str(p), fill_defaults=True)
    runs["model_key"] = _resolve_models(runs["model"])
    runs["gpu_key"] = _resolve_gpus(runs["gpu"])
    if runs["cfg"].isna().all():
        runs["cfg"] = _cfg_column(runs)
    runs["flags"] = add_flag(runs["flags"], (runs["energy_cpu_j"].notna() | runs["energy_ram_j"].notna()).to_numpy(),
                             POLICIES["cpu_ram_estimate"].marks["mark"])
    runs = validate_runs(runs, str(p))
    report = ImportReport(sources={str(p): {"read": n, "kept": n}}, rows_read=n, rows_kept=n)
    report.count_policy("cpu_ram_estimate", "mark", int((runs["energy_cpu_j"].notna() | runs["energy_ram_j"].notna()).sum()))
    report.describe(runs)
    return ImportResult(runs, report)
