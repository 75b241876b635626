"""The validation tables the issue asks for, on the published data (``datasets/public``).

For each target of issue 3 (Wan2.1 sweeps, audio step sweeps, one law across models on one
GPU, across GPUs) this prints the target line (metric of the shipped form, threshold, met or
missed, best form), the comparison of every law form on the same splits, what was left out and
why, and the per-sweep / per-model / per-GPU detail. Then the default law's own validation
table (the one that chose its form) from ``scaling/_laws/default.json``.

    PYTHONPATH=. python benchmarks/validation_table.py [--data DIR] [--metric mape|r2_log|mdape|spearman]

Nothing is tuned on this output: the forms are :func:`fits.validation.candidate_laws`, the
judged form is the shipped default law's (chosen on its own data by its own rule).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _f(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) else f"{v:.4f}"
    return str(v)


def _pivot(table, metrics):
    from scaling.app.commands._common import table as fmt

    splits = [s for s in ("in_sample", "config_kfold", "config_loo", "model_out", "gpu_out") if s in set(table["split"])]
    rows = []
    for law in dict.fromkeys(table["law"]):
        t = table[table["law"] == law].set_index("split")
        row = [law + (f" (= {t['same_as'].iloc[0]})" if "same_as" in t and t["same_as"].iloc[0] else "")]
        for m in metrics:
            row += [_f(float(t.loc[s, m])) if s in t.index else "-" for s in splits]
        rows.append(row)
    header = ["law"] + [f"{m} {s}" for m in metrics for s in splits]
    return fmt(rows, header)


def main(argv=None) -> int:
    from fits.default_law import default_law_path
    from fits.targets import public_targets
    from fits.validation import PRIMARY_LAW, load_public
    from scaling.app.commands._common import table as fmt

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="public data folder (default datasets/public)")
    args = p.parse_args(argv)

    runs = load_public(args.data)
    targets = public_targets(runs=runs)
    print(f"judged form: {PRIMARY_LAW} (the shipped default law's form)\n")
    for r in targets.values():
        print("=" * 100)
        print(r.summary())
        print(r.description)
        metrics = [r.metric] + (["mape"] if r.metric != "mape" else ["r2_log"])
        print(_pivot(r.table, metrics))
        for note in r.notes:
            print(f"note: {note}")
        ex = r.excluded
        if ex.get("rows"):
            models = ", ".join(f"{m} ({n})" for m, n in ex.get("models", {}).items())
            print(f"left out: {ex['rows']} rows: {models}")
        if r.detail is not None and len(r.detail):
            d = r.detail
            if r.name == "audio_steps":
                d = d[d["law"].isin(["power", "power+E0", PRIMARY_LAW])]
            cols = [c for c in d.columns if c not in ("folds", "failed_folds", "warned_folds", "same_as")]
            print(fmt([[_f(v) for v in rec] for rec in d[cols].itertuples(index=False)], cols))
        print()

    path = default_law_path()
    if path.is_file():
        doc = json.loads(path.read_text(encoding="utf-8"))
        import pandas as pd

        print("=" * 100)
        print(f"default law ({path.relative_to(ROOT)}): form {doc['form']}; "
              f"{doc['training']['n_settings']} settings, {doc['training']['n_rows']} rows; GPUs "
              f"{', '.join(doc['training']['gpus'])}")
        print(f"selection: {doc['validation']['selection']}")
        print(_pivot(pd.DataFrame(doc["validation"]["table"]), ["mape", "r2_log", "spearman"]))
        for target in ("energy", "time"):
            rows = [[c["param"], _f(c["estimate"]), _f(c["lo"]), _f(c["hi"]), c["method"]]
                    for c in doc[target]["coefficients"]]
            print(f"\n{target} coefficients (90% intervals):")
            print(fmt(rows, ["param", "estimate", "lo", "hi", "method"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
