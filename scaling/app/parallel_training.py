"""The training table and the refit of the multi-GPU law (:mod:`fits.parallel`).

``python -m scaling.app.parallel_training`` refits the law on the ML.ENERGY v3 H100 rows of the
curated public table and rewrites ``scaling/_laws/parallel.json`` (``--out`` for another file,
``--check`` to compare without writing)::

    v3_frame()          -> the v3 rows with their physics columns (scaling.app.parallel_features) and anchors
    build_document()    -> the law document with its provenance

Anchors of the training rows: each multi-GPU row's one-GPU call is the v3 row of the same model and
batch on one GPU. Three multi-GPU rows (PixArt-Sigma and CogVideoX-2b at batch 32) have no such
row; their anchor is the largest one-GPU batch of the model scaled by batch (per-output time and
energy are flat within 1% from batch 8 up in those rows); ``anchor_scaled`` marks them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from fits.default_law import sha256
from fits.law_file import load_law
from fits.parallel import FEATURES, law_document, load_parallel_law, parallel_law_path, write_law
from fits.validation import default_public_folder, load_public
from scaling.app.parallel_features import parallel_features, plan_from_notes, single_gpu_anchor
from scaling.errors import DataError
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting, make_setting
from scaling.units import Interval

__all__ = ["V3_CSV", "V3_SOURCE", "build_document", "main", "v3_frame", "with_law_anchors"]

V3_SOURCE = "ml_energy_leaderboard_v3"
V3_CSV = "ml_energy_leaderboard_v3_h100.csv"


def _setting_of_row(spec: ModelSpec, row) -> GenerationSetting:
    frames = row["frames"]
    kw: dict[str, Any] = {"height": int(row["height"]), "width": int(row["width"]), "steps": int(row["steps"]),
                          "batch_size": int(row["batch_size"])}
    if spec.modality == "video" and not pd.isna(frames):
        kw["frames"] = int(frames)
    if not pd.isna(row["cfg"]):
        kw["cfg"] = bool(row["cfg"])
    if isinstance(row["precision"], str):
        kw["precision"] = row["precision"]
    return make_setting(spec, **kw)


def v3_frame(runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ML.ENERGY v3 rows (1-8 GPUs) with the law's :data:`fits.parallel.FEATURES` and anchors.

    Columns: ``model_key``, ``gpu_key``, ``batch_size``, ``plan``, ``ulysses``, ``ring``, the
    features, ``time_s`` / ``energy_j`` (the measured call: latency, GPU energy summed over the
    GPUs), ``anchor_scaled``, ``idle_gpus_during_decode`` and ``setting`` (the row's
    :class:`~scaling.settings.GenerationSetting`, for :func:`with_law_anchors`).

    Raises
    ------
    DataError
        If the table has no v3 row, or a v3 row names no plan.
    """
    runs = load_public(sources=None) if runs is None else runs
    v3 = runs[(runs["source"].astype("string") == V3_SOURCE).to_numpy(bool)
              & (runs["phase"].astype("string") == "total").to_numpy(bool)]
    if v3.empty:
        raise DataError(f"no {V3_SOURCE} row in the runs table: rebuild it with `python -m scaling.app.curate`")
    records = []
    for _, row in v3.iterrows():
        plan = plan_from_notes(str(row["notes"]))
        if plan is None:
            raise DataError(f"v3 row {row['run_id']}: its notes name no ulysses_degree / ring_degree")
        spec = resolve_model(str(row["model_key"]))
        setting = _setting_of_row(spec, row)
        flops = {r: float(row[f"flop_{r}"]) for r in ("text_encoder", "denoiser", "decoder")
                 if not pd.isna(row[f"flop_{r}"])}
        feats = parallel_features(spec, setting, plan, str(row["gpu_key"]), flop_by_role=flops)
        records.append({"model_key": spec.key, "gpu_key": feats.gpu_key, "batch_size": int(row["batch_size"]),
                        "plan": feats.plan, "ulysses": plan.ulysses, "ring": plan.ring,
                        "time_s": float(row["duration_s"]), "energy_j": float(row["energy_gpu_j"]),
                        **{f: getattr(feats, f) for f in FEATURES if hasattr(feats, f)},
                        "idle_gpus_during_decode": feats.idle_gpus_during_decode, "setting": setting})
    frame = pd.DataFrame.from_records(records)
    return _with_anchors(frame)


def _with_anchors(frame: pd.DataFrame) -> pd.DataFrame:
    one = frame[frame["n_gpus"] == 1].set_index(["model_key", "gpu_key", "batch_size"])
    times, energies, scaled = [], [], []
    for _, r in frame.iterrows():
        key = (r["model_key"], r["gpu_key"], r["batch_size"])
        if key in one.index:
            a = one.loc[key]
            times.append(float(a["time_s"])), energies.append(float(a["energy_j"])), scaled.append(False)
            continue
        same = one.xs((r["model_key"], r["gpu_key"]), level=("model_key", "gpu_key"), drop_level=True) \
            if (r["model_key"], r["gpu_key"]) in one.index.droplevel("batch_size") else one.iloc[:0]
        if same.empty:
            raise DataError(f"{r['model_key']} on {r['gpu_key']}: no one-GPU row to anchor its multi-GPU rows")
        b = int(same.index.max())
        f = r["batch_size"] / b
        times.append(float(same.loc[b, "time_s"]) * f), energies.append(float(same.loc[b, "energy_j"]) * f)
        scaled.append(True)
    frame = frame.copy()
    frame["anchor_time_s"], frame["anchor_energy_j"], frame["anchor_scaled"] = times, energies, scaled
    return frame


def with_law_anchors(frame: pd.DataFrame, *, law=None) -> pd.DataFrame:
    """``frame`` with each row's anchor replaced by the single-GPU law's prediction of its setting on
    one GPU of its kind (the end-to-end case: no measurement of the model at all), plus the
    anchors' intervals (``anchor_time_lo_s`` ... ``anchor_energy_hi_j``)."""
    law = load_law(None) if law is None else law
    cache: dict[tuple, tuple[Interval, Interval]] = {}
    out = frame.copy()
    cols: dict[str, list[float]] = {k: [] for k in ("t", "tl", "th", "e", "el", "eh")}
    for _, r in frame.iterrows():
        key = (r["model_key"], r["gpu_key"], r["batch_size"])
        if key not in cache:
            t, e, _ = single_gpu_anchor(resolve_model(r["model_key"]), r["setting"], r["gpu_key"], law=law)
            cache[key] = (t, e)
        t, e = cache[key]
        for k, v in zip(cols, (t.value, t.lo, t.hi, e.value, e.lo, e.hi)):
            cols[k].append(v)
    out["anchor_time_s"], out["anchor_energy_j"] = cols["t"], cols["e"]
    out["anchor_time_lo_s"], out["anchor_time_hi_s"] = cols["tl"], cols["th"]
    out["anchor_energy_lo_j"], out["anchor_energy_hi_j"] = cols["el"], cols["eh"]
    return out


# ------------------------------------------------------------------------------------- refit


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from scaling._version import __version__

    out = {"python": ".".join(map(str, sys.version_info[:3])), "scaling": __version__}
    for dist in ("numpy", "scipy", "pandas"):
        out[dist] = md.version(dist)
    return out


def build_document(*, n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    """The law document fitted on the shipped public table, with its provenance."""
    folder = default_public_folder()
    frame = v3_frame()
    files = {name: sha256(folder / name) for name in ("runs.parquet", V3_CSV)}
    provenance = {"data": {f"datasets/public/{k}": {"sha256": v} for k, v in files.items()},
                  "rows": f"source == {V3_SOURCE!r}, phase total; anchors: the one-GPU row of the same model and "
                          f"batch ({int(frame['anchor_scaled'].sum())} rows scaled from the largest one-GPU batch)",
                  "command": "python -m scaling.app.parallel_training",
                  "fit": "scipy.optimize.least_squares on log(predicted / measured): time, then energy",
                  "bootstrap": {"draws": n_boot, "seed": seed, "over": "multi-GPU rows (settings)"},
                  "versions": _versions()}
    return law_document(frame, provenance=provenance, n_boot=n_boot, seed=seed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scaling.app.parallel_training",
                                     description="Refit the multi-GPU law on the ML.ENERGY v3 H100 rows and write it.")
    parser.add_argument("--out", type=Path, default=None, help="law file to write (default: the shipped one)")
    parser.add_argument("--check", action="store_true", help="refit and compare with the shipped file; write nothing")
    parser.add_argument("--boot", type=int, default=200, help="bootstrap draws (default 200)")
    args = parser.parse_args(argv)
    doc = build_document(n_boot=args.boot)
    if args.check:
        shipped = load_parallel_law(None)
        worst = max(abs(doc["coefficients"][k]["estimate"] / v - 1) for k, v in shipped.coef.items() if v)
        print(f"largest relative change of a coefficient: {worst:.2%}")
        return 0 if worst < 1e-6 else 1
    out = args.out or Path(str(parallel_law_path()))
    write_law(doc, out)
    lomo = doc["validation"]["leave_one_model_out"]["overall"]
    print(f"wrote {out}: leave-one-model-out energy MAPE {lomo['energy_mape']:.1%}, time MAPE "
          f"{lomo['time_mape']:.1%}, plan Spearman {lomo['spearman']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
