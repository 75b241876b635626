"""GPU energy through Zeus (``zeus``, the meter of the ML.ENERGY benchmark): its NVML energy
counter windows, and power read through its GPU device layer.

Per GPU, two sources, both recorded because they can disagree:

- the total-energy counter, read by ``zeus.monitor.ZeusMonitor`` at each window's begin and
  end (``nvmlDeviceGetTotalEnergyConsumption``: mJ since the driver loaded; Volta and newer,
  as Zeus decides from the GPU's architecture). Preferred.
- power, read through Zeus's device layer (``GPUs.get_instant_power_usage``, NVML's
  instantaneous power field, else ``get_average_power_usage``, the one-second average) every
  ``sample_interval_s`` (10 to 100 ms) by a background thread, and integrated with the
  trapezoid rule. The only source for a GPU without the counter.

Zeus owns NVML: it opens it once per process (``zeus.device.get_gpus()``, a singleton) and
maps ``CUDA_VISIBLE_DEVICES`` (comma-separated indices) onto NVML devices, so ``gpu_indices``
are the indices this process sees (``cuda:N``). Closing a meter stops its sampler; NVML stays
open for the next meter. Windows never synchronise the device themselves
(``sync_execution=False``): the phase recorder and the runner do, where the work runs.

What stays our own, and why (Zeus 0.16.0, read from its wheel):

- *The power sampler* (:class:`~profilers.energy.meters.base.SleepLoop` and the trapezoid
  sum below, about 40 lines), instead of ``zeus.monitor.power.PowerMonitor``.
  ``PowerMonitor.__init__`` polls in ``multiprocessing`` *spawn* children
  (``ctx = mp.get_context("spawn")`` ... ``target=_domain_polling_process``), each of which
  calls ``get_gpus()`` afresh: a child re-imports the parent's ``__main__``, costs an
  interpreter start and a Zeus import per power domain, and cannot see an NVML fake, so
  its tests could not stay hardware-free. The children send a sample only when the power
  changed (``if gpu_index in prev_power and prev_power[gpu_index] == power_mw: continue``),
  and ``PowerMonitor.get_energy`` integrates only the samples inside ``[start, end]``
  (``if not timeline or len(timeline) < 2: energy_result[gpu_idx] = 0.0``): a window at
  steady power, or shorter than two changes, reads 0 J. ``PowerMonitor`` also requires
  identical GPU models (``get_gpus(ensure_homogeneous=True)``). Our sampler reads power
  through Zeus's own ``GPUs`` object, in this process, and samples at both window
  boundaries. ``ZeusMonitor`` starts a ``PowerMonitor`` itself for GPUs without the counter
  (``old_gpu_indices``); they are therefore left out of its ``gpu_indices`` and measured by
  the sampler alone.
- *Checks Zeus does not make*: ``ZeusMonitor`` takes ``gpu_indices`` unchecked
  (``self.gpu_indices = gpu_indices if gpu_indices is not None else ...``), so they are
  checked here; a counter that goes backwards (Zeus returns ``end_energy -
  gpu_start_energy[gpu_index]`` as it is) is refused here rather than recorded as negative
  energy; Zeus's "measured as zero" ``UserWarning`` for a window shorter than the counter's
  update period becomes a note on that window.

What Zeus does not do, and this meter therefore no longer does: ``CUDA_VISIBLE_DEVICES``
given as ``GPU-``/``MIG-`` UUIDs (Zeus reads ``int(idx)`` for each entry, and refuses MIG
slices, which NVML cannot meter); such a value raises :class:`~scaling.errors.NoGPUError`
saying so. Zeus also reads the RAPL counters (``zeus.device.cpu``), but they are read by our
:class:`~profilers.energy.meters.rapl.RaplMeter`: see that module for why.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scaling.errors import MeterError, MissingMeterDependencyError, NoGPUError

from .base import J_PER_MJ, W_PER_MW, Clock, Measurement, MeterBase, SleepLoop

__all__ = ["NVML_COUNTER_RESOLUTION_S", "GPUDevice", "NvmlMeter", "load_zeus"]

#: How often NVML's total-energy counter changes value. Conservative: reported update
#: periods are 20 to 100 ms depending on the GPU generation.
NVML_COUNTER_RESOLUTION_S = 0.1

_INSTALL_HINT = "install zeus (`pip install 'diffusion-energy-scaling[gpu]'`)"
#: The start of the warning ZeusMonitor.end_window gives for a window the counter did not see.
_ZEUS_ZERO_WARNING = "The energy consumption of one or more GPUs was measured as zero"


def load_zeus() -> tuple[Any, Any, Any]:
    """Zeus's GPU layer, its ``ZeusMonitor`` and its error base class, or a
    :class:`~scaling.errors.MissingMeterDependencyError` saying how to install them."""
    try:
        import zeus.device.gpu as zeus_gpu
        from zeus.device.exception import ZeusBaseGPUError
        from zeus.monitor.energy import ZeusMonitor
    except ImportError as e:
        raise MissingMeterDependencyError(f"cannot import zeus ({e}); {_INSTALL_HINT}") from e
    return zeus_gpu, ZeusMonitor, ZeusBaseGPUError


@dataclass(frozen=True)
class GPUDevice:
    """One measured GPU: the index the process uses (also Zeus's), and its name."""

    cuda_index: int
    name: str
    has_counter: bool
    has_power: bool


class NvmlMeter(MeterBase):
    """GPU energy from NVML through Zeus: the energy counter and sampled power, per GPU.

    Parameters
    ----------
    gpu_indices : sequence of int, optional
        The GPUs to measure, as this process numbers them (``cuda:N``, after
        ``CUDA_VISIBLE_DEVICES``). Default: every visible GPU.
    sample_interval_s : float
        Power sampling period, 0.01 to 0.1 s. Each tick costs a few microseconds of Python
        plus the NVML calls, and a thread wake-up (benchmarks/bench_meter_overhead.py).
    clock : callable
        Seconds, monotonic. Default ``time.perf_counter``.
    start_sampler : bool
        Start the background sampling thread (tests drive :meth:`sample` by hand).
    record_trace : bool
        Keep every sample for :meth:`trace`.

    Raises
    ------
    NoGPUError
        Zeus finds no GPU, or no (requested) GPU is visible to this process.
    MissingMeterDependencyError
        ``zeus`` (or the ``pynvml`` it imports) is not installed.
    MeterError
        A GPU offers neither the energy counter nor power readings, or NVML fails.
    """

    name = "zeus(nvml)"

    def __init__(
        self,
        gpu_indices: Sequence[int] | None = None,
        sample_interval_s: float = 0.05,
        *,
        clock: Clock = time.perf_counter,
        start_sampler: bool = True,
        record_trace: bool = True,
    ) -> None:
        super().__init__(clock)
        self._loop: SleepLoop | None = None  # set first: close() runs on a half-built meter too
        if not (0.01 <= sample_interval_s <= 0.1):
            raise MeterError(
                f"`sample_interval_s`={sample_interval_s!r}: power is sampled every "
                "0.01 to 0.1 s; pass a value in that range"
            )
        self.sample_interval_s = float(sample_interval_s)
        zeus_gpu, zeus_monitor, self._zeus_error = load_zeus()
        self._gpus = self._open_gpus(zeus_gpu)
        self.devices, self._setup_notes, self._power = self._discover(gpu_indices)
        counter_gpus = [d.cuda_index for d in self.devices if d.has_counter]
        try:  # counter GPUs only: for the others ZeusMonitor would start a PowerMonitor
            self._monitor = zeus_monitor(gpu_indices=counter_gpus, cpu_indices=[], approx_instant_energy=False)
        except self._zeus_error as e:
            raise MeterError(f"Zeus could not start its monitor ({type(e).__name__}: {e}); check `nvidia-smi`") from e
        self._lock = threading.Lock()
        try:
            self._init_state(record_trace)
        except self._zeus_error as e:
            raise MeterError(f"NVML failed on the first reading ({type(e).__name__}: {e}); check `nvidia-smi`") from e
        if start_sampler:
            self._loop = SleepLoop.calling(self.sample, self.sample_interval_s, "zeus-power-sampler")
            self._loop.start()

    # -- discovery -----------------------------------------------------------------
    def _open_gpus(self, zeus_gpu):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        try:
            gpus = zeus_gpu.get_gpus()
        except zeus_gpu.ZeusGPUInitError as e:
            raise NoGPUError(
                f"Zeus found no GPU ({e}); `python -m zeus.show_env` says why. On a CPU-only "
                "machine use default_meter(), which falls back to estimates"
            ) from e
        except ValueError as e:  # Zeus's int() of a CUDA_VISIBLE_DEVICES entry
            raise NoGPUError(
                f"CUDA_VISIBLE_DEVICES={visible!r}: Zeus reads it as comma-separated GPU indices "
                f"({e}); give indices (`nvidia-smi -L` lists them), not UUIDs"
            ) from e
        except self._zeus_error as e:
            raise NoGPUError(
                f"Zeus could not open the GPUs named by CUDA_VISIBLE_DEVICES={visible!r} "
                f"({type(e).__name__}: {e}); fix or unset it, and check `nvidia-smi`"
            ) from e
        if len(gpus) == 0:
            raise NoGPUError(
                f"Zeus sees no GPU (CUDA_VISIBLE_DEVICES={visible!r}); check `nvidia-smi`, or use "
                "default_meter() to fall back to estimates"
            )
        return gpus

    def _discover(self, gpu_indices):
        gpus = self._gpus
        n = len(gpus)
        wanted = list(range(n)) if gpu_indices is None else [int(i) for i in gpu_indices]
        if not wanted or len(set(wanted)) != len(wanted) or any(not 0 <= i < n for i in wanted):
            raise NoGPUError(
                f"`gpu_indices`={list(gpu_indices) if gpu_indices is not None else None!r}: "
                f"this process sees {n} GPU(s), cuda:0..cuda:{n - 1} (CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}); pass distinct indices in that range"
            )
        notes: list[str] = []
        devices: list[GPUDevice] = []
        power: dict[int, Callable[[int], int]] = {}
        try:
            names = {i: gpus.get_name(i) for i in wanted}
            for i in wanted:
                has_counter = bool(gpus.supports_get_total_energy_consumption(i))
                reader = self._power_reader(i)
                if not has_counter and reader is None:
                    raise MeterError(
                        f"cuda:{i} ({names[i]}) reports neither an energy counter nor power through "
                        "NVML (a vGPU?); measure the whole GPU, or use default_meter(gpu_tdp_w=...) to estimate"
                    )
                if not has_counter:
                    notes.append(f"cuda:{i} has no energy counter: integrated sampled power")
                if reader is None:
                    notes.append(f"cuda:{i} reports no power: counter only, no samples")
                else:
                    power[i] = reader
                devices.append(GPUDevice(i, names[i], has_counter, reader is not None))
        except self._zeus_error as e:
            raise MeterError(f"NVML failed while Zeus probed the GPUs ({type(e).__name__}: {e}); "
                             "check the driver with `nvidia-smi -q -d POWER`") from e
        if len(set(names.values())) > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            notes.append(
                "mixed GPU models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may number "
                "the GPUs differently from NVML; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
            )
        return tuple(devices), notes, power

    def _power_reader(self, i: int) -> Callable[[int], int] | None:
        """Zeus's instantaneous power reading where the GPU has it, else its 1 s average."""
        from zeus.device.gpu.common import ZeusGPUNotSupportedError

        for reader in (self._gpus.get_instant_power_usage, self._gpus.get_average_power_usage):
            try:
                reader(i)
            except ZeusGPUNotSupportedError:
                continue
            return reader
        return None

    # -- sampling ------------------------------------------------------------------
    def _init_state(self, record_trace: bool) -> None:
        n = len(self.devices)
        self._energy_sampled_mj = [0.0] * n  # cumulative trapezoid integral, mW * s = mJ
        self._power_last_mw = [0] * n
        self._n_samples = 0
        self._record = record_trace
        self._trace_t: list[float] = []
        self._trace_p: list[list[int]] = [[] for _ in range(n)]
        self._trace_e: list[list[int]] = [[] for _ in range(n)]
        self._counter0 = [self._counter_mj(d) for d in self.devices] if record_trace else []
        self._t0 = self._clock()
        self._t_last = self._t0
        for k, d in enumerate(self.devices):
            if d.has_power:
                self._power_last_mw[k] = self._power[d.cuda_index](d.cuda_index)
        if record_trace:
            self._record_point(self._t0)

    def _counter_mj(self, d: GPUDevice) -> int:
        return self._gpus.get_total_energy_consumption(d.cuda_index) if d.has_counter else 0

    def sample(self) -> None:
        """Read every GPU's power once (the sampler thread calls this)."""
        with self._lock:
            t = self._clock()
            dt = t - self._t_last
            for k, d in enumerate(self.devices):
                if d.has_power:
                    p_mw = self._power[d.cuda_index](d.cuda_index)
                    self._energy_sampled_mj[k] += (self._power_last_mw[k] + p_mw) * 0.5 * dt
                    self._power_last_mw[k] = p_mw
            self._t_last = t
            self._n_samples += 1
            if self._record:
                self._record_point(t)

    def _record_point(self, t: float) -> None:
        self._trace_t.append(t - self._t0)
        for k, d in enumerate(self.devices):
            self._trace_p[k].append(self._power_last_mw[k])
            self._trace_e[k].append(self._counter_mj(d) - self._counter0[k] if d.has_counter else 0)

    @property
    def resolution_s(self) -> float:
        """The shortest window this meter resolves: the counter's update period where every
        GPU has the counter, else twice the power sampling period."""
        if self.devices and all(d.has_counter for d in self.devices):
            return NVML_COUNTER_RESOLUTION_S
        return 2.0 * self.sample_interval_s

    # -- windows -------------------------------------------------------------------
    def begin_window(self, key: str) -> None:
        super().begin_window(key)  # checks the key, takes the power snapshot
        try:
            self._monitor.begin_window(key, sync_execution=False)
        except self._zeus_error as e:
            self._open.pop(key, None)
            raise MeterError(f"NVML read failed at the start of window {key!r} ({type(e).__name__}: {e}); "
                             "check the GPU with `nvidia-smi`, then create a new meter") from e

    def end_window(self, key: str) -> Measurement:
        self._check_usable()
        if key not in self._open:
            return super().end_window(key)  # raises: no such window
        start = self._open.pop(key)
        # the clock, then the counter: the order begin_window read them in
        try:
            end = self._snapshot()
        except BaseException:
            self._monitor.end_window(key, sync_execution=False, cancel=True)  # reads nothing
            raise
        try:
            with warnings.catch_warnings():
                # a window the counter did not see: said in this window's notes instead
                warnings.filterwarnings("ignore", message=_ZEUS_ZERO_WARNING, category=UserWarning)
                zm = self._monitor.end_window(key, sync_execution=False)
        except self._zeus_error as e:
            raise MeterError(f"NVML read failed at the end of window {key!r} ({type(e).__name__}: {e}); "
                             "check the GPU with `nvidia-smi`, then create a new meter") from e
        return self._measure_window(key, start, end, zm.gpu_energy)

    def _snapshot(self):
        self._raise_sampler_error()
        try:
            self.sample()
        except self._zeus_error as e:
            raise MeterError(
                f"NVML read failed at a window boundary ({type(e).__name__}: {e}); check the GPU with "
                "`nvidia-smi`, then create a new meter"
            ) from e
        with self._lock:
            return self._t_last, tuple(self._energy_sampled_mj), self._n_samples

    def _measure_window(self, key, start, end, counter_j: dict[int, float]) -> Measurement:
        t0, sampled0, n0 = start
        t1, sampled1, n1 = end
        notes = list(self._setup_notes)
        per_gpu: dict[int, float] = {}
        counter_sum: float | None = 0.0
        sampled_sum: float | None = 0.0
        for k, d in enumerate(self.devices):
            s_j = (sampled1[k] - sampled0[k]) * J_PER_MJ if d.has_power else None
            c_j = counter_j.get(d.cuda_index) if d.has_counter else None
            if c_j is not None and c_j < 0:
                raise MeterError(
                    f"the NVML energy counter of cuda:{d.cuda_index} went backwards by {-c_j:.3g} J in window "
                    f"{key!r} (a GPU reset or driver reload?): the window cannot be measured; create a new meter"
                )
            if c_j == 0.0 and t1 > t0:
                notes.append(f"cuda:{d.cuda_index} energy counter did not change in this "
                             f"{(t1 - t0) * 1e3:.3g} ms window (it updates about every "
                             f"{NVML_COUNTER_RESOLUTION_S * 1e3:.0f} ms)")
            per_gpu[d.cuda_index] = c_j if c_j is not None else s_j
            counter_sum = None if c_j is None or counter_sum is None else counter_sum + c_j
            sampled_sum = None if s_j is None or sampled_sum is None else sampled_sum + s_j
        if n1 - n0 < 2 and any(d.has_power and not d.has_counter for d in self.devices):
            notes.append(
                f"window shorter than the {self.sample_interval_s * 1e3:.0f} ms sampling "
                "period: the sampled-power integral is coarse"
            )
        return Measurement(
            name=key,
            time_s=t1 - t0,
            energy_gpu_j=sum(per_gpu.values()),
            energy_gpu_counter_j=counter_sum,
            energy_gpu_sampled_j=sampled_sum,
            energy_cpu_j=None,
            energy_ram_j=None,
            per_gpu_j=per_gpu,
            samples=n1 - n0,
            estimated={"energy_gpu_j": False},
            meter=self.name,
            notes="; ".join(notes),
        )

    def _raise_sampler_error(self) -> None:
        loop = self._loop
        if loop is not None and loop.error is not None:
            err = loop.error
            if not isinstance(err, self._zeus_error):
                raise err  # not NVML's doing: a bug in the sampler, shown as it is
            raise MeterError(
                f"the power sampler stopped: {type(err).__name__}: {err}; "
                "check the GPU with `nvidia-smi`, then create a new meter"
            ) from err

    # -- trace ---------------------------------------------------------------------
    def trace(self) -> dict[int, dict[str, list[float]]]:
        """Every sample so far, per GPU: ``{cuda_index: {"t_s", "power_w", "energy_j"}}``.

        ``energy_j`` is the counter since the meter started (absent for a GPU without the
        counter). This is the replay meter's CSV format.
        """
        with self._lock:
            out = {}
            for k, d in enumerate(self.devices):
                cols: dict[str, list[float]] = {"t_s": list(self._trace_t)}
                cols["power_w"] = [p * W_PER_MW for p in self._trace_p[k]]
                if d.has_counter:
                    cols["energy_j"] = [e * J_PER_MJ for e in self._trace_e[k]]
                out[d.cuda_index] = cols
            return out

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.stop()
        monitor = getattr(self, "_monitor", None)
        if monitor is not None:
            monitor.reset_windows()  # NVML itself stays open: Zeus's, for the whole process

    def __del__(self) -> None:  # a forgotten meter must not leave its thread sampling
        if not getattr(self, "_closed", True):
            self.close()
