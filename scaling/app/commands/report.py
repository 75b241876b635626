"""`scaling report`: one self-contained HTML page of plots (breakdown, scaling curves, GPUs)."""

from __future__ import annotations

from scaling.app.commands import _common as T
from scaling.app.commands.predict import add_carbon_args


def _csv(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [x for v in values for x in v]  # each -m a list of names (T.names refuses an empty one)


def add_parser(sub):
    p = sub.add_parser(
        "report", help="write an HTML report: energy breakdown, scaling curves, GPU comparison (plotly)",
        description="Write one self-contained HTML page (plotly.js inlined, opens offline): the predicted energy "
                    "per component of several models, scaling curves with 90% intervals (energy against "
                    "resolution, frames, steps, audio length) and a comparison across GPUs, never-measured ones "
                    "marked. Every figure is an estimate from a fitted law.")
    p.add_argument("--model", "-m", action="append", metavar="M", type=T.names("model"),
                   help="a model to report (repeat or comma-separate; default: a video, image and audio set)")
    p.add_argument("--gpu", type=T.nonempty("gpu"), help="GPU of the breakdown and the curves (default: the registry's default GPU)")
    p.add_argument("--gpus", metavar="LIST", type=T.names("gpus"),
                   help="comma-separated GPUs to compare (default: every GPU of the registry)")
    p.add_argument("--precision", type=T.nonempty("precision"), help="fp32 | tf32 | bf16 | fp16 | fp8 | int8 | nf4 | fp4 (default bf16)")
    add_carbon_args(p)
    p.add_argument("--law", metavar="LAW.json", type=T.nonempty("law"), help="a law from `scaling fit --out` (default: the shipped law)")
    p.add_argument("--title", default="Energy of diffusion-model inference: predicted", type=T.nonempty("title"),
                   help="page title")
    p.add_argument("--out", "-o", default="report.html", type=T.nonempty("out"),
                   help="output HTML file (.html or .htm, in an existing folder; default: report.html)")
    return p


def run(args) -> int:
    from scaling.app.commands._out import probe_output
    from scaling.app.report import check_report_output, write_report

    # before the work: a .html/.htm name in an existing folder, not a folder, a device, nor the law file
    check_report_output(args.out, law=args.law, what="--out")
    probe_output(args.out)

    report = write_report(args.out, models=_csv(args.model), gpu=args.gpu, gpus=args.gpus,
                          precision=args.precision, law=args.law, region=args.region, intensity=args.intensity,
                          pue=args.pue, title=args.title)
    print(f"wrote {args.out}: {len(report.figures)} figures, law {report.law} (energy and CO2e per output, time per "
          "call)")
    for s in report.skipped:
        print(f"note: not shown: {s}")
    return 0
