"""How much do the meters slow down the work they measure? (The issue asks for < 1 %.)

Times a fixed CPU workload (torch matmuls, about 1 s per run) with and without a meter,
in interleaved pairs, and prints the overhead in %. The meter is what the runner would use
on a GPU machine, with NVML faked: a CompositeMeter of NvmlMeter (Zeus over the fake ``pynvml``
of tests/fixtures/fake_nvml.py, installed as the one Zeus calls; 2 GPUs, power sampled every
50 ms, the meter's default;
``--interval 0.01`` for the costliest setting), a ReplayMeter (the synthetic trace) and an
EstimateMeter; one window per call and one per phase (three phases), as the measurement
runner opens them.

Wall-clock differences on a shared machine are noisy, so the benchmark also prints:

- an A/A control (baseline against baseline, same pairing): the noise floor;
- the direct cost: the sampler thread's own CPU time (Linux per-thread clock) and the
  time spent inside begin_window/end_window, as a share of the workload's wall time.
  That sum is the meter's overhead, which wall-clock noise cannot hide.

The fake NVML functions are plain by default, so what is timed is the meter itself and
Zeus's NVML wrapper (real NVML calls add driver time: rerun on a GPU). ``--autospec`` uses the tests' mock instead,
whose machinery costs about 15 us per call.

Run: ``PYTHONPATH=. python benchmarks/bench_meter_overhead.py [--pairs 10] [--interval 0.01]``
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


class Timed:
    """Wraps a meter; adds up the wall time spent inside begin_window / end_window."""

    def __init__(self, meter) -> None:
        self.meter = meter
        self.inside_s = 0.0

    def begin_window(self, key: str) -> None:
        t = time.perf_counter()
        self.meter.begin_window(key)
        self.inside_s += time.perf_counter() - t

    def end_window(self, key: str):
        t = time.perf_counter()
        m = self.meter.end_window(key)
        self.inside_s += time.perf_counter() - t
        return m


def workload(iters: int, meter=None) -> tuple[float, float]:
    """``iters`` matmuls split over three phases; returns (wall s, process CPU s)."""
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
    """The meter of one metered run; ``fake`` must be installed (``with fake.installed():``)."""
    nvml = NvmlMeter(sample_interval_s=interval_s)
    replay = ReplayMeter(TRACE, loop=True)
    return CompositeMeter([nvml, replay, EstimateMeter(cpu_power_w=65.0, source="benchmark")])


def thread_cpu_s(thread) -> float:
    """CPU seconds a running thread has used (Linux per-thread clock)."""
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def tick_cost_s(fake: FakeNVML, n: int) -> float:
    with fake.installed():
        m = NvmlMeter(start_sampler=False)
        t0 = time.perf_counter()
        for _ in range(n):
            m.sample()
        dt = (time.perf_counter() - t0) / n
        m.close()
    return dt


def pct(x: float, ref: float) -> float:
    return 100.0 * (x - ref) / ref


def fmt(xs: list[float]) -> str:
    return ", ".join(f"{x:+.2f}" for x in xs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=1.0, help="CPU seconds of one workload run")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier timings)")
    ap.add_argument("--interval", type=float, default=0.05, help="NVML sampling period in s (default: the meter's)")
    ap.add_argument("--autospec", action="store_true", help="use the tests' autospecced mock NVML")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    workload(50)  # warm up
    t = min(workload(150)[1] for _ in range(3))
    iters = max(len(PHASES), int(150 * args.seconds / t))
    fake = FakeNVML(h100s(2, power_w=300.0), autospec=args.autospec)

    ab_wall, ab_cpu, aa_wall, aa_cpu, direct = [], [], [], [], []
    samples = 0
    for i in range(args.pairs):
        first = i % 2 == 0  # alternate the order within a pair: drift hits both sides alike
        if not first:
            wb, cb = workload(iters)
        with fake.installed():
            meter = make_meter(fake, args.interval)
            timed = Timed(meter)
            thread = meter.parts[0]._loop._thread
            s0 = thread_cpu_s(thread)
            wm, cm = workload(iters, timed)
            sampler_s = thread_cpu_s(thread) - s0
            samples = len(meter.parts[0].trace()[0]["t_s"])
            meter.close()
        if first:
            wb, cb = workload(iters)
        ab_wall.append(pct(wm, wb))
        ab_cpu.append(pct(cm, cb))
        direct.append(100.0 * (sampler_s + timed.inside_s) / wb)
        w1, c1 = workload(iters)  # A/A control
        w2, c2 = workload(iters)
        aa_wall.append(pct(w2, w1))
        aa_cpu.append(pct(c2, c1))

    kind = "autospecced mock" if args.autospec else "plain fake"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {iters} matmuls {SIZE}x{SIZE} per run")
    print(f"meter: zeus(nvml) ({kind}, 2 GPUs, every {args.interval * 1e3:.0f} ms) + replay + estimate; 4 windows per call")
    print(f"samples in the last metered run: {samples}")
    print(f"wall,  meter vs none: median {statistics.median(ab_wall):+.2f} %  ({fmt(ab_wall)})")
    print(f"wall,  A/A control:   median {statistics.median(aa_wall):+.2f} %  ({fmt(aa_wall)})")
    print(f"CPU,   meter vs none: median {statistics.median(ab_cpu):+.2f} %  ({fmt(ab_cpu)})")
    print(f"CPU,   A/A control:   median {statistics.median(aa_cpu):+.2f} %  ({fmt(aa_cpu)})")
    print(
        f"DIRECT overhead (sampler thread CPU + time inside windows) / workload: "
        f"median {statistics.median(direct):.3f} %, max {max(direct):.3f} %"
    )
    for label, autospec, n in (("plain fake NVML", False, 20_000), ("autospecced mock", True, 5_000)):
        f = FakeNVML(h100s(2), autospec=autospec)
        cost = tick_cost_s(f, n)
        shares = ", ".join(f"{100 * cost / s:.3f} % at {s * 1e3:.0f} ms" for s in (0.01, 0.05, 0.1))
        print(f"one sampler tick, {label}: {cost * 1e6:.1f} us (2 GPUs) -> share of one core: {shares}")


if __name__ == "__main__":
    main()
