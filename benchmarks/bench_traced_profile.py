"""Wall time and peak memory of the traced profiler (FLOPs and bytes) on a few big pipelines.

    python benchmarks/bench_traced_profile.py [MODEL[@k=v,...] ...] [--cores 2] [--repeats 1]

Each case runs in a fresh interpreter pinned to ``--cores`` CPUs (``os.sched_setaffinity``,
torch's thread count set to match): ``profile(setting, method="traced")``, imports, meta-device
module construction and tracing included. Printed per case: the wall time of the whole child
process, the time in ``profile`` alone, and the child's peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Issue 16's target: Wan2.1-14B at 81 x 480p
under 10 s and 1.5 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

DEFAULT = ("wan2.1-t2v-14b@res=480p,frames=81", "hunyuanvideo", "cogvideox-5b", "flux.1-dev", "qwen-image",
           "sd3.5-large", "audioldm2")

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
cores = int(sys.argv[3])
if hasattr(os, "sched_setaffinity"):
    avail = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, set(avail[:cores]))
import torch
torch.set_num_threads(cores)
from profilers.flops.profile import profile
from scaling.settings import make_setting
kw = json.loads(sys.argv[2])
setting = make_setting(sys.argv[1], steps=1, **kw)
t1 = time.perf_counter()
prof = profile(setting, method="traced")
t2 = time.perf_counter()
print(json.dumps({"profile_s": t2 - t1, "setup_s": t1 - t0, "total_flop": prof.total_flop,
                  "total_byte": prof.total_byte,
                  "peak_rss_byte": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _parse(case: str) -> tuple[str, dict]:
    model, _, rest = case.partition("@")
    kw: dict = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        kw[k] = int(v) if v.isdigit() else v
    return model, kw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", help="MODEL or MODEL@k=v,... (setting keywords); default: a few big ones")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    print(f"{'case':44} {'wall s':>7} {'profile s':>9} {'peak RSS':>9} {'PFLOP, 1 step':>14} {'TB, 1 step':>10}")
    for case in args.cases or DEFAULT:
        model, kw = _parse(case)
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, model, json.dumps(kw), str(args.cores)],
                                 capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:44} {wall:7.2f} {r['profile_s']:9.2f} {r['peak_rss_byte'] / 1e9:7.2f} GB "
                  f"{r['total_flop'] / 1e15:14.3f} {r['total_byte'] / 1e12:10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
