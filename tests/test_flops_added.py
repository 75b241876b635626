"""The models registered for issue 12: LTX-Video 0.9.7 dev (two-pass recipe), CogVideoX1.5-5B,
SVD / SVD-XT, I2VGen-XL, ModelScope T2V, Kandinsky 2.2 and 3, SANA 1.5 (1.6B, 4.8B), HunyuanDiT v1.2.

As for the other families (tests/test_flops_image.py, tests/test_flops_video.py): settings that
are NOT in the build design are traced on the meta device and compared with the shipped
polynomial, component by component and per op class; plus the pipeline facts the shapes encode
(sizes, bins, tiles, padding, calls), checked against diffusers' own code where it has a function
for them, and the parameter counts against the published sizes.
"""

from __future__ import annotations

import pytest

from profilers.flops.profile import OP_CLASSES, _table, evaluate, parameter_counts
from scaling.registry import resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls

MODELS = ("ltx-video-0.9.7-dev", "cogvideox1.5-5b", "svd-img2vid", "svd-img2vid-xt", "i2vgen-xl",
          "modelscope-t2v-1.7b", "kandinsky-2.2", "kandinsky-3", "sana1.5-1.6b", "sana1.5-4.8b", "hunyuandit-v1.2")

# settings per model, none of them in the build design (HunyuanDiT: every size snaps to one of its
# 10 shapes, all of which are design points; these check the snapping and the table there)
SETTINGS = {
    "ltx-video-0.9.7-dev": [dict(height=512, width=704, frames=121), dict(height=768, width=1152, frames=161)],
    "cogvideox1.5-5b": [dict(height=768, width=1360, frames=81), dict(height=480, width=832, frames=45)],
    "svd-img2vid": [dict(height=560, width=1024, frames=14), dict(height=576, width=1016, frames=20)],
    "svd-img2vid-xt": [dict(height=592, width=1040, frames=25)],  # 576x1024: its VAE encode is P of 768x768
    "i2vgen-xl": [dict(height=704, width=1280, frames=16), dict(height=448, width=800, frames=12)],
    "modelscope-t2v-1.7b": [dict(height=256, width=256, frames=12), dict(height=320, width=448, frames=20)],
    "kandinsky-2.2": [dict(height=640, width=832), dict(height=600, width=904)],
    "kandinsky-3": [dict(height=832, width=1216), dict(height=1536, width=1024)],
    "sana1.5-1.6b": [dict(height=1120, width=800), dict(height=960, width=1088)],
    "sana1.5-4.8b": [dict(height=1120, width=800)],
    "hunyuandit-v1.2": [dict(height=1000, width=1000), dict(height=720, width=1280)],
}
FAST_CASES = {("modelscope-t2v-1.7b", 0), ("kandinsky-2.2", 0)}

_TRACED: dict = {}


def _traced(spec, call) -> dict[str, float]:
    from profilers.flops.traced import count_call

    key = (spec.architecture_key, call.key, tuple(sorted(call.features.items())))
    if key not in _TRACED:
        _TRACED[key] = count_call(spec, call).as_dict()
    return _TRACED[key]


def _calls(model, **kw):
    spec = resolve_model(model)
    return {c.key: c for c in component_calls(spec, make_setting(spec, **kw))}


CASES = [pytest.param(m, i, id=f"{m}-{i}", marks=() if (m, i) in FAST_CASES else pytest.mark.slow)
         for m in MODELS for i in range(len(SETTINGS[m]))]


@pytest.mark.parametrize("model,i", CASES)
def test_closed_form_matches_traced(model, i):
    spec = resolve_model(model)
    calls = component_calls(spec, make_setting(spec, **SETTINGS[model][i]))
    table = _table(spec.architecture_key)
    assert sorted({c.key for c in calls}) == sorted(table["components"])
    for call in calls:
        entry = table["components"][call.key]
        if entry["basis"] == [[]]:  # a fixed-length encoder: one design point, the same call
            continue
        if model != "hunyuandit-v1.2":
            assert dict(call.features) not in entry["design"], f"{call.key} {call.features} is a design point"
        closed, traced = evaluate(spec, call), _traced(spec, call)
        total = sum(traced.values())
        assert abs(sum(closed.values()) - total) <= 0.01 * total, (call.key, closed, traced)
        for op in OP_CLASSES:  # exact polynomials: far below 1% per op class too
            assert abs(closed[op] - traced[op]) <= 0.01 * total, (call.key, op, closed[op], traced[op])


def test_tables_are_exact_and_current():
    for model in MODELS:
        table = _table(model)
        for key, entry in table["components"].items():
            assert entry["max_rel_residual"] < 1e-6, (model, key)
            assert entry["n_points"] >= len(entry["basis"]), (model, key)
        assert table["versions"]["diffusers"].startswith("0.42")


# -- the registry -------------------------------------------------------------------------------

@pytest.mark.parametrize("name,key", [
    ("Lightricks/LTX-Video-0.9.7-dev", "ltx-video-0.9.7-dev"), ("zai-org/CogVideoX1.5-5B", "cogvideox1.5-5b"),
    ("THUDM/CogVideoX1.5-5B", "cogvideox1.5-5b"), ("stabilityai/stable-video-diffusion-img2vid", "svd-img2vid"),
    ("stabilityai/stable-video-diffusion-img2vid-xt", "svd-img2vid-xt"), ("ali-vilab/i2vgen-xl", "i2vgen-xl"),
    ("ali-vilab/text-to-video-ms-1.7b", "modelscope-t2v-1.7b"),
    ("damo-vilab/text-to-video-ms-1.7b", "modelscope-t2v-1.7b"),
    ("kandinsky-community/kandinsky-2-2-decoder", "kandinsky-2.2"), ("kandinsky-community/kandinsky-3", "kandinsky-3"),
    ("Efficient-Large-Model/SANA1.5_1.6B_1024px_diffusers", "sana1.5-1.6b"),
    ("Efficient-Large-Model/SANA1.5_4.8B_1024px_diffusers", "sana1.5-4.8b"),
    ("Tencent-Hunyuan/HunyuanDiT-v1.2-Diffusers", "hunyuandit-v1.2"),
    # repository renames of models registered before
    ("zai-org/CogVideoX-2b", "cogvideox-2b"), ("THUDM/CogVideoX-2b", "cogvideox-2b"),
    ("tencent/HunyuanVideo", "hunyuanvideo"), ("hunyuanvideo-community/HunyuanVideo", "hunyuanvideo"),
])
def test_published_ids_resolve(name, key):
    assert resolve_model(name).key == key


# published sizes: ML.ENERGY v2 models.json (denoising parameters, billions, one decimal), the authors'
# model names and cards (LTX 13B, CogVideoX 5B, SANA 1.6B / 4.8B, HunyuanDiT 1.5B, Kandinsky 3's U-Net 3B)
PUBLISHED = {"ltx-video-0.9.7-dev": ("transformer", 13.0e9), "cogvideox1.5-5b": ("transformer", 5.0e9),
             "svd-img2vid": ("unet", 1.5e9), "svd-img2vid-xt": ("unet", 1.5e9), "i2vgen-xl": ("unet", 1.4e9),
             "modelscope-t2v-1.7b": ("unet", 1.4e9), "kandinsky-2.2": ("unet", 1.3e9), "kandinsky-3": ("unet", 3.1e9),
             "sana1.5-1.6b": ("transformer", 1.6e9), "sana1.5-4.8b": ("transformer", 4.8e9),
             "hunyuandit-v1.2": ("transformer", 1.5e9)}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_denoiser_near_published_size(model):
    name, n = PUBLISHED[model]
    assert parameter_counts(resolve_model(model))[name] == pytest.approx(n, rel=0.12)


def test_ml_energy_totals():
    # ML.ENERGY v2 models.json total_params (billions, one decimal) against the registered components
    for model, total in (("svd-img2vid", 2.3), ("i2vgen-xl", 2.5), ("modelscope-t2v-1.7b", 1.8),
                         ("kandinsky-2.2", 4.9), ("kandinsky-3", 12.0)):
        n = sum(parameter_counts(resolve_model(model)).values()) / 1e9
        assert abs(n - total) <= 0.06, (model, n, total)


# -- LTX-Video 0.9.7: the two-pass recipe ----------------------------------------------------------

def test_ltx_recipe_follows_the_published_stages():
    from scaling.shapes._video import ltx_multiscale_sizes

    spec = resolve_model("ltx-video-0.9.7-dev")
    assert ltx_multiscale_sizes(spec, 512, 704) == ((320, 448), (640, 896))  # the published stage sizes
    c = _calls("ltx-video-0.9.7-dev", height=512, width=704, frames=121, steps=30)
    assert c["transformer:generate"].calls == 60 and c["transformer:generate"].features["L"] == 16 * 10 * 14
    assert c["transformer:denoise"].calls == 8 and c["transformer:denoise"].features["L"] == 16 * 20 * 28
    assert c["text_encoder"].calls == 4 and c["text_encoder"].dims["T"] == 256  # 2 passes x (prompt + negative)
    assert c["latent_upsampler"].role == "upsampler"
    assert c["vae"].features == {"f": 16, "n": 4, "Pt": (16 + 6) * (16 + 14)}  # 2 x 2 overlapping tiles


def test_ltx_transformer_attention_by_hand():
    # 48 layers, 32 heads x 128: self-attention over the packed tokens + cross-attention to 256 T5 tokens
    spec = resolve_model("ltx-video-0.9.7-dev")
    call = _calls("ltx-video-0.9.7-dev", height=512, width=704, frames=121)["transformer:denoise"]
    L = call.features["L"]
    assert evaluate(spec, call)["attention"] == pytest.approx(4 * 32 * 128 * 48 * (L * L + L * 256), rel=1e-9)


def test_ltx_vae_tiles_follow_diffusers():
    """Run the real ``AutoencoderKLLTXVideo.tiled_decode`` on a stub whose decoder records the tiles."""
    import types

    import torch
    from diffusers import AutoencoderKLLTXVideo

    from scaling.shapes._video import ltx_vae_tiles

    src = __import__("inspect").getsource(AutoencoderKLLTXVideo.__init__)
    assert "self.tile_sample_min_height = 512" in src and "self.tile_sample_stride_height = 448" in src
    for h, w in ((10, 14), (20, 28), (12, 24), (30, 52), (16, 16), (17, 40)):
        tiles: list[tuple[int, int]] = []

        def decoder(z, temb=None):
            tiles.append((z.shape[3], z.shape[4]))
            return torch.zeros(1, 1, 1, 32 * z.shape[3], 32 * z.shape[4])

        stub = types.SimpleNamespace(decoder=decoder, spatial_compression_ratio=32, tile_sample_min_height=512,
                                     tile_sample_min_width=512, tile_sample_stride_height=448,
                                     tile_sample_stride_width=448)
        for name in ("blend_v", "blend_h"):
            setattr(stub, name, types.MethodType(getattr(AutoencoderKLLTXVideo, name), stub))
        if h > 16 or w > 16:
            AutoencoderKLLTXVideo.tiled_decode(stub, torch.zeros(1, 1, 1, h, w), None, return_dict=False)
        else:
            tiles.append((h, w))
        assert ltx_vae_tiles(h, w) == {"n": len(tiles), "Pt": sum(a * b for a, b in tiles)}, (h, w, tiles)


# -- CogVideoX 1.5 -------------------------------------------------------------------------------

def test_cogvideox_1_5_pads_latent_frames():
    c = _calls("cogvideox1.5-5b", height=768, width=1360, frames=81)
    assert c["transformer"].dims["f"] == 22 and c["transformer"].features["L"] == 11 * 48 * 85 + 226
    assert c["vae"].dims["f"] == 21  # the padding is dropped before decoding
    c = _calls("cogvideox1.5-5b", height=768, width=1360, frames=77)  # 20 latent frames: no padding
    assert c["transformer"].dims["f"] == 20 and c["transformer"].features["L"] == 10 * 48 * 85 + 226


def test_cogvideox_1_5_frame_rule():
    from scaling.errors import InvalidSettingError

    make_setting("cogvideox1.5-5b", frames=161)
    with pytest.raises(InvalidSettingError):
        make_setting("cogvideox1.5-5b", frames=80)


# -- image-to-video and video UNets ----------------------------------------------------------------

def test_image_to_video_calls_follow_the_pipelines():
    svd = _calls("svd-img2vid", batch_size=2)
    assert svd["unet"].calls == 50 and svd["unet"].features["f"] == 14 and svd["unet"].batch == 2
    assert svd["image_encoder"].calls == 1 and svd["vae:encode"].calls == 1  # unconditional inputs are zeros
    assert _calls("svd-img2vid-xt")["unet"].features["f"] == 25
    i2v = _calls("i2vgen-xl", height=720, width=1280, steps=25)
    assert i2v["unet"].calls == 50 and i2v["text_encoder"].calls == 2 and i2v["image_encoder"].calls == 1
    assert i2v["unet"].features["P"] == 90 * 160 and i2v["unet"].features["P2"] == 23 * 40  # ceil: 45 -> 23
    ms = _calls("modelscope-t2v-1.7b")
    assert (ms["unet"].dims["h"], ms["unet"].dims["w"], ms["unet"].features["f"]) == (32, 32, 16)


# -- Kandinsky --------------------------------------------------------------------------------------

def test_kandinsky_latent_follows_diffusers():
    from diffusers.pipelines.kandinsky2_2.pipeline_kandinsky2_2 import downscale_height_and_width

    from scaling.shapes._image_movq import kandinsky_latent

    for h, w in ((512, 512), (600, 904), (1024, 1024), (520, 776), (8, 8), (1088, 1920)):
        assert kandinsky_latent(h, w) == downscale_height_and_width(h, w, 8)


def test_kandinsky22_prior_and_decoder_calls():
    c = _calls("kandinsky-2.2", steps=25, batch_size=4)
    assert c["prior_prior"].calls == 50 and c["prior_prior"].batch == 4  # 25 prior steps x CFG, whatever `steps`
    assert c["unet"].calls == 50 and c["prior_text_encoder"].calls == 2
    assert c["prior_image_encoder"].batch == 1  # one zero image, repeated
    no_cfg = _calls("kandinsky-2.2", guidance=1.0)
    assert no_cfg["unet"].calls == 100 and no_cfg["prior_prior"].calls == 50  # the prior keeps its own CFG


# -- SANA, HunyuanDiT ------------------------------------------------------------------------------

def test_sana_bins_follow_diffusers():
    from diffusers.image_processor import PixArtImageProcessor
    from diffusers.pipelines.pixart_alpha.pipeline_pixart_alpha import ASPECT_RATIO_1024_BIN

    from scaling.shapes._image_dit import sana_bin

    spec = resolve_model("sana1.5-1.6b")
    for h, w in ((1024, 1024), (1200, 800), (720, 1280), (512, 2048), (960, 1088), (1440, 1440)):
        assert sana_bin(spec, h, w) == PixArtImageProcessor.classify_height_width_bin(h, w, ASPECT_RATIO_1024_BIN)


def test_sana_text_encoder_calls():
    c = _calls("sana1.5-4.8b")
    chi = resolve_model("sana1.5-4.8b").pipeline["complex_human_instruction_tokens"]
    assert c["text_encoder:prompt"].dims["T"] == chi + 298 and c["text_encoder:negative"].dims["T"] == 300
    assert "text_encoder:negative" not in _calls("sana1.5-4.8b", guidance=1.0)


def test_hunyuandit_shapes_follow_diffusers():
    from diffusers.pipelines.hunyuandit.pipeline_hunyuandit import SUPPORTED_SHAPE, map_to_standard_shapes

    from scaling.shapes._image_dit import hunyuandit_shape

    for h, w in ((1024, 1024), (1000, 1000), (720, 1280), (1280, 720), (900, 1200), (512, 512), (1536, 1024),
                 (1152, 864), (2048, 1024)):
        hh, ww = h // 16 * 16, w // 16 * 16
        if (hh, ww) not in SUPPORTED_SHAPE:
            ww, hh = map_to_standard_shapes(ww, hh)
        assert hunyuandit_shape(h, w) == (int(hh), int(ww)), (h, w)
    c = _calls("hunyuandit-v1.2", height=1000, width=1000)
    assert c["transformer"].features["L"] == 64 * 64 and c["transformer"].dims["T"] == 77 + 256
