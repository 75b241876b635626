"""`scaling models`, `scaling gpus`, `scaling profile` through ``main(argv)``."""

import json
from pathlib import Path

import pytest

from scaling.app.cli import main
from scaling.registry import list_models

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "scaling" / "_registry" / "models"


def test_models_lists_every_model_with_parameters(capsys):
    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert len(models) == len(list_models()) >= 24
    wan = next(m for m in models if m["key"] == "wan2.1-t2v-1.3b")
    assert wan["components"]["transformer"]["params"] == pytest.approx(1.419e9, rel=1e-3)
    assert all(c["params"] for m in models for c in m["components"].values())


def test_models_table_fits_100_columns_and_wide_has_every_detail(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 100
    wan = next(line for line in out.splitlines() if line.startswith("wan2.1 "))
    assert "1.42B" in wan and "50 steps" in wan
    assert "1 steps" not in out and "none 0" not in out
    assert main(["models", "--wide"]) == 0
    out = capsys.readouterr().out
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in out and "transformer 1.42B" in out


@pytest.mark.parametrize("argv", [["models"], ["gpus"], ["profile", "-m", "wan2.1", "--gpu", "h100"],
                                  ["profile", "-m", "sd2.1", "--batch", "4"], ["predict", "-m", "sd2.1", "--batch", "4"],
                                  ["predict", "-m", "stable-audio", "--count", "1000"],
                                  ["compare", "-m", "flux-dev", "--gpu", "t4,h100,l4"]])
def test_tables_fit_100_columns(argv, capsys):
    """Tables are at most 100 characters wide when stdout is not a terminal (text lines may be longer)."""
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    assert rules, "a table with a rule under its header"
    for i in rules:
        assert len(lines[i]) <= 100 and len(lines[i - 1]) <= 100 and len(lines[i + 1]) <= 100, lines[i - 1]


def test_gpus(capsys):
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    assert "h100-sxm" in out and " 990 " in out  # dense bf16 989.5 TFLOP/s


def test_profile_prints_resolved_id_components_and_shares(capsys):
    assert main(["profile", "--model", "wan2.1", "--frames", "81", "--res", "480p"]) == 0
    out = capsys.readouterr().out
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in out
    for word in ("text_encoder", "denoiser", "decoder", "28.585 PFLOP", "32760 tokens"):
        assert word in out


def test_profile_json_matches_library(capsys):
    from profilers.flops.profile import profile
    from scaling.settings import make_setting

    assert main(["profile", "-m", "flux-schnell", "--res", "768x1344", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = profile(make_setting("flux-schnell", res="768x1344"))
    assert data["total_flop"] == pytest.approx(expected.total_flop)
    assert data["by_op_flop"]["attention"] > 0


@pytest.mark.parametrize("argv,needle", [
    (["profile", "--model", "nope"], "unknown model 'nope'"),
    (["profile", "--model", "wan2.1", "--frames", "80"], "4k+1"),
    (["profile", "--model", "wan2.1", "--res", "100x100"], "multiple of 16"),
    (["profile", "--model", "sd2.1", "--steps", "0"], "`steps` 0"),
    (["profile", "--model", "stable-audio", "--seconds", "90"], "at most 47.55 s"),
    (["profile"], "no model given"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_profile_a_local_diffusers_folder_traced(tmp_path, capsys):
    pytest.importorskip("diffusers")
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"]}))
    for name in ("unet", "vae", "text_encoder"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text((PACKAGE_MODELS / "sd2.1" / f"{name}.json").read_text())
    assert main(["profile", "--config", str(tmp_path), "--res", "512", "--json"]) == 0
    local = json.loads(capsys.readouterr().out)
    assert local["method"] == "traced"
    assert main(["profile", "--model", "sd2.1", "--res", "512", "--json"]) == 0
    registered = json.loads(capsys.readouterr().out)
    assert local["total_flop"] == pytest.approx(registered["total_flop"], rel=1e-6)


def test_traced_and_closed_form_agree_through_the_cli(capsys):
    pytest.importorskip("diffusers")
    assert main(["profile", "-m", "sd2.1", "--res", "640x384", "--traced", "--json"]) == 0
    traced = json.loads(capsys.readouterr().out)
    assert main(["profile", "-m", "sd2.1", "--res", "640x384", "--json"]) == 0
    closed = json.loads(capsys.readouterr().out)
    assert closed["total_flop"] == pytest.approx(traced["total_flop"], rel=0.01)
