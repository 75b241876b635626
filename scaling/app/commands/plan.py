"""`scaling plan WORKLOAD.yaml`: price a mix of jobs on candidate GPUs, precisions, step counts and regions.

Options where a job does not fit in the GPU's memory are listed after the ranking, unranked."""

from __future__ import annotations

from scaling.app.commands._common import dump_json, table


def _csv(text: str | None, cast=str):
    return [cast(x.strip()) for x in text.split(",") if x.strip()] if text else None


def add_parser(sub):
    p = sub.add_parser("plan", help="price a workload (jobs x counts) across GPUs and regions",
                       description="Totals of energy, GPU-hours and CO2e for a mix of jobs on candidate GPUs and "
                                   "regions, ranked, with the energy vs time Pareto set. Options where a job does not "
                                   "fit in the GPU's memory are listed after the ranking. See scaling/app/planning.py "
                                   "for the workload format.")
    p.add_argument("workload", metavar="WORKLOAD.yaml")
    p.add_argument("--gpu", help="comma-separated GPUs (default: the file's `gpus`)")
    p.add_argument("--regions", help="comma-separated ISO region codes (default: the file's `regions`)")
    p.add_argument("--precisions",
                   help="comma-separated precisions to compare, each applied to every job (e.g. bf16,fp8)")
    p.add_argument("--steps-scale", metavar="S,...",
                   help="comma-separated factors on each job's steps to compare (e.g. 1,0.5; default 1)")
    p.add_argument("--law", metavar="LAW.json", help="a law from `scaling fit --out` (default: the shipped law)")
    p.add_argument("--json", action="store_true")
    return p


def run(args) -> int:
    from scaling.app.planning import plan

    res = plan(args.workload, law=args.law, gpus=_csv(args.gpu), regions=_csv(args.regions),
               precisions=_csv(args.precisions), step_scales=_csv(args.steps_scale, float))
    if args.json:
        print(dump_json({"candidates": res.candidates, "jobs": res.jobs, "pareto": res.pareto}))
        return 0
    rows = []
    for c in res.fitting:
        rows.append([c["rank"], c["option"], f"{c['kwh']:,.1f}", f"{c['kwh_lo']:,.1f} - {c['kwh_hi']:,.1f}",
                     f"{c['gpu_hours']:,.1f}", f"{c['co2e_kg']:,.1f}",
                     f"{c['co2e_kg_lo']:,.1f} - {c['co2e_kg_hi']:,.1f}",
                     "yes" if c["option"] in res.pareto else "", "" if c["gpu_measured"] else "never measured"])
    pct = f"{res.interval * 100:.0f}%"
    if rows:
        print(table(rows, ["#", "option", "kWh", f"{pct} interval", "GPU-hours", "kg CO2e", f"{pct} interval",
                           "pareto", "gpu data"]))
    else:
        print("no option fits: every candidate GPU is too small for at least one job")
    if res.not_fitting:
        print("\nnot ranked (a job does not fit in the GPU's memory, even with model CPU offload):")
        out = []
        for c in res.not_fitting:
            out.append([c["option"], ", ".join(c["jobs_not_fitting"]),
                        f"does not fit (needs {c['memory_need_gib']:.1f} GiB, has {c['gpu_memory_gib']:.0f} GiB)"])
        print(table(out, ["option", "jobs", "memory"]))
    print(f"\nintervals: the sum of the jobs' {pct} bounds. Pareto: not beaten on both energy and GPU-hours by an "
          "option that fits. All figures are estimates from a fitted law.")
    return 0
