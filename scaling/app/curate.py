"""Curate the published measurements of ``datasets/public/`` into one runs table.

``python -m scaling.app.curate`` reads every energy CSV of ``datasets/public/`` (the converted
published files, kept verbatim next to their ``PROVENANCE.md``), imports each with the
default flag policies (:mod:`scaling.app.importers`), annotates the FLOPs from the shipped
closed-form tables, and writes ``datasets/public/runs.parquet``: the curated runs table that
the fits (:mod:`fits.validation`, :mod:`fits.default_law`) and the benchmarks read.

``--check`` rebuilds the table in memory and compares it with the file (exit 1 when it is
stale: a policy, the registry or a FLOP table changed since it was written).

The curated table is a derived file: the CSVs are the record. It lives in the application
layer because it needs both the importers and the FLOP profiler; the fits below it only read
its result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from scaling.app.importers import ImportReport, annotate_flops, import_public
from scaling.errors import DataError, ScalingError
from scaling.runs import read_runs, validate_runs, write_runs

__all__ = ["ENERGY_FILES", "PUBLIC_DIR", "RUNS_FILE", "curate", "main", "same_table"]

PUBLIC_DIR = Path(__file__).resolve().parents[2] / "datasets" / "public"
RUNS_FILE = PUBLIC_DIR / "runs.parquet"

#: The energy CSVs of ``datasets/public/``, in import order (the quality CSV has no energies).
ENERGY_FILES = (
    "video_killed_energy_budget.csv",
    "benchlab_t2v.csv",
    "ml_energy_leaderboard_v2.csv",
    "diffused_responsibility_t2a.csv",
    "leybzon_sd35_quantization.csv",
    "ml_energy_leaderboard_v3_h100.csv",
)


def curate(folder: str | Path = PUBLIC_DIR, files: Sequence[str] = ENERGY_FILES) -> tuple[pd.DataFrame, ImportReport]:
    """Import and FLOP-annotate the energy CSVs of ``folder``: one validated runs table and its report."""
    folder = Path(folder)
    frames, reports = [], []
    for name in files:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: the published file is missing (rule: datasets/public holds every energy CSV "
                            "listed in scaling.app.curate.ENERGY_FILES)")
        res = import_public(path)
        res.report.sources = {name: v for v in res.report.sources.values()}  # the file name, not this clone's path
        frames.append(annotate_flops(res.runs, res.report))
        reports.append(res.report)
    runs = validate_runs(pd.concat(frames, ignore_index=True), "curated public runs")
    return runs, ImportReport.combine(reports, runs)


def same_table(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two runs tables hold the same rows and values (column order and dtypes as validated)."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    try:
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)
    except AssertionError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scaling.app.curate", description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(PUBLIC_DIR), help=f"folder of the published CSVs (default {PUBLIC_DIR})")
    p.add_argument("--out", default=None, help="runs table to write (default: runs.parquet in --data)")
    p.add_argument("--check", action="store_true", help="compare a rebuild with the file; write nothing")
    args = p.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.data) / "runs.parquet"
    try:
        runs, report = curate(args.data)
        if args.check:
            fresh = same_table(read_runs(out), runs)
            print(f"{out}: {'up to date' if fresh else 'STALE: run python -m scaling.app.curate'} ({len(runs)} rows)")
            return 0 if fresh else 1
        write_runs(runs, out, report=report.to_dict())
    except ScalingError as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {len(runs)} rows, {int(runs['flop'].notna().sum())} with FLOPs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
