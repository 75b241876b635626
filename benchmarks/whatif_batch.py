"""What if I batched? Energy per output against batch size: predicted by the law vs the public sweeps.

The public data hold two batch-size sweeps (``datasets/public``):

- diffused_responsibility, ``experiment=batch_size``: five registered text-to-audio models on one
  A40, 100 steps, CFG on, batch 1, 2, 5, 10 (the study's headline: energy per clip at batch 10 is
  0.39x to 0.88x of batch 1);
- ML.ENERGY v2: five registered text-to-image / text-to-video models on an A100-SXM4-40GB and an
  H100, 25 steps, batch 1 to 64.

For every sweep this prints the measured per-output ratio ``(E(B) / B) / E(1)`` next to the
predicted one, for

- the shipped law (``in-sample``: the batch rows are part of its training data), and
- the same form refitted *without any batch > 1 setting* (``held out``: the curve is predicted
  from batch-1 data only: the honest test of "predict the curve from the law").

The law's curve comes from its form: ``a C^b`` with ``b < 1`` and a per-step overhead ``s N`` that
a batch shares. A second table compares forms on the same two tests and on the default law's
validation splits: the previously shipped ``hw-fit+step`` (overhead scaled by the hardware
term) and ``hw-fit+flatstep`` (FLOP-only, per-step overhead flat across GPUs and precisions), the
shipped form (:data:`fits.validation.PRIMARY_LAW`, a roofline in FLOPs and bytes with flat per-step
and per-call costs), and a *utilisation* form (``E = H a C^b (1 + (w0 / w)^g)``, ``w = C / (N x peak)``: ideal seconds of
work per denoiser step at the precision's peak; energy per FLOP rises when a step's work is small
for the GPU). A form enters the shipped law only if it wins the validation table
(:data:`fits.default_law.SELECTION`); the utilisation form is defined here, as an experiment.

    PYTHONPATH=. python benchmarks/whatif_batch.py [--data DIR]
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fits.laws import HardwareLaw  # noqa: E402
from fits.validation import PRIMARY_LAW  # noqa: E402

SWEEP_KEYS = ["source", "model", "gpu_key", "precision", "height", "width", "frames", "audio_seconds", "steps", "cfg"]
VALIDATION_SPLITS = ("config_kfold", "model_out", "gpu_out")


def md(rows, header) -> str:
    out = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(out)


def pct(x: float, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


class UtilisationLaw(HardwareLaw):
    """``E = H(hw) a C^b (1 + (w0 / w)^g)`` with ``w = C / (N peak)`` (an experiment, not shipped).

    ``w`` is the ideal time of one denoiser step's work at the precision's peak (column 2 of the
    design matrix); the factor saturates to 1 when a step fills the GPU and grows as ``w^-g`` when
    it does not. ``theta = [alpha, b, w_fitted..., log w0, g]``; fitted by nonlinear least squares in
    log space from the plain hardware law's solution. Same parameters as :class:`HardwareLaw`
    (``overhead`` must stay None).
    """

    def fit(self, X, y):
        from scipy.optimize import least_squares

        super().fit(X, y)  # the linear hardware law: centres, floors, fitted hardware columns
        Z = self._logs(np.asarray(X, dtype=float))
        t = np.log(np.asarray(y, dtype=float))
        self._util = True
        lw = self._log_work(Z)
        best = None
        for q in (0.05, 0.25, 0.5, 0.75):
            for g in (0.5, 1.0):
                x0 = np.r_[self.theta_, np.quantile(lw, q), g]
                res = least_squares(lambda th: self._log_model(th, Z) - t, x0, method="trf", max_nfev=3000)
                if best is None or res.cost < best.cost:
                    best = res
        theta = best.x
        self.theta_ = theta
        self.n_params_ = len(theta)
        resid = t - self._log_model(theta, Z)
        self.resid_log_ = resid
        self.dof_ = int(max(len(t) - len(theta), 1))
        self.sigma2_ = float(resid @ resid / self.dof_)
        self.smearing_ = float(np.mean(np.exp(resid))) if self.smearing else 1.0
        for k, j in enumerate(self.fitted_hardware_):
            self.exponent_of_[j] = float(theta[2 + k])
        return self

    def _log_work(self, Z):
        return Z[:, 0] - Z[:, 1] - Z[:, 2]

    def _log_model(self, theta, Z, grad=False):
        base = super()._log_model(np.asarray(theta)[: 2 + len(self.fitted_hardware_)], Z, grad=False)
        if not getattr(self, "_util", False) or len(theta) == 2 + len(self.fitted_hardware_):
            if grad:
                return base, super()._log_model(theta, Z, grad=True)[1]
            return base
        lw0, g = theta[-2], theta[-1]
        out = base + np.logaddexp(0.0, g * (lw0 - self._log_work(Z)))
        if not grad:
            return out
        eps = 1e-6
        J = np.empty((Z.shape[0], len(theta)))
        for i in range(len(theta)):
            d = np.zeros(len(theta))
            d[i] = eps
            J[:, i] = (self._log_model(theta + d, Z) - self._log_model(theta - d, Z)) / (2 * eps)
        return out, J


def forms() -> dict:
    from fits.features import BYTE_COLUMN, STEPS_COLUMN, prior_exponents
    from fits.validation import candidate_laws

    mem = prior_exponents("memory", "energy")
    c = candidate_laws()
    return {
        "hw-fit+step (overhead x H; shipped before)": c["hw-fit+step"],
        "hw-fit+flatstep (FLOP-only; shipped before)": c["hw-fit+flatstep"],
        "utilisation (experiment)": UtilisationLaw(prior_exponents=mem, fit_hardware="auto",
                                                   steps_column=STEPS_COLUMN, byte_column=BYTE_COLUMN),
        SHIPPED: c[PRIMARY_LAW],
    }


SHIPPED = f"{PRIMARY_LAW} (shipped)"


def _data(folder):
    from fits.default_law import _training_data
    from fits.features import design_matrix

    _, _, settings, _ = _training_data(Path(folder) if folder else None)
    settings = settings.reset_index(drop=True)
    return settings, design_matrix(settings), settings["energy_gpu_j"].to_numpy(dtype=float)


def sweeps(s) -> list[tuple[tuple, list[int], int]]:
    """(sweep key, setting indices sorted by batch, index of batch 1) for every sweep with a batch-1 point."""
    out = []
    for key, g in s.groupby(SWEEP_KEYS, dropna=False, sort=True):
        if g["batch_size"].nunique() < 2 or not (g["batch_size"] == 1).any():
            continue
        g = g.sort_values("batch_size")
        out.append((key, list(g.index), int(g.index[g["batch_size"] == 1][0])))
    return out


def _ratios(pred, y, s, sw):
    rows = []
    for key, idx, i1 in sw:
        for i in idx:
            b = int(s.loc[i, "batch_size"])
            if b == 1:
                continue
            m = y[i] / b / y[i1]
            p = pred[i] / b / pred[i1]
            rows.append({"source": key[0], "model": key[1], "gpu": key[2], "batch": b, "measured": m,
                         "predicted": p, "error": p / m - 1.0})
    return rows


def build(folder: Path | None = None) -> dict:
    from sklearn.base import clone

    from fits.laws import IdentifiabilityWarning
    from fits.validation import _groups, compare_laws

    s, X, y = _data(folder)
    sw = sweeps(s)
    b1 = (s["batch_size"] == 1).to_numpy()
    laws = forms()
    curves = {}
    score = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        table = compare_laws(laws, X, y, _groups(s), splits=VALIDATION_SPLITS)
        for name, law in laws.items():
            full = clone(law).fit(X, y).predict(X)
            held = clone(law).fit(X[b1], y[b1]).predict(X)
            curves[name] = {"in_sample": _ratios(full, y, s, sw), "held_out": _ratios(held, y, s, sw)}
            row = {"law": name}
            for split in ("held_out", "in_sample"):
                e = np.array([r["error"] for r in curves[name][split]])
                row[f"{split}_mape"] = float(np.mean(np.abs(e)))
                row[f"{split}_max"] = float(np.max(np.abs(e)))
                aud = np.array([abs(r["error"]) for r in curves[name][split] if r["source"].startswith("diffused")])
                row[f"{split}_audio_mape"] = float(aud.mean())
            t = table[table["law"] == name].set_index("split")["mape"]
            for split in VALIDATION_SPLITS:
                row[split] = float(t.get(split, math.nan))
            row["validation_mean"] = float(np.nanmean([row[sp] for sp in VALIDATION_SPLITS]))
            score.append(row)
    winner = min(score, key=lambda r: r["validation_mean"])["law"]
    # how much the previously shipped form scales a step's overhead at fp32 over fp16 (A40)
    from fits.features import hardware_vector

    old = clone(laws["hw-fit+step (overhead x H; shipped before)"]).fit(X, y)
    z32, z16 = np.log(hardware_vector("a40", "fp32")), np.log(hardware_vector("a40", "fp16"))
    h_ratio = float(np.exp(sum(e * (z32[k] - z16[k]) for k, e in enumerate(old.hardware_exponents_))))
    at8 = [r for r in curves[SHIPPED]["in_sample"] if r["source"].startswith("ml_energy") and r["batch"] == 8]
    audio10 = [r for r in curves[SHIPPED]["held_out"] if r["source"].startswith("diffused") and r["batch"] == 10]
    audio10_in = [r for r in curves[SHIPPED]["in_sample"] if r["source"].startswith("diffused") and r["batch"] == 10]
    return {"curves": curves, "score": score, "winner": winner, "audio10": audio10, "audio10_in": audio10_in,
            "n_sweeps": len(sw), "fp32_overhead_scale": h_ratio,
            "most_gain": min(at8, key=lambda r: r["measured"]), "least_gain": max(at8, key=lambda r: r["measured"])}


def render(res: dict) -> str:
    lines = ["## Batch size", "",
             "Energy per output at batch B over batch 1, `(E(B)/B) / E(1)`. `held out`: the shipped form refitted "
             "without any batch > 1 setting (the curve predicted from batch-1 data); `in-sample`: the shipped law "
             "(its training data include these sweeps). Error = predicted ratio / measured ratio - 1.", ""]
    cur = res["curves"][SHIPPED]
    rows = []
    for h, i in zip(cur["held_out"], cur["in_sample"]):
        rows.append([h["model"], h["gpu"], h["batch"], f"{h['measured']:.3f}", f"{h['predicted']:.3f}",
                     pct(h["error"], True), f"{i['predicted']:.3f}", pct(i["error"], True)])
    lines.append(md(rows, ["model", "gpu", "batch", "measured ratio", "predicted (held out)", "error",
                           "predicted (in-sample)", "error"]))
    a = res["audio10"]
    ai = res["audio10_in"]
    lines += ["", f"Audio study headline (batch 10 against batch 1, A40): measured "
                  f"{min(r['measured'] for r in a):.2f}x to {max(r['measured'] for r in a):.2f}x per clip; predicted "
                  f"{min(r['predicted'] for r in a):.2f}x to {max(r['predicted'] for r in a):.2f}x held out "
                  f"({min(r['predicted'] for r in ai):.2f}x to {max(r['predicted'] for r in ai):.2f}x in-sample).", "",
              "### Which form", "",
              "Batch-curve error (MAPE of the ratio over every batch > 1 point; `audio`: the A40 sweep only) and the "
              "default law's validation MAPE on all public settings (the selection rule: lowest mean over "
              "config_kfold, model_out, gpu_out).", ""]
    rows = []
    for r in res["score"]:
        rows.append([r["law"] + (" **winner**" if r["law"] == res["winner"] else ""), pct(r["held_out_mape"]),
                     pct(r["held_out_max"]), pct(r["held_out_audio_mape"]), pct(r["in_sample_mape"]),
                     pct(r["config_kfold"]), pct(r["model_out"]), pct(r["gpu_out"]), pct(r["validation_mean"])])
    lines.append(md(rows, ["form", "batch MAPE held out", "max", "audio", "batch MAPE in-sample",
                           "MAPE config_kfold", "model_out", "gpu_out", "mean"]))
    most, least = res["most_gain"], res["least_gain"]
    score = {r["law"]: r for r in res["score"]}
    flat, util = score["hw-fit+flatstep (FLOP-only; shipped before)"], score["utilisation (experiment)"]
    audio_best = min(res["score"], key=lambda r: r["held_out_audio_mape"])["law"]
    shipped_wins = res["winner"] == SHIPPED
    lines += ["", "Reading: the per-step overhead that a batch shares carries most of the curve. In the form "
                  "shipped first (`hw-fit+step`) the overhead was scaled by the hardware term, which makes a step's "
                  f"overhead {res['fp32_overhead_scale']:.1f}x larger at fp32 than at fp16 on the A40, so the fp32 "
                  "Tango models were predicted to gain far more from batching than they do. Making the overhead flat "
                  "across GPUs and precisions (`hw-fit+flatstep`, the FLOP-only form shipped next) fixes that; the "
                  f"shipped form, `{PRIMARY_LAW}` (a roofline in FLOPs and bytes, with the flat per-step cost and a "
                  f"per-call cost), keeps the flat overhead and "
                  f"{'wins' if shipped_wins else 'does NOT win'} the validation table (mean "
                  f"{pct(score[SHIPPED]['validation_mean'])} against {pct(flat['validation_mean'])} for "
                  f"`hw-fit+flatstep`); the utilisation form "
                  f"{'fits the audio sweep best' if audio_best == 'utilisation (experiment)' else 'does not fit the audio sweep best'}"
                  f" ({pct(util['held_out_audio_mape'])} held out) but "
                  f"{'loses' if res['winner'] != 'utilisation (experiment)' else 'wins'} the validation table (mean "
                  f"{pct(util['validation_mean'])}), so it is not shipped. What no form "
                  "captures: how much launch overhead a model has per step, which depends on its kernel count and "
                  f"the host, not on its FLOPs (at batch 8 in ML.ENERGY, {most['model']} on {most['gpu']} falls to "
                  f"{most['measured']:.2f}x of its batch-1 energy per image, {least['model']} on {least['gpu']} only "
                  f"to {least['measured']:.2f}x; predicted {most['predicted']:.2f}x and {least['predicted']:.2f}x).", ""]
    return "\n".join(lines)


def summary(res: dict) -> list[dict]:
    a = res["audio10"]
    sc = {r["law"]: r for r in res["score"]}[SHIPPED]
    ml = [r for r in res["curves"][SHIPPED]["held_out"] if r["source"].startswith("ml_energy")]
    return [
        {"what_if": "batch 10 instead of 1 (energy per clip)",
         "case": "5 audio models, A40, 100 steps (diffused_responsibility); law fitted without batch > 1",
         "published": f"{min(r['measured'] for r in a):.2f}x to {max(r['measured'] for r in a):.2f}x",
         "predicted": f"{min(r['predicted'] for r in a):.2f}x to {max(r['predicted'] for r in a):.2f}x",
         "error": f"MAPE {pct(float(np.mean([abs(r['error']) for r in a])))}"},
        {"what_if": "batch 2-64 instead of 1 (energy per image/video)",
         "case": f"ML.ENERGY v2, {len({r['model'] for r in ml})} models, A100 + H100 ({len(ml)} points); "
                 "law fitted without batch > 1",
         "published": f"{min(r['measured'] for r in ml):.2f}x to {max(r['measured'] for r in ml):.2f}x",
         "predicted": f"{min(r['predicted'] for r in ml):.2f}x to {max(r['predicted'] for r in ml):.2f}x",
         "error": f"MAPE {pct(float(np.mean([abs(r['error']) for r in ml])))} (all sweeps "
                  f"{pct(sc['held_out_mape'])})"},
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="public data folder (default datasets/public)")
    args = p.parse_args(argv)
    print(render(build(Path(args.data) if args.data else None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
