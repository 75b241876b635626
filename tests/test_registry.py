import json
from pathlib import Path

import pytest

from scaling.errors import UnknownModelError
from scaling.registry import list_models, model_from_dir, resolve_model

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "scaling" / "_registry" / "models"

#: The 24 architectures whose real configs were handed to the project (transcribed into the package).
FOUNDING_MODELS = {
    "animatediff-sd1.5", "audioldm-l-full", "audioldm-s-full-v2", "audioldm2", "cogvideox-2b", "cogvideox-5b",
    "flux.1-dev", "flux.1-schnell", "hunyuanvideo", "ltx-video", "mochi-1", "musicldm", "pixart-sigma",
    "qwen-image", "sd1.5", "sd2.1", "sd3.5-large", "sd3.5-medium", "sdxl", "stable-audio-open-1.0", "tango",
    "tango2", "wan2.1-t2v-1.3b", "wan2.1-t2v-14b",
}

ALIASES = {
    "wan2.1": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
    "wan2.1-14b": "Wan-AI/Wan2.1-T2V-14B-Diffusers",
    "sd2.1": "stabilityai/stable-diffusion-2-1",
    "sd3.5-large": "stabilityai/stable-diffusion-3.5-large",
    "flux-dev": "black-forest-labs/FLUX.1-dev",
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
    "qwen-image": "Qwen/Qwen-Image",
    "cogvideox-5b": "THUDM/CogVideoX-5b",
    "ltx-video": "Lightricks/LTX-Video",
    "mochi": "genmo/mochi-1-preview",
    "hunyuanvideo": "hunyuanvideo-community/HunyuanVideo",
    "audioldm2": "cvssp/audioldm2",
    "stable-audio-open": "stabilityai/stable-audio-open-1.0",
    "tango2": "declare-lab/tango2",
}


def test_every_founding_model_is_registered_with_its_package_configs():
    keys = {s.key for s in list_models()}
    assert FOUNDING_MODELS <= keys
    packaged = {p.name for p in PACKAGE_MODELS.iterdir() if p.is_dir()}
    assert keys <= packaged  # every architecture ships its config folder
    for key in keys:  # each folder names its sources
        assert (Path(resolve_model(key).source_dir) / "SOURCE.md").is_file(), key


@pytest.mark.parametrize("alias,model_id", ALIASES.items())
def test_alias_resolves_to_one_documented_id(alias, model_id):
    assert resolve_model(alias).id == model_id
    assert resolve_model(model_id).id == model_id
    assert resolve_model(alias.upper()).id == model_id


def test_aliases_are_unique():
    seen = {}
    for spec in list_models(include_variants=True):
        for name in (spec.key, spec.id, *spec.aliases):
            assert seen.setdefault(name.lower(), spec.key) == spec.key, name


@pytest.mark.parametrize("spec", list_models(), ids=lambda s: s.key)
def test_registry_configs_are_the_package_copies_verbatim(spec):
    folder = PACKAGE_MODELS / spec.key
    source = (folder / "SOURCE.md").read_text(encoding="utf-8")
    for name, comp in spec.components.items():  # what the registry serves is the shipped file, unchanged
        assert comp.config == json.loads((folder / f"{name}.json").read_text())
        assert f"{name}.json" in source, f"{spec.key}/SOURCE.md does not name {name}.json"
    assert Path(spec.source_dir) == folder
    roles = spec.roles()
    assert "denoiser" in roles and "decoder" in roles and "text_encoder" in roles
    if spec.modality == "audio" and spec.family != "stable-audio":
        assert "vocoder" in roles


def test_guidance_types():
    assert resolve_model("wan2.1").guidance_type == "cfg"
    assert resolve_model("flux-dev").guidance_type == "distilled"
    assert resolve_model("flux-schnell").guidance_type == "none"
    assert resolve_model("hunyuanvideo").guidance_type == "distilled"


def test_variants_share_an_architecture():
    turbo = resolve_model("stabilityai/sdxl-turbo")
    assert turbo.architecture_key == "sdxl"
    assert turbo.defaults["steps"] == 1 and turbo.defaults["height"] == 512
    lightning = resolve_model("ByteDance/AnimateDiff-Lightning")
    assert lightning.architecture_key == "animatediff-sd1.5" and lightning.guidance_type == "none"


def test_unknown_model_error_names_the_value_and_suggests():
    with pytest.raises(UnknownModelError) as exc:
        resolve_model("wan2.2")
    msg = str(exc.value)
    assert "'wan2.2'" in msg and "\n" not in msg
    assert "wan2.1" in msg  # a close match is suggested


def test_model_from_local_diffusers_folder(tmp_path):
    src = PACKAGE_MODELS / "sd2.1"
    (tmp_path / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"]}))
    for name in ("unet", "vae", "text_encoder"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text((src / f"{name}.json").read_text())
    spec = model_from_dir(tmp_path)
    assert spec.family == "sd" and spec.components["unet"].config["cross_attention_dim"] == 1024


def test_model_from_dir_errors(tmp_path):
    with pytest.raises(UnknownModelError, match="no model_index.json"):
        model_from_dir(tmp_path)
    (tmp_path / "model_index.json").write_text('{"_class_name": "KandinskyPipeline"}')
    with pytest.raises(UnknownModelError, match="not supported"):
        model_from_dir(tmp_path)
