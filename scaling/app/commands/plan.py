"""`scaling plan WORKLOAD.yaml`: price a mix of jobs on candidate GPUs, precisions, step counts and regions.

Options where a job does not fit in the GPU's memory are listed after the ranking, unranked."""

from __future__ import annotations

from scaling.app.commands import _common as T
from scaling.app.commands._common import dump_json
from scaling.app.commands._out import add_wide_arg, fmt_g, fmt_hours, fmt_j, fmt_kwh, fmt_range, render_table


def add_parser(sub):
    p = sub.add_parser("plan", help="price a workload (jobs x counts) across GPUs and regions",
                       description="Totals of energy, GPU-hours and CO2e for a mix of jobs on candidate GPUs and "
                                   "regions, ranked, with the Pareto set, and the jobs of the best option one by "
                                   "one. A job's `count` counts outputs (images, videos, clips). Options where a "
                                   "job does not fit in the GPU's memory are listed after the ranking. See "
                                   "scaling/app/planning.py for the workload format.")
    p.add_argument("workload", metavar="WORKLOAD.yaml", type=T.nonempty("workload"))
    p.add_argument("--gpu", type=T.names("gpu"), help="comma-separated GPUs (default: the file's `gpus`)")
    p.add_argument("--regions", type=T.names("regions"),
                   help="comma-separated ISO region codes (default: the file's `regions`)")
    p.add_argument("--precisions", type=T.names("precisions"),
                   help="comma-separated precisions to compare, each applied to every job (e.g. bf16,fp8)")
    p.add_argument("--steps-scale", metavar="S,...", type=T.csv_of(T.steps_scale, "steps_scale"),
                   help="comma-separated factors on each job's steps to compare (e.g. 1,0.5; default 1)")
    p.add_argument("--law", metavar="LAW.json", type=T.nonempty("law"), help="a law from `scaling fit --out` (default: the shipped law)")
    p.add_argument("--json", action="store_true")
    add_wide_arg(p)
    return p


def run(args) -> int:
    from scaling.app import planning
    from scaling.app.planning import plan

    from scaling.errors import DoesNotFitError

    res = plan(args.workload, law=args.law, gpus=args.gpu, regions=args.regions,
               precisions=args.precisions, step_scales=args.steps_scale)
    nothing = res.nothing_fits()
    if nothing:  # as predict refuses it; when one option fits, the others are listed unranked
        raise DoesNotFitError(nothing)
    if args.json:
        print(dump_json({"candidates": res.candidates, "jobs": res.jobs, "pareto": res.pareto,
                         "notes": list(getattr(res, "notes", []))}))
        return 0
    wide = getattr(args, "wide", False)
    pct = f"{res.interval * 100:.0f}%"
    rows = []
    for c in res.fitting:
        row = [c["rank"], c["option"], fmt_kwh(c["kwh"]), fmt_range(c["kwh_lo"], c["kwh_hi"], fmt_kwh),
               fmt_hours(c["gpu_hours"]), fmt_g(c["co2e_kg"] * 1000)]
        if wide:
            row.append(fmt_range(c["co2e_kg_lo"] * 1000, c["co2e_kg_hi"] * 1000, fmt_g))
        row += ["yes" if c["option"] in res.pareto else "", "measured" if c["gpu_measured"] else "never measured"]
        rows.append(row)
    header = ["#", "option", "energy", f"{pct} interval", "GPU-hours", "CO2e"]
    header += ([f"CO2e {pct} interval"] if wide else []) + ["pareto", "GPU data"]
    if rows:
        print("the whole workload, per option (energy at the facility: GPU energy x PUE):")
        print(render_table(rows, header, wide=wide))
    else:
        print("no option fits resident: each has a job that needs model CPU offload or does not fit (listed below)")
    if res.not_fitting:
        print("\nnot ranked (a job does not fit resident in the GPU's memory; the law does not price CPU offload):")
        out = []
        for c in res.not_fitting:
            offload = set(c["jobs_needing_offload"])
            if offload and offload == set(c["jobs_not_fitting"]):
                why = (f"needs CPU offload (resident {c['memory_resident_gib']:.1f} GiB, has "
                       f"{c['gpu_memory_gib']:.0f} GiB)")
            else:
                why = f"does not fit (needs {c['memory_need_gib']:.1f} GiB, has {c['gpu_memory_gib']:.0f} GiB)"
            out.append([c["option"], ", ".join(c["jobs_not_fitting"]), why])
        print(render_table(out, ["option", "jobs", "memory"], wide=wide))
    shown = [c["option"] for c in (res.fitting if wide else res.fitting[:1])]
    for option in shown:
        jobs = [j for j in res.jobs if j.get("option") == option]
        if not jobs:
            continue
        print(f"\njobs on {option}" + (" (the first-ranked option; --wide: every option)" if not wide else "") + ":")
        jrows = []
        multi = any(j.get("plan") or j.get("max_latency_s") for j in jobs)
        total_kwh = sum(j["kwh"] for j in jobs) or 1.0
        for k, j in enumerate(jobs, 1):
            outputs = j.get("outputs", j.get("count"))
            unnamed = j["job"] == f"{k}: {j['model']}"  # the default name repeats the model id the next column has
            jrows.append([str(k) if unnamed else j["job"], j.get("model_key") or j["model"],
                          f"{outputs:,}" if outputs is not None else "-",
                          fmt_j(j["energy_per_output_j"]), fmt_kwh(j["kwh"]), fmt_hours(j["gpu_hours"]),
                          fmt_g(j["co2e_kg"] * 1000), f"{j['kwh'] / total_kwh:.0%}"])
        print(render_table(jrows, ["job", "model", "outputs", "energy/output", "energy", "GPU-hours", "CO2e", "share"],
                           wide=wide, no_wrap=(0, 1)))
        for j in jobs if multi else []:
            print(f"plan of job {j['job']}: {_gpus_and_plan(j)}")
    co2e = "CO2e" in (planning.pareto_labels.__doc__ or "")
    print(f"\nintervals: the sum of the jobs' {pct} bounds. Pareto: not beaten on energy"
          f"{', GPU-hours and CO2e' if co2e else ' and GPU-hours'} at once by an option that fits.\n"
          "All figures are estimates from a fitted law.")
    for note in getattr(res, "notes", []):  # as predict prints its notes
        print(f"note: {note}")
    return 0


def _gpus_and_plan(job: dict) -> str:
    """``8 x ulysses=4,ring=1,cfg=2 (83.8 s <= 120 s)``: the GPU count and plan chosen for a job."""
    from scaling.app.commands._out import fmt_s

    limit = job.get("max_latency_s")
    within = "" if limit is None else (f" <= {fmt_s(limit)}" if job.get("meets_latency") else
                                       f" > {fmt_s(limit)}: no plan meets the limit")
    return f"{job['gpu_count']} x {job['plan'] or 'one GPU'} ({fmt_s(job['time_s'])}{within})"
