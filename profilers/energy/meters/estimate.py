"""The estimate meter: elapsed time x a stated power, always flagged as an estimate.

Used where nothing can measure (a CPU-only CI machine, a GPU without NVML): the runner
still runs and its rows say which figures are estimates and what power they assumed.
The power comes from the caller: a GPU's TDP from the hardware registry
(:meth:`EstimateMeter.for_gpu`), or a CPU power the user states. Without any power the
meter reports time only (energies None).
"""

from __future__ import annotations

import math
import time

from scaling.errors import MeterError

from .base import Clock, Measurement, MeterBase


def _check_power(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise MeterError(f"`{name}`={value!r}: an assumed power must be a finite number of watts > 0")
    return float(value)


class EstimateMeter(MeterBase):
    """Energy = elapsed time x assumed power. Every energy it reports is an estimate.

    Parameters
    ----------
    gpu_power_w : float, optional
        Power of one GPU, e.g. its TDP from the hardware registry.
    gpu_count : int
        How many GPUs draw ``gpu_power_w`` each; ``per_gpu_j`` has keys 0..gpu_count-1.
    cpu_power_w, ram_power_w : float, optional
        CPU package and RAM power, as stated by the caller.
    source : str
        Where the powers come from, for the notes (``"TDP of H100 SXM, hardware registry"``).
    clock : callable
        Seconds, monotonic.
    """

    name = "estimate"
    resolution_s = 0.0  # time x power: any window, however short

    def __init__(
        self,
        *,
        gpu_power_w: float | None = None,
        gpu_count: int = 1,
        cpu_power_w: float | None = None,
        ram_power_w: float | None = None,
        source: str = "",
        clock: Clock = time.perf_counter,
    ) -> None:
        super().__init__(clock)
        self.gpu_power_w = _check_power("gpu_power_w", gpu_power_w)
        self.cpu_power_w = _check_power("cpu_power_w", cpu_power_w)
        self.ram_power_w = _check_power("ram_power_w", ram_power_w)
        if not (isinstance(gpu_count, int) and gpu_count >= 1):
            raise MeterError(f"`gpu_count`={gpu_count!r}: pass an integer >= 1")
        self.gpu_count = gpu_count
        self.source = source

    @classmethod
    def for_gpu(cls, gpu: str, gpu_count: int = 1, **kwargs) -> EstimateMeter:
        """An estimate at the TDP of ``gpu`` (any name the hardware registry resolves).

        Raises :class:`~scaling.errors.UnknownGPUError` for a GPU the registry lacks.
        """
        from scaling.hardware import resolve_gpu

        spec = resolve_gpu(gpu)
        return cls(
            gpu_power_w=spec.tdp_w,
            gpu_count=gpu_count,
            source=f"the TDP of {spec.key} in the hardware registry",
            **kwargs,
        )

    @property
    def assumed_power_w(self) -> dict[str, float]:
        out = {}
        if self.gpu_power_w is not None:
            out["gpu"] = self.gpu_power_w
        if self.cpu_power_w is not None:
            out["cpu"] = self.cpu_power_w
        if self.ram_power_w is not None:
            out["ram"] = self.ram_power_w
        return out

    def _snapshot(self) -> float:
        return self._clock()

    def _measure(self, key: str, start: float, end: float) -> Measurement:
        t = end - start
        assumed = self.assumed_power_w
        gpu_each = t * self.gpu_power_w if self.gpu_power_w is not None else None
        gpu_j = gpu_each * self.gpu_count if gpu_each is not None else None
        cpu_j = t * self.cpu_power_w if self.cpu_power_w is not None else None
        ram_j = t * self.ram_power_w if self.ram_power_w is not None else None
        estimated = {
            f: True
            for f, v in (("energy_gpu_j", gpu_j), ("energy_cpu_j", cpu_j), ("energy_ram_j", ram_j))
            if v is not None
        }
        if assumed:
            parts = []
            if self.gpu_power_w is not None:
                parts.append(f"GPU {self.gpu_power_w:g} W x {self.gpu_count}")
            if self.cpu_power_w is not None:
                parts.append(f"CPU {self.cpu_power_w:g} W")
            if self.ram_power_w is not None:
                parts.append(f"RAM {self.ram_power_w:g} W")
            notes = "estimated: elapsed time x assumed power (" + ", ".join(parts) + ")"
            if self.source:
                notes += f", from {self.source}"
        else:
            notes = (
                "nothing could measure energy here and no power was assumed: time only; "
                "pass `assume_power_w` (CPU) or `gpu_tdp_w` to default_meter() for estimates"
            )
        return Measurement(
            name=key,
            time_s=t,
            energy_gpu_j=gpu_j,
            energy_gpu_counter_j=None,
            energy_gpu_sampled_j=None,
            energy_cpu_j=cpu_j,
            energy_ram_j=ram_j,
            per_gpu_j={i: gpu_each for i in range(self.gpu_count)} if gpu_each is not None else {},
            samples=0,
            estimated=estimated,
            meter=self.name,
            notes=notes,
            assumed_power_w=assumed,
        )
