"""Generation settings a model cannot take: the rules of scaling/settings.py, through every command
that builds a setting (profile, predict, compare, measure), refused before any work."""

from __future__ import annotations

import json

import pytest


def needs_torch() -> None:
    """measure and sweep need the [torch] extra; looked up, not imported (an import costs seconds)."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("torch", "diffusers", "transformers")):
        pytest.skip("needs the [torch] extra")

BAD_SETTINGS = [
    (["-m", "wan2.1", "--frames", "80"], "4k+1"),
    (["-m", "wan2.1", "--frames", "100001"], "--frames"),
    (["-m", "wan2.1", "--res", "100x100"], "multiple of 16"),
    (["-m", "wan2.1", "--res", "0p"], "at least"),
    (["-m", "wan2.1", "--res", "8p"], "at least"),
    (["-m", "wan2.1", "--res", "0x0"], "height"),
    (["-m", "wan2.1", "--res", "0"], "height"),
    (["-m", "wan2.1", "--res", "abc"], "not a resolution"),
    (["-m", "wan2.1", "--res", "480x"], "not a resolution"),
    (["-m", "wan2.1", "--res", "x480"], "not a resolution"),
    (["-m", "wan2.1", "--res", "832x480x3"], "not a resolution"),
    (["-m", "wan2.1", "--res", "nanp"], "not a resolution"),
    (["-m", "wan2.1", "--res", ""], "--res"),
    (["-m", "wan2.1", "--res", "   "], "--res"),
    (["-m", "sdxl", "--res", "4096x4096"], "re:at most|larger"),
    (["-m", "sd2.1", "--frames", "5"], "does not apply"),
    (["-m", "sd2.1", "--seconds", "5"], "it is an image model"),
    (["-m", "wan2.1", "--seconds", "5"], "it is a video model"),
    (["-m", "audioldm2", "--res", "512"], "does not apply"),
    (["-m", "audioldm2", "--frames", "9"], "does not apply"),
    (["-m", "stable-audio", "--seconds", "90"], "at most"),
    (["-m", "sd2.1", "--precision", "fp7"], "not a known precision"),
    (["-m", "sd2.1", "--precision", "16"], "not a known precision"),
    (["-m", "sd2.1", "--precision", ""], "--precision"),
    (["-m", "sd2.1", "--cfg", "--no-cfg"], "not allowed with"),
    (["-m", "sd2.1", "--no-cfg", "--cfg"], "not allowed with"),
    (["-m", "sd2.1", "--steps", "10001"], "--steps"),
    (["-m", "sd2.1", "--batch", "5000"], "--batch"),
    (["-m", "sd2.1", "--outputs-per-prompt", "5000"], "--outputs-per-prompt"),
    (["-m", "sd2.1", "--batch", "4096"], "re:GiB|memory"),
    (["-m", "flux-dev", "--batch", "64", "--outputs-per-prompt", "64"], "re:GiB|memory"),
    (["--config", "/nonexistent/folder"], "re:model_index|no such|not a folder"),
    (["--config", "{tmp}"], "model_index.json"),
    (["--config", "/etc/passwd"], "re:model_index|not a folder"),
]
ATTENTION = [
    (["-m", "sd2.1", "--attention", "bogus"], "unknown variant"),
    (["-m", "sd2.1", "--attention", "litefocus:r=7"], "0 <= r <= 1"),
    (["-m", "sd2.1", "--attention", "litefocus:r=nan"], "litefocus"),
    (["-m", "sd2.1", "--attention", "tome:ratio=2"], "tome"),
    (["-m", "sd2.1", "--attention", "window:size=0"], "window"),
    (["-m", "sd2.1", "--attention", "window:size=abc"], "window"),
    (["-m", "sd2.1", "--attention", "nobody=window:size=64"], "nobody"),
]
COMMANDS = {"profile": ["profile"], "predict": ["predict"], "compare": ["compare", "--gpu", "h100"]}

CASES = [pytest.param(base + argv, needle, id=f"{cmd} {' '.join(argv)}")
         for cmd, base in COMMANDS.items() for argv, needle in BAD_SETTINGS
         if not (cmd in ("profile", "compare") and "memory" in needle)]  # they show the memory verdict
CASES += [pytest.param(base + argv, needle, id=f"{cmd} {' '.join(argv)}")
          for cmd, base in COMMANDS.items() if cmd != "compare" for argv, needle in ATTENTION]


@pytest.mark.parametrize("argv,needle", CASES)
def test_a_setting_the_model_cannot_take_is_refused(argv, needle, refused):
    refused(argv, needle)


MEASURE = ["measure", "--device", "cpu", "--meter", "estimate", "--out", "{tmp}/runs.parquet", "--quiet"]


@pytest.mark.parametrize("argv,needle", [
    (["-m", "tiny:wan", "--frames", "6"], "frames"),
    (["-m", "tiny:sd", "--res", "100x100"], "res"),
    (["-m", "tiny:sd", "--precision", "fp7"], "not a known precision"),
    (["-m", "tiny:sd", "--cfg", "--no-cfg"], "not allowed with"),
    (["-m", "tiny:audioldm", "--res", "512"], "does not apply"),
    (["-m", "tiny:nope"], "tiny"),
])
def test_measure_refuses_a_bad_setting_before_building_anything(argv, needle, refused, paths):
    needs_torch()
    refused(MEASURE + argv, needle)
    assert not (paths["tmp"] / "runs.parquet").exists(), "nothing was measured or written"


def test_compare_lists_an_option_that_does_not_fit_unranked_instead_of_refusing(answered):
    # one option fits (h100): the T4 is listed, unranked; when none fits at all, compare refuses
    # (tests/bad_input/test_conflicts_audit.py)
    out, _ = answered(["compare", "-m", "flux-dev", "--gpu", "h100,t4"])
    assert "not ranked" in out and "does not fit" in out


@pytest.mark.parametrize("argv,check", [
    (["predict", "-m", "wan2.1", "--res", "480p", "--frames", "81", "--json"],
     lambda d: (d["setting"]["width"], d["setting"]["height"], d["setting"]["frames"]) == (832, 480, 81)),
    (["predict", "-m", "wan2.1", "--res", "832x480", "--json"], lambda d: d["setting"]["width"] == 832),
    (["predict", "-m", "sd2.1", "--res", "512", "--json"], lambda d: d["setting"]["height"] == 512),
    (["predict", "-m", "sd2.1", "--precision", " FP8 ", "--json"], lambda d: d["precision"] == "fp8"),
    (["predict", "-m", "sd2.1", "--no-cfg", "--json"], lambda d: d["setting"]["cfg"] is False),
    (["predict", "-m", "sd2.1", "--cfg", "--guidance", "0.5", "--json"], lambda d: d["setting"]["cfg"] is True),
    (["profile", "-m", "sd2.1", "--attention", "window:size=512", "--json"], lambda d: bool(d["attention"])),
])
def test_valid_settings_give_the_right_answer(argv, check, answered):
    out, _ = answered(argv)
    assert check(json.loads(out)), out[:400]


def test_a_model_without_a_vocoder_shows_no_vocoder_row(answered):
    out, _ = answered(["predict", "-m", "sd2.1"])
    assert "vocoder" not in out and "0 J, 0 - 0" not in out
    out, _ = answered(["predict", "-m", "audioldm2"])
    assert "vocoder" in out
