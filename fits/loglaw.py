"""The base of the law forms of :mod:`fits.laws`: validation, the log-space fit, prediction, reading the fit.

:class:`LogLaw` is a scikit-learn regressor; a form defines its column layout (``_layout``),
its overhead terms (``_overhead_terms``), its hardware mode and priors. The model itself is
:func:`fits.law.log_model`; a fitted law gives its state with :meth:`LogLaw.to_state` (a
:class:`fits.law.LawState`: what the law file stores and the intervals use).

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

import contextlib
import warnings
from typing import Iterator

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from fits import solvers
from fits.law import LawState, hardware_offset, linear_design, log_model, t_quantile
from scaling.errors import DataError, LawError

__all__ = ["IdentifiabilityWarning", "LogLaw", "identifiability_notes", "r2_log"]


class IdentifiabilityWarning(UserWarning):
    """A fit rests on too few distinct settings to identify its parameters well."""


@contextlib.contextmanager
def identifiability_notes(prefix: str = "") -> Iterator[list[str]]:
    """Collect the :class:`IdentifiabilityWarning` raised in the block as note lines (each text once,
    ``prefix`` before it), for a command to print as ``note:`` lines instead of Python's warning output
    with its source lines. The list is filled when the block ends; any other warning is shown as
    Python shows it. The filter is the block's only (``warnings.catch_warnings``), never global."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IdentifiabilityWarning)  # each fit's, not once per source line
        yield notes
    for w in caught:
        if issubclass(w.category, IdentifiabilityWarning):
            text = f"{prefix}{w.message}"
            if text not in notes:
                notes.append(text)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def r2_log(y_true, y_pred) -> float:
    """Coefficient of determination of ``log y_pred`` against ``log y_true``."""
    t = np.log(np.asarray(y_true, dtype=float))
    p = np.log(np.asarray(y_pred, dtype=float))
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else float("-inf")
    return 1.0 - ss_res / ss_tot


def column_floor(X: np.ndarray) -> np.ndarray:
    """Per column, the smallest positive value (1 where there is none): what replaces a zero before the log."""
    floor = np.ones(X.shape[1])
    for j in range(X.shape[1]):
        pos = X[:, j][X[:, j] > 0]
        if pos.size:
            floor[j] = pos.min()
    return floor


class LogLaw(RegressorMixin, BaseEstimator):
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
                    f"row {i} (of the array, counted from 0) has {float(y[i])!r}"
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
        return hardware_offset(Z, self.fixed_hardware_, [self.exponent_of_[j] for j in self.fixed_hardware_])

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
        self.floor_ = column_floor(X)
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
        self.fitted_hardware_ = solvers.choose_fitted(Z, hw_cols, self._fit_hardware_mode(), type(self).__name__)
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
        self.cov_ = solvers.covariance(J, self.sigma2_)
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

    def _linear_design(self, Z):
        return linear_design(Z, self.log_flop_center_, self.fitted_hardware_,
                             [self.column_center_[j] for j in self.fitted_hardware_])

    def _solve(self, Z, t):
        off = self._hardware_offset(Z)
        D = self._linear_design(Z)
        beta = np.linalg.lstsq(D, t - off, rcond=None)[0]
        if not self.overhead_:
            return self._robust_refine(beta, Z, t) if self.robust else beta
        return self._solve_overhead(beta, Z, t, D, off)

    def _fun_jac(self, Z, t):
        def fun(theta):
            return self._log_model(theta, Z) - t

        def jac(theta):
            return self._log_model(theta, Z, grad=True)[1]

        return fun, jac

    def _solve_overhead(self, beta, Z, t, D, off):
        scaled = self._overhead_scale() != "none"
        r = t - off if scaled else t
        n = len(beta) + len(self.overhead_)
        lower = np.full(n, -np.inf)
        upper = np.full(n, np.inf)
        lower[len(beta):] = float(np.min(r)) - 30.0 - (np.max(Z[:, self.steps_column_]) if self.steps_column_ else 0.0)
        upper[len(beta):] = float(np.max(r)) + 1.0
        starts = solvers.overhead_starts(beta, Z, t, D, off, self.overhead_, self.steps_column_, scaled)
        self.n_starts_ = len(starts)
        fun, jac = self._fun_jac(Z, t)
        return solvers.solve_nls(fun, jac, starts, lower, upper, bool(self.robust), float(self.epsilon))

    def _robust_refine(self, beta, Z, t):
        fun, jac = self._fun_jac(Z, t)
        return solvers.robust_nls(beta, fun, jac, np.full(len(beta), -np.inf), np.full(len(beta), np.inf),
                                  float(self.epsilon)).x

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

    def to_state(self, level: float = 0.9) -> LawState:
        """The fitted law as a :class:`fits.law.LawState` (what the law file stores and the intervals use).

        ``level`` is the interval level whose Student-t quantile the state carries.
        """
        check_is_fitted(self, "theta_")
        theta = np.array(self.theta_, dtype=float)
        cov = np.array(self.cov_, dtype=float)
        floor = np.array(self.floor_, dtype=float)
        for a in (theta, cov, floor):
            a.setflags(write=False)
        return LawState(
            theta=theta, cov=cov, sigma2=float(self.sigma2_), dof=int(self.dof_), smearing=float(self.smearing_),
            flop_center=float(self.log_flop_center_), overhead=tuple(self.overhead_),
            steps_column=self.steps_column_, fitted=tuple(int(j) for j in self.fitted_hardware_),
            fitted_center=tuple(float(self.column_center_[j]) for j in self.fitted_hardware_),
            fixed=tuple(int(j) for j in self.fixed_hardware_),
            fixed_exponents=tuple(float(self.exponent_of_[j]) for j in self.fixed_hardware_),
            floor=floor, n_features=int(self.n_features_in_), overhead_scale=self._overhead_scale(),
            t_quantile=t_quantile(level, self.dof_), level=float(level), form=type(self).__name__,
            params={k: (list(v) if isinstance(v, (tuple, np.ndarray)) else v) for k, v in self.get_params().items()},
            param_names=tuple(self.param_names_), hardware_columns=tuple(int(j) for j in self.hardware_columns_),
            hardware_exponents=tuple(float(v) for v in self.hardware_exponents_),
            n_settings=int(self.n_settings_), n_samples=int(len(self.resid_log_)), **self._state_family(),
        )

    def _state_family(self) -> dict:
        """The family fields of the state (:attr:`fits.law.LawState.family` and its layout): none here."""
        return {}
