"""The issue-16 targets of the shipped default law's form on the data in the repository: met or MISSED.

    python benchmarks/physics_targets.py [--json OUT] [--markdown]

The judged form is whatever ``scaling/_laws/default.json`` names in its ``form`` field (a name of
:func:`fits.validation.candidate_laws`); nothing here names a form. Every figure is recomputed from
the curated public table (``datasets/public/runs.parquet``) with the project's own machinery:

- **energy / time, three splits.** The setting-level training data of the default law
  (:func:`fits.default_law.fit_default`), every group left out once
  (:func:`fits.validation.cross_val_predictions` over :func:`fits.validation._groups`):
  leave-one-model-out, leave-one-GPU-out, 5-fold by setting; MAPE of the held-out settings. Time:
  the settings with a duration, the time twin of the form (:func:`fits.default_law.time_law_for`).
- **LiteFocus.** AudioLDM 2, 200 steps, one RTX A6000, clips of 10/20/40/80 s, predicted through the
  public API (:func:`scaling.app.estimate.predict`) with full attention and with the seed's
  LiteFocus variant (``benchmarks/litefocus_speedup.py``), both with the kernel the seed ran: an
  eager attention that materialises the score matrix (``kernel=eager``: the authors' code, and the
  original AudioLDM 2's); the speed-up is the ratio of the two ``time_s``, judged against the
  seed's Table 1 (within 20 %). The FLOP ratio and the speed-up with diffusers' fused SDPA kernel
  (what a user of diffusers runs today) are printed beside it.
- **Batch what-ifs.** The form refitted on the default-law settings with every batch > 1 setting
  removed; it predicts the batch > 1 points of the ML.ENERGY v2 sweeps (A100, H100) and of the
  ML.ENERGY v3 sweeps on one H100 (the single-GPU law cannot predict the multi-GPU rows); MAPE of
  the energy of one call (sweeps as in ``benchmarks/whatif_batch.py``).
- **Wan sweeps.** :func:`fits.targets.target_wan_sweeps`: the form fitted on the three Wan2.1-1.3B
  sweeps pooled (one law, as the product uses it; the issue-3 target was this pooled fit at 8 %),
  every configuration left out once, MAPE per sweep (frames, resolution, steps); the figure of a
  law fitted on each sweep alone is printed beside it (a 4-parameter nonlinear form on 10-14
  points of one sweep extrapolates its end points poorly).
- **Interval coverage.** ``benchmarks/interval_coverage.py``: leave-one-model-out coverage of the
  90 % interval (the predict path's widened interval; the law's plain one beside it).

A target that is not reached prints MISSED with its number; a figure that cannot be computed
(a refused prediction, an empty slice) is MISSED with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import interval_coverage  # noqa: E402
import litefocus_speedup  # noqa: E402
import whatif_batch  # noqa: E402

from fits.default_law import default_law_path, fit_default, time_law_for  # noqa: E402
from fits.features import aggregate_settings, design_matrix  # noqa: E402
from fits.laws import IdentifiabilityWarning  # noqa: E402
from fits.targets import target_wan_sweeps  # noqa: E402
from fits.validation import (_groups, candidate_laws, cross_val_predictions, load_public, metrics,  # noqa: E402
                             usable_rows)
from scaling.app.parallel_training import V3_SOURCE  # noqa: E402
from scaling.errors import ScalingError  # noqa: E402

SPLITS = {"model_out": "leave-one-model-out", "gpu_out": "leave-one-GPU-out", "config_kfold": "5-fold by setting"}
#: MAPE thresholds per target and split (issue 16)
THRESHOLDS = {"energy": {"model_out": 0.10, "gpu_out": 0.12, "config_kfold": 0.07},
              "time": {"model_out": 0.12, "gpu_out": 0.14, "config_kfold": 0.08}}
LITEFOCUS_GPU = "rtx-a6000"
LITEFOCUS_TOLERANCE = 0.20
BATCH_THRESHOLD = 0.08
BATCH_SOURCES = ("ml_energy_leaderboard_v2", V3_SOURCE)
WAN_THRESHOLD = 0.03
WAN_SWEEPS = {"wan_frames_sweep": "frames", "wan_resolution_sweep": "resolution", "wan_steps_sweep": "steps"}


def shipped_form() -> str:
    """The ``form`` of the shipped default law file."""
    return str(json.loads(default_law_path().read_text(encoding="utf-8"))["form"])


def _target(name, what, op, threshold, achieved, note, **extra) -> dict:
    achieved = float(achieved) if achieved is not None else math.nan
    if not math.isfinite(achieved):
        met = False
    elif op == "<=":
        met = achieved <= threshold
    elif op == "within":
        met = threshold[0] <= achieved <= threshold[1]
    else:
        raise ValueError(f"op {op!r}: it must be '<=' or 'within'")
    return {"name": name, "target": what, "op": op, "threshold": threshold, "achieved": achieved, "met": bool(met),
            "note": note, **extra}


def _cv_mape(law, X, y, groups, split) -> tuple[float, dict]:
    pred, info = cross_val_predictions(law, X, y, groups, split)
    m = metrics(y, pred)
    out = {"n": m["n"], "folds": info["folds"], "failed_folds": info["failed_folds"],
           "warned_folds": info["warned_folds"]}
    if split == "model_out":  # the bias of each held-out model: exp(mean log(predicted / measured)) - 1
        ok = np.isfinite(pred) & (pred > 0)
        g = np.asarray(groups).astype(str)[ok]
        logr = np.log(pred[ok] / np.asarray(y, dtype=float)[ok])
        bias = np.array([np.expm1(logr[g == k].mean()) for k in np.unique(g)])
        out.update(model_bias_min=float(bias.min()), model_bias_max=float(bias.max()),
                   models_beyond_15pct=int((np.abs(bias) > 0.15).sum()), models=int(bias.size))
    return m["mape"], out


def split_targets(fit, form: str) -> list[dict]:
    """Energy and time MAPE of ``form`` over the three splits of the default-law settings."""
    base = candidate_laws("energy")[form]
    settings = fit["settings"]
    t_rows = settings[(settings["duration_s"].astype(float) > 0).to_numpy(bool)]
    data = {"energy": (base, fit["X"], fit["y_energy"], _groups(settings)),
            "time": (time_law_for(form, base), fit["X_time"], fit["y_time"], _groups(t_rows))}
    out = []
    for target, (law, X, y, groups) in data.items():
        for split, words in SPLITS.items():
            mape, info = _cv_mape(law, X, y, groups[split], split)
            n_groups = int(np.unique(np.asarray(groups[split]).astype(str)).size)
            note = f"{info['n']} settings, {info['folds']} folds" + (
                "" if split == "config_kfold" else f" ({n_groups} {'models' if split == 'model_out' else 'GPUs'})")
            if info["failed_folds"]:
                note += f", {info['failed_folds']} folds failed"
            if split == "model_out":
                note += (f"; bias per held-out model {info['model_bias_min']:+.0%} to {info['model_bias_max']:+.0%}, "
                         f"{info['models_beyond_15pct']} of {info['models']} beyond 15%")
            out.append(_target(f"{target}_{split}", f"{target} MAPE, {words}", "<=", THRESHOLDS[target][split],
                               mape, note, **info))
    return out


def litefocus_targets() -> list[dict]:
    """Predicted time speed-up of LiteFocus on AudioLDM 2 against the seed's Table 1."""
    from profilers.flops.profile import profile
    from scaling.app.estimate import predict
    from scaling.registry import resolve_model
    from scaling.settings import make_setting

    model, steps, variant = litefocus_speedup.MODEL, litefocus_speedup.STEPS, litefocus_speedup.VARIANTS["litefocus"]
    spec = resolve_model(model)
    out = []
    for sec in litefocus_speedup.SECONDS:
        paper = litefocus_speedup.SEED_SPEEDUP["litefocus"][sec]
        band = (paper * (1 - LITEFOCUS_TOLERANCE), paper * (1 + LITEFOCUS_TOLERANCE))
        what = f"LiteFocus time speed-up, {sec} s clip, within {LITEFOCUS_TOLERANCE:.0%} of the paper's {paper:.2f}x"
        s = make_setting(spec, seconds=sec, steps=steps)
        flop_ratio = profile(s, spec=spec).total_flop / profile(s, spec=spec, attention=variant).total_flop
        try:
            full = predict(model, gpu=LITEFOCUS_GPU, steps=steps, seconds=sec, attention="full:kernel=eager")
            lite = predict(model, gpu=LITEFOCUS_GPU, steps=steps, seconds=sec, attention=variant + ",kernel=eager")
            fused = (predict(model, gpu=LITEFOCUS_GPU, steps=steps, seconds=sec).time_s
                     / predict(model, gpu=LITEFOCUS_GPU, steps=steps, seconds=sec, attention=variant).time_s)
        except ScalingError as e:
            out.append(_target(f"litefocus_{sec}s", what, "within", band, math.nan,
                               f"refused: {e}", paper=paper, flop_ratio=flop_ratio, speedup=None))
            continue
        speedup = full.time_s / lite.time_s
        clamps = sorted(set(full.clamps) | set(lite.clamps))
        note = (f"paper {paper:.2f}x, predicted {speedup:.2f}x ({speedup / paper - 1:+.0%}), eager kernel; FLOP "
                f"ratio {flop_ratio:.2f}x; with fused SDPA {fused:.2f}x; {full.time_s:.1f} s -> {lite.time_s:.1f} s")
        if clamps:
            note += "; physics: " + "; ".join(clamps)
        out.append(_target(f"litefocus_{sec}s", what, "within", band, speedup, note, paper=paper,
                           flop_ratio=flop_ratio, speedup=speedup, speedup_fused=fused, time_full_s=full.time_s,
                           time_litefocus_s=lite.time_s, clamps=clamps))
    return out


def _batch_points(settings) -> list[int]:
    """Indices of the batch > 1 points of the sweeps (with a batch-1 point) of ``settings``."""
    return [i for _, idx, i1 in whatif_batch.sweeps(settings) for i in idx if i != i1
            and int(settings.loc[i, "batch_size"]) > 1]


def batch_target(fit, form: str) -> dict:
    """The form fitted without batch > 1 settings, predicting the v2 and v3 (1-GPU) batch sweeps."""
    from sklearn.base import clone

    settings = fit["settings"].reset_index(drop=True)
    X, y = fit["X"], fit["y_energy"]
    b1 = (settings["batch_size"].astype(int) == 1).to_numpy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IdentifiabilityWarning)
        law = clone(candidate_laws("energy")[form]).fit(X[b1], y[b1])
    warned = any(issubclass(w.category, IdentifiabilityWarning) for w in caught)
    v2 = settings[(settings["source"].astype(str) == BATCH_SOURCES[0]).to_numpy(bool)]
    v2_idx = _batch_points(v2)
    all_runs = load_public(sources=None)
    v3_runs = all_runs[((all_runs["source"].astype("string") == V3_SOURCE)
                        & (all_runs["gpu_count"].astype("Int64") == 1)).fillna(False).to_numpy(bool)]
    v3_rows = usable_rows(v3_runs)
    v3 = aggregate_settings(v3_rows) if len(v3_rows) else v3_rows
    v3_idx = _batch_points(v3) if len(v3) else []
    parts = {}
    ape_all = []
    for name, s, idx, Xs in (("v2", v2, v2_idx, design_matrix(v2.loc[v2_idx]) if v2_idx else None),
                             ("v3", v3, v3_idx, design_matrix(v3.loc[v3_idx]) if v3_idx else None)):
        if not idx:
            parts[name] = {"n": 0, "mape": math.nan, "models": 0}
            continue
        ys = s.loc[idx, "energy_gpu_j"].to_numpy(float)
        pred = law.predict(Xs)
        m = metrics(ys, pred)
        ape_all.extend(np.abs(pred / ys - 1.0))
        parts[name] = {"n": m["n"], "mape": m["mape"], "models": int(s.loc[idx, "model"].nunique())}
    ape_all = [a for a in ape_all if math.isfinite(a)]
    mape = float(np.mean(ape_all)) if ape_all else math.nan
    note = (f"fitted on {int(b1.sum())} batch-1 settings; v2 (A100 + H100): {parts['v2']['n']} points, MAPE "
            f"{_pct(parts['v2']['mape'])}; v3 (1x H100): {parts['v3']['n']} points, MAPE {_pct(parts['v3']['mape'])}")
    if warned:
        note += "; the batch-1 fit raised an identifiability warning"
    n_multi = int(((all_runs["source"].astype("string") == V3_SOURCE)
                   & (all_runs["gpu_count"].astype("Int64") > 1)).fillna(False).sum())
    return _target("batch_whatif", "batch > 1 energy per call MAPE (ML.ENERGY v2 + v3 1-GPU), law fitted without "
                   "batch > 1", "<=", BATCH_THRESHOLD, mape, note, parts=parts, n_train=int(b1.sum()),
                   v3_multi_gpu_rows_left_out=n_multi)


def wan_targets(fit, form: str) -> list[dict]:
    """Each Wan sweep, the form fitted on the three sweeps pooled, leave-one-configuration-out."""
    res = target_wan_sweeps(fit["runs"], candidate_laws("energy"), primary=form)
    d = res.detail
    d = d[d["law"] == form].set_index("sweep")
    out = []
    for sweep, words in WAN_SWEEPS.items():
        if sweep in d.index:
            r = d.loc[sweep]
            alone, n, achieved = float(r["mape_fit_on_sweep"]), int(r["n"]), float(r["mape_pooled_fit"])
            note = f"{n} configurations; a law fitted on this sweep alone: {_pct(alone)}"
        else:
            achieved, n, alone, note = math.nan, 0, math.nan, f"no rows of {sweep} in the data"
        out.append(_target(f"wan_{words}", f"Wan2.1-1.3B {words} sweep MAPE, leave-one-config-out (pooled Wan fit)",
                           "<=", WAN_THRESHOLD, achieved, note, n=n, mape_fit_on_sweep=alone))
    return out


def coverage_target() -> dict:
    res = interval_coverage.coverage("energy")
    mo = res["splits"]["model_out"]
    achieved = mo["widened"]["settings"]
    lo, hi = interval_coverage.TARGET
    note = (f"widened interval (the predict path's), {mo['widened']['n']} settings; plain interval "
            f"{_pct(mo['plain']['settings'])}")
    return _target("interval_coverage", f"{res['interval']:.0%} energy interval coverage, leave-one-model-out",
                   "within", [lo, hi], achieved, note, plain=mo["plain"]["settings"])


def build() -> dict:
    t0 = time.perf_counter()
    form = shipped_form()
    fit = fit_default(validate=False, form=form)
    targets = split_targets(fit, form)
    targets += litefocus_targets()
    targets.append(batch_target(fit, form))
    targets += wan_targets(fit, form)
    targets.append(coverage_target())
    return {"form": form, "law": str(default_law_path().relative_to(ROOT)), "n_settings": int(len(fit["settings"])),
            "targets": targets, "met": sum(t["met"] for t in targets), "total": len(targets),
            "wall_s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------------ output

def _pct(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1%}"


def _is_ratio(t) -> bool:
    return t["name"].startswith("litefocus_")


def _threshold(t) -> str:
    th = t["threshold"]
    if t["op"] == "<=":
        return f"<= {_pct(th)}"
    if _is_ratio(t):
        return f"{th[0]:.2f}x-{th[1]:.2f}x"
    return f"{_pct(th[0])}-{_pct(th[1])}"


def _achieved(t) -> str:
    if not math.isfinite(t["achieved"]):
        return "-"
    return f"{t['achieved']:.2f}x" if _is_ratio(t) else _pct(t["achieved"])


def _verdict(t) -> str:
    return "met" if t["met"] else "MISSED"


def text(res: dict) -> str:
    lines = [f"issue-16 targets of the shipped default law's form {res['form']} ({res['law']}, "
             f"{res['n_settings']} settings)"]
    w = max(len(t["target"]) for t in res["targets"])
    for t in res["targets"]:
        lines.append(f"{t['target']:<{w}}  {_threshold(t):>13}  {_achieved(t):>7}  {_verdict(t):<6}  {t['note']}")
    lines.append(f"{res['met']} of {res['total']} targets met")
    return "\n".join(lines)


def markdown(res: dict) -> str:
    lines = [f"Judged form: `{res['form']}` (the shipped law's); {res['met']} of {res['total']} targets met.", "",
             "| target | threshold | achieved | met/MISSED | note |", "|---|---|---:|:---:|---|"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {_threshold(t)} | {_achieved(t)} | {_verdict(t)} | {t['note']} |")
    return "\n".join(lines)


def _json_ready(x):
    if isinstance(x, dict):
        return {k: _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures here (JSON)")
    p.add_argument("--markdown", action="store_true", help="print a markdown table instead of text")
    args = p.parse_args(argv)
    res = build()
    print(markdown(res) if args.markdown else text(res))
    if args.json:
        args.json.write_text(json.dumps(_json_ready(res), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
