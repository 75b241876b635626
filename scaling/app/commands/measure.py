"""`scaling measure`: per-phase energy of one setting, measured on this machine, appended to a runs table."""

from __future__ import annotations

from scaling.app.commands._common import add_setting_args, table


def add_protocol_args(p) -> None:
    g = p.add_argument_group("protocol")
    g.add_argument("--repeats", type=int, default=3, help="measured calls per setting (default 3)")
    g.add_argument("--warmup", type=int, default=1, help="warm-up calls before them, not recorded (default 1)")
    g.add_argument("--idle-s", type=float, default=5.0,
                   help="idle-baseline window before the warm-up, in seconds (default 5; 0 skips it)")
    g.add_argument("--subtract-idle", action="store_true",
                   help="subtract the idle power x duration from the GPU energy (rows flagged idle_subtracted)")
    g.add_argument("--seed", type=int, default=0, help="repeat r uses seed SEED+r and prompt r (default 0)")
    g.add_argument("--no-repeat-short", dest="repeat_short", action="store_false",
                   help="do not replay phases shorter than the meter resolution (they are flagged low_confidence)")
    g.add_argument("--country", default="USA",
                   help="ISO code for CodeCarbon's offline CPU/RAM model and carbon intensity (default USA; "
                        "'none' skips CodeCarbon)")
    g.add_argument("--cpu-power-w", type=float, help="CPU power to assume where nothing measures it")


def add_machine_args(p) -> None:
    g = p.add_argument_group("machine")
    g.add_argument("--device", default="auto", help="auto (a GPU when one is visible) | cuda | cuda:N | cpu")
    g.add_argument("--meter", default="auto",
                   help="auto (NVML + RAPL/CodeCarbon; estimates where nothing measures) | nvml | estimate | "
                        "replay:TRACE.csv (tests)")
    g.add_argument("--random-weights", action="store_true",
                   help="build the full-size pipeline from the registry configs with random weights (the default "
                        "without --weights): energy and time depend on shapes, not weight values")
    g.add_argument("--weights", metavar="DIR", help="load a local diffusers folder with from_pretrained instead")
    g.add_argument("--out", default="runs.parquet", help="runs table to append to (default runs.parquet)")
    g.add_argument("--resume", action="store_true", help="skip repeats already in the table")


def add_parser(sub):
    p = sub.add_parser(
        "measure", help="measure per-phase energy of one setting on this machine (GPU, or CPU with estimates)",
        description="Build the pipeline (random weights by default, no download), measure an idle baseline, run "
                    "warm-up calls, then measure repeated calls phase by phase (text encoder, denoiser, decoder, "
                    "vocoder) and append one row per phase and repeat, plus a total row, to a runs table. Without a "
                    "GPU it runs on the CPU and marks every figure no meter read as an estimate. Also: "
                    "--model tiny:sd|tiny:wan|tiny:audioldm, tiny random pipelines for smoke tests.")
    add_setting_args(p, with_gpu=False)
    add_machine_args(p)
    add_protocol_args(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p


def protocol_from_args(args):
    from profilers.energy.runner import Protocol

    country = None if str(args.country).lower() in ("none", "") else args.country
    return Protocol(repeats=args.repeats, warmup=args.warmup, idle_s=args.idle_s, subtract_idle=args.subtract_idle,
                    seed=args.seed, repeat_short=args.repeat_short, country=country,
                    cpu_power_w=args.cpu_power_w).check()


def run(args) -> int:
    import sys

    from profilers.energy.pipelines import resolve_spec
    from profilers.energy.runner import Runner, SettingRequest, failures_path
    from scaling.errors import InvalidSettingError, UnknownModelError

    from scaling.extras import require

    require("torch", "diffusers", "transformers", what="scaling measure")
    if args.weights and args.random_weights:
        raise InvalidSettingError("give --random-weights or --weights DIR, not both")
    model = args.config or args.model or args.weights  # a weights folder describes its own model
    if not model:
        raise UnknownModelError("no model given: pass --model NAME (see `scaling models`), --config DIR or --weights DIR")
    protocol = protocol_from_args(args)
    request = SettingRequest(model=model, res=args.res, frames=args.frames, seconds=args.seconds, steps=args.steps,
                             guidance=args.guidance, cfg=args.cfg, batch_size=args.batch,
                             outputs_per_prompt=args.outputs_per_prompt, precision=args.precision)
    # check before any work: a bad setting is exit 2, not a failure record
    request.setting(resolve_spec(model), args.precision or "bf16", None)
    echo = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    with Runner(args.out, device=args.device, meter=args.meter, weights=args.weights, protocol=protocol,
                resume=args.resume, echo=echo) as runner:
        outcome = runner.run(request)
    if outcome.status == "skipped":
        print(f"{outcome.label}: {outcome.message}")
        return 0
    if outcome.status in ("failed", "partial"):
        print(f"scaling measure: {outcome.label}: {outcome.message} (recorded in {failures_path(args.out)})",
              file=sys.stderr)
        return 1
    print(render(args.out, outcome))
    return 0


def render(out, outcome) -> str:
    """Mean per phase over the repeats just measured."""
    from scaling.runs import read_runs

    df = read_runs(out)
    df = df[df["run_id"].str.startswith(outcome.key + "/").fillna(False)]
    session = df["run_id"].str.rsplit("-r", n=1).str[0]
    df = df[session == session.iloc[-1]]
    order = ["text_encoder", "denoiser", "upsampler", "decoder", "vocoder", "total"]
    rows = []
    for phase in sorted(df["phase"].unique(), key=lambda p: order.index(p) if p in order else 99):
        g = df[df["phase"] == phase]
        def mean(col):
            v = g[col].dropna()
            return f"{v.mean():.4g}" if len(v) else "-"
        flags = sorted({f for t in g["flags"].fillna("") for f in t.split(";") if f and f != "cpu_only"})
        rows.append([phase, len(g), mean("duration_s"), mean("energy_gpu_j"), mean("energy_cpu_j"),
                     mean("energy_ram_j"), "estimate" if g["estimated"].any() else "measured", ",".join(flags) or "-"])
    meter = df["meter"].iloc[-1] if len(df) else "-"
    cpu = df["flags"].fillna("").str.contains("cpu_only").any()
    lines = [f"model      {df['model'].iloc[-1]}", f"setting    {outcome.label}",
             f"meter      {meter}" + ("  (CPU run: no GPU energy; figures no meter read are estimates)" if cpu else ""),
             f"table      {out} ({outcome.rows} rows appended, run ids {outcome.key}/...)", "",
             table(rows, ["phase", "n", "time s", "GPU J", "CPU J", "RAM J", "energy", "flags"])]
    return "\n".join(lines)
