"""Registry lookups shared by the importers: model and GPU keys, the CFG column, generated frames.

The lookups are done once per distinct id (26k rows, a dozen ids). A model or GPU that does
not resolve gets an empty key: the row is kept and counted in the report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from scaling.errors import UnknownGPUError, UnknownModelError
from scaling.hardware import resolve_gpu
from scaling.registry import ModelSpec, resolve_model

__all__ = ["generated_frames"]


def _resolve_models(models: pd.Series) -> pd.Series:
    """The registry key of each model id; empty where the id is not registered."""
    keys: dict[str, Any] = {}
    for m in models.dropna().unique():
        try:
            keys[m] = resolve_model(str(m)).key
        except UnknownModelError:
            keys[m] = None
    return models.map(keys).astype(pd.StringDtype())


def _resolve_gpus(gpus: pd.Series) -> pd.Series:
    """The hardware-registry key of each GPU name; empty where the name is not registered."""
    keys: dict[str, Any] = {}
    for g in gpus.dropna().unique():
        try:
            keys[g] = resolve_gpu(str(g)).key
        except UnknownGPUError:
            keys[g] = None
    return gpus.map(keys).astype(pd.StringDtype())


def _cfg_column(df: pd.DataFrame) -> pd.Series:
    """CFG on: the pipeline does real CFG and the scale (row, else the pipeline default) > 1.

    The same rule as :func:`scaling.settings.make_setting` (diffusers turns CFG off at <= 1),
    with one difference: a source that leaves the guidance unset ran the *pipeline's*
    ``__call__`` default, not a checkpoint's model-card advice. So a variant
    (``stabilityai/sdxl-turbo``: card 0.0, no CFG) measured with guidance unset takes its
    architecture's pipeline default (StableDiffusionXLPipeline: 5.0, CFG on).
    """
    out = pd.Series(pd.NA, index=df.index, dtype="boolean")
    for key, idx in df.groupby("model_key", dropna=True).groups.items():
        spec = resolve_model(str(key))
        arch = resolve_model(spec.architecture_key)
        gs = df.loc[idx, "guidance_scale"].astype("float64")
        default = arch.defaults.get("guidance_scale")
        gs = gs.fillna(np.nan if default is None else float(default))
        on = (arch.guidance_type == "cfg") & ~(gs <= 1.0)
        out.loc[idx] = on.to_numpy(dtype=bool)
    return out


_FRAME_ROUNDING_PIPELINES = ("WanPipeline",)
"""Pipelines that round a requested num_frames to ``num_frames // t * t + 1`` (t = VAE
temporal factor) before generating. Other video pipelines floor the *latent* frame count
(``(num_frames - 1) // t + 1``), which :func:`generated_frames` mirrors for FLOP purposes."""


def generated_frames(spec: ModelSpec, frames: int) -> int:
    """The frame count a pipeline actually generates for a requested ``frames``.

    WanPipeline: ``frames // 4 * 4 + 1`` (diffusers rounds and warns). Other pipelines with a
    temporal step t: the count with the same latent frames, ``(frames - 1) // t * t + 1``.
    """
    step = int(spec.rules.get("frame_step") or 1)
    frames = int(frames)
    if step <= 1:
        return frames
    if spec.pipeline_class in _FRAME_ROUNDING_PIPELINES:
        return max(frames // step * step + 1, 1) if frames % step != 1 else frames
    return (frames - 1) // step * step + 1 if (frames - 1) % step else frames
