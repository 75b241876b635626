"""CPU package and DRAM energy from RAPL, through Linux powercap.

Reads ``/sys/class/powercap/intel-rapl:<pkg>/energy_uj`` (Units: uJ) for each CPU package
and ``intel-rapl:<pkg>:<sub>/energy_uj`` for the sub-zone named ``dram`` where the CPU has
one. The counters wrap at ``max_energy_range_uj``; a light background thread reads them
every ``poll_interval_s`` so no wrap is missed between window boundaries. The powercap
driver also serves AMD Zen CPUs under the same names.

Since 2020 Linux lets only root read ``energy_uj``: the meter then raises a
:class:`~scaling.errors.MeterError` that says how to grant access.

Why this reader is kept beside Zeus (which reads the GPUs, :mod:`.zeus_meter`): Zeus 0.16.0
reads RAPL too (``zeus.device.cpu.rapl``), with the same need for read access (or its
``zeusd`` daemon), but not consistently at window boundaries:

- ``RAPLFile.read()`` returns ``(new_energy_uj + num_wraparounds * max_energy_range_uj)``
  with ``num_wraparounds`` from a ``RaplWraparoundTracker``, a ``multiprocessing`` *spawn*
  child per counter file that polls it every 1 s (0.1 s near the top of the range:
  ``sleep_time = 1.0`` ... ``if max_energy_uj - energy_uj < RAPL_COUNTER_MAX_INCREASE``).
  A boundary read that falls between a wrap and the child's next poll pairs the wrapped
  value with the old wrap count: a window that starts there is overcounted by a whole
  ``max_energy_range_uj`` (about 262 kJ on Intel) once the child catches up, one that ends
  there reads as negative. This reader polls the counters itself at every boundary (and
  every ``poll_interval_s`` between), under one lock, so no wrap is missed or misplaced.
- Each tracker child lives until the interpreter exits (``atexit.register(self._stop)``),
  re-imports the parent's ``__main__`` (spawn), and the RAPL root is a module constant
  (``RAPL_DIR = "/sys/class/powercap/intel-rapl"``) behind a process-wide singleton
  (``get_cpus()``), so neither a meter nor a test can point it elsewhere.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scaling.errors import MeterError

from .base import J_PER_UJ, Clock, CounterAccumulator, Measurement, MeterBase, SleepLoop

POWERCAP_ROOT = "/sys/class/powercap"
#: RAPL counters update about every millisecond.
RAPL_RESOLUTION_S = 0.001
_PKG = re.compile(r"^intel-rapl:(\d+)$")
_SUB = re.compile(r"^intel-rapl:(\d+):(\d+)$")


@dataclass(frozen=True)
class RaplZone:
    path: Path
    name: str  # "package-0", "dram", ...
    kind: str  # "package" or "dram"
    max_energy_range_uj: int


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError as e:
        raise MeterError(
            f"{path} is not readable by this user (Linux restricts RAPL to root): run as "
            f"root, or grant read access with `sudo chmod o+r {path.parent.parent}/intel-rapl*/energy_uj "
            f"{path.parent.parent}/intel-rapl*/*/energy_uj`; without it, CPU energy is estimated"
        ) from e
    except (OSError, ValueError) as e:
        raise MeterError(f"cannot read RAPL counter {path} ({e}); CPU energy will be estimated") from e


def find_rapl_zones(root: str | Path = POWERCAP_ROOT) -> list[RaplZone]:
    """The package and DRAM zones under ``root``; raises MeterError if there are none."""
    root = Path(root)
    if not root.is_dir():
        raise MeterError(
            f"RAPL cannot be read: no {root} (not Linux, or a container that hides /sys); "
            "CPU energy will be estimated"
        )
    zones: list[RaplZone] = []
    for d in sorted(root.iterdir()):
        pkg, sub = _PKG.match(d.name), _SUB.match(d.name)
        if not (pkg or sub):
            continue
        try:
            name = (d / "name").read_text().strip()
        except OSError:
            continue
        if pkg and name.startswith("package"):
            kind = "package"
        elif sub and name == "dram":
            kind = "dram"
        else:  # psys, core, uncore: parts of (or overlapping) the package figure
            continue
        zones.append(RaplZone(d, name, kind, _read_int(d / "max_energy_range_uj")))
    if not zones:
        raise MeterError(
            f"no RAPL package zones under {root} (the CPU or kernel does not expose RAPL "
            "through powercap); CPU energy will be estimated"
        )
    return zones


class RaplMeter(MeterBase):
    """CPU package and DRAM energy from RAPL counters. Both are measurements.

    Parameters
    ----------
    root : path
        The powercap directory (tests point it at a fake tree).
    poll_interval_s : float
        How often the background thread reads the counters to catch wraps.
    start_poller : bool
        Start that thread (tests call :meth:`poll` by hand).

    Raises
    ------
    MeterError
        No RAPL zones, or their counters are not readable by this user.
    """

    name = "rapl"
    resolution_s = RAPL_RESOLUTION_S

    def __init__(
        self,
        root: str | Path = POWERCAP_ROOT,
        *,
        poll_interval_s: float = 1.0,
        clock: Clock = time.perf_counter,
        start_poller: bool = True,
    ) -> None:
        super().__init__(clock)
        self._loop: SleepLoop | None = None  # set first: close() runs on a half-built meter too
        self.zones = find_rapl_zones(root)
        self._lock = threading.Lock()
        self._counters = [
            CounterAccumulator(_read_int(z.path / "energy_uj"), z.max_energy_range_uj, resettable=False)
            for z in self.zones
        ]
        if start_poller:
            self._loop = SleepLoop.calling(self.poll, poll_interval_s, "rapl-poller")
            self._loop.start()

    def poll(self) -> None:
        """Read every counter once and fold it into the running totals."""
        with self._lock:
            for z, c in zip(self.zones, self._counters):
                c.update(_read_int(z.path / "energy_uj"))

    def _snapshot(self):
        loop = self._loop
        if loop is not None and loop.error is not None:
            if not isinstance(loop.error, MeterError):
                raise loop.error  # not a counter read (those are MeterErrors): a bug, shown as it is
            raise MeterError(f"the RAPL poller stopped: {loop.error}; create a new meter") from loop.error
        self.poll()
        with self._lock:
            return self._clock(), tuple(c.total for c in self._counters), sum(c.wraps for c in self._counters)

    def _measure(self, key, start, end) -> Measurement:
        (t0, tot0, w0), (t1, tot1, w1) = start, end
        cpu_uj = ram_uj = 0
        has_dram = False
        for z, a, b in zip(self.zones, tot0, tot1):
            if z.kind == "package":
                cpu_uj += b - a
            else:
                ram_uj += b - a
                has_dram = True
        notes = []
        if not has_dram:
            notes.append("no RAPL DRAM zone: RAM not measured")
        if w1 - w0:
            notes.append(f"RAPL counters wrapped {w1 - w0}x: unwrapped")
        estimated = {"energy_cpu_j": False}
        if has_dram:
            estimated["energy_ram_j"] = False
        return Measurement(
            name=key,
            time_s=t1 - t0,
            energy_gpu_j=None,
            energy_gpu_counter_j=None,
            energy_gpu_sampled_j=None,
            energy_cpu_j=cpu_uj * J_PER_UJ,
            energy_ram_j=ram_uj * J_PER_UJ if has_dram else None,
            per_gpu_j={},
            samples=0,
            estimated=estimated,
            meter=self.name,
            notes="; ".join(notes),
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.stop()

    def __del__(self) -> None:  # a forgotten meter must not leave its thread polling
        if not self._closed:
            self.close()
