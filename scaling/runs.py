"""The runs table: one row per measured call and phase.

The schema is data (:data:`SCHEMA`): every column has a dtype, a unit, whether it is
required, and a description. ``datasets/README.md`` prints the same table. The schema version
(:data:`SCHEMA_VERSION`) is stored in the parquet metadata; a file written by a newer schema
is refused rather than misread.

The table is a superset of the public CSV columns (``datasets/public/*.csv``) plus
run bookkeeping (``run_id``, ``timestamp``, ``repeat``, ``warmup``, ``idle_power_w``,
``package_version``), the resolved registry keys (``model_key``, ``gpu_key``, ``cfg``), the
FLOP of the row's phase (``flop`` and ``flop_<role>``) and two marks: ``estimated`` (the
energy is an estimate, not a measurement) and ``flags`` (the import policies that touched the
row, ``;``-separated, see :mod:`scaling.app.importers`).

Conventions
-----------
- Energies are joules for ONE pipeline call. With ``batch_size`` > 1 the call made the whole
  batch: divide by ``batch_size`` for energy per output.
- ``phase`` is ``total`` (the whole call), a component (``text_encoder``, ``denoiser``,
  ``decoder``, ``vocoder``, ``upsampler``) or a pipeline *stage* of a multi-stage pipeline
  (``generate``, ``upsample``, ``denoise``: the LTX-Video 0.9.7 two-pass pipeline of the
  public data). Stage names are kept as the source wrote them, not mapped onto components: a
  stage runs several components (``denoise`` is a second denoiser pass *and* the VAE decode).
  Components and stages both partition the call; when a call has both a ``total`` row and
  phase rows, ``total`` is their sum. Filter on ``phase == "total"`` to count each call once
  (:func:`totals`).
- ``run_id`` names one call; its phase rows share it. ``(run_id, phase, repeat)`` is unique.
- Row numbers in error messages count data rows from 1 (the CSV header is not a row).

API: :func:`empty_runs`, :func:`validate_runs`, :func:`read_runs`, :func:`write_runs`
(atomic), :func:`append_runs` (atomic, never loses earlier rows), :func:`to_csv`,
:func:`from_csv`, :func:`schema_table`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from scaling.errors import DataError

__all__ = [
    "SCHEMA_VERSION",
    "SCHEMA",
    "Column",
    "COLUMNS",
    "PUBLIC_COLUMNS",
    "ENERGY_COLUMNS",
    "COMPONENT_PHASES",
    "STAGE_PHASES",
    "PHASES",
    "MODALITIES",
    "FLOP_ROLE_COLUMNS",
    "empty_runs",
    "validate_runs",
    "read_runs",
    "write_runs",
    "append_runs",
    "to_csv",
    "from_csv",
    "totals",
    "has_flag",
    "add_flag",
    "schema_table",
    "schema_markdown",
    "read_metadata",
]

SCHEMA_VERSION = 1
"""Bump when a column changes meaning or type. Adding an optional column does not."""

_META_VERSION = b"scaling.runs.schema_version"
_META_REPORT = b"scaling.runs.import_report"

COMPONENT_PHASES = ("text_encoder", "denoiser", "decoder", "vocoder", "upsampler")
"""Phases that are one role of the pipeline (``upsampler``: a latent/spatial upsampler)."""

STAGE_PHASES = {
    "generate": "LTX-Video 0.9.7 multi-stage: first pass (text encoder + denoiser at reduced resolution)",
    "upsample": "LTX-Video 0.9.7 multi-stage: latent spatial upsampler x2 (no denoising steps)",
    "denoise": "LTX-Video 0.9.7 multi-stage: refinement denoiser pass at full resolution + VAE decode",
}
"""Stages of a multi-stage pipeline, kept as the source names them (see module docstring)."""

PHASES = ("total", *COMPONENT_PHASES, *STAGE_PHASES)
MODALITIES = ("image", "video", "audio")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "nf4", "fp4")
ENERGY_COLUMNS = ("energy_gpu_j", "energy_cpu_j", "energy_ram_j")
FLOP_ROLE_COLUMNS = ("flop_text_encoder", "flop_denoiser", "flop_decoder", "flop_vocoder")

PUBLIC_COLUMNS = (
    "source", "model", "modality", "gpu", "gpu_count", "precision", "height", "width", "frames", "fps",
    "audio_seconds", "steps", "guidance_scale", "batch_size", "energy_gpu_j", "energy_cpu_j",
    "energy_ram_j", "duration_s", "n_repeats", "phase", "meter", "notes",
)
"""The columns of every public energy CSV, in their order."""

_FLAG_RE = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Column:
    """One column of the runs table.

    ``dtype`` is the pandas dtype on read (``string``, ``Int64``, ``float64``, ``boolean``,
    ``datetime``); ``required`` means a value in every row; ``default`` fills a missing
    column or cell when rows are *created* (:func:`append_runs`, :func:`write_runs`), never
    on read.
    """

    name: str
    dtype: str
    unit: str
    required: bool
    description: str
    default: Any = None


def _package_version() -> str:
    from scaling._version import __version__

    return __version__


SCHEMA: tuple[Column, ...] = (
    Column("run_id", "string", "-", True, "identifier of one measured call; the phase rows of a call share it"),
    Column("timestamp", "datetime", "UTC", False, "start of the measured call"),
    Column("source", "string", "-", True, "who measured it: a public source name or this toolkit's runner"),
    Column("model", "string", "-", True, "model id as the source wrote it (public repository id)"),
    Column("model_key", "string", "-", False, "registry key the model id resolves to; empty when not registered"),
    Column("modality", "string", "-", True, "image, video or audio"),
    Column("gpu", "string", "-", False, "GPU name as the source wrote it (NVML name); empty when not stated"),
    Column("gpu_key", "string", "-", False, "hardware-registry key the GPU name resolves to; empty when unknown"),
    Column("gpu_count", "Int64", "count", True, "GPUs used by the call", 1),
    Column("precision", "string", "-", False, "compute precision: fp32, tf32, bf16, fp16, fp8, int8, nf4, fp4"),
    Column("height", "Int64", "px", False, "output height (image, video)"),
    Column("width", "Int64", "px", False, "output width (image, video)"),
    Column("frames", "Int64", "count", False, "frames actually generated (video)"),
    Column("fps", "float64", "1/s", False, "frame rate of the output video"),
    Column("audio_seconds", "float64", "s", False, "length of the generated audio"),
    Column("steps", "Int64", "count", False, "denoising steps actually run"),
    Column("guidance_scale", "float64", "-", False, "guidance scale; <= 1 means no classifier-free guidance"),
    Column("cfg", "boolean", "-", False, "classifier-free guidance on (two denoiser passes per step)"),
    Column("batch_size", "Int64", "count", True, "outputs made by the call; energies cover the whole batch", 1),
    Column("energy_gpu_j", "float64", "J", False, "GPU energy of the call and phase (all GPUs of the call)"),
    Column("energy_cpu_j", "float64", "J", False, "CPU energy of the call and phase"),
    Column("energy_ram_j", "float64", "J", False, "DRAM energy of the call and phase"),
    Column("duration_s", "float64", "s", False, "wall-clock time of the call and phase"),
    Column("idle_power_w", "float64", "W", False, "GPU idle power measured before the call (for subtraction)"),
    Column("n_repeats", "Int64", "count", True, "calls averaged into this row (1 = a single measured call)", 1),
    Column("repeat", "Int64", "index", False, "index of this call among the repeats of a run (0-based)"),
    Column("warmup", "Int64", "count", False, "warm-up calls made before the measured ones"),
    Column("phase", "string", "-", True, "total, a component (text_encoder, denoiser, decoder, vocoder, upsampler) "
                                          "or a pipeline stage (generate, upsample, denoise)", "total"),
    Column("meter", "string", "-", True, "what measured the energy: nvml, zeus(nvml), codecarbon, rapl, ..."),
    Column("estimated", "boolean", "-", True, "true when the energy is an estimate (no meter read it)", False),
    Column("flop", "float64", "FLOP", False, "FLOP of this row's phase for the whole call (batch included)"),
    Column("flop_text_encoder", "float64", "FLOP", False, "text-encoder FLOP of the whole call"),
    Column("flop_denoiser", "float64", "FLOP", False, "denoiser FLOP of the whole call (all steps, CFG included)"),
    Column("flop_decoder", "float64", "FLOP", False, "decoder (VAE decode) FLOP of the whole call"),
    Column("flop_vocoder", "float64", "FLOP", False, "vocoder FLOP of the whole call"),
    Column("flop_error", "string", "-", False, "why `flop` is empty (unregistered model, no FLOP table, bad setting)"),
    Column("package_version", "string", "-", True, "version of this toolkit that wrote the row", None),
    Column("flags", "string", "-", True, "policy marks, ';'-separated (see scaling.app.importers.POLICIES)", ""),
    Column("notes", "string", "-", False, "free text: prompt, experiment, source remarks, import corrections"),
)

COLUMNS: dict[str, Column] = {c.name: c for c in SCHEMA}


# --------------------------------------------------------------------------------------------
# building and checking
# --------------------------------------------------------------------------------------------

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
        present_any |= ~np.isnan(v)
    fail(~present_any, "energy_gpu_j", "each row needs at least one energy (energy_gpu_j, energy_cpu_j or energy_ram_j)",
         lambda v: "no energy")
    for name in ("duration_s", "idle_power_w", "audio_seconds", "fps"):
        v = df[name].to_numpy(dtype="float64")
        fail(np.isinf(v) | (~np.isnan(v) & (v <= 0)), name, f"`{name}` must be > 0 and finite where present")
    for name in ("flop", *FLOP_ROLE_COLUMNS, "guidance_scale"):
        v = df[name].to_numpy(dtype="float64")
        fail(np.isinf(v) | (~np.isnan(v) & (v < 0)), name, f"`{name}` must be >= 0 and finite where present")
    for name in ("gpu_count", "batch_size", "n_repeats", "height", "width", "frames", "steps"):
        v = df[name]
        fail((v.notna() & (v.fillna(1) < 1)).to_numpy(dtype=bool), name, f"`{name}` must be >= 1")
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

    key = df[["run_id", "phase", "repeat"]]
    dup = key.duplicated(keep="first").to_numpy()
    i = _first(dup)
    if i is not None:
        raise _err(source, i + row_offset, "run_id",
                   f"{_show(df['run_id'].iloc[i])} with phase {df['phase'].iloc[i]!r} and repeat "
                   f"{'-' if pd.isna(df['repeat'].iloc[i]) else int(df['repeat'].iloc[i])} appears twice "
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


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------

def _is_csv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".csv") or name.endswith(".csv.gz")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Schema version and stored import report of a runs parquet file."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise DataError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from exc
    out: dict[str, Any] = {"schema_version": None, "import_report": None}
    if _META_VERSION in meta:
        out["schema_version"] = int(meta[_META_VERSION].decode())
    if _META_REPORT in meta:
        with contextlib.suppress(ValueError):
            out["import_report"] = json.loads(meta[_META_REPORT].decode())
    return out


def read_runs(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a runs table (``.parquet``, or ``.csv`` / ``.csv.gz``)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    if _is_csv(p):
        return from_csv(p)
    import pyarrow.parquet as pq

    meta = read_metadata(p)
    version = meta["schema_version"]
    if version is None:
        raise DataError(f"{p}: no runs-table schema version in the parquet metadata (rule: write it with "
                        "`scaling data import` or scaling.runs.write_runs)")
    if version > SCHEMA_VERSION:
        raise DataError(f"{p}: written with runs schema version {version}, this toolkit reads up to "
                        f"{SCHEMA_VERSION}: upgrade the package")
    try:
        df = pq.read_table(p).to_pandas()
    except Exception as exc:
        raise DataError(f"{p}: not a readable parquet file ({str(exc).splitlines()[0]})") from exc
    return validate_runs(df, str(p))


def _open_text(path: Path) -> str:
    """The whole file as text; a binary or undecodable file is a DataError."""
    try:
        if path.name.lower().endswith(".gz"):
            import gzip

            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if b"\x00" in data[:65536]:
        raise DataError(f"{path}: not a text CSV file (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file (byte {exc.start} is not UTF-8)") from exc


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Read a CSV as text cells (empty cell -> missing), checking its structure.

    Every record must have one field per header column: a short last record is what a
    truncated file looks like, and it is refused instead of being padded with empty cells.
    """
    import csv
    import io

    text = _open_text(path)
    if not text.strip():
        raise DataError(f"{path}: empty file (rule: a CSV header, then one row per line)")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    try:
        header = [h.strip() for h in next(reader)]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise DataError(f"{path}, column `{dup[0]}`: appears twice in the header (rule: unique column names)")
        if any(not h for h in header):
            raise DataError(f"{path}: an empty column name in the header (rule: every column is named)")
        width = len(header)
        for rec in reader:
            if not rec:
                continue  # blank line
            if len(rec) != width:
                n = len(rows) + 1
                if len(rec) < width:
                    raise DataError(f"{path}, row {n}, column `{header[len(rec)]}`: missing; the row has {len(rec)} of "
                                    f"{width} fields (rule: one value per column; is the file truncated?)")
                raise DataError(f"{path}, row {n}: {len(rec)} fields where the header has {width} (rule: one value "
                                "per column; an unquoted comma?)")
            rows.append(rec)
    except csv.Error as exc:
        raise DataError(f"{path}, row {len(rows) + 1}: not a well-formed CSV ({exc}); is the file truncated?") from exc
    except StopIteration as exc:
        raise DataError(f"{path}: empty file (rule: a CSV header, then one row per line)") from exc
    df = pd.DataFrame(rows, columns=header, dtype=object)
    if len(df):
        df = df.where(df != "", None)
    return df


def from_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a runs table exported as CSV (:func:`to_csv`) and validate it."""
    p = Path(path)
    df = _read_csv_text(p)
    return validate_runs(df, str(p))


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` at once.

    A crash before the replace leaves ``path`` as it was and removes the temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            with contextlib.suppress(OSError):
                tmp_path.unlink()


def _write_parquet(df: pd.DataFrame, path: Path, report: Mapping[str, Any] | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[_META_VERSION] = str(SCHEMA_VERSION).encode()
    if report is not None:
        meta[_META_REPORT] = json.dumps(report, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with _atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_runs(df: pd.DataFrame, path: str | os.PathLike, *, report: Mapping[str, Any] | None = None) -> Path:
    """Validate ``df`` and write it atomically (parquet, or CSV by suffix).

    The file is written next to ``path`` under a temporary name and moved over ``path`` with
    ``os.replace``: readers see the old file or the new one, never half of one. ``report``
    (a JSON-able mapping, e.g. an import report) is kept in the parquet metadata.
    """
    p = Path(path)
    checked = validate_runs(df, str(p), fill_defaults=True)
    if _is_csv(p):
        return to_csv(checked, p, validated=True)
    _write_parquet(checked, p, report)
    return p


def to_csv(df: pd.DataFrame, path: str | os.PathLike, *, validated: bool = False) -> Path:
    """Write a runs table as CSV (atomically). Empty cells are missing values."""
    p = Path(path)
    checked = df if validated else validate_runs(df, str(p), fill_defaults=True)
    out = checked.copy()
    ts = out["timestamp"]
    out["timestamp"] = ts.map(lambda t: t.isoformat() if not pd.isna(t) else None).astype("object")
    with _atomic_path(p) as tmp:
        out.to_csv(tmp, index=False, float_format="%.17g",
                   compression="gzip" if p.name.lower().endswith(".gz") else None)
    return p


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Advisory lock so that concurrent appends (sweep jobs) do not race each other."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the atomic replace still protects the file
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def append_runs(rows: pd.DataFrame | Iterable[Mapping[str, Any]], path: str | os.PathLike) -> pd.DataFrame:
    """Append ``rows`` to the runs table at ``path`` (created if missing); return the new table.

    Earlier rows are never rewritten or lost: the file is read and validated, the new rows are
    validated (defaults filled), both are concatenated and written atomically under a lock. A
    row whose ``(run_id, phase, repeat)`` is already there is refused (DataError), so a run
    cannot be appended twice. A crash mid-write leaves the previous file intact.
    """
    p = Path(path)
    new = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    new = validate_runs(new, f"{p} (appended rows)", fill_defaults=True)
    with _lock(p):
        report = None
        if p.exists():
            old = read_runs(p)
            if not _is_csv(p):
                report = read_metadata(p).get("import_report")
            n_old = len(old)
            both = pd.concat([old, new], ignore_index=True) if n_old else new
            combined = validate_runs(both, str(p), fill_defaults=True)
        else:
            combined = new
        if _is_csv(p):
            to_csv(combined, p, validated=True)
        else:
            _write_parquet(combined, p, report)
    return combined


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def totals(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that each count one whole call once (``phase == "total"``)."""
    return df[df["phase"] == "total"]


def has_flag(df: pd.DataFrame, flag: str) -> pd.Series:
    """Boolean mask of the rows carrying ``flag`` in ``flags``."""
    return df["flags"].fillna("").map(lambda t: flag in t.split(";")).astype(bool)


def add_flag(flags: pd.Series, mask: pd.Series | np.ndarray, flag: str) -> pd.Series:
    """Return ``flags`` with ``flag`` added on the rows of ``mask`` (no duplicates)."""
    if not _FLAG_RE.match(flag):
        raise ValueError(f"flag {flag!r}: use [a-z0-9_]")
    mask = np.asarray(mask, dtype=bool)
    cur = flags.fillna("").astype(object)
    cur = cur.copy()
    sel = cur[mask]
    cur[mask] = sel.map(lambda t: t if flag in t.split(";") else (f"{t};{flag}" if t else flag))
    return cur.astype(pd.StringDtype())


def schema_table() -> pd.DataFrame:
    """The schema as a table: column, dtype, unit, required, default, description."""
    return pd.DataFrame([{"column": c.name, "dtype": c.dtype, "unit": c.unit, "required": c.required,
                          "default": "" if c.default is None else repr(c.default), "description": c.description}
                         for c in SCHEMA])


def schema_markdown() -> str:
    """The schema as a markdown table (what ``datasets/README.md`` shows)."""
    lines = ["| column | dtype | unit | required | description |", "|---|---|---|---|---|"]
    for c in SCHEMA:
        lines.append(f"| `{c.name}` | {c.dtype} | {c.unit} | {'yes' if c.required else ''} | {c.description} |")
    return "\n".join(lines)
