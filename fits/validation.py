"""Validation: how well a law predicts configurations, models and GPUs it did not see.

Splits (all over *groups*, never over single repeats):

=================  ==========================================================================
``in_sample``      fit on everything, score on everything (what the seed paper reports)
``config_kfold``   k-fold over settings (``GroupKFold``, k = 5 or the number of settings)
``config_loo``     leave-one-configuration-out (``LeaveOneGroupOut`` over settings)
``model_out``      leave-one-model-out (groups = the public model id)
``gpu_out``        leave-one-GPU-out (groups = the GPU registry key)
=================  ==========================================================================

Metrics on the held-out predictions: R^2 in log space (``r2_log``), mean and median absolute
percentage error (``mape``, ``mdape``), Spearman rank correlation (``spearman``).
:func:`compare_laws` puts several law forms through the same splits: which form wins is read
from that table.

The second half reads the published data (the curated table ``datasets/public/runs.parquet``,
built by :mod:`scaling.app.curate`) and selects the rows a law can use; the issue's targets on
those data are in :mod:`fits.targets`.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from scaling.errors import DataError, LawError

__all__ = [
    "CORRECTIONS",
    "LAW_SOURCES",
    "PRIMARY_LAW",
    "PUBLIC_FILES",
    "SPLITS",
    "candidate_laws",
    "compare_laws",
    "cross_val_predictions",
    "exclusions",
    "experiments",
    "load_public",
    "metrics",
    "records",
    "usable_rows",
]

SPLITS = ("in_sample", "config_kfold", "config_loo", "model_out", "gpu_out")

#: The ``source`` values of the curated table that the default law is fitted on. The ML.ENERGY v3
#: rows (1-8 GPUs, H100) are curated too but stay out of the single-GPU law's fit.
LAW_SOURCES = ("video_killed_energy_budget", "benchlab_t2v", "ml_energy_leaderboard_v2",
               "diffused_responsibility_t2a", "leybzon_sd35_quantization")

#: The published CSVs behind :data:`LAW_SOURCES` (``datasets/public/``), named in the law's provenance.
PUBLIC_FILES = (
    "video_killed_energy_budget.csv",
    "benchlab_t2v.csv",
    "ml_energy_leaderboard_v2.csv",
    "diffused_responsibility_t2a.csv",
    "leybzon_sd35_quantization.csv",
)

_EXPERIMENT = re.compile(r"experiment=(\w+)")


# ---------------------------------------------------------------------------------- metrics


def metrics(y_true, y_pred) -> dict[str, float]:
    """``n``, ``r2_log``, ``mape``, ``mdape`` and ``spearman`` of predictions (NaN rows skipped)."""
    from scipy.stats import spearmanr

    from fits.laws import r2_log

    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    ok = np.isfinite(p) & np.isfinite(y) & (p > 0) & (y > 0)
    y, p = y[ok], p[ok]
    n = int(y.size)
    if n == 0:
        return {"n": 0, "r2_log": math.nan, "mape": math.nan, "mdape": math.nan, "spearman": math.nan}
    ape = np.abs(p / y - 1.0)
    if n > 2 and np.unique(y).size > 1 and np.unique(p).size > 1:
        rho = float(spearmanr(y, p).statistic)
    else:
        rho = math.nan
    return {"n": n, "r2_log": r2_log(y, p) if n > 1 else math.nan, "mape": float(ape.mean()),
            "mdape": float(np.median(ape)), "spearman": rho}


# ---------------------------------------------------------------------------------- splits


def _splitter(split: str, groups: np.ndarray, n_splits: int = 5):
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    n_groups = np.unique(groups).size
    if split == "config_kfold":
        return GroupKFold(n_splits=min(n_splits, n_groups))
    return LeaveOneGroupOut()


def cross_val_predictions(law, X, y, groups, split: str = "config_loo", n_splits: int = 5):
    """Out-of-fold predictions of ``law`` (cloned per fold) for every row.

    Parameters
    ----------
    law : estimator
    X, y : arrays
    groups : array-like of shape (n_samples,)
        The unit of the split: settings, models or GPUs.
    split : {"config_kfold", "config_loo", "model_out", "gpu_out"}
        Only chooses GroupKFold (``config_kfold``) or LeaveOneGroupOut (the others).

    Returns
    -------
    pred : ndarray of shape (n_samples,)
        NaN where the fold could not be fitted.
    info : dict
        ``folds``, ``failed_folds``, ``warned_folds`` (IdentifiabilityWarning raised).
    """
    from sklearn.base import clone

    from fits.laws import IdentifiabilityWarning

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    pred = np.full(y.shape, np.nan)
    info = {"folds": 0, "failed_folds": 0, "warned_folds": 0, "errors": []}
    if np.unique(groups).size < 2:
        return pred, info
    for train, test in _splitter(split, groups, n_splits).split(X, y, groups):
        info["folds"] += 1
        est = clone(law)
        with warnings.catch_warnings(record=True) as caught:
            warnings.filterwarnings("always", category=IdentifiabilityWarning)
            try:
                est.fit(X[train], y[train])
            except (LawError, ValueError) as exc:
                info["failed_folds"] += 1
                info["errors"].append(str(exc))
                continue
        if any(issubclass(w.category, IdentifiabilityWarning) for w in caught):
            info["warned_folds"] += 1
        pred[test] = est.predict(X[test])
    return pred, info


def compare_laws(laws: Mapping[str, object], X, y, group_sets: Mapping[str, Sequence], splits: Sequence[str] = SPLITS,
                 n_splits: int = 5):
    """Every law through every split: one row per (law, split) with the metrics.

    Parameters
    ----------
    laws : mapping name -> estimator
    X, y : arrays
    group_sets : mapping split -> groups
        ``config_kfold`` and ``config_loo`` need the setting ids, ``model_out`` the model per
        row, ``gpu_out`` the GPU per row. A split whose groups have fewer than 2 levels is
        reported with ``folds = 0`` and NaN metrics (it cannot be made).
    splits : sequence of split names

    Returns
    -------
    pandas.DataFrame
        Columns ``law, split, folds, failed_folds, warned_folds, n, r2_log, mape, mdape, spearman,
        same_as`` (``same_as`` names an earlier form whose fit this one repeats on this data).
    """
    import pandas as pd

    from fits.laws import IdentifiabilityWarning

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    rows = []
    done: dict[tuple, str] = {}
    for name, law in laws.items():
        sig = _twin_signature(law, X)
        if sig is not None and sig in done:  # same fit as an earlier form on this data
            for rec in [r for r in rows if r["law"] == done[sig]]:
                rows.append({**rec, "law": name, "same_as": done[sig]})
            continue
        if sig is not None:
            done[sig] = name
        for split in splits:
            if split == "in_sample":
                from sklearn.base import clone

                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=IdentifiabilityWarning)
                    try:
                        est = clone(law).fit(X, y)
                        pred = est.predict(X)
                        info = {"folds": 1, "failed_folds": 0, "warned_folds": 0}
                    except (LawError, ValueError):
                        pred = np.full(len(y), np.nan)
                        info = {"folds": 1, "failed_folds": 1, "warned_folds": 0}
            else:
                groups = group_sets.get(split)
                if groups is None:
                    continue
                pred, info = cross_val_predictions(law, X, y, groups, split, n_splits)
            m = metrics(y, pred)
            rows.append({"law": name, "split": split, "folds": info["folds"], "failed_folds": info["failed_folds"],
                         "warned_folds": info["warned_folds"], **m, "same_as": ""})
    return pd.DataFrame(rows, columns=["law", "split", "folds", "failed_folds", "warned_folds", "n", "r2_log",
                                       "mape", "mdape", "spearman", "same_as"])


def _twin_signature(law, X):
    """A key shared by forms that give the same fit on ``X``.

    When every hardware column is constant on the data (one GPU, one precision), a
    :class:`~fits.laws.HardwareLaw` is its FLOP-only twin: the hardware term is a constant that
    the intercept absorbs, in every fold. Forms with the same overhead and loss then share one
    fit (the table says ``same_as``).
    """
    from fits.laws import OVERHEADS, HardwareLaw, PowerLaw, PowerLawOverhead

    if X.shape[1] > 1 and isinstance(law, HardwareLaw):
        sc = law.steps_column
        hw = [j for j in range(1, X.shape[1]) if j not in (sc, law.byte_column)]
        if any(np.unique(X[:, j]).size > 1 for j in hw):
            return None
    elif not isinstance(law, (PowerLaw, PowerLawOverhead)):
        return None
    p = law.get_params()
    terms = OVERHEADS.get(p.get("overhead"), ("?",)) if not isinstance(law, PowerLaw) else ()
    return (terms, p.get("steps_column") if "step" in terms else None, bool(p["robust"]), float(p["epsilon"]),
            bool(p["smearing"]))


def candidate_laws(target: str = "energy") -> dict[str, object]:
    """The law forms every validation table compares (same names in every table).

    ``power*`` forms read the FLOP count (and the steps for ``+step``); ``hw-*`` forms add
    hardware terms held at a physical prior (:data:`fits.features.PRIORS`): ``compute``
    (per FLOP ~ TDP / peak), ``memory`` (per FLOP ~ TDP * byte / bandwidth); ``hw-fit`` fits
    the hardware exponents the data identifies (memory prior for the rest). ``+E0`` adds a
    fixed overhead per call, ``+step`` one per denoising step, scaled by the hardware term
    like the FLOP term (``E = H (a C^b + s N)``); ``+flatstep`` adds a per-step overhead that
    costs the same on every GPU and precision (``E = H a C^b + s N``, ``overhead_scale="none"``:
    the launch-bound part of a step does not grow when fp32 slows the matmuls). On a single GPU
    and precision every FLOP-only ``hw-*`` form reduces to its FLOP-only twin.

    ``hw-roofline-sum`` and ``hw-roofline-max`` (:class:`fits.roofline.RooflineLaw`) read the
    bytes moved too: a compute term ``C^b / peak`` and a memory term ``Q / bandwidth``, added or
    maxed (the roofline), with the flat per-step cost; ``target`` picks their priors;
    ``hw-roofline-max+E0`` adds a flat cost per call.
    """
    from fits.features import BYTE_COLUMN, STEPS_COLUMN, prior_exponents
    from fits.laws import HardwareLaw, PowerLaw, PowerLawOverhead
    from fits.roofline import RooflineLaw

    compute = prior_exponents("compute", target)
    memory = prior_exponents("memory", target)
    sc = STEPS_COLUMN

    def hw(prior, overhead=None, fit=False, scale="hardware"):
        return HardwareLaw(prior_exponents=prior, fit_hardware=fit, overhead=overhead, steps_column=sc,
                           overhead_scale=scale, byte_column=BYTE_COLUMN)

    return {
        "power": PowerLaw(),
        "power-robust": PowerLaw(robust=True),
        "power+E0": PowerLawOverhead(overhead="call"),
        "power+step": PowerLawOverhead(overhead="step", steps_column=sc),
        "hw-compute": hw(compute),
        "hw-compute+step": hw(compute, "step"),
        "hw-memory": hw(memory),
        "hw-memory+E0": hw(memory, "call"),
        "hw-memory+step": hw(memory, "step"),
        "hw-memory+E0+step": hw(memory, "call+step"),
        "hw-fit+step": hw(memory, "step", fit="auto"),
        "hw-fit+flatstep": hw(memory, "step", fit="auto", scale="none"),
        "hw-roofline-sum": RooflineLaw(combine="sum", target=target),
        "hw-roofline-max": RooflineLaw(combine="max", target=target),
        "hw-roofline-max+E0": RooflineLaw(combine="max", target=target, overhead="call+step"),
    }


# ---------------------------------------------------------------------------------- data


def experiments(runs):
    """The ``experiment=...`` tag of each row's notes (public data), else ``<NA>``."""
    return runs["notes"].astype("string").str.extract(_EXPERIMENT, expand=False)


#: Corrections of the published metadata that the fits rely on, each with its evidence; they are
#: applied by the importer (:mod:`scaling.app.importers`), so `scaling fit` on an import gets them too.
CORRECTIONS = {
    "cfg_pipeline_default": (
        "ML.ENERGY v2 stabilityai/sdxl-turbo rows: CFG on. The benchmark leaves guidance_scale unset, so "
        "StableDiffusionXLPipeline's own default (5.0) applies and every step runs the UNet on the prompt and "
        "the negative prompt; the registry's 0.0 is the model card's advice, not what ran (applied by the importer: "
        "scaling.app.importers._cfg_column takes the architecture's pipeline default when a source leaves guidance unset). The latency agrees: "
        "bs16 at 512x512 takes 4.24 s on H100 against 17.4 s for SDXL-base at 1024x1024 (x4.1, the token ratio "
        "with CFG in both; without CFG turbo would take about half)."
    ),
}


def load_public(path: str | Path | None = None, sources: Sequence[str] | None = LAW_SOURCES):
    """The curated public runs table (``datasets/public/runs.parquet``), with ``experiment``.

    The table is built by ``python -m scaling.app.curate`` from the published CSVs next to it
    (imported with the default flag policies, which include :data:`CORRECTIONS`, and
    FLOP-annotated). ``path`` is the table or its folder; ``sources`` keeps the rows of those
    ``source`` values (default :data:`LAW_SOURCES`, what the default law is fitted on; None: all).

    Raises
    ------
    DataError
        If the table is missing or invalid.
    """
    from scaling.runs import read_runs

    p = Path(path) if path is not None else default_public_table()
    if p.is_dir():
        p = p / "runs.parquet"
    if not p.is_file():
        raise DataError(f"curated public runs table {str(p)!r} does not exist (rule: build it with "
                        "`python -m scaling.app.curate` in a clone of the repository)")
    runs = read_runs(p)
    if sources is not None:
        runs = runs[runs["source"].astype("string").isin(list(sources)).to_numpy(bool)]
    runs = runs.reset_index(drop=True)
    runs["experiment"] = experiments(runs)
    return runs


def default_public_folder() -> Path:
    """``datasets/public`` of the repository: the published CSVs, their provenance and the curated table."""
    return Path(__file__).resolve().parents[1] / "datasets" / "public"


def default_public_table() -> Path:
    """``datasets/public/runs.parquet``: the curated runs table of the published measurements."""
    return default_public_folder() / "runs.parquet"


def exclusions(runs, *, exclude_offload: bool = True, target: str = "energy_gpu_j") -> dict[str, object]:
    """Why rows cannot enter a FLOP law, counted: rows and models per reason."""
    from scaling.runs import has_flag

    total = runs["phase"].astype("string") == "total"
    reasons: dict[str, object] = {}
    stage = ~total
    reasons["stage phase rows (count each call once: phase == total)"] = {"rows": int(stage.sum())}
    no_flop = total & runs["flop"].isna()
    models = runs.loc[no_flop, "model"].astype("string").value_counts()
    reasons["no FLOP (model not registered or no FLOP profile)"] = {
        "rows": int(no_flop.sum()), "models": {str(k): int(v) for k, v in models.items()}}
    no_gpu = total & runs["flop"].notna() & runs["gpu_key"].isna()
    reasons["GPU not stated or not registered"] = {
        "rows": int(no_gpu.sum()),
        "models": {str(k): int(v) for k, v in runs.loc[no_gpu, "model"].astype("string").value_counts().items()}}
    if exclude_offload:
        off = total & runs["flop"].notna() & runs["gpu_key"].notna() & has_flag(runs, "cpu_offload")
        reasons["cpu_offload (energy inflated by weight transfers)"] = {
            "rows": int(off.sum()),
            "models": {str(k): int(v) for k, v in runs.loc[off, "model"].astype("string").value_counts().items()}}
    bad_y = total & ~(runs[target].astype(float) > 0)
    reasons[f"no positive {target}"] = {"rows": int(bad_y.sum())}
    return reasons


def usable_rows(runs, *, exclude_offload: bool = True, target: str = "energy_gpu_j"):
    """Rows a FLOP law can be fitted on: ``phase == total``, FLOP, GPU and target present."""
    from scaling.runs import has_flag

    ok = (runs["phase"].astype("string") == "total") & runs["flop"].notna() & runs["gpu_key"].notna()
    ok &= runs[target].astype(float).fillna(0) > 0
    if exclude_offload:
        ok &= ~has_flag(runs, "cpu_offload")
    return runs[ok.to_numpy(dtype=bool)].copy()


def _groups(rows) -> dict[str, np.ndarray]:
    from fits.features import setting_groups

    s = setting_groups(rows)
    return {"config_kfold": s, "config_loo": s, "model_out": rows["model"].astype("string").to_numpy(dtype=object),
            "gpu_out": rows["gpu_key"].astype("string").to_numpy(dtype=object)}


# ---------------------------------------------------------------------------------- tables


def number_or_none(x):
    """``x`` as a float, None when missing or not finite (JSON has no NaN)."""
    return None if x is None or not np.isfinite(x) else float(x)


def records(df) -> list[dict]:
    """A table as JSON-ready records (NaN -> None, numpy scalars -> Python numbers)."""
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (number_or_none(v) if isinstance(v, (float, np.floating)) else
                        (int(v) if isinstance(v, (np.integer,)) else v)) for k, v in rec.items()})
    return out


#: The form each target is judged on: the shipped default law's form (chosen by
#: :mod:`fits.default_law` from its own validation table): the roofline in FLOPs and bytes, with
#: flat costs per step and per call.
PRIMARY_LAW = "hw-roofline-max+E0"

