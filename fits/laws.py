"""Energy laws: Kaplan-style power laws in FLOPs, with overhead and hardware terms.

Every law is a scikit-learn regressor (``fit`` / ``predict`` / ``score``, composable with
``clone``, ``cross_validate`` and ``GroupKFold``). They share one input layout, built from a
runs table by :func:`fits.features.design_matrix` (:data:`fits.features.DESIGN_COLUMNS`)::

    X : array-like of shape (n_samples, n_features)
        column 0          FLOP of the call (whole batch): the work ``C``
        column 1          denoising steps of the call ``N`` (read only by a law given
                          ``steps_column=1``)
        columns 2..5      hardware figures of the GPU at the run's precision: peak FLOP/s,
                          memory bandwidth (byte/s), TDP (W), byte per value
    y : array-like of shape (n_samples,)
        energy in J of that call (or its time in s: the same forms fit ``duration_s``)

so the same matrix feeds every law of the validation table and each law reads the columns it
needs. On generic data (no ``steps_column``), :class:`HardwareLaw` treats every column after
the first as a hardware figure.

The forms, all fitted in log space (multiplicative errors: a 5 % miss weighs the same on a
300 J image as on a 900 kJ video)::

    PowerLaw          E = a * C^b                                    OLS on (log C, log E)
    PowerLawOverhead  E = a * C^b + E0 [+ s * N]                     NLS in log space, several starts
    HardwareLaw       E = H(hw) * (a * C^b [+ E0] [+ s * N])
                      log H = sum_j w_j * log hw_j                   OLS, or NLS with an overhead

Overheads (``overhead=``): ``"call"`` adds ``E0``, a fixed cost per pipeline call (host code,
text encoding setup, allocation); ``"step"`` adds ``s * N``, a fixed cost per denoising step
(kernel launches and scheduler work that do not scale with the FLOPs: small models at small
batches are launch-bound); ``"call+step"`` adds both. In :class:`HardwareLaw` the overheads are
scaled by ``H`` like the rest of the call, unless ``overhead_scale="none"``
(``E = H(hw) * a * C^b [+ E0] [+ s * N]``: a launch-bound step costs the same on every GPU and
precision; the shipped default law's form ``hw-fit+flatstep``, chosen by its validation table).

Hardware. Each hardware exponent ``w_j`` is either fitted or held at a prior
(``prior_exponents``). A physical prior is what lets a GPU that was never measured be
predicted: a compute-bound roofline gives energy per FLOP ~ TDP / peak FLOP/s, a
memory-bound one ~ TDP * byte per value / bandwidth (:data:`fits.features.PRIORS`).
``fit_hardware="auto"`` fits an exponent only where the training data can identify it (the
column varies and adds rank to the design); otherwise the prior stays.

Retransformation. A fit in log space estimates the *median* of E. ``predict`` returns the
mean in linear space with Duan's smearing estimate, ``mean(exp(residual))`` over the training
residuals (``smearing=True``, the default); :meth:`predict_median` skips it. Intervals
(:mod:`fits.uncertainty`) are quantiles, computed in log space and exponentiated, so they need
no correction.

Robustness. ``robust=True`` replaces the squared loss by a Huber loss (scipy
``least_squares(loss="huber")``) whose scale is ``epsilon`` times a MAD estimate of the
residual spread, re-estimated twice.

Identification. A law needs distinct *settings*, not repeats: fitting on one distinct row
(of the columns the law reads) raises :class:`scaling.errors.LawError`; fewer distinct rows
than twice the number of fitted parameters gives an :class:`IdentifiabilityWarning`.

A zero in ``X`` (the sklearn checks produce them; real FLOP counts are above 1e6) is replaced
by the smallest positive value of its column seen by ``fit`` (``floor_``) before the log.
Negative values raise ``ValueError``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from fits.shipped import log_model
from scaling.errors import DataError, LawError

__all__ = [
    "OVERHEADS",
    "HardwareLaw",
    "IdentifiabilityWarning",
    "PowerLaw",
    "PowerLawOverhead",
    "r2_log",
]

#: Accepted values of ``overhead`` and the terms they add.
OVERHEADS = {None: (), False: (), "none": (), True: ("call",), "call": ("call",), "step": ("step",),
             "call+step": ("call", "step")}


class IdentifiabilityWarning(UserWarning):
    """A fit rests on too few distinct settings to identify its parameters well."""


def r2_log(y_true, y_pred) -> float:
    """Coefficient of determination of ``log y_pred`` against ``log y_true``."""
    t = np.log(np.asarray(y_true, dtype=float))
    p = np.log(np.asarray(y_pred, dtype=float))
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else float("-inf")
    return 1.0 - ss_res / ss_tot


def _robust_scale(r: np.ndarray) -> float:
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    if mad > 0:
        return mad
    sd = float(np.std(r))
    return sd if sd > 0 else 1e-12


def _overhead_terms(value) -> tuple[str, ...]:
    try:
        return OVERHEADS[value]
    except (KeyError, TypeError):
        raise ValueError(f"`overhead` must be one of None, 'call', 'step', 'call+step' (or a bool), got {value!r}") \
            from None


class _LogLaw(RegressorMixin, BaseEstimator):
    """Shared machinery: validation, the log-space model, fitting, prediction.

    Subclasses define the column layout (:meth:`_layout`), the overhead terms
    (:meth:`_overhead_terms`), the hardware mode and the priors.
    """

    # -- configuration hooks ---------------------------------------------------------------
    def _overhead_terms(self) -> tuple[str, ...]:
        return ()

    def _layout(self, n_features: int) -> tuple[int | None, list[int]]:
        """(steps column or None, hardware columns)."""
        return None, []

    def _fit_hardware_mode(self):
        return False

    def _priors(self, k: int) -> np.ndarray:
        return np.zeros(k)

    # -- sklearn plumbing ------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.target_tags.positive_only = True
        tags.regressor_tags.poor_score = True
        return tags

    def _validate(self, X, y="no_validation", reset=True):
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, reset=reset, dtype=np.float64)
            y = None
        else:
            X, y = validate_data(self, X, y, reset=reset, dtype=np.float64, y_numeric=True)
        if np.any(X < 0):
            raise ValueError(
                f"Negative values in data passed to {type(self).__name__}: FLOP counts, steps and hardware "
                "figures must be >= 0"
            )
        if y is not None:
            bad = ~(np.isfinite(y) & (y > 0))
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"{type(self).__name__}: the target must be positive and finite (energy or time), "
                    f"row {i} has {y[i]!r}"
                )
        return X, y

    def _logs(self, X: np.ndarray) -> np.ndarray:
        return np.log(np.where(X > 0, X, self.floor_))

    def _model_kwargs(self) -> dict:
        return {
            "flop_center": self.log_flop_center_,
            "overhead": self.overhead_,
            "steps_column": self.steps_column_,
            "fitted": self.fitted_hardware_,
            "fitted_center": [self.column_center_[j] for j in self.fitted_hardware_],
            "fixed": self.fixed_hardware_,
            "fixed_exponents": [self.exponent_of_[j] for j in self.fixed_hardware_],
            "overhead_scale": self._overhead_scale(),
        }

    def _overhead_scale(self) -> str:
        return "hardware"

    def _log_model(self, theta, Z, grad=False):
        return log_model(theta, Z, grad=grad, **self._model_kwargs())

    def _hardware_offset(self, Z):
        off = np.zeros(Z.shape[0])
        for j in self.fixed_hardware_:
            off = off + self.exponent_of_[j] * Z[:, j]
        return off

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the law in log space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Column 0: FLOP per call; the steps and hardware columns per the module doc.
        y : array-like of shape (n_samples,)
            Positive energy (J) or time (s) per call.

        Returns
        -------
        self
        """
        X, y = self._validate(X, y)
        self._check_config()
        n_features = X.shape[1]
        overhead = tuple(self._overhead_terms())
        steps_column, hw_cols = self._layout(n_features)
        if "step" in overhead and steps_column is None:
            raise ValueError(f"{type(self).__name__}: overhead {'+'.join(overhead)!r} needs `steps_column`")
        self.overhead_ = overhead
        self.steps_column_ = steps_column if "step" in overhead else None
        self.hardware_columns_ = list(hw_cols)
        used = [0] + ([steps_column] if "step" in overhead else []) + list(hw_cols)
        floor = np.ones(n_features)
        for j in range(n_features):
            pos = X[:, j][X[:, j] > 0]
            if pos.size:
                floor[j] = pos.min()
        self.floor_ = floor
        Z = self._logs(X)
        t = np.log(y)
        n_settings = int(np.unique(Z[:, used], axis=0).shape[0])
        self.n_settings_ = n_settings
        if n_settings < 2:
            raise LawError(
                f"{type(self).__name__}: the fit rests on 1 distinct setting (n_samples={X.shape[0]}); "
                "a law needs at least 2 distinct FLOP counts to identify its exponent"
            )
        self.log_flop_center_ = float(Z[:, 0].mean())
        self.column_center_ = {j: float(Z[:, j].mean()) for j in hw_cols}
        priors = self._priors(len(hw_cols)).astype(float)
        self.exponent_of_ = {j: float(p) for j, p in zip(hw_cols, priors)}
        self.fitted_hardware_ = self._choose_fitted(Z, hw_cols)
        self.fixed_hardware_ = [j for j in hw_cols if j not in self.fitted_hardware_]
        n_params = 2 + len(self.fitted_hardware_) + len(overhead)
        self.n_params_ = n_params
        if n_settings < 2 * n_params:
            warnings.warn(
                f"{type(self).__name__}: {n_settings} distinct settings for {n_params} parameters; "
                f"at least {2 * n_params} are needed to identify them (expect wide intervals)",
                IdentifiabilityWarning, stacklevel=2,
            )
        theta = self._solve(Z, t)
        self.theta_ = theta
        resid = t - self._log_model(theta, Z)
        self.resid_log_ = resid
        self.dof_ = int(max(X.shape[0] - n_params, 1))
        self.sigma2_ = float(resid @ resid / self.dof_)
        _, J = self._log_model(theta, Z, grad=True)
        self.cov_ = self._covariance(J)
        self.smearing_ = float(np.mean(np.exp(resid))) if self.smearing else 1.0
        for k, j in enumerate(self.fitted_hardware_):
            self.exponent_of_[j] = float(theta[2 + k])
        self.hardware_exponents_ = np.array([self.exponent_of_[j] for j in hw_cols])
        return self

    def _check_config(self):
        if not isinstance(self.robust, (bool, np.bool_)):
            raise ValueError(f"`robust` must be True or False, got {self.robust!r}")
        if not (isinstance(self.epsilon, (int, float)) and self.epsilon >= 1.0):
            raise ValueError(f"`epsilon` must be a number >= 1.0 (Huber threshold), got {self.epsilon!r}")

    def _choose_fitted(self, Z, hw_cols) -> list[int]:
        mode = self._fit_hardware_mode()
        if mode is False or not hw_cols:
            return []
        if mode is True:
            D = np.column_stack([np.ones(Z.shape[0]), Z[:, [0, *hw_cols]] - Z[:, [0, *hw_cols]].mean(axis=0)])
            if np.linalg.matrix_rank(D) < D.shape[1]:
                raise LawError(
                    f"{type(self).__name__}(fit_hardware=True): the training data cannot identify every hardware "
                    f"exponent ({len(hw_cols)} hardware columns, design rank {np.linalg.matrix_rank(D)} < "
                    f"{D.shape[1]}); use fit_hardware='auto' or False"
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

    def _linear_design(self, Z):
        cols = [np.ones(Z.shape[0]), Z[:, 0] - self.log_flop_center_]
        cols += [Z[:, j] - self.column_center_[j] for j in self.fitted_hardware_]
        return np.column_stack(cols)

    def _solve(self, Z, t):
        off = self._hardware_offset(Z)
        D = self._linear_design(Z)
        beta = np.linalg.lstsq(D, t - off, rcond=None)[0]
        if not self.overhead_:
            return self._robust_refine(beta, Z, t) if self.robust else beta
        return self._solve_overhead(beta, Z, t, D, off)

    def _starts(self, beta, Z, t, D, off):
        """Starting points: no overhead, and the overhead at 10-90 % of the smallest energy."""
        scaled = self._overhead_scale() != "none"
        r = t - off if scaled else t  # the overheads live in the units of r
        terms = self.overhead_
        n_steps = np.exp(Z[:, self.steps_column_]) if "step" in terms else None
        tiny = float(np.min(r)) - 12.0
        starts = [np.r_[beta, [tiny] * len(terms)]]
        for frac in (0.1, 0.3, 0.6, 0.9):
            share = frac / len(terms)
            over = np.zeros_like(r)
            extra = []
            if "call" in terms:
                e0 = share * float(np.exp(np.min(r)))
                over += e0
                extra.append(np.log(e0))
            if "step" in terms:
                s = share * float(np.min(np.exp(r) / n_steps))
                over += s * n_steps
                extra.append(np.log(s))
            target = np.log(np.maximum(np.exp(r) - over, 1e-300)) - (0.0 if scaled else off)
            b0 = np.linalg.lstsq(D, target, rcond=None)[0]
            starts.append(np.r_[b0, extra])
        return starts

    def _solve_overhead(self, beta, Z, t, D, off):
        from scipy.optimize import least_squares

        r = t - off if self._overhead_scale() != "none" else t
        n = len(beta) + len(self.overhead_)
        lower = np.full(n, -np.inf)
        upper = np.full(n, np.inf)
        lower[len(beta):] = float(np.min(r)) - 30.0 - (np.max(Z[:, self.steps_column_]) if self.steps_column_ else 0.0)
        upper[len(beta):] = float(np.max(r)) + 1.0

        def fun(theta):
            return self._log_model(theta, Z) - t

        def jac(theta):
            return self._log_model(theta, Z, grad=True)[1]

        best = None
        starts = self._starts(beta, Z, t, D, off)
        for x0 in starts:
            x0 = np.clip(x0, lower + 1e-9, upper - 1e-9)
            res = least_squares(fun, x0, jac=jac, bounds=(lower, upper), method="trf", x_scale="jac",
                                xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=200)
            if self.robust:
                res = self._robust_nls(res.x, fun, jac, lower, upper)
            if best is None or res.cost < best.cost - 1e-12:
                best = res
        self.n_starts_ = len(starts)
        return best.x

    def _robust_nls(self, x0, fun, jac, lower, upper):
        from scipy.optimize import least_squares

        res = None
        x = x0
        for _ in range(3):
            scale = _robust_scale(fun(x))
            res = least_squares(fun, x, jac=jac, bounds=(lower, upper), method="trf", loss="huber",
                                f_scale=self.epsilon * scale, x_scale="jac", max_nfev=2000)
            x = res.x
        return res

    def _robust_refine(self, beta, Z, t):
        def fun(theta):
            return self._log_model(theta, Z) - t

        def jac(theta):
            return self._log_model(theta, Z, grad=True)[1]

        return self._robust_nls(beta, fun, jac, np.full(len(beta), -np.inf), np.full(len(beta), np.inf)).x

    def _covariance(self, J):
        """sigma^2 (J'J)^-1: the OLS covariance for the linear forms, the asymptotic NLS one otherwise."""
        JtJ = J.T @ J
        try:
            inv = np.linalg.inv(JtJ)
            if not np.all(np.isfinite(inv)):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            inv = np.linalg.pinv(JtJ)
        return self.sigma2_ * inv

    # -- prediction -------------------------------------------------------------------------
    def predict_log(self, X):
        """Median prediction in log space, ``log E``; array of shape (n_samples,)."""
        check_is_fitted(self, "theta_")
        X, _ = self._validate(X, reset=False)
        return self._log_model(self.theta_, self._logs(X))

    def predict_median(self, X):
        """Median prediction in linear space (no smearing); array of shape (n_samples,)."""
        return np.exp(self.predict_log(X))

    def predict(self, X):
        """Mean prediction in linear space: ``exp(log-space fit) * smearing_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return np.exp(self.predict_log(X)) * self.smearing_

    def score(self, X, y, sample_weight=None):
        """R^2 in log space (the validation metric), not sklearn's linear-space R^2."""
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__}.score takes no sample_weight")
        return r2_log(y, self.predict(X))

    # -- reading the fit --------------------------------------------------------------------
    @property
    def param_names_(self) -> list[str]:
        check_is_fitted(self, "theta_")
        names = ["alpha", "b"] + [f"w{j}" for j in self.fitted_hardware_]
        return names + ["log_e0" if t == "call" else "log_s" for t in self.overhead_]

    @property
    def log_a_(self) -> float:
        """log a of ``E = a * C^b`` on raw FLOP (fitted hardware terms stay centered)."""
        check_is_fitted(self, "theta_")
        return float(self.theta_[0] - self.theta_[1] * self.log_flop_center_)

    @property
    def b_(self) -> float:
        check_is_fitted(self, "theta_")
        return float(self.theta_[1])

    def _overhead_value(self, term: str) -> float:
        check_is_fitted(self, "theta_")
        if term not in self.overhead_:
            return 0.0
        i = 2 + len(self.fitted_hardware_) + self.overhead_.index(term)
        return float(np.exp(self.theta_[i]))

    @property
    def e0_(self) -> float:
        """Fixed overhead per call E0 (unit of y, times H for HardwareLaw); 0.0 without one."""
        return self._overhead_value("call")

    @property
    def s_(self) -> float:
        """Overhead per denoising step s (unit of y per step, times H for HardwareLaw); 0.0 without one."""
        return self._overhead_value("step")

    def law_state(self) -> dict:
        """Everything needed to evaluate the fit with numpy only (:func:`log_model`)."""
        check_is_fitted(self, "theta_")
        return {
            "form": type(self).__name__,
            "params": {k: (list(v) if isinstance(v, (tuple, np.ndarray)) else v) for k, v in self.get_params().items()},
            "n_features": int(self.n_features_in_),
            "theta": [float(v) for v in self.theta_],
            "param_names": self.param_names_,
            "flop_center": self.log_flop_center_,
            "overhead": list(self.overhead_),
            "steps_column": self.steps_column_,
            "hardware_columns": [int(j) for j in self.hardware_columns_],
            "fitted": [int(j) for j in self.fitted_hardware_],
            "fitted_center": [self.column_center_[j] for j in self.fitted_hardware_],
            "fixed": [int(j) for j in self.fixed_hardware_],
            "fixed_exponents": [self.exponent_of_[j] for j in self.fixed_hardware_],
            "hardware_exponents": [float(v) for v in self.hardware_exponents_],
            "floor": [float(v) for v in self.floor_],
            "cov": [[float(v) for v in row] for row in self.cov_],
            "sigma2": self.sigma2_,
            "dof": self.dof_,
            "smearing": self.smearing_,
            "n_settings": self.n_settings_,
            "n_samples": int(len(self.resid_log_)),
            "a": float(np.exp(self.log_a_)),
            "b": self.b_,
            "e0": self.e0_,
            "s": self.s_,
            "overhead_scale": self._overhead_scale(),
        }


class PowerLaw(_LogLaw):
    """``E = a * C^b``, fitted by least squares on ``(log C, log E)``.

    Reads column 0 of ``X`` only.

    Parameters
    ----------
    robust : bool, default=False
        Huber loss instead of squared loss (outlying runs weigh less).
    epsilon : float, default=1.35
        Huber threshold in units of the robust residual scale (MAD).
    smearing : bool, default=True
        Multiply linear-space predictions by Duan's smearing factor.

    Attributes
    ----------
    theta_ : ndarray of shape (2,)
        ``[alpha, b]`` with ``log E = alpha + b * (log C - log_flop_center_)``.
    b_ : float
        The exponent.
    log_a_ : float
        ``log a`` on raw FLOP.
    smearing_ : float
        Retransformation factor applied by :meth:`predict`.
    cov_ : ndarray of shape (2, 2)
        Covariance of ``theta_`` (OLS: ``sigma^2 (D'D)^-1``).
    sigma2_ : float
        Residual variance in log space.
    n_settings_ : int
        Distinct settings (distinct FLOP counts) seen by ``fit``.
    """

    def __init__(self, robust=False, epsilon=1.35, smearing=True):
        self.robust = robust
        self.epsilon = epsilon
        self.smearing = smearing


class PowerLawOverhead(_LogLaw):
    """``E = a * C^b + E0`` (and/or ``+ s * N``): a power law plus fixed overheads.

    Few-step and small models spend a share of each call on work that does not scale with the
    FLOP count; ``E0`` absorbs a fixed cost per call, ``s * N`` a fixed cost per denoising
    step (``overhead="step"``, read from ``X[:, steps_column]``). Fitted by nonlinear least
    squares on ``log E`` from several starting points (no overhead, and the overhead at 10,
    30, 60 and 90 % of the smallest energy); the best is kept.

    Parameters
    ----------
    overhead : {"call", "step", "call+step"}, default="call"
    steps_column : int or None, default=None
        Column of ``X`` with the denoising steps (needed for a ``step`` overhead; 1 in
        :data:`fits.features.DESIGN_COLUMNS`).
    robust : bool, default=False
        Huber loss instead of squared loss.
    epsilon : float, default=1.35
        Huber threshold in units of the robust residual scale (MAD).
    smearing : bool, default=True
        Multiply linear-space predictions by Duan's smearing factor.

    Attributes
    ----------
    theta_ : ndarray
        ``[alpha, b, log E0 and/or log s]``.
    e0_, s_ : float
        The fitted overheads (0.0 when absent).
    cov_ : ndarray
        Asymptotic covariance ``sigma^2 (J'J)^-1`` at the optimum.
    n_starts_ : int
        Starting points tried.
    """

    def __init__(self, overhead="call", steps_column=None, robust=False, epsilon=1.35, smearing=True):
        self.overhead = overhead
        self.steps_column = steps_column
        self.robust = robust
        self.epsilon = epsilon
        self.smearing = smearing

    def _overhead_terms(self):
        terms = _overhead_terms(self.overhead)
        if not terms:
            raise ValueError("PowerLawOverhead needs an overhead: 'call', 'step' or 'call+step' (use PowerLaw)")
        return terms

    def _layout(self, n_features):
        return _steps_column(self, n_features), []


def _steps_column(law, n_features):
    sc = law.steps_column
    if sc is None:
        return None
    if isinstance(sc, bool) or not isinstance(sc, (int, np.integer)) or not 1 <= sc < n_features:
        raise ValueError(
            f"`steps_column` {sc!r} is not a column of X: X has {n_features} feature(s) and column 0 is the FLOP count"
        )
    return int(sc)


class HardwareLaw(_LogLaw):
    """``E = H(hw) * (a * C^b [+ E0] [+ s * N])`` with ``log H = sum_j w_j log hw_j``.

    One law for many GPUs and precisions. Every column of ``X`` after the first, except
    ``steps_column``, is a hardware figure of the run's GPU at its precision (see
    :func:`fits.features.design_matrix`); its exponent ``w_j`` is fitted or held at its prior.

    Parameters
    ----------
    prior_exponents : sequence of float or None, default=None
        Prior exponent per hardware column, in column order; ``None`` means 0 for all (no
        hardware effect unless fitted). :func:`fits.features.prior_exponents` gives the
        physical ones.
    fit_hardware : {"auto", True, False}, default="auto"
        ``"auto"``: fit ``w_j`` for the columns that vary in the training data and add rank to
        the design (in column order), keep the prior for the others. ``True``: fit all (the
        design must identify them). ``False``: keep every prior (hardware enters as an offset).
    overhead : {None, "call", "step", "call+step"} or bool, default=None
        Overhead terms (``True`` means ``"call"``), scaled by ``H`` like the rest of the call
        unless ``overhead_scale="none"``.
    steps_column : int or None, default=None
        Column of ``X`` with the denoising steps; never a hardware column.
    robust : bool, default=False
        Huber loss instead of squared loss.
    epsilon : float, default=1.35
        Huber threshold in units of the robust residual scale (MAD).
    smearing : bool, default=True
        Multiply linear-space predictions by Duan's smearing factor.
    overhead_scale : {"hardware", "none"}, default="hardware"
        ``"hardware"``: ``E = H * (a C^b + E0 + s N)``. ``"none"``: ``E = H * a C^b + E0 + s N``:
        the overheads (launch-bound time per step or per call) cost the same energy on every GPU
        and precision, so they do not grow with ``H`` (at fp32, ``H`` is about 3x its fp16
        value, while the launch overhead of a step does not change).

    Attributes
    ----------
    hardware_columns_ : list of int
        The hardware columns of ``X``.
    hardware_exponents_ : ndarray of shape (len(hardware_columns_),)
        Exponent per hardware column after the fit (fitted or prior).
    fitted_hardware_ : list of int
        Columns whose exponent was fitted.
    """

    def __init__(self, prior_exponents=None, fit_hardware="auto", overhead=None, steps_column=None, robust=False,
                 epsilon=1.35, smearing=True, overhead_scale="hardware"):
        self.prior_exponents = prior_exponents
        self.fit_hardware = fit_hardware
        self.overhead = overhead
        self.steps_column = steps_column
        self.robust = robust
        self.epsilon = epsilon
        self.smearing = smearing
        self.overhead_scale = overhead_scale

    def _check_config(self):
        super()._check_config()
        if not (isinstance(self.fit_hardware, (bool, np.bool_)) or self.fit_hardware == "auto"):
            raise ValueError(f"`fit_hardware` must be 'auto', True or False, got {self.fit_hardware!r}")
        if self.overhead_scale not in ("hardware", "none"):
            raise ValueError(f"`overhead_scale` must be 'hardware' or 'none', got {self.overhead_scale!r}")

    def _overhead_scale(self) -> str:
        return self.overhead_scale

    def _overhead_terms(self):
        return _overhead_terms(self.overhead)

    def _layout(self, n_features):
        sc = _steps_column(self, n_features)
        return sc, [j for j in range(1, n_features) if j != sc]

    def _fit_hardware_mode(self):
        return "auto" if isinstance(self.fit_hardware, str) else bool(self.fit_hardware)

    def _priors(self, k):
        if self.prior_exponents is None:
            return np.zeros(k)
        p = np.asarray(self.prior_exponents, dtype=float).ravel()
        if p.size != k:
            raise ValueError(
                f"`prior_exponents` has {p.size} values but X has {k} hardware column(s) "
                f"(n_features={self.n_features_in_}, steps_column={self.steps_column!r})"
            )
        return p
