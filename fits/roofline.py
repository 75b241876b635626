"""Roofline laws: energy and time from the FLOPs *and* the bytes a call moves.

A FLOP-only law (:mod:`fits.laws`) sees one number per call; what a FLOP costs then has to be a
single exponent. A diffusion call is part compute-bound (the matmuls and fused attention of a
wide denoiser) and part memory-bound (norms, modulation, activations, rotary embeddings, eager
attention scores, the VAE's convolutions at high resolution): narrow models and long sequences
spend a larger share of their time moving bytes. The roofline model of energy (Choi, Bedard,
Fowler and Vuduc, IPDPS 2013) writes ``E = W eps_flop + Q eps_byte + pi_0 T`` with the time
bounded by ``W / peak`` and ``Q / bandwidth``; :class:`RooflineLaw` fits that picture, in log
space, on the design matrix of :func:`fits.features.design_matrix` (FLOP ``C`` in column 0, steps
``N`` in 1, the hardware figures in 2-5, the bytes moved ``Q`` in 6)::

    compute  A * C^b / peak^(-w_peak) * TDP^w_tdp      (priors: w_peak = -1, w_tdp = 1 for energy, 0 for time)
    memory   B * Q   / bw^(-w_bw)     * TDP^w_tdp      (prior:  w_bw = -1)
    sum      T = compute + memory + s N                time of the two parts added (no overlap)
    max      T = max_k(compute, memory) + s N          the roofline: the slower bound wins (smooth, k = 8)
    +E0      ... + E0                                  overhead="call+step": a fixed cost per call too

For energy the same forms read ``E = TDP^w_tdp (A C^b / peak + B Q / bw) + s N``: with ``A, B``
free this is ``pi_0 T + eps_flop W + eps_byte Q`` of the roofline model of energy, its
coefficients derived from the hardware figures (energy per FLOP ~ TDP / peak, per byte ~
TDP / bandwidth) through fitted exponents. The per-step cost ``s N`` is launch-bound host and
kernel-launch work that costs the same on every GPU and precision (the ``flatstep`` term of the
shipped FLOP-only law).

Exponents. The three hardware exponents and the FLOP exponent ``b`` are fitted with a Gaussian
prior at their physical values (a penalty ``prior_weight * (w - w_prior)^2`` added to the squared
log residuals; ``b`` at 1: time proportional to the work at a fixed efficiency): with three GPUs
in the data, a free exponent of a held-out GPU's figures is not identified, the prior is what
lets a GPU that was never measured be predicted, and on one model's step sweep (FLOPs and bytes
both proportional to the steps) it keeps ``b`` from running off. ``prior_weight`` is stated here
(1.0: a one-unit exponent shift costs as much as a unit log residual), not tuned on the
validation table.

Byte counts come from the closed-form profiles (:mod:`profilers.flops.profile`), whose
assumptions are eager PyTorch: element-wise ops read and write their tensors, fused SDPA moves
Q, K, V and O only, eager attention also its score matrix.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils.validation import check_is_fitted

from fits.law import (BYTE_COLUMN, COMBINES, DESIGN_COLUMNS, STEPS_COLUMN, roofline_log_model,
                      roofline_terms)
from fits.loglaw import IdentifiabilityWarning, LogLaw, column_floor
from scaling.errors import DataError, LawError

__all__ = ["PRIOR_WEIGHT", "RooflineLaw", "TARGETS"]

#: Weight of the Gaussian prior on the hardware exponents (see the module doc).
PRIOR_WEIGHT = 1.0

#: Prior exponents of (peak, bandwidth, TDP) per target.
TARGETS = {"energy": (-1.0, -1.0, 1.0), "time": (-1.0, -1.0, 0.0)}

_HW = (2, 3, 4)


class RooflineLaw(LogLaw):
    """A compute term in FLOPs and a memory term in bytes, summed or maxed, plus a cost per step.

    Parameters
    ----------
    combine : {"max", "sum"}, default="max"
        How the compute and memory terms combine (see the module doc).
    target : {"energy", "time"}, default="energy"
        Which priors the hardware exponents take (:data:`TARGETS`).
    prior_weight : float, default=:data:`PRIOR_WEIGHT`
        Weight of the Gaussian prior on the exponents (0: free exponents).
    overhead : {"step", "call+step"}, default="step"
        The flat costs: one per denoising step, and with ``call+step`` one per call as well (host
        work, pipeline setup, the launch-bound autoregressive text stages), neither scaled by the
        hardware terms.
    smearing : bool, default=True
        Multiply linear-space predictions by Duan's smearing factor.

    ``X`` must have the columns of :data:`fits.law.DESIGN_COLUMNS` (7), with positive bytes.

    Attributes
    ----------
    theta_ : ndarray of shape (7,)
        ``[alpha_c, b, alpha_m, w_peak, w_bw, w_tdp, log_s]``.
    hardware_exponents_ : ndarray of shape (3,)
        ``w_peak, w_bw, w_tdp``.
    memory_share_ : ndarray
        Share of the compute + memory term that is memory, per training row (the roofline's verdict).
    """

    robust = False
    epsilon = 1.35
    overhead_scale = "none"  # the per-step cost is flat: not scaled by the hardware terms

    def __init__(self, combine="max", target="energy", prior_weight=PRIOR_WEIGHT, smearing=True, overhead="step"):
        self.combine = combine
        self.target = target
        self.prior_weight = prior_weight
        self.smearing = smearing
        self.overhead = overhead

    def _terms_of_overhead(self) -> tuple[str, ...]:
        return ("step", "call") if self.overhead == "call+step" else ("step",)

    def _overhead_scale(self) -> str:
        return "none"

    def _check_config(self):
        if self.combine not in COMBINES:
            raise ValueError(f"`combine` must be one of {', '.join(COMBINES)}, got {self.combine!r}")
        if self.overhead not in ("step", "call+step"):
            raise ValueError(f"`overhead` must be 'step' or 'call+step', got {self.overhead!r}")
        if self.target not in TARGETS:
            raise ValueError(f"`target` must be one of {', '.join(TARGETS)}, got {self.target!r}")
        w = self.prior_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ValueError(f"`prior_weight` must be a finite number >= 0, got {w!r}")

    def _log_model(self, theta, Z, grad=False):
        return roofline_log_model(theta, Z, flop_center=self.log_flop_center_, byte_center=self.log_byte_center_,
                                  fitted_center=self.fitted_center_, steps_column=STEPS_COLUMN,
                                  combine=self.combine, grad=grad, overhead=self._terms_of_overhead())

    def fit(self, X, y):
        """Fit in log space (several starts, bounded trust region); see the module doc."""
        from scipy.optimize import least_squares

        X, y = self._validate(X, y)
        self._check_config()
        if X.shape[1] != len(DESIGN_COLUMNS):
            raise LawError(f"RooflineLaw needs the {len(DESIGN_COLUMNS)} design columns ({', '.join(DESIGN_COLUMNS)}), "
                           f"X has {X.shape[1]}")
        bad = ~(X[:, BYTE_COLUMN] > 0)
        if bad.any():
            raise DataError(f"RooflineLaw: row {int(np.flatnonzero(bad)[0])} has no bytes moved (column "
                            f"{BYTE_COLUMN}): the roofline forms need the byte counts of a closed-form profile")
        self.floor_ = column_floor(X)
        Z = self._logs(X)
        t = np.log(y)
        self.n_settings_ = int(np.unique(Z[:, [0, 1, 2, 3, 4, 6]], axis=0).shape[0])
        if self.n_settings_ < 2:
            raise LawError(f"RooflineLaw: the fit rests on {self.n_settings_} distinct setting(s); a law needs at "
                           "least 2 distinct FLOP and byte counts")
        if self.n_settings_ < 8:  # the hardware exponents lean on their prior; the other four need the data
            warnings.warn(f"RooflineLaw: {self.n_settings_} distinct settings for 4 data-identified parameters "
                          "(alpha_c, b, alpha_m, log_s); at least 8 are needed to identify them (expect wide "
                          "intervals)", IdentifiabilityWarning, stacklevel=2)
        self.log_flop_center_ = float(Z[:, 0].mean())
        self.log_byte_center_ = float(Z[:, BYTE_COLUMN].mean())
        self.fitted_center_ = tuple(float(Z[:, j].mean()) for j in _HW)
        prior = np.asarray(TARGETS[self.target])
        lam = float(np.sqrt(self.prior_weight))
        n_par = 7 + (self.overhead == "call+step")

        def fun(theta):
            return np.r_[self._log_model(theta, Z) - t, lam * (theta[3:6] - prior), lam * (theta[1] - 1.0)]

        def jac(theta):
            J = self._log_model(theta, Z, grad=True)[1]
            P = np.zeros((4, n_par))
            P[:3, 3:6] = lam * np.eye(3)
            P[3, 1] = lam
            return np.vstack([J, P])

        base = float(np.mean(t))
        lo_s = float(np.min(t - Z[:, STEPS_COLUMN]))
        starts = [np.r_[base, 1.0, base - d, prior, lo_s - e, [float(np.min(t)) - e] * (n_par - 7)]
                  for d in (0.0, 1.5, -1.5) for e in (1.0, 4.0)]
        if n_par == 8:  # nested start: the per-step form's optimum with a negligible per-call cost
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IdentifiabilityWarning)
                nested = type(self)(combine=self.combine, target=self.target, prior_weight=self.prior_weight,
                                    smearing=self.smearing).fit(X, y)
            starts.append(np.r_[nested.theta_, float(np.min(t)) - 12.0])
        best = None
        for x0 in starts:
            res = least_squares(fun, x0, jac=jac, method="trf", x_scale="jac", xtol=1e-10, ftol=1e-10, gtol=1e-10,
                                max_nfev=400)
            if best is None or res.cost < best.cost - 1e-12:
                best = res
        theta = best.x
        self.theta_ = theta
        resid = t - self._log_model(theta, Z)
        self.resid_log_ = resid
        self.n_params_ = n_par
        self.dof_ = int(max(X.shape[0] - n_par, 1))
        self.sigma2_ = float(resid @ resid / self.dof_)
        J = self._log_model(theta, Z, grad=True)[1]
        H = J.T @ J
        H[3:6, 3:6] += self.prior_weight * np.eye(3)
        H[1, 1] += self.prior_weight
        self.cov_ = self.sigma2_ * np.linalg.pinv(H)
        self.smearing_ = float(np.mean(np.exp(resid))) if self.smearing else 1.0
        self.hardware_exponents_ = np.asarray(theta[3:6], dtype=float)
        self.overhead_ = self._terms_of_overhead()
        self.steps_column_ = STEPS_COLUMN
        self.hardware_columns_ = list(_HW)
        self.fitted_hardware_ = list(_HW)
        self.column_center_ = dict(zip(_HW, self.fitted_center_))
        self.fixed_hardware_ = [5]  # byte per value: the bytes are counted at the run's precision already
        self.exponent_of_ = {**{j: float(w) for j, w in zip(_HW, theta[3:6])}, 5: 0.0}
        u_c, u_m = self._terms(theta, Z)
        self.memory_share_ = np.exp(-np.logaddexp(0.0, u_c - u_m))  # 1 / (1 + e^(u_c - u_m)), no overflow
        return self

    def _terms(self, theta, Z):
        return roofline_terms(theta, Z, flop_center=self.log_flop_center_, byte_center=self.log_byte_center_,
                              fitted_center=self.fitted_center_)

    def memory_share(self, X):
        """Share of the compute + memory term that is memory, per row (1: memory-bound)."""
        check_is_fitted(self, "theta_")
        X, _ = self._validate(X, reset=False)
        u_c, u_m = self._terms(self.theta_, self._logs(X))
        return np.exp(-np.logaddexp(0.0, u_c - u_m))  # 1 / (1 + e^(u_c - u_m)), no overflow

    @property
    def param_names_(self) -> list[str]:
        names = ["alpha_c", "b", "alpha_m", "w_peak_flop_per_s", "w_memory_bandwidth_byte_per_s", "w_tdp_w", "log_s"]
        return names + (["log_e0"] if self.overhead == "call+step" else [])

    @property
    def s_(self) -> float:
        check_is_fitted(self, "theta_")
        return float(np.exp(self.theta_[6]))

    @property
    def e0_(self) -> float:
        check_is_fitted(self, "theta_")
        return float(np.exp(self.theta_[7])) if self.overhead == "call+step" else 0.0

    def _state_family(self) -> dict:
        return {"family": "roofline", "combine": self.combine, "byte_center": float(self.log_byte_center_)}
