"""The log-space solvers behind the estimators of :mod:`fits.laws` (pure functions of arrays).

- :func:`choose_fitted`: which hardware exponents the training data can identify;
- :func:`overhead_starts`: starting points of the nonlinear fit (no overhead, and the overhead at
  10, 30, 60 and 90 % of the smallest energy);
- :func:`solve_nls`: bounded nonlinear least squares from every start, the best kept (scipy
  ``least_squares``), optionally with a Huber loss (:func:`robust_nls`);
- :func:`covariance`: ``sigma^2 (J'J)^-1`` (the OLS covariance for the linear forms, the
  asymptotic NLS one otherwise).

``Z`` is the log of the design matrix (:meth:`fits.law.LawState.log_features`), ``t`` the log
of the target.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from scaling.errors import LawError

__all__ = ["choose_fitted", "covariance", "overhead_starts", "robust_nls", "robust_scale", "solve_nls"]


def robust_scale(r: np.ndarray) -> float:
    """MAD estimate of the spread of ``r`` (the standard deviation, then 1e-12, where the MAD is 0)."""
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    if mad > 0:
        return mad
    sd = float(np.std(r))
    return sd if sd > 0 else 1e-12


def choose_fitted(Z: np.ndarray, hw_cols: Sequence[int], mode, who: str) -> list[int]:
    """The hardware columns whose exponent is fitted.

    ``mode`` False: none; True: all (the design must identify them, else :class:`LawError`);
    ``"auto"``: in column order, each column that varies and adds rank to the design.
    """
    if mode is False or not hw_cols:
        return []
    if mode is True:
        cols = [0, *hw_cols]
        D = np.column_stack([np.ones(Z.shape[0]), Z[:, cols] - Z[:, cols].mean(axis=0)])
        rank = np.linalg.matrix_rank(D)
        if rank < D.shape[1]:
            raise LawError(
                f"{who}(fit_hardware=True): the training data cannot identify every hardware exponent "
                f"({len(hw_cols)} hardware columns, design rank {rank} < {D.shape[1]}); use fit_hardware='auto' "
                "or False"
            )
        return list(hw_cols)
    chosen: list[int] = []
    base = [np.ones(Z.shape[0]), Z[:, 0] - Z[:, 0].mean()]
    rank = np.linalg.matrix_rank(np.column_stack(base))
    for j in hw_cols:
        if np.unique(np.round(Z[:, j], 12)).size < 2:
            continue
        col = Z[:, j] - Z[:, j].mean()
        trial = np.column_stack(base + [col])
        r = np.linalg.matrix_rank(trial, tol=1e-8 * max(1.0, np.abs(trial).max()))
        if r > rank:
            chosen.append(j)
            base.append(col)
            rank = r
    return chosen


def overhead_starts(beta, Z, t, D, off, overhead: Sequence[str], steps_column: int | None,
                    scaled: bool) -> list[np.ndarray]:
    """Starting points: no overhead, and the overhead at 10-90 % of the smallest energy.

    ``beta`` is the solution of the linear form (design ``D``, hardware offset ``off``); with
    ``scaled`` the overheads are multiplied by the hardware term (they live in the units of
    ``t - off``).
    """
    r = t - off if scaled else t
    n_steps = np.exp(Z[:, steps_column]) if "step" in overhead else None
    tiny = float(np.min(r)) - 12.0
    starts = [np.r_[beta, [tiny] * len(overhead)]]
    for frac in (0.1, 0.3, 0.6, 0.9):
        share = frac / len(overhead)
        over = np.zeros_like(r)
        extra = []
        if "call" in overhead:
            e0 = share * float(np.exp(np.min(r)))
            over += e0
            extra.append(np.log(e0))
        if "step" in overhead:
            s = share * float(np.min(np.exp(r) / n_steps))
            over += s * n_steps
            extra.append(np.log(s))
        target = np.log(np.maximum(np.exp(r) - over, 1e-300)) - (0.0 if scaled else off)
        b0 = np.linalg.lstsq(D, target, rcond=None)[0]
        starts.append(np.r_[b0, extra])
    return starts


def robust_nls(x0, fun: Callable, jac: Callable, lower, upper, epsilon: float):
    """Huber-loss least squares from ``x0``; the scale (``epsilon`` x MAD) re-estimated twice."""
    from scipy.optimize import least_squares

    res = None
    x = x0
    for _ in range(3):
        scale = robust_scale(fun(x))
        res = least_squares(fun, x, jac=jac, bounds=(lower, upper), method="trf", loss="huber",
                            f_scale=epsilon * scale, x_scale="jac", max_nfev=2000)
        x = res.x
    return res


def solve_nls(fun: Callable, jac: Callable, starts: Sequence[np.ndarray], lower, upper, robust: bool,
              epsilon: float) -> np.ndarray:
    """Bounded least squares (trust region) from every start; the lowest cost wins."""
    from scipy.optimize import least_squares

    best = None
    for x0 in starts:
        x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)
        res = least_squares(fun, x0, jac=jac, bounds=(lower, upper), method="trf", x_scale="jac",
                            xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=200)
        if robust:
            res = robust_nls(res.x, fun, jac, lower, upper, epsilon)
        if best is None or res.cost < best.cost - 1e-12:
            best = res
    return best.x


def covariance(J: np.ndarray, sigma2: float) -> np.ndarray:
    """``sigma^2 (J'J)^-1`` (the pseudo-inverse where ``J'J`` is singular)."""
    JtJ = J.T @ J
    try:
        inv = np.linalg.inv(JtJ)
        if not np.all(np.isfinite(inv)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(JtJ)
    return sigma2 * inv
