"""Where a prediction leaves a law's data, and how much wider its interval gets there.

A law file says what its data covers in its ``training`` block and how far its predictions miss
outside it in ``residual_spread`` (both written by :mod:`fits.default_law`).
:class:`DataCoverage` reads them; :meth:`DataCoverage.flags` answers, for one call:

- ``gpu_measured``: the GPU (registry key) is in ``training.gpus``;
- ``precision_measured_on_gpu_class``: the precision's class (:func:`precision_class`: the matmul
  format it runs at, bf16 and fp16 one class on a chip whose peaks for them are equal) was
  measured on a GPU of the same architecture (``training.gpu_precisions``: [GPU key, precision]
  pairs; a file without them: every listed precision on every listed GPU);
- ``model_in_data`` / ``family_in_data``: the model (``training.model_keys`` or ``models``) and
  its registry family (``training.families``, else resolved from the keys) are in the data;
- ``flop_in_range``: the call's FLOP count lies in ``training.flop_range``.
- ``byte_in_range``: the bytes it moves lie in ``training.byte_range`` (laws that read bytes).

The interval widening (:data:`SPREAD_RULE`): the log-space variance of a prediction interval,
``g' Cov g + sigma^2``, gains ``max(sigma2_split - sigma^2, 0)`` for each independent reason,
``sigma2_split`` being the split's mean squared out-of-fold log residual:

- ``gpu_out`` for a GPU never measured, or a precision class never measured on its architecture
  (once, if both);
- ``model_out`` for a model outside the data, ``family_out`` instead when its family is outside
  too.

The FLOP range has no split of its own: it is flagged, not widened. A file without
``residual_spread`` flags and does not widen. numpy-free; the registry lookups are the
vocabulary's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from scaling.errors import LawError, ScalingError
from scaling.hardware import GPUSpec, resolve_gpu
from scaling.precision import SIXTEEN_BIT, precision_plan
from scaling.registry import resolve_model

__all__ = ["SPREAD_RULE", "SPREAD_SPLITS", "DataCoverage", "precision_class", "read_spreads", "widen_interval"]

SPREAD_SPLITS = ("gpu_out", "model_out", "family_out")

SPREAD_RULE = ("log-space interval variance g' Cov g + sigma^2, plus max(sigma2_split - sigma^2, 0) per reason: "
               "gpu_out for a GPU never measured or a precision class never measured on its architecture; model_out "
               "for a model outside the data (family_out when its family is outside too); the split spreads are the "
               "law file's residual_spread (leave-one-group-out log residuals)")


def precision_class(precision: str, gpu: GPUSpec) -> str:
    """The class of ``precision`` on ``gpu`` for the extrapolation flags: the stored format its
    matmuls run at (:func:`scaling.precision.precision_plan`), with bf16 and fp16 one class
    (``"16-bit float"``) on a chip whose bf16 and fp16 peaks are equal (same law inputs)."""
    compute = precision_plan(precision, gpu).compute
    peaks = {p: gpu.peak_flop_per_s.get(p) for p in SIXTEEN_BIT}
    if compute in SIXTEEN_BIT and None not in peaks.values() and len(set(peaks.values())) == 1:
        return "16-bit float"
    return compute


def widen_interval(m: float, lo: float, hi: float, t: float, extra_var: float) -> tuple[float, float, float]:
    """``(m, lo, hi)`` with ``[lo, hi]`` (a log-space interval ``exp(mu -+ t s)``) widened to
    ``exp(mu -+ t sqrt(s^2 + extra_var))``; the central value ``m`` is kept."""
    if extra_var <= 0 or not (lo > 0 and hi > 0):
        return m, lo, hi
    mu, half = 0.5 * (math.log(lo) + math.log(hi)), 0.5 * (math.log(hi) - math.log(lo))
    wide = math.sqrt(half * half + t * t * extra_var)
    return m, math.exp(mu - wide), math.exp(mu + wide)


def read_spreads(block: Any, where: str) -> dict[str, dict[str, float]] | None:
    """A law file's ``residual_spread`` as {target: {split: sigma2}}; None when it has none.

    Raises
    ------
    LawError
        A block that is not an object, or a ``sigma2`` that is not a finite number >= 0.
    """
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise LawError(f"{where}: residual_spread is not a JSON object")
    out: dict[str, dict[str, float]] = {}
    for target in ("energy", "time"):
        part = block.get(target) or {}
        if not isinstance(part, Mapping):
            raise LawError(f"{where}: residual_spread.{target} is not a JSON object")
        out[target] = {}
        for split, rec in part.items():
            v = rec.get("sigma2") if isinstance(rec, Mapping) else rec
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise LawError(f"{where}: residual_spread.{target}.{split}.sigma2 is {v!r}; rule: a finite number >= 0")
            out[target][str(split)] = float(v)
    return out


def _names(v: Any, where: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise LawError(f"{where} is {v!r:.60}; rule: a list of names")
    return tuple(v)


@dataclass
class DataCoverage:
    """What a law's data covers (its file's ``training`` block) and its out-of-split spreads."""

    gpus: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    model_keys: tuple[str, ...] = ()
    families: tuple[str, ...] | None = None
    gpu_precisions: tuple[tuple[str, str], ...] | None = None
    flop_range: tuple[float, float] | None = None
    byte_range: tuple[float, float] | None = None
    classes: tuple[tuple[str, str], ...] | None = None   # training.measured_classes: (architecture, class)
    spread: dict[str, dict[str, float]] | None = None
    _classes: set[tuple[str, str]] | None = field(default=None, repr=False)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], where: str) -> "DataCoverage":
        """Read ``doc["training"]`` and ``doc["residual_spread"]``; a bad field is one LawError line."""
        training = doc.get("training") or {}
        if not isinstance(training, Mapping):
            raise LawError(f"{where}: training is not a JSON object")
        br = training.get("byte_range")
        if br is not None and not (isinstance(br, list) and len(br) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in br)):
            raise LawError(f"{where}: training.byte_range is {br!r}; rule: [lowest, highest] bytes, finite numbers")
        fr = training.get("flop_range")
        if fr is not None and (not isinstance(fr, list) or len(fr) != 2 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in fr)
                or fr[0] > fr[1]):
            raise LawError(f"{where}: training.flop_range is {fr!r}; rule: [lowest, highest] FLOP, finite numbers")
        pairs = training.get("gpu_precisions")
        if pairs is not None and (not isinstance(pairs, list) or not all(
                isinstance(x, list) and len(x) == 2 and all(isinstance(v, str) for v in x) for x in pairs)):
            raise LawError(f"{where}: training.gpu_precisions is {pairs!r:.60}; rule: a list of [gpu key, precision]")
        fams = training.get("families")
        classes = training.get("measured_classes")
        if classes is not None and (not isinstance(classes, list) or not all(
                isinstance(x, list) and len(x) == 2 and all(isinstance(v, str) for v in x) for x in classes)):
            raise LawError(f"{where}: training.measured_classes is {classes!r:.60}; rule: a list of "
                           "[architecture, precision class]")
        return cls(
            gpus=_names(training.get("gpus"), f"{where}, training.gpus"),
            precisions=_names(training.get("precisions"), f"{where}, training.precisions"),
            models=_names(training.get("models"), f"{where}, training.models"),
            model_keys=_names(training.get("model_keys"), f"{where}, training.model_keys"),
            families=_names(fams, f"{where}, training.families") if fams is not None else None,
            gpu_precisions=tuple((a, b) for a, b in pairs) if pairs is not None else None,
            flop_range=(float(fr[0]), float(fr[1])) if fr is not None else None,
            byte_range=(float(br[0]), float(br[1])) if br is not None else None,
            classes=tuple((a, b) for a, b in classes) if classes is not None else None,
            spread=read_spreads(doc.get("residual_spread"), where),
        )

    def measured_classes(self) -> set[tuple[str, str]]:
        """(architecture, precision class) pairs measured in the law's data (``training.measured_classes``,
        written at fit time; for an older file, resolved from its GPUs and precisions)."""
        if self.classes is not None:
            return set(self.classes)
        if self._classes is None:
            pairs = self.gpu_precisions
            if pairs is None:  # an older file: every precision on every GPU it lists
                pairs = tuple((g, p) for g in self.gpus for p in self.precisions)
            out = set()
            for g, p in pairs:
                try:
                    spec = resolve_gpu(g)
                    out.add((spec.architecture, precision_class(p, spec)))
                except ScalingError:  # a GPU or precision this registry no longer knows
                    continue
            self._classes = out
        return self._classes

    def data_families(self) -> set[str]:
        """Registry families of the law's models (``training.families``, else resolved from the keys)."""
        if self.families is not None:
            return set(self.families)
        out = set()
        for k in self.model_keys:
            try:
                out.add(resolve_model(k).family)
            except ScalingError:  # a model this registry does not know
                continue
        return out

    def extra_variance(self, target: str, splits: tuple[str, ...], sigma2: float) -> float:
        """The variance ``splits`` add to a ``target`` interval of in-sample variance ``sigma2``."""
        spread = (self.spread or {}).get(target) or {}
        return sum(max(spread[k] - sigma2, 0.0) for k in splits if spread.get(k) is not None)

    def flags(self, gpu: GPUSpec, precision: str, model: Any, keys: tuple[str, ...],
              total_flop: float, total_byte: float | None = None) -> dict[str, Any]:
        """The flags of the module doc for one call, the reasons in words (``extrapolation``) and
        the splits that widen its interval (``widen``)."""
        measured = gpu.key in self.gpus
        cls = precision_class(precision, gpu)
        classes = self.measured_classes()
        prec_ok = not classes or (gpu.architecture, cls) in classes
        model_ok = not (self.model_keys or self.models) or any(k in self.model_keys or k in self.models
                                                                for k in keys)
        family = getattr(model, "family", None)
        fams = self.data_families()
        family_ok = not str(getattr(model, "key", "")).startswith("local:") and (family is None or not fams or family in fams)
        fr = self.flop_range
        in_range = fr is None or fr[0] <= total_flop <= fr[1]
        br = self.byte_range
        byte_ok = br is None or total_byte is None or br[0] <= total_byte <= br[1]
        reasons, widen = [], []
        if not measured:
            reasons.append(f"GPU {gpu.key} was never measured in the law's data (measured: {', '.join(self.gpus)})")
        if not prec_ok:
            seen = sorted(c for a, c in classes if a == gpu.architecture)
            reasons.append(f"precision {precision} ({cls} matmuls) was never measured on {gpu.architecture} GPUs"
                           + (f" (measured there: {', '.join(seen)})" if seen else
                              f" (no {gpu.architecture} GPU in the data)"))
        if not measured or not prec_ok:
            widen.append("gpu_out")
        if not model_ok:
            if family_ok:
                reasons.append(f"model {keys[0] if keys else '?'} is not in the law's data (its family {family} is)")
                widen.append("model_out")
            else:
                reasons.append(f"model family outside the training data: {keys[0]} is an unregistered architecture (a local folder)" if keys and str(keys[0]).startswith("local:") else f"model family {family} is not in the law's data")
                energy = (self.spread or {}).get("energy") or {}
                widen.append("family_out" if "family_out" in energy else "model_out")
        if not in_range:
            reasons.append(f"{total_flop:.3g} FLOP lies outside the law's data ({fr[0]:.3g}-{fr[1]:.3g} FLOP)")
        if not byte_ok:
            reasons.append(f"{total_byte:.3g} bytes moved lie outside the law's data ({br[0]:.3g}-{br[1]:.3g} bytes)")
        return {"gpu_measured": measured, "precision_measured_on_gpu_class": prec_ok, "model_in_data": model_ok,
                "family_in_data": family_ok, "flop_in_range": in_range, "byte_in_range": byte_ok,
                "extrapolation": reasons,
                "widen": tuple(widen) if self.spread is not None else ()}
