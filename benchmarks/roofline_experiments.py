"""Roofline variants that were tried and not shipped, on the default law's data and splits.

The shipped form (``hw-roofline-max+E0``, :mod:`fits.roofline`) applies one roofline to the whole
call. Three physically motivated refinements were tried against it, with the same priors (b = 1,
peak and bandwidth exponents -1, TDP 1 for energy and 0 for time, weight 1), the same splits
(5-fold by setting, leave-one-model-out, leave-one-GPU-out) and the same data (the 202 settings of
``fits.default_law``):

- ``per-component``: the roofline per role, summed: ``sum_r max_8(A W_r^b / peak, B Q_r / bw)``
  (text encoder, denoiser, decoder, vocoder, and the rest of the call as one more part), the form
  the issue names;
- ``conv-factor``: convolution FLOPs weighted by a fitted factor ``kappa`` (prior 1) in the compute
  term: do UNets' convolutions run at another efficiency than the matmuls?
- ``conv-tf32``: fp32 convolutions at the TF32 tensor-core peak (cuDNN's default) instead of the
  CUDA-core fp32 peak.

A variant enters the shipped law only through the validation table (:data:`fits.default_law.SELECTION`)
and only once it is built into :mod:`fits.roofline`; this script is the evidence for not doing so.

    python benchmarks/roofline_experiments.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ROLES = ("text_encoder", "denoiser", "decoder", "vocoder")
K = 8.0  # the smooth maximum's sharpness, as shipped (fits.law.ROOFLINE_SHARPNESS)


def _conv_flop(settings) -> np.ndarray:
    """Convolution FLOP of each setting's call, from its closed-form profile."""
    import pandas as pd

    from profilers.flops.profile import profile
    from scaling.app.importers._lookups import generated_frames
    from scaling.registry import resolve_model
    from scaling.settings import make_setting

    out = []
    for r in settings.itertuples():
        spec = resolve_model(r.model_key)
        kw = {"steps": int(r.steps), "batch_size": int(r.batch_size or 1), "precision": r.precision}
        if spec.modality in ("image", "video"):
            kw["height"] = None if pd.isna(r.height) else int(r.height)
            kw["width"] = None if pd.isna(r.width) else int(r.width)
        if spec.modality == "video" and not pd.isna(r.frames):
            kw["frames"] = generated_frames(spec, int(r.frames))
        if spec.modality == "audio" and not pd.isna(r.audio_seconds):
            kw["seconds"] = float(r.audio_seconds)
        if not pd.isna(r.guidance_scale):
            kw["guidance"] = float(r.guidance_scale)
        if not pd.isna(r.cfg):
            kw["cfg"] = bool(r.cfg)
        out.append(profile(make_setting(spec, **kw), spec=spec).by_op().get("conv", 0.0))
    return np.asarray(out)


def _parts(settings, X):
    """(W, Q) per part and row: the four roles, and the rest of the call (e.g. an upsampler)."""
    W = np.column_stack([settings[f"flop_{r}"].astype(float).fillna(0).to_numpy() for r in ROLES])
    Q = np.column_stack([settings[f"byte_{r}"].astype(float).fillna(0).to_numpy() for r in ROLES])
    W = np.column_stack([W, np.maximum(X[:, 0] - W.sum(1), 0)])
    Q = np.column_stack([Q, np.maximum(X[:, 6] - Q.sum(1), 0)])
    return W, Q


def _model(th, X, W, Q, conv, c, variant):
    Z = np.log(X)
    zt = th[5] * (Z[:, 4] - c[2])
    hwc, hwm = th[3] * (Z[:, 2] - c[0]) + zt, th[4] * (Z[:, 3] - c[1]) + zt

    def roof(w, q):
        with np.errstate(divide="ignore"):
            uc = np.where(w > 0, th[0] + th[1] * (np.log(np.where(w > 0, w, 1)) - c[3]) + hwc, -np.inf)
            um = np.where(q > 0, th[2] + (np.log(np.where(q > 0, q, 1)) - c[4]) + hwm, -np.inf)
        return np.logaddexp(K * uc, K * um) / K

    if variant == "per-component":
        core = np.log(sum(np.exp(roof(W[:, j], Q[:, j])) for j in range(W.shape[1]) if (W[:, j] + Q[:, j]).any()))
    elif variant == "conv-factor":
        core = roof(X[:, 0] + (np.exp(th[8]) - 1.0) * conv, X[:, 6])
    else:
        core = roof(X[:, 0], X[:, 6])
    return np.logaddexp(np.logaddexp(core, th[6] + Z[:, 1]), th[7])


def _fit(X, W, Q, conv, y, energy, variant):
    from scipy.optimize import least_squares

    Z, t = np.log(X), np.log(y)
    c = np.array([Z[:, 2].mean(), Z[:, 3].mean(), Z[:, 4].mean(), Z[:, 0].mean(), Z[:, 6].mean()])
    prior = np.array([-1.0, -1.0, 1.0 if energy else 0.0])

    def fun(th):
        return np.r_[_model(th, X, W, Q, conv, c, variant) - t, th[3:6] - prior, th[1] - 1.0, th[8]]

    best = None
    for d in (0.0, 1.5, -1.5):
        for e in (1.0, 4.0):
            x0 = np.r_[t.mean(), 1.0, t.mean() - d, prior, np.min(t - Z[:, 1]) - e, np.min(t) - e, 0.0]
            r = least_squares(fun, x0)
            if best is None or r.cost < best.cost:
                best = r
    smear = float(np.mean(np.exp(t - _model(best.x, X, W, Q, conv, c, variant))))
    return best.x, c, smear


def scores(settings, X, y, energy: bool, variant: str) -> list[float]:
    """MAPE over 5-fold by setting, leave-one-model-out and leave-one-GPU-out."""
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    from fits.validation import _groups

    settings = settings.reset_index(drop=True)
    X = X.copy()
    W, Q = _parts(settings, X)
    conv = _conv_flop(settings) if variant.startswith("conv") else np.zeros(len(y))
    if variant == "conv-tf32":
        from scaling.hardware import resolve_gpu

        for i, r in enumerate(settings.itertuples()):
            tf32 = resolve_gpu(r.gpu_key).peak_for("tf32") if r.precision == "fp32" else None
            if tf32:
                X[i, 2] = X[i, 0] / ((X[i, 0] - conv[i]) / X[i, 2] + conv[i] / tf32)
    groups = _groups(settings)
    out = []
    for split, splitter in (("config_kfold", GroupKFold(5)), ("model_out", LeaveOneGroupOut()),
                            ("gpu_out", LeaveOneGroupOut())):
        pred = np.full(len(y), np.nan)
        for tr, te in splitter.split(X, y, groups[split]):
            th, c, smear = _fit(X[tr], W[tr], Q[tr], conv[tr], y[tr], energy, variant)
            pred[te] = np.exp(_model(th, X[te], W[te], Q[te], conv[te], c, variant)) * smear
        out.append(float(np.mean(np.abs(pred / y - 1))))
    return out


def main(argv=None) -> int:
    from fits.default_law import fit_default
    from fits.validation import PRIMARY_LAW

    fit = fit_default(validate=False, form=PRIMARY_LAW)
    print("MAPE: 5-fold by setting / leave-one-model-out / leave-one-GPU-out (202 settings; "
          "'whole call' is the shipped form, refitted by this script's own solver)")
    for target, X, y, s, energy in (("energy", fit["X"], fit["y_energy"], fit["settings"], True),
                                    ("time", fit["X_time"], fit["y_time"], fit["time_settings"], False)):
        for variant in ("whole call", "per-component", "conv-factor", "conv-tf32"):
            m = scores(s, X, y, energy, variant)
            print(f"{target:6s} {variant:14s} " + " / ".join(f"{v:.1%}" for v in m) + f"   mean {np.mean(m):.1%}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
