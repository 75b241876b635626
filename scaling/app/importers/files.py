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

__all__ = ["sniff", "import_file"]


def sniff(path: str | Path) -> str:
    """What a file is: ``runs`` (parquet or runs CSV), ``public``, ``quality`` or ``codecarbon``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    with open(p, "rb") as fh:
        head = fh.read(4)
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
