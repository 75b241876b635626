"""Does an append to the runs table cost the same at row 10 as at row 100,000?

Appends ``--calls`` measured calls (default 1,000), one ``append_runs`` each, to a fresh
table, as the runner does after every call: one ``total`` row and three phase rows
(``text_encoder``, ``denoiser``, ``decoder``) per call, every column the runner fills. It
prints the median time of an append at 10, 100 and 1,000 rows already in the table (and at
the end), the least-squares trend of the append time over all appends (ms per 1,000 rows
already there: about 0 when appends are flat), and the cost of validating one call's rows,
which every append pays either way.

For comparison it times the old one-file append at the same sizes: read and validate the
whole table, concatenate, validate again, rewrite the file (what ``scaling.runs`` did before
part files; ``--no-old`` skips it). Then the time of a full read of the appended table (base
and every part), of ``read_run_keys`` (resume), of ``count_runs``, of ``compact_runs`` and
of a full read of the compacted file. Last, the same appends to a table that already holds
``--big`` rows (default 100,000) in one file, as a table written before part files was.

    python benchmarks/bench_runs_append.py [--calls 1000] [--repeats 9] [--big 100000] [--no-old] [--dir DIR]

Timings are wall time on this machine (fsync included: the disk matters); nothing asserts
on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scaling.runs import (  # noqa: E402
    _write_parquet,
    append_runs,
    compact_runs,
    count_runs,
    read_metadata,
    read_run_keys,
    read_runs,
    validate_runs,
    write_runs,
)

PHASES = ("total", "text_encoder", "denoiser", "decoder")
CHECKPOINTS = (10, 100, 1000)


def call_rows(i: int) -> list[dict]:
    """The rows the runner appends for one call of a Wan2.1 480p setting."""
    setting = f"wan2.1-t2v-1.3b/480x832/f81/s50/g5.0/b1/bf16/{i // 5}"
    base = dict(source="scaling-runner", model="Wan-AI/Wan2.1-T2V-1.3B-Diffusers", model_key="wan2.1-t2v-1.3b",
                modality="video", gpu="NVIDIA H100 80GB HBM3", gpu_key="h100-sxm", gpu_count=1, precision="bf16",
                height=480, width=832, frames=81, fps=16.0, steps=50, guidance_scale=5.0, cfg=True, batch_size=1,
                idle_power_w=71.5, n_repeats=1, repeat=i % 5, warmup=1, meter="zeus(nvml)+rapl", estimated=False,
                timestamp=pd.Timestamp("2025-06-01T10:00:00Z") + pd.Timedelta(seconds=90 * i),
                flop_text_encoder=2.1e12, flop_denoiser=8.4e15, flop_decoder=3.3e14, flags="idle_subtracted",
                notes=f"prompt #{i % 40}; seed {i % 5}; idle baseline 71.5 W over 10 s; device cuda:0")
    share = {"total": 1.0, "text_encoder": 0.01, "denoiser": 0.9, "decoder": 0.09}
    flop = {"total": 8.7e15, "text_encoder": 2.1e12, "denoiser": 8.4e15, "decoder": 3.3e14}
    return [{**base, "run_id": f"{setting}/r{i % 5}", "phase": ph, "energy_gpu_j": 52_000.0 * share[ph] + i,
             "energy_cpu_j": 900.0 * share[ph], "energy_ram_j": 120.0 * share[ph], "duration_s": 110.0 * share[ph],
             "flop": flop[ph]} for ph in PHASES]


def old_append(rows: list[dict], path: Path) -> None:
    """The one-file append as it was: read, validate, concatenate, validate, rewrite."""
    new = validate_runs(pd.DataFrame(rows), f"{path} (appended rows)", fill_defaults=True)
    old = read_runs(path)
    combined = validate_runs(pd.concat([old, new], ignore_index=True), str(path), fill_defaults=True)
    _write_parquet(combined, path, read_metadata(path).get("import_report"))


def _ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1e3:8.1f}"


def _timed(fn, repeats: int = 3) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def _big_table(folder: Path, n_rows: int, repeats: int, old: bool) -> None:
    """Appends to a table whose base file already holds ``n_rows`` rows (one file, as written before parts)."""
    import shutil

    big = folder / "big.parquet"
    calls = n_rows // len(PHASES)
    write_runs(pd.DataFrame([r for i in range(calls) for r in call_rows(2_000_000 + i)]), big)
    shutil.copy(big, folder / "big-old.parquet")
    t0 = time.perf_counter()
    append_runs(call_rows(3_000_000), big)
    first = time.perf_counter() - t0
    times = []
    for k in range(repeats):
        rows = call_rows(3_000_001 + k)
        t0 = time.perf_counter()
        append_runs(rows, big)
        times.append(time.perf_counter() - t0)
    line = (f"{calls * len(PHASES)} rows in a one-file base: the first append (builds keys.sqlite from the key "
            f"columns) {first * 1e3:.0f} ms, then {_ms(times).strip()} ms per append")
    if old:
        olds = []
        for k in range(min(repeats, 3)):
            rows = call_rows(4_000_000 + k)
            t0 = time.perf_counter()
            old_append(rows, folder / "big-old.parquet")
            olds.append(time.perf_counter() - t0)
        line += f"; old one-file rewrite {_ms(olds).strip()} ms per append"
    print(line)
    t_keys = _timed(lambda: read_run_keys(big))
    print(f"read_run_keys of that table ({count_runs(big)} rows): {t_keys * 1e3:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1000, help="calls appended one by one (4 rows each)")
    ap.add_argument("--repeats", type=int, default=9, help="appends timed at each checkpoint (median)")
    ap.add_argument("--no-old", action="store_true", help="skip the one-file rewrite comparison")
    ap.add_argument("--big", type=int, default=100_000, help="also append to a table of this many rows (0: skip)")
    ap.add_argument("--dir", type=Path, default=None, help="folder for the tables (default: a temporary one)")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory() if args.dir is None else None
    folder = Path(tmp.name) if tmp else args.dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "runs.parquet"
    if path.exists():
        raise SystemExit(f"{path} exists: pass an empty --dir")

    rows_per_call = len(PHASES)
    per_append: list[tuple[int, float]] = []  # (rows already there, seconds)
    t_start = time.perf_counter()
    for i in range(args.calls):
        rows = call_rows(i)
        t0 = time.perf_counter()
        append_runs(rows, path)
        per_append.append((i * rows_per_call, time.perf_counter() - t0))
    t_all = time.perf_counter() - t_start
    n_rows = args.calls * rows_per_call
    validate_s = _timed(lambda: validate_runs(pd.DataFrame(call_rows(0)), "x", fill_defaults=True), 9)

    sizes = [c for c in CHECKPOINTS if c < n_rows - rows_per_call * args.repeats]
    sizes.append(per_append[-args.repeats][0])
    print(f"runs table: {args.calls} calls appended one by one, {rows_per_call} rows each ({n_rows} rows), "
          f"{t_all:.1f} s in all; {read_metadata(path)['parts']} part files")
    print(f"validating one call's rows, part of every append either way: {validate_s * 1e3:.1f} ms")
    slope = np.polyfit([n for n, _ in per_append], [t for _, t in per_append], 1)[0]
    print(f"least-squares trend over all {args.calls} appends: {slope * 1e6:+.2f} ms per 1,000 rows already there\n")
    head = "rows already there | append, parts (ms)"
    if not args.no_old:
        head += " | old one-file rewrite (ms)"
    print(head)
    old_points = []
    for size in sizes:
        window = [s for n, s in per_append if n >= size][: args.repeats]
        line = f"{size:>18} | {_ms(window):>18}"
        if not args.no_old:
            old_path = folder / f"old-{size}.parquet"
            calls = -(-size // rows_per_call)  # the same rows as the new table had at that size, or a call more
            write_runs(pd.DataFrame([r for i in range(calls) for r in call_rows(i)]), old_path)
            times = []
            for k in range(args.repeats):
                rows = call_rows(10**6 + 1 + k)
                t0 = time.perf_counter()
                old_append(rows, old_path)
                times.append(time.perf_counter() - t0)
            old_points.append((calls * rows_per_call, statistics.median(times)))
            line += f" | {_ms(times):>25}"
        print(line)
    if len(old_points) > 1:
        old_slope = np.polyfit(*zip(*old_points), 1)[0]
        print(f"old one-file rewrite trend: {old_slope * 1e6:+.2f} ms per 1,000 rows already there")

    if args.big:
        _big_table(folder, args.big, args.repeats, not args.no_old)

    print()
    t_read = _timed(lambda: read_runs(path))
    t_keys = _timed(lambda: read_run_keys(path))
    t_count = _timed(lambda: count_runs(path))
    print(f"full read, base + {read_metadata(path)['parts']} parts ({count_runs(path)} rows): {t_read * 1e3:.0f} ms")
    print(f"read_run_keys (run_id, phase, repeat), as resume reads: {t_keys * 1e3:.0f} ms")
    print(f"count_runs (footers only): {t_count * 1e3:.0f} ms")
    before = read_runs(path)
    t0 = time.perf_counter()
    merged = compact_runs(path)
    t_compact = time.perf_counter() - t0
    after = read_runs(path)
    pd.testing.assert_frame_equal(after, before)  # compaction keeps every row (a check, not a timing)
    print(f"compact_runs ({merged} parts into one file): {t_compact * 1e3:.0f} ms")
    print(f"full read of the compacted file: {_timed(lambda: read_runs(path)) * 1e3:.0f} ms")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
