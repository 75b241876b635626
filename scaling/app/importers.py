"""Importers: measurements made elsewhere -> the runs table (:mod:`scaling.runs`).

- :func:`import_public` reads one energy CSV of ``datasets/public`` (the shared public
  schema, see its PROVENANCE.md) and applies the flag policies below.
- :func:`import_quality` reads the audio-quality CSV of the same folder into a tidy table of
  (model, dataset, steps, metric, value), to be joined with runs on ``model`` and ``steps``.
- :func:`import_codecarbon` reads CodeCarbon's ``emissions.csv`` (kWh, converted to J here,
  once) for one known generation setting.
- The toolkit's own runner already writes a runs table: read it with
  :func:`scaling.runs.read_runs`.
- :func:`annotate_flops` writes the FLOP of each row's phase from the closed-form profiles.

Model ids and GPU names resolve through the registries. A row whose model or GPU does not
resolve is kept with an empty ``model_key`` / ``gpu_key`` and counted in the report; nothing
is dropped silently: every excluded row is counted under the policy that excluded it.

Flag policies
-------------
Each flag of the public data is handled by one named policy with a default action, the
actions it allows and the reason (:data:`POLICIES`). Override with
``import_public(path, policy={"first_call": "mark"})`` or
``scaling data import ... --policy first_call=mark``. Actions: ``correct`` (change the value,
keep the published one in ``notes``, add a mark to ``flags``), ``exclude`` (drop the row,
count it), ``mark`` (keep the row, add a mark to ``flags``), ``keep`` (documented, no change).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from scaling.errors import DataError, ScalingError, UnknownGPUError, UnknownModelError
from scaling.runs import (
    PUBLIC_COLUMNS,
    STAGE_PHASES,
    _open_text,
    _package_version,
    _read_csv_text,
    add_flag,
    validate_runs,
)

__all__ = [
    "Policy",
    "POLICIES",
    "ImportReport",
    "ImportResult",
    "QUALITY_COLUMNS",
    "CODECARBON_COLUMNS",
    "resolve_policy",
    "import_public",
    "import_quality",
    "import_codecarbon",
    "import_file",
    "annotate_flops",
    "generated_frames",
    "summarize_runs",
    "sniff",
    "parse_policy_args",
]

KWH_TO_J = 3.6e6
"""CodeCarbon writes kWh; the runs table holds J. Converted here, once."""

QUALITY_COLUMNS = ("source", "model", "dataset", "steps", "metric", "value", "n_clips", "notes")
CODECARBON_COLUMNS = ("duration", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed")
"""What :func:`import_codecarbon` needs from ``emissions.csv`` (CodeCarbon >= 2.0 writes all)."""


# --------------------------------------------------------------------------------------------
# policies
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Policy:
    """How one flag of the source data is handled.

    ``detects`` says which rows carry the flag; ``marks`` is the flag written to ``flags``
    for each action that keeps the row.
    """

    name: str
    detects: str
    action: str
    actions: tuple[str, ...]
    reason: str
    marks: Mapping[str, str] = field(default_factory=dict)


POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy(
        "metadata_conflict", "notes contain METADATA_CONFLICT (all WAN2.1 rows of video_killed cross_model "
        "and benchlab)", "correct", ("correct", "mark", "exclude"),
        "the published height/width/steps were hard-coded after the fact; the run scripts and the measured "
        "time agree with the values the note gives as 'likely actual' (video_killed: 720x1280, 50 steps; "
        "benchlab: 50 steps). The published values stay in notes.",
        {"correct": "metadata_corrected", "mark": "metadata_conflict"}),
    Policy(
        "suspect", "notes contain SUSPECT (LTX-Video `upsample` phase rows)", "exclude", ("exclude", "mark"),
        "a ~6 ms CodeCarbon window implying 2.7-3.9 kW on a 700 W GPU: not a physical measurement "
        "(about 19 J of 11 kJ; the `total` row still includes it, as the source sums it)",
        {"mark": "suspect"}),
    Policy(
        "first_call", "notes contain 'FIRST call of script' (text-to-audio scripts, no warm-up call)",
        "exclude", ("exclude", "mark"),
        "the first call of a script without warm-up carries one-off costs (CUDA context, kernel autotuning, "
        "caches) and is often inflated (AudioLDM2 10 steps: 217 J against ~110 J afterwards)",
        {"mark": "first_call"}),
    Policy(
        "cpu_offload", "notes mention enable_model_cpu_offload (CogVideoX and Mochi in video_killed/benchlab, "
        "every SD3.5 quantization row)", "mark", ("mark", "exclude"),
        "weights move between CPU and GPU on every call, which inflates time and energy beyond the compute; "
        "the measurement is real, so keep it and let fits decide (filter on the `cpu_offload` flag)",
        {"mark": "cpu_offload"}),
    Policy(
        "ddim_steps", "notes say 'likely runs N steps for a request of M' (Make-An-Audio 1 and 2 at 150 steps)",
        "correct", ("correct", "mark", "exclude"),
        "LDM DDIM uniform spacing with 1000 // 150 = 6 runs 167 steps, and the measured energy agrees "
        "(150/200 ratio 0.835, not 0.75); the requested 150 stays in notes",
        {"correct": "steps_corrected", "mark": "ddim_steps"}),
    Policy(
        "n_repeats", "notes say the slurm file 'passes/uses RUNS=N [WARMUP=K]' while the published n_repeats "
        "was hard-coded (WAN sweeps of video_killed, benchlab exp4_ rows)", "correct", ("correct", "keep"),
        "`n_repeats` must say how many calls were averaged; the run scripts are the authority. Energy per "
        "call is right either way.",
        {"correct": "n_repeats_corrected"}),
    Policy(
        "wan_frames", "WanPipeline rows whose requested frames are not 4k+1 (WAN frames and steps sweeps)",
        "correct", ("correct", "keep"),
        "WanPipeline rounds num_frames to num_frames // 4 * 4 + 1 before generating; the table stores the "
        "frames actually generated and keeps the requested value in notes",
        {"correct": "frames_snapped"}),
    Policy(
        "stage_phases", "rows with a pipeline-stage phase (generate, upsample, denoise: LTX-Video) and the "
        "`total` row of the same call", "mark", ("mark", "exclude"),
        "stage rows are the source's own measurements of parts of one call and the `total` row is their sum; "
        "keep both and mark the total `sum_of_phases`: count a call once with phase == 'total'. "
        "'exclude' drops the stage rows and keeps the totals",
        {"mark": "sum_of_phases"}),
    Policy(
        "batch", "rows with batch_size > 1", "keep", ("keep",),
        "energy and duration are per call, i.e. for the whole batch (PROVENANCE convention); divide by "
        "batch_size for energy per output"),
    Policy(
        "cpu_ram_estimate", "CodeCarbon rows with CPU or RAM energy", "mark", ("mark", "keep"),
        "CodeCarbon's CPU and RAM energies are TDP/size-based estimates, not meter readings (its GPU energy "
        "is read from NVML); mark them so fits on CPU/RAM energy can exclude them",
        {"mark": "cpu_ram_estimated"}),
)}


def resolve_policy(policy: Mapping[str, str] | None = None) -> dict[str, str]:
    """The action per policy: the defaults of :data:`POLICIES` with ``policy`` on top."""
    actions = {name: p.action for name, p in POLICIES.items()}
    for name, action in (policy or {}).items():
        if name not in POLICIES:
            raise DataError(f"policy {name!r} is unknown: use one of {', '.join(POLICIES)}")
        if action not in POLICIES[name].actions:
            raise DataError(f"policy {name}={action!r} is not allowed: use one of {', '.join(POLICIES[name].actions)}")
        actions[name] = action
    return actions


def parse_policy_args(items: Sequence[str] | None) -> dict[str, str]:
    """``["first_call=mark", ...]`` (CLI ``--policy``) -> ``{"first_call": "mark"}``."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, action = item.partition("=")
        if not sep or not name.strip() or not action.strip():
            raise DataError(f"--policy {item!r}: write NAME=ACTION, e.g. first_call=mark")
        out[name.strip()] = action.strip()
    resolve_policy(out)
    return out


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------

_SETTING_COLUMNS = ("gpu", "precision", "height", "width", "frames", "audio_seconds", "steps", "guidance_scale",
                    "batch_size", "phase")


@dataclass
class ImportReport:
    """What an import read, changed, dropped and could not resolve."""

    sources: dict[str, dict[str, int]] = field(default_factory=dict)   # file -> {read, kept}
    rows_read: int = 0
    rows_kept: int = 0
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {action, rows}
    unresolved_models: dict[str, int] = field(default_factory=dict)
    unresolved_gpus: dict[str, int] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)    # id -> {model_key, rows, settings}
    phases: dict[str, int] = field(default_factory=dict)
    flop_rows: int = 0
    flop_errors: dict[str, int] = field(default_factory=dict)           # reason -> rows
    flop_annotated: bool = False

    # -- building ------------------------------------------------------------------------------
    def count_policy(self, name: str, action: str, rows: int) -> None:
        entry = self.policies.setdefault(name, {"action": action, "rows": 0})
        entry["action"] = action
        entry["rows"] += int(rows)

    def describe(self, runs: pd.DataFrame) -> None:
        """Fill the per-model, phase and unresolved counts from the kept rows."""
        self.models = _model_summary(runs)
        self.phases = {str(k): int(v) for k, v in runs["phase"].value_counts().sort_index().items()}
        self.unresolved_models = _counts(runs.loc[runs["model_key"].isna(), "model"])
        gpus = runs.loc[runs["gpu_key"].isna(), "gpu"].fillna("(not stated)")
        self.unresolved_gpus = _counts(gpus)

    @classmethod
    def combine(cls, reports: Sequence["ImportReport"], runs: pd.DataFrame | None = None) -> "ImportReport":
        out = cls()
        for r in reports:
            out.sources.update(r.sources)
            out.rows_read += r.rows_read
            out.rows_kept += r.rows_kept
            for name, e in r.policies.items():
                out.count_policy(name, e["action"], e["rows"])
            out.flop_rows += r.flop_rows
            out.flop_annotated = out.flop_annotated or r.flop_annotated
            for k, v in r.flop_errors.items():
                out.flop_errors[k] = out.flop_errors.get(k, 0) + v
        if runs is not None:
            out.describe(runs)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ImportReport":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    # -- text ----------------------------------------------------------------------------------
    def to_text(self) -> str:
        lines = [f"rows read: {self.rows_read}, kept: {self.rows_kept}"]
        for src, e in self.sources.items():
            lines.append(f"  {src}: read {e['read']}, kept {e['kept']}")
        if self.policies:
            lines.append("policies (rows affected):")
            verbs = {"correct": "corrected", "exclude": "excluded", "mark": "marked", "keep": "kept as is"}
            for name, e in self.policies.items():
                mark = POLICIES[name].marks.get(e["action"]) if name in POLICIES else None
                extra = f" (flag `{mark}`)" if mark else ""
                lines.append(f"  {name:<18} {e['action']:<8} {verbs.get(e['action'], e['action'])} {e['rows']}{extra}")
        if self.phases:
            lines.append("phases: " + ", ".join(f"{k} {v}" for k, v in self.phases.items()))
        if self.unresolved_models:
            lines.append("unresolved models (kept, model_key empty):")
            lines += [f"  {k}: {v} rows" for k, v in self.unresolved_models.items()]
        else:
            lines.append("unresolved models: none")
        if self.unresolved_gpus:
            lines.append("unresolved GPUs (kept, gpu_key empty):")
            lines += [f"  {k}: {v} rows" for k, v in self.unresolved_gpus.items()]
        else:
            lines.append("unresolved GPUs: none")
        if self.models:
            lines.append("per model: rows, distinct settings, registry key")
            w = max(len(m) for m in self.models)
            for m, e in self.models.items():
                lines.append(f"  {m:<{w}} {e['rows']:>6} {e['settings']:>4}  {e['model_key'] or '-'}")
        if self.flop_annotated:
            lines.append(f"FLOP annotated: {self.flop_rows} rows"
                         + ("; without FLOP:" if self.flop_errors else ""))
            lines += [f"  {v} rows: {k}" for k, v in sorted(self.flop_errors.items(), key=lambda kv: -kv[1])]
        return "\n".join(lines)


def _counts(series: pd.Series) -> dict[str, int]:
    vc = series.astype(object).value_counts()
    return {str(k): int(v) for k, v in sorted(vc.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def _model_summary(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    if runs.empty:
        return {}
    cols = [c for c in _SETTING_COLUMNS if c in runs]
    keyed = runs[["model", "model_key", *cols]].astype(object).where(runs[["model", "model_key", *cols]].notna(), None)
    out: dict[str, dict[str, Any]] = {}
    for model, g in keyed.groupby("model", sort=True):
        settings = g[cols].drop_duplicates()
        key = g["model_key"].dropna()
        out[str(model)] = {"model_key": str(key.iloc[0]) if len(key) else None, "rows": int(len(g)),
                           "settings": int(len(settings))}
    return out


@dataclass
class ImportResult:
    """A validated runs table and the report of how it was made."""

    runs: pd.DataFrame
    report: ImportReport


# --------------------------------------------------------------------------------------------
# registry lookups (cached: 26k rows, a dozen ids)
# --------------------------------------------------------------------------------------------

def _resolve_models(models: pd.Series) -> pd.Series:
    from scaling.registry import resolve_model

    keys: dict[str, Any] = {}
    for m in models.dropna().unique():
        try:
            keys[m] = resolve_model(str(m)).key
        except UnknownModelError:
            keys[m] = None
    return models.map(keys).astype(pd.StringDtype())


def _resolve_gpus(gpus: pd.Series) -> pd.Series:
    from scaling.hardware import resolve_gpu

    keys: dict[str, Any] = {}
    for g in gpus.dropna().unique():
        try:
            keys[g] = resolve_gpu(str(g)).key
        except (UnknownGPUError, ScalingError):
            keys[g] = None
    return gpus.map(keys).astype(pd.StringDtype())


def _spec(key: str):
    from scaling.registry import resolve_model

    return resolve_model(key)


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
        spec = _spec(str(key))
        arch = _spec(spec.architecture_key)
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


def generated_frames(spec, frames: int) -> int:
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


# --------------------------------------------------------------------------------------------
# public CSVs
# --------------------------------------------------------------------------------------------

_RE_LIKELY = re.compile(r"likely actual:?\s*((?:(?:height|width|steps|frames)=\d+[\s,;]*)+)")
_RE_KV = re.compile(r"(height|width|steps|frames)=(\d+)")
_RE_DDIM = re.compile(r"likely runs (\d+) (?:DDIM )?steps")
_RE_DDIM_REQ = re.compile(r"1000\s*//\s*(\d+)")  # both files write the spacing as 1000//<requested>
_RE_RUNS = re.compile(r"(?:passes|uses) RUNS=(\d+)(?:\s+WARMUP=(\d+))?")
_RE_WARMUP = re.compile(r"after (\d+) warm-up (?:call|batch)")
_RE_OFFLOAD = re.compile(r"cpu_offload", re.IGNORECASE)


def _append_note(notes: pd.Series, mask: np.ndarray, texts: pd.Series | str) -> pd.Series:
    """Append ``import: <text>`` to the notes of the rows of ``mask``."""
    notes = notes.astype(object).copy()
    mask = np.asarray(mask, dtype=bool)
    add = texts if isinstance(texts, str) else texts[mask].astype(str)
    cur = notes[mask].fillna("").astype(str)
    notes[mask] = cur + np.where(cur == "", "", "; ") + "import: " + add
    return notes.astype(pd.StringDtype())


def _ddim(notes: pd.Series) -> pd.DataFrame:
    """Columns 0 (steps actually run) and 1 (steps requested) where the notes flag DDIM spacing."""
    return pd.DataFrame({0: notes.str.extract(_RE_DDIM)[0], 1: notes.str.extract(_RE_DDIM_REQ)[0]})


def _read_public_frame(p: Path) -> pd.DataFrame:
    raw = _read_csv_text(p)
    cols = set(raw.columns)
    if set(QUALITY_COLUMNS) <= cols and "energy_gpu_j" not in cols:
        raise DataError(f"{p}: this is a quality-metrics table (model, dataset, steps, metric, value), not energy "
                        "measurements: read it with scaling.app.importers.import_quality")
    for c in PUBLIC_COLUMNS:
        if c not in cols:
            raise DataError(f"{p}, column `{c}`: missing required column (rule: the public energy schema "
                            f"{', '.join(PUBLIC_COLUMNS)})")
    return raw


def import_public(path: str | Path, policy: Mapping[str, str] | None = None, *,
                  flops: bool = False) -> ImportResult:
    """Import one public energy CSV (shared public schema) into a validated runs table.

    ``policy`` overrides the default actions of :data:`POLICIES`. With ``flops`` the rows are
    also annotated with FLOP (:func:`annotate_flops`). Raises :class:`DataError` naming the
    file, row, column and rule when the file breaks the schema: missing columns, an empty or
    non-numeric energy, an energy <= 0, an unknown phase, a truncated or non-CSV file.
    """
    p = Path(path)
    actions = resolve_policy(policy)
    raw = _read_public_frame(p)
    n = len(raw)
    df = raw.copy()
    source_name = raw["source"].iloc[0] if n and isinstance(raw["source"].iloc[0], str) else p.stem
    df["run_id"] = [f"{source_name}:{i}" for i in range(1, n + 1)]
    df["package_version"] = _package_version()
    df["estimated"] = False
    df["flags"] = ""
    # check every cell against the schema while row numbers are still the file's rows; no
    # defaults: an empty batch_size or phase in a public file is an error, not a guess
    df = validate_runs(df, str(p))
    i = np.flatnonzero(df["energy_gpu_j"].isna().to_numpy())
    if i.size:
        raise DataError(f"{p}, row {i[0] + 1}, column `energy_gpu_j`: empty cell breaks the rule: every public "
                        "row states the GPU energy of the call")

    report = ImportReport()
    notes = df["notes"].fillna("")

    # -- resolved fields ------------------------------------------------------------------------
    df["model_key"] = _resolve_models(df["model"])
    df["gpu_key"] = _resolve_gpus(df["gpu"])
    m = notes.str.extract(_RE_WARMUP)[0]
    df["warmup"] = pd.to_numeric(m, errors="coerce").astype("Int64")
    df.loc[notes.str.contains("no warm-up", regex=False).to_numpy(), "warmup"] = 0
    _group_stage_rows(df)

    exclude = np.zeros(n, dtype=bool)

    def apply(name: str, mask, correct: Callable[[np.ndarray], None] | None = None) -> None:
        nonlocal exclude
        mask = np.asarray(mask, dtype=bool)
        action = actions[name]
        pol = POLICIES[name]
        report.count_policy(name, action, int(mask.sum()))
        if not mask.any():
            return
        if action == "exclude":
            exclude |= mask
            return
        if action == "correct" and correct is not None:
            correct(mask)
        flag = pol.marks.get(action)
        if flag:
            df["flags"] = add_flag(df["flags"], mask, flag)

    # METADATA_CONFLICT: take the 'likely actual' values the note gives
    def fix_metadata(mask: np.ndarray) -> None:
        texts = []
        for i in np.flatnonzero(mask):
            found = _RE_LIKELY.search(notes.iloc[i])
            if not found:
                raise DataError(f"{p}, row {i + 1}, column `notes`: METADATA_CONFLICT without 'likely actual "
                                "KEY=VALUE' (rule: the correct policy needs the likely values; use "
                                "--policy metadata_conflict=mark)")
            changes = []
            for key, value in _RE_KV.findall(found.group(1)):
                old = df.at[i, key]
                if pd.isna(old) or int(old) != int(value):
                    changes.append(f"{key}={'' if pd.isna(old) else int(old)}")
                    df.at[i, key] = int(value)
            texts.append("published " + " ".join(changes) + " replaced by the likely actual values "
                         "(policy metadata_conflict)" if changes else "METADATA_CONFLICT values already match")
        df["notes"] = _append_note(df["notes"], mask, pd.Series(texts, index=df.index[mask]).reindex(df.index))

    apply("metadata_conflict", notes.str.contains("METADATA_CONFLICT", regex=False), fix_metadata)
    apply("suspect", notes.str.contains("SUSPECT", regex=False))
    apply("first_call", notes.str.contains("FIRST call of script", regex=False))
    apply("cpu_offload", notes.str.contains(_RE_OFFLOAD))

    ddim = _ddim(notes)
    ddim_mask = ddim[0].notna() & (df["steps"].astype("float64") == pd.to_numeric(ddim[1], errors="coerce"))

    def fix_ddim(mask: np.ndarray) -> None:
        requested = df.loc[mask, "steps"].astype(int).astype(str)
        df.loc[mask, "steps"] = pd.to_numeric(ddim.loc[mask, 0]).astype("int64").to_numpy()
        df["notes"] = _append_note(df["notes"], mask,
                                   ("requested steps=" + requested + "; steps set to the DDIM count actually run "
                                    "(policy ddim_steps)").reindex(df.index))

    apply("ddim_steps", ddim_mask.to_numpy(dtype=bool), fix_ddim)

    runs_m = notes.str.extract(_RE_RUNS)

    def fix_repeats(mask: np.ndarray) -> None:
        old = df.loc[mask, "n_repeats"].astype(str)
        df.loc[mask, "n_repeats"] = pd.to_numeric(runs_m.loc[mask, 0]).astype("int64").to_numpy()
        wu = pd.to_numeric(runs_m.loc[mask, 1], errors="coerce")
        has = wu.notna().to_numpy()
        idx = df.index[mask][has]
        df.loc[idx, "warmup"] = wu[has].astype("int64").to_numpy()
        df["notes"] = _append_note(df["notes"], mask, ("published n_repeats=" + old + " replaced by the RUNS of the "
                                                       "run script (policy n_repeats)").reindex(df.index))

    apply("n_repeats", (runs_m[0].notna() & (pd.to_numeric(runs_m[0], errors="coerce")
                                             != df["n_repeats"].astype("float64"))).to_numpy(dtype=bool), fix_repeats)

    wan_mask, wan_new = _frame_rounding(df)

    def fix_frames(mask: np.ndarray) -> None:
        old = df.loc[mask, "frames"].astype(int).astype(str)
        df.loc[mask, "frames"] = wan_new[mask].astype("int64")
        df["notes"] = _append_note(df["notes"], mask, ("requested frames=" + old + "; frames is the count "
                                                       "WanPipeline generates (policy wan_frames)").reindex(df.index))

    apply("wan_frames", wan_mask, fix_frames)

    stage = df["phase"].isin(list(STAGE_PHASES)).to_numpy(dtype=bool)
    stage_runs = set(df.loc[stage, "run_id"])
    summed = (df["phase"] == "total").to_numpy(dtype=bool) & df["run_id"].isin(stage_runs).to_numpy(dtype=bool)
    if actions["stage_phases"] == "exclude":
        apply("stage_phases", stage)
    else:
        apply("stage_phases", summed)
    apply("batch", (df["batch_size"] > 1).to_numpy(dtype=bool))
    cc = (df["meter"] == "codecarbon").to_numpy(dtype=bool) & (
        df["energy_cpu_j"].notna() | df["energy_ram_j"].notna()).to_numpy(dtype=bool)
    apply("cpu_ram_estimate", cc)

    df["cfg"] = _cfg_column(df)
    kept = df.loc[~exclude].reset_index(drop=True)
    report.sources[str(p)] = {"read": n, "kept": int(len(kept))}
    report.rows_read, report.rows_kept = n, int(len(kept))
    runs = validate_runs(kept, f"{p} (imported)", fill_defaults=True)
    if flops:
        runs = annotate_flops(runs, report)
    report.describe(runs)
    return ImportResult(runs, report)


def _group_stage_rows(df: pd.DataFrame) -> None:
    """Give the stage rows of one call (generate, upsample, denoise) the run_id of its ``total``.

    The public files list the stages of a call followed by its ``total`` row (the sum).
    """
    phases = df["phase"].to_numpy(dtype=object)
    models = df["model"].to_numpy(dtype=object)
    run_ids = df["run_id"].to_numpy(dtype=object).copy()
    pending: list[int] = []
    for i, ph in enumerate(phases):
        if ph in STAGE_PHASES:
            if pending and models[pending[-1]] != models[i]:
                pending = []
            pending.append(i)
        elif ph == "total" and pending:
            if models[pending[-1]] == models[i]:
                for j in pending:
                    run_ids[j] = run_ids[i]
            pending = []
        else:
            pending = []
    df["run_id"] = pd.array(run_ids, dtype=pd.StringDtype())


def _frame_rounding(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of frame-rounding pipelines whose frames change, and the generated frame counts."""
    mask = np.zeros(len(df), dtype=bool)
    new = df["frames"].astype("float64").to_numpy().copy()
    for key, idx in df.groupby("model_key", dropna=True).groups.items():
        spec = _spec(str(key))
        if spec.pipeline_class not in _FRAME_ROUNDING_PIPELINES:
            continue
        pos = df.index.get_indexer(idx)
        for i in pos:
            f = df["frames"].iloc[i]
            if pd.isna(f):
                continue
            g = generated_frames(spec, int(f))
            if g != int(f):
                mask[i] = True
                new[i] = g
    return mask, new


# --------------------------------------------------------------------------------------------
# quality CSV
# --------------------------------------------------------------------------------------------

def import_quality(path: str | Path, policy: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read the audio-quality CSV into a tidy table.

    Columns: source, model, model_key, dataset, steps, requested_steps, metric, value, n_clips,
    flags, notes. One row per model x dataset x steps x metric. The ``ddim_steps`` policy is
    applied as in :func:`import_public` (Make-An-Audio 150 -> 167 steps by default), so the
    table joins with the runs on ``model`` and ``steps``.
    """
    p = Path(path)
    actions = resolve_policy(policy)
    raw = _read_csv_text(p)
    for c in QUALITY_COLUMNS:
        if c not in raw.columns:
            raise DataError(f"{p}, column `{c}`: missing required column (rule: the quality schema "
                            f"{', '.join(QUALITY_COLUMNS)})")
    out = pd.DataFrame({c: raw[c].astype(pd.StringDtype()) for c in ("source", "model", "dataset", "metric", "notes")})
    for c in ("steps", "n_clips", "value"):
        text = raw[c].fillna("").str.strip()
        num = pd.to_numeric(text.where(text != "", None), errors="coerce")
        required = c != "n_clips"
        bad = (text != "") & (num.isna() | ~np.isfinite(num.astype("float64")))
        bad |= (text == "") & required
        if c in ("steps", "n_clips"):
            bad |= num.notna() & ((num.fillna(1) < 1) | (num.fillna(1) % 1 != 0))
        i = np.flatnonzero(bad.to_numpy(dtype=bool))
        if i.size:
            raise DataError(f"{p}, row {i[0] + 1}, column `{c}`: {raw[c].iloc[i[0]]!r} breaks the rule: "
                            + ("a finite number" if c == "value" else "a whole number >= 1"))
        out[c] = num.astype("Int64") if c != "value" else num.astype("float64")
    for c in ("source", "model", "dataset", "metric"):
        i = np.flatnonzero(out[c].isna().to_numpy(dtype=bool))
        if i.size:
            raise DataError(f"{p}, row {i[0] + 1}, column `{c}`: empty cell breaks the rule: a value is required")
    out["model_key"] = _resolve_models(out["model"])
    out["requested_steps"] = out["steps"].copy()
    out["flags"] = pd.Series([""] * len(out), dtype=pd.StringDtype())
    notes = out["notes"].fillna("")
    ddim = _ddim(notes)
    mask = (ddim[0].notna() & (out["steps"].astype("float64") == pd.to_numeric(ddim[1], errors="coerce"))).to_numpy(dtype=bool)
    action = actions["ddim_steps"]
    if action == "exclude":
        out = out.loc[~mask]
    elif mask.any():
        if action == "correct":
            out.loc[mask, "steps"] = pd.to_numeric(ddim.loc[mask, 0]).astype("int64").to_numpy()
        out["flags"] = add_flag(out["flags"], mask, POLICIES["ddim_steps"].marks[action])
    cols = ["source", "model", "model_key", "dataset", "steps", "requested_steps", "metric", "value", "n_clips",
            "flags", "notes"]
    return out[cols].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# CodeCarbon
# --------------------------------------------------------------------------------------------

_SETTING_ALIASES = {"guidance": "guidance_scale", "seconds": "audio_seconds", "batch": "batch_size"}
_SETTING_FIELDS = ("model", "modality", "gpu", "gpu_count", "precision", "height", "width", "frames", "fps",
                   "audio_seconds", "steps", "guidance_scale", "cfg", "batch_size", "source", "notes", "warmup",
                   "n_repeats", "idle_power_w", "meter")


def _setting_fields(setting: Any) -> dict[str, Any]:
    from scaling.settings import GenerationSetting

    if isinstance(setting, GenerationSetting):
        spec = _spec(setting.model)
        d = {"model": spec.id, "modality": setting.modality, "height": setting.height, "width": setting.width,
             "frames": setting.frames, "audio_seconds": setting.audio_seconds, "steps": setting.steps,
             "guidance_scale": setting.guidance_scale, "cfg": setting.cfg,
             "batch_size": setting.n_outputs, "precision": setting.precision}
        if setting.gpu:
            d["gpu"] = setting.gpu
        return d
    if not isinstance(setting, Mapping):
        raise DataError(f"setting {setting!r}: give a GenerationSetting or a dict of runs-table fields")
    d = {}
    for k, v in setting.items():
        k = _SETTING_ALIASES.get(k, k)
        if k not in _SETTING_FIELDS:
            raise DataError(f"setting field {k!r} is unknown: use {', '.join(_SETTING_FIELDS)}")
        d[k] = v
    if not d.get("model"):
        raise DataError("setting: `model` is required (a public id or registry alias)")
    try:  # store the resolved public id, as the rest of the toolkit prints it
        d["model"] = _spec(str(d["model"])).id
    except UnknownModelError:
        pass
    return d


def _parse_gpu_model(text: Any) -> tuple[str | None, int | None]:
    """CodeCarbon writes ``"4 x NVIDIA A40"``; return (name, count)."""
    if not isinstance(text, str) or not text.strip():
        return None, None
    m = re.match(r"^\s*(\d+)\s*x\s*(.+?)\s*$", text)
    if m:
        return m.group(2), int(m.group(1))
    return text.strip(), None


def import_codecarbon(emissions_csv: str | Path, setting: Any, phase: str = "total", *,
                      source: str = "codecarbon", energy_tolerance: float = 0.01) -> ImportResult:
    """Import CodeCarbon's ``emissions.csv``: one row per tracked task, for one setting.

    ``setting`` is a :class:`~scaling.settings.GenerationSetting` or a dict of runs-table
    fields (``model`` required; ``guidance``, ``seconds``, ``batch`` accepted as aliases).
    ``cpu_energy``/``gpu_energy``/``ram_energy`` (kWh) become ``energy_*_j``; a component
    CodeCarbon did not track (written as 0) is left empty; ``duration`` becomes ``duration_s``.
    ``energy_consumed`` must equal their sum within ``energy_tolerance``. CodeCarbon's PUE
    factor (column ``pue``) is divided out: the table holds device energy. Rows with no GPU
    energy are ``estimated`` (CodeCarbon's CPU/RAM figures are estimates). The tracker's
    ``run_id`` becomes the run, each row one ``repeat``; CodeCarbon writes naive local
    timestamps, read here as UTC.
    """
    p = Path(emissions_csv)
    fields = _setting_fields(setting)
    raw = _read_csv_text(p)
    for c in CODECARBON_COLUMNS:
        if c not in raw.columns:
            raise DataError(f"{p}, column `{c}`: missing required column (rule: a CodeCarbon emissions.csv has "
                            f"{', '.join(CODECARBON_COLUMNS)})")
    n = len(raw)
    num: dict[str, pd.Series] = {}
    for c in CODECARBON_COLUMNS:
        text = raw[c].fillna("").str.strip()
        v = pd.to_numeric(text.where(text != "", None), errors="coerce").astype("float64")
        bad = (text == "") | v.isna() | ~np.isfinite(v) | (v < 0)
        if c in ("duration", "energy_consumed"):
            bad |= v <= 0
        i = np.flatnonzero(bad.to_numpy(dtype=bool))
        if i.size:
            rule = "> 0 and finite" if c in ("duration", "energy_consumed") else ">= 0 and finite (kWh)"
            raise DataError(f"{p}, row {i[0] + 1}, column `{c}`: {raw[c].iloc[i[0]]!r} breaks the rule: {rule}")
        num[c] = v
    parts = num["cpu_energy"] + num["gpu_energy"] + num["ram_energy"]
    off = (parts - num["energy_consumed"]).abs() > energy_tolerance * num["energy_consumed"]
    i = np.flatnonzero(off.to_numpy(dtype=bool))
    if i.size:
        raise DataError(f"{p}, row {i[0] + 1}, column `energy_consumed`: {float(num['energy_consumed'].iloc[i[0]])!r} kWh "
                        f"breaks the rule: equals cpu_energy + gpu_energy + ram_energy ({float(parts.iloc[i[0]])!r})")

    # CodeCarbon multiplies every energy by the PUE it was given; the runs table holds device energy
    pue = pd.Series(1.0, index=raw.index)
    if "pue" in raw:
        pue = pd.to_numeric(raw["pue"], errors="coerce").astype("float64")
        pue = pue.where(pue > 0, 1.0).fillna(1.0)
    df = pd.DataFrame(index=range(n))
    for name, col in (("energy_gpu_j", "gpu_energy"), ("energy_cpu_j", "cpu_energy"), ("energy_ram_j", "ram_energy")):
        j = num[col] * KWH_TO_J / pue
        df[name] = j.where(j > 0).to_numpy()
    df["duration_s"] = num["duration"]
    ts = raw["timestamp"] if "timestamp" in raw else pd.Series([None] * n)
    df["timestamp"] = ts.to_numpy()
    cc_run = raw["run_id"].fillna("") if "run_id" in raw else pd.Series([""] * n)
    run_ids = [(r if r else p.stem) for r in cc_run]
    df["run_id"] = [f"{source}:{r}" for r in run_ids]
    df["repeat"] = pd.Series(run_ids).groupby(run_ids).cumcount().to_numpy()
    gpu_name, gpu_count = (_parse_gpu_model(raw["gpu_model"].iloc[0]) if "gpu_model" in raw and n else (None, None))
    for k, v in fields.items():
        df[k] = [v] * n
    if "gpu" not in fields:
        df["gpu"] = gpu_name
    if "gpu_count" not in fields and gpu_count:
        df["gpu_count"] = gpu_count
    df["source"] = fields.get("source", source)
    df["meter"] = fields.get("meter", "codecarbon")
    df["phase"] = phase
    df["n_repeats"] = fields.get("n_repeats", 1)
    df["estimated"] = df["energy_gpu_j"].isna().to_numpy()
    if "modality" not in fields:
        try:
            df["modality"] = _spec(str(fields["model"])).modality
        except UnknownModelError as exc:
            raise DataError(f"setting: model {fields['model']!r} is not registered: give `modality` too") from exc
    if "cfg" in df:
        df["cfg"] = df["cfg"].astype(object)
    runs = validate_runs(df, str(p), fill_defaults=True)
    runs["model_key"] = _resolve_models(runs["model"])
    runs["gpu_key"] = _resolve_gpus(runs["gpu"])
    if runs["cfg"].isna().all():
        runs["cfg"] = _cfg_column(runs)
    runs["flags"] = add_flag(runs["flags"], (runs["energy_cpu_j"].notna() | runs["energy_ram_j"].notna()).to_numpy(),
                             POLICIES["cpu_ram_estimate"].marks["mark"])
    runs = validate_runs(runs, str(p))
    report = ImportReport(sources={str(p): {"read": n, "kept": n}}, rows_read=n, rows_kept=n)
    report.count_policy("cpu_ram_estimate", "mark", int((runs["energy_cpu_j"].notna() | runs["energy_ram_j"].notna()).sum()))
    report.describe(runs)
    return ImportResult(runs, report)


# --------------------------------------------------------------------------------------------
# any file (the CLI)
# --------------------------------------------------------------------------------------------

def sniff(path: str | Path) -> str:
    """What a file is: ``runs`` (parquet or runs CSV), ``public``, ``quality`` or ``codecarbon``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        return "runs"
    first = _open_text(p).lstrip("\ufeff")
    try:
        header = next(csv.reader(io.StringIO(first[: first.find("\n") + 1 if "\n" in first else None])), [])
    except csv.Error as exc:
        raise DataError(f"{p}: not a CSV with a header ({exc})") from exc
    header = [h.strip() for h in header]
    if not any(header):
        raise DataError(f"{p}: empty file (rule: a CSV header, then one row per line)")
    cols = set(header)
    if "run_id" in cols and "phase" in cols:
        return "runs"
    if set(QUALITY_COLUMNS) <= cols and "energy_gpu_j" not in cols:
        return "quality"
    if {"energy_consumed", "duration"} <= cols:
        return "codecarbon"
    if "energy_gpu_j" in cols or "source" in cols:
        return "public"
    raise DataError(f"{p}: not a recognised table (columns {', '.join(list(header)[:8])}...): expected a runs "
                    "table, a public energy CSV or a CodeCarbon emissions.csv")


def import_file(path: str | Path, policy: Mapping[str, str] | None = None, *, setting: Any = None,
                phase: str = "total", flops: bool = False) -> ImportResult:
    """Import any supported file (see :func:`sniff`) into a runs table with its report."""
    from scaling.runs import read_runs

    p = Path(path)
    kind = sniff(p)
    if kind == "public":
        return import_public(p, policy, flops=flops)
    if kind == "quality":
        raise DataError(f"{p}: a quality-metrics table is not a runs table: read it with "
                        "scaling.app.importers.import_quality")
    if kind == "codecarbon":
        if setting is None:
            raise DataError(f"{p}: a CodeCarbon emissions.csv needs the setting it measured: pass "
                            "--setting model=ID,steps=N,... (runs-table fields)")
        result = import_codecarbon(p, setting, phase)
        if flops:
            result.runs = annotate_flops(result.runs, result.report)
            result.report.describe(result.runs)
        return result
    runs = read_runs(p)
    report = ImportReport(sources={str(p): {"read": len(runs), "kept": len(runs)}}, rows_read=len(runs),
                          rows_kept=len(runs))
    if flops:
        runs = annotate_flops(runs, report)
    report.describe(runs)
    return ImportResult(runs, report)


# --------------------------------------------------------------------------------------------
# FLOP
# --------------------------------------------------------------------------------------------

_ROLE_PHASES = ("text_encoder", "denoiser", "decoder", "vocoder")
_KEY_COLUMNS = ("model_key", "height", "width", "frames", "audio_seconds", "steps", "guidance_scale", "cfg",
                "batch_size", "precision")


def _profile_key(key: tuple) -> tuple[dict[str, float] | None, float | None, str | None]:
    """(FLOP per role, total FLOP, error) for one setting key; never raises."""
    from scaling.settings import PRECISIONS, make_setting

    model_key, height, width, frames, seconds, steps, guidance, cfg, batch, precision = key
    try:
        spec = _spec(model_key)
    except UnknownModelError as exc:
        return None, None, f"model not registered: {exc}"
    if steps is None:
        return None, None, "steps not recorded"
    kw: dict[str, Any] = {"steps": int(steps), "batch_size": int(batch or 1)}
    if spec.modality in ("image", "video"):
        kw["height"] = None if height is None else int(height)
        kw["width"] = None if width is None else int(width)
    if spec.modality == "video" and frames is not None:
        kw["frames"] = generated_frames(spec, int(frames))
    if spec.modality == "audio" and seconds is not None:
        kw["seconds"] = float(seconds)
    if guidance is not None:
        kw["guidance"] = float(guidance)
    if cfg is not None:
        kw["cfg"] = bool(cfg)
    if precision in PRECISIONS:
        kw["precision"] = precision
    try:
        setting = make_setting(spec, **kw)
        from profilers.flops.profile import profile

        prof = profile(setting, spec=spec)
        by_role = prof.by_role()
        total = prof.total_flop
    except ScalingError as exc:
        return None, None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a profiler gap (e.g. no shape function yet) must not stop an import
        return None, None, f"{type(exc).__name__}: {exc}"
    if not (isinstance(total, float) and math.isfinite(total) and total > 0):
        return None, None, f"profile gave a non-positive total FLOP ({total!r})"
    return by_role, float(total), None


def annotate_flops(runs: pd.DataFrame, report: ImportReport | None = None) -> pd.DataFrame:
    """Return ``runs`` with ``flop``, ``flop_<role>`` and ``flop_error`` filled.

    For each row with a resolved model the setting is rebuilt from the row (``make_setting``;
    empty shape fields take the model's defaults, frames are snapped to what the pipeline
    generates, CFG follows the row's ``cfg`` or else the guidance scale) and profiled with the
    closed-form tables, once per distinct setting. ``flop`` is the FLOP of the row's phase
    (``total`` -> all components, a role -> that role); ``flop_<role>`` are per call, for the
    whole batch. Rows without a FLOP (unregistered model, no closed-form table, invalid
    setting, a stage phase) keep empty FLOP columns and say why in ``flop_error``.
    """
    df = runs.copy()
    n = len(df)
    flop = np.full(n, np.nan)
    roles = {r: np.full(n, np.nan) for r in _ROLE_PHASES}
    errors = np.full(n, None, dtype=object)
    unresolved = df["model_key"].isna().to_numpy(dtype=bool)
    errors[unresolved] = "model not registered"
    keyed = df.loc[~unresolved, list(_KEY_COLUMNS)].astype(object)
    keyed = keyed.where(df.loc[~unresolved, list(_KEY_COLUMNS)].notna(), None)
    phases = df["phase"].to_numpy(dtype=object)
    if len(keyed):
        for key, idx in keyed.groupby(list(_KEY_COLUMNS), dropna=False, sort=False).groups.items():
            key = tuple(None if (isinstance(v, float) and math.isnan(v)) else v for v in key)
            by_role, total, err = _profile_key(key)
            pos = df.index.get_indexer(idx)
            if err is not None:
                errors[pos] = err
                continue
            for r in _ROLE_PHASES:
                roles[r][pos] = by_role.get(r, 0.0)
            for i in pos:
                ph = phases[i]
                if ph == "total":
                    flop[i] = total
                elif ph in by_role:
                    flop[i] = by_role[ph]
                elif ph in _ROLE_PHASES:
                    errors[i] = f"the model has no {ph} component"
                else:
                    errors[i] = f"phase {ph!r} is a pipeline stage: no FLOP split for stages"
    df["flop"] = flop
    for r in _ROLE_PHASES:
        df[f"flop_{r}"] = roles[r]
    df["flop_error"] = pd.array(errors, dtype=pd.StringDtype())
    if report is not None:
        report.flop_annotated = True
        report.flop_rows = int(np.isfinite(flop).sum())
        err = pd.Series(errors, dtype=object).dropna()
        # group by model and reason so the report stays short
        models = df["model"].to_numpy(dtype=object)[err.index.to_numpy()]
        reasons = [f"{m}: {_short(e)}" for m, e in zip(models, err.to_numpy())]
        report.flop_errors = _counts(pd.Series(reasons, dtype=object)) if reasons else {}
    return validate_runs(df, "annotated runs")


def _short(text: str, limit: int = 110) -> str:
    text = str(text).splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize_runs(runs: pd.DataFrame, stored: Mapping[str, Any] | None = None) -> ImportReport:
    """The report of a runs table: the stored import report (if any) refreshed from the rows."""
    report = ImportReport.from_dict(stored) if stored else ImportReport(rows_read=len(runs), rows_kept=len(runs))
    if stored and report.rows_kept != len(runs):
        report.sources["(rows appended or removed since the import)"] = {"read": len(runs) - report.rows_kept,
                                                                        "kept": len(runs) - report.rows_kept}
    report.describe(runs)
    if runs["flop"].notna().any() or runs["flop_error"].notna().any():
        report.flop_annotated = True
        report.flop_rows = int(runs["flop"].notna().sum())
        err = runs.loc[runs["flop_error"].notna(), ["model", "flop_error"]]
        report.flop_errors = _counts(err["model"].astype(str) + ": " + err["flop_error"].astype(str).map(_short)) \
            if len(err) else {}
    return report
