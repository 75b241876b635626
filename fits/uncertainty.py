"""Intervals for fitted laws: coefficients and predictions, analytic and bootstrap.

Analytic (log space, where the errors are close to normal):

- Linear forms (:class:`~fits.laws.PowerLaw`, :class:`~fits.laws.HardwareLaw` without
  overhead, squared loss) are ordinary least squares on ``log E``: coefficient and prediction
  intervals come from statsmodels ``OLS`` (``conf_int``, ``get_prediction().obs_ci``). The
  fixed-prior hardware terms enter as an offset.
- Nonlinear or robust forms (overhead ``E0``, Huber loss) use the asymptotic covariance
  ``sigma^2 (J'J)^-1`` at the optimum (delta method) with Student-t quantiles on the residual
  degrees of freedom: the same formula OLS uses, with the Jacobian in place of the design.

:func:`prediction_interval` is :func:`fits.law.predict_interval` on the law's state
(``law.to_state()``): the one interval formula, the same that evaluates a law file with numpy
only; for the linear forms it equals statsmodels' ``obs_ci`` (a test checks it). Everything here
reads a fitted law through its public attributes and its :class:`fits.law.LawState`. A prediction interval is a quantile interval: computed in log space and
exponentiated, it needs no retransformation correction (the point prediction does: smearing).

Bootstrap (:func:`bootstrap`): resample whole *settings* (groups) with replacement, refit, and
take percentiles; repeats of one setting are not independent evidence, so they are never
resampled on their own. Fixed seed (``random_state=0``) by default.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from fits.law import DESIGN_COLUMNS, FLOP_ONLY_COLUMNS, predict_interval, t_quantile
from scaling.errors import LawError

__all__ = [
    "BootstrapResult",
    "bootstrap",
    "coef_table",
    "column_names",
    "ols_results",
    "prediction_interval",
    "t_quantile",
]


_LOG_MAX = float(np.log(np.finfo(float).max))
"""The largest log-space value whose exponential is a float (about 709.78)."""


def _exp(v: float) -> float:
    """``exp(v)`` of a log-space coefficient or bound, in linear space: ``inf`` where the value is past the
    largest float (a bound of a parameter the data barely identifies can be: its interval has no finite
    top), computed without overflowing."""
    v = float(v)
    return float("inf") if v > _LOG_MAX else math.exp(v)


def _is_ols(law) -> bool:
    return not law.overhead_ and not law.robust


def column_names(law) -> list[str]:
    """Names of the columns of ``X`` the law was fitted on."""
    names = getattr(law, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    if law.n_features_in_ in (len(DESIGN_COLUMNS), len(FLOP_ONLY_COLUMNS)):  # with or without the bytes
        return list(DESIGN_COLUMNS[:law.n_features_in_])
    return [f"x{j}" for j in range(law.n_features_in_)]


def _transformed(state, names: list[str]):
    """Rows (name, gradient over theta, value) of the readable parameters of a fitted law's state."""
    theta = state.theta
    p = len(theta)
    rows = []
    if state.family == "roofline":  # every parameter is read as it is fitted
        for i, name in enumerate(state.param_names):
            g = np.zeros(p)
            g[i] = 1.0
            rows.append((name, g, float(theta[i])))
        return rows
    g = np.zeros(p)
    g[0], g[1] = 1.0, -state.flop_center
    rows.append(("log_a", g, float(theta[0] - theta[1] * state.flop_center)))
    g = np.zeros(p)
    g[1] = 1.0
    rows.append(("b", g, float(theta[1])))
    for i, j in enumerate(state.fitted):
        g = np.zeros(p)
        g[2 + i] = 1.0
        rows.append((f"w_{names[j]}", g, float(theta[2 + i])))
    for k, term in enumerate(state.overhead):
        i = 2 + len(state.fitted) + k
        g = np.zeros(p)
        g[i] = 1.0
        rows.append(("log_e0" if term == "call" else "log_s", g, float(theta[i])))
    return rows


def ols_results(law, X, y):
    """statsmodels ``OLSResults`` of a fitted linear law on its training data (log space).

    Raises
    ------
    LawError
        If the law is nonlinear (overhead) or robust: it is not an OLS fit.
    """
    import statsmodels.api as sm

    if not _is_ols(law):
        raise LawError(f"{type(law).__name__} with overhead or robust loss is not an OLS fit: use coef_table")
    state = law.to_state()
    Z = state.log_features(np.asarray(X, dtype=float))
    return sm.OLS(np.log(np.asarray(y, dtype=float)) - state.hardware_offset(Z), state.linear_design(Z)).fit()


def coef_table(law, X=None, y=None, level: float = 0.9):
    """Coefficients of a fitted law with their ``level`` intervals.

    Parameters
    ----------
    law : fitted law from :mod:`fits.laws`
    X, y : training data, needed for the statsmodels path of the linear forms (else the
        law's stored covariance is used).
    level : float, default=0.9

    Returns
    -------
    pandas.DataFrame
        Columns ``param, estimate, se, lo, hi, method``; ``log_a`` is on raw FLOP, ``w_<feature>``
        are hardware exponents (priors held fixed are listed with se 0 and method "prior"),
        ``log_e0`` / ``log_s`` the log overheads per call / per step. The rows ``a``, ``e0``
        and ``s`` repeat them in linear space.
    """
    import pandas as pd

    state = law.to_state()
    cov = state.cov
    method = "asymptotic (delta method)"
    if X is not None and y is not None and _is_ols(law):
        if len(np.asarray(y)) <= len(state.theta):
            # as many settings as parameters: the fit goes through every point, the residual spread (and so every
            # interval) is undefined; statsmodels would divide by its 0 residual degrees of freedom
            cov = np.full((len(state.theta),) * 2, np.nan)
            method = "none: 0 residual degrees of freedom"
        else:
            res = ols_results(law, X, y)
            cov = np.asarray(res.cov_params())
            method = "statsmodels OLS"
    q = state.quantile(level)
    names = column_names(law)
    rows = []
    for name, g, value in _transformed(state, names):
        se = float(np.sqrt(max(g @ cov @ g, 0.0))) if np.isfinite(cov).all() else float("nan")
        rows.append({"param": name, "estimate": value, "se": se, "lo": value - q * se, "hi": value + q * se,
                     "method": method})
    for j, w in zip(state.fixed, state.fixed_exponents):
        rows.append({"param": f"w_{names[j]}", "estimate": w, "se": 0.0, "lo": w, "hi": w, "method": "prior (fixed)"})
    extra = []
    for r in rows:
        if r["param"] in ("log_a", "log_e0", "log_s"):
            extra.append({"param": r["param"][4:], "estimate": _exp(r["estimate"]), "se": float("nan"),
                          "lo": _exp(r["lo"]), "hi": _exp(r["hi"]), "method": r["method"]})
    return pd.DataFrame(rows + extra, columns=["param", "estimate", "se", "lo", "hi", "method"])


def prediction_interval(law, X, level: float = 0.9):
    """Point prediction and ``level`` prediction interval for new rows, in linear space.

    Parameters
    ----------
    law : fitted law
    X : array-like of shape (n_samples, n_features)
    level : float, default=0.9

    Returns
    -------
    mean, lo, hi : ndarray of shape (n_samples,)
        ``mean`` is the smeared mean prediction; ``[lo, hi]`` is the interval of a new
        observation: ``exp(log f(x) +- t * sqrt(g' Cov g + sigma^2))``.
    """
    from sklearn.utils.validation import check_array

    return predict_interval(law.to_state(level), check_array(X, dtype=np.float64), level)


@dataclass
class BootstrapResult:
    """Bootstrap over settings: parameter samples and percentile intervals.

    Attributes
    ----------
    params : pandas.DataFrame
        One row per successful resample, one column per readable parameter.
    intervals : pandas.DataFrame
        ``param, estimate, lo, hi`` (percentiles at ``level``).
    predictions : ndarray of shape (n_ok, n_new) or None
        Median predictions at ``X_new`` per resample.
    pred_lo, pred_hi : ndarray or None
        Percentile interval of a new observation at ``X_new`` (resampled fit times a resampled
        residual).
    n_boot, n_failed : int
        Resamples asked for, and resamples whose fit failed (too few distinct settings).
    """

    params: object
    intervals: object
    level: float
    n_boot: int
    n_failed: int
    predictions: np.ndarray | None = None
    pred_lo: np.ndarray | None = None
    pred_hi: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def bootstrap(law, X, y, groups, n_boot: int = 200, level: float = 0.9, random_state: int = 0, X_new=None):
    """Refit ``law`` on resamples of whole settings and report percentile intervals.

    Parameters
    ----------
    law : estimator from :mod:`fits.laws` (fitted or not; it is cloned)
    X, y : training data
    groups : array-like of shape (n_samples,)
        Setting id per row (:func:`fits.features.setting_groups`); groups are resampled.
    n_boot : int, default=200
    level : float, default=0.9
    random_state : int, default=0
        Seed: the same call gives the same intervals.
    X_new : array-like, optional
        Rows to predict in each resample.

    Returns
    -------
    BootstrapResult
    """
    import pandas as pd
    from sklearn.base import clone

    from fits.laws import IdentifiabilityWarning

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    groups = np.asarray(groups)
    uniq, inv = np.unique(groups, return_inverse=True)
    if uniq.size < 2:
        raise LawError("bootstrap needs at least 2 distinct settings (groups)")
    members = [np.flatnonzero(inv == g) for g in range(uniq.size)]
    rng = np.random.default_rng(random_state)            # which settings
    noise_rng = np.random.default_rng([random_state, 1])  # residual draws for prediction intervals
    base = clone(law).fit(X, y)
    names = column_names(base)
    rows, preds, noisy = [], [], []
    failed = 0
    for _ in range(int(n_boot)):
        pick = rng.integers(0, uniq.size, size=uniq.size)
        idx = np.concatenate([members[g] for g in pick])
        est = clone(law)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=IdentifiabilityWarning)
                est.fit(X[idx], y[idx])
        except (LawError, ValueError, np.linalg.LinAlgError):
            failed += 1
            continue
        rows.append({name: v for name, _, v in _transformed(est.to_state(level), names)})
        if X_new is not None:
            p = est.predict_median(X_new)
            preds.append(p)
            noisy.append(p * np.exp(noise_rng.choice(est.resid_log_, size=p.shape)))
    if not rows:
        raise LawError(f"bootstrap: every one of {n_boot} resamples failed to fit")
    params = pd.DataFrame(rows)
    lo_q, hi_q = 50 * (1 - level), 50 * (1 + level)
    base_vals = {name: v for name, _, v in _transformed(base.to_state(level), names)}
    intervals = pd.DataFrame([
        {"param": c, "estimate": base_vals.get(c, float("nan")),
         "lo": float(np.nanpercentile(params[c], lo_q)), "hi": float(np.nanpercentile(params[c], hi_q))}
        for c in params.columns
    ])
    out = BootstrapResult(params=params, intervals=intervals, level=level, n_boot=int(n_boot), n_failed=failed)
    if X_new is not None:
        P = np.vstack(preds)
        N = np.vstack(noisy)
        out.predictions = P
        out.pred_lo = np.percentile(N, lo_q, axis=0)
        out.pred_hi = np.percentile(N, hi_q, axis=0)
    if failed:
        out.notes.append(f"{failed} of {n_boot} resamples had too few distinct settings and were skipped")
    return out
