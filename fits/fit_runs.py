"""``scaling fit`` as a function: read a runs table, check it, merge repeats, validate, fit, build the law file.

:func:`fit_runs` reads a runs table (parquet or CSV, :func:`scaling.runs.read_runs`) whose rows
carry their FLOP counts (``scaling data import`` annotates them; an un-annotated table is refused
with one line saying so), keeps the rows a law can use (the phase, no CPU offload unless asked,
registered models and GPUs, one GPU per run) and says how many it left out and why, merges
repeats into one row per setting (:func:`fits.features.aggregate_settings`), puts every candidate
form through the validation splits (:func:`fits.validation.compare_laws`), fits the chosen one
for energy and time, and builds the law document (:func:`fits.default_law.law_document`). It
writes nothing: ``scaling fit`` writes the law file and the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import clone

from fits.default_law import (INTERVAL, SELECTION, VALIDATION_SPLITS, equation, in_sample_metrics, law_document,
                              law_part, select_form, sha256, time_law_for, training_summary)
from fits.features import aggregate_settings, design_matrix
from fits.uncertainty import coef_table
from fits.validation import _groups, candidate_laws, compare_laws, records
from fits.loglaw import identifiability_notes
from scaling.errors import DataError, LawError, UnknownGPUError, UnknownModelError
from scaling.hardware import resolve_gpu
from scaling.registry import resolve_model
from scaling.runs import has_flag, read_runs

__all__ = ["fit_runs"]

_SKIPPABLE = ("model", "gpu")
"""The groupings whose groups are laws of their own: a group that cannot be fitted on its own (one
distinct setting) is skipped with a note, not the whole fit (a per-component law needs every component)."""

_LEFT_OUT = {
    "phase": "other phases (a law of {what} uses {phases} rows)",
    "offload": "flagged cpu_offload (energy inflated by weight transfers; --keep-offload keeps them)",
    "unresolved": "model not registered, no FLOP profile or GPU not registered (--strict refuses them)",
    "multi_gpu": "gpu_count > 1 (this law is a law of one GPU)",
}


def _check_table(runs, source: str, *, drop_unresolved: bool, keep_offload: bool, phases: Sequence[str]):
    """Select the rows a law can use; raise on bad data (one line: file, row, column, rule)."""
    need = ("model", "phase", "energy_gpu_j", "steps", "precision", "gpu_key", "model_key", "flop")
    missing = [c for c in need if c not in runs.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}: `scaling fit` needs a runs table "
                        "(`scaling data import SOURCE --out runs.parquet`)")
    runs = runs.reset_index(drop=True)
    left = {k: 0 for k in _LEFT_OUT}
    phase_ok = runs["phase"].astype("string").isin(list(phases)).fillna(False).to_numpy(bool)
    left["phase"] = int((~phase_ok).sum())
    sel = runs[phase_ok]
    if not keep_offload:
        off = has_flag(sel, "cpu_offload").to_numpy(bool)
        left["offload"] = int(off.sum())
        sel = sel[~off]
    model_ok = _registered(sel["model_key"], resolve_model, UnknownModelError)
    gpu_ok = _registered(sel["gpu_key"], resolve_gpu, UnknownGPUError)
    unresolved = (~model_ok | sel["flop"].isna().to_numpy(bool) | ~gpu_ok)
    if unresolved.any() and not drop_unresolved:
        i = int(sel.index[unresolved][0])  # the row of the file, counted from 1 below
        r = sel.loc[i]
        at = int(np.flatnonzero(unresolved)[0])
        if _isna(r["model_key"]):
            why = f"model {r['model']!r} is not registered (see `scaling models`)"
            col = "model"
        elif not model_ok[at]:
            why = (f"model_key {r['model_key']!r} (model {r['model']!r}) is not a registered model "
                   "(see `scaling models`)")
            col = "model_key"
        elif _isna(r["gpu_key"]):
            why = f"GPU {r.get('gpu')!r} is not registered (see `scaling gpus`)"
            col = "gpu"
        elif not gpu_ok[at]:
            why = f"gpu_key {r['gpu_key']!r} (GPU {r.get('gpu')!r}) is not a registered GPU (see `scaling gpus`)"
            col = "gpu_key"
        else:
            err = r.get("flop_error")
            why = f"no FLOP count for {r['model']!r}" + (f" ({err})" if not _isna(err) else "")
            col = "flop"
        raise DataError(f"{source}: row {i + 1}, column {col}: {why}; rule: a FLOP law needs a registered model, "
                        f"its FLOPs and a registered GPU ({int(unresolved.sum())} such rows; without --strict "
                        "they are left out)")
    left["unresolved"] = int(unresolved.sum())
    sel = sel[~unresolved]
    multi = (sel["gpu_count"].astype("Int64").fillna(1) > 1).to_numpy(bool) if "gpu_count" in sel.columns \
        else np.zeros(len(sel), dtype=bool)
    left["multi_gpu"] = int(multi.sum())
    sel = sel[~multi]
    e = sel["energy_gpu_j"].astype("float64")
    bad = ~(e > 0).fillna(False).to_numpy(bool)
    if bad.any() and bad.all() and e.isna().all():
        raise DataError(f"{source}: column energy_gpu_j is empty on every one of the {len(sel)} rows (missing, or "
                        "never measured); rule: a law of GPU energy needs a positive energy_gpu_j on every row it fits")
    if bad.any():
        i = int(sel.index[bad][0])
        raise DataError(f"{source}: row {i + 1}, column energy_gpu_j: {float(e.iloc[int(bad.nonzero()[0][0])])!r}; "
                        "rule: a law of GPU energy needs a positive energy_gpu_j on every row it fits")
    if sel.empty:
        raise DataError(f"{source}: no row left to fit ({', '.join(f'{n} {k}' for k, n in left.items() if n)} "
                        f"left out); rule: a law needs rows with phase {' or '.join(phases)}")
    return sel, left


def _registered(keys, resolve, unknown) -> np.ndarray:
    """Per row: the key is set and resolves in its registry (a key no registry knows is unresolved)."""
    known: dict[str, bool] = {}
    for k in keys.dropna().astype(str).unique():
        try:
            resolve(k)
            known[k] = True
        except unknown:
            known[k] = False
    return np.array([(not _isna(k)) and known.get(str(k), False) for k in keys], dtype=bool)


def _isna(v) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fit_one(settings, form: str | None, target: str, n_splits: int, source: str, label: str):
    """Validate every candidate on ``settings`` and fit the chosen form for energy and time."""
    laws = candidate_laws("energy")
    X = design_matrix(settings, source=source)
    y = settings["energy_gpu_j"].to_numpy(dtype=float)
    has_t = (settings["duration_s"].astype("float64") > 0).fillna(False).to_numpy(bool) \
        if "duration_s" in settings.columns else None
    if target == "time":
        if has_t is None or not has_t.any():
            raise LawError(f"{source}{label}: --target time needs duration_s on the rows")
        Xv, yv = X[has_t], settings["duration_s"].to_numpy(dtype=float)[has_t]
        vlaws = candidate_laws("time")
        vgroups = _groups(settings[has_t])
    else:
        Xv, yv, vlaws, vgroups = X, y, laws, _groups(settings)
    if len(settings) < 2 or np.unique(X[:, 0]).size < 2:
        raise LawError(f"{source}{label}: the data holds 1 distinct setting ({len(settings)} after merging "
                       f"repeats, {np.unique(X[:, 0]).size} distinct FLOP count); rule: a law needs at least 2 "
                       "distinct settings with different FLOPs")
    tab = compare_laws(vlaws, Xv, yv, vgroups, splits=VALIDATION_SPLITS, n_splits=n_splits)
    selection = None
    if form in (None, "auto"):
        form = select_form(tab)
        selection = SELECTION
    elif form not in laws:
        raise LawError(f"unknown law {form!r}: use auto or one of {', '.join(laws)}")
    try:
        energy = clone(laws[form]).fit(X, y)
        time = None
        Xt = yt = None
        if has_t is not None and has_t.sum() >= 2:
            Xt, yt = X[has_t], settings["duration_s"].to_numpy(dtype=float)[has_t]
            time = time_law_for(form, laws[form]).fit(Xt, yt)
    except LawError as exc:
        raise LawError(f"{source}{label}: {exc}") from None
    fitted = {"energy": energy, "time": time}
    coefs = {"energy": records(coef_table(energy, X, y, level=INTERVAL)),
             "time": records(coef_table(time, Xt, yt, level=INTERVAL)) if time is not None else []}
    tl = fitted[target]
    in_sample = in_sample_metrics(yv if target == "time" else y, tl.predict(Xv if target == "time" else X))
    return {"form": form, "equation": equation(energy), "selection": selection, "validation": tab,
            "coefficients": coefs, "in_sample": in_sample, "n_settings": int(len(settings)), "energy_law": energy,
            "time_law": time, "X": X, "y": y, "X_time": Xt, "y_time": yt, "settings": settings}


def fit_runs(data: str | Path, law: str = "auto", by: str | None = None, target: str = "energy",
             keep_offload: bool = False, drop_unresolved: bool = False, n_splits: int = 5,
             runs=None) -> dict[str, Any]:
    """What ``scaling fit`` does, as a function: read, check, merge, validate, fit, build the law file.

    ``runs``: the table already read from ``data`` (``scaling fit`` passes it with its byte
    columns filled from the closed-form profiles); None reads ``data``.

    Returns a dict with ``fits`` (one entry, or one per group with ``by``), ``document`` (the law
    file to write), ``notes`` (lines for the user: the :class:`~fits.loglaw.IdentifiabilityWarning`
    of the final fits, and with ``by="model"`` / ``"gpu"`` each group skipped because it cannot be
    fitted on its own, e.g. one distinct setting; a LawError when no group can), and what the report
    and the printout need. Writes nothing.

    A row is unresolved (left out, or with ``drop_unresolved=False`` refused naming its row, counted
    from 1) when its ``model_key`` or ``gpu_key`` is empty or names no registered model or GPU, or it
    has no FLOP count.
    """
    if by not in (None, "gpu", "model", "component"):
        raise LawError(f"`--by` {by!r}: use gpu, model or component")
    forms = candidate_laws("energy")
    if law not in (None, "auto", *forms):  # before any work (and never read as a group that cannot be fitted)
        raise LawError(f"unknown law {law!r}: use auto or one of {', '.join(forms)}")
    source = str(data)
    runs = read_runs(data) if runs is None else runs
    if "flop" not in runs.columns or (runs["flop"].isna().all() and (
            "flop_error" not in runs.columns or runs["flop_error"].isna().all())):
        raise DataError(f"{source}: no FLOP counts (column flop is empty); rule: a FLOP law needs FLOP-annotated "
                        f"runs: run `scaling data import {source} --out runs.parquet` first")
    roles = ("text_encoder", "denoiser", "decoder", "vocoder")
    phases = roles if by == "component" else ("total",)
    rows, left = _check_table(runs, source, drop_unresolved=drop_unresolved, keep_offload=keep_offload,
                              phases=phases)
    left_text = {}
    for k, n in left.items():
        text = _LEFT_OUT[k].format(what="components" if by == "component" else "whole calls",
                                   phases="/".join(phases))
        left_text[text] = n
    if by is None:
        groups = {"all": rows}
    else:
        col = {"gpu": "gpu_key", "model": "model", "component": "phase"}[by]
        groups = {str(k): g for k, g in rows.groupby(rows[col].astype(str), sort=True)}
    fits, notes, skipped = {}, [], {}
    for key, part in groups.items():
        settings = aggregate_settings(part)
        label = "" if by is None else f" ({by} {key})"
        try:
            with identifiability_notes("" if by is None else f"{by} {key}: ") as fit_notes:
                fits[key] = _fit_one(settings, law, target, n_splits, source, label)
        except LawError as exc:
            if by not in _SKIPPABLE:  # one law (or every component of one): it must fit
                raise
            why = str(exc)
            why = why[len(f"{source}{label}: "):] if why.startswith(f"{source}{label}: ") else why
            skipped[key] = (why, len(part))
            continue
        notes.extend(fit_notes)
        fits[key]["training"] = training_summary(settings, None)
    if skipped:
        if not fits:
            first, (why, _) = next(iter(skipped.items()))
            raise LawError(f"{source}: no {by} of the table can be fitted on its own ({len(skipped)} {by}s; "
                           f"{by} {first}: {why})")
        notes = [f"skipped {by} {key}: it cannot be fitted on its own: {why} ({n} rows left out)"
                 for key, (why, n) in skipped.items()] + notes
        left_text[f"{by} that cannot be fitted on its own ({', '.join(skipped)}; see the notes)"] = \
            sum(n for _, n in skipped.values())
        col = {"gpu": "gpu_key", "model": "model"}[by]
        rows = rows[rows[col].astype(str).isin(list(fits))]
    all_settings = aggregate_settings(rows)
    doc = _fit_document(fits, by, source, all_settings, left_text)
    return {"data": source, "n_rows": int(len(rows)), "n_settings": int(len(all_settings)),
            "gpus": sorted(map(str, rows["gpu_key"].astype(str).unique())),
            "models": sorted(map(str, rows["model"].astype(str).unique())), "left_out": left_text, "by": by,
            "fits": fits, "document": doc, "target": target, "notes": notes}


def _fit_document(fits: Mapping[str, dict], by: str | None, source: str, settings, left_text) -> dict:
    base = {"name": Path(source).stem, "description": f"law fitted by `scaling fit` on {source}"}
    prov = {"data": source, "sha256": sha256(Path(source)), "fitted_by": "scaling fit"}
    if by is None:
        f = fits["all"]
        return law_document(f["energy_law"], f["time_law"], form=f["form"], X=f["X"], y=f["y"],
                            X_time=f["X_time"], y_time=f["y_time"], settings=f["settings"], table=f["validation"],
                            provenance=prov, excluded=left_text, selection=f["selection"], **base)
    if by == "component":
        first = next(iter(fits.values()))
        comp = {role: (f["energy_law"], f["X"], f["y"]) for role, f in fits.items()}
        doc = law_document(first["energy_law"], None, form=first["form"], X=first["X"], y=first["y"], X_time=None,
                           y_time=None, settings=settings, component_method="per_component", provenance=prov,
                           excluded=left_text, component_laws=comp, **base)
        doc["energy"] = None
        doc["component_time_laws"] = {role: law_part(f["time_law"], f["X_time"], f["y_time"])
                                      for role, f in fits.items() if f["time_law"] is not None}
        doc["validation"] = {role: {"winner": f["form"], "table": records(f["validation"])} for role, f in fits.items()}
        return doc
    groups = {}
    for key, f in fits.items():
        sub = law_document(f["energy_law"], f["time_law"], form=f["form"], name=f"{base['name']}[{key}]",
                           description="", X=f["X"], y=f["y"], X_time=f["X_time"], y_time=f["y_time"],
                           settings=f["settings"], table=f["validation"], selection=f["selection"])
        sub.pop("versions", None)
        groups[key] = sub
    first = next(iter(fits.values()))
    doc = law_document(first["energy_law"], first["time_law"], form=first["form"], X=first["X"], y=first["y"],
                       X_time=first["X_time"], y_time=first["y_time"], settings=settings, provenance=prov,
                       excluded=left_text, **base)
    doc["energy"] = None
    doc["time"] = None
    doc["groups"] = {"by": by, "laws": groups}
    return doc
