"""Evaluate a law file with numpy only: the predict path of ``fits.load_law``.

A law file (``scaling/_laws/default.json``, or ``scaling fit --out law.json``) stores, per
target (``energy``, ``time``), the fitted parameters ``theta``, their covariance, the residual
variance and degrees of freedom, the smearing factor and the column layout; this module
evaluates the law family of :mod:`fits.laws` from those numbers (:func:`log_model`) without
importing scikit-learn, statsmodels or scipy (scipy only for an interval level other than the
stored one).

Prediction for one setting on one GPU at one precision::

    x = [C, N, peak FLOP/s(precision), bandwidth, TDP, byte per value]   (fits.features.DESIGN_COLUMNS)
    log E = log_model(theta, log x)                       median in log space
    E     = exp(log E) * smearing                         mean (Duan's smearing)
    [lo, hi] = exp(log E -+ t_q * sqrt(g' Cov g + sigma^2))   interval of a new measurement

Components: ``flop_share`` splits the total by FLOP share, ``per_component`` evaluates one law
per role (the file says which, under ``components``).

Precision: the hardware figures come from :func:`fits.precision.precision_plan` (nf4 / fp4 / int8
enter as bf16, fp8 as fp8 only on chips with fp8 tensor cores). :meth:`ShippedLaw.predict` adds
the dequantisation term of weight-only formats (:func:`fits.precision.dequant_cost`: a roofline
estimate, not fitted) to the denoiser and the total; :meth:`ShippedLaw.predict_components` is the
law alone.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from fits.precision import precision_plan
from scaling.errors import LawError

__all__ = ["ShippedLaw", "law_from_dict", "log_model"]

SCHEMA = "scaling.law/1"
_ROLE_ORDER = ("text_encoder", "denoiser", "decoder", "vocoder", "upsampler")


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


class _Part:
    """One fitted target (energy or time) of a law file."""

    _KEYS = ("theta", "flop_center", "overhead", "steps_column", "fitted", "fitted_center", "fixed",
             "fixed_exponents", "floor", "cov", "sigma2", "dof", "smearing", "n_features")

    def __init__(self, state: Mapping[str, Any], where: str):
        missing = [k for k in self._KEYS if k not in state]
        if missing:
            raise LawError(f"{where}: missing {', '.join(missing)}")
        try:
            self.theta = np.asarray(state["theta"], dtype=float)
            self.cov = np.asarray(state["cov"], dtype=float).reshape(len(self.theta), len(self.theta))
            self.floor = np.asarray(state["floor"], dtype=float)
            self.sigma2 = float(state["sigma2"])
            self.dof = int(state["dof"])
            self.smearing = float(state["smearing"])
            self.n_features = int(state["n_features"])
            self.t_quantile = state.get("t_quantile")
            self.kwargs = {
                "flop_center": float(state["flop_center"]),
                "overhead": tuple(state["overhead"]),
                "steps_column": state["steps_column"],
                "fitted": [int(j) for j in state["fitted"]],
                "fitted_center": [float(c) for c in state["fitted_center"]],
                "fixed": [int(j) for j in state["fixed"]],
                "fixed_exponents": [float(p) for p in state["fixed_exponents"]],
                "overhead_scale": str(state.get("overhead_scale", "hardware")),
            }
            self.flop_range = state.get("flop_range")
        except (TypeError, ValueError) as exc:
            raise LawError(f"{where}: {exc}") from None
        if not np.all(np.isfinite(self.theta)):
            raise LawError(f"{where}: theta has non-finite values")

    @property
    def uses_steps(self) -> bool:
        return "step" in self.kwargs["overhead"]

    def evaluate(self, x: np.ndarray, level: float, stored_level: float):
        """(mean, lo, hi) for rows ``x`` of shape (n, n_features)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        Z = np.log(np.where(x > 0, x, self.floor))
        mu, J = log_model(self.theta, Z, grad=True, **self.kwargs)
        var = np.einsum("ij,jk,ik->i", J, self.cov, J) + self.sigma2
        if self.t_quantile is not None and abs(level - stored_level) < 1e-12:
            q = float(self.t_quantile)
        else:
            from scipy.stats import t

            q = float(t.ppf(0.5 + level / 2.0, max(self.dof, 1)))
        half = q * np.sqrt(np.maximum(var, 0.0))
        return np.exp(mu) * self.smearing, np.exp(mu - half), np.exp(mu + half)


class _Law:
    """energy (+ time) parts of one law: the whole file, or one group of a ``--by`` file."""

    def __init__(self, doc: Mapping[str, Any], where: str):
        comps = doc.get("components") or {"method": "flop_share"}
        self.component_method = comps.get("method", "flop_share")
        self.component_laws: dict[str, _Part] = {}
        self.component_time_laws: dict[str, _Part] = {}
        if self.component_method == "per_component":
            for role, state in (doc.get("component_laws") or {}).items():
                if state is not None:
                    self.component_laws[role] = _Part(state, f"{where}, component {role}")
            for role, state in (doc.get("component_time_laws") or {}).items():
                if state is not None:
                    self.component_time_laws[role] = _Part(state, f"{where}, component {role} (time)")
            if not self.component_laws:
                raise LawError(f"{where}: components method per_component but no component_laws")
        elif not isinstance(doc.get("energy"), Mapping):
            raise LawError(f"{where}: no `energy` law")
        self.energy = _Part(doc["energy"], f"{where}, energy") if isinstance(doc.get("energy"), Mapping) else None
        self.time = _Part(doc["time"], f"{where}, time") if isinstance(doc.get("time"), Mapping) else None
        training = doc.get("training") or {}
        self.gpus = tuple(training.get("gpus") or ())
        self.precisions = tuple(training.get("precisions") or ())
        self.flop_range = training.get("flop_range")


class ShippedLaw:
    """A law read from a file; evaluates with numpy only.

    Attributes
    ----------
    name : str
    interval : float
        The level of the stored intervals (0.9).
    component_method : str
        ``flop_share`` or ``per_component``.
    gpus_measured : tuple of str
        GPU registry keys in the law's training data.
    document : dict
        The whole law file (coefficients, validation table, provenance, versions).
    """

    def __init__(self, doc: Mapping[str, Any], source: str = "<dict>"):
        if not isinstance(doc, Mapping):
            raise LawError(f"law file {source!r}: not a JSON object")
        schema = doc.get("schema")
        if schema != SCHEMA:
            raise LawError(f"law file {source!r}: schema {schema!r} is not {SCHEMA!r} (rebuild it with `scaling fit`)")
        self.document = doc
        self.source = source
        self.name = str(doc.get("name") or source)
        self.form = str(doc.get("form", ""))
        self.interval = float(doc.get("interval", 0.9))
        groups = doc.get("groups")
        self.group_by = None
        self._groups: dict[str, _Law] = {}
        if groups:
            self.group_by = groups.get("by")
            for key, sub in (groups.get("laws") or {}).items():
                self._groups[str(key)] = _Law(sub, f"law file {source!r}, group {key!r}")
            if not self._groups:
                raise LawError(f"law file {source!r}: `groups` holds no law")
            self._main = None
        else:
            self._main = _Law(doc, f"law file {source!r}")
        first = self._main or next(iter(self._groups.values()))
        self.component_method = first.component_method
        self.gpus_measured = tuple(sorted({g for law in ([self._main] if self._main else self._groups.values())
                                           for g in law.gpus}))

    # -- helpers -----------------------------------------------------------------------------
    def _pick(self, gpu_key: str, model_keys: tuple[str, ...] = ()) -> _Law:
        if self._main is not None:
            return self._main
        if self.group_by == "gpu":
            if gpu_key in self._groups:
                return self._groups[gpu_key]
            raise LawError(f"law {self.name!r} is fitted per GPU and has no law for {gpu_key!r}: "
                           f"it has {', '.join(sorted(self._groups))}")
        if self.group_by == "model":
            for k in model_keys:
                if k in self._groups:
                    return self._groups[k]
            raise LawError(f"law {self.name!r} is fitted per model and has no law for {model_keys[0] if model_keys else '?'!r}: "
                           f"it has {', '.join(sorted(self._groups))}")
        raise LawError(f"law {self.name!r}: groups by {self.group_by!r} cannot be evaluated")

    @staticmethod
    def _row(flop: float, steps: float | None, hw: np.ndarray) -> np.ndarray:
        return np.r_[float(flop), float(steps) if steps is not None else 0.0, hw]

    def _check(self, role_flops: Mapping[str, float], batch: int) -> dict[str, float]:
        if not isinstance(role_flops, Mapping) or not role_flops:
            raise LawError("`role_flops` must be a non-empty mapping role -> FLOP (FlopProfile.by_role())")
        out = {}
        for role, v in role_flops.items():
            v = float(v)
            if not math.isfinite(v) or v < 0:
                raise LawError(f"`role_flops[{role!r}]` is {v!r}: FLOP counts must be finite and >= 0")
            out[str(role)] = v
        if sum(out.values()) <= 0:
            raise LawError("`role_flops` sums to 0 FLOP: nothing to predict")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise LawError(f"`batch` {batch!r}: it must be a positive whole number")
        return out

    @staticmethod
    def _hardware(gpu, precision: str) -> tuple[str, np.ndarray]:
        from fits.features import hardware_vector
        from scaling.hardware import GPUSpec, resolve_gpu

        spec = gpu if isinstance(gpu, GPUSpec) else resolve_gpu(gpu)
        return spec.key, hardware_vector(spec, precision)

    # -- the API ------------------------------------------------------------------------------
    def predict_components(self, role_flops: Mapping[str, float], gpu, precision: str, batch: int = 1,
                           steps: int | None = None, level: float | None = None, model_keys: tuple[str, ...] = ()
                           ) -> dict[str, tuple[float, float, float]]:
        """Energy per role and in total for ONE pipeline call, with a ``level`` interval.

        Parameters
        ----------
        role_flops : mapping role -> FLOP
            FLOP of the call per role, whole batch (``FlopProfile.by_role()``).
        gpu : GPUSpec or str
            Any registered GPU (measured or not).
        precision : str
            ``fp32``, ``bf16``, ``fp16``, ...
        batch : int, default=1
            Samples in the call. The FLOPs already include it; divide the results by it for
            energy per output.
        steps : int, optional
            Denoising steps; required when the law has a per-step overhead.
        level : float, optional
            Interval level (default: the file's, 0.9).
        model_keys : tuple of str
            Registry key / id of the model (only for laws fitted per model).

        Returns
        -------
        dict role -> (energy_j, lo_j, hi_j), plus ``"total"``.
        """
        flops = self._check(role_flops, batch)
        level = self.interval if level is None else float(level)
        gpu_key, hw = self._hardware(gpu, precision)
        law = self._pick(gpu_key, model_keys)
        total_flop = sum(flops.values())
        parts = [law.energy] if law.energy is not None else list(law.component_laws.values())
        if any(p.uses_steps for p in parts) and steps is None:
            raise LawError(f"law {self.name!r} has a per-step overhead: pass `steps`")
        if law.component_method == "per_component":
            out: dict[str, tuple[float, float, float]] = {}
            for role, c in flops.items():
                part = law.component_laws.get(role)
                if part is None or c <= 0:
                    out[role] = (0.0, 0.0, 0.0)
                    continue
                m, lo, hi = part.evaluate(self._row(c, steps, hw), level, self.interval)
                out[role] = (float(m[0]), float(lo[0]), float(hi[0]))
            out["total"] = tuple(float(sum(v[i] for v in out.values())) for i in range(3))
            return out
        m, lo, hi = law.energy.evaluate(self._row(total_flop, steps, hw), level, self.interval)
        total = (float(m[0]), float(lo[0]), float(hi[0]))
        out = {role: tuple(v * c / total_flop for v in total) for role, c in flops.items()}
        out["total"] = total
        return out

    def predict_time(self, role_flops: Mapping[str, float], gpu, precision: str, batch: int = 1,
                     steps: int | None = None, level: float | None = None, model_keys: tuple[str, ...] = ()
                     ) -> tuple[float, float, float]:
        """Wall-clock time of ONE call (s) with a ``level`` interval: ``(time_s, lo_s, hi_s)``."""
        flops = self._check(role_flops, batch)
        level = self.interval if level is None else float(level)
        gpu_key, hw = self._hardware(gpu, precision)
        law = self._pick(gpu_key, model_keys)
        parts = [law.time] if law.time is not None else list(law.component_time_laws.values())
        if not parts:
            raise LawError(f"law {self.name!r} has no time law")
        if any(p.uses_steps for p in parts) and steps is None:
            raise LawError(f"law {self.name!r} has a per-step overhead: pass `steps`")
        if law.time is None:  # per component: the sum of the roles (bounds summed, conservative)
            acc = np.zeros(3)
            for role, c in flops.items():
                part = law.component_time_laws.get(role)
                if part is not None and c > 0:
                    acc += np.array([v[0] for v in part.evaluate(self._row(c, steps, hw), level, self.interval)])
            return float(acc[0]), float(acc[1]), float(acc[2])
        m, lo, hi = law.time.evaluate(self._row(sum(flops.values()), steps, hw), level, self.interval)
        return float(m[0]), float(lo[0]), float(hi[0])

    def predict(self, *, role_flops: Mapping[str, float], gpu, precision: str, setting: Any = None,
                spec: Any = None):
        """The :class:`fits.law_file.Law` protocol: a :class:`fits.law_file.LawPrediction`."""
        from fits.law_file import EnergyInterval, LawPrediction

        batch = int(getattr(setting, "n_outputs", None) or getattr(setting, "batch_size", 1) or 1)
        steps = getattr(setting, "steps", None)
        keys = tuple(k for k in (getattr(spec, "key", None), getattr(spec, "id", None),
                                 getattr(setting, "model", None)) if k)
        energy = self.predict_components(role_flops, gpu, precision, batch=batch, steps=steps, model_keys=keys)
        gpu_key, _ = self._hardware(gpu, precision)
        law = self._pick(gpu_key, keys)
        notes = []
        if law.time is not None or law.component_time_laws:
            t, t_lo, t_hi = self.predict_time(role_flops, gpu, precision, batch=batch, steps=steps, model_keys=keys)
        else:
            t = t_lo = t_hi = float("nan")
            notes.append("the law has no time law: time not predicted")
        total_flop = sum(float(v) for v in role_flops.values())
        measured = gpu_key in law.gpus if law.gpus else False
        if not measured:
            notes.append(f"no measurements on {gpu_key} in the law's data: predicted from its registry figures "
                         "(peak FLOP/s, bandwidth, TDP) through the hardware terms")
        plan = precision_plan(precision, gpu_key)
        notes.extend(plan.notes)
        if law.precisions and plan.compute not in law.precisions:
            notes.append(f"precision {precision} (matmuls at {plan.compute}) is outside the law's data "
                         f"({', '.join(law.precisions)})")
        energy, t, t_lo, t_hi, dq_note = _add_dequant(energy, (t, t_lo, t_hi), spec, setting, precision, gpu_key,
                                                      steps)
        if dq_note:
            notes.append(dq_note)
        if law.flop_range and not (law.flop_range[0] <= total_flop <= law.flop_range[1]):
            notes.append(f"{total_flop:.3g} FLOP is outside the law's data ({law.flop_range[0]:.3g}-"
                         f"{law.flop_range[1]:.3g} FLOP): extrapolation")
        if law.component_method == "flop_share":
            notes.append("per-component energies: the total split by FLOP share (the law was fitted on whole calls)")
        comps = {}
        order = [r for r in _ROLE_ORDER if r in energy] + [r for r in energy if r not in _ROLE_ORDER and r != "total"]
        for role in order:
            e, lo, hi = energy[role]
            share = float(role_flops.get(role, 0.0)) / total_flop if total_flop > 0 else 0.0
            comps[role] = EnergyInterval(energy_j=e, lo_j=lo, hi_j=hi, time_s=t * share if math.isfinite(t) else None)
        e, lo, hi = energy["total"]
        return LawPrediction(
            components=comps, total=EnergyInterval(energy_j=e, lo_j=lo, hi_j=hi, time_s=t),
            time_s=t, time_lo_s=t_lo, time_hi_s=t_hi, gpu_measured=measured, law_name=self.name,
            interval=self.interval, notes=tuple(notes),
        )


def _add_dequant(energy: dict, time: tuple[float, float, float], spec: Any, setting: Any, precision: str,
                 gpu_key: str, steps: int | None):
    """Add the dequantisation term of a weight-only precision (:func:`fits.precision.dequant_cost`).

    The term is a roofline estimate, not fitted: it is added to the denoiser and the total and
    shifts their intervals (it does not widen them). Returns ``(energy, t, t_lo, t_hi, note)``.
    """
    from fits.precision import WEIGHT_ONLY, dequant_cost

    t, t_lo, t_hi = time
    if str(precision).strip().lower() not in WEIGHT_ONLY:
        return energy, t, t_lo, t_hi, None
    if spec is None and getattr(setting, "model", None):
        from scaling.errors import UnknownModelError
        from scaling.registry import resolve_model

        try:
            spec = resolve_model(setting.model)
        except UnknownModelError:
            spec = None
    if steps is None:
        return energy, t, t_lo, t_hi, f"{precision}: dequantisation cost not added (steps unknown)"
    cost = dequant_cost(spec, precision, gpu_key, int(steps))
    if cost.energy_j <= 0:
        return energy, t, t_lo, t_hi, cost.note
    out = dict(energy)
    role = "denoiser" if "denoiser" in out else "total"
    for key in {role, "total"}:
        e, lo, hi = out[key]
        out[key] = (e + cost.energy_j, lo + cost.energy_j, hi + cost.energy_j)
    if math.isfinite(t):
        t, t_lo, t_hi = t + cost.time_s, t_lo + cost.time_s, t_hi + cost.time_s
    return out, t, t_lo, t_hi, cost.note


def law_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ShippedLaw:
    """Build the predict-path law from a law document (what ``fits.law_file.load_law`` calls)."""
    return ShippedLaw(data, source)
