"""`--config DIR`: any diffusers folder is traced once, its closed-form tables cached by a hash of its
configs, then read without torch; an unregistered architecture is flagged outside the family data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.errors import UnknownModelError
from scaling.registry import hub_cache_snapshot, model_from_dir

SD21 = Path(__file__).resolve().parents[1] / "scaling" / "_registry" / "models" / "sd2.1"
INDEX = {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
         "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"]}

# run the CLI in a fresh interpreter and report whether torch was imported along the way
_RUN = ("import contextlib, io, json, sys\n"
        "from scaling.app.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = main(sys.argv[1:])\n"
        "print(json.dumps({'rc': rc, 'out': json.loads(buf.getvalue()), 'torch': 'torch' in sys.modules}))\n")


def _folder(root: Path, shrink: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps(INDEX))
    for name in ("unet", "vae", "text_encoder"):
        cfg = json.loads((SD21 / f"{name}.json").read_text())
        if shrink:  # an architecture registered nowhere, small enough to trace in a second
            cfg.update({"unet": {"block_out_channels": [32, 64, 64, 64], "cross_attention_dim": 64,
                                 "attention_head_dim": [2, 4, 4, 4], "layers_per_block": 1},
                        "vae": {"block_out_channels": [32, 32, 32, 32], "layers_per_block": 1},
                        "text_encoder": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                         "num_attention_heads": 4, "projection_dim": 64}}[name])
        (root / name).mkdir(exist_ok=True)
        (root / name / "config.json").write_text(json.dumps(cfg))
    return root


def _predict(args: list[str], cache: Path, extra: dict | None = None) -> dict:
    env = {**os.environ, "SCALING_CACHE_DIR": str(cache), **(extra or {})}
    res = subprocess.run([sys.executable, "-c", _RUN, "predict", *args, "--res", "512", "--steps", "20", "--json"],
                         capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny unregistered architecture, predicted once (the trace, ~10 s): (folder, cache, first result)."""
    root = tmp_path_factory.mktemp("config_dir")
    folder = _folder(root / "tiny-sd", shrink=True)
    cache = root / "cache"
    return folder, cache, _predict(["--config", str(folder)], cache)


def test_unregistered_architecture_is_traced_once_cached_and_flagged(tiny):
    folder, cache, first = tiny
    spec = model_from_dir(folder)
    assert (cache / "flops" / f"{spec.config_hash}.json").is_file()
    second = _predict(["--config", str(folder)], cache)
    assert first["torch"] and not second["torch"]
    assert second["out"]["energy_j"] == first["out"]["energy_j"] > 0
    assert second["out"]["family_in_data"] is False and second["out"]["extrapolated"] is True
    assert any("model family outside the training data" in r for r in second["out"]["extrapolation"])


def test_config_hash_follows_the_configs(tmp_path):
    a = model_from_dir(_folder(tmp_path / "a", shrink=True))
    b = model_from_dir(_folder(tmp_path / "b", shrink=True))
    c = _folder(tmp_path / "c", shrink=True)
    cfg = json.loads((c / "unet" / "config.json").read_text())
    (c / "unet" / "config.json").write_text(json.dumps({**cfg, "cross_attention_dim": 128}))
    assert a.config_hash == b.config_hash != model_from_dir(c).config_hash


def test_hub_id_in_the_local_hf_cache(tmp_path, monkeypatch, tiny):
    _, cache, first = tiny
    hub = tmp_path / "hub"
    snap = _folder(hub / "models--someorg--tiny-sd" / "snapshots" / "abc123", shrink=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert hub_cache_snapshot("someorg/tiny-sd") == snap
    assert hub_cache_snapshot("someorg/absent") is None
    out = _predict(["--model", "someorg/tiny-sd"], cache, {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"})
    assert not out["torch"]  # the same configs: the cached tables of the folder
    assert out["out"]["energy_j"] == first["out"]["energy_j"] and out["out"]["family_in_data"] is False


@pytest.mark.slow
def test_folder_of_a_registered_model_predicts_as_the_registered_model(tmp_path):
    folder = _folder(tmp_path / "sd21-copy")
    local = _predict(["--config", str(folder)], tmp_path / "cache")["out"]
    registered = _predict(["--model", "sd2.1"], tmp_path / "cache")["out"]
    assert local["energy_j"] == pytest.approx(registered["energy_j"], rel=1e-9)
    assert local["flop"] == pytest.approx(registered["flop"], rel=1e-9)
    assert registered["family_in_data"] and not local["family_in_data"]


@pytest.mark.parametrize("index, match", [
    ([1, 2], "holds a JSON list"),
    ({"_class_name": "StableDiffusionPipeline"}, "names no components"),
    ({"_class_name": "StableDiffusionPipeline", "unet": "UNet"}, "names no components"),
    ({"_class_name": "NoSuchPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}, "not supported"),
])
def test_bad_model_index_is_one_line(tmp_path, index, match):
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UnknownModelError, match=match) as info:
        model_from_dir(tmp_path)
    assert "\n" not in str(info.value)


def test_bad_model_index_on_the_cli_is_one_line(tmp_path):
    (tmp_path / "model_index.json").write_text("[]")
    res = subprocess.run([sys.executable, "-m", "scaling", "predict", "--config", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_build_closed_form_refuses_a_local_key():
    res = subprocess.run([sys.executable, "-m", "profilers.flops.build_closed_form", "local:x"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
