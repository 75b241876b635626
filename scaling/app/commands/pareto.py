"""`scaling pareto`: the energy/quality Pareto set per model and across models."""

from __future__ import annotations

import sys
from pathlib import Path

from scaling._files import HTML_SUFFIXES, check_output
from scaling.app.commands import _common as T
from scaling.app.commands._common import dump_json
from scaling.app.commands._out import add_wide_arg, fmt_j, probe_output, render_table

SHIPPED_QUALITY = "diffused_responsibility_quality.csv"
"""The quality table of the public data (datasets/public/), joined when --quality names no column of the runs."""


def add_parser(sub):
    p = sub.add_parser("pareto", help="energy against quality: the Pareto set of settings",
                       description="Median energy per output and quality per setting; the settings not beaten on "
                                   "both, per model and across models.")
    p.add_argument("--data", required=True, metavar="RUNS", type=T.nonempty("data"), help="runs table (parquet or CSV)")
    p.add_argument("--quality", required=True, metavar="COLUMN", type=T.nonempty("quality"), help="quality column (or metric of --quality-table)")
    p.add_argument("--quality-table", metavar="CSV", type=T.nonempty("quality_table"), help="a tidy quality table to join on model and steps "
                   "(e.g. diffused_responsibility_quality.csv)")
    p.add_argument("--dataset", type=T.nonempty("dataset"),
                   help="only this dataset of the quality table (default: mean over datasets)")
    p.add_argument("--lower-is-better", action="store_true", help="the metric improves downwards (e.g. FAD)")
    p.add_argument("--plot", metavar="OUT.html", type=T.nonempty("plot"), help="write a plotly figure (.html)")
    p.add_argument("--json", action="store_true")
    add_wide_arg(p)
    return p


def run(args) -> int:
    from scaling.app.pareto import join_quality, pareto, pareto_figure
    from scaling.errors import InvalidSettingError
    from scaling.runs import COLUMNS, read_runs

    if args.quality in COLUMNS:  # a setting, a measurement or a count of the runs schema
        raise InvalidSettingError(
            f"--quality {args.quality!r} is a column of the runs schema (a setting or a measurement), not a quality "
            "metric (rule: a quality column such as clap or fid, or a metric of --quality-table)")
    if args.plot:
        from scaling.extras import require

        require("plotly", what="--plot")
        check_output(args.plot, inputs=[args.data, args.quality_table], what="--plot", suffixes=HTML_SUFFIXES)
        probe_output(args.plot)
    from scaling.app.importers import check_table_path

    runs = read_runs(check_table_path(args.data))
    table_path = args.quality_table
    if table_path is None and args.quality not in runs.columns:
        table_path = shipped_quality_table(args.quality)
        note = (f"scaling pareto: note: `{args.quality}` is not a column of {args.data}: joined from the shipped "
                f"quality table {table_path} (--quality-table CSV joins another)")
    else:
        note = None
    if table_path:
        from scaling.app.importers import import_quality

        runs = join_quality(runs, import_quality(table_path), args.quality, args.dataset)
    if note:  # after the join: a refusal stays one line
        print(note, file=sys.stderr)
    higher = not args.lower_is_better
    if args.quality.lower() == "fad" and not args.lower_is_better:
        higher = False  # FAD is a distance
    res = pareto(runs, args.quality, higher_is_better=higher)
    if args.plot:
        from scaling._files import write_text_atomic

        write_text_atomic(args.plot, pareto_figure(res).to_html(include_plotlyjs=True), inputs=[args.data, args.quality_table])
    pts = res.points
    if args.json:
        print(dump_json(pts.to_dict(orient="records")))
        return 0
    rows = [[r.model, int(r.steps) if r.steps == r.steps else "-", int(r.batch_size) if r.batch_size == r.batch_size else 1,
             fmt_j(r.energy_per_output_j), f"{r.quality:.4g}", r.n_rows,
             "yes" if r.on_model_front else "", "yes" if r.on_front else ""]
            for r in pts.sort_values(["model", "energy_per_output_j"]).itertuples()]
    print(render_table(rows, ["model", "steps", "batch", "energy\nper output", args.quality, "runs", "model\nfront",
                              "global\nfront"], wide=getattr(args, "wide", False)))
    front_steps = sorted({int(s) for s in res.front(per_model=True)["steps"].dropna()})
    print(f"\nsteps on a model's front: {', '.join(map(str, front_steps))}; "
          f"{'higher' if higher else 'lower'} {args.quality} is better; energy: GPU, median per setting.")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def shipped_quality_table(metric: str) -> Path:
    """The public quality table of a clone (datasets/public/), or a DataError saying it is not here."""
    from scaling.app.curate import PUBLIC_DIR
    from scaling.errors import DataError

    path = Path(PUBLIC_DIR) / SHIPPED_QUALITY
    if not path.is_file():
        raise DataError(f"`{metric}` is not a column of the runs table, and the shipped quality table "
                        f"{path} is not here (it comes with a clone of the repository, not with the package): "
                        "pass --quality-table CSV")
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
