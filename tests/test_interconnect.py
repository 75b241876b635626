"""The interconnect registry (scaling/_registry/interconnect.json, read by scaling.interconnect)."""

from __future__ import annotations

import json
import re

import pytest

from scaling import interconnect as ic
from scaling.errors import DataError, InvalidSettingError, UnknownGPUError
from scaling.hardware import list_gpus

GPU_KEYS = [g.key for g in list_gpus()]


def test_every_registered_gpu_has_exactly_one_entry():
    assert set(ic._registry()) == set(GPU_KEYS)
    assert [link.key for link in ic.list_interconnects()] == GPU_KEYS


@pytest.mark.parametrize("key", GPU_KEYS)
def test_every_figure_cites_a_document_with_a_url(key):
    link = ic.interconnect(key)
    for figure in ic._FIGURES:
        text = link.sources[figure]
        assert "Documents: [" in text and "http" in text, (key, figure)


@pytest.mark.parametrize("key", GPU_KEYS)
def test_the_stored_per_direction_figures_are_the_ones_the_sources_derive(key):
    link = ic.interconnect(key)
    pcie = re.search(r"stored as ([\d.]+) GB/s per direction", link.sources["pcie_byte_per_s_per_direction"])
    assert pcie and float(pcie.group(1)) * 1e9 == link.pcie_byte_per_s_per_direction
    gen = re.search(r"PCIe Gen(\d) x(\d+)", link.sources["pcie_byte_per_s_per_direction"])
    assert gen and (int(gen.group(1)), int(gen.group(2))) == (link.pcie_gen, link.pcie_lanes)
    if link.has_nvlink:
        nvl = re.search(r"-> ([\d.]+) GB/s per direction", link.sources["nvlink_byte_per_s_per_direction"])
        assert nvl and float(nvl.group(1)) * 1e9 == link.nvlink_byte_per_s_per_direction
        total = re.search(r"'[^']*?([\d.,]+)\s*(GB|TB)/s[^']*'", link.sources["nvlink_byte_per_s_per_direction"])
        value = float(total.group(1).replace(",", "")) * (1e12 if total.group(2) == "TB" else 1e9)
        assert value == 2 * link.nvlink_byte_per_s_per_direction  # the datasheet prints both directions summed


def test_one_pcie_generation_has_one_figure_and_each_generation_doubles_it():
    by_gen = {}
    for link in ic.list_interconnects():
        by_gen.setdefault(link.pcie_gen, set()).add(link.pcie_byte_per_s_per_direction / link.pcie_lanes)
    assert all(len(v) == 1 for v in by_gen.values())
    per_lane = {gen: next(iter(v)) for gen, v in by_gen.items()}
    gens = sorted(per_lane)
    assert len(gens) > 1
    for lo, hi in zip(gens, gens[1:]):
        assert per_lane[hi] == 2 ** (hi - lo) * per_lane[lo]


def test_nvlink_generations_never_go_back_in_registry_order_and_beat_pcie():
    links = [link for link in ic.list_interconnects() if link.has_nvlink]
    assert links
    gens = [link.nvlink_gen for link in links]
    assert gens == sorted(gens)  # the hardware registry lists the oldest architecture first
    assert all(link.nvlink_byte_per_s_per_direction > link.pcie_byte_per_s_per_direction for link in links)


@pytest.mark.parametrize("key", GPU_KEYS)
def test_a_collective_uses_nvlink_inside_the_domain_and_pcie_beyond_it(key):
    link = ic.interconnect(key)
    if not link.has_nvlink:
        assert link.nvlink_domain_gpus == 1
        assert ic.link_byte_per_s(key, 2) == link.pcie_byte_per_s_per_direction
        return
    assert ic.link_byte_per_s(key, link.nvlink_domain_gpus) == link.nvlink_byte_per_s_per_direction
    assert ic.link_byte_per_s(key, link.nvlink_domain_gpus + 1) == link.pcie_byte_per_s_per_direction
    unbridged = ic.link_byte_per_s(key, 2, nvlink_bridge=False)
    expected = link.pcie_byte_per_s_per_direction if link.nvlink_via_bridge else link.nvlink_byte_per_s_per_direction
    assert unbridged == expected


def test_names_resolve_like_the_hardware_registry():
    assert ic.interconnect("NVIDIA H100 80GB HBM3") is ic.interconnect("h100-sxm") is ic.interconnect("h100")
    with pytest.raises(UnknownGPUError):
        ic.interconnect("h900")


@pytest.mark.parametrize("n", [0, -1, True, 2.5, "8"])
def test_link_refuses_a_gpu_count_that_is_not_a_positive_whole_number(n):
    with pytest.raises(InvalidSettingError, match="n_gpus"):
        ic.link_byte_per_s("h100", n)


def _broken(monkeypatch, mutate):
    raw = json.loads(ic._read_registry_text())
    mutate(raw)
    monkeypatch.setattr(ic, "_read_registry_text", lambda: json.dumps(raw))
    ic._registry.cache_clear()


@pytest.mark.parametrize("mutate, match", [
    (lambda raw: raw["gpus"][0]["sources"].pop("pcie_gen"), "without a source"),
    (lambda raw: raw["gpus"][0]["sources"].update(pcie_gen="no bracketed id here"), "cites no document"),
    (lambda raw: raw["gpus"][0]["sources"].update(pcie_gen="[no-such-doc] text"), "unknown documents"),
    (lambda raw: raw["gpus"].append(dict(raw["gpus"][0])), "appears twice"),
    (lambda raw: raw["gpus"][2].update(nvlink_domain_gpus=2), "without NVLink"),
    (lambda raw: raw.pop("_sources"), "_sources"),
])
def test_a_broken_registry_is_refused_naming_the_rule(monkeypatch, mutate, match):
    try:
        _broken(monkeypatch, mutate)
        with pytest.raises(DataError, match=match):
            ic._registry()
    finally:
        monkeypatch.undo()
        ic._registry.cache_clear()
    assert ic._registry()  # the shipped file loads again
