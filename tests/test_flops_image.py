"""Closed-form FLOP tables of the image families (sd, sdxl, sd3, flux, qwen, pixart).

For every image model: settings that are NOT in the build design (non-square, odd latent
sides for the UNets, other aspect-ratio bins for PixArt, a large image for the DiTs) are traced
on the meta device and compared with the shipped polynomial, component by component; plus
hand-derived attention / linear counts and the pipeline facts the shapes encode.
"""

from __future__ import annotations

import pytest

from profilers.flops.profile import OP_CLASSES, _table, evaluate, parameter_counts
from scaling.registry import resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls

MODELS = ("sd1.5", "sdxl", "sd3.5-large", "sd3.5-medium", "flux.1-dev", "flux.1-schnell", "qwen-image",
          "pixart-sigma", "sd3-medium", "ssd-1b")

# (height, width) per model, none of them in the build design
SETTINGS = {
    "sd1.5": [(600, 904), (448, 640), (1536, 1024)],          # latent 75x113 (odd), 56x80, 192x128
    "sdxl": [(1216, 832), (600, 904), (2048, 1536)],
    "sd3.5-large": [(1440, 816), (640, 1536), (1920, 1088)],
    "sd3.5-medium": [(1440, 816), (640, 1536), (2048, 1152)],
    "flux.1-dev": [(1440, 816), (640, 1536), (1920, 1088)],
    "flux.1-schnell": [(816, 1440), (1152, 832), (2048, 2048)],
    "qwen-image": [(1328, 1328), (928, 1664), (1920, 1088)],  # 1328 and 928x1664: the model card's sizes
    "pixart-sigma": [(720, 816), (1008, 400), (464, 1680)],   # binned to 960x1088, 1600x640, 512x1856
    "sd3-medium": [(1440, 816), (640, 1536), (1920, 1088)],
    "ssd-1b": [(1216, 832), (600, 904), (2048, 1536)],       # latent 75x113: odd levels as for sdxl
}

_TRACED: dict = {}


def _traced(spec, call) -> dict[str, float]:
    from profilers.flops.traced import count_call

    key = (spec.key, call.key, tuple(sorted(call.features.items())))
    if key not in _TRACED:
        _TRACED[key] = count_call(spec, call).as_dict()
    return _TRACED[key]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1.0)


# the fast lane traces one MMDiT and one UNet (odd latent sides); every other case is `slow`
FAST_CASES = {("sd3-medium", (640, 1536)), ("ssd-1b", (600, 904))}
assert all(x in SETTINGS[m] for m, x in FAST_CASES), "a fast case is not in SETTINGS"
CASES = [pytest.param(m, hw, id=f"{m}-{hw[0]}x{hw[1]}", marks=() if (m, hw) in FAST_CASES else pytest.mark.slow)
         for m in MODELS for hw in SETTINGS[m]]


@pytest.mark.parametrize("model,hw", CASES)
def test_closed_form_matches_traced(model, hw):
    spec = resolve_model(model)
    setting = make_setting(spec, height=hw[0], width=hw[1])
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
        assert traced["attention"] > 0 and closed["attention"] > 0, call.key  # every component attends


def test_tables_are_exact_and_current():
    for model in MODELS:
        table = _table(model)
        for key, entry in table["components"].items():
            assert entry["max_rel_residual"] < 1e-6, (model, key)
            assert entry["n_points"] >= len(entry["basis"]), (model, key)
        assert table["versions"]["diffusers"].startswith("0.42")


# -- pipeline facts the shapes encode ------------------------------------------------------------

def _calls(model, **kw):
    spec = resolve_model(model)
    return {c.key: c for c in component_calls(spec, make_setting(spec, **kw))}


def test_calls_per_generation_follow_the_pipelines():
    sd = _calls("sd1.5")  # CFG: empty negative prompt encoded, UNet batch of 2 per step
    assert sd["text_encoder"].calls == 2 and sd["unet"].calls == 100 and sd["vae"].calls == 1
    xl = _calls("sdxl")  # force_zeros_for_empty_prompt: no second text-encoder pass
    assert xl["text_encoder"].calls == 1 and xl["text_encoder_2"].calls == 1 and xl["unet"].calls == 100
    turbo = _calls("sdxl-turbo")
    assert turbo["unet"].calls == 1 and turbo["unet"].features["P"] == 64 * 64
    sd3 = _calls("sd3.5-large")
    assert [sd3[k].calls for k in ("text_encoder", "text_encoder_2", "text_encoder_3")] == [2, 2, 2]
    assert sd3["transformer"].calls == 56 and sd3["transformer"].dims["T"] == 77 + 256
    assert sd3["transformer"].features["L"] == 64 * 64
    dev, schnell = _calls("flux.1-dev"), _calls("flux.1-schnell")
    assert dev["transformer"].calls == 28 and dev["text_encoder_2"].dims["T"] == 512 and dev["text_encoder"].calls == 1
    assert schnell["transformer"].calls == 4 and schnell["text_encoder_2"].dims["T"] == 256
    assert dev["transformer"].features["L"] == 4096  # 128x128 latent packed 2x2
    q = _calls("qwen-image")
    assert q["text_encoder"].dims["T"] == 111 and q["transformer"].dims["T"] == 111 - 34
    assert q["text_encoder"].calls == 2 and q["transformer"].calls == 100  # true CFG: separate uncond pass
    px = _calls("pixart-sigma", batch_size=2, outputs_per_prompt=2)
    assert px["text_encoder"].calls == 2 and px["text_encoder"].batch == 2 and px["text_encoder"].dims["T"] == 300
    assert px["transformer"].calls == 40 and px["transformer"].batch == 4 and px["vae"].batch == 4


def test_unet_levels_round_up():
    c = _calls("sd1.5", height=600, width=904)["unet"]  # latent 75x113
    assert dict(c.features) == {"P": 75 * 113, "P1": 38 * 57, "P2": 19 * 29, "P3": 10 * 15}
    c = _calls("sdxl", height=600, width=904)["unet"]   # three levels
    assert dict(c.features) == {"P": 75 * 113, "P1": 38 * 57, "P2": 19 * 29}


def test_pixart_bins_match_diffusers():
    from diffusers.image_processor import PixArtImageProcessor
    from diffusers.pipelines.pixart_alpha.pipeline_pixart_alpha import (ASPECT_RATIO_256_BIN, ASPECT_RATIO_512_BIN,
                                                                        ASPECT_RATIO_1024_BIN)
    from diffusers.pipelines.pixart_alpha.pipeline_pixart_sigma import ASPECT_RATIO_2048_BIN

    from scaling.shapes._image import _PIXART_BINS, pixart_bin

    for size, ref in ((256, ASPECT_RATIO_2048_BIN), (128, ASPECT_RATIO_1024_BIN), (64, ASPECT_RATIO_512_BIN),
                      (32, ASPECT_RATIO_256_BIN)):
        assert list(_PIXART_BINS[size].items()) == [(k, (int(v[0]), int(v[1]))) for k, v in ref.items()]
    spec = resolve_model("pixart-sigma")
    for h in range(256, 2049, 112):
        for w in range(256, 2049, 144):
            assert pixart_bin(spec, h, w) == PixArtImageProcessor.classify_height_width_bin(h, w, ASPECT_RATIO_1024_BIN)
    c = _calls("pixart-sigma", height=720, width=816)
    assert (c["transformer"].dims["h"], c["transformer"].dims["w"]) == (120, 136)  # bin 960x1088
    assert c["vae"].features["P"] == 120 * 136


# -- hand-derived counts ---------------------------------------------------------------------------

def _default_call(model, key, **kw):
    spec = resolve_model(model)
    call = _calls(model, **kw)[key]
    return spec, call


def _unet_attention(cfg, levels, T):
    """QK^T + AV of every transformer block of a UNet2DConditionModel: 4 * P * (P + T) * C."""
    n = len(cfg["block_out_channels"])
    tl = cfg.get("transformer_layers_per_block") or 1
    tl = [tl] * n if isinstance(tl, int) else list(tl)
    lpb = cfg["layers_per_block"]
    P = [levels[k] for k in ("P", "P1", "P2", "P3")[:n]]
    C = cfg["block_out_channels"]
    blocks = [0] * n
    for i, t in enumerate(cfg["down_block_types"]):
        if "CrossAttn" in t:
            blocks[i] += lpb * tl[i]
    rev = cfg.get("reverse_transformer_layers_per_block")  # per up block, per layer (SSD-1B)
    for j, t in enumerate(cfg["up_block_types"]):
        i = n - 1 - j
        if "CrossAttn" in t:
            r = rev[j] if rev is not None else tl[i]
            blocks[i] += sum(r) if isinstance(r, list) else (lpb + 1) * r
    if (cfg.get("mid_block_type") or "UNetMidBlock2DCrossAttn") == "UNetMidBlock2DCrossAttn":
        blocks[n - 1] += tl[-1]
    return sum(b * 4 * p * (p + T) * c for b, p, c in zip(blocks, P, C))


@pytest.mark.parametrize("model", ["sd1.5", "sdxl", "ssd-1b"])
def test_unet_attention_by_hand(model):
    spec, call = _default_call(model, "unet", height=600, width=904)
    expected = _unet_attention(spec.components["unet"].config, call.features, call.dims["T"])
    assert evaluate(spec, call)["attention"] == pytest.approx(expected, rel=1e-9)


def test_sd3_attention_by_hand():
    for model in ("sd3.5-large", "sd3.5-medium", "sd3-medium"):
        spec, call = _default_call(model, "transformer", height=1440, width=816)
        cfg = spec.components["transformer"].config
        L, T = call.features["L"], call.dims["T"]
        width = cfg["num_attention_heads"] * cfg["attention_head_dim"]
        dual = len(cfg.get("dual_attention_layers") or ())
        expected = 4 * width * (cfg["num_layers"] * (L + T) ** 2 + dual * L ** 2)
        assert evaluate(spec, call)["attention"] == pytest.approx(expected, rel=1e-9), model


def test_flux_attention_by_hand():
    for model in ("flux.1-dev", "flux.1-schnell"):
        spec, call = _default_call(model, "transformer", height=1440, width=816)
        cfg = spec.components["transformer"].config
        L, T = call.features["L"], call.dims["T"]
        expected = 4 * cfg["num_attention_heads"] * cfg["attention_head_dim"] * (cfg["num_layers"] + cfg["num_single_layers"]) * (L + T) ** 2
        assert evaluate(spec, call)["attention"] == pytest.approx(expected, rel=1e-9), model


def test_qwen_by_hand():
    spec, call = _default_call("qwen-image", "transformer", height=928, width=1664)
    L, T = call.features["L"], call.dims["T"]
    assert L == (928 // 16) * (1664 // 16)
    assert evaluate(spec, call)["attention"] == pytest.approx(4 * 24 * 128 * 60 * (L + T) ** 2, rel=1e-9)
    # text encoder: the language model's linear layers AND the lm_head on every token, no vision tower
    spec, call = _default_call("qwen-image", "text_encoder")
    tc = spec.components["text_encoder"].config["text_config"]
    d, ff, kv = tc["hidden_size"], tc["intermediate_size"], tc["num_key_value_heads"] * tc["hidden_size"] // tc["num_attention_heads"]
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * ff
    weights = tc["num_hidden_layers"] * per_layer + d * tc["vocab_size"]
    T = call.dims["T"]
    flops = evaluate(spec, call)
    assert flops["linear"] == pytest.approx(2 * T * weights, rel=1e-9)
    assert flops["attention"] == pytest.approx(4 * T * T * d * tc["num_hidden_layers"], rel=1e-9)


def test_pixart_attention_by_hand():
    spec, call = _default_call("pixart-sigma", "transformer", height=720, width=816)
    cfg = spec.components["transformer"].config
    L, T = call.features["L"], call.dims["T"]
    width = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    expected = 4 * width * cfg["num_layers"] * (L * L + L * T)
    assert evaluate(spec, call)["attention"] == pytest.approx(expected, rel=1e-9)


# parameters of the denoisers, from the model-configs README table (scaling/_registry/models/CONFIGS.md)
README_PARAMS = {"sd1.5": ("unet", 859.5e6), "sdxl": ("unet", 2.567e9), "sd3.5-large": ("transformer", 8.057e9),
                 "sd3.5-medium": ("transformer", 2.243e9), "flux.1-dev": ("transformer", 11.901e9),
                 "flux.1-schnell": ("transformer", 11.891e9), "qwen-image": ("transformer", 20.430e9),
                 "pixart-sigma": ("transformer", 610.9e6),
                 # not in the README table: instantiated from the registered configs (see their SOURCE.md)
                 "sd3-medium": ("transformer", 2.028e9), "ssd-1b": ("unet", 1.331e9)}

# sizes the model authors publish: SD3 medium "2B parameters" (huggingface/blog sd3.md), SSD-1B "a 1.3B
# Parameter Model" (segmind/SSD-1B README)
PUBLISHED_PARAMS = {"sd3-medium": ("transformer", 2.0e9), "ssd-1b": ("unet", 1.3e9)}


@pytest.mark.parametrize("model", sorted(PUBLISHED_PARAMS))
def test_parameters_near_published_size(model):
    name, n = PUBLISHED_PARAMS[model]
    assert parameter_counts(resolve_model(model))[name] == pytest.approx(n, rel=0.05)


@pytest.mark.parametrize("model", MODELS)
def test_parameters_match_readme(model):
    name, n = README_PARAMS[model]
    assert parameter_counts(resolve_model(model))[name] == pytest.approx(n, rel=1e-3)

