"""The GPU hardware registry: peak FLOP/s per precision, memory, bandwidth, power.

The figures live in ``scaling/_registry/gpus.json``, one entry per board, each figure with
the vendor document it came from. This module loads that file once and answers three
questions::

    resolve_gpu("NVIDIA H100 80GB HBM3")   # -> GPUSpec for "h100-sxm"
    resolve_gpu("a100")                     # -> GPUSpec for "a100-sxm4-40gb" (family default)
    resolve_gpu("h100").peak_for("bf16")    # -> 989.5e12 dense FLOP/s

Conventions (also written in the JSON under ``conventions``):

- ``peak_flop_per_s`` holds *dense* peaks (no 2:4 structured sparsity). NVIDIA often prints
  only the sparse tensor figure ("*with sparsity"); the registry stores half of it and the
  source text says so. ``fp32`` is the CUDA-core rate, the others are tensor-core rates with
  FP32 accumulate. ``int8`` is in OP/s. A precision the chip lacks is omitted, never zero.
- ``memory_byte`` is the vendor "GB" times 2**30; bandwidth uses 1 GB/s = 1e9 B/s.
- ``tdp_w`` is the maximum board power as printed; ``idle_power_w`` is ``None`` unless a
  published figure exists (NVIDIA publishes none).

Names are matched case-insensitively, ignoring spaces, dashes and underscores, after
dropping a leading ``NVIDIA`` / ``Tesla`` / ``GeForce`` word, so the strings NVML reports
(``"Tesla V100-SXM2-16GB"``) and the ones users type (``"v100"``) share one index.

Family defaults (what a bare family name resolves to):

=========  =================  ===================================================
alias      key                why
=========  =================  ===================================================
a100       a100-sxm4-40gb     the A100 board the public data measured (ML.ENERGY v2);
                              name ``a100-80gb`` for the 80GB board (never measured)
a100-pcie  a100-pcie-80gb     the PCIe board still sold
h100       h100-sxm           the DGX/HGX board; also the toolkit's DEFAULT_GPU
v100       v100-sxm2-16gb     the common cloud V100 (compute is identical at 32GB)
h200       h200-sxm
b200       b200-sxm           the HGX B200 board (1,000 W)
=========  =================  ===================================================

Precision names and the rule of which stored peak answers which precision live in
:mod:`scaling.precision`; :meth:`GPUSpec.peak_precision_for` applies it.

Pure Python: importing this module imports neither torch nor pandas.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

from scaling.errors import DataError, UnknownGPUError
from scaling.precision import PRECISIONS, STORED_PRECISIONS, peak_precision

__all__ = [
    "DEFAULT_GPU",
    "PRECISIONS",  # re-exported from scaling.precision, where it is defined
    "FAMILY_DEFAULTS",
    "GPUSpec",
    "family_default_note",
    "list_gpus",
    "resolve_gpu",
]

#: The registry key used when a setting names no GPU.
DEFAULT_GPU = "h100-sxm"

#: Bare family names that pick one of several boards, and why that board (the table above).
FAMILY_DEFAULTS: Mapping[str, str] = MappingProxyType({
    "a100": "the A100 board the law's public data measured (ML.ENERGY v2, A100-SXM4-40GB); "
            "name a100-80gb or a100-pcie for another board",
    "a100-sxm": "the A100 board the law's public data measured; name a100-sxm4-80gb for the 80GB board",
    "a100-sxm4": "the A100 board the law's public data measured; name a100-sxm4-80gb for the 80GB board",
    "a100-pcie": "the PCIe board still sold; name a100-pcie-40gb for the 40GB board",
    "h100": "the DGX/HGX board; name h100-pcie for the PCIe card",
    "v100": "the common cloud V100 (compute is identical at 32GB); name v100-32gb for the 32GB board",
})

# Figures that must carry a source when present.
_SCALAR_FIGURES = ("memory_byte", "memory_bandwidth_byte_per_s", "tdp_w", "idle_power_w")

_REGISTRY_FILE = "gpus.json"
_VENDOR_WORDS = frozenset({"nvidia", "tesla", "geforce"})
_SEPARATORS = re.compile(r"[\s\-_]+")


@dataclass(frozen=True)
class GPUSpec:
    """One GPU board from the registry.

    Attributes
    ----------
    key : str
        Registry key, e.g. ``"h100-sxm"``.
    name : str
        Display name, e.g. ``"NVIDIA H100 SXM5 80GB HBM3"``.
    architecture : str
        ``"volta"``, ``"turing"``, ``"ampere"``, ``"ada"``, ``"hopper"`` or ``"blackwell"``.
    peak_flop_per_s : Mapping[str, float]
        Dense peak FLOP/s (OP/s for ``int8``) per stored precision; absent = not supported.
    memory_byte : int
        On-board memory in bytes.
    memory_bandwidth_byte_per_s : float
        Peak memory bandwidth in bytes per second.
    tdp_w : float
        Maximum board power in watts.
    idle_power_w : float or None
        Published idle power, or ``None`` when no figure is published.
    sources : Mapping[str, str]
        Figure name (``"fp16"``, ``"memory_byte"``, ...) -> document, URL and quoted value.
    aliases : tuple of str
        Names that resolve to this board (short names and NVML names), as written in the registry.
    notes : str
        What was left out and why, and other caveats.
    """

    key: str
    name: str
    architecture: str
    peak_flop_per_s: Mapping[str, float]
    memory_byte: int
    memory_bandwidth_byte_per_s: float
    tdp_w: float
    idle_power_w: float | None
    sources: Mapping[str, str]
    aliases: tuple[str, ...] = field(default=(), compare=False)
    notes: str = field(default="", compare=False)

    def __hash__(self) -> int:  # the mappings are read-only views; the key identifies the board
        return hash(self.key)

    def peak_precision_for(self, precision: str) -> str:
        """Name the stored precision whose peak answers ``precision`` on this board.

        ``"fp8"`` on an A100 gives ``"bf16"``; ``"nf4"`` gives ``"bf16"`` everywhere it exists.
        The rule is :func:`scaling.precision.peak_precision`; what a setting at a precision runs
        at (weight-only int8 at bf16, ...) is :func:`scaling.precision.precision_plan`.

        Raises
        ------
        InvalidSettingError
            If ``precision`` is not one of :data:`PRECISIONS`.
        """
        return peak_precision(precision, self)

    def peak_for(self, precision: str) -> float:
        """Dense peak FLOP/s this board reaches for matmuls at ``precision``.

        Stored precisions return their own peak. Others fall back: ``nf4`` / ``fp4``
        (weight-only 4-bit, computed in bf16) -> bf16 peak; ``fp8`` / ``int8`` on a chip
        without them -> bf16 (or fp16) peak; ``tf32`` / ``bf16`` / ``fp16`` on a chip without
        those tensor cores -> fp32 peak.

        Raises
        ------
        InvalidSettingError
            If ``precision`` is not one of :data:`PRECISIONS`.
        """
        return self.peak_flop_per_s[self.peak_precision_for(precision)]


def resolve_gpu(name: str) -> GPUSpec:
    """Return the registry entry for a GPU key, alias or NVML device name.

    Matching ignores case, spaces, dashes, underscores and a leading ``NVIDIA`` /
    ``Tesla`` / ``GeForce`` word: ``"NVIDIA A100-SXM4-40GB"``, ``"a100_sxm4_40gb"`` and
    ``"A100 SXM4 40GB"`` are the same board.

    Raises
    ------
    UnknownGPUError
        If the name matches no entry; the message lists the known keys.
    """
    registry = _registry()
    if isinstance(name, GPUSpec):
        return name
    if not isinstance(name, str):
        raise UnknownGPUError(f"unknown GPU {name!r}: expected a GPU name string")
    normalized = _normalize_name(name)
    key = registry.index.get(normalized)
    if key is not None:
        return registry.by_key[key]
    hint = ""
    close = difflib.get_close_matches(normalized, list(registry.index), n=1, cutoff=0.75)
    if close:
        hint = f" (did you mean {registry.by_key[registry.index[close[0]]].key!r}?)"
    known = ", ".join(sorted(registry.by_key))
    raise UnknownGPUError(f"unknown GPU {name!r}{hint}: known GPUs are {known}, see `scaling gpus`")


def family_default_note(name: Any) -> str | None:
    """A line saying which board a bare family name (``"a100"``) resolved to, and why; None for
    a name that identifies one board (or a :class:`GPUSpec`)."""
    if not isinstance(name, str):
        return None
    normalized = _normalize_name(name)
    for alias, why in FAMILY_DEFAULTS.items():
        if _normalize_name(alias) == normalized:
            spec = resolve_gpu(name)
            return f"`{name}` resolves to {spec.name} ({spec.key}): {why}"
    return None


def list_gpus() -> list[GPUSpec]:
    """Every registered GPU, oldest architecture first (registry order)."""
    return list(_registry().by_key.values())


# --------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Registry:
    by_key: Mapping[str, GPUSpec]
    index: Mapping[str, str]  # normalized alias -> key


def _normalize_name(name: str) -> str:
    tokens = [t for t in _SEPARATORS.split(name.strip().lower()) if t]
    while len(tokens) > 1 and tokens[0] in _VENDOR_WORDS:
        tokens.pop(0)
    return "".join(tokens)


def _read_registry_text() -> str:
    return resources.files("scaling._registry").joinpath(_REGISTRY_FILE).read_text(encoding="utf-8")


@functools.cache
def _registry() -> _Registry:
    try:
        raw = json.loads(_read_registry_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"GPU registry {_REGISTRY_FILE} cannot be read: {exc}") from exc
    entries = raw.get("gpus") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(f"GPU registry {_REGISTRY_FILE} has no `gpus` list")

    by_key: dict[str, GPUSpec] = {}
    index: dict[str, str] = {}
    for entry in entries:
        spec = _spec_from_entry(entry)
        if spec.key in by_key:
            raise DataError(f"GPU registry {_REGISTRY_FILE}: key {spec.key!r} appears twice")
        by_key[spec.key] = spec
        for alias in (spec.key, *spec.aliases):
            normalized = _normalize_name(alias)
            owner = index.setdefault(normalized, spec.key)
            if owner != spec.key:
                raise DataError(
                    f"GPU registry {_REGISTRY_FILE}: alias {alias!r} names both {owner!r} and {spec.key!r}"
                )
    if DEFAULT_GPU not in by_key:
        raise DataError(f"GPU registry {_REGISTRY_FILE}: DEFAULT_GPU {DEFAULT_GPU!r} is not registered")
    return _Registry(by_key=MappingProxyType(by_key), index=MappingProxyType(index))


def _spec_from_entry(entry: Any) -> GPUSpec:
    where = f"GPU registry {_REGISTRY_FILE}"
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise DataError(f"{where}: every entry needs a string `key`, got {entry!r:.80}")
    key = entry["key"]
    where = f"{where}, entry {key!r}"
    try:
        peaks = {str(p): float(v) for p, v in entry["peak_flop_per_s"].items()}
        sources = {str(k): str(v) for k, v in entry["sources"].items()}
        idle = entry.get("idle_power_w")
        spec = GPUSpec(
            key=key,
            name=str(entry["name"]),
            architecture=str(entry["architecture"]),
            peak_flop_per_s=MappingProxyType(peaks),
            memory_byte=int(entry["memory_byte"]),
            memory_bandwidth_byte_per_s=float(entry["memory_bandwidth_byte_per_s"]),
            tdp_w=float(entry["tdp_w"]),
            idle_power_w=None if idle is None else float(idle),
            sources=MappingProxyType(sources),
            aliases=tuple(str(a) for a in (*entry.get("aliases", ()), *entry.get("nvml_names", ()))),
            notes=str(entry.get("notes", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where} breaks the schema: {exc!r}") from exc

    unknown = set(spec.peak_flop_per_s) - set(STORED_PRECISIONS)
    if unknown:
        raise DataError(f"{where}: peak_flop_per_s has unknown precisions {sorted(unknown)}")
    if "fp32" not in spec.peak_flop_per_s:
        raise DataError(f"{where}: peak_flop_per_s needs an fp32 peak")
    if any(v <= 0 for v in spec.peak_flop_per_s.values()):
        raise DataError(f"{where}: peak_flop_per_s values must be positive (omit a missing precision)")
    if spec.memory_byte <= 0 or spec.memory_bandwidth_byte_per_s <= 0 or spec.tdp_w <= 0:
        raise DataError(f"{where}: memory, bandwidth and TDP must be positive")
    present = [*spec.peak_flop_per_s, *(f for f in _SCALAR_FIGURES if getattr(spec, f) is not None)]
    missing = [f for f in present if not spec.sources.get(f, "").strip()]
    if missing:
        raise DataError(f"{where}: figures without a source: {missing}")
    return spec
