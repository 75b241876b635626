"""The shipped default law: fitted on the public data, validated, written with its provenance.

``python -m fits.default_law`` rebuilds ``scaling/_laws/default.json`` from the curated
public runs table ``datasets/public/runs.parquet`` (``--data`` for another table or folder,
``--out`` for another file, ``--check`` to compare a rebuild with the shipped coefficients
without writing).

What it does, in order:

1. Read the curated table (:func:`fits.validation.load_public`): the published CSVs of
   ``datasets/public/`` imported with the default flag policies (which apply
   :data:`fits.validation.CORRECTIONS`) and FLOP-annotated by ``python -m scaling.app.curate``;
   keep the rows of :data:`fits.validation.LAW_SOURCES`.
2. Keep the rows a FLOP law can use (:func:`fits.validation.usable_rows`: ``phase == total``,
   a FLOP count, a registered GPU, a positive GPU energy, no CPU offload) and count what is
   left out, per reason and model.
3. Merge repeats into one row per distinct setting (:func:`fits.features.aggregate_settings`:
   geometric mean), so each configuration weighs once.
4. Compare the candidate forms (:func:`fits.validation.candidate_laws`) on the same splits
   (5-fold over settings, leave-one-model-out, leave-one-GPU-out). The winner is the form
   *with hardware terms* (it must predict GPUs without measurements) with the lowest mean
   MAPE over the three splits (:data:`SELECTION`). FLOP-only forms stay in the table for
   comparison.
5. Fit the winner on every setting for energy (``energy_gpu_j``) and, with the time prior of
   the same regime, for time (``duration_s``); coefficient intervals (statsmodels OLS or the
   asymptotic NLS covariance) and a bootstrap over settings (fixed seed).
6. Measure the out-of-split residual spread of the winner (:func:`residual_spread`): the
   variance of the log residuals of leave-one-GPU-out, leave-one-model-out and
   leave-one-family-out predictions, for energy and time. The predict path widens an interval
   with them when it extrapolates (a GPU, a model or a family outside the data; see
   :mod:`fits.law_file`).
7. Write the law JSON (:func:`law_document`): coefficients, covariance, intervals, the
   validation table, the residual spreads, the targets of the issue, provenance (file names and
   sha256) and versions.

Per-component energies. The public data measures whole calls (``phase == total``), so the
default law is a law of the total; a component's energy is the total's split by its FLOP share,
``E_role = E_total * C_role / C_total`` (its interval scaled the same way). A law fitted with
``scaling fit --by component`` on per-phase measurements predicts each role with its own law.

Length: a little over 500 lines on purpose: the seven steps above are one recipe that rebuilds
the shipped law file byte for byte; split, a step would be read away from the ones it feeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import clone

from fits.extrapolation import SPREAD_SPLITS, DataCoverage
from fits.features import DESIGN_COLUMNS, aggregate_settings, design_matrix, prior_exponents, setting_groups
from fits.laws import IdentifiabilityWarning
from fits.targets import public_targets
from fits.uncertainty import bootstrap, coef_table, column_names
from fits.validation import (CORRECTIONS, LAW_SOURCES, PUBLIC_FILES, _groups, candidate_laws, compare_laws,
                             default_public_table, exclusions, load_public, metrics, records, usable_rows)
from scaling.errors import LawError

__all__ = [
    "COMPONENT_METHODS",
    "LAW_SCHEMA",
    "SELECTION",
    "build_default_law",
    "default_law_path",
    "fit_default",
    "law_document",
    "law_part",
    "main",
    "residual_spread",
    "select_form",
    "time_law_for",
    "write_law",
]

LAW_SCHEMA = "scaling.law/1"
INTERVAL = 0.9
N_BOOT = 200
SEED = 0

SELECTION = ("eligible: forms with hardware terms (hw-*), the only ones that can predict a GPU without "
             "measurements; winner: the lowest mean MAPE over config_kfold, model_out and gpu_out on the "
             "setting-level data")

COMPONENT_METHODS = {
    "flop_share": ("the total law's energy split by FLOP share: E_role = E_total * C_role / C_total; the role's "
                   "interval is the total's interval scaled by the same share (the public data measures whole calls "
                   "only, so no per-role energy was fitted)"),
    "per_component": "one law per role, fitted on per-phase measurements; the total is the sum of the roles "
                     "(its interval: the sums of the role bounds, conservative)",
}

VALIDATION_SPLITS = ("in_sample", "config_kfold", "model_out", "gpu_out")

SPREAD_METHOD = ("sigma2: mean of the squared log residuals log(y) - log(median prediction) of the held-out "
                 "settings, each predicted by the law form refitted without its group (leave-one-group-out over "
                 "GPU registry keys, public model ids, registry model families); bias: their mean. It holds the "
                 "fold fits' parameter error as well as the noise. The predict path widens a log-space interval "
                 "by the excess over the in-sample sigma2 (see fits/law_file.py)")


def default_law_path() -> Path:
    return Path(__file__).resolve().parents[1] / "scaling" / "_laws" / "default.json"


# ---------------------------------------------------------------------------------- pieces


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for dist in ("diffusion-energy-scaling", "numpy", "scipy", "scikit-learn", "statsmodels", "pandas"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    from scaling._version import __version__

    out["scaling"] = __version__
    return out


def _regime_of(name: str) -> str | None:
    for regime in ("compute", "memory"):
        if f"hw-{regime}" in name:
            return regime
    if name.startswith("hw-fit"):
        return "memory"
    return None


def time_law_for(name: str, energy_law):
    """The time twin of an energy form: same form, the time prior of the same regime."""
    law = clone(energy_law)
    if "target" in law.get_params():  # a roofline form: its priors follow its target
        return law.set_params(target="time")
    regime = _regime_of(name)
    if regime is not None:
        law.set_params(prior_exponents=prior_exponents(regime, "time"))
    return law


def _training_data(folder: Path | None):
    runs = load_public(folder)
    rows = usable_rows(runs)
    excluded = exclusions(runs)
    settings = aggregate_settings(rows)
    return runs, rows, settings, excluded


def select_form(table) -> str:
    splits = ("config_kfold", "model_out", "gpu_out")
    t = table[table["split"].isin(splits) & table["law"].str.startswith("hw-")]
    score = t.groupby("law")["mape"].mean()
    if score.isna().all():
        raise LawError("no law form with hardware terms could be validated on this data: name one with --law")
    return str(score.idxmin())


def fit_default(folder: str | Path | None = None, form: str | None = None, validate: bool = True) -> dict[str, Any]:
    """Fit the default law (steps 1-5 of the module doc, without the bootstrap).

    Parameters
    ----------
    folder : path, optional
        The curated public runs table or its folder (default ``datasets/public/runs.parquet``).
    form : str, optional
        A name of :func:`fits.validation.candidate_laws`; None selects it by the validation table
        (needs ``validate=True``).
    validate : bool
        Build the validation table (slower: every form through every split).

    Returns
    -------
    dict with ``energy`` and ``time`` (fitted laws), ``form``, ``table`` (or None), ``X``,
    ``y_energy``, ``y_time``, ``settings``, ``rows``, ``runs``, ``excluded``.
    """
    folder = Path(folder) if folder is not None else None
    runs, rows, settings, excluded = _training_data(folder)
    X = design_matrix(settings, source="default-law settings")
    y = settings["energy_gpu_j"].to_numpy(dtype=float)
    laws = candidate_laws("energy")
    table = None
    if validate:
        table = compare_laws(laws, X, y, _groups(settings), splits=VALIDATION_SPLITS)
    if form is None:
        if table is None:
            raise LawError("fit_default: give `form` or validate=True to select it")
        form = select_form(table)
    if form not in laws:
        raise LawError(f"unknown law form {form!r}: use one of {', '.join(laws)}")
    has_t = settings["duration_s"].astype(float) > 0
    t_rows = settings[has_t.to_numpy(bool)]
    Xt = design_matrix(t_rows, source="default-law settings")
    yt = t_rows["duration_s"].to_numpy(dtype=float)
    time_table = None
    if validate:  # time through the same splits, every form with its time priors (the twins of the energy forms)
        time_table = compare_laws({name: time_law_for(name, law) for name, law in laws.items()}, Xt, yt,
                                  _groups(t_rows), splits=VALIDATION_SPLITS)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=IdentifiabilityWarning)
        energy = clone(laws[form]).fit(X, y)
        time = time_law_for(form, laws[form]).fit(Xt, yt)
    return {"energy": energy, "time": time, "form": form, "table": table, "time_table": time_table, "X": X,
            "y_energy": y, "X_time": Xt, "y_time": yt, "settings": settings, "time_settings": t_rows, "rows": rows,
            "runs": runs, "excluded": excluded}


def law_document(energy, time, *, form: str, name: str, description: str, X, y, X_time, y_time, settings,
                 component_method: str = "flop_share", table=None, targets=None, bootstrap=None,
                 provenance=None, excluded=None, selection: str | None = None, groups=None,
                 component_laws: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
                 spread: Mapping[str, Any] | None = None, time_table=None) -> dict:
    """The JSON document of a fitted law (what ``fits.load_law`` reads).

    ``energy`` / ``time`` are fitted laws of :mod:`fits.laws` (``time`` may be None).
    """
    part = law_part
    doc: dict[str, Any] = {
        "schema": LAW_SCHEMA,
        "name": name,
        "description": description,
        "form": form,
        "model": {
            "equation": equation(energy),
            "fitted_in": "log space (least squares on log E; Huber if robust); predictions are exp(fit) times Duan's "
                         "smearing factor (the mean of exp(residual)); intervals are log-space quantiles, exponentiated",
            "columns": list(DESIGN_COLUMNS),
            "flop": "FLOP of one pipeline call, whole batch (forward passes, one multiply-add = 2 FLOP, attention "
                    "counted), from the closed-form profiles",
            "target": {"energy": "energy_gpu_j: GPU energy of one call (J), whole batch",
                       "time": "duration_s: wall-clock time of one call (s)"},
            "hardware": "hardware figures of the GPU at the run's precision from the registry (scaling/_registry/"
                        "gpus.json); exponents held at a prior are listed as such in the coefficients",
        },
        "interval": INTERVAL,
        "components": {"method": component_method, "text": COMPONENT_METHODS[component_method]},
        "energy": part(energy, X, y),
        "time": part(time, X_time, y_time),
        "training": training_summary(settings, excluded),
    }
    if component_laws:
        doc["component_laws"] = {role: part(law, Xr, yr) for role, (law, Xr, yr) in component_laws.items()}
    if groups:
        doc["groups"] = groups
    if spread is not None:
        doc["residual_spread"] = spread
    if bootstrap is not None:
        doc["bootstrap"] = bootstrap
    if table is not None:
        doc["validation"] = {"selection": selection or "", "winner": form, "table": records(table)}
        if time_table is not None:
            doc["validation"]["time_table"] = records(time_table)
    if targets is not None:
        doc.setdefault("validation", {})["targets"] = targets
    if provenance is not None:
        doc["provenance"] = provenance
    doc["versions"] = _versions()
    if extra:
        doc.update(extra)
    return doc


def law_part(law, X, y) -> dict | None:
    """The stored state of one fitted law (energy or time): numbers, intervals, in-sample fit."""
    if law is None:
        return None
    state = law.to_state(INTERVAL).to_dict()
    state["coefficients"] = records(coef_table(law, X, y, level=INTERVAL))
    state["in_sample"] = in_sample_metrics(y, law.predict(X))
    return state


def equation(law) -> str:
    """The law's equation in words (``E = H * a * C^b + s * N`` ...), for the law file and the report."""
    if type(law).__name__ == "RooflineLaw":
        join = "max_8(A * C^b * peak^w_peak, B * Q * bw^w_bw)" if law.combine == "max" else \
            "(A * C^b * peak^w_peak + B * Q * bw^w_bw)"
        e0 = " + E0" if law.overhead == "call+step" else ""
        return f"E = tdp^w_tdp * {join} + s * N{e0}   (C: FLOP, Q: bytes moved, N: steps; roofline, {law.combine})"
    terms = ["a * C^b"]
    if "call" in law.overhead_:
        terms.append("E0")
    if "step" in law.overhead_:
        terms.append("s * N")
    core = " + ".join(terms)
    if type(law).__name__ != "HardwareLaw" or not law.hardware_columns_:
        return f"E = {core}" + ("   (N: steps)" if "step" in law.overhead_ else "")
    names = column_names(law)
    hw = " * ".join(f"{names[j]}^w_{names[j]}" for j in law.hardware_columns_)
    tail = "   (N: steps)" if "step" in law.overhead_ else ""
    if getattr(law, "overhead_scale", "hardware") == "none" and law.overhead_:
        return f"E = {hw} * {terms[0]} + {' + '.join(terms[1:])}" + tail + \
            "   (overheads not scaled by the hardware term)"
    return f"E = {hw} * ({core})" + tail


def in_sample_metrics(y, p) -> dict:
    """:func:`fits.validation.metrics` of in-sample predictions, JSON-ready (NaN -> None)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics(y, p).items()}


def training_summary(settings, excluded) -> dict:
    """What the law's data hold: settings, rows, GPUs, precisions, models, FLOP and step ranges."""
    def uniq(col):
        return sorted(map(str, settings[col].dropna().astype(str).unique())) if col in settings.columns else []

    pairs = sorted({(str(g), str(p)) for g, p in zip(settings["gpu_key"], settings["precision"])
                    if isinstance(g, str) and isinstance(p, str)}) if {"gpu_key", "precision"} <= set(settings.columns) \
        else []
    return {
        "n_settings": int(len(settings)),
        "n_rows": int(settings["n_rows"].sum()) if "n_rows" in settings.columns else int(len(settings)),
        "gpus": uniq("gpu_key"),
        "precisions": uniq("precision"),
        "models": uniq("model"),
        "model_keys": uniq("model_key"),
        "modalities": uniq("modality"),
        "families": sorted(set(model_families(settings))) if "model_key" in settings.columns else [],
        "gpu_precisions": pairs,
        # (architecture, precision class) of the data, resolved here so that predicting resolves no GPU of the data
        "measured_classes": [list(c) for c in sorted(DataCoverage(gpu_precisions=tuple(pairs)).measured_classes())],
        "flop_range": [float(settings["flop"].min()), float(settings["flop"].max())] if len(settings) else None,
        "byte_range": [float(settings["byte"].min()), float(settings["byte"].max())]
        if len(settings) and "byte" in settings.columns and bool((settings["byte"].astype(float) > 0).all()) else None,
        "steps_range": [int(settings["steps"].min()), int(settings["steps"].max())] if len(settings) else None,
        "excluded": excluded or {},
    }


def model_families(settings) -> list[str]:
    """The registry family of each row's model (``model_key``); ``?`` where it does not resolve."""
    from scaling.errors import UnknownModelError
    from scaling.registry import resolve_model

    out = []
    for key in settings["model_key"].astype("string").fillna("?"):
        try:
            out.append(resolve_model(str(key)).family)
        except UnknownModelError:
            out.append("?")
    return out


def residual_spread(law, X, y, groups: Mapping[str, Sequence], splits: Sequence[str] = SPREAD_SPLITS) -> dict:
    """Out-of-split log-residual spread of ``law`` (one law form, unfitted) on ``X``, ``y``.

    For each split (``groups[split]``: the group of each row), every group is left out once, the
    form refitted on the rest and the left-out rows predicted; ``sigma2`` is the mean of the
    squared log residuals against the fold's median prediction (no smearing), ``bias`` their
    mean, ``n`` the rows predicted, ``folds`` / ``failed_folds`` the fits.

    Returns
    -------
    dict split -> {"sigma2", "bias", "n", "folds", "failed_folds"}
    """
    from sklearn.model_selection import LeaveOneGroupOut

    from fits.laws import IdentifiabilityWarning

    X = np.asarray(X, dtype=float)
    ly = np.log(np.asarray(y, dtype=float))
    out = {}
    for split in splits:
        g = np.asarray(groups[split])
        res = np.full(ly.shape, np.nan)
        folds = failed = 0
        if np.unique(g).size >= 2:
            for train, test in LeaveOneGroupOut().split(X, ly, g):
                folds += 1
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=IdentifiabilityWarning)
                    try:
                        state = clone(law).fit(X[train], np.exp(ly[train])).to_state(INTERVAL)
                    except (LawError, ValueError):
                        failed += 1
                        continue
                res[test] = ly[test] - state.log_model(state.log_features(X[test]))
        ok = np.isfinite(res)
        out[split] = {"sigma2": float(np.mean(res[ok] ** 2)) if ok.any() else None,
                      "bias": float(np.mean(res[ok])) if ok.any() else None,
                      "n": int(ok.sum()), "folds": folds, "failed_folds": failed}
    return out


def _spread_groups(settings) -> dict[str, np.ndarray]:
    g = _groups(settings)
    return {"gpu_out": g["gpu_out"], "model_out": g["model_out"],
            "family_out": np.asarray(model_families(settings), dtype=object)}


def spread_summary(fit: Mapping[str, Any]) -> dict:
    """The ``residual_spread`` block of the law file: per target, the spread of each split."""
    laws = candidate_laws("energy")
    form = fit["form"]
    settings = fit["settings"]
    t_rows = settings[(settings["duration_s"].astype(float) > 0).to_numpy(bool)]
    return {
        "method": SPREAD_METHOD,
        "form": form,
        "energy": residual_spread(laws[form], fit["X"], fit["y_energy"], _spread_groups(settings)),
        "time": residual_spread(time_law_for(form, laws[form]), fit["X_time"], fit["y_time"], _spread_groups(t_rows)),
    }


def _provenance(table: Path) -> dict:
    from scaling.runs import read_metadata

    folder = table.parent
    report = read_metadata(table).get("import_report") or {}
    files = []
    for name in (*PUBLIC_FILES, "PROVENANCE.md"):
        p = folder / name
        files.append({"file": name, "sha256": sha256(p), "bytes": p.stat().st_size})
    return {
        "data": "datasets/public (converted from published measurements; see its PROVENANCE.md and LICENSES.md)",
        "files": files,
        "table": f"datasets/public/{table.name}: sources {', '.join(LAW_SOURCES)}",
        "import": "python -m scaling.app.curate: scaling.app.importers.import_public with the default flag "
                  "policies, then annotate_flops",
        "policies": {name: p["action"] for name, p in (report.get("policies") or {}).items()},
        "corrections": dict(CORRECTIONS),
        "rebuild": "python -m scaling.app.curate && python -m fits.default_law",
    }


def _bootstrap_summary(form: str, laws: Mapping[str, Any], X, y, settings, n_boot: int) -> dict:

    res = bootstrap(laws[form], X, y, setting_groups(settings), n_boot=n_boot, level=INTERVAL, random_state=SEED)
    return {"n_boot": res.n_boot, "n_failed": res.n_failed, "seed": SEED, "resampled": "whole settings",
            "level": INTERVAL, "intervals": records(res.intervals)}


def build_default_law(folder: str | Path | None = None, n_boot: int = N_BOOT, with_targets: bool = True) -> dict:
    """Every step of the module doc; returns the law document (not written)."""
    table = Path(folder) if folder is not None else default_public_table()
    if table.is_dir():
        table = table / "runs.parquet"
    fit = fit_default(table, validate=True)
    laws = candidate_laws("energy")
    boot = _bootstrap_summary(fit["form"], laws, fit["X"], fit["y_energy"], fit["settings"], n_boot) if n_boot else None
    targets = None
    if with_targets:
        targets = {k: r.to_dict() for k, r in public_targets(runs=fit["runs"]).items()}
    return law_document(
        fit["energy"], fit["time"], form=fit["form"], name="default",
        description="Default energy law of diffusion inference, fitted on the public measurements "
                    "(video_killed, benchlab, ML.ENERGY v2, diffused_responsibility) after import and FLOP annotation",
        X=fit["X"], y=fit["y_energy"], X_time=fit["X_time"], y_time=fit["y_time"], settings=fit["settings"],
        table=fit["table"], targets=targets, bootstrap=boot, provenance=_provenance(table),
        excluded=fit["excluded"], selection=SELECTION, spread=spread_summary(fit), time_table=fit["time_table"],
    )


def write_law(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write a law document atomically (a crash leaves the previous file intact)."""
    from scaling._files import write_text_atomic

    return write_text_atomic(path, json.dumps(doc, indent=1, sort_keys=False, allow_nan=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fits.default_law", description=__doc__.splitlines()[0])
    p.add_argument("--data", help="curated public runs table or its folder (default datasets/public/runs.parquet)")
    p.add_argument("--out", help=f"law file to write (default {default_law_path()})")
    p.add_argument("--n-boot", type=int, default=N_BOOT, help=f"bootstrap resamples over settings (default {N_BOOT})")
    p.add_argument("--check", action="store_true", help="refit and compare with the shipped coefficients; write nothing")
    args = p.parse_args(argv)
    if args.check:
        fit = fit_default(args.data, form=_shipped_form(), validate=False)
        shipped = json.loads(default_law_path().read_text(encoding="utf-8"))
        ok = True
        for target in ("energy", "time"):
            a = np.asarray(shipped[target]["theta"])
            b = fit[target].theta_
            rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-300)))
            print(f"{target}: max relative difference of theta {rel:.2e}")
            ok &= rel <= 1e-6
        return 0 if ok else 1
    doc = build_default_law(args.data, n_boot=args.n_boot)
    out = write_law(doc, args.out or default_law_path())
    print(f"wrote {out}: form {doc['form']}, {doc['training']['n_settings']} settings")
    for name, t in (doc.get("validation", {}).get("targets") or {}).items():
        print(f"  {name}: {t['metric']} ({t['split']}) = {t['achieved']} (target {t['op']} {t['threshold']}; "
              f"{'met' if t['passed'] else 'MISSED'})")
    return 0


def _shipped_form() -> str:
    return json.loads(default_law_path().read_text(encoding="utf-8"))["form"]


if __name__ == "__main__":
    raise SystemExit(main())
