"""Weights that cannot run code (profilers/energy/weights.py): `--weights DIR` loads safetensors
only, local files only, no remote code; a folder with only pickled weights is refused before
anything is loaded, unless --allow-pickle is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profilers.energy.weights import check_weights_dir, from_pretrained_kwargs
from scaling.errors import UnknownModelError, UnsafeWeightsError


def _folder(tmp_path: Path, files: dict[str, bytes], index: dict | None = None) -> Path:
    root = tmp_path / "weights"
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps(index or {"_class_name": "StableDiffusionPipeline",
                                                                "unet": ["diffusers", "UNet2DConditionModel"]}))
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


PICKLE = b"\x80\x04K\x01."  # a few bytes of pickle: never opened by the check


@pytest.mark.parametrize("name", ["unet/diffusion_pytorch_model.bin", "unet/model.pt", "unet/model.ckpt",
                                  "unet/model.pth", "text_encoder/pytorch_model.bin"])
def test_a_component_with_only_pickled_weights_is_refused(tmp_path, name):
    folder = _folder(tmp_path, {name: PICKLE})
    with pytest.raises(UnsafeWeightsError) as err:
        check_weights_dir(folder)
    msg = str(err.value)
    assert Path(name).name in msg and "--allow-pickle" in msg and "safetensors" in msg and "\n" not in msg
    assert check_weights_dir(folder, allow_pickle=True) == folder


def test_safetensors_beside_a_pickle_are_fine(tmp_path):
    folder = _folder(tmp_path, {"unet/diffusion_pytorch_model.bin": PICKLE,
                                "unet/diffusion_pytorch_model.safetensors": b"{}"})
    assert check_weights_dir(folder) == folder


def test_code_shipped_with_the_folder_is_refused_even_with_allow_pickle(tmp_path):
    folder = _folder(tmp_path, {"unet/my_unet.py": b"import os\n", "unet/w.safetensors": b"{}"},
                     index={"_class_name": "StableDiffusionPipeline", "unet": ["my_unet", "MyUNet"]})
    for allow in (False, True):
        with pytest.raises(UnsafeWeightsError, match="code shipped with the folder"):
            check_weights_dir(folder, allow_pickle=allow)


def test_not_a_diffusers_folder(tmp_path):
    with pytest.raises(UnknownModelError, match="not a folder"):
        check_weights_dir(tmp_path / "nope")
    with pytest.raises(UnknownModelError, match="no model_index.json"):
        check_weights_dir(tmp_path)
    (tmp_path / "model_index.json").write_text("{")
    with pytest.raises(UnknownModelError, match="does not read as JSON"):
        check_weights_dir(tmp_path)


def test_from_pretrained_is_asked_for_safetensors_local_files_and_no_remote_code():
    assert from_pretrained_kwargs() == {"use_safetensors": True, "local_files_only": True, "trust_remote_code": False}
    assert from_pretrained_kwargs(allow_pickle=True)["use_safetensors"] is None
    assert from_pretrained_kwargs(allow_pickle=True)["trust_remote_code"] is False


def test_the_loader_refuses_before_loading_and_passes_the_safe_arguments(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from profilers.energy.pipelines import build_pipeline

    calls = []

    class Loaded(Exception):
        pass

    def fake_from_pretrained(folder, **kwargs):
        calls.append(kwargs)
        raise Loaded

    monkeypatch.setattr(diffusers.DiffusionPipeline, "from_pretrained", staticmethod(fake_from_pretrained))
    folder = _folder(tmp_path, {"unet/diffusion_pytorch_model.bin": PICKLE})
    with pytest.raises(UnsafeWeightsError):
        build_pipeline("sd2.1", device="cpu", precision="fp32", weights=folder)
    assert calls == [], "refused before from_pretrained was called"
    with pytest.raises(Loaded):
        build_pipeline("sd2.1", device="cpu", precision="fp32", weights=folder, allow_pickle=True)
    assert calls[-1]["use_safetensors"] is None and calls[-1]["local_files_only"] is True
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"{}")
    with pytest.raises(Loaded):
        build_pipeline("sd2.1", device="cpu", precision="fp32", weights=folder)
    assert calls[-1] == {"torch_dtype": calls[-1]["torch_dtype"], "use_safetensors": True, "local_files_only": True,
                         "trust_remote_code": False}


def test_measure_refuses_a_pickled_folder_in_one_line_before_building(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from scaling.app.cli import main

    folder = _folder(tmp_path, {"unet/diffusion_pytorch_model.bin": PICKLE})
    out = tmp_path / "runs.parquet"
    rc = main(["measure", "--model", "sd2.1", "--weights", str(folder), "--device", "cpu", "--meter", "estimate",
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "pickled weights only" in err and "Traceback" not in err
    assert not out.exists()


def test_a_sweep_refuses_a_pickled_folder_when_it_is_read(tmp_path):
    pytest.importorskip("torch")
    from profilers.energy.sweep import load_sweep
    from scaling.errors import WorkloadError

    folder = _folder(tmp_path, {"unet/diffusion_pytorch_model.bin": PICKLE})
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"weights: {folder}\ngrid:\n  - model: sd2.1\n    steps: 1\n")
    with pytest.raises(WorkloadError, match="pickled weights only"):
        load_sweep(sweep)
    sweep.write_text(f"weights: {folder}\nallow_pickle: true\ngrid:\n  - model: sd2.1\n    steps: 1\n")
    assert load_sweep(sweep).allow_pickle is True
