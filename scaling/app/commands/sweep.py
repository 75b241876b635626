"""`scaling sweep`: measure a grid of models and settings into one runs table."""

from __future__ import annotations

import argparse

from scaling.app.commands import _common as T


def add_parser(sub):
    p = sub.add_parser(
        "sweep", help="measure a grid of models and settings (locally, or as a SLURM job array)",
        description="Measure every setting of a sweep file (YAML: `grid` entries expanded as products, `defaults`, "
                    "`protocol`, `device`, `meter`, `out`; see profilers/energy/sweep.py) into one runs table. "
                    "Every setting is checked before anything runs; failures (out of memory, no GPU, ...) are "
                    "recorded next to the table and the sweep goes on.")
    p.add_argument("file", metavar="SWEEP.yaml", help="the sweep file")
    p.add_argument("--out", type=T.nonempty("out"),
                   help="runs table: .parquet or .csv, in an existing folder (default: `out` of the sweep file)")
    p.add_argument("--executor", default="local", choices=("local", "slurm", "submitit-local", "debug"),
                   help="local: this process (default); slurm: a submitit job array, one GPU per task; "
                        "submitit-local / debug: submitit's local executors (testing)")
    p.add_argument("--resume", action="store_true", help="skip settings and repeats already in the table")
    p.add_argument("--device", help="override the sweep file's device")
    p.add_argument("--meter", help="override the sweep file's meter")
    p.add_argument("--dry-run", action="store_true", help="list the settings and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("slurm (with --executor slurm)")
    g.add_argument("--settings-per-job", type=T.settings_per_job, help="settings per array task (default 4)")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--time-min", type=T.minutes, help="time limit per task, minutes (default 240)")
    g.add_argument("--array-parallelism", type=T.array_parallelism, help="tasks running at once (default: all)")
    g.add_argument("--logs", metavar="DIR", help="submitit folder (default: <table>.submitit next to the table)")
    return p


SUBMITIT_ONLY = (("--settings-per-job", "settings_per_job"), ("--partition", "partition"), ("--time-min", "time_min"),
                 ("--array-parallelism", "array_parallelism"), ("--logs", "logs"))
"""The options of the submitit executors (the group ``slurm`` of the parser), refused with ``--executor local``."""


def run(args) -> int:
    from dataclasses import replace

    from scaling.errors import InvalidSettingError

    from profilers.energy.sweep import load_sweep, run_sweep

    if args.executor == "local":  # the executor's options do nothing here: refused, not ignored
        given = [flag for flag, dest in SUBMITIT_ONLY if getattr(args, dest, None) is not None]
        if given:
            raise InvalidSettingError(f"{given[0]} applies to --executor slurm (or submitit-local / debug), not to "
                                      "the local executor (rule: leave it out, or choose --executor slurm)")
    if args.meter is not None:  # the overrides are checked before the file is read, and before any work
        from profilers.energy.meters.factory import check_meter_name

        check_meter_name(args.meter)
    if args.out is not None:  # a .parquet/.csv name in an existing folder; an existing table one to append to
        from scaling.app.commands._out import probe_output
        from scaling.runs import check_runs_output

        check_runs_output(args.out, inputs=[args.file], what="--out")
        probe_output(args.out)
    sweep = load_sweep(args.file)
    if args.device:
        sweep = replace(sweep, device=args.device)
    if args.meter:
        sweep = replace(sweep, meter=args.meter)
    if args.dry_run:
        for i, s in enumerate(sweep.settings, 1):
            print(f"{i:4d}  " + "  ".join(f"{k}={v}" for k, v in s.to_dict().items()))
        print(f"{len(sweep.settings)} settings; device {sweep.device}, meter {sweep.meter}, "
              f"{sweep.protocol.repeats} repeats + {sweep.protocol.warmup} warm-up each")
        return 0
    from scaling.app.commands._out import probe_output
    from scaling.extras import require
    from scaling.runs import check_runs_output

    if args.out is None and sweep.out is not None:  # the file's `out`, before any setting runs
        check_runs_output(sweep.out, inputs=[args.file], what=f"{args.file}: `out`")
        probe_output(sweep.out)
    require("torch", "diffusers", "transformers", what="scaling sweep")
    if args.executor != "local":
        require("submitit", what=f"--executor {args.executor}")
    else:  # this process measures: the device must be here (a SLURM task resolves it on its node)
        from scaling.app.commands.measure import check_machine_args

        # `tpu`, or `cuda` with no GPU, and nvml where `auto` is the CPU: refused now, before any build
        check_machine_args(argparse.Namespace(device=sweep.device, meter=sweep.meter))
    slurm = {"timeout_min": 240 if args.time_min is None else args.time_min}
    if args.partition:
        slurm["slurm_partition"] = args.partition
    if args.array_parallelism:
        slurm["slurm_array_parallelism"] = args.array_parallelism
    result = run_sweep(sweep, out=args.out, executor=args.executor, resume=args.resume,
                       progress=not args.no_progress,
                       settings_per_job=4 if args.settings_per_job is None else args.settings_per_job, slurm=slurm,
                       logs=args.logs)
    print(result.summary())
    failed = [o for o in result.outcomes if o.status in ("failed", "partial")]
    for o in failed:
        print(f"  failed: {o.label}: {o.message}")
    return 1 if failed else 0
