"""`scaling compare`: one model across GPUs, precisions or step counts, ranked by energy; options that do not
fit in the GPU's memory are listed after the ranking, unranked."""

from __future__ import annotations

from scaling.app.commands import _common as T
from scaling.app.commands._common import add_parallel_args, add_setting_args, dump_json, model_spec_from_args
from scaling.app.commands._out import add_wide_arg, fmt_g, fmt_j, fmt_range, fmt_s, render_table
from scaling.app.commands.predict import add_carbon_args, describe_call, to_json


MEMORY_LABEL = {"all resident": "resident", "with model CPU offload": "offload"}


def add_parser(sub):
    p = sub.add_parser("compare", help="rank GPUs, precisions or step counts by predicted energy",
                       description="Predict one model's setting across GPUs (measured or not), precisions and step "
                                   "counts; a table ranked by energy, with time and CO2e. Options that do not "
                                   "fit in the GPU's memory are listed after it, unranked.")
    add_setting_args(p, with_gpu=False)
    p.add_argument("--gpu", type=T.names("gpu"), help="comma-separated GPUs (default: a100,a6000,l40s,h100,h200)")
    p.add_argument("--precisions", type=T.names("precisions"),
                   help="comma-separated precisions to compare (e.g. bf16,fp8)")
    p.add_argument("--steps-list", type=T.csv_of(T.steps, "steps_list"),
                   help="comma-separated step counts to compare (e.g. 20,30,50)")
    add_parallel_args(p, several_counts=True)
    add_carbon_args(p)
    p.add_argument("--law", metavar="LAW.json", type=T.nonempty("law"), help="a law from `scaling fit --out` (default: the shipped law)")
    p.add_argument("--json", action="store_true", help="machine-readable output (per call and per output fields)")
    add_wide_arg(p)
    return p


def run(args) -> int:
    from profilers.flops.memory import GiB
    from scaling.app.frames import memory_need_gib, memory_verdict
    from scaling.app.planning import compare
    from scaling.errors import DoesNotFitError

    check_conflicts(args)
    spec = model_spec_from_args(args)
    rows = compare(spec, gpus=args.gpu, precisions=args.precisions,
                   step_counts=args.steps_list, law=args.law, region=args.region,
                   intensity=args.intensity, pue=args.pue, gpu_counts=getattr(args, "gpus", None),
                   **T.setting_kwargs(args))
    nothing = rows.nothing_fits()
    if nothing:  # as predict refuses it; when one option fits, the others are listed unranked
        raise DoesNotFitError(nothing)
    if args.json:
        print(dump_json([{"label": r.label, "rank": r.rank, "fits_memory": r.fits_memory,
                          "memory_fit": memory_verdict(r.memory), "memory_need_gib": memory_need_gib(r.memory),
                          "gpu_memory_gib": r.memory.gpu_memory_byte / GiB if r.memory and r.memory.gpu_memory_byte
                          else None, **to_json(r.estimate, 1)} for r in rows]))
        return 0
    wide = getattr(args, "wide", False)
    first = rows[0].estimate
    n = first.setting.n_outputs
    print(f"model    {first.model_id}")
    tokens_set = args.prompt_tokens is not None
    print(f"setting  {describe_call(first.setting, tokens_set) if not (args.steps_list or args.precisions) else _fixed(first.setting, tokens_set)}")
    print(f"law      {first.law}\n")
    best = rows.best
    pct = f"{first.interval * 100:.0f}%"
    out = []
    for r in rows.fitting:
        e = r.estimate
        row = [r.rank, r.label] + ([e.gpu_name] if wide else [])
        row += [fmt_j(e.energy_j / n), fmt_range(e.energy_lo_j / n, e.energy_hi_j / n),
                f"{r.energy_per_output_j / best.energy_per_output_j:.2f}x"]
        if wide:
            row += ([fmt_j(e.energy_j)] if n > 1 else []) + [fmt_g(e.co2e_g / n)]
        row += [fmt_s(e.time_s)] + ([f"{e.average_power_w:,.0f} W"] if args.gpus else [])
        row += [MEMORY_LABEL.get(memory_verdict(r.memory), "unknown"),
                "measured" if e.gpu_measured else "never measured"]
        out.append(row)
    header = ["#", "option"] + (["gpu"] if wide else []) + ["energy\nper output", f"{pct}\ninterval", "vs\nbest"]
    if wide:
        header += (["energy\nper call"] if n > 1 else []) + ["CO2e\nper output"]
    header += ["time\nper call"] + (["average power\n(all GPUs)"] if args.gpus else []) + ["memory", "GPU data"]
    if out:
        print(render_table(out, header, wide=wide))
    else:
        print("no option fits resident in its GPU's memory (those that fit only with model CPU offload are below)")
    if rows.not_fitting:
        print("\nnot ranked (the pipeline does not fit resident; the law does not price CPU offload's transfers):")
        print(render_table([[r.label] + ([r.estimate.gpu_name] if wide else []) + [_not_fitting(r.memory)]
                            for r in rows.not_fitting], ["option"] + (["gpu"] if wide else []) + ["memory"], wide=wide))
    print(f"\nenergy per output (a call makes {n} output{'s' if n > 1 else ''}); time per call (a request's latency).\n"
          f"CO2e{' per output' if wide else ' (--wide shows it per output)'}: energy x PUE {first.pue:g} x "
          f"{first.intensity_g_per_kwh:g} g/kWh\n      [{first.intensity_source}].\n"
          "memory: weights at the precision + an activation estimate + 1 GiB (profilers/flops/memory.py);\n"
          "offload = fits only with model CPU offload, whose transfers the law does not price.\n"
          + ("x N uUrRcC: N GPUs, Ulysses U x ring R x CFG C (* the default plan of --gpus N); energy counts every GPU.\n"
             if args.gpus else "") +
          "All figures are estimates from a fitted law.")
    return 0


def check_conflicts(args) -> None:
    """A fixed value and a list of the same field: the list would drop the value silently; refused."""
    from scaling.errors import InvalidSettingError

    for fixed, listed, what in (("steps", "steps_list", "step counts"), ("precision", "precisions", "precisions")):
        one, many = getattr(args, fixed, None), getattr(args, listed, None)
        if one is not None and many:
            raise InvalidSettingError(
                f"--{fixed} {one} and --{listed.replace('_', '-')} {','.join(map(str, many))} conflict: --{fixed} "
                f"fixes one, --{listed.replace('_', '-')} compares {what} (rule: give one)")


def _not_fitting(mem) -> str:
    """'does not fit (needs N GiB, has M)' or 'needs CPU offload (...)' for one option not ranked."""
    from profilers.flops.memory import GiB
    from scaling.app.frames import memory_need_gib, memory_verdict

    has = mem.gpu_memory_byte / GiB
    if memory_verdict(mem) == "with model CPU offload":
        return (f"needs CPU offload (resident {(mem.resident_peak_byte + mem.overhead_byte) / GiB:.1f} GiB, has "
                f"{has:.0f} GiB; {memory_need_gib(mem):.1f} GiB with offload)")
    return f"does not fit (needs {memory_need_gib(mem):.1f} GiB, has {has:.0f} GiB)"


def _fixed(s, prompt_tokens_set: bool = False) -> str:
    """The setting without the fields being compared (the prompt tokens where the user set them)."""
    from scaling.app.commands._common import describe_setting

    return (f"{describe_setting(s)}, batch {s.batch_size} ({s.n_outputs} output{'s' if s.n_outputs > 1 else ''} per "
            "call)" + (f", {s.prompt_tokens} prompt tokens" if prompt_tokens_set else ""))
