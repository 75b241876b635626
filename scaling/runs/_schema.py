"""The runs-table schema as data: the columns, their vocabularies and the row helpers.

:data:`SCHEMA` is the one definition: every column has a dtype, a unit, whether it is
required, a description and the default that fills it when rows are *created*.
``datasets/README.md`` prints :func:`schema_markdown`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from scaling._version import __version__
from scaling.errors import DataError
from scaling.precision import PRECISIONS

SCHEMA_VERSION = 1
"""Bump when a column changes meaning or type. Adding an optional column does not."""

_META_VERSION = b"scaling.runs.schema_version"
_META_REPORT = b"scaling.runs.import_report"


def _checked_version(path: Any, metadata: Mapping[bytes, bytes] | None) -> int:
    """The schema version in a parquet file's ``metadata``; missing or newer than ours is a DataError."""
    meta = metadata or {}
    if _META_VERSION not in meta:
        raise DataError(f"{path}: no runs-table schema version in the parquet metadata (rule: write it with "
                        "`scaling data import` or scaling.runs.write_runs)")
    version = int(meta[_META_VERSION].decode())
    _refuse_newer(path, version)
    return version


def _refuse_newer(path: Any, version: int) -> None:
    if version > SCHEMA_VERSION:
        raise DataError(f"{path}: written with runs schema version {version}, this toolkit reads up to "
                        f"{SCHEMA_VERSION}: upgrade the package")


COMPONENT_PHASES = ("text_encoder", "denoiser", "decoder", "vocoder", "upsampler")
"""Phases that are one role of the pipeline (``upsampler``: a latent/spatial upsampler)."""

STAGE_PHASES = {
    "generate": "LTX-Video 0.9.7 multi-stage: first pass (text encoder + denoiser at reduced resolution)",
    "upsample": "LTX-Video 0.9.7 multi-stage: latent spatial upsampler x2 (no denoising steps)",
    "denoise": "LTX-Video 0.9.7 multi-stage: refinement denoiser pass at full resolution + VAE decode",
}
"""Stages of a multi-stage pipeline, kept as the source names them (see :mod:`scaling.runs`)."""

PHASES = ("total", *COMPONENT_PHASES, *STAGE_PHASES)
MODALITIES = ("image", "video", "audio")
ENERGY_COLUMNS = ("energy_gpu_j", "energy_cpu_j", "energy_ram_j")
FLOP_ROLE_COLUMNS = ("flop_text_encoder", "flop_denoiser", "flop_decoder", "flop_vocoder")
BYTE_ROLE_COLUMNS = ("byte_text_encoder", "byte_denoiser", "byte_decoder", "byte_vocoder")
KEY_COLUMNS = ("run_id", "phase", "repeat")
"""The columns whose values are unique together: one row per call, phase and repeat."""

PUBLIC_COLUMNS = (
    "source", "model", "modality", "gpu", "gpu_count", "precision", "height", "width", "frames", "fps",
    "audio_seconds", "steps", "guidance_scale", "batch_size", "energy_gpu_j", "energy_cpu_j",
    "energy_ram_j", "duration_s", "n_repeats", "phase", "meter", "notes",
)
"""The columns of every public energy CSV, in their order."""

_FLAG_RE = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Column:
    """One column of the runs table.

    ``dtype`` is the pandas dtype on read (``string``, ``Int64``, ``float64``, ``boolean``,
    ``datetime``); ``required`` means a value in every row; ``default`` fills a missing
    column or cell when rows are *created* (:func:`append_runs`, :func:`write_runs`), never
    on read.
    """

    name: str
    dtype: str
    unit: str
    required: bool
    description: str
    default: Any = None


def _package_version() -> str:
    return __version__


SCHEMA: tuple[Column, ...] = (
    Column("run_id", "string", "-", True, "identifier of one measured call; the phase rows of a call share it"),
    Column("timestamp", "datetime", "UTC", False, "start of the measured call"),
    Column("source", "string", "-", True, "who measured it: a public source name or this toolkit's runner"),
    Column("model", "string", "-", True, "model id as the source wrote it (public repository id)"),
    Column("model_key", "string", "-", False, "registry key the model id resolves to; empty when not registered"),
    Column("modality", "string", "-", True, "image, video or audio"),
    Column("gpu", "string", "-", False, "GPU name as the source wrote it (NVML name); empty when not stated"),
    Column("gpu_key", "string", "-", False, "hardware-registry key the GPU name resolves to; empty when unknown"),
    Column("gpu_count", "Int64", "count", True, "GPUs used by the call", 1),
    Column("precision", "string", "-", False, f"compute precision: {', '.join(PRECISIONS)}"),
    Column("height", "Int64", "px", False, "output height (image, video)"),
    Column("width", "Int64", "px", False, "output width (image, video)"),
    Column("frames", "Int64", "count", False, "frames actually generated (video)"),
    Column("fps", "float64", "1/s", False, "frame rate of the output video"),
    Column("audio_seconds", "float64", "s", False, "length of the generated audio"),
    Column("steps", "Int64", "count", False, "denoising steps actually run"),
    Column("guidance_scale", "float64", "-", False, "guidance scale; <= 1 means no classifier-free guidance"),
    Column("cfg", "boolean", "-", False, "classifier-free guidance on (two denoiser passes per step)"),
    Column("batch_size", "Int64", "count", True, "outputs made by the call; energies cover the whole batch", 1),
    Column("energy_gpu_j", "float64", "J", False, "GPU energy of the call and phase (all GPUs of the call)"),
    Column("energy_cpu_j", "float64", "J", False, "CPU energy of the call and phase"),
    Column("energy_ram_j", "float64", "J", False, "DRAM energy of the call and phase"),
    Column("duration_s", "float64", "s", False, "wall-clock time of the call and phase"),
    Column("idle_power_w", "float64", "W", False, "GPU idle power measured before the call (for subtraction)"),
    Column("n_repeats", "Int64", "count", True, "calls averaged into this row (1 = a single measured call)", 1),
    Column("repeat", "Int64", "index", False, "index of this call among the repeats of a run (0-based)"),
    Column("warmup", "Int64", "count", False, "warm-up calls made before the measured ones"),
    Column("phase", "string", "-", True, "total, a component (text_encoder, denoiser, decoder, vocoder, upsampler) "
                                          "or a pipeline stage (generate, upsample, denoise)", "total"),
    Column("meter", "string", "-", True, "what measured the energy: nvml, zeus(nvml), codecarbon, rapl, ..."),
    Column("estimated", "boolean", "-", True, "true when the energy is an estimate (no meter read it)", False),
    Column("flop", "float64", "FLOP", False, "FLOP of this row's phase for the whole call (batch included)"),
    Column("flop_text_encoder", "float64", "FLOP", False, "text-encoder FLOP of the whole call"),
    Column("flop_denoiser", "float64", "FLOP", False, "denoiser FLOP of the whole call (all steps, CFG included)"),
    Column("flop_decoder", "float64", "FLOP", False, "decoder (VAE decode) FLOP of the whole call"),
    Column("flop_vocoder", "float64", "FLOP", False, "vocoder FLOP of the whole call"),
    Column("byte", "float64", "byte", False, "bytes moved (read + written, activations and weights) by this row's "
                                             "phase for the whole call at the row's precision, from the closed-form "
                                             "profile (eager element-wise ops, fused SDPA)"),
    Column("byte_text_encoder", "float64", "byte", False, "text-encoder bytes moved in the whole call"),
    Column("byte_denoiser", "float64", "byte", False, "denoiser bytes moved in the whole call (all steps, CFG included)"),
    Column("byte_decoder", "float64", "byte", False, "decoder (VAE decode) bytes moved in the whole call"),
    Column("byte_vocoder", "float64", "byte", False, "vocoder bytes moved in the whole call"),
    Column("flop_error", "string", "-", False, "why `flop` is empty (unregistered model, no FLOP table, bad setting)"),
    Column("package_version", "string", "-", True, "version of this toolkit that wrote the row", None),
    Column("flags", "string", "-", True, "policy marks, ';'-separated (see scaling.app.importers.POLICIES)", ""),
    Column("notes", "string", "-", False, "free text: prompt, experiment, source remarks, import corrections"),
)

COLUMNS: dict[str, Column] = {c.name: c for c in SCHEMA}


def totals(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that each count one whole call once (``phase == "total"``)."""
    return df[df["phase"] == "total"]


def has_flag(df: pd.DataFrame, flag: str) -> pd.Series:
    """Boolean mask of the rows carrying ``flag`` in ``flags``."""
    return df["flags"].fillna("").map(lambda t: flag in t.split(";")).astype(bool)


def add_flag(flags: pd.Series, mask: pd.Series | np.ndarray, flag: str) -> pd.Series:
    """Return ``flags`` with ``flag`` added on the rows of ``mask`` (no duplicates)."""
    if not _FLAG_RE.match(flag):
        raise ValueError(f"flag {flag!r}: use [a-z0-9_]")
    mask = np.asarray(mask, dtype=bool)
    cur = flags.fillna("").astype(object)
    cur = cur.copy()
    sel = cur[mask]
    cur[mask] = sel.map(lambda t: t if flag in t.split(";") else (f"{t};{flag}" if t else flag))
    return cur.astype(pd.StringDtype())


def schema_table() -> pd.DataFrame:
    """The schema as a table: column, dtype, unit, required, default, description."""
    return pd.DataFrame([{"column": c.name, "dtype": c.dtype, "unit": c.unit, "required": c.required,
                          "default": "" if c.default is None else repr(c.default), "description": c.description}
                         for c in SCHEMA])


def schema_markdown() -> str:
    """The schema as a markdown table (what ``datasets/README.md`` shows)."""
    lines = ["| column | dtype | unit | required | description |", "|---|---|---|---|---|"]
    for c in SCHEMA:
        lines.append(f"| `{c.name}` | {c.dtype} | {c.unit} | {'yes' if c.required else ''} | {c.description} |")
    return "\n".join(lines)
