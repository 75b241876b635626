"""``scaling data``: import measurements into a runs table, inspect one, export it as CSV.

::

    scaling data import SOURCE [SOURCE...] --out runs.parquet [--policy NAME=ACTION ...] [--append]
    scaling data inspect FILE [--policy NAME=ACTION ...]
    scaling data export FILE --out runs.csv
    scaling data policies

A SOURCE is a public energy CSV, a runs table (parquet or CSV) or a CodeCarbon
``emissions.csv`` (with ``--setting model=ID,steps=N,...``). A quality-metrics table (e.g.
``datasets/public/diffused_responsibility_quality.csv``) holds no energies: ``import`` skips
it with a one-line note, so ``scaling data import datasets/public/*.csv`` works; ``inspect``
shows it. Every source is read and checked before anything is written; the output is written
atomically, so bad input leaves no file (and an existing one untouched). A source without rows
is refused. ``--setting`` and ``--phase`` apply to a CodeCarbon emissions.csv only, ``--policy``
to a public energy CSV (and, for ``inspect``, a quality table): given where no source is one,
they are refused, not ignored. A ``.parquet`` source is read as parquet only. ``--out`` is a
``.parquet`` or ``.csv`` (``.csv.gz``) file; ``export`` writes ``.csv`` (``.csv.gz``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from scaling._files import check_output
from scaling.app.commands import _common as T
from scaling.app.commands._out import probe_output, progress
from scaling.errors import DataError


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("data", help="import, inspect and export runs tables",
                              description=__doc__.split("::")[0].strip(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")

    imp = sub.add_parser("import", help="import measurement files into a runs table (parquet)")
    imp.add_argument("sources", nargs="+", metavar="SOURCE", help="public energy CSV, runs table or emissions.csv "
                     "(a quality-metrics table is skipped with a note)")
    imp.add_argument("--out", required=True, type=T.nonempty("out"), help="runs table to write (.parquet, or .csv)")
    imp.add_argument("--policy", action="append", default=[], metavar="NAME=ACTION",
                     help="override a flag policy of the public energy CSVs, e.g. first_call=mark (see `scaling data "
                          "policies`)")
    imp.add_argument("--append", action="store_true", help="append to --out instead of replacing it")
    imp.add_argument("--no-flops", dest="flops", action="store_false", help="do not annotate FLOP per row")
    imp.add_argument("--setting", default=None, metavar="K=V,...",
                     help="for a CodeCarbon emissions.csv: the setting it measured, e.g. model=wan2.1,steps=50")
    imp.add_argument("--phase", default=None, help="phase of a CodeCarbon emissions.csv (default total)")
    imp.add_argument("--quiet", action="store_true", help="print only the summary line")

    ins = sub.add_parser("inspect", help="show the import report of a runs table or a public CSV")
    ins.add_argument("file", metavar="FILE")
    ins.add_argument("--policy", action="append", default=[], metavar="NAME=ACTION",
                     help="policies to apply when FILE is a public energy CSV or a quality table")
    ins.add_argument("--setting", default=None, metavar="K=V,...", help="for a CodeCarbon emissions.csv")

    exp = sub.add_parser("export", help="export a runs table as CSV")
    exp.add_argument("file", metavar="FILE")
    exp.add_argument("--out", required=True, type=T.nonempty("out"), help="CSV file to write (.csv, or .csv.gz)")

    sub.add_parser("policies", help="list the flag policies, their actions and reasons")
    p.set_defaults(_data_parser=p)
    return p


def parse_setting(text: str | None) -> dict[str, Any] | None:
    """``"model=wan2.1,steps=50,cfg=true"`` -> ``{"model": "wan2.1", "steps": 50, "cfg": True}``."""
    if text is None:
        return None
    out: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DataError(f"--setting {item!r}: write KEY=VALUE pairs separated by commas")
        value = value.strip()
        parsed: Any = value
        if value.lower() in ("true", "false"):
            parsed = value.lower() == "true"
        else:
            try:
                parsed = int(value)
            except ValueError:
                try:
                    parsed = float(value)
                except ValueError:
                    parsed = value
                else:
                    if not math.isfinite(parsed):
                        raise DataError(f"--setting {item!r}: {value} is not a finite number")
        if key.strip() in out:
            raise DataError(f"--setting {item!r}: `{key.strip()}` is given twice")
        out[key.strip()] = parsed
    return out


def run(args) -> int:
    cmd = getattr(args, "data_command", None)
    if cmd == "import":
        return _import(args)
    if cmd == "inspect":
        return _inspect(args)
    if cmd == "export":
        return _export(args)
    if cmd == "policies":
        return _policies()
    args._data_parser.error("no action given: use one of import, inspect, export, policies")


EXPORT_SUFFIXES = (".csv", ".csv.gz")
"""What ``scaling data export`` writes: CSV text (gzip-compressed for ``.csv.gz``)."""

_KIND_WORDS = {"runs": "a runs table", "public": "a public energy CSV", "quality": "a quality-metrics table",
               "codecarbon": "a CodeCarbon emissions.csv"}


def _check_phase(phase: str | None) -> str:
    """``--phase``: a phase of the runs table (scaling.runs.PHASES); None is ``total``."""
    from scaling.runs import PHASES

    if phase is None:
        return "total"
    if phase not in PHASES:
        raise DataError(f"--phase {phase!r}: not a phase of the runs table (rule: one of {', '.join(PHASES)})")
    return phase


def _refuse_unused(kinds: dict[str, str], args, *, policy_kinds: tuple[str, ...]) -> None:
    """Options that cannot apply to any of the sources are refused, not ignored (one line)."""
    given = ", ".join(f"{src} ({_KIND_WORDS[k]})" for src, k in kinds.items())
    cc = [name for name, value in (("--setting", args.setting), ("--phase", getattr(args, "phase", None)))
          if value is not None]
    if cc and "codecarbon" not in kinds.values():
        raise DataError(f"{' and '.join(cc)} {'apply' if len(cc) > 1 else 'applies'} only to a CodeCarbon "
                        f"emissions.csv, and no source is one: "
                        f"{given} (rule: leave {' and '.join(cc)} out)")
    if args.policy and not any(k in policy_kinds for k in kinds.values()):
        what = " or ".join(_KIND_WORDS[k] for k in policy_kinds)
        raise DataError(f"--policy applies only to {what}, and no source is one: {given} (rule: leave --policy out; "
                        "a runs table is imported as it is)")


def _import(args) -> int:
    import pandas as pd

    from scaling.app.importers import ImportReport, import_file, parse_policy_args, sniff
    from scaling.app.importers.codecarbon import _setting_fields
    from scaling.runs import RUNS_SUFFIXES, append_runs, check_runs_output, count_runs, validate_runs, write_runs

    policy = parse_policy_args(args.policy)
    setting = parse_setting(args.setting)
    phase = _check_phase(args.phase)
    out = Path(args.out)
    if args.append:  # before any work: never over a source; an existing table must take the rows
        check_runs_output(out, inputs=args.sources, what="--out")
    else:
        check_output(out, inputs=args.sources, what="--out", suffixes=RUNS_SUFFIXES)
    probe_output(out)
    kinds = {src: sniff(src) for src in args.sources}
    _refuse_unused(kinds, args, policy_kinds=("public",))
    if setting is not None:
        _setting_fields(setting)  # the setting's rules, before any file is read
    quality = [src for src, k in kinds.items() if k == "quality"]
    sources = [src for src in args.sources if src not in quality]
    if not sources:
        raise DataError(f"{', '.join(quality)}: quality-metrics tables only, no energies to import (rule: at least "
                        "one SOURCE with energies; `scaling data inspect FILE` shows a quality table)")
    notes = [f"scaling data: note: skipped {src}: a quality-metrics table, not energy runs (`scaling data inspect` "
             "shows it, `scaling pareto --quality-table` joins it)" for src in quality]  # printed once all went well
    results = []
    for src in progress(sources, "importing", label=lambda s: Path(s).name):
        result = import_file(src, policy, setting=setting, phase=phase, flops=args.flops)
        if result.report.rows_read == 0:
            raise DataError(f"{src}: no rows (rule: a table to import holds at least one row; nothing was written)")
        results.append(result)
    tables = [r.runs for r in results if len(r.runs)]
    if not tables:
        read = sum(r.report.rows_read for r in results)
        raise DataError(f"{', '.join(sources)}: no rows left to import (every one of {read} rows was excluded by a "
                        "policy; the report of `scaling data inspect` says which; nothing was written)")
    runs = pd.concat(tables, ignore_index=True)
    runs = validate_runs(runs, f"{out} (combined sources)")
    report = ImportReport.combine([r.report for r in results], runs)
    if args.append:
        append_runs(runs, out)
        summary = f"appended {len(runs)} rows to {out} ({count_runs(out)} rows now)"
    else:
        write_runs(runs, out, report=report.to_dict())
        summary = f"wrote {len(runs)} rows to {out}"
    for note in notes:
        print(note, file=sys.stderr)
    if not args.quiet:
        print(report.to_text())
    print(summary)
    return 0


def _inspect(args) -> int:
    from scaling.app.importers import import_file, import_quality, parse_policy_args, sniff, summarize_runs
    from scaling.app.importers.codecarbon import _setting_fields
    from scaling.runs import read_metadata, read_runs

    policy = parse_policy_args(args.policy)  # the options' values first, whatever the file
    setting = parse_setting(args.setting)
    path = Path(args.file)
    kind = sniff(path)
    _refuse_unused({str(path): kind}, args, policy_kinds=("public", "quality"))
    if setting is not None:
        _setting_fields(setting)
    if kind == "quality":
        q = import_quality(path, policy)
        print(f"{path}: quality table, {len(q)} rows")
        for (model, metric), g in q.groupby(["model", "metric"]):
            print(f"  {model:<40} {metric:<6} {len(g):>3} rows, steps {sorted(set(int(s) for s in g['steps']))}")
        return 0
    if kind == "runs":
        runs = read_runs(path)
        stored = read_metadata(path).get("import_report") if runs is not None and path.suffix == ".parquet" else None
        print(f"{path}: runs table, {len(runs)} rows")
        print(summarize_runs(runs, stored).to_text())
        return 0
    result = import_file(path, policy, setting=setting)
    print(f"{path}: {kind} file (not written; `scaling data import` writes it)")
    print(result.report.to_text())
    return 0


def _export(args) -> int:
    from scaling.app.importers import check_table_path
    from scaling.runs import read_runs, to_csv

    check_output(args.out, inputs=[args.file], what="--out", suffixes=EXPORT_SUFFIXES)  # never over its input
    probe_output(args.out)
    runs = read_runs(check_table_path(args.file))
    out = to_csv(runs, args.out)
    print(f"wrote {len(runs)} rows to {out}")
    return 0


def _policies() -> int:
    from scaling.app.importers import POLICIES

    for p in POLICIES.values():
        marks = ", ".join(f"{a} -> `{f}`" for a, f in p.marks.items())
        print(f"{p.name}: default {p.action} (allowed: {', '.join(p.actions)}){'; flags ' + marks if marks else ''}")
        print(f"    detects: {p.detects}")
        print(f"    why: {p.reason}")
    return 0
