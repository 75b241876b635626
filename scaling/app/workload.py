"""The workload file of ``scaling plan``: its schema (pydantic) and its loader.

A workload file (YAML)::

    jobs:                      # a mix of generation jobs (at least one)
      - model: wan2.1          # required
        res: 480p              # 480p | 720p | WxH (width first) | one number (a square)
        frames: 81
        count: 100000          # outputs; a whole number >= 1 (1e6 reads as 1,000,000); default 1
      - model: flux-dev
        steps: 28
        cfg: false             # true or false, unquoted: a quoted "false" is text, and refused
        count: 1e6
    gpus: [h100, a100, l40s]   # candidates (default: h100, a100); one name works too
    regions: [FR, US]          # ISO codes (optional; or `intensity: 300`, gCO2e/kWh; not both)
    precision: bf16            # optional, for every job (a job's own wins)
    pue: 1.2                   # optional, 1.0 to 5.0
    law: law.json              # optional; a relative path is relative to this file
    gpu_counts: [1, 2, 4, 8]   # optional: GPUs per call to choose from (multi-GPU law; default [1])
    max_latency_s: 120         # optional: the latency limit of one call, s (a job's own wins)

Job keys: ``model`` (or ``config``: a diffusers folder, relative to this file), ``name``, ``res``, ``frames``, ``seconds``, ``steps``, ``guidance``,
``cfg``, ``batch`` (or ``batch_size``), ``outputs_per_prompt``, ``precision``, ``count``, ``max_latency_s``.

The file is read by :func:`scaling._inputs.read_yaml` (UTF-8, YAML 1.2 booleans and numbers, a
key given twice refused) and checked against :class:`Workload` before any prediction; the first
error is one :class:`~scaling.errors.WorkloadError` line with the file's line:
``workload.yaml:7: job 2: `cfg` is 'false' (text); rule: true or false, unquoted ...``. What the
model accepts (a resolution, a frame count) is checked by the prediction, with the same prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scaling._inputs import (FiniteNumber, checked, finite_number, precision_name, read_yaml, resolution, text,
                             validate, whole_number)
from scaling.carbon import check_pue
from profilers.flops.local_tables import ensure_tables
from scaling.errors import ScalingError, UnknownModelError, WorkloadError
from scaling.registry import ModelSpec, model_from_dir

__all__ = ["JOB_KEYS", "TOP_KEYS", "Job", "Workload", "load_workload"]


def _pue(value: Any, name: str, info: Any) -> float:
    value = finite_number(value, name, info)
    try:
        return check_pue(value)
    except ScalingError:
        raise ValueError("a power usage effectiveness between 1.0 and 5.0") from None


def _counts(value: Any, name: str, info: Any) -> list[int]:
    """GPU counts per call: a whole number or a non-empty list of them, each 1 to 64."""
    values = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(values, list) or not values:
        raise ValueError("a whole number of GPUs or a non-empty list of them, as [1, 2, 4, 8]")
    out = []
    for i, v in enumerate(values, 1):
        n = whole_number(v, name, info)
        if not 1 <= n <= 64:
            raise ValueError(f"GPU counts from 1 to 64 (item {i} is {v!r})")
        out.append(n)
    return out


def _names(value: Any, name: str, info: Any) -> list[str]:
    """A list of names; one name alone is a list of one."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise ValueError("a name or a non-empty list of names, as [a, b]")
    out = []
    for i, v in enumerate(values, 1):
        try:
            out.append(text(v, name, info))
        except ValueError as exc:
            raise ValueError(f"{exc} (item {i} is {v!r})") from None
    return out


_STRICT = ConfigDict(strict=True, extra="forbid", populate_by_name=True)


class Job(BaseModel):
    """One job of a workload: a setting and how many outputs."""

    model_config = _STRICT

    model: checked(text) = None
    config: checked(text) = None
    name: checked(text) = None
    res: checked(resolution) = None
    frames: checked(whole_number) = None
    seconds: checked(finite_number, gt=0) = None
    steps: checked(whole_number) = None
    guidance: FiniteNumber = None
    cfg: bool | None = None
    batch: checked(whole_number) = None
    batch_size: checked(whole_number) = None
    outputs_per_prompt: checked(whole_number) = None
    precision: checked(precision_name) = None
    count: checked(whole_number) = 1
    max_latency_s: checked(finite_number, gt=0) = None

    @model_validator(mode="after")
    def _one_batch(self) -> "Job":
        if self.batch is not None and self.batch_size is not None:
            raise ValueError("give `batch` or `batch_size`, not both")
        if self.model is None and self.config is None:
            raise ValueError("`model` is missing (a registered id; or `config`: a diffusers folder)")
        if self.model is not None and self.config is not None:
            raise ValueError("give `model` or `config`, not both")
        return self


class Workload(BaseModel):
    """A workload file: jobs and the options to price them on."""

    model_config = _STRICT

    jobs: list[Job] = Field(min_length=1)
    gpus: checked(_names) = None
    regions: checked(_names) = None
    intensity: checked(finite_number, ge=0) = None
    precision: checked(precision_name) = None
    pue: checked(_pue) = None
    law: checked(text) = None
    gpu_counts: checked(_counts) = None
    max_latency_s: checked(finite_number, gt=0) = None


JOB_KEYS = frozenset(Job.model_fields)


def _config_spec(path: Path, folder: str, line: int, i: int) -> ModelSpec:
    """The spec of a job's ``config:`` folder (relative to the workload file), its closed-form
    tables built and cached on first use."""
    root = Path(folder) if Path(folder).is_absolute() else path.parent / folder
    try:
        spec = model_from_dir(root)
    except UnknownModelError as exc:
        raise WorkloadError(f"{path}:{line}: job {i + 1}: {exc}") from None
    ensure_tables(spec)
    return spec
TOP_KEYS = frozenset(Workload.model_fields)


def _where(loc: tuple) -> str:
    return f"job {loc[1] + 1}" if len(loc) >= 2 and loc[0] == "jobs" and isinstance(loc[1], int) else ""


def load_workload(path: str | Path) -> tuple[dict[str, Any], dict[int, int]]:
    """Read and check a workload file; returns ``(data, job index -> line number)``.

    ``data`` holds the top-level keys given (checked; ``law`` made relative to the file's folder),
    ``jobs`` as dicts of the keys given (``count`` always), ``_lines`` (``top``: key -> line,
    ``jobs``: index -> line, ``path``) and ``_notes`` (values read in another form than written,
    e.g. ``count: 1e6`` read as 1,000,000: say so to the user).

    Raises
    ------
    WorkloadError
        One line, ``path:line: ...``: not UTF-8, not YAML, a key given twice, an unknown key, a
        missing ``model``, a value of the wrong type (a quoted "false", ``steps: .inf``,
        ``precision: 16``, ``regions: [[FR]]``), out of range, or fractional where a count is.
    """
    path = Path(path)
    raw, root = read_yaml(path, what="workload", error=WorkloadError)
    if not isinstance(raw, dict):
        raise WorkloadError(f"{path}:1: a workload is a mapping with a `jobs` list (see `scaling plan --help`), "
                            f"not {'an empty file' if raw is None else type(raw).__name__}")
    notes: list[str] = []
    checked_doc = validate(Workload, raw, source=path, root=root, error=WorkloadError, where=_where, notes=notes)
    data: dict[str, Any] = checked_doc.model_dump(exclude_none=True, exclude={"jobs"})
    data["jobs"] = [{**job.model_dump(exclude_none=True), "count": job.count} for job in checked_doc.jobs]
    if "law" in data and not Path(data["law"]).is_absolute():
        data["law"] = str(path.parent / data["law"])
    top_lines: dict[str, int] = {}
    lines: dict[int, int] = {}
    for key_node, value_node in root.value:
        top_lines[str(key_node.value)] = key_node.start_mark.line + 1
        if key_node.value == "jobs":
            for i, item in enumerate(getattr(value_node, "value", [])):
                lines[i] = item.start_mark.line + 1
    if "regions" in data and "intensity" in data:  # two sources of one figure: one would be dropped
        raise WorkloadError(
            f"{path}:{top_lines.get('intensity', 1)}: `regions` {data['regions']} (line {top_lines.get('regions', 1)}) "
            f"and `intensity` {data['intensity']:g} conflict: a region prices CO2e at its grid's carbon intensity "
            "(CodeCarbon's data), an intensity is your own gCO2e/kWh (rule: give one, not both)")
    for i, job in enumerate(data["jobs"]):
        if "config" in job:
            job["model"] = _config_spec(path, job.pop("config"), lines.get(i, 1), i)
    data["_lines"] = {"top": top_lines, "jobs": lines, "path": str(path)}
    data["_notes"] = [f"{path}: {n}" for n in notes]
    return data, lines
