"""The runs-table rows of one measured call: what the runner appends, built by pure functions.

:func:`base_row` holds the columns every row of a call shares (identity, setting, hardware,
protocol, FLOPs); :func:`call_rows` joins it with the per-phase fields of
:func:`profilers.energy.phases.rows_of`, adds the ``cpu_only`` and ``idle_subtracted`` flags,
and writes the call's context (prompt, seed, idle baseline, device, weights) into the notes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["RUNNER_SOURCE", "base_row", "call_rows"]

RUNNER_SOURCE = "scaling-runner"
"""The ``source`` of every row this runner writes."""

_FLOP_ROLES = ("text_encoder", "denoiser", "decoder", "vocoder")


def base_row(built, setting, *, run_id: str, started: datetime, repeat: int, gpu: str | None,
             gpu_key: str | None, warmup: int, flops: Mapping[str, float], flop_error: str | None,
             idle_power_w: float | None) -> dict[str, Any]:
    """The columns every row of one call shares. ``built``: the
    :class:`~profilers.energy.pipelines.BuiltPipeline`; ``setting``: its generation setting."""
    spec = built.spec
    registered = spec.family != "tiny" and not spec.key.startswith("local:")
    row = {
        "run_id": run_id,
        "timestamp": started,
        "source": RUNNER_SOURCE,
        "model": spec.id,
        "model_key": spec.key if registered else None,
        "modality": setting.modality,
        "gpu": gpu,
        "gpu_key": gpu_key,
        "gpu_count": 1,
        "precision": setting.precision,
        "height": setting.height,
        "width": setting.width,
        "frames": setting.frames,
        "fps": spec.defaults.get("fps") if setting.modality == "video" else None,
        "audio_seconds": setting.audio_seconds,
        "steps": setting.steps,
        "guidance_scale": setting.guidance_scale,
        "cfg": setting.cfg,
        "batch_size": setting.n_outputs,
        "idle_power_w": idle_power_w,
        "n_repeats": 1,
        "repeat": repeat,
        "warmup": warmup,
        "flop_error": flop_error if not flops else None,
    }
    for role in _FLOP_ROLES:
        row[f"flop_{role}"] = flops.get(role) if flops else None
    return row


def call_rows(rows: Sequence[dict[str, Any]], base: Mapping[str, Any], *, context: str, cpu_only: bool,
              idle_power_w: float | None) -> list[dict[str, Any]]:
    """The rows to append for one call: ``base`` joined with each phase row.

    ``idle_power_w``: subtract this idle power x duration from each row's GPU energy
    (flagged ``idle_subtracted``, the raw figure in the notes); None: nothing subtracted.
    """
    table = []
    for phase_row in rows:
        row = dict(phase_row)
        full = {**base, **row}
        flags = [f for f in (row.get("flags") or "").split(";") if f]
        if cpu_only:
            flags.append("cpu_only")
        if idle_power_w is not None and full.get("energy_gpu_j") and full.get("duration_s"):
            raw = full["energy_gpu_j"]
            net = raw - idle_power_w * full["duration_s"]
            if net > 0:
                full["energy_gpu_j"] = net
                flags.append("idle_subtracted")
                row["notes"] = (f"GPU energy net of idle ({raw:.4g} J raw - {idle_power_w:.1f} W x "
                                f"{full['duration_s']:.4g} s); " + row["notes"])
            else:
                row["notes"] = "idle not subtracted: it would leave <= 0 J; " + row["notes"]
        full["flags"] = ";".join(dict.fromkeys(flags))
        full["notes"] = "; ".join(x for x in (row["notes"], context) if x)
        table.append(full)
    return table
