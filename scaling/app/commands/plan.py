"""`scaling plan WORKLOAD.yaml`: price a mix of jobs on candidate GPUs and regions."""

from __future__ import annotations

from scaling.app.commands._common import dump_json, table


def add_parser(sub):
    p = sub.add_parser("plan", help="price a workload (jobs x counts) across GPUs and regions",
                       description="Totals of energy, GPU-hours and CO2e for a mix of jobs on candidate GPUs and "
                                   "regions, ranked, with the energy vs time Pareto set. See scaling/app/planning.py for "
                                   "the workload format.")
    p.add_argument("workload", metavar="WORKLOAD.yaml")
    p.add_argument("--law", metavar="LAW.json", help="a law from `scaling fit --out` (default: the shipped law)")
    p.add_argument("--json", action="store_true")
    return p


def run(args) -> int:
    from scaling.app.planning import plan

    res = plan(args.workload, law=args.law)
    if args.json:
        print(dump_json({"candidates": res.candidates, "jobs": res.jobs, "pareto": res.pareto}))
        return 0
    rows = []
    for rank, c in enumerate(res.candidates, 1):
        label = f"{c['gpu']}@{c['region']}"
        rows.append([rank, c["gpu"], c["region"], f"{c['kwh']:,.1f}", f"{c['kwh_lo']:,.1f} - {c['kwh_hi']:,.1f}",
                     f"{c['gpu_hours']:,.1f}", f"{c['co2e_kg']:,.1f}",
                     "yes" if label in res.pareto else "", "" if c["gpu_measured"] else "never measured"])
    print(table(rows, ["#", "gpu", "region", "kWh", "90% interval", "GPU-hours", "kg CO2e", "pareto", "gpu data"]))
    print("\nPareto: not beaten on both energy and GPU-hours. All figures are estimates from a fitted law.")
    return 0
