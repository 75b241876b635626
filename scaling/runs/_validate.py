"""Checking a runs table against :data:`~scaling.runs.SCHEMA`: dtypes, then the row rules.

Every broken cell raises a :class:`~scaling.errors.DataError` naming the source, the row, the
column and the rule, on one line.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from scaling.errors import DataError
from scaling.precision import PRECISIONS
from scaling.runs._schema import (
    COLUMNS,
    ENERGY_COLUMNS,
    BYTE_ROLE_COLUMNS,
    FLOP_ROLE_COLUMNS,
    KEY_COLUMNS,
    MODALITIES,
    PHASES,
    PUBLIC_COLUMNS,
    SCHEMA,
    Column,
    _package_version,
)


def _pandas_dtype(dtype: str):
    if dtype == "string":
        return pd.StringDtype()
    if dtype == "datetime":
        return pd.DatetimeTZDtype("ns", "UTC")
    return dtype


def empty_runs() -> pd.DataFrame:
    """A runs table with every schema column and no rows."""
    return pd.DataFrame({c.name: pd.Series([], dtype=_pandas_dtype(c.dtype)) for c in SCHEMA})


def _err(source: str, row: int | None, column: str | None, message: str) -> DataError:
    where = [str(source)]
    if row is not None:
        where.append(f"row {row}")
    if column is not None:
        where.append(f"column `{column}`")
    return DataError(f"{', '.join(where)}: {message}")


def _first(mask: np.ndarray | pd.Series) -> int | None:
    arr = np.asarray(mask, dtype=bool)
    idx = np.flatnonzero(arr)
    return int(idx[0]) if idx.size else None


def _show(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _coerce(series: pd.Series, col: Column, source: str, row_offset: int) -> pd.Series:
    """Convert one column to its schema dtype; a cell that does not convert is an error."""
    s = series
    if col.dtype == "string":
        if isinstance(s.dtype, pd.StringDtype) and s.dtype.na_value is pd.NA:
            return s
        if pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
            return s.astype("object").where(s.notna(), None).astype(pd.StringDtype())
        out = s.astype("object")
        mask = out.notna()
        out = out.where(~mask, out[mask].map(lambda v: v if isinstance(v, str) else _num_to_str(v)))
        return out.astype(pd.StringDtype())
    if col.dtype == "boolean":
        if s.dtype == "boolean":
            return s
        if s.dtype == bool:
            return s.astype("boolean")
        mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False,
                   "t": True, "f": False, "1.0": True, "0.0": False}
        obj = s.astype("object")
        present = obj.notna() & (obj.astype(str).str.strip() != "")
        norm = obj.where(~present, obj[present].astype(str).str.strip().str.lower())
        bad = present & ~norm.isin(list(mapping))
        i = _first(bad)
        if i is not None:
            raise _err(source, i + row_offset, col.name, f"{_show(obj.iloc[i])} breaks the rule: true or false")
        return norm.map(mapping).astype("boolean")
    if col.dtype == "datetime":
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            return s.dt.tz_convert("UTC").astype(_pandas_dtype("datetime"))
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return s.dt.tz_localize("UTC").astype(_pandas_dtype("datetime"))
        obj = s.astype("object")
        present = obj.notna() & (obj.astype(str).str.strip() != "")
        out = pd.to_datetime(obj.where(present, None), errors="coerce", utc=True, format="mixed")
        bad = present & out.isna()
        i = _first(bad)
        if i is not None:
            raise _err(source, i + row_offset, col.name, f"{_show(obj.iloc[i])} breaks the rule: an ISO 8601 timestamp")
        return out.astype(_pandas_dtype("datetime"))
    # numeric
    if pd.api.types.is_bool_dtype(s.dtype):
        raise _err(source, row_offset if len(s) else None, col.name, "true/false is not a number")
    if pd.api.types.is_numeric_dtype(s.dtype):
        num = s.astype("float64")
    else:
        obj = s.astype("object")
        text = s.astype(pd.StringDtype()).str.strip()
        present = (text.notna() & (text != "")).to_numpy(dtype=bool)
        num = pd.to_numeric(text.astype("object").where(present, None), errors="coerce").astype("float64")
        i = _first(present & num.isna())  # 'nan', 'abc', '1,5': not a number
        if i is not None:
            raise _err(source, i + row_offset, col.name, f"{_show(obj.iloc[i])} breaks the rule: a number "
                       "(leave the cell empty when not stated)")
    if col.dtype == "Int64":
        vals = num.to_numpy()
        present = ~np.isnan(vals)
        finite = np.where(np.isfinite(vals), vals, 0.0)
        i = _first(present & (~np.isfinite(vals) | (np.floor(finite) != finite)))
        if i is not None:
            raise _err(source, i + row_offset, col.name, f"{_show(vals[i])} breaks the rule: a whole number")
        return _to_int64(finite, present, s.index)
    return num


def _to_int64(vals: np.ndarray, present: np.ndarray, index) -> pd.Series:
    arr = pd.arrays.IntegerArray(np.where(present, vals, 0).astype("int64"), ~present)
    return pd.Series(arr, index=index)


def _num_to_str(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


#: Plausibility bounds: a value outside them is a unit or typing mistake, never a measurement.
#: 1 nJ is below any measured call (a tiny random test pipeline on a CPU estimate is ~1e-4 J);
#: 1e12 J (278 MWh) is far above any (the public maximum is ~4 MJ).
MIN_ENERGY_J = 1e-9
MAX_ENERGY_J = 1e12
MAX_COUNT = {"gpu_count": 4096, "batch_size": 1_000_000, "n_repeats": 1_000_000, "height": 65_536,
             "width": 65_536, "frames": 100_000, "steps": 10_000}


def _check_rules(df: pd.DataFrame, source: str, row_offset: int) -> None:
    """Row rules, vectorised; the first broken cell raises."""

    def fail(mask, column: str, rule: str, show: Callable[[Any], str] | None = None):
        i = _first(mask)
        if i is not None:
            value = df[column].iloc[i] if column in df else None
            shown = (show or _show)(None if value is pd.NA else value)
            raise _err(source, i + row_offset, column, f"{shown} breaks the rule: {rule}")

    for col in SCHEMA:
        if col.required and col.name in df:
            fail(df[col.name].isna().to_numpy(), col.name, "a value is required", lambda v: "empty cell")
            if col.dtype == "string" and col.name != "flags":
                fail((df[col.name].fillna("x").str.strip() == "").to_numpy(dtype=bool),
                     col.name, "a value is required", lambda v: "empty cell")

    # energies: positive and finite where present, at least one per row
    present_any = np.zeros(len(df), dtype=bool)
    for name in ENERGY_COLUMNS:
        v = df[name].to_numpy(dtype="float64")
        fail(np.isinf(v), name, "an energy must be finite")
        fail(~np.isnan(v) & (v <= 0), name, "an energy must be > 0 J (leave the cell empty when not measured)")
        fail(~np.isnan(v) & (v > 0) & ((v < MIN_ENERGY_J) | (v > MAX_ENERGY_J)), name,
             f"an energy of one call is implausible outside {MIN_ENERGY_J:g} to {MAX_ENERGY_J:g} J")
        present_any |= ~np.isnan(v)
    fail(~present_any, "energy_gpu_j", "each row needs at least one energy (energy_gpu_j, energy_cpu_j or energy_ram_j)",
         lambda v: "no energy")
    for name in ("duration_s", "idle_power_w", "audio_seconds", "fps"):
        v = df[name].to_numpy(dtype="float64")
        fail(np.isinf(v) | (~np.isnan(v) & (v <= 0)), name, f"`{name}` must be > 0 and finite where present")
    for name in ("flop", *FLOP_ROLE_COLUMNS, "byte", *BYTE_ROLE_COLUMNS, "guidance_scale"):
        v = df[name].to_numpy(dtype="float64")
        fail(np.isinf(v) | (~np.isnan(v) & (v < 0)), name, f"`{name}` must be >= 0 and finite where present")
    for name in ("gpu_count", "batch_size", "n_repeats", "height", "width", "frames", "steps"):
        v = df[name]
        fail((v.notna() & (v.fillna(1) < 1)).to_numpy(dtype=bool), name, f"`{name}` must be >= 1")
        top = MAX_COUNT[name]
        fail((v.notna() & (v.fillna(1) > top)).to_numpy(dtype=bool), name, f"`{name}` is implausible above {top:,}")
    for name in ("repeat", "warmup"):
        v = df[name]
        fail((v.notna() & (v.fillna(0) < 0)).to_numpy(dtype=bool), name, f"`{name}` must be >= 0")

    fail(~df["phase"].isin(PHASES).to_numpy(dtype=bool), "phase", f"phase must be one of {', '.join(PHASES)}")
    fail(~df["modality"].isin(MODALITIES).to_numpy(dtype=bool), "modality", f"modality must be one of {', '.join(MODALITIES)}")
    prec = df["precision"]
    fail((prec.notna() & ~prec.isin(PRECISIONS)).to_numpy(dtype=bool), "precision",
         f"precision must be one of {', '.join(PRECISIONS)}")
    flags = df["flags"].fillna("")
    bad_flags = ~flags.str.fullmatch(r"(?:[a-z0-9_]+(?:;[a-z0-9_]+)*)?").fillna(False)
    fail(bad_flags.to_numpy(dtype=bool), "flags", "flags are ';'-separated names of [a-z0-9_]")

    key = df[list(KEY_COLUMNS)]
    dup = key.duplicated(keep="first").to_numpy()
    i = _first(dup)
    if i is not None:
        raise _duplicate(source, i + row_offset, df["run_id"].iloc[i], df["phase"].iloc[i], df["repeat"].iloc[i])


def _duplicate(source: str, row: int, run_id: Any, phase: Any, repeat: Any, where: str = "") -> DataError:
    """The error of a key ``(run_id, phase, repeat)`` met twice (``where``: e.g. " (already in the table)")."""
    shown = "-" if repeat is None or pd.isna(repeat) else int(repeat)
    return _err(source, row, "run_id",
                f"{_show(run_id)} with phase {phase!r} and repeat {shown} appears twice{where} "
                "(rule: (run_id, phase, repeat) is unique; was this run imported already?)")


def validate_runs(df: pd.DataFrame, source: str = "runs table", *, fill_defaults: bool = False,
                  row_offset: int = 1) -> pd.DataFrame:
    """Check ``df`` against :data:`SCHEMA` and return it with schema dtypes and column order.

    Missing optional columns are added empty; extra columns are kept, after the schema ones.
    With ``fill_defaults`` (when rows are created, not read) missing required columns and
    empty required cells take the column default where one exists. Raises
    :class:`DataError` naming ``source``, the row (``row_offset`` = number of the first row),
    the column and the rule.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a table (pandas DataFrame), got {type(df).__name__}")
    df = df.reset_index(drop=True)
    out: dict[str, pd.Series] = {}
    for col in SCHEMA:
        has_default = col.required and (col.default is not None or col.name == "package_version")
        default = _package_version() if col.name == "package_version" else col.default
        if col.name not in df.columns:
            if col.required and not (fill_defaults and has_default):
                hint = ""
                if set(PUBLIC_COLUMNS) <= set(df.columns):
                    hint = " (this looks like a public CSV: import it with `scaling data import`)"
                raise _err(source, None, col.name, f"missing required column{hint}")
            value = default if (fill_defaults and has_default) else None
            s = pd.Series([value] * len(df), index=df.index, dtype="object")
        else:
            s = df[col.name]
            if fill_defaults and has_default:
                s = s.astype("object").where(s.notna(), default)
        out[col.name] = _coerce(s, col, source, row_offset)
    extra = [c for c in df.columns if c not in COLUMNS]
    result = pd.DataFrame(out, index=df.index)
    for c in extra:
        result[c] = df[c]
    # `flags` is a list: an empty cell (as CSV writes it) is the empty list
    result["flags"] = result["flags"].fillna("")
    _check_rules(result, source, row_offset)
    return result

