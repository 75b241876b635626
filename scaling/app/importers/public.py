"""One energy CSV of ``datasets/public`` (the shared public schema, see its PROVENANCE.md) -> a runs table.

Every cell is checked against the runs schema while the row numbers are still the file's;
then the flag policies (:mod:`.policies`) are applied in a fixed order, with the corrections of
:mod:`._corrections`, and every row a policy excludes is counted in the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from scaling.errors import DataError
from scaling.runs import PUBLIC_COLUMNS, STAGE_PHASES, _package_version, _read_csv_text, add_flag, validate_runs

from . import _corrections as fix
from ._lookups import _cfg_column, _resolve_gpus, _resolve_models
from ._report import ImportReport, ImportResult
from .flops import annotate_flops
from .policies import POLICIES, resolve_policy
from .quality import is_quality_header

__all__ = ["import_public"]


def _read_public_frame(p: Path) -> pd.DataFrame:
    raw = _read_csv_text(p)
    if is_quality_header(raw.columns):
        raise DataError(f"{p}: this is a quality-metrics table (model, dataset, steps, metric, value), not energy "
                        "measurements: read it with import_quality or `scaling data inspect`")
    for c in PUBLIC_COLUMNS:
        if c not in raw.columns:
            raise DataError(f"{p}, column `{c}`: missing required column (rule: the public energy schema "
                            f"{', '.join(PUBLIC_COLUMNS)})")
    return raw


def import_public(path: str | Path, policy: Mapping[str, str] | None = None, *,
                  flops: bool = False) -> ImportResult:
    """Import one public energy CSV (shared public schema) into a validated runs table.

    ``policy`` overrides the default actions of :data:`POLICIES`. With ``flops`` the rows are
    also annotated with FLOP (:func:`annotate_flops`). Raises :class:`DataError` naming the
    file, row, column and rule when the file breaks the schema: missing columns, an empty or
    non-numeric energy, an energy <= 0, an unknown phase, a truncated or non-CSV file, or a
    quality-metrics table instead of energies.
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
    df["warmup"] = fix.warmup_calls(notes)
    fix.group_stage_rows(df)

    exclude = np.zeros(n, dtype=bool)

    def apply(name: str, mask, correct: Callable[[np.ndarray], None] | None = None) -> None:
        nonlocal exclude
        mask = np.asarray(mask, dtype=bool)
        action = actions[name]
        report.count_policy(name, action, int(mask.sum()))
        if not mask.any():
            return
        if action == "exclude":
            exclude |= mask
            return
        if action == "correct" and correct is not None:
            correct(mask)
        flag = POLICIES[name].marks.get(action)
        if flag:
            df["flags"] = add_flag(df["flags"], mask, flag)

    # -- the policies, in order -----------------------------------------------------------------
    apply("metadata_conflict", fix.metadata_conflict_rows(notes), lambda m: fix.correct_metadata(df, notes, m, p))
    apply("suspect", notes.str.contains("SUSPECT", regex=False))
    apply("first_call", notes.str.contains("FIRST call of script", regex=False))
    apply("cpu_offload", fix.mentions_offload(notes))
    ddim = fix.ddim_steps(notes)
    apply("ddim_steps", fix.ddim_rows(df["steps"], ddim), lambda m: fix.correct_ddim(df, ddim, m))
    runs_m = fix.script_runs(notes)
    apply("n_repeats", fix.repeats_rows(df["n_repeats"], runs_m), lambda m: fix.correct_repeats(df, runs_m, m))
    wan_mask, wan_new = fix.frame_rounding(df)
    apply("wan_frames", wan_mask, lambda m: fix.correct_frames(df, wan_new, m))

    stage = df["phase"].isin(list(STAGE_PHASES)).to_numpy(dtype=bool)
    stage_runs = set(df.loc[stage, "run_id"])
    summed = (df["phase"] == "total").to_numpy(dtype=bool) & df["run_id"].isin(stage_runs).to_numpy(dtype=bool)
    apply("stage_phases", stage if actions["stage_phases"] == "exclude" else summed)
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
