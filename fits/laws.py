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
        column 6          bytes moved by the call (read by :mod:`fits.roofline` only; a
                          :class:`HardwareLaw` given ``byte_column=6`` skips it)
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

The shared machinery (validation, the log-space fit, smearing, identification) is
:class:`fits.loglaw.LogLaw`; the solvers are in :mod:`fits.solvers`.
"""

from __future__ import annotations

import numpy as np

from fits.loglaw import IdentifiabilityWarning, LogLaw, r2_log

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


def _overhead_terms(value) -> tuple[str, ...]:
    try:
        return OVERHEADS[value]
    except (KeyError, TypeError):
        raise ValueError(f"`overhead` must be one of None, 'call', 'step', 'call+step' (or a bool), got {value!r}") \
            from None


class PowerLaw(LogLaw):
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


class PowerLawOverhead(LogLaw):
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


class HardwareLaw(LogLaw):
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
    byte_column : int or None, default=None
        Column of ``X`` with the bytes moved (:data:`fits.law.BYTE_COLUMN`); never a hardware
        column (this law does not read it).
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
                 epsilon=1.35, smearing=True, overhead_scale="hardware", byte_column=None):
        self.byte_column = byte_column
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
        return sc, [j for j in range(1, n_features) if j not in (sc, self.byte_column)]

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
