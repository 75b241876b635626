"""Features of a run for the laws: its FLOPs, and its GPU's figures at its precision.

The hardware figures come from the registry (:func:`scaling.hardware.resolve_gpu`), so a law
with hardware terms can be evaluated for any registered GPU, measured or not::

    hardware_features("h100", "bf16")
    # {'peak_flop_per_s': 9.895e14, 'memory_bandwidth_byte_per_s': 3.35e12, 'tdp_w': 700.0,
    #  'byte_per_value': 2.0}

Column order of the design matrix (:data:`DESIGN_COLUMNS`): ``flop``, ``steps``, then
:data:`HARDWARE_FEATURES`, then ``byte`` (the bytes moved by the call, read only by the roofline
forms of :mod:`fits.roofline`; 0 where the table has none). That order is the contract between the laws (``steps_column=1``),
the law file and ``fits.load_law``; it is defined with the law state (:mod:`fits.law`) and
re-exported here.

Physical priors (:data:`PRIORS`) for the hardware exponents, as energy per FLOP and time per
FLOP of a GPU running at a fixed share of its roofline::

    compute-bound  time/FLOP ~ 1 / peak(precision)            energy/FLOP ~ TDP / peak
    memory-bound   time/FLOP ~ byte per value / bandwidth      energy/FLOP ~ TDP * byte / bandwidth

Energy = power x time, and a busy GPU draws close to its power limit (TDP): the energy prior is
the time prior plus one power of TDP. Which prior wins is decided by leave-one-GPU-out
validation (``fits.validation``), not here.

Pure numpy + the registry; pandas only for :func:`design_matrix` on a runs table.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from fits.law import BYTE_COLUMN, DESIGN_COLUMNS, HARDWARE_FEATURES, STEPS_COLUMN, hardware_row
from scaling.errors import DataError
from scaling.hardware import GPUSpec, resolve_gpu
from scaling.precision import ACTIVATION_BYTE, normalize_precision, precision_plan

__all__ = [
    "BYTE_COLUMN",
    "BYTE_PER_VALUE",
    "DESIGN_COLUMNS",
    "HARDWARE_FEATURES",
    "PRIORS",
    "ROLE_FLOP_COLUMNS",
    "aggregate_settings",
    "design_matrix",
    "hardware_features",
    "hardware_vector",
    "prior_exponents",
    "SETTING_COLUMNS",
    "STEPS_COLUMN",
    "setting_groups",
]

#: Per-role FLOP columns of an annotated runs table (``scaling.app.importers.annotate_flops``).
ROLE_FLOP_COLUMNS: Mapping[str, str] = {
    "text_encoder": "flop_text_encoder",
    "denoiser": "flop_denoiser",
    "decoder": "flop_decoder",
    "vocoder": "flop_vocoder",
}

#: Bytes per activation value moved between ops at each requested precision: the law's
#: ``byte_per_value``: :data:`scaling.precision.ACTIVATION_BYTE` itself, under the law's name.
#: Weight-only formats (int8, nf4, fp4) compute with 16-bit activations, and fp8 keeps them 16-bit
#: between ops, so all of these are 2 bytes; their weight bytes and dequantisation traffic are in
#: :mod:`scaling.precision`.
BYTE_PER_VALUE: Mapping[str, float] = ACTIVATION_BYTE

#: Prior exponents of the hardware columns, per target (``energy`` or ``time``) and regime.
PRIORS: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    "energy": {
        "compute": {"peak_flop_per_s": -1.0, "memory_bandwidth_byte_per_s": 0.0, "tdp_w": 1.0, "byte_per_value": 0.0},
        "memory": {"peak_flop_per_s": 0.0, "memory_bandwidth_byte_per_s": -1.0, "tdp_w": 1.0, "byte_per_value": 1.0},
        "none": {"peak_flop_per_s": 0.0, "memory_bandwidth_byte_per_s": 0.0, "tdp_w": 0.0, "byte_per_value": 0.0},
    },
    "time": {
        "compute": {"peak_flop_per_s": -1.0, "memory_bandwidth_byte_per_s": 0.0, "tdp_w": 0.0, "byte_per_value": 0.0},
        "memory": {"peak_flop_per_s": 0.0, "memory_bandwidth_byte_per_s": -1.0, "tdp_w": 0.0, "byte_per_value": 1.0},
        "none": {"peak_flop_per_s": 0.0, "memory_bandwidth_byte_per_s": 0.0, "tdp_w": 0.0, "byte_per_value": 0.0},
    },
}


def prior_exponents(regime: str, target: str = "energy") -> tuple[float, ...]:
    """The prior exponents of :data:`HARDWARE_FEATURES` for ``regime`` and ``target``.

    Parameters
    ----------
    regime : {"compute", "memory", "none"}
    target : {"energy", "time"}
    """
    try:
        table = PRIORS[target][regime]
    except KeyError:
        raise ValueError(
            f"unknown prior {regime!r} for {target!r}: use one of {sorted(PRIORS['energy'])} "
            f"and target energy or time"
        ) from None
    return tuple(float(table[name]) for name in HARDWARE_FEATURES)


def hardware_features(gpu: str | GPUSpec, precision: str) -> dict[str, float]:
    """The hardware figures of ``gpu`` at ``precision``, named as in :data:`HARDWARE_FEATURES`.

    The precision goes through :func:`scaling.precision.precision_plan` (one mapping for fitting
    and prediction): ``peak_flop_per_s`` is the dense peak of the precision the matmuls run at
    (nf4 / fp4 / int8 -> bf16 peak: weight-only; fp8 -> fp8 peak on chips with fp8 tensor cores,
    bf16 peak elsewhere; fp32 -> the CUDA-core fp32 peak), ``byte_per_value`` the bytes per
    activation value (4 for fp32 / tf32, 2 otherwise). The dequantisation work of weight-only
    formats is not a feature: it is added at prediction time (:func:`scaling.precision.dequant_cost`).

    Raises
    ------
    UnknownGPUError
        If the GPU is not registered.
    InvalidSettingError
        If the precision is unknown.
    """
    return dict(zip(HARDWARE_FEATURES, hardware_vector(gpu, precision).tolist()))


def hardware_vector(gpu: str | GPUSpec, precision: str) -> np.ndarray:
    """:func:`hardware_features` as an array in column order, shape (4,) (:func:`fits.law.hardware_row`)."""
    spec = gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu)
    return hardware_row(spec, precision_plan(normalize_precision(precision), spec))


def design_matrix(runs, flop_column: str = "flop", source: str = "runs table") -> np.ndarray:
    """The law input for every row of an annotated runs table, shape (n_rows, 7).

    Columns: :data:`DESIGN_COLUMNS` (FLOP, steps, hardware figures, bytes moved). The bytes are
    the column named like ``flop_column`` with ``byte`` for ``flop`` (``byte``,
    ``byte_denoiser`` ...); a table without it, or a row without bytes, gets 0 there (the
    FLOP-only forms do not read it; the roofline forms refuse a row without bytes).

    Parameters
    ----------
    runs : pandas.DataFrame
        Needs ``flop_column``, ``steps``, ``gpu_key`` (or ``gpu``) and ``precision``.
    flop_column : str, default="flop"
        Which FLOP count is column 0 (``flop`` for the row's phase, or ``flop_denoiser`` ...).
    source : str
        Named in error messages (the file the table came from).

    Raises
    ------
    DataError
        A missing column, a missing or non-positive FLOP count, a GPU or precision that does not
        resolve; the message names the first bad row.
    """
    missing = [c for c in (flop_column, "steps", "precision") if c not in runs.columns]
    gpu_col = "gpu_key" if "gpu_key" in runs.columns else ("gpu" if "gpu" in runs.columns else None)
    if gpu_col is None:
        missing.append("gpu_key")
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}: a law needs FLOPs, the GPU and the precision")
    flop = runs[flop_column].to_numpy(dtype=float, na_value=np.nan)
    bad = ~(np.isfinite(flop) & (flop > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: row {runs.index[i]!r} has {flop_column}={float(flop[i])!r}: FLOP counts must be positive and finite "
            "(rows whose model has no FLOP profile cannot enter a FLOP law)"
        )
    steps = runs["steps"].to_numpy(dtype=float, na_value=np.nan)
    bad = ~(np.isfinite(steps) & (steps > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source}: row {runs.index[i]!r} has steps={steps[i]!r}: steps must be a positive number")
    hw = np.empty((len(runs), len(HARDWARE_FEATURES)))
    cache: dict[tuple[str, str], np.ndarray] = {}
    for i, (gpu, prec) in enumerate(zip(runs[gpu_col].tolist(), runs["precision"].tolist())):
        key = (gpu, prec)
        if key not in cache:
            if not isinstance(gpu, str) or not isinstance(prec, str):
                raise DataError(
                    f"{source}: row {runs.index[i]!r} has gpu={gpu!r}, precision={prec!r}: both are needed for "
                    "hardware features"
                )
            try:
                cache[key] = hardware_vector(gpu, prec)
            except ValueError as exc:  # UnknownGPUError / InvalidSettingError are ValueErrors
                raise DataError(f"{source}: row {runs.index[i]!r}: {exc}") from exc
        hw[i] = cache[key]
    byte_column = "byte" + flop_column[len("flop"):] if flop_column.startswith("flop") else None
    if byte_column in runs.columns:
        byte = runs[byte_column].to_numpy(dtype=float, na_value=np.nan)
        if np.any(np.isinf(byte) | (byte < 0)):
            i = int(np.flatnonzero(np.isinf(byte) | (byte < 0))[0])
            raise DataError(f"{source}: row {runs.index[i]!r} has {byte_column}={float(byte[i])!r}: byte counts must be "
                            ">= 0 and finite")
        byte = np.nan_to_num(byte, nan=0.0)
    else:
        byte = np.zeros(len(runs))
    return np.column_stack([flop, steps, hw, byte])


#: Columns that identify one setting (a configuration), when present.
SETTING_COLUMNS: tuple[str, ...] = (
    "model_key", "gpu_key", "precision", "height", "width", "frames", "audio_seconds", "steps", "batch_size", "cfg",
    "phase",
)


def setting_groups(runs, columns: tuple[str, ...] | None = None) -> np.ndarray:
    """An integer id per distinct setting (repeats and prompts of one configuration share it).

    Cross-validation folds and the bootstrap resample these groups, never single repeats.
    """
    import pandas as pd

    cols = [c for c in (columns or SETTING_COLUMNS) if c in runs.columns]
    if not cols:
        return np.arange(len(runs))
    key = runs[cols].astype("string").fillna("<NA>")
    return pd.MultiIndex.from_frame(key).factorize()[0] if len(cols) > 1 else pd.factorize(key[cols[0]])[0]


def aggregate_settings(rows, targets: tuple[str, ...] = ("energy_gpu_j", "duration_s")):
    """One row per distinct setting: the geometric mean of each target over its rows.

    Repeats and prompts of one configuration are one piece of evidence about the law; without
    this, a setting measured 300 times (a quality experiment) would outweigh a setting measured
    once by 300 to 1. ``n_rows`` counts the rows merged; ``sources`` lists where they came from.
    Other columns keep their first value (they are equal within a setting for the setting
    columns).
    """

    rows = rows.copy()
    rows["_group"] = setting_groups(rows)
    first = rows.groupby("_group", sort=True).first()
    out = first.copy()
    for t in targets:
        if t in rows.columns:
            vals = rows[t].astype(float)
            logs = np.log(vals.where(vals > 0))
            out[t] = np.exp(logs.groupby(rows["_group"]).mean())
    out["n_rows"] = rows.groupby("_group").size()
    if "source" in rows.columns:
        out["sources"] = rows.groupby("_group")["source"].agg(lambda s: ";".join(sorted(set(map(str, s)))))
    return out.reset_index(drop=True)
