"""The state of a fitted law: one type, one set of formulas, one interval.

One fitted target (the energy or the time of a call) is a :class:`LawState`: the parameters
``theta``, their covariance, the residual variance and degrees of freedom, Duan's smearing
factor, the Student-t quantile of the stored interval and the column layout. The estimators of
:mod:`fits.laws` produce it (``estimator.to_state()``), a law file stores it
(:meth:`LawState.to_dict` / :meth:`LawState.from_dict`, one target of a ``scaling.law/1`` file;
:mod:`fits.law_file` reads the whole file), and :func:`predict_interval` is the one place a
prediction and its interval are computed, for a fitted estimator
(:func:`fits.uncertainty.prediction_interval`) and for a law file alike. numpy only (scipy only
for an interval level other than the stored one).

The columns of ``X`` (:data:`DESIGN_COLUMNS`) are the contract between the laws, the runs
table's design matrix (:func:`fits.features.design_matrix`) and the law file::

    x = [C, N, peak FLOP/s(precision), bandwidth, TDP, byte per value, Q (bytes moved)]
    log E = log_model(theta, log x)                            median in log space
            (roofline_log_model for the roofline family)
    E     = exp(log E) * smearing                              mean (Duan's smearing)
    [lo, hi] = exp(log E -+ t_q * sqrt(g' Cov g + sigma^2))    interval of a new measurement
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from scaling.errors import LawError

__all__ = ["BYTE_COLUMN", "DESIGN_COLUMNS", "FLOP_ONLY_COLUMNS", "HARDWARE_FEATURES", "STEPS_COLUMN", "LawState",
           "hardware_offset", "hardware_row", "linear_design", "log_model", "predict_interval", "roofline_log_model",
           "roofline_terms", "t_quantile"]

#: Hardware columns of the design matrix, in order (columns 2..5 after ``flop`` and ``steps``).
HARDWARE_FEATURES: tuple[str, ...] = ("peak_flop_per_s", "memory_bandwidth_byte_per_s", "tdp_w", "byte_per_value")

#: Every column of the design matrix, in order: the FLOP, the steps, the hardware figures and the
#: bytes moved by the call (read + written, whole batch, at the run's precision).
DESIGN_COLUMNS: tuple[str, ...] = ("flop", "steps", *HARDWARE_FEATURES, "byte")

#: The column of the design matrix that holds the bytes moved (read by the roofline forms only).
BYTE_COLUMN = 6

#: The columns of a law file written before bytes entered the design (FLOP-only forms).
FLOP_ONLY_COLUMNS: tuple[str, ...] = DESIGN_COLUMNS[:BYTE_COLUMN]

#: Law families: ``power`` (a power law in FLOPs times a hardware term, :mod:`fits.laws`) and
#: ``roofline`` (a compute term in FLOPs and a memory term in bytes, :mod:`fits.roofline`).
FAMILIES = ("power", "roofline")

#: Sharpness of the smooth maximum of the ``max`` roofline: ``max_k(a, b) = (a^k + b^k)^(1/k)``
#: (at a = b it is 2^(1/8) = 1.09 times the hard maximum; far from it, the larger term).
ROOFLINE_SHARPNESS = 8.0
COMBINES = ("sum", "max")

#: The column of the design matrix that holds the denoising steps (``steps_column`` of the laws).
STEPS_COLUMN = 1

OVERHEAD_TERMS = ("call", "step")
OVERHEAD_SCALES = ("hardware", "none")


def hardware_row(gpu, plan) -> np.ndarray:
    """The :data:`HARDWARE_FEATURES` of a resolved GPU (``GPUSpec``) under a precision plan, shape (4,).

    ``plan`` is :func:`scaling.precision.precision_plan` of the precision on that GPU: the peak
    the matmuls run at and the bytes per activation value; the bandwidth and TDP are the GPU's.
    """
    return np.asarray((float(plan.peak_flop_per_s), float(gpu.memory_bandwidth_byte_per_s), float(gpu.tdp_w),
                       float(plan.activation_byte)), dtype=float)


# ---------------------------------------------------------------------------------- the maths


def t_quantile(level: float, dof: int) -> float:
    """Two-sided Student-t quantile for a central ``level`` interval on ``dof`` degrees of freedom."""
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"`level` {level!r} must be between 0 and 1 (e.g. 0.9)")
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, max(int(dof), 1)))


def log_model(theta, Z, *, flop_center, overhead, steps_column, fitted, fitted_center, fixed, fixed_exponents,
              grad=False, overhead_scale="hardware"):
    """``log E`` of the law family for log-features ``Z`` (and, with ``grad``, its Jacobian).

    ``theta = [alpha, b, w_fitted..., log_e0 (call), log_s (step)]``::

        hw    = sum_fixed p_j z_j + sum_fitted w_j (z_j - center_j)
        log E = logsumexp(alpha + b (z_0 - flop_center), log_e0, log_s + z_N) + hw
                                                        (overhead_scale="hardware": H scales the overheads)
        log E = logsumexp(alpha + b (z_0 - flop_center) + hw, log_e0, log_s + z_N)
                                                        (overhead_scale="none": they cost the same on every
                                                         GPU and precision)

    Returns ``log E`` of shape (n,), and with ``grad`` the Jacobian over ``theta``, shape
    (n, len(theta)).
    """
    theta = np.asarray(theta, dtype=float)
    nf = len(fitted)
    scaled = overhead_scale != "none"
    hw = np.zeros(Z.shape[0])
    for j, p in zip(fixed, fixed_exponents):
        hw = hw + p * Z[:, j]
    for k, (j, c) in enumerate(zip(fitted, fitted_center)):
        hw = hw + theta[2 + k] * (Z[:, j] - c)
    u = theta[0] + theta[1] * (Z[:, 0] - flop_center)
    if not scaled:
        u = u + hw
    terms = [u]
    i = 2 + nf
    if "call" in overhead:
        terms.append(np.full_like(u, theta[i]))
        i += 1
    if "step" in overhead:
        terms.append(theta[i] + Z[:, steps_column])
    if len(terms) > 1:
        T = np.vstack(terms)
        top = T.max(axis=0)
        log_core = top + np.log(np.exp(T - top).sum(axis=0))
    else:
        T = None
        log_core = u
    out = log_core + hw if scaled else log_core
    if not grad:
        return out
    J = np.empty((Z.shape[0], len(theta)))
    shares = np.exp(T - log_core) if T is not None else np.ones((1, Z.shape[0]))
    J[:, 0] = shares[0]
    J[:, 1] = shares[0] * (Z[:, 0] - flop_center)
    for k, (j, c) in enumerate(zip(fitted, fitted_center)):
        J[:, 2 + k] = (Z[:, j] - c) * (1.0 if scaled else shares[0])
    for t in range(1, shares.shape[0]):
        J[:, 1 + nf + t] = shares[t]
    return out, J


def roofline_log_model(theta, Z, *, flop_center, byte_center, fitted_center, steps_column, combine, grad=False,
                       overhead=("step",)):
    """``log E`` (or ``log T``) of the roofline family for log-features ``Z`` (and its Jacobian).

    ``theta = [alpha_c, b, alpha_m, w_peak, w_bw, w_tdp, log_s(, log_e0)]``; ``fitted_center`` are the centres
    of the peak, bandwidth and TDP columns (2, 3, 4); byte per value (column 5) is not read: the
    bytes (column 6) are counted at the run's precision already::

        u_c  = alpha_c + b (z_C - c_C) + w_peak (z_peak - c) + w_tdp (z_tdp - c)     compute: C^b / peak
        u_m  = alpha_m + (z_Q - c_Q)   + w_bw   (z_bw - c)   + w_tdp (z_tdp - c)     memory:  Q / bandwidth
        core = log(e^u_c + e^u_m)                       (combine="sum": the two times add)
        core = log(e^(k u_c) + e^(k u_m)) / k           (combine="max": a smooth roofline maximum, k = 8)
        log E = log(e^core + e^(log_s + z_N))           (a launch-bound cost per step, not scaled by hardware)
        log E = log(e^(log E) + e^log_e0)               (overhead ("step", "call"): and a fixed cost per call)
    """
    theta = np.asarray(theta, dtype=float)
    k = ROOFLINE_SHARPNESS if combine == "max" else 1.0
    cp, cb, ct = fitted_center
    zt = Z[:, 4] - ct
    u_c, u_m = roofline_terms(theta, Z, flop_center=flop_center, byte_center=byte_center, fitted_center=fitted_center)
    top = np.maximum(u_c, u_m)
    ec, em = np.exp(k * (u_c - top)), np.exp(k * (u_m - top))
    core = top + np.log(ec + em) / k
    s_c = ec / (ec + em)
    u_s = theta[6] + Z[:, steps_column]
    top2 = np.maximum(core, u_s)
    e1, e2 = np.exp(core - top2), np.exp(u_s - top2)
    out = top2 + np.log(e1 + e2)
    call = "call" in overhead
    if call:
        top3 = np.maximum(out, theta[7])
        f1, f2 = np.exp(out - top3), np.exp(theta[7] - top3)
        out = top3 + np.log(f1 + f2)
    if not grad:
        return out
    rho = f1 / (f1 + f2) if call else 1.0  # d out / d (the step-level log)
    tau = e1 / (e1 + e2)
    a, m = rho * tau * s_c, rho * tau * (1.0 - s_c)
    cols = [a, a * (Z[:, 0] - flop_center), m, a * (Z[:, 2] - cp), m * (Z[:, 3] - cb), rho * tau * zt,
            rho * (1.0 - tau)]
    if call:
        cols.append(1.0 - rho)
    return out, np.column_stack([np.broadcast_to(c, Z.shape[:1]) for c in cols])


def roofline_terms(theta, Z, *, flop_center, byte_center, fitted_center):
    """``(u_c, u_m)``: the log compute term and the log memory term of the roofline family (module doc
    of :func:`roofline_log_model`), per row."""
    theta = np.asarray(theta, dtype=float)
    cp, cb, ct = fitted_center
    zt = theta[5] * (Z[:, 4] - ct)
    u_c = theta[0] + theta[1] * (Z[:, 0] - flop_center) + theta[3] * (Z[:, 2] - cp) + zt
    u_m = theta[2] + (Z[:, 6] - byte_center) + theta[4] * (Z[:, 3] - cb) + zt
    return u_c, u_m


def hardware_offset(Z, fixed, fixed_exponents) -> np.ndarray:
    """``sum_j p_j z_j`` over the hardware columns held at their prior: an offset of the log-space fit."""
    off = np.zeros(Z.shape[0])
    for j, p in zip(fixed, fixed_exponents):
        off = off + p * Z[:, j]
    return off


def linear_design(Z, flop_center, fitted, fitted_center) -> np.ndarray:
    """The design of the linear forms: ``[1, z_0 - flop_center, z_j - center_j (fitted)]``."""
    cols = [np.ones(Z.shape[0]), Z[:, 0] - flop_center]
    cols += [Z[:, j] - c for j, c in zip(fitted, fitted_center)]
    return np.column_stack(cols)


# ---------------------------------------------------------------------------------- the state


@dataclass(frozen=True, eq=False)
class LawState:
    """One fitted target (energy or time): everything needed to evaluate it and its interval.

    ``theta``, ``cov`` (shape (p, p)), ``sigma2`` and ``dof`` are the log-space fit; ``smearing``
    multiplies the median into the mean; ``t_quantile`` is the Student-t quantile of the
    ``level`` interval (None: computed when needed). The layout: column 0 of ``X`` is the FLOP
    count centred at ``flop_center`` (log), ``steps_column`` holds the steps of a ``step``
    overhead, ``fitted`` hardware columns have fitted exponents (centred at ``fitted_center``),
    ``fixed`` ones are held at ``fixed_exponents``; ``floor`` replaces a zero before the log. The
    descriptive fields (``form`` ... ``n_samples``) travel with the law file and are not used to
    evaluate.
    """

    theta: np.ndarray
    cov: np.ndarray
    sigma2: float
    dof: int
    smearing: float
    flop_center: float
    overhead: tuple[str, ...]
    steps_column: int | None
    fitted: tuple[int, ...]
    fitted_center: tuple[float, ...]
    fixed: tuple[int, ...]
    fixed_exponents: tuple[float, ...]
    floor: np.ndarray
    n_features: int
    overhead_scale: str = "hardware"
    t_quantile: float | None = None
    level: float = 0.9
    form: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    param_names: tuple[str, ...] = ()
    hardware_columns: tuple[int, ...] = ()
    hardware_exponents: tuple[float, ...] = ()
    n_settings: int | None = None
    n_samples: int | None = None
    family: str = "power"
    combine: str = "sum"
    byte_center: float = 0.0

    @property
    def reads_bytes(self) -> bool:
        """Whether evaluating the state needs the bytes moved (column :data:`BYTE_COLUMN`)."""
        return self.family == "roofline"

    @property
    def n_leading(self) -> int:
        """Parameters of ``theta`` before the fitted hardware exponents (2 power, 3 roofline)."""
        return 3 if self.family == "roofline" else 2

    @property
    def layout(self) -> dict[str, Any]:
        """The keyword arguments of :func:`log_model` for this state."""
        return {"flop_center": self.flop_center, "overhead": self.overhead, "steps_column": self.steps_column,
                "fitted": self.fitted, "fitted_center": self.fitted_center, "fixed": self.fixed,
                "fixed_exponents": self.fixed_exponents, "overhead_scale": self.overhead_scale}

    @property
    def uses_steps(self) -> bool:
        return "step" in self.overhead

    def log_features(self, X) -> np.ndarray:
        """``log X``, a zero replaced by the column's floor."""
        return np.log(np.where(X > 0, X, self.floor))

    def log_model(self, Z, grad: bool = False):
        if self.family == "roofline":
            return roofline_log_model(self.theta, Z, flop_center=self.flop_center, byte_center=self.byte_center,
                                      fitted_center=self.fitted_center, steps_column=self.steps_column,
                                      combine=self.combine, grad=grad, overhead=self.overhead)
        return log_model(self.theta, Z, grad=grad, **self.layout)

    def hardware_offset(self, Z) -> np.ndarray:
        return hardware_offset(Z, self.fixed, self.fixed_exponents)

    def roofline_terms(self, X) -> tuple[np.ndarray, np.ndarray] | None:
        """The compute term and the memory term (the target's unit, before the per-step and per-call
        costs, no smearing) of each row of ``X``; None for the power family."""
        if self.family != "roofline":
            return None
        Z = self.log_features(np.atleast_2d(np.asarray(X, dtype=float)))
        u_c, u_m = roofline_terms(self.theta, Z, flop_center=self.flop_center, byte_center=self.byte_center,
                                  fitted_center=self.fitted_center)
        return np.exp(u_c), np.exp(u_m)

    def linear_design(self, Z) -> np.ndarray:
        return linear_design(Z, self.flop_center, self.fitted, self.fitted_center)

    def quantile(self, level: float | None = None) -> float:
        """The t quantile of a ``level`` interval (the stored one when ``level`` is the stored level)."""
        level = self.level if level is None else level
        if self.t_quantile is not None and abs(level - self.level) < 1e-12:
            return float(self.t_quantile)
        return t_quantile(level, self.dof)

    # -- the law file ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The stored form of the state (one target of a ``scaling.law/1`` file)."""
        theta = [float(v) for v in self.theta]
        i = self.n_leading + len(self.fitted)
        over = {t: float(np.exp(theta[i + k])) for k, t in enumerate(self.overhead)}
        return {
            "family": self.family,
            "combine": self.combine,
            "byte_center": float(self.byte_center),
            "form": self.form,
            "params": dict(self.params),
            "n_features": int(self.n_features),
            "theta": theta,
            "param_names": list(self.param_names),
            "flop_center": float(self.flop_center),
            "overhead": list(self.overhead),
            "steps_column": self.steps_column,
            "hardware_columns": [int(j) for j in self.hardware_columns],
            "fitted": [int(j) for j in self.fitted],
            "fitted_center": [float(c) for c in self.fitted_center],
            "fixed": [int(j) for j in self.fixed],
            "fixed_exponents": [float(p) for p in self.fixed_exponents],
            "hardware_exponents": [float(v) for v in self.hardware_exponents],
            "floor": [float(v) for v in self.floor],
            "cov": [[float(v) for v in row] for row in self.cov],
            "sigma2": float(self.sigma2),
            "dof": int(self.dof),
            "smearing": float(self.smearing),
            "n_settings": self.n_settings,
            "n_samples": self.n_samples,
            "a": float(np.exp(float(theta[0] - theta[1] * self.flop_center))),
            "b": theta[1],
            "e0": over.get("call", 0.0),
            "s": over.get("step", 0.0),
            "overhead_scale": self.overhead_scale,
            "t_quantile": self.t_quantile,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "law", level: float = 0.9) -> "LawState":
        """Read and check one stored target; any fault is one :class:`LawError` line naming ``where``."""
        if not isinstance(d, Mapping):
            raise LawError(f"{where}: not a JSON object")
        c = _Checker(d, where)
        n = c.integer("n_features", lo=1)
        if n not in (len(DESIGN_COLUMNS), len(FLOP_ONLY_COLUMNS)):
            raise LawError(f"{where}: n_features is {n}; rule: a law file is fitted on the {len(DESIGN_COLUMNS)} "
                           f"design columns ({', '.join(DESIGN_COLUMNS)}), or the first {len(FLOP_ONLY_COLUMNS)} "
                           "(a FLOP-only law file)")
        family = d.get("family", "power")
        if family not in FAMILIES:
            raise LawError(f"{where}: family {family!r}; rule: one of {', '.join(FAMILIES)}")
        combine = d.get("combine", "sum")
        if combine not in COMBINES:
            raise LawError(f"{where}: combine {combine!r}; rule: one of {', '.join(COMBINES)}")
        overhead = c.strings("overhead", OVERHEAD_TERMS)
        fitted = c.integers("fitted", 0, n)
        fixed = c.integers("fixed", 0, n)
        if family == "roofline" and (n != len(DESIGN_COLUMNS) or fitted != (2, 3, 4) or
                                     overhead not in (("step",), ("step", "call"))):
            raise LawError(f"{where}: a roofline law needs n_features {len(DESIGN_COLUMNS)}, fitted [2, 3, 4] and "
                           f"overhead ['step'] or ['step', 'call'] (got {n}, {list(fitted)}, {list(overhead)})")
        lead = 3 if family == "roofline" else 2
        theta = c.numbers("theta", size=lead + len(fitted) + len(overhead))
        p = theta.size
        cov = c.numbers("cov", size=p * p, nested=True).reshape(p, p)
        steps_column = d.get("steps_column")
        if "step" in overhead or steps_column is not None:
            steps_column = c.integer("steps_column", lo=1, hi=n - 1)
        t_q = d.get("t_quantile")
        if t_q is not None:
            t_q = c.number("t_quantile", positive=True)
        scale = d.get("overhead_scale", "hardware")
        if scale not in OVERHEAD_SCALES:
            raise LawError(f"{where}: overhead_scale {scale!r}; rule: one of {', '.join(OVERHEAD_SCALES)}")
        try:  # descriptive: not used to evaluate, kept for the round trip
            about = {"form": str(d.get("form", "")), "params": dict(d.get("params") or {}),
                     "param_names": tuple(str(v) for v in d.get("param_names") or ()),
                     "hardware_columns": tuple(int(v) for v in d.get("hardware_columns") or ()),
                     "hardware_exponents": tuple(float(v) for v in d.get("hardware_exponents") or ()),
                     "n_settings": d.get("n_settings"), "n_samples": d.get("n_samples")}
        except (TypeError, ValueError) as exc:
            raise LawError(f"{where}: a descriptive field does not read ({exc}); rule: params an object, "
                           "param_names / hardware_columns / hardware_exponents lists") from None
        return cls(
            theta=theta, cov=cov, sigma2=c.number("sigma2", nonnegative=True), dof=c.integer("dof", lo=1),
            smearing=c.number("smearing", positive=True), flop_center=c.number("flop_center"),
            overhead=overhead, steps_column=steps_column, fitted=fitted,
            fitted_center=tuple(float(v) for v in c.numbers("fitted_center", size=len(fitted))),
            fixed=fixed, fixed_exponents=tuple(float(v) for v in c.numbers("fixed_exponents", size=len(fixed))),
            floor=c.numbers("floor", size=n, positive=True), n_features=n, overhead_scale=scale, t_quantile=t_q,
            level=level, family=family, combine=combine,
            byte_center=c.number("byte_center") if family == "roofline" else 0.0, **about,
        )


def predict_interval(state: LawState, X, level: float | None = None):
    """Mean prediction and ``level`` prediction interval of new rows ``X``, in linear space.

    Parameters
    ----------
    state : LawState
    X : array-like of shape (n_samples, n_features)
    level : float, optional
        Interval level (default: the state's stored level).

    Returns
    -------
    mean, lo, hi : ndarray of shape (n_samples,)
        ``mean`` is the smeared mean; ``[lo, hi]`` the interval of a new observation,
        ``exp(log f(x) -+ t * sqrt(g' Cov g + sigma^2))`` (a log-space quantile interval:
        it needs no retransformation correction).
    """
    X = np.atleast_2d(np.asarray(X, dtype=float))
    if X.ndim != 2 or X.shape[1] != state.n_features:
        raise ValueError(f"X has shape {X.shape}; the law was fitted on {state.n_features} feature(s)")
    if np.any(X < 0):
        raise ValueError("X has negative values: FLOP counts, steps and hardware figures must be >= 0")
    Z = state.log_features(X)
    mu, J = state.log_model(Z, grad=True)
    var = np.einsum("ij,jk,ik->i", J, state.cov, J) + state.sigma2
    half = state.quantile(level) * np.sqrt(np.maximum(var, 0.0))
    return np.exp(mu) * state.smearing, np.exp(mu - half), np.exp(mu + half)


class _Checker:
    """Typed reads of one JSON object with one-line :class:`LawError` messages."""

    def __init__(self, d: Mapping[str, Any], where: str):
        self.d, self.where = d, where

    def _get(self, key: str):
        if key not in self.d:
            raise LawError(f"{self.where}: missing {key}")
        return self.d[key]

    def _fail(self, key: str, value: Any, rule: str):
        shown = repr(value)
        raise LawError(f"{self.where}: {key} is {shown if len(shown) <= 60 else shown[:57] + '...'}; rule: {rule}")

    def number(self, key: str, *, positive: bool = False, nonnegative: bool = False) -> float:
        v = self._get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self._fail(key, v, "a finite number")
        if positive and v <= 0:
            self._fail(key, v, "a number > 0")
        if nonnegative and v < 0:
            self._fail(key, v, "a number >= 0")
        return float(v)

    def integer(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        v = self._get(key)
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = f" in {lo}..{hi}" if hi is not None else (f" >= {lo}" if lo is not None else "")
            self._fail(key, v, f"a whole number{bounds}")
        return v

    def numbers(self, key: str, size: int, *, nested: bool = False, positive: bool = False) -> np.ndarray:
        v = self._get(key)
        flat = [x for row in v for x in (row if isinstance(row, list) else [row])] if nested and isinstance(v, list) \
            else v
        if not isinstance(v, list) or (nested and not all(isinstance(r, list) for r in v)) or any(
                isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) for x in flat):
            self._fail(key, v, "a list of finite numbers" + (" (rows)" if nested else ""))
        if len(flat) != size or (nested and any(len(r) * len(v) != size for r in v)):
            shape = f"{int(math.isqrt(size))} x {int(math.isqrt(size))}" if nested else str(size)
            self._fail(key, v, f"{shape} values (one per parameter or column)")
        if positive and any(x <= 0 for x in flat):
            self._fail(key, v, "numbers > 0")
        arr = np.asarray(flat, dtype=float)
        arr.setflags(write=False)
        return arr

    def integers(self, key: str, lo: int, hi: int) -> tuple[int, ...]:
        v = self._get(key)
        if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int) or not lo <= x < hi for x in v):
            self._fail(key, v, f"a list of column numbers in {lo}..{hi - 1}")
        return tuple(v)

    def strings(self, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        v = self._get(key)
        if not isinstance(v, list) or any(x not in allowed for x in v) or len(set(v)) != len(v):
            self._fail(key, v, f"a list of distinct terms from {', '.join(allowed)}")
        return tuple(v)
