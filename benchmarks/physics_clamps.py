"""How often the physical bounds must correct the law: every registered model on every registered GPU.

``scaling predict`` bounds the law's time by the roofline and the implied power by the idle floor
and the TDP (``scaling/app/physics.py``); each correction is listed in ``Estimate.clamps``. A law
whose energy and time agree with each other and with physics needs few, small corrections. This
prints, per GPU, the predictions made (memory check off: every pair), how many needed a
correction (any, a TDP one, a roofline one) and the largest factor the time law's value was moved
by, for the shipped law and, with ``--law FILE`` (repeatable), for other law files.

    python benchmarks/physics_clamps.py [--law OLD.json ...]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def sweep(law) -> dict[str, dict[str, float]]:
    """Per GPU: predictions, corrections (any / TDP / roofline) and the largest time factor."""
    from scaling.app.estimate import predict
    from scaling.errors import ScalingError
    from scaling.hardware import list_gpus
    from scaling.registry import list_models

    out: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
    for m in list_models():
        for g in list_gpus():
            try:
                e = predict(m.key, gpu=g.key, law=law, check_memory=False)
            except ScalingError:
                continue
            row = out[g.key]
            row["predictions"] += 1
            if e.clamps:
                row["clamped"] += 1
                row["tdp"] += any("TDP" in c for c in e.clamps)
                row["roofline"] += any("roofline" in c for c in e.clamps)
            if e.law_time_s and e.law_time_s > 0:
                row["max_time_factor"] = max(row["max_time_factor"], e.time_s / e.law_time_s, e.law_time_s / e.time_s)
    return out


def main(argv=None) -> int:
    from fits.law_file import load_law
    from scaling.app.commands._out import render_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--law", action="append", default=[], help="another law file to sweep (repeatable)")
    args = p.parse_args(argv)
    for label, path in [("shipped", None)] + [(x, x) for x in args.law]:
        law = load_law(path)
        res = sweep(law)
        rows = [[g, int(r["predictions"]), int(r["clamped"]), int(r["tdp"]), int(r["roofline"]),
                 f"{r['max_time_factor']:.3f}"] for g, r in res.items()]
        tot = {k: sum(r[k] for r in res.values()) for k in ("predictions", "clamped", "tdp", "roofline")}
        print(f"law {label} ({law.form}): {int(tot['clamped'])} of {int(tot['predictions'])} predictions corrected "
              f"({int(tot['tdp'])} by the TDP bound, {int(tot['roofline'])} by the roofline)")
        print(render_table(rows, ["gpu", "predictions", "corrected", "TDP", "roofline", "max time factor"]))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
