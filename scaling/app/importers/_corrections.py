"""The corrections of the public files, one per flag policy (:mod:`.policies`).

Each flag is read from the rows' ``notes`` (or, for the WAN frames, from the registry) by a
function that returns the rows it applies to; each ``correct_*`` function changes those rows of
the frame it is given (the import's working copy) and appends what it changed to ``notes``:

- ``metadata_conflict`` (video_killed cross_model and benchlab WAN2.1 rows): the 'likely actual'
  height/width/steps the note gives replace the hard-coded published ones;
- ``ddim_steps`` (diffused_responsibility Make-An-Audio 1 and 2): the DDIM step count actually
  run replaces the requested one (also applied to the quality table);
- ``n_repeats`` (video_killed WAN sweeps, benchlab ``exp4_``): the RUNS/WARMUP of the run script
  replace the published n_repeats;
- ``wan_frames``: the frames WanPipeline generates replace the requested ones;
- the stage rows of one call (LTX-Video generate/upsample/denoise) share the run_id of its
  ``total`` row (:func:`group_stage_rows`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from scaling.errors import DataError
from scaling.registry import resolve_model
from scaling.runs import STAGE_PHASES

from ._lookups import _FRAME_ROUNDING_PIPELINES, generated_frames

_RE_LIKELY = re.compile(r"likely actual:?\s*((?:(?:height|width|steps|frames)=\d+[\s,;]*)+)")
_RE_KV = re.compile(r"(height|width|steps|frames)=(\d+)")
_RE_DDIM = re.compile(r"likely runs (\d+) (?:DDIM )?steps")
_RE_DDIM_REQ = re.compile(r"1000\s*//\s*(\d+)")  # both files write the spacing as 1000//<requested>
_RE_RUNS = re.compile(r"(?:passes|uses) RUNS=(\d+)(?:\s+WARMUP=(\d+))?")
_RE_WARMUP = re.compile(r"after (\d+) warm-up (?:call|batch)")
_RE_OFFLOAD = re.compile(r"cpu_offload", re.IGNORECASE)


def append_note(notes: pd.Series, mask: np.ndarray, texts: pd.Series | str) -> pd.Series:
    """Append ``import: <text>`` to the notes of the rows of ``mask``."""
    notes = notes.astype(object).copy()
    mask = np.asarray(mask, dtype=bool)
    add = texts if isinstance(texts, str) else texts[mask].astype(str)
    cur = notes[mask].fillna("").astype(str)
    notes[mask] = cur + np.where(cur == "", "", "; ") + "import: " + add
    return notes.astype(pd.StringDtype())


def mentions_offload(notes: pd.Series) -> np.ndarray:
    """Rows whose notes mention enable_model_cpu_offload (policy ``cpu_offload``)."""
    return notes.str.contains(_RE_OFFLOAD).to_numpy(dtype=bool)


# -- warm-up --------------------------------------------------------------------------------

def warmup_calls(notes: pd.Series) -> pd.Series:
    """The warm-up calls the notes state ('after N warm-up calls', 'no warm-up' -> 0)."""
    out = pd.to_numeric(notes.str.extract(_RE_WARMUP)[0], errors="coerce").astype("Int64")
    out[notes.str.contains("no warm-up", regex=False).to_numpy()] = 0
    return out


# -- metadata_conflict ----------------------------------------------------------------------

def metadata_conflict_rows(notes: pd.Series) -> np.ndarray:
    return notes.str.contains("METADATA_CONFLICT", regex=False).to_numpy(dtype=bool)


def correct_metadata(df: pd.DataFrame, notes: pd.Series, mask: np.ndarray, path: Path) -> None:
    """Take the 'likely actual' KEY=VALUE the METADATA_CONFLICT note gives (in place)."""
    texts = []
    for i in np.flatnonzero(mask):
        found = _RE_LIKELY.search(notes.iloc[i])
        if not found:
            raise DataError(f"{path}, row {i + 1}, column `notes`: METADATA_CONFLICT without 'likely actual "
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
    df["notes"] = append_note(df["notes"], mask, pd.Series(texts, index=df.index[mask]).reindex(df.index))


# -- ddim_steps -----------------------------------------------------------------------------

def ddim_steps(notes: pd.Series) -> pd.DataFrame:
    """Columns 0 (steps actually run) and 1 (steps requested) where the notes flag DDIM spacing."""
    return pd.DataFrame({0: notes.str.extract(_RE_DDIM)[0], 1: notes.str.extract(_RE_DDIM_REQ)[0]})


def ddim_rows(steps: pd.Series, ddim: pd.DataFrame) -> np.ndarray:
    """Rows whose steps are the requested count of a DDIM note (:func:`ddim_steps`)."""
    return (ddim[0].notna() & (steps.astype("float64") == pd.to_numeric(ddim[1], errors="coerce"))).to_numpy(dtype=bool)


def correct_ddim(df: pd.DataFrame, ddim: pd.DataFrame, mask: np.ndarray) -> None:
    """Set ``steps`` to the DDIM count actually run, the requested count to ``notes`` (in place)."""
    requested = df.loc[mask, "steps"].astype(int).astype(str)
    df.loc[mask, "steps"] = pd.to_numeric(ddim.loc[mask, 0]).astype("int64").to_numpy()
    df["notes"] = append_note(df["notes"], mask,
                              ("requested steps=" + requested + "; steps set to the DDIM count actually run "
                               "(policy ddim_steps)").reindex(df.index))


# -- n_repeats ------------------------------------------------------------------------------

def script_runs(notes: pd.Series) -> pd.DataFrame:
    """Columns 0 (RUNS) and 1 (WARMUP) of the run script the notes quote."""
    return notes.str.extract(_RE_RUNS)


def repeats_rows(n_repeats: pd.Series, runs_m: pd.DataFrame) -> np.ndarray:
    """Rows whose published n_repeats differs from the RUNS of their script (:func:`script_runs`)."""
    return (runs_m[0].notna() & (pd.to_numeric(runs_m[0], errors="coerce")
                                 != n_repeats.astype("float64"))).to_numpy(dtype=bool)


def correct_repeats(df: pd.DataFrame, runs_m: pd.DataFrame, mask: np.ndarray) -> None:
    """Set ``n_repeats`` (and ``warmup`` where stated) from the run script (in place)."""
    old = df.loc[mask, "n_repeats"].astype(str)
    df.loc[mask, "n_repeats"] = pd.to_numeric(runs_m.loc[mask, 0]).astype("int64").to_numpy()
    wu = pd.to_numeric(runs_m.loc[mask, 1], errors="coerce")
    has = wu.notna().to_numpy()
    idx = df.index[mask][has]
    df.loc[idx, "warmup"] = wu[has].astype("int64").to_numpy()
    df["notes"] = append_note(df["notes"], mask, ("published n_repeats=" + old + " replaced by the RUNS of the "
                                                  "run script (policy n_repeats)").reindex(df.index))


# -- wan_frames -----------------------------------------------------------------------------

def frame_rounding(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of frame-rounding pipelines whose frames change, and the generated frame counts."""
    mask = np.zeros(len(df), dtype=bool)
    new = df["frames"].astype("float64").to_numpy().copy()
    for key, idx in df.groupby("model_key", dropna=True).groups.items():
        spec = resolve_model(str(key))
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


def correct_frames(df: pd.DataFrame, new: np.ndarray, mask: np.ndarray) -> None:
    """Set ``frames`` to the count WanPipeline generates, the requested one to ``notes`` (in place)."""
    old = df.loc[mask, "frames"].astype(int).astype(str)
    df.loc[mask, "frames"] = new[mask].astype("int64")
    df["notes"] = append_note(df["notes"], mask, ("requested frames=" + old + "; frames is the count "
                                                  "WanPipeline generates (policy wan_frames)").reindex(df.index))


# -- stage phases ---------------------------------------------------------------------------

def group_stage_rows(df: pd.DataFrame) -> None:
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
