"""NVIDIA GPU energy through NVML (``nvidia-ml-py``, imported as ``pynvml``).

Two sources per GPU, both recorded because they can disagree:

- the total-energy counter, ``nvmlDeviceGetTotalEnergyConsumption`` (Units: mJ since the
  driver was loaded; Volta and newer). Preferred.
- power, ``nvmlDeviceGetPowerUsage`` (Units: mW), sampled by a background thread every
  ``sample_interval_s`` (10 to 100 ms) and integrated with the trapezoid rule. On Ampere
  and newer the driver averages this reading over about one second, so short phases
  smear into their neighbours; the counter does not.

A GPU without the counter (``NVMLError_NotSupported``) falls back to the sampled integral
and says so in the notes. A counter that wraps or resets never yields negative energy
(:class:`~profilers.energy.meters.base.CounterAccumulator`).

Only the GPUs this process uses are measured: ``CUDA_VISIBLE_DEVICES`` entries (indices
or ``GPU-``/``MIG-`` UUID prefixes) are mapped to NVML handles, and ``gpu_indices`` are
the indices the process sees (``cuda:N``). NVML enumerates by PCI bus id; CUDA does too
only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, so set it on machines that mix GPU models.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from scaling.errors import MeterError, MissingMeterDependencyError, NoGPUError

from .base import J_PER_MJ, W_PER_MW, Clock, CounterAccumulator, Measurement, MeterBase, SleepLoop

#: NVML's energy counter is an unsigned 64-bit integer of millijoules.
NVML_ENERGY_MODULUS_MJ = 2**64

#: How often NVML's total-energy counter changes value. Conservative: reported update
#: periods are 20 to 100 ms depending on the GPU generation.
NVML_COUNTER_RESOLUTION_S = 0.1

_INSTALL_HINT = "install nvidia-ml-py (`pip install 'diffusion-energy-scaling[gpu]'`)"


def load_pynvml() -> ModuleType:
    """Import ``pynvml`` (from ``nvidia-ml-py``), or raise a
    :class:`~scaling.errors.MissingMeterDependencyError` saying how."""
    try:
        import pynvml
    except ImportError as e:
        raise MissingMeterDependencyError(f"cannot import pynvml ({e}); {_INSTALL_HINT}") from e
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class GPUDevice:
    """One measured GPU: the index the process uses, and what NVML calls it."""

    cuda_index: int
    nvml_index: int
    uuid: str
    name: str
    handle: Any
    has_counter: bool
    has_power: bool


def parse_cuda_visible_devices(value: str | None, uuids: Sequence[str]) -> tuple[list[int], str]:
    """Map ``CUDA_VISIBLE_DEVICES`` onto NVML indices, as CUDA reads it.

    Parameters
    ----------
    value : str or None
        The variable's value; None when unset (every GPU is visible).
    uuids : sequence of str
        The UUID of each NVML device, in NVML order.

    Returns
    -------
    (nvml_indices, note)
        ``nvml_indices[i]`` is the NVML index of ``cuda:i``. Like CUDA, the list stops at
        the first entry that names no device; ``note`` says so when that happens.
    """
    if value is None:
        return list(range(len(uuids))), ""
    out: list[int] = []
    for raw in value.split(","):
        token = raw.strip()
        if not token:
            break
        match: int | None = None
        if token.lstrip("-").isdigit():
            i = int(token)
            match = i if 0 <= i < len(uuids) else None
        elif token.startswith(("GPU-", "MIG-")):
            hits = [i for i, u in enumerate(uuids) if u.startswith(token)]
            match = hits[0] if len(hits) == 1 else None
        if match is None or match in out:
            note = (
                f"CUDA_VISIBLE_DEVICES={value!r}: entry {token!r} names no single device "
                f"(NVML sees {len(uuids)}), so CUDA ignores it and every entry after it"
            )
            return out, note
        out.append(match)
    return out, ""


class NvmlMeter(MeterBase):
    """GPU energy from NVML: the energy counter and sampled power, per GPU.

    Parameters
    ----------
    gpu_indices : sequence of int, optional
        The GPUs to measure, as this process numbers them (``cuda:N``, after
        ``CUDA_VISIBLE_DEVICES``). Default: every visible GPU.
    sample_interval_s : float
        Power sampling period, 0.01 to 0.1 s. Each tick costs a few microseconds of
        Python plus the NVML calls, and a thread wake-up: at the default 50 ms the
        sampler takes about 0.2 % of one core (benchmarks/bench_meter_overhead.py).
    nvml : module, optional
        The ``pynvml`` module; injected by tests. Default: ``import pynvml``.
    clock : callable
        Seconds, monotonic. Default ``time.perf_counter``.
    start_sampler : bool
        Start the background sampling thread (tests drive :meth:`sample` by hand).
    env : mapping, optional
        Where to read ``CUDA_VISIBLE_DEVICES`` and ``CUDA_DEVICE_ORDER``; default ``os.environ``.

    Raises
    ------
    NoGPUError
        NVML cannot start, or no (requested) GPU is visible to this process.
    MissingMeterDependencyError
        ``pynvml`` is not installed.
    MeterError
        A GPU offers neither the energy counter nor power readings.
    """

    name = "nvml"

    def __init__(
        self,
        gpu_indices: Sequence[int] | None = None,
        sample_interval_s: float = 0.05,
        *,
        nvml: ModuleType | None = None,
        clock: Clock = time.perf_counter,
        start_sampler: bool = True,
        record_trace: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(clock)
        self._loop: SleepLoop | None = None  # set first: close() runs on a half-built meter too
        self._initialised = False
        if not (0.01 <= sample_interval_s <= 0.1):
            raise MeterError(
                f"`sample_interval_s`={sample_interval_s!r}: NVML power is sampled every "
                "0.01 to 0.1 s; pass a value in that range"
            )
        self.sample_interval_s = float(sample_interval_s)
        self._nvml = nvml if nvml is not None else load_pynvml()
        self._lock = threading.Lock()
        env = os.environ if env is None else env
        self.devices, self._setup_notes = self._discover(gpu_indices, env)
        try:
            self._init_state(record_trace)
        except BaseException:
            self._shutdown_nvml()
            raise
        if start_sampler:
            self._loop = SleepLoop.calling(self.sample, self.sample_interval_s, "nvml-power-sampler")
            self._loop.start()

    # -- discovery -----------------------------------------------------------------
    def _discover(self, gpu_indices, env) -> tuple[tuple[GPUDevice, ...], list[str]]:
        nv = self._nvml
        try:
            nv.nvmlInit()
        except nv.NVMLError as e:
            raise NoGPUError(
                f"NVML could not start ({_text(e)}); no NVIDIA driver is visible to this "
                "process: on a CPU-only machine use default_meter(), which falls back to "
                "estimates"
            ) from e
        self._initialised = True
        try:
            return self._discover_devices(gpu_indices, env)
        except BaseException:
            self._shutdown_nvml()
            raise

    def _discover_devices(self, gpu_indices, env):
        nv = self._nvml
        notes: list[str] = []
        try:
            count = nv.nvmlDeviceGetCount()
            handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            uuids = [_text(nv.nvmlDeviceGetUUID(h)) for h in handles]
            names = [_text(nv.nvmlDeviceGetName(h)) for h in handles]
        except nv.NVMLError as e:
            raise MeterError(f"NVML could not list the GPUs ({_text(e)}); check `nvidia-smi`") from e
        if count == 0:
            raise NoGPUError(
                "NVML started but reports 0 GPUs; check `nvidia-smi`, or use default_meter() "
                "to fall back to estimates"
            )
        visible, note = parse_cuda_visible_devices(env.get("CUDA_VISIBLE_DEVICES"), uuids)
        if note:
            notes.append(note)
        if not visible:
            raise NoGPUError(
                f"no GPU is visible to this process (CUDA_VISIBLE_DEVICES="
                f"{env.get('CUDA_VISIBLE_DEVICES')!r}, NVML sees {count}); unset or fix "
                "CUDA_VISIBLE_DEVICES, or use default_meter() to fall back to estimates"
            )
        if len({names[i] for i in visible}) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            notes.append(
                "mixed GPU models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: CUDA may number "
                "the GPUs differently from NVML; set CUDA_DEVICE_ORDER=PCI_BUS_ID"
            )
        wanted = list(range(len(visible))) if gpu_indices is None else [int(i) for i in gpu_indices]
        bad = [i for i in wanted if not 0 <= i < len(visible)]
        if bad or not wanted or len(set(wanted)) != len(wanted):
            raise NoGPUError(
                f"`gpu_indices`={list(gpu_indices) if gpu_indices is not None else None!r}: "
                f"this process sees {len(visible)} GPU(s), cuda:0..cuda:{len(visible) - 1} "
                f"(CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')!r}); pass distinct "
                "indices in that range"
            )
        devices = []
        for cuda_index in wanted:
            k = visible[cuda_index]
            has_counter = self._probe(nv.nvmlDeviceGetTotalEnergyConsumption, handles[k], names[k])
            has_power = self._probe(nv.nvmlDeviceGetPowerUsage, handles[k], names[k])
            if not (has_counter or has_power):
                raise MeterError(
                    f"cuda:{cuda_index} ({names[k]}, {uuids[k]}) reports neither an energy "
                    "counter nor power through NVML (a MIG instance or vGPU?); measure the "
                    "whole GPU, or use default_meter(gpu_tdp_w=...) to estimate"
                )
            if not has_counter:
                notes.append(f"cuda:{cuda_index} has no energy counter: integrated sampled power")
            if not has_power:
                notes.append(f"cuda:{cuda_index} reports no power: counter only, no samples")
            devices.append(GPUDevice(cuda_index, k, uuids[k], names[k], handles[k], has_counter, has_power))
        return tuple(devices), notes

    def _probe(self, fn, handle, gpu_name: str) -> bool:
        nv = self._nvml
        try:
            fn(handle)
        except nv.NVMLError_NotSupported:
            return False
        except nv.NVMLError as e:
            raise MeterError(
                f"NVML {fn.__name__} failed on {gpu_name} ({_text(e)}); check the driver "
                "with `nvidia-smi -q -d POWER`"
            ) from e
        return True

    # -- sampling ------------------------------------------------------------------
    def _init_state(self, record_trace: bool) -> None:
        n = len(self.devices)
        self._energy_sampled_mj = [0.0] * n  # cumulative trapezoid integral, mW * s = mJ
        self._power_last_mw = [0] * n
        self._counters: list[CounterAccumulator | None] = [None] * n
        self._n_samples = 0
        self._record = record_trace
        self._trace_cap = 4096 if record_trace else 1
        self._trace_n = 0
        self._trace_t = [0.0] * self._trace_cap
        self._trace_p = [[0] * self._trace_cap for _ in range(n)]
        self._trace_e = [[0] * self._trace_cap for _ in range(n)]
        self._t0 = self._clock()
        self._t_last = self._t0
        nv = self._nvml
        for i, d in enumerate(self.devices):
            if d.has_power:
                self._power_last_mw[i] = nv.nvmlDeviceGetPowerUsage(d.handle)
            if d.has_counter:
                first = nv.nvmlDeviceGetTotalEnergyConsumption(d.handle)
                self._counters[i] = CounterAccumulator(first, NVML_ENERGY_MODULUS_MJ, resettable=True)
        if record_trace:
            self._record_point(self._t0)

    def sample(self) -> None:
        """Read every GPU's power and energy counter once (the sampler thread calls this)."""
        nv = self._nvml
        with self._lock:
            t = self._clock()
            dt = t - self._t_last
            for i, d in enumerate(self.devices):
                if d.has_power:
                    p_mw = nv.nvmlDeviceGetPowerUsage(d.handle)
                    self._energy_sampled_mj[i] += (self._power_last_mw[i] + p_mw) * 0.5 * dt
                    self._power_last_mw[i] = p_mw
                c = self._counters[i]
                if c is not None:
                    c.update(nv.nvmlDeviceGetTotalEnergyConsumption(d.handle))
            self._t_last = t
            self._n_samples += 1
            if self._record:
                self._record_point(t)

    def _record_point(self, t: float) -> None:
        n = self._trace_n
        if n == self._trace_cap:  # grow by doubling: amortised O(1), rare
            self._trace_t.extend([0.0] * n)
            for col in (*self._trace_p, *self._trace_e):
                col.extend([0] * n)
            self._trace_cap *= 2
        self._trace_t[n] = t - self._t0
        for i in range(len(self.devices)):
            self._trace_p[i][n] = self._power_last_mw[i]
            c = self._counters[i]
            self._trace_e[i][n] = c.total if c is not None else 0
        self._trace_n = n + 1

    @property
    def resolution_s(self) -> float:
        """The shortest window this meter resolves: the counter's update period where every
        GPU has the counter, else twice the power sampling period."""
        if self.devices and all(d.has_counter for d in self.devices):
            return NVML_COUNTER_RESOLUTION_S
        return 2.0 * self.sample_interval_s

    # -- windows -------------------------------------------------------------------
    def _snapshot(self):
        self._raise_sampler_error()
        try:
            self.sample()
        except self._nvml.NVMLError as e:
            raise MeterError(
                f"NVML read failed at a window boundary ({_text(e)}); check the GPU with "
                "`nvidia-smi`, then create a new meter"
            ) from e
        with self._lock:
            return (
                self._t_last,
                tuple(self._energy_sampled_mj),
                tuple(c.total if c is not None else None for c in self._counters),
                tuple((c.wraps, c.resets) if c is not None else (0, 0) for c in self._counters),
                self._n_samples,
            )

    def _measure(self, key, start, end) -> Measurement:
        t0, sampled0, counter0, events0, n0 = start
        t1, sampled1, counter1, events1, n1 = end
        notes = list(self._setup_notes)
        per_gpu: dict[int, float] = {}
        counter_j: float | None = 0.0
        sampled_j: float | None = 0.0
        for i, d in enumerate(self.devices):
            s_j = (sampled1[i] - sampled0[i]) * J_PER_MJ if d.has_power else None
            c_j = (counter1[i] - counter0[i]) * J_PER_MJ if d.has_counter else None
            per_gpu[d.cuda_index] = c_j if c_j is not None else s_j
            counter_j = None if c_j is None or counter_j is None else counter_j + c_j
            sampled_j = None if s_j is None or sampled_j is None else sampled_j + s_j
            wraps = events1[i][0] - events0[i][0]
            resets = events1[i][1] - events0[i][1]
            if wraps:
                notes.append(f"cuda:{d.cuda_index} energy counter wrapped {wraps}x: unwrapped")
            if resets:
                notes.append(
                    f"cuda:{d.cuda_index} energy counter reset {resets}x (driver reload?): "
                    "energy before each reset within its sample tick is lost"
                )
        if n1 - n0 < 2 and any(d.has_power and not d.has_counter for d in self.devices):
            notes.append(
                f"window shorter than the {self.sample_interval_s * 1e3:.0f} ms sampling "
                "period: the sampled-power integral is coarse"
            )
        return Measurement(
            name=key,
            time_s=t1 - t0,
            energy_gpu_j=sum(per_gpu.values()),
            energy_gpu_counter_j=counter_j,
            energy_gpu_sampled_j=sampled_j,
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
            if not isinstance(err, self._nvml.NVMLError):
                raise err  # not NVML's doing: a bug in the sampler, shown as it is
            raise MeterError(
                f"the NVML power sampler stopped: {type(err).__name__}: {_text(err)}; "
                "check the GPU with `nvidia-smi`, then create a new meter"
            ) from err

    # -- trace ---------------------------------------------------------------------
    def trace(self) -> dict[int, dict[str, list[float]]]:
        """Every sample so far, per GPU: ``{cuda_index: {"t_s", "power_w", "energy_j"}}``.

        ``energy_j`` is the unwrapped counter since the meter started (absent for a GPU
        without the counter). This is the replay meter's CSV format.
        """
        with self._lock:
            n = self._trace_n
            t = self._trace_t[:n]
            out = {}
            for i, d in enumerate(self.devices):
                cols: dict[str, list[float]] = {"t_s": list(t)}
                cols["power_w"] = [p * W_PER_MW for p in self._trace_p[i][:n]]
                if d.has_counter:
                    cols["energy_j"] = [e * J_PER_MJ for e in self._trace_e[i][:n]]
                out[d.cuda_index] = cols
            return out

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop is not None:
            self._loop.stop()
        self._shutdown_nvml()

    def _shutdown_nvml(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                pass

    def __del__(self) -> None:  # a forgotten meter must not leave its thread sampling
        if not self._closed:
            self.close()
