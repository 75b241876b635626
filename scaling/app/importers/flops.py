"""The FLOP and byte annotation of a runs table: ``flop``, ``flop_<role>``, ``byte``, ``byte_<role>``
and ``flop_error`` per row.

Each distinct setting of the table is rebuilt (:func:`scaling.settings.make_setting`) and
profiled once with the closed-form tables (:func:`profilers.flops.profile.profile`): FLOPs and
bytes moved at the row's precision. A setting that cannot be profiled keeps empty FLOP and byte
columns and says why in ``flop_error``; a model whose closed-form table carries no byte counts
keeps empty byte columns only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from profilers.flops.profile import profile
from scaling.errors import ScalingError, UnknownModelError
from scaling.precision import PRECISIONS
from scaling.registry import resolve_model
from scaling.runs import validate_runs
from scaling.settings import make_setting

from ._lookups import generated_frames
from ._report import ImportReport, _counts, _short

__all__ = ["annotate_flops", "fill_bytes"]


_ROLE_PHASES = ("text_encoder", "denoiser", "decoder", "vocoder")
_KEY_COLUMNS = ("model_key", "height", "width", "frames", "audio_seconds", "steps", "guidance_scale", "cfg",
                "batch_size", "precision")


def _profile_key(key: tuple) -> tuple[dict[str, float] | None, float | None, str | None, dict[str, float] | None]:
    """(FLOP per role, total FLOP, error, bytes per role or None) for one setting key.

    A setting that cannot be profiled (model not registered, an invalid setting, no closed-form
    table: a :class:`~scaling.errors.ScalingError`) gives the error text; anything else is a bug
    and propagates.
    """
    model_key, height, width, frames, seconds, steps, guidance, cfg, batch, precision = key
    try:
        spec = resolve_model(model_key)
    except UnknownModelError as exc:
        return None, None, f"model not registered: {exc}", None
    if steps is None:
        return None, None, "steps not recorded", None
    kw: dict[str, Any] = {"steps": int(steps), "batch_size": int(batch or 1)}
    if spec.modality in ("image", "video"):
        kw["height"] = None if height is None else int(height)
        kw["width"] = None if width is None else int(width)
    if spec.modality == "video" and frames is not None:
        kw["frames"] = generated_frames(spec, int(frames))
    if spec.modality == "audio" and seconds is not None:
        kw["seconds"] = float(seconds)
    if guidance is not None:
        kw["guidance"] = float(guidance)
    if cfg is not None:
        kw["cfg"] = bool(cfg)
    if precision in PRECISIONS:
        kw["precision"] = precision
    try:
        prof = profile(make_setting(spec, **kw), spec=spec)
    except ScalingError as exc:  # this setting cannot be profiled: say why, keep the row
        return None, None, f"{type(exc).__name__}: {exc}", None
    by_role = prof.by_role()
    total = prof.total_flop
    if not (isinstance(total, float) and math.isfinite(total) and total > 0):
        return None, None, f"profile gave a non-positive total FLOP ({total!r})", None
    return by_role, float(total), None, (prof.by_role_byte() if prof.has_bytes else None)


def annotate_flops(runs: pd.DataFrame, report: ImportReport | None = None) -> pd.DataFrame:
    """Return ``runs`` with ``flop``, ``flop_<role>``, ``byte``, ``byte_<role>`` and ``flop_error`` filled.

    For each row with a resolved model the setting is rebuilt from the row (``make_setting``;
    empty shape fields take the model's defaults, frames are snapped to what the pipeline
    generates, CFG follows the row's ``cfg`` or else the guidance scale) and profiled with the
    closed-form tables, once per distinct setting. ``flop`` is the FLOP of the row's phase
    (``total`` -> all components, a role -> that role); ``flop_<role>`` are per call, for the
    whole batch; ``byte`` and ``byte_<role>`` are the bytes moved, likewise (empty when the model's
    closed-form table has no byte counts). Rows without a FLOP (unregistered model, no closed-form table, invalid
    setting, a stage phase) keep empty FLOP columns and say why in ``flop_error``.
    """
    df = runs.copy()
    n = len(df)
    flop = np.full(n, np.nan)
    roles = {r: np.full(n, np.nan) for r in _ROLE_PHASES}
    byte = np.full(n, np.nan)
    role_bytes = {r: np.full(n, np.nan) for r in _ROLE_PHASES}
    errors = np.full(n, None, dtype=object)
    unresolved = df["model_key"].isna().to_numpy(dtype=bool)
    errors[unresolved] = "model not registered"
    keyed = df.loc[~unresolved, list(_KEY_COLUMNS)].astype(object)
    keyed = keyed.where(df.loc[~unresolved, list(_KEY_COLUMNS)].notna(), None)
    phases = df["phase"].to_numpy(dtype=object)
    if len(keyed):
        for key, idx in keyed.groupby(list(_KEY_COLUMNS), dropna=False, sort=False).groups.items():
            key = tuple(None if (isinstance(v, float) and math.isnan(v)) else v for v in key)
            by_role, total, err, bytes_by_role = _profile_key(key)
            pos = df.index.get_indexer(idx)
            if err is not None:
                errors[pos] = err
                continue
            for r in _ROLE_PHASES:
                roles[r][pos] = by_role.get(r, 0.0)
                if bytes_by_role is not None:
                    role_bytes[r][pos] = bytes_by_role.get(r, 0.0)
            for i in pos:
                ph = phases[i]
                if ph == "total":
                    flop[i] = total
                    if bytes_by_role is not None:
                        byte[i] = sum(bytes_by_role.values())
                elif ph in by_role:
                    flop[i] = by_role[ph]
                    if bytes_by_role is not None:
                        byte[i] = bytes_by_role.get(ph, 0.0)
                elif ph in _ROLE_PHASES:
                    errors[i] = f"the model has no {ph} component"
                else:
                    errors[i] = f"phase {ph!r} is a pipeline stage: no FLOP split for stages"
    df["flop"] = flop
    for r in _ROLE_PHASES:
        df[f"flop_{r}"] = roles[r]
    df["byte"] = byte
    for r in _ROLE_PHASES:
        df[f"byte_{r}"] = role_bytes[r]
    df["flop_error"] = pd.array(errors, dtype=pd.StringDtype())
    if report is not None:
        report.flop_annotated = True
        report.flop_rows = int(np.isfinite(flop).sum())
        err = pd.Series(errors, dtype=object).dropna()
        # group by model and reason so the report stays short
        models = df["model"].to_numpy(dtype=object)[err.index.to_numpy()]
        reasons = [f"{m}: {_short(e)}" for m, e in zip(models, err.to_numpy())]
        report.flop_errors = _counts(pd.Series(reasons, dtype=object)) if reasons else {}
    return validate_runs(df, "annotated runs")


def fill_bytes(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``runs`` with empty ``byte`` / ``byte_<role>`` cells filled from the closed-form profiles, and
    how many rows were filled.

    For tables whose rows carry FLOPs but no bytes (measured before the byte columns, or by
    ``scaling measure`` / ``scaling.track``, which count FLOPs only): the rows of registered
    models are profiled as :func:`annotate_flops` does and only their empty byte cells are
    written; every other column (the FLOPs above all) is left as it is.
    """
    if "byte" not in runs.columns:
        runs = runs.assign(byte=np.nan, **{f"byte_{r}": np.nan for r in _ROLE_PHASES})
    todo = (runs["byte"].isna() & runs["model_key"].notna()).to_numpy(dtype=bool)
    if not todo.any():
        return runs, 0
    fresh = annotate_flops(runs[todo])
    out = runs.copy()
    filled = fresh["byte"].notna().to_numpy(dtype=bool)
    for col in ("byte", *(f"byte_{r}" for r in _ROLE_PHASES)):
        col_vals = out[col].to_numpy(dtype=float, na_value=np.nan).copy()
        new = fresh[col].to_numpy(dtype=float, na_value=np.nan)
        pos = np.flatnonzero(todo)
        keep = np.isnan(col_vals[pos])
        col_vals[pos[keep]] = new[keep]
        out[col] = col_vals
    return validate_runs(out, "runs with bytes filled"), int(filled.sum())
