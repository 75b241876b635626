"""`scaling gpus`: the hardware registry."""

from __future__ import annotations

from scaling.app.commands._common import dump_json
from scaling.app.commands._out import add_wide_arg, render_table


def add_parser(sub):
    p = sub.add_parser("gpus", help="list the GPUs in the hardware registry",
                       description="List the hardware registry: dense peak FLOP/s per precision, memory, bandwidth, TDP.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_wide_arg(p)
    return p


def run(args) -> int:
    from profilers.flops.memory import GiB
    from scaling.hardware import list_gpus
    from scaling.precision import STORED_PRECISIONS

    gpus = list_gpus()
    if args.json:
        print(dump_json([{"key": g.key, "name": g.name, "architecture": g.architecture,
                          "peak_flop_per_s": dict(g.peak_flop_per_s), "memory_byte": g.memory_byte,
                          "memory_bandwidth_byte_per_s": g.memory_bandwidth_byte_per_s, "tdp_w": g.tdp_w,
                          "sources": dict(g.sources)} for g in gpus]))
        return 0
    wide = getattr(args, "wide", False)
    rows = []
    for g in gpus:
        pk = g.peak_flop_per_s
        t = lambda k: f"{pk[k] / 1e12:.0f}" if k in pk else "-"  # noqa: E731
        rows.append([g.key] + ([g.name, g.architecture] if wide else [])
                    + [t(p) for p in STORED_PRECISIONS]
                    + [f"{g.memory_byte / GiB:.0f}", f"{g.memory_bandwidth_byte_per_s / 1e9:.0f}", f"{g.tdp_w:.0f}"])
    print(render_table(rows, ["key"] + (["name", "arch"] if wide else [])
                       + list(STORED_PRECISIONS) + ["memory GiB", "bandwidth GB/s", "TDP W"],
                       wide=wide))
    print("\nDense peaks (no sparsity), TFLOP/s (int8: TOPS). Names and architectures: `--wide`; sources: `--json`.")
    return 0
