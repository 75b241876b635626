"""Any supported file -> a runs table (what ``scaling data import`` and ``inspect`` read).

:func:`sniff` tells the kind of a file from its first bytes and header; :func:`import_file`
dispatches to the importer of that kind.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

from scaling.errors import DataError
from scaling.runs import _open_text, read_runs

from ._report import ImportReport, ImportResult
from .codecarbon import import_codecarbon
from .flops import annotate_flops
from .public import import_public
from .quality import is_quality_header

__all__ = ["TABLE_RULE", "check_table_path", "import_file", "sniff", "table_columns"]


TABLE_RULE = "rule: a .parquet or .csv file"
"""What an input table is, as the refusals say it."""


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(4)
    except OSError as exc:
        raise DataError(f"{p}: cannot be read ({(exc.strerror or str(exc)).lower()})") from None


def check_table_path(path: str | Path) -> Path:
    """An input table's path, checked before it is read: it exists, is a file (not a folder), and a
    ``.parquet`` name holds parquet bytes (a ``.parquet`` file is read as parquet only: one that is
    empty or holds text is "not a parquet file", never read as a CSV). One DataError line otherwise."""
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: it is a folder, not a table ({TABLE_RULE})")
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if not p.is_file():
        raise DataError(f"{p}: not a regular file ({TABLE_RULE})")
    if p.name.lower().endswith(".parquet"):
        head = _head(p)
        if head != b"PAR1":
            size = p.stat().st_size
            got = "it is empty, 0 bytes" if size == 0 else (
                f"it is {size} bytes long" if size < 4 else "it does not start with the parquet magic bytes PAR1")
            raise DataError(f"{p}: not a parquet file: {got} (rule: a .parquet file holds a parquet table, "
                            "e.g. written by `scaling data import`)")
    return p


def table_columns(path: str | Path) -> list[str]:
    """The column names a table file holds (parquet schema, or the CSV header), before any defaults are
    filled in; [] when they cannot be read (the reader says why)."""
    p = Path(path)
    try:
        if _head(p) == b"PAR1":
            import pyarrow.parquet as pq

            return list(pq.read_schema(p).names)
        if p.name.lower().endswith(".gz"):
            import gzip

            with gzip.open(p, "rt", encoding="utf-8-sig") as fh:
                first = fh.readline()
        else:
            with open(p, encoding="utf-8-sig") as fh:  # the header line only: the reader reads the rest
                first = fh.readline()
        return [h.strip() for h in next(csv.reader(io.StringIO(first)), [])]
    except (OSError, ValueError, csv.Error):  # a broken file (pyarrow's ArrowInvalid is a ValueError, its
        return []                             # IO errors OSErrors): its reader refuses it, in its words


def sniff(path: str | Path) -> str:
    """What a file is: ``runs`` (parquet or runs CSV), ``public``, ``quality`` or ``codecarbon``.

    A folder, a missing file, and a ``.parquet`` file that holds no parquet are refused
    (:func:`check_table_path`)."""
    p = check_table_path(path)
    head = _head(p)
    if head == b"PAR1":
        return "runs"
    first = _open_text(p).lstrip("\ufeff")
    try:
        header = next(csv.reader(io.StringIO(first[: first.find("\n") + 1 if "\n" in first else None])), [])
    except csv.Error as exc:
        raise DataError(f"{p}: not a CSV with a header ({exc})") from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise DataError(f"{p}: empty file (rule: a CSV header, then one row per line)")
    cols = set(header)
    if "run_id" in cols and "phase" in cols:
        return "runs"
    if is_quality_header(cols):
        return "quality"
    if {"energy_consumed", "duration"} <= cols:
        return "codecarbon"
    if "energy_gpu_j" in cols or "source" in cols:
        return "public"
    raise DataError(f"{p}: not a recognised table (columns {', '.join(list(header)[:8])}...): expected a runs "
                    "table, a public energy CSV or a CodeCarbon emissions.csv")


def import_file(path: str | Path, policy: Mapping[str, str] | None = None, *, setting: Any = None,
                phase: str = "total", flops: bool = False) -> ImportResult:
    """Import any supported file (see :func:`sniff`) into a runs table with its report."""
    p = Path(path)
    kind = sniff(p)
    if kind == "public":
        return import_public(p, policy, flops=flops)
    if kind == "quality":
        raise DataError(f"{p}: a quality-metrics table is not a runs table: read it with import_quality "
                        "or `scaling data inspect`")
    if kind == "codecarbon":
        if setting is None:
            raise DataError(f"{p}: a CodeCarbon emissions.csv needs the setting it measured: pass "
                            "--setting model=ID,steps=N,... (runs-table fields)")
        result = import_codecarbon(p, setting, phase)
        if flops:
            result.runs = annotate_flops(result.runs, result.report)
            result.report.describe(result.runs)
        return result
    runs = read_runs(p)
    report = ImportReport(sources={str(p): {"read": len(runs), "kept": len(runs)}}, rows_read=len(runs),
                          rows_kept=len(runs))
    if flops:
        runs = annotate_flops(runs, report)
    report.describe(runs)
    return ImportResult(runs, report)
