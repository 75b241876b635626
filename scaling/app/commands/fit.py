"""`scaling fit`: fit an energy law on a runs table, print its coefficients and validation.

::

    scaling fit --data runs.parquet [--law NAME] [--by gpu|model|component] [--out law.json]
                [--report fit.html] [--keep-offload] [--strict] [--target energy|time]

The rows (``phase == total``, or the component phases with ``--by component``) are merged into
one row per distinct setting (geometric mean of repeats), every candidate form is validated on
the same splits (k-fold over settings, leave-one-model-out, leave-one-GPU-out), and the named
form, or the best one with hardware terms (``--law auto``), is fitted on everything. ``--out``
writes a law file that ``scaling predict --law`` (``fits.load_law``) reads.

Bad data stops before any output with one line naming the file, row (counted from 1) or column
and the rule: a missing column, an empty or non-positive energy, a table with one distinct
setting, and, with ``--strict``, a model or GPU no registry knows. Without ``--strict`` the rows
that cannot enter a FLOP law (unregistered model or GPU, no FLOP profile) and the multi-GPU rows
(the law is a law of one GPU) are left out and counted in the output. With ``--by model`` or
``--by gpu`` a group that cannot be fitted on its own (one distinct setting) is skipped with a
note naming it (refused when no group can be fitted). Warnings of the fit (too few settings for
a form's parameters) are ``note:`` lines on stderr. ``--out`` is a ``.json`` file, ``--report`` a
``.html`` page; output files are written only when everything succeeded, and atomically.
"""

from __future__ import annotations

import argparse
import math
import sys

from scaling._files import HTML_SUFFIXES, check_output
from scaling.app.commands import _common as T
from scaling.app.commands._out import add_wide_arg, probe_output, render_table, working

_BY = ("gpu", "model", "component")


def add_parser(sub):
    p = sub.add_parser(
        "fit", help="fit an energy law (Kaplan-style, with intervals and validation) on a runs table",
        formatter_class=_LawFormsHelp,
        description="Fit E = a*C^b (+ overheads, hardware terms) on measured runs; print coefficients with 90% "
                    "intervals and the validation table (k-fold over settings, leave-one-model-out, "
                    "leave-one-GPU-out).")
    p.add_argument("--data", required=True, metavar="RUNS", type=T.nonempty("data"), help="runs table (.parquet from `scaling data import`, or .csv)")
    p.add_argument("--law", default="auto", metavar="NAME", type=T.nonempty("law"),
                   help=LAW_HELP_PLACEHOLDER)  # the forms are listed from fits.validation when --help prints
    p.add_argument("--by", choices=_BY, help="one law per GPU, per model, or per component (phase rows); a GPU or "
                   "model that cannot be fitted on its own (one distinct setting) is skipped with a note")
    p.add_argument("--target", choices=("energy", "time"), default="energy",
                   help="print and validate the energy law (default) or the time law (both are written)")
    p.add_argument("--out", metavar="LAW.json", type=T.nonempty("out"), help="write the fitted law (read by `scaling predict --law`)")
    p.add_argument("--report", metavar="FIT.html", type=T.nonempty("report"), help="write a plotly page: fits per component, residuals")
    p.add_argument("--keep-offload", action="store_true", help="keep rows flagged cpu_offload (excluded by default)")
    rows = p.add_mutually_exclusive_group()
    rows.add_argument("--strict", action="store_true",
                      help="refuse a table with rows whose model or GPU is not registered or has no FLOP profile "
                           "(default: leave them out and say how many)")
    rows.add_argument("--drop-unresolved", action="store_true",
                      help="leave out unresolved rows (the default since 0.2; kept so that older commands still run)")
    p.add_argument("--n-splits", type=T.n_splits, default=5,
                   help="folds of the k-fold over settings (2 or more; default 5)")
    add_wide_arg(p)
    return p


LAW_HELP_PLACEHOLDER = "law form: auto (the default) or a form of fits.validation.candidate_laws"


def law_help() -> str:
    """The help of ``--law``: every form :func:`fits.validation.candidate_laws` accepts (the one table of forms),
    the default marked, and the form of the shipped default law (:data:`fits.validation.PRIMARY_LAW`)."""
    from fits.validation import PRIMARY_LAW, candidate_laws

    forms = [f"{f} (the shipped default law's form)" if f == PRIMARY_LAW else f for f in candidate_laws("energy")]
    return ("law form: auto (the default: the hw-* form with the lowest mean held-out MAPE on this data) or one of "
            + ", ".join(forms)).replace("%", "%%")


class _LawFormsHelp(argparse.HelpFormatter):
    """The help formatter of ``scaling fit``: ``--law`` lists the forms only when the help is printed, so that
    building the parser (every command line) does not import fits (numpy)."""

    def _get_help_string(self, action):
        if action.help == LAW_HELP_PLACEHOLDER:
            return law_help()
        return super()._get_help_string(action)

    def _split_lines(self, text, width):  # a form name is never cut at its hyphen (hw-\nmemory+step)
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


OUT_SUFFIXES = (".json",)
"""``--out``: a law file is JSON."""

def run(args) -> int:
    from fits.fit_runs import fit_runs
    from fits.loglaw import identifiability_notes

    for flag, out, suffixes in (("--out", args.out, OUT_SUFFIXES), ("--report", args.report, HTML_SUFFIXES)):
        if out:  # before the fit: never over the data, nor over each other
            check_output(out, inputs=[args.data, args.report if out is args.out else args.out], what=flag,
                         suffixes=suffixes)
            probe_output(out)
    from fits.validation import candidate_laws
    from scaling.errors import DataError, LawError

    forms = list(candidate_laws("energy"))
    if args.law not in ("auto", *forms):  # before reading and validating (seconds of work)
        raise LawError(f"unknown law {args.law!r}: use auto or one of {', '.join(forms)}")
    from scaling.app.importers import check_table_path, table_columns
    from scaling.app.importers.flops import fill_bytes
    from scaling.runs import read_runs

    check_table_path(args.data)
    columns = set(table_columns(args.data))
    if {"run_id", "phase"} <= columns and "energy_gpu_j" not in columns:  # a runs table: its reader would fill
        # the missing column with empty cells (a file that is no runs table is refused by the reader, in its words)
        raise DataError(f"{args.data}: column energy_gpu_j is missing (rule: `scaling fit` needs the GPU energy of "
                        "each call, energy_gpu_j in J, on every row it fits)")
    runs, n_filled = fill_bytes(read_runs(args.data))
    if n_filled:
        print(f"bytes      moved bytes filled from the closed-form profiles for {n_filled} rows (the roofline forms "
              "read them)")
    with working(f"fitting and validating every law form on {args.data}"), identifiability_notes() as notes:
        result = fit_runs(
            data=args.data, law=args.law, by=args.by, target=args.target, keep_offload=args.keep_offload,
            drop_unresolved=not args.strict, n_splits=args.n_splits, runs=runs,
        )
    _print(result, args.target, wide=getattr(args, "wide", False))
    for note in [*result.get("notes", []), *notes]:  # after the fit went well: a refusal stays one line
        print(f"scaling fit: note: {note}", file=sys.stderr)
    # outputs only after everything above succeeded
    if args.report:
        from fits.report import write_report

        out = write_report(result, args.report)
        print(f"\nwrote {out}")
    if args.out:
        from fits.default_law import write_law

        out = write_law(result["document"], args.out)
        print(f"wrote {out} (read it with `scaling predict --law {out}`)")
    return 0


def _fmt(v, digits=4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.{digits}f}"
    return str(v)


def _print(result, target: str, wide: bool = False) -> None:
    unit = "J per call" if target == "energy" else "s per call"
    print(f"data       {result['data']}")
    print(f"rows       {result['n_rows']} rows -> {result['n_settings']} settings "
          f"({', '.join(result['gpus'])}; {len(result['models'])} models)")
    for reason, n in result["left_out"].items():
        if n:
            print(f"left out   {n} rows: {reason}")
    print(f"target     {target}, {unit} (a call is one pipeline call: batch x outputs-per-prompt outputs)")
    for key, fit in result["fits"].items():
        label = f" [{result['by']} = {key}]" if result["by"] else ""
        print(f"\nlaw{label}: {fit['form']}   {fit['equation']}")
        print(f"in sample: R^2(log) {_fmt(fit['in_sample']['r2_log'])}, MAPE {_fmt(fit['in_sample']['mape'])}, "
              f"{fit['n_settings']} settings")
        coefs = fit["coefficients"][target]
        rows = [[r["param"], _fmt(r["estimate"]), _fmt(r["lo"]), _fmt(r["hi"]), r["method"]] for r in coefs]
        print(render_table(rows, ["parameter", "estimate", "90% lo", "90% hi", "interval"], wide=wide))
        tab = fit["validation"]
        if tab is not None and len(tab):
            print(f"\nvalidation ({target}; held-out settings, models, GPUs):")
            vrows = []
            for rec in tab.to_dict(orient="records"):
                vrows.append([rec["law"] + (" *" if rec["law"] == fit["form"] else ""), rec["split"], rec["folds"],
                              rec["n"], _fmt(rec["r2_log"]), _fmt(rec["mape"]), _fmt(rec["mdape"]),
                              _fmt(rec["spearman"])])
            print(render_table(vrows, ["law", "split", "folds", "n", "R2(log)", "MAPE", "MdAPE", "Spearman"],
                               wide=wide))
            print("* the fitted form" + (f" (chosen: {fit['selection']})" if fit.get("selection") else ""))
