"""`scaling compare`: one model across GPUs, precisions or step counts, ranked by energy; options that do not
fit in the GPU's memory are listed after the ranking, unranked."""

from __future__ import annotations

from scaling.app.commands._common import add_setting_args, describe_setting, dump_json, model_spec_from_args, table
from scaling.app.commands.predict import add_carbon_args


MEMORY_LABEL = {"all resident": "resident", "with model CPU offload": "offload"}


def _csv(text: str | None, cast=str):
    return [cast(x.strip()) for x in text.split(",") if x.strip()] if text else None


def add_parser(sub):
    p = sub.add_parser("compare", help="rank GPUs, precisions or step counts by predicted energy",
                       description="Predict one model's setting across GPUs (measured or not), precisions and step "
                                   "counts; a table ranked by energy, with time and CO2e. Options that do not "
                                   "fit in the GPU's memory are listed after it, unranked.")
    add_setting_args(p, with_gpu=False)
    p.add_argument("--gpu", help="comma-separated GPUs (default: a100,a6000,l40s,h100,h200)")
    p.add_argument("--precisions", help="comma-separated precisions to compare (e.g. bf16,fp8)")
    p.add_argument("--steps-list", help="comma-separated step counts to compare (e.g. 20,30,50)")
    add_carbon_args(p)
    p.add_argument("--law", metavar="LAW.json", help="a law from `scaling fit --out` (default: the shipped law)")
    p.add_argument("--json", action="store_true")
    return p


def run(args) -> int:
    from profilers.flops.memory import GiB
    from scaling.app.frames import memory_need_gib, memory_verdict
    from scaling.app.planning import compare

    spec = model_spec_from_args(args)
    rows = compare(spec, gpus=_csv(args.gpu), precisions=_csv(args.precisions),
                   step_counts=_csv(args.steps_list, int), law=args.law, region=args.region,
                   intensity=args.intensity, pue=args.pue, res=args.res, frames=args.frames, seconds=args.seconds,
                   guidance=args.guidance, cfg=args.cfg, batch_size=args.batch,
                   outputs_per_prompt=args.outputs_per_prompt, precision=args.precision, steps=args.steps)
    if args.json:
        print(dump_json([{"label": r.label, "rank": r.rank, "fits_memory": r.fits_memory,
                          "memory_fit": memory_verdict(r.memory), "memory_need_gib": memory_need_gib(r.memory),
                          "gpu_memory_gib": r.memory.gpu_memory_byte / GiB if r.memory and r.memory.gpu_memory_byte
                          else None, **r.estimate.to_dict()} for r in rows]))
        return 0
    first = rows[0].estimate
    print(f"model    {first.model_id}")
    print(f"setting  {describe_setting(first.setting)}, batch {first.setting.batch_size}")
    print(f"law      {first.law}\n")
    best = rows.best
    out = []
    for r in rows.fitting:
        e = r.estimate
        out.append([r.rank, r.label, e.gpu_name, f"{e.energy_j:,.0f}", f"{e.energy_lo_j:,.0f} - {e.energy_hi_j:,.0f}",
                    f"{r.energy_per_output_j / best.energy_per_output_j:.2f}x", f"{e.time_s:.3g}", f"{e.co2e_g:.3g}",
                    MEMORY_LABEL.get(memory_verdict(r.memory), "unknown"),
                    "measured" if e.gpu_measured else "never measured"])
    if out:
        print(table(out, ["#", "option", "gpu", "energy J", f"{first.interval * 100:.0f}% interval", "vs best",
                          "time s", "CO2e g", "memory", "gpu data"]))
    else:
        print("no option fits in its GPU's memory")
    if rows.not_fitting:
        print("\nnot ranked (the memory model says the pipeline does not fit, even with model CPU offload):")
        print(table([[r.label, r.estimate.gpu_name,
                      f"does not fit (needs {memory_need_gib(r.memory):.1f} GiB, has "
                      f"{r.memory.gpu_memory_byte / GiB:.0f} GiB)"] for r in rows.not_fitting],
                    ["option", "gpu", "memory"]))
    print(f"\nCO2e at {first.intensity_g_per_kwh:g} g/kWh [{first.intensity_source}], PUE {first.pue:g}.\n"
          "memory: weights at the precision + an activation estimate + 1 GiB (profilers/flops/memory.py); "
          "offload = fits only with model CPU offload, whose transfers the law does not price.\n"
          "All figures are estimates from a fitted law.")
    return 0
