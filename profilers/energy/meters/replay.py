"""The replay meter: plays back recorded GPU power traces, for tests without a GPU.

A trace is a CSV per GPU, ``t_s,power_w[,energy_j]``, with optional ``#`` comment lines
above the header (provenance; a trace whose comments say ``synthetic`` is reported as
such). ``energy_j``, when present, is a cumulative energy counter (as NVML's) and plays
the role of the counter; the integral of ``power_w`` (piecewise linear) plays the sampled
source. Files are named ``<gpu>+<workload>+<device>.csv``, as Zeus names its fixtures.

Time on the trace is time since the meter started, on the meter's clock (inject a fake
clock for deterministic tests). A window that runs past the end of the trace is an error
unless ``loop=True``.
"""

from __future__ import annotations

import bisect
import csv
import math
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import DataError, MeterError

from .base import Clock, Measurement, MeterBase


@dataclass(frozen=True)
class PowerTrace:
    """One GPU's recorded power (and optionally energy counter) over time.

    ``t_s`` starts wherever the recording started; it is shifted to 0 on read.
    """

    t_s: tuple[float, ...]
    power_w: tuple[float, ...]
    energy_j: tuple[float, ...] | None
    comments: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        t, p = self.t_s, self.power_w
        where = self.source or "trace"
        if len(t) < 2 or len(p) != len(t) or (self.energy_j is not None and len(self.energy_j) != len(t)):
            raise DataError(f"{where}: a power trace needs >= 2 rows and equal-length columns")
        for i in range(len(t)):
            if not (math.isfinite(t[i]) and math.isfinite(p[i]) and p[i] >= 0):
                raise DataError(f"{where}: row {i}: t_s={t[i]!r}, power_w={p[i]!r}; need finite t_s and power_w >= 0")
            if i and t[i] <= t[i - 1]:
                raise DataError(f"{where}: row {i}: t_s={t[i]!r} after {t[i - 1]!r}; t_s must increase strictly")
        cum = [0.0]
        for i in range(1, len(t)):
            cum.append(cum[-1] + 0.5 * (p[i] + p[i - 1]) * (t[i] - t[i - 1]))
        object.__setattr__(self, "_cum_j", tuple(cum))

    # -- reading / writing -----------------------------------------------------------
    @classmethod
    def read_csv(cls, path: str | Path) -> PowerTrace:
        """Read ``t_s,power_w[,energy_j]`` with optional leading ``#`` comment lines."""
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise DataError(f"cannot read the power trace {str(path)!r}: {e}") from e
        comments = tuple(line.lstrip("#").strip() for line in lines if line.startswith("#"))
        body = [line for line in lines if line.strip() and not line.startswith("#")]
        rows = list(csv.reader(body))
        if not rows:
            raise DataError(f"{path}: empty power trace; expected a header `t_s,power_w[,energy_j]`")
        header = [h.strip() for h in rows[0]]
        if header[:2] != ["t_s", "power_w"] or header[2:] not in ([], ["energy_j"]):
            raise DataError(f"{path}: header {header!r}; expected `t_s,power_w` or `t_s,power_w,energy_j`")
        if len(rows) < 3:
            raise DataError(f"{path}: {len(rows) - 1} data row(s); a power trace needs >= 2")
        if any(len(r) != len(header) for r in rows[1:]):
            raise DataError(f"{path}: every row needs {len(header)} values ({','.join(header)})")
        try:
            cols = list(zip(*[[float(x) for x in r] for r in rows[1:]]))
        except ValueError as e:
            raise DataError(f"{path}: a value is not a number ({e})") from e
        t0 = cols[0][0]
        energy = None
        if len(header) == 3:
            e0 = cols[2][0]
            energy = tuple(e - e0 for e in cols[2])
        return cls(
            t_s=tuple(t - t0 for t in cols[0]),
            power_w=tuple(cols[1]),
            energy_j=energy,
            comments=comments,
            source=str(path),
        )

    def write_csv(self, path: str | Path) -> None:
        """Write the trace in the format :meth:`read_csv` reads, comments first."""
        with Path(path).open("w", newline="") as f:
            for c in self.comments:
                f.write(f"# {c}\n")
            w = csv.writer(f, lineterminator="\n")
            has_e = self.energy_j is not None
            w.writerow(["t_s", "power_w", "energy_j"] if has_e else ["t_s", "power_w"])
            for i in range(len(self.t_s)):
                row = [f"{self.t_s[i]:.6f}", f"{self.power_w[i]:.3f}"]
                if has_e:
                    row.append(f"{self.energy_j[i]:.6f}")
                w.writerow(row)

    # -- what it says ------------------------------------------------------------------
    @property
    def synthetic(self) -> bool:
        """True when the trace's comments say it was not recorded on hardware."""
        return any("synthetic" in c.lower() for c in self.comments)

    @property
    def duration_s(self) -> float:
        return self.t_s[-1] - self.t_s[0]

    @property
    def energy_total_j(self) -> float:
        """Integral of power over the whole trace (trapezoid rule)."""
        return self._cum_j[-1]

    def _locate(self, t: float) -> int:
        return min(max(bisect.bisect_right(self.t_s, t) - 1, 0), len(self.t_s) - 2)

    def power_at(self, t: float) -> float:
        k = self._locate(t)
        t_a, t_b = self.t_s[k], self.t_s[k + 1]
        return self.power_w[k] + (self.power_w[k + 1] - self.power_w[k]) * (t - t_a) / (t_b - t_a)

    def power_integral(self, t: float) -> float:
        """Energy from the start of the trace to ``t`` (0 <= t <= duration), in J."""
        k = self._locate(t)
        return self._cum_j[k] + 0.5 * (self.power_w[k] + self.power_at(t)) * (t - self.t_s[k])

    def counter_at(self, t: float) -> float | None:
        """The ``energy_j`` column interpolated at ``t``; None without that column."""
        if self.energy_j is None:
            return None
        k = self._locate(t)
        e = self.energy_j
        return e[k] + (e[k + 1] - e[k]) * (t - self.t_s[k]) / (self.t_s[k + 1] - self.t_s[k])

    def samples_between(self, a: float, b: float) -> int:
        """Rows with a < t_s <= b."""
        return bisect.bisect_right(self.t_s, b) - bisect.bisect_right(self.t_s, a)


def parse_trace_name(path: str | Path) -> dict[str, str]:
    """``<gpu>+<workload>+<device>.csv`` -> ``{"gpu", "workload", "device"}``."""
    stem = Path(path).name.removesuffix(".csv")
    parts = stem.split("+")
    if len(parts) != 3 or not all(parts):
        raise DataError(f"trace file name {Path(path).name!r}: expected `<gpu>+<workload>+<device>.csv`")
    return dict(zip(("gpu", "workload", "device"), parts))


class ReplayMeter(MeterBase):
    """Plays back recorded power traces as if a GPU were drawing that power now.

    Parameters
    ----------
    traces : path, PowerTrace, a sequence of them, or a mapping ``{cuda_index: trace}``
        One trace per GPU; a sequence is numbered 0, 1, ...
    clock : callable
        Seconds, monotonic; trace time 0 is the clock at construction (``start_s`` in).
    loop : bool
        Wrap around at the end of the trace instead of raising.
    start_s : float
        Where on the trace playback starts.
    """

    name = "replay"

    def __init__(
        self,
        traces,
        *,
        clock: Clock = time.perf_counter,
        loop: bool = False,
        start_s: float = 0.0,
    ) -> None:
        super().__init__(clock)
        if isinstance(traces, (str, Path, PowerTrace)):
            traces = [traces]
        if not isinstance(traces, Mapping):
            traces = dict(enumerate(traces))
        if not traces:
            raise MeterError("ReplayMeter needs at least one trace")
        self.traces: dict[int, PowerTrace] = {
            int(k): v if isinstance(v, PowerTrace) else PowerTrace.read_csv(v) for k, v in traces.items()
        }
        self.loop = loop
        self._origin = clock() - float(start_s)
        self._notes = []
        for k, tr in self.traces.items():
            label = Path(tr.source).name if tr.source else f"trace {k}"
            kind = "SYNTHETIC trace, not a recording" if tr.synthetic else "recorded trace"
            self._notes.append(f"cuda:{k} replays {kind} {label}")

    @property
    def resolution_s(self) -> float:
        """The coarsest median row spacing of the traces."""
        return max(statistics.median(b - a for a, b in zip(tr.t_s, tr.t_s[1:])) for tr in self.traces.values())

    def _snapshot(self) -> float:
        return self._clock() - self._origin

    def _energy_to(self, tr: PowerTrace, t: float, counter: bool) -> float | None:
        """Cumulative energy from trace time 0 to ``t``, unrolling loops."""
        d = tr.duration_s
        laps = 0
        if t > d:
            if not self.loop:
                raise MeterError(
                    f"the window runs to t={t:.3f} s, past the end of {tr.source or 'the trace'} "
                    f"({d:.3f} s); pass loop=True or a longer trace"
                )
            laps, t = divmod(t, d)
        if counter:
            total, here = tr.counter_at(d), tr.counter_at(t)
            if total is None:
                return None
        else:
            total, here = tr.energy_total_j, tr.power_integral(t)
        return laps * total + here

    def _measure(self, key: str, start: float, end: float) -> Measurement:
        per_gpu: dict[int, float] = {}
        counter_j: float | None = 0.0
        sampled_j = 0.0
        samples = 0
        for k, tr in self.traces.items():
            s_j = self._energy_to(tr, end, False) - self._energy_to(tr, start, False)
            c0 = self._energy_to(tr, start, True)
            c_j = None if c0 is None else max(0.0, self._energy_to(tr, end, True) - c0)
            per_gpu[k] = c_j if c_j is not None else s_j
            sampled_j += s_j
            counter_j = None if c_j is None or counter_j is None else counter_j + c_j
            d = tr.duration_s
            if end <= d:
                samples = max(samples, tr.samples_between(start, end))
            else:  # looping: count rows per lap, approximately
                samples = max(samples, int(round((end - start) / d * (len(tr.t_s) - 1))))
        return Measurement(
            name=key,
            time_s=end - start,
            energy_gpu_j=sum(per_gpu.values()),
            energy_gpu_counter_j=counter_j,
            energy_gpu_sampled_j=sampled_j,
            energy_cpu_j=None,
            energy_ram_j=None,
            per_gpu_j=per_gpu,
            samples=samples,
            # a synthetic trace's energies were made up, not measured
            estimated={"energy_gpu_j": any(tr.synthetic for tr in self.traces.values())},
            meter=self.name,
            notes="; ".join(self._notes),
        )
