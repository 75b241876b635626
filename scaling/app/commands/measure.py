"""`scaling measure`: per-phase energy of one setting, measured on this machine, appended to a runs table."""

from __future__ import annotations

from scaling.app.commands import _common as T
from scaling.app.commands._common import add_setting_args
from scaling.app.commands._out import probe_output, render_table


def add_protocol_args(p) -> None:
    g = p.add_argument_group("protocol")
    g.add_argument("--repeats", type=T.repeats, default=3, help="measured calls per setting (default 3)")
    g.add_argument("--warmup", type=T.warmup, default=1, help="warm-up calls before them, not recorded (default 1)")
    g.add_argument("--idle-s", type=T.idle_s, default=5.0,
                   help="idle-baseline window before the warm-up, in seconds (default 5; 0 skips it)")
    g.add_argument("--subtract-idle", action="store_true",
                   help="subtract the idle power x duration from the GPU energy (rows flagged idle_subtracted)")
    g.add_argument("--seed", type=T.seed, default=0, help="repeat r uses seed SEED+r and prompt r (default 0)")
    g.add_argument("--no-repeat-short", dest="repeat_short", action="store_false",
                   help="do not replay phases shorter than the meter resolution (they are flagged low_confidence)")
    g.add_argument("--country", default="USA",
                   help="ISO code for CodeCarbon's offline CPU/RAM model and carbon intensity (default USA; "
                        "'none' skips CodeCarbon)")
    g.add_argument("--cpu-power-w", type=T.power_w, help="CPU power to assume where nothing measures it")


def add_machine_args(p) -> None:
    g = p.add_argument_group("machine")
    g.add_argument("--device", default="auto", type=T.nonempty("device"), help="auto (a GPU when one is visible) | cuda | cuda:N | cpu")
    g.add_argument("--meter", default="auto", type=T.nonempty("meter"),
                   help="auto (NVML + RAPL/CodeCarbon; estimates where nothing measures) | nvml | estimate | "
                        "replay:TRACE.csv (tests)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--random-weights", action="store_true",
                   help="build the full-size pipeline from the registry configs with random weights (the default "
                        "without --weights): energy and time depend on shapes, not weight values")
    w.add_argument("--weights", metavar="DIR", type=T.nonempty("weights"),
                   help="load a local diffusers folder instead (safetensors only, local files only, no remote code)")
    g.add_argument("--allow-pickle", action="store_true",
                   help="with --weights: also load pickled .bin/.pt weights (loading them can run code)")
    g.add_argument("--out", default="runs.parquet", type=T.nonempty("out"),
                   help="runs table to append to: .parquet or .csv, in an existing folder (default runs.parquet)")
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


def check_machine_args(args) -> str | None:
    """Refuse a bad meter (its name, a replay trace, nvml for CPU work), country, device or weights folder
    in one line, before any pipeline is built; return the device the work runs on (None: none given)."""
    from profilers.energy.devices import resolve_device
    from profilers.energy.meters.factory import check_meter
    from scaling.errors import InvalidSettingError

    meter = getattr(args, "meter", None)
    if meter is not None:  # the name, a replay trace's content, nvml with --device cpu: before torch is imported
        check_meter(meter, device=getattr(args, "device", None))
    country = getattr(args, "country", None)
    if country is not None and str(country).lower() not in ("none", ""):
        _check_country(str(country))
    if getattr(args, "weights", None):
        from profilers.energy.weights import check_weights_dir

        check_weights_dir(args.weights, allow_pickle=getattr(args, "allow_pickle", False))
    elif getattr(args, "allow_pickle", False):
        raise InvalidSettingError("--allow-pickle applies to --weights DIR only")
    device = getattr(args, "device", None)
    if device is not None:  # last: it imports torch (a name that is no device at all is refused before)
        import re

        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device.strip().lower()):
            raise InvalidSettingError(f"`device` {device!r} is unknown: use auto, cuda, cuda:N or cpu")
        device = resolve_device(device)  # `cuda` without a GPU, `cuda:7` with one: NoGPUError now, not a failure record
    if meter == "nvml" and device is not None:  # nvml where `auto` is the CPU (no GPU here)
        check_meter(meter, device=device)
    return device


def _check_country(country: str) -> None:
    """The CodeCarbon country code (:func:`profilers.energy.protocol.check_country`: CodeCarbon's bundled
    table, read without importing CodeCarbon); no CodeCarbon installed: nothing to check (the meter notes it)."""
    from profilers.energy.protocol import check_country

    check_country(country, name="--country", hint=" ('none' skips CodeCarbon)")


def _pickle_kwargs(args) -> dict:
    """``allow_pickle`` for the runner, where it takes it."""
    import inspect

    from profilers.energy.runner import Runner

    if "allow_pickle" in inspect.signature(Runner.__init__).parameters:
        return {"allow_pickle": getattr(args, "allow_pickle", False)}
    return {}


def run(args) -> int:
    import sys

    from scaling.errors import InvalidSettingError, UnknownModelError
    from scaling.extras import require
    from scaling.runs import check_runs_output

    require("torch", "diffusers", "transformers", what="scaling measure")
    model = args.config or args.model or args.weights  # a weights folder describes its own model
    if not model:
        raise UnknownModelError("no model given: pass --model NAME (see `scaling models`), --config DIR or --weights DIR")
    if getattr(args, "prompt_tokens", None) is not None:
        raise InvalidSettingError(
            f"--prompt-tokens {args.prompt_tokens}: a measurement runs the shipped prompts, whose token count the "
            "pipeline's tokenizer sets (rule: --prompt-tokens is for predict, compare and profile)")
    # before building anything: a .parquet/.csv name in an existing folder, and an existing table one to append to
    check_runs_output(args.out, inputs=[args.weights, args.config], what="--out")
    probe_output(args.out)
    check_machine_args(args)  # the meter name, the country, the weights folder and the device: before building
    from profilers.energy.pipelines import resolve_spec
    from profilers.energy.runner import Runner, SettingRequest, failures_path

    protocol = protocol_from_args(args)
    request = SettingRequest(model=model, res=args.res, frames=args.frames, seconds=args.seconds, steps=args.steps,
                             guidance=args.guidance, cfg=args.cfg, batch_size=args.batch,
                             outputs_per_prompt=args.outputs_per_prompt, precision=args.precision)
    # check before any work: a bad setting is exit 2, not a failure record
    request.setting(resolve_spec(model), args.precision or "bf16", None)
    echo = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    with Runner(args.out, device=args.device, meter=args.meter, weights=args.weights, protocol=protocol,
                resume=args.resume, echo=echo, **_pickle_kwargs(args)) as runner:
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
             render_table(rows, ["phase", "n", "time s", "GPU J", "CPU J", "RAM J", "energy", "flags"])]
    return "\n".join(lines)
