"""Closed-form FLOP tables of the video families (wan, cogvideox, ltx, mochi, hunyuan, animatediff).

For every video model: settings that are NOT in the build design (non-square and portrait
resolutions, frame counts between the design's, long clips) are traced on the meta device and
compared with the shipped polynomial, component by component; plus hand-derived attention
counts, the decoders' chunk / tile rules checked against diffusers, and the pipeline facts the
shapes encode (calls per generation, text lengths).
"""

from __future__ import annotations

import pytest

from profilers.flops.profile import OP_CLASSES, _table, evaluate, parameter_counts
from scaling.registry import resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls
from scaling.shapes._video import cogvideox_vae_chunks, hunyuan_vae_tiles, unet_levels

MODELS = ("wan2.1-t2v-14b", "cogvideox-2b", "cogvideox-5b", "ltx-video", "mochi-1", "hunyuanvideo",
          "animatediff-sd1.5")

# (height, width, frames) per model, none of them in the build design
SETTINGS = {
    "wan2.1-t2v-14b": [(480, 832, 81), (368, 640, 33), (1024, 576, 121)],  # 81 / 121 frames: long videos
    "cogvideox-2b": [(576, 1024, 49), (480, 720, 45), (768, 1360, 17)],    # 45: even latent frame count
    "cogvideox-5b": [(512, 768, 49), (720, 480, 33), (640, 1024, 41)],
    "ltx-video": [(512, 704, 161), (480, 864, 97), (704, 1216, 249)],
    "mochi-1": [(480, 848, 19), (480, 848, 85), (848, 480, 163)],
    "hunyuanvideo": [(704, 1280, 129), (544, 960, 61), (480, 848, 33)],
    "animatediff-sd1.5": [(512, 768, 12), (576, 1024, 20), (344, 616, 32)],  # 32: the motion modules' max
}

_TRACED: dict = {}


def _traced(spec, call) -> dict[str, float]:
    from profilers.flops.traced import count_call

    key = (spec.architecture_key, call.key, tuple(sorted(call.features.items())))
    if key not in _TRACED:
        _TRACED[key] = count_call(spec, call).as_dict()
    return _TRACED[key]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1.0)


def _calls(model, **kw):
    spec = resolve_model(model)
    return {c.key: c for c in component_calls(spec, make_setting(spec, **kw))}


# the fast lane traces one video DiT and the UNet with motion modules; every other case is `slow`
FAST_CASES = {("ltx-video", (480, 864, 97)), ("animatediff-sd1.5", (344, 616, 32))}
assert all(x in SETTINGS[m] for m, x in FAST_CASES), "a fast case is not in SETTINGS"
CASES = [pytest.param(m, s, id=f"{m}-{s[0]}x{s[1]}x{s[2]}", marks=() if (m, s) in FAST_CASES else pytest.mark.slow)
         for m in MODELS for s in SETTINGS[m]]


@pytest.mark.parametrize("model,hwf", CASES)
def test_closed_form_matches_traced(model, hwf):
    spec = resolve_model(model)
    setting = make_setting(spec, height=hwf[0], width=hwf[1], frames=hwf[2])
    table = _table(spec.architecture_key)
    calls = component_calls(spec, setting)
    assert {c.role for c in calls} == {"text_encoder", "denoiser", "decoder"}
    assert sorted(c.key for c in calls) == sorted(table["components"])
    for call in calls:
        entry = table["components"][call.key]
        if call.role != "text_encoder":  # text encoders have a fixed token count
            assert dict(call.features) not in entry["design"], f"{call.key} {call.features} is a design point"
        closed = evaluate(spec, call)
        traced = _traced(spec, call)
        total_c, total_t = sum(closed.values()), sum(traced.values())
        assert _rel(total_c, total_t) < 0.01, (call.key, total_c, total_t)
        for op in OP_CLASSES:  # per op class too (exact polynomials: far below 1%)
            assert abs(closed[op] - traced[op]) <= 0.01 * total_t, (call.key, op, closed[op], traced[op])
        # every component attends except the VAEs without attention blocks (CogVideoX, LTX, Mochi decoders)
        if call.role != "decoder" or spec.family in ("wan", "hunyuan", "animatediff"):
            assert traced["attention"] > 0 and closed["attention"] > 0, call.key
        else:
            assert traced["attention"] == 0 and traced["conv"] > 0, call.key


def test_tables_are_exact_and_current():
    for model in MODELS:
        table = _table(model)
        for key, entry in table["components"].items():
            assert entry["max_rel_residual"] < 1e-6, (model, key)
            assert entry["n_points"] >= len(entry["basis"]), (model, key)
        assert table["versions"]["diffusers"].startswith("0.42")


# -- hand-derived counts ---------------------------------------------------------------------

def _attention(model, call_key, **kw):
    spec = resolve_model(model)
    call = _calls(model, **kw)[call_key]
    return call, evaluate(spec, call)["attention"]


def test_wan_14b_attention_by_hand():
    # 40 layers, 40 heads x 128: self-attention over L video tokens + cross-attention to 512 T5 tokens
    call, attn = _attention("wan2.1-t2v-14b", "transformer", height=720, width=1280, frames=81)
    L = 21 * 45 * 80
    assert call.features["L"] == L
    assert attn == pytest.approx(4 * 40 * 128 * 40 * (L * L + L * 512), rel=1e-9)


@pytest.mark.parametrize("model,heads,layers", [("cogvideox-2b", 30, 30), ("cogvideox-5b", 48, 42)])
def test_cogvideox_joint_attention_by_hand(model, heads, layers):
    call, attn = _attention(model, "transformer")  # 480x720, 49 frames
    L = 13 * 30 * 45 + 226
    assert call.features["L"] == L == 17776
    assert attn == pytest.approx(4 * heads * 64 * layers * L * L, rel=1e-9)


def test_ltx_attention_by_hand():
    # 28 layers, 32 heads x 64: self-attention over the packed tokens + cross-attention to 128 T5 tokens
    call, attn = _attention("ltx-video", "transformer")  # 512x704, 161 frames
    L = 21 * 16 * 22
    assert call.features["L"] == L == 7392
    assert attn == pytest.approx(4 * 32 * 64 * 28 * (L * L + L * 128), rel=1e-9)


def test_mochi_attention_by_hand():
    call, attn = _attention("mochi-1", "transformer", frames=85)  # 480x848
    L = 15 * 30 * 53 + 256
    assert call.features["L"] == L
    # 48 layers, 24 heads x 128, joint attention; plus the caption attention pool of the time
    # embedding: one query over the mean token + 256 text tokens, 4096 channels
    assert attn == pytest.approx(4 * 24 * 128 * 48 * L * L + 4 * 257 * 4096, rel=1e-9)


def test_hunyuan_attention_by_hand():
    # 20 double + 40 single blocks, 24 heads x 128, over video + 256 text tokens; the token
    # refiner (2 layers) attends over the 256 text tokens
    call, attn = _attention("hunyuanvideo", "transformer")  # 720x1280, 129 frames
    L = 33 * 45 * 80 + 256
    assert call.features["L"] == L
    assert attn == pytest.approx(4 * 24 * 128 * (60 * L * L + 2 * 256 * 256), rel=1e-9)
    # VAE: one single-head 512-channel attention in the decoder mid-block, over each tile's n*P tokens
    vae = _calls("hunyuanvideo")["vae"]
    P = 90 * 160
    tiles = {n: vae.features[f"t{n}"] for n in range(1, 6)}
    assert tiles == {1: 0, 2: 0, 3: 1, 4: 0, 5: 10}
    by_hand = sum(k * 4 * 512 * (n * P) ** 2 for n, k in tiles.items())
    assert evaluate(resolve_model("hunyuanvideo"), vae)["attention"] == pytest.approx(by_hand, rel=1e-9)
    # Llama on 256 + 95 template tokens: 32 layers, 32 query heads x 128
    te = _calls("hunyuanvideo")["text_encoder"]
    assert te.dims["T"] == 351
    assert evaluate(resolve_model("hunyuanvideo"), te)["attention"] == pytest.approx(4 * 32 * 128 * 32 * 351 ** 2,
                                                                                     rel=1e-9)


def test_animatediff_attention_by_hand():
    """Spatial attention per frame (SD1.5: self + cross to 77 tokens) plus the motion modules'
    temporal self-attention (2 per module) over the frames at every latent pixel."""
    f, h, w = 20, 72, 128
    call, attn = _attention("animatediff-sd1.5", "unet", height=8 * h, width=8 * w, frames=f)
    P = [call.features[k] for k in ("P", "P1", "P2", "P3")]
    C = (320, 640, 1280, 1280)
    spatial = (5, 5, 5, 1)  # transformers per level: down 2 + up 3 (levels 0-2), mid 1 (level 3)
    motion = (2 + 3, 2 + 3, 2 + 3, 2 + 3 + 1)  # down 2, up 3 per level; mid 1 at level 3
    by_hand = sum(f * spatial[k] * 4 * C[k] * (P[k] ** 2 + P[k] * 77) + motion[k] * 2 * 4 * C[k] * P[k] * f * f
                  for k in range(4))
    assert attn == pytest.approx(by_hand, rel=1e-9)


# -- decoder chunks and tiles, checked against the diffusers loops -----------------------------

def _run_decode_loop(cls, f: int, **attrs) -> list[int]:
    """Run the real ``cls._decode`` of diffusers on a stub whose decoder records the latent
    frames of every call (no weights, tiny CPU tensors)."""
    import types

    import torch

    sizes: list[int] = []

    def decoder(z, conv_cache=None, **kwargs):
        n = z.shape[2]
        sizes.append(n)
        out = torch.zeros(1, 1, 1 + 4 * (n - 1), 1, 1)
        return (out, None) if "cogvideox" in cls.__module__ else out

    stub = types.SimpleNamespace(**{"decoder": decoder, "post_quant_conv": None, "use_tiling": False, **attrs})
    for name in ("_temporal_tiled_decode", "blend_t"):
        if hasattr(cls, name):
            setattr(stub, name, types.MethodType(getattr(cls, name), stub))
    cls._decode(stub, torch.zeros(1, 1, f, 1, 1), return_dict=False)
    return sizes


def test_cogvideox_vae_chunks_follow_diffusers():
    from diffusers import AutoencoderKLCogVideoX

    for f in range(1, 40):
        sizes = _run_decode_loop(AutoencoderKLCogVideoX, f, num_latent_frames_batch_size=2)
        assert sum(sizes) == f
        assert cogvideox_vae_chunks(f) == {f"c{k}": sizes.count(k) for k in (1, 2, 3)}, (f, sizes)
    assert cogvideox_vae_chunks(13) == {"c1": 0, "c2": 5, "c3": 1}  # 49 frames
    src = __import__("inspect").getsource(AutoencoderKLCogVideoX.__init__)
    assert "self.num_latent_frames_batch_size = 2" in src


def test_hunyuan_vae_tiles_follow_diffusers():
    import inspect

    from diffusers import AutoencoderKLHunyuanVideo

    src = inspect.getsource(AutoencoderKLHunyuanVideo.__init__)  # the defaults the pipeline decodes with
    assert "self.use_framewise_decoding = True" in src and "self.tile_sample_min_num_frames = 16" in src
    assert "self.tile_sample_stride_num_frames = 12" in src and "self.use_tiling = False" in src
    for f in range(1, 60):
        sizes = _run_decode_loop(
            AutoencoderKLHunyuanVideo, f, use_framewise_decoding=True, spatial_compression_ratio=8,
            temporal_compression_ratio=4, tile_sample_min_height=256, tile_sample_min_width=256,
            tile_sample_min_num_frames=16, tile_sample_stride_num_frames=12, post_quant_conv=lambda z: z)
        assert hunyuan_vae_tiles(f) == {f"t{k}": sizes.count(k) for k in range(1, 6)}, (f, sizes)


def test_animatediff_unet_levels_round_up():
    assert unet_levels(75, 113) == {"P": 75 * 113, "P1": 38 * 57, "P2": 19 * 29, "P3": 10 * 15}


# -- pipeline facts the shapes encode ----------------------------------------------------------

def test_calls_per_generation_follow_the_pipelines():
    wan = _calls("wan2.1-t2v-14b")
    assert wan["text_encoder"].calls == 2 and wan["transformer"].calls == 100 and wan["vae"].calls == 1
    for m in ("cogvideox-2b", "cogvideox-5b"):
        c = _calls(m)  # CFG: negative prompt "" encoded, batch of 2 per step
        assert c["text_encoder"].calls == 2 and c["text_encoder"].dims["T"] == 226 and c["transformer"].calls == 100
    ltx = _calls("ltx-video")
    assert ltx["text_encoder"].dims["T"] == 128 and ltx["transformer"].calls == 100 and ltx["text_encoder"].calls == 2
    mochi = _calls("mochi-1")
    assert mochi["text_encoder"].dims["T"] == 256 and mochi["transformer"].calls == 128  # 64 steps x CFG
    hy = _calls("hunyuanvideo")  # guidance embedding: one pass per step, no negative prompt
    assert hy["transformer"].calls == 50 and hy["text_encoder"].calls == 1 and hy["text_encoder_2"].calls == 1
    assert hy["text_encoder"].dims["T"] == 256 + 95 and hy["text_encoder_2"].dims["T"] == 77
    assert hy["transformer"].dims["T"] == 256
    hy_cfg = _calls("hunyuanvideo", cfg=True)  # true CFG: negative prompt through both encoders, 2 passes
    assert hy_cfg["transformer"].calls == 100 and hy_cfg["text_encoder"].calls == 2
    ad = _calls("animatediff-sd1.5", batch_size=2, outputs_per_prompt=2)
    assert ad["text_encoder"].calls == 2 and ad["text_encoder"].batch == 2 and ad["unet"].calls == 100
    assert ad["unet"].batch == 4 and ad["vae"].batch == 4 and ad["unet"].features["f"] == 16
    assert "motion_adapter" not in ad  # runs inside the composed UNetMotionModel


def test_frame_rules():
    from scaling.errors import InvalidSettingError

    make_setting("cogvideox-2b", frames=45)  # 4k+1: what CogVideoXPipeline accepts
    for model, bad in (("cogvideox-2b", 47), ("ltx-video", 163), ("mochi-1", 20), ("hunyuanvideo", 130),
                       ("animatediff-sd1.5", 33), ("cogvideox-5b", 53)):
        with pytest.raises(InvalidSettingError):
            make_setting(model, frames=bad)


def test_parameters_match_readme():
    # scaling/_registry/models/CONFIGS.md, denoiser parameters (0.1%)
    readme = {"wan2.1-t2v-14b": 14.288e9, "cogvideox-2b": 1.694e9, "cogvideox-5b": 5.570e9, "ltx-video": 1.923e9,
              "mochi-1": 10.028e9, "hunyuanvideo": 12.821e9}
    for model, n in readme.items():
        assert parameter_counts(resolve_model(model))["transformer"] == pytest.approx(n, rel=1e-3), model
    p = parameter_counts(resolve_model("animatediff-sd1.5"))
    assert p["unet"] == pytest.approx(859.5e6, rel=1e-3) and p["motion_adapter"] == pytest.approx(453.2e6, rel=1e-3)


def test_unet_motion_model_is_unet_plus_adapter():
    from profilers.flops.traced import _module_for

    spec = resolve_model("animatediff-sd1.5")
    call = _calls("animatediff-sd1.5")["unet"]
    module = _module_for(spec, call)
    assert type(module).__name__ == "UNetMotionModel"
    p = parameter_counts(spec)
    assert sum(x.numel() for x in module.parameters()) == p["unet"] + p["motion_adapter"]
