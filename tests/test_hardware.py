"""Tests for the GPU hardware registry (scaling/hardware.py, scaling/_registry/gpus.json)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from scaling import hardware
from scaling.errors import DataError, InvalidSettingError, ScalingError, UnknownGPUError
from scaling import precision as precision_module
from scaling.hardware import DEFAULT_GPU, GPUSpec, list_gpus, resolve_gpu
from scaling.precision import PRECISIONS, STORED_PRECISIONS, precision_plan

TERA = 1e12

# What users type -> the key it must resolve to (family defaults included).
USER_ALIASES = {
    "a100": "a100-sxm4-40gb",  # the board the law's public data measured (issue 15: honest defaults)
    "A100": "a100-sxm4-40gb",
    "a100-sxm4": "a100-sxm4-40gb",
    "a100-80gb": "a100-sxm4-80gb",
    "a100-40gb": "a100-sxm4-40gb",
    "a100-sxm4-40gb": "a100-sxm4-40gb",
    "a100_sxm4_80gb": "a100-sxm4-80gb",
    "a100-pcie": "a100-pcie-80gb",
    "a100-pcie-40gb": "a100-pcie-40gb",
    "a4000": "rtx-a4000",
    "rtx-a4000": "rtx-a4000",
    "a6000": "rtx-a6000",
    "rtx-a6000": "rtx-a6000",
    "RTX A6000": "rtx-a6000",
    "a40": "a40",
    "l4": "l4",
    "l40s": "l40s",
    "L40S": "l40s",
    "rtx4090": "rtx-4090",
    "rtx-4090": "rtx-4090",
    "4090": "rtx-4090",
    "RTX 4090": "rtx-4090",
    "v100": "v100-sxm2-16gb",
    "v100-32gb": "v100-sxm2-32gb",
    "t4": "t4",
    "h100": "h100-sxm",
    "H100 SXM": "h100-sxm",
    "h100-sxm5": "h100-sxm",
    "h100-pcie": "h100-pcie",
    "h200": "h200-sxm",
    "b200": "b200-sxm",
}

# What NVML's nvmlDeviceGetName reports -> key.
NVML_NAMES = {
    "NVIDIA H100 80GB HBM3": "h100-sxm",
    "NVIDIA H100 PCIe": "h100-pcie",
    "NVIDIA A100-SXM4-40GB": "a100-sxm4-40gb",
    "NVIDIA A100-SXM4-80GB": "a100-sxm4-80gb",
    "NVIDIA A100-PCIE-40GB": "a100-pcie-40gb",
    "NVIDIA A100 80GB PCIe": "a100-pcie-80gb",
    "NVIDIA RTX A6000": "rtx-a6000",
    "NVIDIA RTX A4000": "rtx-a4000",
    "NVIDIA A40": "a40",
    "NVIDIA L4": "l4",
    "NVIDIA L40S": "l40s",
    "NVIDIA GeForce RTX 4090": "rtx-4090",
    "Tesla V100-SXM2-16GB": "v100-sxm2-16gb",
    "Tesla V100-SXM2-32GB": "v100-sxm2-32gb",
    "Tesla T4": "t4",
    "NVIDIA H200": "h200-sxm",
    "NVIDIA B200": "b200-sxm",
}

REQUIRED_KEYS = {
    "a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-40gb", "a100-pcie-80gb",
    "rtx-a4000", "rtx-a6000", "a40", "l4", "l40s", "rtx-4090",
    "v100-sxm2-16gb", "t4", "h100-sxm", "h100-pcie", "h200-sxm", "b200-sxm",
}

# Dense datasheet peaks (TFLOPS / TOPS) that the registry must hold exactly.
DATASHEET_DENSE_TFLOPS = {
    ("h100-sxm", "fp32"): 67,
    ("h100-sxm", "tf32"): 494.5,  # 989 with sparsity
    ("h100-sxm", "bf16"): 989.5,  # 1,979 with sparsity
    ("h100-sxm", "fp16"): 989.5,
    ("h100-sxm", "fp8"): 1979,  # 3,958 with sparsity
    ("h100-sxm", "int8"): 1979,
    ("h100-pcie", "bf16"): 756.5,  # 1,513 with sparsity
    ("h200-sxm", "bf16"): 989.5,
    ("a100-sxm4-40gb", "fp32"): 19.5,
    ("a100-sxm4-40gb", "tf32"): 156,
    ("a100-sxm4-40gb", "bf16"): 312,
    ("a100-sxm4-40gb", "fp16"): 312,
    ("a100-sxm4-40gb", "int8"): 624,
    ("a100-pcie-80gb", "bf16"): 312,
    ("a40", "bf16"): 149.7,
    ("l4", "bf16"): 121,  # 242 with sparsity
    ("l4", "fp8"): 242.5,  # 485 with sparsity
    ("l40s", "bf16"): 362.05,  # printed dense on the datasheet
    ("l40s", "fp8"): 733,
    ("rtx-4090", "bf16"): 165.2,  # FP32 accumulate
    ("rtx-a6000", "fp16"): 154.85,  # 309.7 with sparsity
    ("rtx-a4000", "fp16"): 76.7,  # 153.4 with sparsity
    ("v100-sxm2-16gb", "fp16"): 125,
    ("t4", "fp16"): 65,
    ("b200-sxm", "bf16"): 2250,  # 4.5 PFLOPS with sparsity
    ("b200-sxm", "fp8"): 4500,  # 9 PFLOPS with sparsity
}


# --------------------------------------------------------------------------- resolving


@pytest.mark.parametrize(("alias", "key"), sorted(USER_ALIASES.items()))
def test_user_aliases_resolve(alias: str, key: str) -> None:
    assert resolve_gpu(alias).key == key


@pytest.mark.parametrize(("nvml_name", "key"), sorted(NVML_NAMES.items()))
def test_nvml_names_resolve(nvml_name: str, key: str) -> None:
    assert resolve_gpu(nvml_name).key == key


@pytest.mark.parametrize("variant", ["nvidia a100-sxm4-40gb", "NVIDIA_A100_SXM4_40GB", "  A100 SXM4 40GB ",
                                     "a100--sxm4--40gb", "A100SXM440GB"])
def test_matching_ignores_case_spaces_dashes_underscores(variant: str) -> None:
    assert resolve_gpu(variant).key == "a100-sxm4-40gb"


def test_every_required_gpu_is_registered() -> None:
    keys = {spec.key for spec in list_gpus()}
    assert REQUIRED_KEYS <= keys


def test_every_key_resolves_to_itself() -> None:
    for spec in list_gpus():
        assert resolve_gpu(spec.key) is spec


def test_every_registered_alias_resolves_to_its_entry() -> None:
    for spec in list_gpus():
        for alias in spec.aliases:
            assert resolve_gpu(alias) is spec, alias


def test_public_data_gpu_names_resolve() -> None:
    # The GPU strings in datasets/public/*.csv.
    assert resolve_gpu("NVIDIA H100 80GB HBM3").key == "h100-sxm"
    assert resolve_gpu("NVIDIA A100-SXM4-40GB").key == "a100-sxm4-40gb"
    assert resolve_gpu("NVIDIA A40").key == "a40"


def test_default_gpu_is_a_registered_key() -> None:
    assert DEFAULT_GPU == "h100-sxm"
    assert resolve_gpu(DEFAULT_GPU).key == DEFAULT_GPU


def test_variants_that_are_different_boards_are_not_aliased() -> None:
    # H100 NVL (94 GB) and GB200 differ from the registered boards: refuse, do not guess.
    for name in ("NVIDIA H100 NVL", "NVIDIA GB200", "nvidia", ""):
        with pytest.raises(UnknownGPUError):
            resolve_gpu(name)


def test_family_defaults_resolve_to_a_board_that_holds_the_alias_and_say_so() -> None:
    for alias, why in hardware.FAMILY_DEFAULTS.items():
        spec = resolve_gpu(alias)
        assert any(hardware._normalize_name(a) == hardware._normalize_name(alias) for a in spec.aliases), alias
        note = hardware.family_default_note(alias)
        assert note is not None and spec.key in note and why in note and "\n" not in note
    assert hardware.family_default_note("a100-80gb") is None and hardware.family_default_note("l4") is None
    assert hardware.family_default_note(resolve_gpu("a100")) is None


def test_a100_resolves_to_the_measured_board() -> None:
    from fits.law_file import load_law

    measured = load_law().gpus_measured
    a100 = resolve_gpu("a100")
    assert a100.key in measured, "the bare family name picks the A100 board the law's data measured"
    assert resolve_gpu("a100-80gb").key not in measured
    assert "a100-80gb" in hardware.family_default_note("a100")


def test_resolve_accepts_a_spec() -> None:
    spec = resolve_gpu("h100")
    assert resolve_gpu(spec) is spec


# --------------------------------------------------------------------------- errors


def test_unknown_gpu_raises_with_name_and_known_list() -> None:
    with pytest.raises(UnknownGPUError) as info:
        resolve_gpu("xyz-9000")
    message = str(info.value)
    assert "'xyz-9000'" in message
    assert message.startswith("unknown GPU 'xyz-9000'")
    assert "h100-sxm" in message and "a100-sxm4-80gb" in message
    assert "see `scaling gpus`" in message
    assert "\n" not in message


def test_unknown_gpu_error_is_a_scaling_error() -> None:
    with pytest.raises(ScalingError):
        resolve_gpu("not-a-gpu")
    with pytest.raises(ValueError):
        resolve_gpu("not-a-gpu")


def test_unknown_gpu_suggests_a_close_name() -> None:
    with pytest.raises(UnknownGPUError, match="did you mean 'l40s'"):
        resolve_gpu("l40")


def test_non_string_name_raises_unknown_gpu() -> None:
    with pytest.raises(UnknownGPUError):
        resolve_gpu(100)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- figures


@pytest.mark.parametrize(("key", "precision"), sorted(DATASHEET_DENSE_TFLOPS))
def test_dense_peaks_are_the_datasheet_values(key: str, precision: str) -> None:
    expected = DATASHEET_DENSE_TFLOPS[(key, precision)] * TERA
    assert resolve_gpu(key).peak_flop_per_s[precision] == pytest.approx(expected, rel=1e-9)


def test_headline_dense_peaks() -> None:
    assert resolve_gpu("h100").peak_for("bf16") == pytest.approx(989e12, rel=1e-3)
    assert resolve_gpu("a100").peak_for("bf16") == 312e12
    # Dense, not sparse: the sparse H100 figure is 1,979 TFLOPS.
    assert resolve_gpu("h100").peak_for("bf16") < 1.5e15


def test_peaks_are_ordered_fp16_over_tf32_over_fp32() -> None:
    for spec in list_gpus():
        peaks = spec.peak_flop_per_s
        assert peaks["fp16"] > peaks["fp32"], spec.key
        if "tf32" in peaks:
            assert peaks["fp16"] > peaks["tf32"], spec.key
            if spec.key == "rtx-4090":
                # GeForce Ada: TF32 tensor peak equals the FP32 CUDA-core peak (Ada whitepaper).
                assert peaks["tf32"] == peaks["fp32"]
            else:
                assert peaks["tf32"] > peaks["fp32"], spec.key
        if "bf16" in peaks:
            assert peaks["bf16"] == peaks["fp16"], spec.key
        if "fp8" in peaks:
            assert peaks["fp8"] > peaks["fp16"], spec.key


def test_peaks_are_plain_positive_floats_in_flop_per_s() -> None:
    for spec in list_gpus():
        assert set(spec.peak_flop_per_s) <= {"fp32", "tf32", "bf16", "fp16", "fp8", "int8"}
        for precision, value in spec.peak_flop_per_s.items():
            assert isinstance(value, float), (spec.key, precision)
            # Between 1 TFLOP/s and 10 PFLOP/s: catches TFLOPS stored without the 1e12.
            assert 1e12 < value < 1e16, (spec.key, precision)


def test_chips_without_fp8_do_not_store_it() -> None:
    for spec in list_gpus():
        has_fp8 = spec.architecture in {"ada", "hopper", "blackwell"}
        assert ("fp8" in spec.peak_flop_per_s) == has_fp8, spec.key


def test_memory_bandwidth_and_power() -> None:
    h100 = resolve_gpu("h100-sxm")
    assert h100.memory_byte == 80 * 2**30
    assert h100.memory_bandwidth_byte_per_s == 3.35e12
    assert h100.tdp_w == 700
    assert resolve_gpu("h200").memory_byte == 141 * 2**30
    assert resolve_gpu("a100-sxm4-40gb").memory_bandwidth_byte_per_s == 1555e9
    assert resolve_gpu("a100-pcie-80gb").tdp_w == 300
    assert resolve_gpu("l4").tdp_w == 72
    for spec in list_gpus():
        assert isinstance(spec.memory_byte, int)
        assert 8 * 2**30 <= spec.memory_byte <= 256 * 2**30, spec.key
        assert 1e11 < spec.memory_bandwidth_byte_per_s < 1e13, spec.key
        assert 50 <= spec.tdp_w <= 1500, spec.key
        assert spec.idle_power_w is None or 0 < spec.idle_power_w < spec.tdp_w


def test_every_figure_has_a_source() -> None:
    for spec in list_gpus():
        figures = [*spec.peak_flop_per_s, "memory_byte", "memory_bandwidth_byte_per_s", "tdp_w"]
        if spec.idle_power_w is not None:
            figures.append("idle_power_w")
        for figure in figures:
            text = spec.sources.get(figure, "")
            assert "http" in text, (spec.key, figure)
            assert "NVIDIA" in text or "Microway" in text, (spec.key, figure)


def test_sparse_only_figures_say_they_were_halved() -> None:
    # Every source quoting a '*with sparsity' figure without a printed dense one states the halving.
    for spec in list_gpus():
        for precision in spec.peak_flop_per_s:
            text = spec.sources[precision]
            if "*with sparsity;" in text:
                assert "/ 2" in text, (spec.key, precision)


def test_missing_precisions_are_explained_in_notes() -> None:
    for spec in list_gpus():
        if spec.architecture in {"ampere", "ada", "hopper", "blackwell"}:
            for precision in ("tf32", "int8"):
                if precision not in spec.peak_flop_per_s:
                    assert precision in spec.notes, (spec.key, precision)
        if spec.idle_power_w is None:
            assert "idle" in spec.notes, spec.key


def test_list_gpus_returns_specs_in_registry_order() -> None:
    specs = list_gpus()
    assert all(isinstance(s, GPUSpec) for s in specs)
    assert len({s.key for s in specs}) == len(specs)
    assert specs[0].architecture == "volta" and specs[-1].architecture == "blackwell"
    specs.pop()  # a fresh list each call
    assert len(list_gpus()) == len(specs) + 1


def test_spec_is_frozen_and_hashable() -> None:
    spec = resolve_gpu("h100")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tdp_w = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.peak_flop_per_s["bf16"] = 1.0  # type: ignore[index]
    assert {spec: 1}[resolve_gpu("NVIDIA H100 80GB HBM3")] == 1


# --------------------------------------------------------------------------- precision fallbacks


def test_precisions_constant() -> None:
    assert PRECISIONS == ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "nf4", "fp4")
    assert hardware.PRECISIONS is precision_module.PRECISIONS     # re-exported, not redefined
    for spec in list_gpus():
        assert set(spec.peak_flop_per_s) <= set(STORED_PRECISIONS)


def test_peak_for_and_the_plan_differ_only_on_int8_where_the_chip_has_int8() -> None:
    # peak_for names the chip's rate for a precision; the plan what a setting at it runs at:
    # bitsandbytes int8 is weight-only, so it runs at the 16-bit rate, not the int8 OP/s.
    for spec in list_gpus():
        for p in PRECISIONS:
            same = spec.peak_precision_for(p) == precision_plan(p, spec).compute
            assert same == (p != "int8" or "int8" not in spec.peak_flop_per_s), (spec.key, p)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_peak_for_is_defined_for_every_precision_on_every_gpu(precision: str) -> None:
    for spec in list_gpus():
        assert spec.peak_for(precision) > 0


def test_stored_precisions_return_their_own_peak() -> None:
    for spec in list_gpus():
        for precision, value in spec.peak_flop_per_s.items():
            assert spec.peak_for(precision) == value


def test_weight_only_4bit_formats_use_bf16_peak() -> None:
    h100 = resolve_gpu("h100")
    assert h100.peak_for("nf4") == h100.peak_flop_per_s["bf16"]
    assert h100.peak_for("fp4") == h100.peak_flop_per_s["bf16"]
    b200 = resolve_gpu("b200")
    assert b200.peak_for("fp4") == b200.peak_flop_per_s["bf16"]
    assert b200.peak_precision_for("nf4") == "bf16"


def test_fp8_on_a_chip_without_fp8_falls_back_to_16_bit() -> None:
    a100 = resolve_gpu("a100")
    assert "fp8" not in a100.peak_flop_per_s
    assert a100.peak_for("fp8") == 312e12
    assert a100.peak_precision_for("fp8") == "bf16"
    assert resolve_gpu("h100").peak_for("fp8") == pytest.approx(1979e12)


def test_int8_without_int8_falls_back_to_16_bit() -> None:
    a4000 = resolve_gpu("a4000")
    assert "int8" not in a4000.peak_flop_per_s
    assert a4000.peak_for("int8") == a4000.peak_flop_per_s["bf16"]


def test_volta_fallbacks() -> None:
    v100 = resolve_gpu("v100")
    assert v100.peak_for("fp16") == 125e12
    # No BF16 / TF32 tensor cores on Volta: that math runs at the FP32 rate.
    assert v100.peak_for("bf16") == 15.7e12
    assert v100.peak_for("tf32") == 15.7e12
    # Quantised formats compute in fp16 where there is no bf16.
    assert v100.peak_for("nf4") == 125e12
    assert v100.peak_for("fp8") == 125e12
    assert v100.peak_for("int8") == 125e12
    t4 = resolve_gpu("t4")
    assert t4.peak_for("int8") == 130e12
    assert t4.peak_for("fp8") == 65e12


def test_precision_names_are_case_insensitive() -> None:
    assert resolve_gpu("h100").peak_for(" BF16 ") == resolve_gpu("h100").peak_for("bf16")


@pytest.mark.parametrize("bad", ["fp64", "float16", "int4", "", "bfloat16"])
def test_unknown_precision_raises_invalid_setting(bad: str) -> None:
    with pytest.raises(InvalidSettingError) as info:
        resolve_gpu("h100").peak_for(bad)
    assert repr(bad) in str(info.value)
    assert "fp32" in str(info.value)


def test_non_string_precision_raises_invalid_setting() -> None:
    with pytest.raises(InvalidSettingError):
        resolve_gpu("h100").peak_for(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- loading


def test_registry_json_matches_conventions() -> None:
    from importlib import resources

    raw = json.loads(resources.files("scaling._registry").joinpath("gpus.json").read_text("utf-8"))
    assert raw["schema_version"] == 1
    assert "peak_flop_per_s" in raw["conventions"]
    assert [g["key"] for g in raw["gpus"]] == [s.key for s in list_gpus()]


def test_registry_is_loaded_once() -> None:
    assert hardware._registry() is hardware._registry()


def _load_with(monkeypatch: pytest.MonkeyPatch, mutate) -> None:
    raw = json.loads(hardware._read_registry_text())
    mutate(raw)
    monkeypatch.setattr(hardware, "_read_registry_text", lambda: json.dumps(raw))
    hardware._registry.cache_clear()
    try:
        hardware._registry()
    finally:
        monkeypatch.undo()
        hardware._registry.cache_clear()


def test_loader_rejects_a_figure_without_source(monkeypatch: pytest.MonkeyPatch) -> None:
    def drop_source(raw):
        del raw["gpus"][0]["sources"]["fp32"]

    with pytest.raises(DataError, match="without a source"):
        _load_with(monkeypatch, drop_source)


def test_loader_rejects_conflicting_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    def steal_alias(raw):
        raw["gpus"][0]["aliases"].append("H-100")

    with pytest.raises(DataError, match="names both"):
        _load_with(monkeypatch, steal_alias)


def test_loader_rejects_unknown_precision_and_zero_peaks(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="unknown precisions"):
        _load_with(monkeypatch, lambda raw: raw["gpus"][0]["peak_flop_per_s"].update(fp64=1e12))
    with pytest.raises(DataError, match="positive"):
        _load_with(monkeypatch, lambda raw: raw["gpus"][0]["peak_flop_per_s"].update(fp16=0.0))


def test_loader_rejects_missing_field(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="breaks the schema"):
        _load_with(monkeypatch, lambda raw: raw["gpus"][0].pop("tdp_w"))


def test_import_pulls_in_neither_torch_nor_pandas() -> None:
    code = (
        "import sys, scaling.hardware as h; h.resolve_gpu('h100'); "
        "print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=_subprocess_env())
    assert out.stdout.strip() == "[]"


def _subprocess_env() -> dict[str, str]:
    import os
    from pathlib import Path

    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env
