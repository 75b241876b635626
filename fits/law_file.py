"""A law file as the predict path sees it: load it, check it, predict one generation.

A law file (``scaling/_laws/default.json``, or ``scaling fit --out law.json``; schema
``scaling.law/1``) stores, per target (``energy``, ``time``), one :class:`fits.law.LawState`;
``load_law(None)`` loads the shipped default law. The file is read afresh on every
:func:`load_law` (no cache: a law refitted in the same session is never served stale) and
checked on load; a bad file is one :class:`~scaling.errors.LawError` line naming the file, the
part and the rule. numpy only: no scikit-learn, statsmodels or scipy (scipy only for an interval
level other than the stored one).

The predict path (:meth:`Law.predict`) takes resolved objects (the setting, its FLOP per role
and, for the roofline forms, its bytes moved per role, the :class:`~scaling.hardware.GPUSpec`,
the :class:`~scaling.registry.ModelSpec`) and returns a
:class:`LawPrediction` of :class:`~scaling.units.Interval` values; it resolves nothing.

Components: ``flop_share`` splits the total by FLOP share, ``per_component`` evaluates one law
per role (the file says which, under ``components``). Precision: the hardware figures come from
:func:`scaling.precision.precision_plan` (nf4 / fp4 / int8 enter as bf16, fp8 as fp8 only on
chips with fp8 tensor cores); :meth:`Law.predict` adds the dequantisation term of weight-only
formats (:func:`scaling.precision.dequant_cost`: a roofline estimate, not fitted) to the
denoiser and the total; :meth:`Law.predict_energy` and :meth:`Law.predict_time` are the law alone.

Extrapolation (:meth:`Law.predict`): the flags of :mod:`fits.extrapolation` (GPU, precision
class on its architecture, model, family, FLOP range; from the file's ``training`` block) and the
interval widened by the file's ``residual_spread`` where the call leaves the data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fits.extrapolation import SPREAD_RULE, DataCoverage, precision_class, widen_interval
from fits.law import LawState, hardware_row, predict_interval
from scaling.errors import LawError
from scaling.hardware import GPUSpec
from scaling.precision import dequant_cost, precision_plan
from scaling.units import Interval

__all__ = ["LAW_FORMS", "SCHEMA", "SPREAD_RULE", "Law", "LawPrediction", "ShippedLaw", "default_law_path",
           "law_from_dict", "load_law", "precision_class", "widen_interval"]

SCHEMA = "scaling.law/1"
COMPONENT_METHODS = ("flop_share", "per_component")
LAW_FORMS = ("power", "power-robust", "power+E0", "power+step", "hw-compute", "hw-compute+step", "hw-memory",
             "hw-memory+E0", "hw-memory+step", "hw-memory+E0+step", "hw-fit+step", "hw-fit+flatstep",
             "hw-roofline-sum", "hw-roofline-max", "hw-roofline-max+E0")
"""The forms a law file can name (``form``): the names of :func:`fits.validation.candidate_laws`, written
out here so that the predict path imports no scikit-learn (a test keeps the two the same)."""
ROLE_ORDER = ("text_encoder", "denoiser", "decoder", "vocoder", "upsampler")


@dataclass(frozen=True)
class LawPrediction:
    """What a law says about one generation call.

    ``energy_j`` maps each role, and ``"total"``, to its energy (J) with interval; ``time_s`` is
    the call's time (NaN values when the law has no time law); ``time_by_role_s`` splits it by
    FLOP share (None without a time law).
    """

    energy_j: Mapping[str, Interval]
    time_s: Interval
    time_by_role_s: Mapping[str, float | None]
    gpu_measured: bool            # the law's data has measurements on this GPU
    precision_in_data: bool       # the precision the matmuls run at is in the law's data
    flop_in_range: bool           # the call's FLOP count lies in the law's data range
    law_name: str
    level: float
    notes: tuple[str, ...] = ()
    precision_measured_on_gpu_class: bool = True  # the precision's class was measured on this architecture
    model_in_data: bool = True    # the model (registry key or public id) is in the law's data
    family_in_data: bool = True   # the model's registry family is in the law's data
    byte_in_range: bool = True    # the bytes it moves lie in the law's data range (laws that read bytes)
    roofline_terms_s: tuple[float, float] | None = None  # the time law's compute and memory terms (roofline laws)
    extrapolation: tuple[str, ...] = ()   # one line per way the call leaves the law's data
    widened_by: tuple[str, ...] = ()      # the residual_spread splits the interval was widened with

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(r for r in self.energy_j if r != "total")


class _Group:
    """The states of one law: the whole file, or one group of a ``--by`` file."""

    def __init__(self, doc: Any, where: str, level: float):
        if not isinstance(doc, Mapping):
            raise LawError(f"{where}: not a JSON object")
        comps = doc.get("components") or {"method": "flop_share"}
        if not isinstance(comps, Mapping):
            raise LawError(f"{where}: components is {comps!r:.60}; rule: an object with a `method`, one of "
                           f"{', '.join(COMPONENT_METHODS)}")
        self.method = comps.get("method", "flop_share") if isinstance(comps, Mapping) else None
        if self.method not in COMPONENT_METHODS:
            raise LawError(f"{where}: components method {self.method!r}; rule: one of {', '.join(COMPONENT_METHODS)}")
        form = doc.get("form")
        if form not in LAW_FORMS:  # a form this toolkit does not know: its numbers cannot be read as it meant
            got = "no `form`" if "form" not in doc else f"form {form!r:.60} is not a law form"
            raise LawError(f"{where}: {got}; rule: one of {', '.join(LAW_FORMS)}")

        def states(key: str, label: str) -> dict[str, LawState]:
            parts = doc.get(key) or {}
            if not isinstance(parts, Mapping):
                raise LawError(f"{where}: {key} is not a JSON object")
            return {str(r): LawState.from_dict(s, f"{where}, component {r}{label}", level)
                    for r, s in parts.items() if s is not None}

        def state(key: str) -> LawState | None:
            return LawState.from_dict(doc[key], f"{where}, {key}", level) if doc.get(key) is not None else None

        self.role_energy = states("component_laws", "") if self.method == "per_component" else {}
        self.role_time = states("component_time_laws", " (time)") if self.method == "per_component" else {}
        if self.method == "per_component" and not self.role_energy:
            raise LawError(f"{where}: components method per_component but no component_laws")
        self.energy, self.time = state("energy"), state("time")
        if self.method == "flop_share" and self.energy is None:
            raise LawError(f"{where}: no `energy` law")
        self.coverage = DataCoverage.from_doc(doc, where)
        self.gpus, self.precisions = self.coverage.gpus, self.coverage.precisions
        self.flop_range, self.spread = self.coverage.flop_range, self.coverage.spread

    def extra_variance(self, target: str, splits: tuple[str, ...], state: LawState) -> float:
        """The variance ``splits`` add to a ``target`` interval of ``state`` (:mod:`fits.extrapolation`)."""
        return self.coverage.extra_variance(target, splits, state.sigma2)

    def energy_states(self) -> list[LawState]:
        return [self.energy] if self.method == "flop_share" else list(self.role_energy.values())

    def time_states(self) -> list[LawState]:
        return [self.time] if self.time is not None else list(self.role_time.values())


class Law:
    """A law read from a file (or a law document); evaluates with numpy only.

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
        The whole law file (coefficients, validation table, provenance, versions); read it, do not
        change it.
    """

    def __init__(self, doc: Mapping[str, Any], source: str = "<dict>"):
        where = f"law file {source!r}"
        if not isinstance(doc, Mapping):
            raise LawError(f"{where}: not a JSON object")
        schema = doc.get("schema")
        if schema != SCHEMA:
            raise LawError(f"{where}: schema {schema!r} is not {SCHEMA!r} (rebuild it with `scaling fit`)")
        level = doc.get("interval", 0.9)
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
            raise LawError(f"{where}: interval is {level!r}; rule: a level strictly between 0 and 1 (0.9)")
        self.document = doc
        self.source = source
        self.name = str(doc.get("name") or source)
        self.form = str(doc.get("form", ""))
        self.interval = float(level)
        groups = doc.get("groups")
        self.group_by = None
        self._groups: dict[str, _Group] = {}
        self._main: _Group | None = None
        if groups is not None and not isinstance(groups, Mapping):
            raise LawError(f"{where}: groups is {groups!r:.60}; rule: an object {{\"by\": \"gpu\" or \"model\", "
                           "\"laws\": {name: law}}")
        if groups:
            if not isinstance(groups, Mapping) or not isinstance(groups.get("laws"), Mapping) or not groups["laws"]:
                raise LawError(f"{where}: `groups` holds no law")
            self.group_by = groups.get("by")
            if self.group_by not in ("gpu", "model"):
                raise LawError(f"{where}: groups by {self.group_by!r}; rule: gpu or model")
            self._groups = {str(k): _Group(sub, f"{where}, group {k!r}", self.interval)
                            for k, sub in groups["laws"].items()}
        else:
            self._main = _Group(doc, where, self.interval)
        every = [self._main] if self._main is not None else list(self._groups.values())
        self.component_method = every[0].method
        self.gpus_measured = tuple(sorted({g for law in every for g in law.gpus}))
        #: Whether the law reads the bytes moved (a roofline form): predict then needs ``byte_by_role``.
        self.reads_bytes = any(st.reads_bytes for law in every for st in law.energy_states() + law.time_states())

    def __repr__(self) -> str:
        return f"Law({self.name!r}, form={self.form!r}, source={self.source!r})"

    # -- helpers -----------------------------------------------------------------------------
    def _pick(self, gpu_key: str, model_keys: tuple[str, ...] = ()) -> _Group:
        if self._main is not None:
            return self._main
        if self.group_by == "gpu":
            if gpu_key in self._groups:
                return self._groups[gpu_key]
            raise LawError(f"law {self.name!r} is fitted per GPU and has no law for {gpu_key!r}: "
                           f"it has {', '.join(sorted(self._groups))}")
        for k in model_keys:
            if k in self._groups:
                return self._groups[k]
        raise LawError(f"law {self.name!r} is fitted per model and has no law for "
                       f"{model_keys[0] if model_keys else '?'!r}: it has {', '.join(sorted(self._groups))}")

    @staticmethod
    def _gpu_key(gpu: Any) -> str:
        if not isinstance(gpu, GPUSpec):
            raise LawError(f"`gpu` {gpu!r}: pass a GPUSpec (scaling.resolve_gpu(name))")
        return gpu.key

    def _inputs(self, flop_by_role: Mapping[str, float], steps: int | None, states: list[LawState]):
        if not isinstance(flop_by_role, Mapping) or not flop_by_role:
            raise LawError("`flop_by_role` must be a non-empty mapping role -> FLOP (FlopProfile.by_role())")
        flops = {}
        for role, v in flop_by_role.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise LawError(f"`flop_by_role[{role!r}]` is {v!r}: FLOP counts must be numbers")
            v = float(v)
            if not math.isfinite(v) or v < 0:
                raise LawError(f"`flop_by_role[{role!r}]` is {v!r}: FLOP counts must be finite and >= 0")
            flops[str(role)] = v
        if sum(flops.values()) <= 0:
            raise LawError("`flop_by_role` sums to 0 FLOP: nothing to predict")
        if steps is None and any(s.uses_steps for s in states):
            raise LawError(f"law {self.name!r} has a per-step overhead: pass `steps`")
        return flops

    def _bytes(self, byte_by_role: Mapping[str, float] | None, flops: dict[str, float],
               states: list[LawState]) -> dict[str, float] | None:
        if byte_by_role is None:
            if any(s.reads_bytes for s in states):
                raise LawError(f"law {self.name!r} reads the bytes moved (a roofline form): pass `byte_by_role` "
                               "(FlopProfile.by_role_byte())")
            return None
        if not isinstance(byte_by_role, Mapping):
            raise LawError("`byte_by_role` must be a mapping role -> bytes moved (FlopProfile.by_role_byte())")
        out = {}
        for role in flops:
            v = byte_by_role.get(role, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) \
                    or v < 0:
                raise LawError(f"`byte_by_role[{role!r}]` is {v!r}: byte counts must be finite numbers >= 0")
            out[role] = float(v)
        return out

    @staticmethod
    def _row(flop: float, steps: int | None, hw: np.ndarray, byte: float | None = None) -> np.ndarray:
        return np.r_[float(flop), float(steps) if steps is not None else 0.0, hw, float(byte or 0.0)]

    @staticmethod
    def _interval(law: _Group, target: str, state: LawState, row, level: float, widen: tuple[str, ...]):
        """(mean, lo, hi) of one state at one row, widened by the ``widen`` splits' spread."""
        m, lo, hi = predict_interval(state, row[:state.n_features], level)
        return widen_interval(float(m[0]), float(lo[0]), float(hi[0]), state.quantile(level),
                      law.extra_variance(target, widen, state))

    def _energy(self, law: _Group, flops: dict[str, float], steps, hw, level: float,
                widen: tuple[str, ...] = (), byte: dict[str, float] | None = None) -> dict[str, Interval]:
        byte = byte or {}
        if law.method == "per_component":
            out: dict[str, Interval] = {}
            for role, c in flops.items():
                state = law.role_energy.get(role)
                if state is None or c <= 0:
                    out[role] = Interval(0.0, 0.0, 0.0, level)
                    continue
                out[role] = Interval(*self._interval(law, "energy", state, self._row(c, steps, hw, byte.get(role)),
                                                     level, widen), level)
            out["total"] = Interval(*(float(sum(v.as_tuple()[i] for v in out.values())) for i in range(3)), level)
            return out
        total_flop = sum(flops.values())
        t = self._interval(law, "energy", law.energy, self._row(total_flop, steps, hw, sum(byte.values())), level,
                           widen)
        out = {role: Interval(*(v * c / total_flop for v in t), level) for role, c in flops.items()}
        out["total"] = Interval(*t, level)
        return out

    def _time(self, law: _Group, flops: dict[str, float], steps, hw, level: float,
              widen: tuple[str, ...] = (), byte: dict[str, float] | None = None) -> Interval:
        byte = byte or {}
        if law.time is None:  # per component: the sum of the roles (bounds summed, conservative)
            acc = np.zeros(3)
            for role, c in flops.items():
                state = law.role_time.get(role)
                if state is not None and c > 0:
                    acc += np.array(self._interval(law, "time", state, self._row(c, steps, hw, byte.get(role)), level,
                                                   widen))
            return Interval(float(acc[0]), float(acc[1]), float(acc[2]), level)
        return Interval(*self._interval(law, "time", law.time, self._row(sum(flops.values()), steps, hw,
                                                                         sum(byte.values())), level, widen), level)

    # -- the API ------------------------------------------------------------------------------
    def predict_energy(self, flop_by_role: Mapping[str, float], gpu: GPUSpec, precision: str, *,
                       steps: int | None = None, level: float | None = None, model_keys: tuple[str, ...] = (),
                       byte_by_role: Mapping[str, float] | None = None) -> dict[str, Interval]:
        """Energy (J) per role and in total of ONE pipeline call: the law alone (no dequantisation term).

        Parameters
        ----------
        flop_by_role : mapping role -> FLOP
            FLOP of the call per role, whole batch (``FlopProfile.by_role()``).
        gpu : GPUSpec
            Any registered GPU (measured or not), resolved (``scaling.resolve_gpu``).
        precision : str
            ``fp32``, ``bf16``, ``fp16``, ...
        steps : int, optional
            Denoising steps; required when the law has a per-step overhead.
        level : float, optional
            Interval level (default: the file's, 0.9).
        model_keys : tuple of str
            Registry key / id of the model (only for laws fitted per model).
        byte_by_role : mapping role -> bytes, optional
            Bytes moved by the call per role, whole batch (``FlopProfile.by_role_byte()``); required
            by the roofline forms.

        Returns
        -------
        dict role -> Interval, plus ``"total"``.
        """
        level = self.interval if level is None else float(level)
        law = self._pick(self._gpu_key(gpu), model_keys)
        flops = self._inputs(flop_by_role, steps, law.energy_states())
        byte = self._bytes(byte_by_role, flops, law.energy_states())
        return self._energy(law, flops, steps, hardware_row(gpu, precision_plan(precision, gpu)), level, byte=byte)

    def predict_time(self, flop_by_role: Mapping[str, float], gpu: GPUSpec, precision: str, *,
                     steps: int | None = None, level: float | None = None, model_keys: tuple[str, ...] = (),
                     byte_by_role: Mapping[str, float] | None = None) -> Interval:
        """Wall-clock time (s) of ONE call with a ``level`` interval (arguments of :meth:`predict_energy`)."""
        level = self.interval if level is None else float(level)
        law = self._pick(self._gpu_key(gpu), model_keys)
        if not law.time_states():
            raise LawError(f"law {self.name!r} has no time law")
        flops = self._inputs(flop_by_role, steps, law.time_states())
        byte = self._bytes(byte_by_role, flops, law.time_states())
        return self._time(law, flops, steps, hardware_row(gpu, precision_plan(precision, gpu)), level, byte=byte)

    def predict(self, setting: Any, flop_by_role: Mapping[str, float], gpu: GPUSpec, model: Any = None,
                byte_by_role: Mapping[str, float] | None = None) -> LawPrediction:
        """Energy per role and in total, time, flags and notes of one generation call.

        ``setting`` is a :class:`~scaling.settings.GenerationSetting` (its precision and steps are
        used), ``gpu`` a resolved :class:`~scaling.hardware.GPUSpec`, ``model`` the resolved
        :class:`~scaling.registry.ModelSpec` (needed for the dequantisation term of weight-only
        precisions and for laws fitted per model), ``byte_by_role`` the bytes moved per role
        (``FlopProfile.by_role_byte()``; required by the roofline forms). Weight-only precisions add
        :func:`scaling.precision.dequant_cost` to the denoiser and the total (it shifts their
        intervals, it does not widen them).
        """
        precision, steps, level = setting.precision, setting.steps, self.interval
        keys = tuple(k for k in (getattr(model, "key", None), getattr(model, "id", None), setting.model) if k)
        law = self._pick(self._gpu_key(gpu), keys)
        flops = self._inputs(flop_by_role, steps, law.energy_states() + law.time_states())
        byte = self._bytes(byte_by_role, flops, law.energy_states() + law.time_states())
        plan = precision_plan(precision, gpu)
        hw = hardware_row(gpu, plan)
        total_flop = sum(flops.values())
        total_byte = sum(byte.values()) if byte is not None else None
        reads_bytes = any(s.reads_bytes for s in law.energy_states() + law.time_states())
        flags = law.coverage.flags(gpu, precision, model, keys, total_flop, total_byte if reads_bytes else None)
        energy = self._energy(law, flops, steps, hw, level, flags["widen"], byte)
        notes = []
        if law.time_states():
            time = self._time(law, flops, steps, hw, level, flags["widen"], byte)
        else:
            time = Interval(math.nan, math.nan, math.nan, level)
            notes.append("the law has no time law: time not predicted")
        measured = flags["gpu_measured"]
        if not measured:
            notes.append(f"no measurements on {gpu.key} in the law's data: predicted from its registry figures "
                         "(peak FLOP/s, bandwidth, TDP) through the hardware terms")
        notes.extend(plan.notes)
        precision_in_data = not law.precisions or plan.compute in law.precisions
        if not precision_in_data:
            notes.append(f"precision {precision} (matmuls at {plan.compute}) is outside the law's data "
                         f"({', '.join(law.precisions)})")
        if plan.weight_only:
            if steps is None:
                notes.append(f"{precision}: dequantisation cost not added (steps unknown)")
            else:
                cost = dequant_cost(model, precision, gpu, int(steps))
                if cost.energy_j > 0:
                    for key in {"denoiser" if "denoiser" in energy else "total", "total"}:
                        energy[key] = energy[key].shifted(cost.energy_j)
                    if time.finite:
                        time = time.shifted(cost.time_s)
                if cost.note:
                    notes.append(cost.note)
        terms = None
        if law.time is not None and law.time.reads_bytes:
            c_s, m_s = law.time.roofline_terms(self._row(total_flop, steps, hw, total_byte))
            terms = (float(c_s[0]), float(m_s[0]))
        in_range = flags["flop_in_range"]
        if not in_range:
            notes.append(f"{total_flop:.3g} FLOP is outside the law's data ({law.flop_range[0]:.3g}-"
                         f"{law.flop_range[1]:.3g} FLOP): extrapolation")
        if flags["extrapolation"]:
            if flags["widen"]:
                notes.append("interval widened for extrapolation by the out-of-split spread of "
                             + ", ".join(flags["widen"]) + " (see the README: predict semantics)")
            elif law.spread is None:
                notes.append("this law file stores no residual_spread: the interval is not widened for extrapolation")
        if law.method == "flop_share":
            notes.append("per-component energies: the total split by FLOP share (the law was fitted on whole calls)")
        order = [r for r in ROLE_ORDER if r in energy] + [r for r in energy if r not in ROLE_ORDER and r != "total"]
        t = time.value
        return LawPrediction(
            energy_j={**{r: energy[r] for r in order}, "total": energy["total"]}, time_s=time,
            time_by_role_s={r: (t * (flops.get(r, 0.0) / total_flop) if math.isfinite(t) else None) for r in order},
            gpu_measured=measured, precision_in_data=precision_in_data, flop_in_range=in_range,
            byte_in_range=flags["byte_in_range"], roofline_terms_s=terms,
            law_name=self.name, level=level, notes=tuple(notes),
            precision_measured_on_gpu_class=flags["precision_measured_on_gpu_class"],
            model_in_data=flags["model_in_data"], family_in_data=flags["family_in_data"],
            extrapolation=tuple(flags["extrapolation"]), widened_by=tuple(flags["widen"]),
        )


#: The former name of :class:`Law` (a law file is not always the shipped one).
ShippedLaw = Law


def law_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Law:
    """Build the law of a law document (what :func:`load_law` does after reading the file)."""
    return Law(data, source)


def default_law_path():
    """The shipped default law inside the package (``scaling/_laws/default.json``)."""
    return resources.files("scaling").joinpath("_laws", "default.json")


def load_law(path: str | Path | None = None) -> Law:
    """Read and check a law file (None: the shipped default law). Read afresh on every call.

    Raises
    ------
    LawError
        The file is missing, not JSON, or not a valid ``scaling.law/1`` document.
    """
    if path is None:
        p = default_law_path()
        if not p.is_file():
            raise LawError("the shipped default law is missing: rebuild it with `python -m fits.default_law`")
        text, source = p.read_text(encoding="utf-8"), str(p)
    else:
        p = Path(path)
        source = str(path)
        if p.is_dir():
            raise LawError(f"law file {source!r} is a folder; rule: a law JSON written by `scaling fit --out`")
        if not p.is_file():
            raise LawError(f"law file {source!r} does not exist")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise LawError(f"law file {source!r} is not a law JSON (byte {exc.start} is not UTF-8)") from None
        except OSError as exc:
            raise LawError(f"law file {source!r} cannot be read ({(exc.strerror or str(exc)).lower()})") from None
    return Law(_parse_json(text, source), source)


def _parse_json(text: str, source: str) -> Any:
    """The law document of ``text``. NaN and Infinity (JSON extensions that a law file never holds:
    it is written with ``allow_nan=False``) are refused wherever they are, naming the key."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LawError(f"law file {source!r} is not a law JSON ({exc})") from None
    except RecursionError:
        raise LawError(f"law file {source!r} is nested too deeply to be a law JSON") from None
    bad = _non_finite(doc)
    if bad is not None:
        path, value = bad
        raise LawError(f"law file {source!r}, {path or 'the document'}: {value} is not a number; "
                       "rule: finite numbers only (NaN and Infinity are refused)")
    return doc


def _non_finite(doc: Any, path: str = "") -> tuple[str, str] | None:
    """(dotted path, 'NaN' / 'Infinity' / '-Infinity') of the first non-finite number, or None."""
    stack = [(path, doc)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return where, "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
        if isinstance(v, Mapping):
            stack.extend((f"{where}.{k}" if where else str(k), x) for k, x in reversed(list(v.items())))
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None
