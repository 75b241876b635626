"""How much do the meters slow down the work they measure? (The issue asks for < 1 %.)

Times a fixed CPU workload (torch matmuls, about 1 s; 12 pairs) with and without a meter,
in interleaved pairs, and prints the overhead in %: best-of-N wall time, and the median
over pairs of wall and of process CPU time (which includes the sampler thread). The meter is what the runner would use
on a GPU machine, with NVML faked: a CompositeMeter of NvmlMeter (fake ``pynvml`` from
tests/fixtures/fake_nvml.py, power sampled every 10 ms: the most expensive setting),
a ReplayMeter (the synthetic trace) and an EstimateMeter; one window per call and one
per phase (three phases), as the measurement runner opens them.

Also prints the cost of one sampler tick, measured directly, and the share of one core
that the sampler thread takes at that rate: a figure that wall-clock noise cannot hide.

Run: ``PYTHONPATH=. python benchmarks/bench_meter_overhead.py [--pairs 12] [--seconds 1.0]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import torch  # noqa: E402
from fake_nvml import FakeNVML, h100s  # noqa: E402

from profilers.energy.meters import CompositeMeter, EstimateMeter, NvmlMeter, ReplayMeter  # noqa: E402

TRACE = ROOT / "tests" / "fixtures" / "synthetic-h100+sd21-512+cuda0.csv"
SIZE = 512
PHASES = ("text_encoder", "denoiser", "decoder")


def workload(iters: int, meter=None) -> tuple[float, float]:
    """``iters`` matmuls split over three phases; returns (wall s, process CPU s).

    Process CPU time includes the sampler thread's: it is the meter's cost in cycles,
    and it is steadier than wall time on a shared machine.
    """
    a = torch.randn(SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    b = torch.randn(SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    per_phase = iters // len(PHASES)
    c0, t0 = time.process_time(), time.perf_counter()
    if meter is not None:
        meter.begin_window("call")
    for phase in PHASES:
        if meter is not None:
            meter.begin_window(phase)
        for _ in range(per_phase):
            torch.mm(a, b)
        if meter is not None:
            meter.end_window(phase)
    if meter is not None:
        meter.end_window("call")
    return time.perf_counter() - t0, time.process_time() - c0


def make_meter(fake: FakeNVML, interval_s: float) -> CompositeMeter:
    nvml = NvmlMeter(sample_interval_s=interval_s, nvml=fake.module, env={})
    replay = ReplayMeter(TRACE, loop=True)
    return CompositeMeter([nvml, replay, EstimateMeter(cpu_power_w=65.0, source="benchmark")])


def tick_cost_s(fake: FakeNVML, n: int = 20_000) -> float:
    m = NvmlMeter(nvml=fake.module, env={}, start_sampler=False)
    t0 = time.perf_counter()
    for _ in range(n):
        m.sample()
    dt = (time.perf_counter() - t0) / n
    m.close()
    return dt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of one workload run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier timings)")
    ap.add_argument("--interval", type=float, default=0.01, help="NVML sampling period, s")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    workload(50)  # warm up
    t = min(workload(150)[1] for _ in range(3))
    iters = max(len(PHASES), int(150 * args.seconds / t))
    fake = FakeNVML(h100s(2, power_w=300.0))

    base, metered, wall_pct, cpu_pct = [], [], [], []
    samples = 0
    for i in range(args.pairs):
        if i % 2:  # alternate the order within a pair: drift hits both sides alike
            wb, cb = workload(iters)
        meter = make_meter(fake, args.interval)
        wm, cm = workload(iters, meter)
        samples = len(meter.parts[0].trace()[0]["t_s"])
        meter.close()
        if not i % 2:
            wb, cb = workload(iters)
        base.append(wb)
        metered.append(wm)
        wall_pct.append(100.0 * (wm - wb) / wb)
        cpu_pct.append(100.0 * (cm - cb) / cb)

    tick = tick_cost_s(fake)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {iters} matmuls {SIZE}x{SIZE}")
    print(f"meter: nvml (fake, 2 GPUs, {args.interval * 1e3:.0f} ms) + replay + estimate; 4 windows per call")
    print(f"baseline  median {statistics.median(base):.3f} s  (runs: {', '.join(f'{x:.3f}' for x in base)})")
    print(f"metered   median {statistics.median(metered):.3f} s  (runs: {', '.join(f'{x:.3f}' for x in metered)})")
    print(f"samples in last metered run: {samples}")
    best = 100.0 * (min(metered) - min(base)) / min(base)
    print(f"overhead, best-of-{args.pairs} wall  {best:+.2f} %  (least disturbed runs)")
    for label, pct in (("wall time   ", wall_pct), ("process CPU ", cpu_pct)):
        pairs = ", ".join(f"{x:+.2f}" for x in pct)
        print(f"overhead, {label} median {statistics.median(pct):+.2f} %  (pairs: {pairs})")
    print(
        f"sampler tick {tick * 1e6:.1f} us (2 fake GPUs) -> {100 * tick / args.interval:.3f} % "
        f"of one core at {args.interval * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
