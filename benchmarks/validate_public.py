"""Predicted against published: `scaling.predict` at each public measurement's setting and GPU.

For every model of the public data (``datasets/public``, read through
:func:`scaling.app.importers.import_public` with its default flag policies) whose id resolves to
the registry, predict one call at the setting and on the GPU the source measured, and compare
with the measured GPU energy per call (the median over the source's rows for that setting).
Prints a markdown table: source, model, setting, GPU, rows, predicted J [90% interval],
measured J, error %, inside the interval. The README's validation table is this output.

By default each (source, model, GPU, precision) is compared at its *published setting*: the
setting with batch 1 that the source measured most often (ties: the one closest to the model's
default step count). ``--all-settings`` compares every setting the source measured.

    python benchmarks/validate_public.py [--data DIR] [--law LAW.json] [--all-settings] [--out FILE]

Nothing here is fitted or tuned on the output: the law is whatever ``--law`` names (default:
the shipped law). Rows whose GPU is not stated, or whose model is not in the registry, are
listed under the table as not compared, with the reason.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT / "datasets" / "public"
SETTING_KEYS = ["height", "width", "frames", "audio_seconds", "steps", "guidance_scale", "cfg", "batch_size"]
GROUP_KEYS = ["source", "model", "model_key", "gpu_key", "precision"]


def _na(x) -> bool:
    import pandas as pd

    return x is None or (not isinstance(x, str) and pd.isna(x))


def load_runs(data_dir: Path):
    """Every public energy CSV (the quality table aside), phase 'total' only, one DataFrame."""
    import pandas as pd

    from scaling.app.importers import import_public

    frames = []
    for path in sorted(data_dir.glob("*.csv")):
        if "quality" in path.name:
            continue
        runs = import_public(path).runs
        frames.append(runs[runs["phase"] == "total"])
    if not frames:
        raise SystemExit(f"no public energy CSV under {data_dir}")
    return pd.concat(frames, ignore_index=True)


def describe(spec, row, est, frames_run: int | None) -> str:
    """The setting as the source published it; '(default)' where it states nothing."""
    s = est.setting
    parts = []
    if spec.modality == "audio":
        parts.append(f"{s.audio_seconds:g} s" + (" (default)" if _na(row.get("audio_seconds")) else ""))
    else:
        parts.append(f"{s.width}x{s.height}" + (" (default)" if _na(row.get("width")) else ""))
        if spec.modality == "video":
            f = s.frames if _na(row.get("frames")) else int(row["frames"])
            parts.append(f"{f} frames" + (f" (runs {frames_run})" if frames_run not in (None, f) else ""))
    parts.append(f"{s.steps} steps" + (" (default)" if _na(row.get("steps")) else ""))
    if not _na(row.get("cfg")) and not bool(row["cfg"]) and spec.guidance_type == "cfg":
        parts.append("no CFG")
    if int(row["batch_size"]) != 1:
        parts.append(f"batch {int(row['batch_size'])}")
    return ", ".join(parts)


def predict_row(spec, row, law):
    """The prediction at one measured setting, and the frame count the pipeline generated."""
    from scaling.app.estimate import predict
    from scaling.app.importers import generated_frames

    # a field the source does not state takes the model's default (the pipeline's own default)
    kw = {"precision": row["precision"], "batch_size": int(row["batch_size"])}
    frames_run = None
    if not _na(row.get("steps")):
        kw["steps"] = int(row["steps"])
    if spec.modality in ("image", "video") and not (_na(row.get("width")) or _na(row.get("height"))):
        kw["res"] = f"{int(row['width'])}x{int(row['height'])}"
    if spec.modality == "video" and not _na(row.get("frames")):
        frames_run = generated_frames(spec, int(row["frames"]))
        kw["frames"] = frames_run
    if spec.modality == "audio" and not _na(row.get("audio_seconds")):
        kw["seconds"] = float(row["audio_seconds"])
    if not _na(row.get("guidance_scale")):
        kw["guidance"] = float(row["guidance_scale"])
    if not _na(row.get("cfg")):
        kw["cfg"] = bool(row["cfg"])
    return predict(spec, gpu=row["gpu_key"], law=law, check_memory=False, **kw), frames_run  # the run happened


def pick_published(groups, spec):
    """The published setting of one (source, model, GPU, precision): batch 1, most rows, default steps."""
    default_steps = spec.defaults.get("steps") or 0
    return sorted(groups, key=lambda g: (int(g[0]["batch_size"]) != 1, -g[1],
                                         abs(int(g[0]["steps"]) - default_steps), int(g[0]["steps"])))[0]


def training_models(law) -> set[str] | None:
    """Model keys the law was fitted on (from its document), or None when it does not say."""
    doc = getattr(law, "document", None) or {}
    keys = (doc.get("training") or {}).get("model_keys")
    return set(keys) if keys else None


def compare(runs, law, all_settings: bool = False):
    """Rows of the validation table, and the (source, model, reason) that were not compared."""
    from scaling.errors import ScalingError
    from scaling.registry import resolve_model

    fitted_on = training_models(law)
    rows, skipped = [], []
    for (source, model, key), part in runs.groupby(["source", "model", "model_key"], dropna=False, sort=True):
        if _na(key):
            skipped.append((source, model, "model not in the registry"))
            continue
        spec = resolve_model(str(key))
        if part["gpu_key"].isna().all():
            skipped.append((source, model, "GPU not stated by the source"))
            continue
        part = part[part["gpu_key"].notna()]
        for (gpu, precision), sub in part.groupby(["gpu_key", "precision"], sort=True):
            settings = []
            for _, g in sub.groupby(SETTING_KEYS, dropna=False, sort=True):
                first = g.iloc[0]
                settings.append((first, len(g), float(g["energy_gpu_j"].median()),
                                 sorted({f for fl in g["flags"].dropna() for f in str(fl).split(";") if f})))
            chosen = settings if all_settings else [pick_published(settings, spec)]
            for first, n, measured, flags in chosen:
                try:
                    est, frames_run = predict_row(spec, first, law)
                except (ScalingError, NotImplementedError) as exc:
                    skipped.append((source, model, f"{gpu} {precision}: not predicted ({exc})"))
                    continue
                rows.append({
                    "source": source, "model": model, "model_id": est.model_id, "gpu": gpu,
                    "precision": precision, "setting": describe(spec, first, est, frames_run), "n": n,
                    "predicted_j": est.energy_j, "lo_j": est.energy_lo_j, "hi_j": est.energy_hi_j,
                    "measured_j": measured, "error_pct": 100.0 * (est.energy_j - measured) / measured,
                    "inside": est.energy_lo_j <= measured <= est.energy_hi_j, "gpu_measured": est.gpu_measured,
                    "flags": [f for f in flags if f in ("cpu_offload", "metadata_corrected", "steps_corrected",
                                                        "frames_snapped")],
                    "law": est.law,
                    "in_fit": None if fitted_on is None else (str(key) in fitted_on and "cpu_offload" not in flags),
                })
    return rows, skipped


def _j(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _summary(rows) -> str:
    errs = [abs(r["error_pct"]) for r in rows]
    log_err = [abs(math.log(r["predicted_j"] / r["measured_j"])) for r in rows]
    inside = sum(r["inside"] for r in rows)
    return (f"{len(rows)} settings, median |error| {statistics.median(errs):.0f}%, mean |error| "
            f"{statistics.fmean(errs):.0f}%, median factor {math.exp(statistics.median(log_err)):.2f}x, "
            f"{inside} of {len(rows)} ({inside / len(rows):.0%}) measurements inside the 90% interval")


def held_out_summary(law) -> str:
    """The law document's own cross-validation of its winning form (leave-one-model-out, -GPU-out)."""
    doc = getattr(law, "document", None) or {}
    val = doc.get("validation") or {}
    winner = val.get("winner")
    names = {"config_kfold": "5-fold over settings", "model_out": "leave-one-model-out", "gpu_out": "leave-one-GPU-out"}
    parts = [f"{names[r['split']]} MAPE {100 * r['mape']:.0f}%" for r in val.get("table", [])
             if r.get("law") == winner and r.get("split") in names and r.get("mape") is not None]
    return f"form {winner}: " + ", ".join(parts) if parts else ""


def markdown(rows, skipped, law_name: str, held_out: str = "") -> str:
    out = [f"Law: `{law_name}`. Predicted GPU energy per call at the measured setting and GPU, against the median "
           "of the source's rows for that setting (phase `total`, import flag policies at their defaults). "
           "`in fit`: the law was fitted on this model's measurements (in-sample); `no`: held out of its fit.", "",
           "| source | model | setting | GPU | precision | rows | predicted J [90% interval] | measured J | error % "
           "| inside | in fit |",
           "|---|---|---|---|---|---:|---|---:|---:|:---:|:---:|"]
    for r in rows:
        model = r["model"] if r["model"] == r["model_id"] else f"{r['model']} (as {r['model_id']})"
        notes = "".join(f" [{f}]" for f in r["flags"])
        gpu = r["gpu"] + ("" if r["gpu_measured"] else " (never measured)")
        out.append(f"| {r['source']} | {model}{notes} | {r['setting']} | {gpu} | {r['precision']} | {r['n']} | "
                   f"{_j(r['predicted_j'])} [{_j(r['lo_j'])} - {_j(r['hi_j'])}] | {_j(r['measured_j'])} | "
                   f"{r['error_pct']:+.0f} | {'yes' if r['inside'] else 'no'} | "
                   f"{'?' if r['in_fit'] is None else 'yes' if r['in_fit'] else 'no'} |")
    if rows:
        out.append("")
        for label, sub in (("all", rows), ("in the law's training data (in-sample)", [r for r in rows if r["in_fit"]]),
                           ("not in the law's training data", [r for r in rows if r["in_fit"] is False])):
            if sub and (label == "all" or len(sub) < len(rows)):
                out.append(f"- {label}: {_summary(sub)}")
        if held_out:
            out.append(f"- the law's own held-out validation on these data ({held_out})")
        flagged = sorted({f for r in rows for f in r["flags"]})
        if flagged:
            out.append("Flags: " + "; ".join({
                "cpu_offload": "`cpu_offload`: the source ran with enable_model_cpu_offload (time and energy "
                               "inflated by weight transfers; the law does not model offload)",
                "metadata_corrected": "`metadata_corrected`: published setting corrected by the importer "
                                      "(see scaling/app/importers/policies.py, policy metadata_conflict)",
                "steps_corrected": "`steps_corrected`: DDIM spacing, steps actually run",
                "frames_snapped": "`frames_snapped`: frames the pipeline actually generated",
            }[f] for f in flagged) + ".")
    if skipped:
        out += ["", "Not compared:"]
        seen = set()
        for source, model, why in skipped:
            if (source, model, why) not in seen:
                seen.add((source, model, why))
                out.append(f"- {source}, {model}: {why}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"public data folder (default {DEFAULT_DATA})")
    p.add_argument("--law", help="a law JSON (default: the shipped law)")
    p.add_argument("--all-settings", action="store_true", help="every measured setting, not only the published one")
    p.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = p.parse_args(argv)

    from fits.law_file import load_law

    law = load_law(args.law)
    runs = load_runs(args.data)
    rows, skipped = compare(runs, law, all_settings=args.all_settings)
    text = markdown(rows, skipped, rows[0]["law"] if rows else getattr(law, "name", "?"), held_out_summary(law))
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
