"""Physical bounds on a prediction: time no faster than the roofline, power between idle and TDP.

The energy law and the time law are two separate fits; nothing in either stops a pair of
predictions that no GPU can produce. :func:`bound` applies three rules to one call, in order:

1. **Roofline.** The time is at least ``max(W / peak, Q / bandwidth)``: ``W`` the call's FLOP,
   ``peak`` the dense matmul peak of the GPU at the precision the matmuls run at
   (:func:`scaling.precision.precision_plan`; every FLOP counted at the tensor-core rate, so the
   bound is a true lower bound), ``Q`` the bytes the call moves and ``bandwidth`` the board's
   memory bandwidth. ``Q`` enters when the FLOP profile carries bytes (:func:`profile_byte`:
   the traffic of eager PyTorch with fused attention, as :mod:`profilers.flops.profile` counts
   it); for a profile without byte counts the bound is the compute term alone.
2. **At most TDP.** The implied average power ``E / T`` is at most the board's TDP, so the time is
   at least ``E / TDP``. The energy law is the better validated of the two (in the default law
   file its log-residual variance is the smaller in sample, leave-one-model-out and
   leave-one-GPU-out: ``sigma2`` and ``residual_spread``; and the law form was selected on energy), so the
   energy is kept and the **time is raised**.
3. **At least idle.** ``E / T`` is at least the board's idle power, so the time is at most
   ``E / P_idle``; the time is lowered when the law predicts more time than the energy can pay
   for. ``P_idle`` is the registry's ``idle_power_w`` when it has one; NVIDIA publishes none,
   so it is :data:`IDLE_FRACTION_OF_TDP` of the TDP. Only when that would take the time below the
   roofline is the energy raised instead (to ``P_idle`` x the roofline time).

A raised or lowered time moves its interval by the same factor (the law's relative spread is
kept), and the interval's low end is held at the roofline and at ``E_lo / TDP``. Each rule that
acts adds a line to :attr:`Bounded.clamps`; the estimate prints them as notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IDLE_FRACTION_OF_TDP = 0.10
"""The idle-power floor as a share of TDP where the registry has no idle figure (an assumption).
It is a floor, not an estimate of idle draw: every average power in the law's public data lies
between 30% (SDXL-Turbo on an H100, ML.ENERGY v2) and 99% (Stable Audio Open on an A40) of the
board's TDP (computed from datasets/public/runs.parquet, energy_gpu_j / duration_s per setting),
so a predicted average below 10% of TDP is outside anything measured and below what a board
draws while it computes."""

IDLE_SOURCE = ("idle floor: the registry's idle_power_w, else 10% of TDP (an assumption below every average power "
               "in the law's data: 30-99% of TDP)")


@dataclass(frozen=True)
class Bounded:
    """One call's energy and time after the physical bounds (J, s), each ``(value, lo, hi)``."""

    energy_j: tuple[float, float, float]
    time_s: tuple[float, float, float]
    time_factor: float                  # time after / time of the law (1.0: unchanged)
    roofline_time_s: float              # max(FLOP / peak, bytes / bandwidth)
    compute_time_s: float               # FLOP / peak
    memory_time_s: float | None         # bytes / bandwidth (None: no bytes in the profile)
    tdp_w: float
    idle_floor_w: float
    clamps: tuple[str, ...] = ()


def idle_floor_w(gpu: Any) -> float:
    """The least average power of a call on ``gpu``: its idle power, else a share of TDP."""
    idle = getattr(gpu, "idle_power_w", None)
    return float(idle) if idle is not None else IDLE_FRACTION_OF_TDP * float(gpu.tdp_w)


def profile_byte(prof: Any) -> float | None:
    """The bytes one call moves, from a FLOP profile that counts them (``has_bytes`` and
    ``total_byte`` of :class:`profilers.flops.profile.FlopProfile`), else None."""
    if getattr(prof, "has_bytes", True) is False:
        return None
    v = getattr(prof, "total_byte", None)
    if callable(v):
        v = v()
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def roofline_time_s(flop: float, peak_flop_per_s: float, byte: float | None = None,
                    bandwidth_byte_per_s: float | None = None) -> tuple[float, float, float | None]:
    """``(bound, compute term, memory term)``: the least time of a call, ``max(W / peak, Q / bw)``."""
    compute = float(flop) / float(peak_flop_per_s)
    memory = float(byte) / float(bandwidth_byte_per_s) if byte and bandwidth_byte_per_s else None
    return max(compute, memory or 0.0), compute, memory


def bound(energy_j: tuple[float, float, float], time_s: tuple[float, float, float], *, flop: float,
          peak_flop_per_s: float, gpu: Any, byte: float | None = None, precision: str = "") -> Bounded:
    """Apply the rules of the module doc to one call's energy and time (value, lo, hi)."""
    e, e_lo, e_hi = (float(v) for v in energy_j)
    t, t_lo, t_hi = (float(v) for v in time_s)
    tdp, idle = float(gpu.tdp_w), idle_floor_w(gpu)
    roof, compute, memory = roofline_time_s(flop, peak_flop_per_s, byte, gpu.memory_bandwidth_byte_per_s)
    base = Bounded((e, e_lo, e_hi), (t, t_lo, t_hi), 1.0, roof, compute, memory, tdp, idle)
    if not (t > 0 and e > 0):  # no time law (NaN) or nothing to bound
        return base
    clamps = []
    t_new = t
    what = "compute" if memory is None or compute >= memory else "memory"
    if roof > t_new:
        clamps.append(f"time raised from {t:.3g} s (the time law) to the roofline bound {roof:.3g} s ("
                      + (f"{flop:.3g} FLOP / {peak_flop_per_s:.3g} FLOP/s at {precision}" if what == "compute" else
                         f"{byte:.3g} byte / {gpu.memory_bandwidth_byte_per_s:.3g} byte/s")
                      + "): no call runs faster than the GPU's peak "
                      + ("FLOP/s" if what == "compute" else "memory bandwidth") + " allows")
        t_new = roof
    if e / t_new > tdp:
        clamps.append(f"time raised from {t_new:.3g} s to {e / tdp:.3g} s = energy / TDP: the time law implied "
                      f"{e / t_new:.0f} W, above the board's {tdp:.0f} W; the energy law (the better validated) is "
                      "kept and the time adjusted")
        t_new = e / tdp
    if e / t_new < idle:
        if e / idle >= roof:
            clamps.append(f"time lowered from {t_new:.3g} s to {e / idle:.3g} s = energy / idle floor "
                          f"({idle:.0f} W): the time law implied {e / t_new:.0f} W, below what the board draws idle")
            t_new = e / idle
        else:
            e_new = idle * roof
            clamps.append(f"energy raised from {e:.3g} J to {e_new:.3g} J = idle floor ({idle:.0f} W) x roofline "
                          f"time {roof:.3g} s: the energy law predicted less than the board draws idle in the "
                          "least time the call can take")
            k_e = e_new / e
            e, e_lo, e_hi = e_new, e_lo * k_e, e_hi * k_e
            t_new = roof
    k = t_new / t
    lo, hi = t_lo * k, t_hi * k
    floor = max(roof, e_lo / tdp)
    if floor > lo * (1 + 1e-9) and floor <= t_new:
        clamps.append(f"time interval's low end held at {floor:.3g} s (was {lo:.3g} s): "
                      + ("the roofline bound" if floor == roof else "the interval's low energy / TDP"))
    lo = min(max(lo, floor), t_new)
    hi = max(hi, t_new)
    return Bounded((e, e_lo, e_hi), (t_new, lo, hi), k, roof, compute, memory, tdp, idle, tuple(clamps))
