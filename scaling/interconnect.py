"""The interconnect registry: how fast the GPUs of one server reach each other.

The figures live in ``scaling/_registry/interconnect.json``, one entry per key of the hardware
registry (:mod:`scaling.hardware`), each figure citing a vendor document of the file's
``_sources`` section by its id in brackets. This module loads that file once::

    interconnect("h100")                    # -> Interconnect for "h100-sxm": NVLink 4, 450 GB/s per direction
    link_byte_per_s("h100", 8)              # -> 450e9 (NVLink: 8 GPUs fit the HGX board)
    link_byte_per_s("l40s", 2)              # -> 32e9  (no NVLink: PCIe Gen4 x16)

Conventions (also written in the JSON under ``conventions``):

- bandwidths are **per direction** (what one GPU can send, or receive, per second), in B/s with
  1 GB/s = 1e9 B/s. NVIDIA prints NVLink and PCIe bandwidth summed over both directions
  (H100 SXM "NVLink: 900GB/s", "PCIe Gen5: 128GB/s"); the registry stores half of it.
- ``nvlink_domain_gpus`` is the usual NVLink domain of the board: 8 on an HGX/DGX board, 2 for
  PCIe boards paired by an NVLink bridge (``nvlink_via_bridge``), 1 without NVLink (then
  ``nvlink_gen`` is ``None`` and the NVLink bandwidth 0).

Pure Python: importing this module imports neither torch nor pandas.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Mapping

from scaling.errors import DataError, InvalidSettingError
from scaling.hardware import GPUSpec, list_gpus, resolve_gpu

__all__ = ["Interconnect", "interconnect", "link_byte_per_s", "list_interconnects"]

_REGISTRY_FILE = "interconnect.json"
_FIGURES = ("nvlink_gen", "nvlink_byte_per_s_per_direction", "nvlink_domain_gpus",
            "pcie_gen", "pcie_lanes", "pcie_byte_per_s_per_direction")
_CITATION = re.compile(r"\[([a-z0-9][a-z0-9.\-]*)\]")


@dataclass(frozen=True)
class Interconnect:
    """The links of one GPU board.

    Attributes
    ----------
    key : str
        Hardware registry key, e.g. ``"h100-sxm"``.
    nvlink_gen : int or None
        NVLink generation (2 Volta ... 5 Blackwell); ``None`` when the board has no NVLink.
    nvlink_byte_per_s_per_direction : float
        NVLink bandwidth of one GPU, one direction, summed over its links; 0 without NVLink.
    nvlink_domain_gpus : int
        GPUs that reach each other over NVLink in the usual server (8 HGX, 2 bridged pair, 1 none).
    nvlink_via_bridge : bool
        The domain is a pair of PCIe boards joined by an (optional) NVLink bridge.
    pcie_gen, pcie_lanes : int
        Host link generation and width.
    pcie_byte_per_s_per_direction : float
        Host link bandwidth, one direction.
    sources : Mapping[str, str]
        Figure name -> the cited documents (title, URL) and the quoted text.
    notes : str
        Caveats (topology, optional bridges, ...).
    """

    key: str
    nvlink_gen: int | None
    nvlink_byte_per_s_per_direction: float
    nvlink_domain_gpus: int
    nvlink_via_bridge: bool
    pcie_gen: int
    pcie_lanes: int
    pcie_byte_per_s_per_direction: float
    sources: Mapping[str, str]
    notes: str = ""

    def __hash__(self) -> int:  # the mapping is a read-only view; the key identifies the board
        return hash(self.key)

    @property
    def has_nvlink(self) -> bool:
        return self.nvlink_gen is not None and self.nvlink_byte_per_s_per_direction > 0


def interconnect(gpu: str | GPUSpec) -> Interconnect:
    """The interconnect of a GPU key, alias or NVML name (anything :func:`scaling.hardware.resolve_gpu` takes).

    Raises
    ------
    UnknownGPUError
        If the name matches no registered GPU.
    DataError
        If the GPU is registered but the interconnect registry has no entry for it.
    """
    key = resolve_gpu(gpu).key
    entry = _registry().get(key)
    if entry is None:
        raise DataError(f"interconnect registry {_REGISTRY_FILE} has no entry for GPU {key!r}: add one with its sources")
    return entry


def list_interconnects() -> list[Interconnect]:
    """One entry per registered GPU, in hardware-registry order."""
    return [interconnect(spec.key) for spec in list_gpus()]


def link_byte_per_s(gpu: str | GPUSpec, n_gpus: int, *, nvlink_bridge: bool = True) -> float:
    """Per-direction bandwidth one GPU gets in a collective among ``n_gpus`` GPUs of this board.

    The assumption: the ``n_gpus`` GPUs sit in one server, packed into as few NVLink domains as
    possible. A collective among ``n_gpus <= nvlink_domain_gpus`` runs over NVLink at the GPU's
    full NVLink rate (NVSwitch boards give every GPU its full rate to any peer; the V100
    hybrid cube-mesh is approximated by the same aggregate); a larger group crosses domains, and
    its slowest hop is the host PCIe link, so the whole collective is priced at the PCIe rate
    (NCCL's ring or all-to-all runs at the speed of its slowest link). Boards without NVLink
    always use PCIe. ``nvlink_bridge=False`` says a bridged PCIe pair has no bridge installed
    (then it uses PCIe). ``n_gpus == 1`` returns the same figure as a group of 2 would get:
    no byte moves, the figure only keeps ``bytes / bandwidth`` finite.

    Raises
    ------
    InvalidSettingError
        If ``n_gpus`` is not a positive whole number.
    """
    if isinstance(n_gpus, bool) or not isinstance(n_gpus, int) or n_gpus < 1:
        raise InvalidSettingError(f"`n_gpus` is {n_gpus!r}: it must be a positive whole number")
    link = interconnect(gpu)
    nvlink_usable = link.has_nvlink and (nvlink_bridge or not link.nvlink_via_bridge)
    if nvlink_usable and max(n_gpus, 2) <= link.nvlink_domain_gpus:
        return link.nvlink_byte_per_s_per_direction
    return link.pcie_byte_per_s_per_direction


# --------------------------------------------------------------------------- internals


def _read_registry_text() -> str:
    return resources.files("scaling._registry").joinpath(_REGISTRY_FILE).read_text(encoding="utf-8")


@functools.cache
def _registry() -> Mapping[str, Interconnect]:
    try:
        raw = json.loads(_read_registry_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"interconnect registry {_REGISTRY_FILE} cannot be read: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("gpus"), list) or not isinstance(raw.get("_sources"), dict):
        raise DataError(f"interconnect registry {_REGISTRY_FILE} needs a `gpus` list and a `_sources` section")
    documents = {str(k): str(v) for k, v in raw["_sources"].items()}
    out: dict[str, Interconnect] = {}
    for entry in raw["gpus"]:
        link = _entry(entry, documents)
        if link.key in out:
            raise DataError(f"interconnect registry {_REGISTRY_FILE}: key {link.key!r} appears twice")
        out[link.key] = link
    return MappingProxyType(out)


def _entry(entry: Any, documents: Mapping[str, str]) -> Interconnect:
    where = f"interconnect registry {_REGISTRY_FILE}"
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        raise DataError(f"{where}: every entry needs a string `key`, got {entry!r:.80}")
    where = f"{where}, entry {entry['key']!r}"
    try:
        gen = entry["nvlink_gen"]
        cited = {str(k): str(v) for k, v in entry["sources"].items()}
        link = Interconnect(
            key=entry["key"],
            nvlink_gen=None if gen is None else int(gen),
            nvlink_byte_per_s_per_direction=float(entry["nvlink_byte_per_s_per_direction"]),
            nvlink_domain_gpus=int(entry["nvlink_domain_gpus"]),
            nvlink_via_bridge=bool(entry["nvlink_via_bridge"]),
            pcie_gen=int(entry["pcie_gen"]),
            pcie_lanes=int(entry["pcie_lanes"]),
            pcie_byte_per_s_per_direction=float(entry["pcie_byte_per_s_per_direction"]),
            sources=MappingProxyType({k: _expand(v, documents, where) for k, v in cited.items()}),
            notes=str(entry.get("notes", "")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where} breaks the schema: {exc!r}") from exc
    missing = [f for f in _FIGURES if not link.sources.get(f, "").strip()]
    if missing:
        raise DataError(f"{where}: figures without a source: {missing}")
    if link.pcie_byte_per_s_per_direction <= 0 or link.pcie_lanes <= 0 or link.nvlink_domain_gpus < 1:
        raise DataError(f"{where}: PCIe bandwidth and lanes must be positive and the NVLink domain at least 1 GPU")
    if (link.nvlink_gen is None) != (link.nvlink_byte_per_s_per_direction == 0) or \
            (link.nvlink_gen is None and (link.nvlink_domain_gpus != 1 or link.nvlink_via_bridge)):
        raise DataError(f"{where}: a board without NVLink has nvlink_gen null, 0 B/s and a domain of 1 GPU, and only such a board")
    return link


def _expand(text: str, documents: Mapping[str, str], where: str) -> str:
    """``"[h100-datasheet] 'NVLink: 900GB/s'"`` -> the same text followed by each cited document."""
    ids = _CITATION.findall(text)
    if not ids:
        raise DataError(f"{where}: source {text[:60]!r} cites no document of `_sources` by [id]")
    unknown = [i for i in ids if i not in documents]
    if unknown:
        raise DataError(f"{where}: source cites unknown documents {unknown}")
    return text + " Documents: " + "; ".join(f"[{i}] {documents[i]}" for i in dict.fromkeys(ids)) + "."
