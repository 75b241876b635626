"""The audio-quality CSV of ``datasets/public`` (diffused_responsibility_quality.csv) -> a tidy table.

Not a runs table: one row per model x dataset x steps x metric (CLAP, FAD), joined with the
runs on ``model`` and ``steps`` (:func:`scaling.app.pareto.join_quality`). ``scaling data
import`` skips it; ``scaling data inspect`` and ``scaling pareto --quality-table`` read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from scaling.errors import DataError
from scaling.runs import _read_csv_text, add_flag

from ._corrections import ddim_rows, ddim_steps
from ._lookups import _resolve_models
from .policies import POLICIES, resolve_policy

__all__ = ["QUALITY_COLUMNS", "import_quality", "is_quality_header"]

QUALITY_COLUMNS = ("source", "model", "dataset", "steps", "metric", "value", "n_clips", "notes")


def is_quality_header(columns: Iterable[str]) -> bool:
    """Whether a CSV header is the quality schema (and not an energy table)."""
    cols = set(columns)
    return set(QUALITY_COLUMNS) <= cols and "energy_gpu_j" not in cols


def import_quality(path: str | Path, policy: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read the audio-quality CSV into a tidy table.

    Columns: source, model, model_key, dataset, steps, requested_steps, metric, value, n_clips,
    flags, notes. One row per model x dataset x steps x metric. The ``ddim_steps`` policy is
    applied as in :func:`import_public` (Make-An-Audio 150 -> 167 steps by default), so the
    table joins with the runs on ``model`` and ``steps``.
    """
    p = Path(path)
    actions = resolve_policy(policy)
    raw = _read_csv_text(p)
    for c in QUALITY_COLUMNS:
        if c not in raw.columns:
            raise DataError(f"{p}, column `{c}`: missing required column (rule: the quality schema "
                            f"{', '.join(QUALITY_COLUMNS)})")
    out = pd.DataFrame({c: raw[c].astype(pd.StringDtype()) for c in ("source", "model", "dataset", "metric", "notes")})
    for c in ("steps", "n_clips", "value"):
        text = raw[c].fillna("").str.strip()
        num = pd.to_numeric(text.where(text != "", None), errors="coerce")
        required = c != "n_clips"
        bad = (text != "") & (num.isna() | ~np.isfinite(num.astype("float64")))
        bad |= (text == "") & required
        if c in ("steps", "n_clips"):
            bad |= num.notna() & ((num.fillna(1) < 1) | (num.fillna(1) % 1 != 0))
        i = np.flatnonzero(bad.to_numpy(dtype=bool))
        if i.size:
            raise DataError(f"{p}, row {i[0] + 1}, column `{c}`: {raw[c].iloc[i[0]]!r} breaks the rule: "
                            + ("a finite number" if c == "value" else "a whole number >= 1"))
        out[c] = num.astype("Int64") if c != "value" else num.astype("float64")
    for c in ("source", "model", "dataset", "metric"):
        i = np.flatnonzero(out[c].isna().to_numpy(dtype=bool))
        if i.size:
            raise DataError(f"{p}, row {i[0] + 1}, column `{c}`: empty cell breaks the rule: a value is required")
    out["model_key"] = _resolve_models(out["model"])
    out["requested_steps"] = out["steps"].copy()
    out["flags"] = pd.Series([""] * len(out), dtype=pd.StringDtype())
    notes = out["notes"].fillna("")
    ddim = ddim_steps(notes)
    mask = ddim_rows(out["steps"], ddim)
    action = actions["ddim_steps"]
    if action == "exclude":
        out = out.loc[~mask]
    elif mask.any():
        if action == "correct":
            out.loc[mask, "steps"] = pd.to_numeric(ddim.loc[mask, 0]).astype("int64").to_numpy()
        out["flags"] = add_flag(out["flags"], mask, POLICIES["ddim_steps"].marks[action])
    cols = ["source", "model", "model_key", "dataset", "steps", "requested_steps", "metric", "value", "n_clips",
            "flags", "notes"]
    return out[cols].reset_index(drop=True)
