"""Closed-form FLOP tables of the audio families (audioldm, musicldm, audioldm2, tango, stable-audio).

For every audio model: lengths that are NOT in the build design (odd latent lengths for the
mel-latent UNets, long clips: 80 s for AudioLDM 2 as in the LiteFocus study, 120 s for
AudioLDM-S) are traced on the meta device and compared with the shipped polynomial, component
by component; plus hand-derived attention / linear counts and the pipeline facts the shapes
encode (seconds -> mel frames, CFG, what runs once, what does not depend on the length).
"""

from __future__ import annotations


import pytest

from profilers.flops.profile import OP_CLASSES, _table, evaluate, parameter_counts
from scaling.errors import InvalidSettingError
from scaling.registry import resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls
from scaling.shapes._audio import mel_latent, unet_levels

MODELS = ("audioldm-s-full-v2", "audioldm-l-full", "musicldm", "audioldm2", "tango", "tango2",
          "stable-audio-open-1.0")

# seconds per model, none of them in the build design
SETTINGS = {
    "audioldm-s-full-v2": [7.0, 33.3, 120.0],    # latent T = 175, 833, 3000
    "audioldm-l-full": [4.0, 12.5, 45.0],        # T = 100, 313 (1250 mel -> 1252), 1125
    "musicldm": [3.3, 25.0, 47.9],               # T = 83 (330 -> 332), 625, 1198 (4790 -> 4792)
    "audioldm2": [4.7, 47.3, 80.0],              # T = 118 (470 -> 472), 1183 (4730 -> 4732), 2000
    "tango": [1.0, 5.0, 10.24],                  # always the fixed 8x256x16 latent
    "tango2": [2.0, 7.5, 10.24],
    "stable-audio-open-1.0": [1.0, 10.0, 47.55],  # always the full 1024-frame window
}
FIXED_LENGTH = {"tango", "tango2", "stable-audio-open-1.0"}

_TRACED: dict = {}


def _traced(spec, call) -> dict[str, float]:
    from profilers.flops.traced import count_call

    key = (spec.key, call.key, tuple(sorted(call.features.items())))
    if key not in _TRACED:
        _TRACED[key] = count_call(spec, call).as_dict()
    return _TRACED[key]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1.0)


# the fast lane traces one mel-latent UNet (odd latent length) and the audio DiT; every other case is `slow`
FAST_CASES = {("musicldm", 47.9), ("stable-audio-open-1.0", 1.0)}
assert all(x in SETTINGS[m] for m, x in FAST_CASES), "a fast case is not in SETTINGS"
CASES = [pytest.param(m, s, id=f"{m}-{s:g}s", marks=() if (m, s) in FAST_CASES else pytest.mark.slow)
         for m in MODELS for s in SETTINGS[m]]
NO_ATTENTION = {"vocoder", "projection_model", "vae:stable-audio-open-1.0"}


@pytest.mark.parametrize("model,seconds", CASES)
def test_closed_form_matches_traced(model, seconds):
    spec = resolve_model(model)
    setting = make_setting(spec, seconds=seconds)
    table = _table(spec.architecture_key)
    calls = component_calls(spec, setting)
    assert sorted({c.key for c in calls}) == sorted(table["components"])
    for call in calls:
        entry = table["components"][call.key]
        if call.role in ("denoiser", "decoder", "vocoder") and model not in FIXED_LENGTH:
            assert dict(call.features) not in entry["design"], f"{call.key} {call.features} is a design point"
        closed = evaluate(spec, call)
        traced = _traced(spec, call)
        total_c, total_t = sum(closed.values()), sum(traced.values())
        assert total_t > 0, call.key
        assert _rel(total_c, total_t) < 0.01, (call.key, total_c, total_t)
        for op in OP_CLASSES:  # per op class too (exact polynomials: far below 1%)
            assert abs(closed[op] - traced[op]) <= 0.01 * total_t, (call.key, op, closed[op], traced[op])
        if call.component in NO_ATTENTION or f"{call.component}:{model}" in NO_ATTENTION:
            assert traced["attention"] == 0, call.key
        else:
            assert traced["attention"] > 0 and closed["attention"] > 0, call.key


def test_tables_are_exact_and_current():
    for model in MODELS:
        table = _table(model)
        for key, entry in table["components"].items():
            assert entry["max_rel_residual"] < 1e-6, (model, key)
            assert entry["n_points"] >= len(entry["basis"]), (model, key)
        assert table["versions"]["diffusers"].startswith("0.42")


# -- the pipeline facts the shapes encode ------------------------------------------------------

@pytest.mark.parametrize("seconds,mel,T", [
    (5.12, 512, 128),    # the AudioLDM default: unet.sample_size 128 * 4 * 0.01
    (10.24, 1024, 256),
    (10.0, 1000, 250),   # T not a multiple of 8: the UNet pads nothing, it takes ceil(T/2) per level
    (3.3, 332, 83),      # 330 mel frames rounded up to a multiple of the VAE factor 4
    (0.29, 28, 7),       # int(0.29 / 0.01) is 28 in floating point, as in the pipeline
    (80.0, 8000, 2000),
])
def test_seconds_to_mel_and_latent_frames_as_the_pipeline(seconds, mel, T):
    for model in ("audioldm-s-full-v2", "audioldm2", "musicldm"):
        assert mel_latent(resolve_model(model), seconds) == (mel, T, 16)


def test_shorter_than_one_latent_frame_is_refused():
    with pytest.raises(InvalidSettingError, match="at least 0.04"):
        component_calls(resolve_model("audioldm2"), make_setting("audioldm2", seconds=0.03))


def test_unet_levels_are_the_ceil_halvings():
    assert unet_levels(250) == {"T": 250, "T2": 125, "T4": 63, "T8": 32}
    assert unet_levels(7) == {"T": 7, "T2": 4, "T4": 2, "T8": 1}


def test_cfg_batch_and_calls():
    spec = resolve_model("audioldm-s-full-v2")
    s = make_setting(spec, seconds=5.12, steps=10, batch_size=2, outputs_per_prompt=3)
    by = {c.key: c for c in component_calls(spec, s)}
    assert s.cfg and by["text_encoder"].calls == 2 and by["text_encoder"].batch == 2
    assert by["unet"].calls == 20 and by["unet"].batch == 6
    assert by["vae"].calls == by["vocoder"].calls == 1 and by["vocoder"].batch == 6
    s1 = make_setting(spec, seconds=5.12, steps=10, guidance=1.0)  # diffusers: no CFG at scale <= 1
    by1 = {c.key: c for c in component_calls(spec, s1)}
    assert by1["text_encoder"].calls == 1 and by1["unet"].calls == 10


def test_audioldm2_gpt2_prefill_and_cached_decode_steps():
    spec = resolve_model("audioldm2")
    calls = component_calls(spec, make_setting(spec))
    L = spec.text_tokens["text_encoder_2"]
    lm = [c for c in calls if c.component == "language_model"]
    assert [c.label for c in lm] == ["prefill"] + ["decode"] * 7  # 8 new tokens
    assert lm[0].dims["L"] == L + 5  # [sos, clap, eos, sos, t5 x L, eos]
    assert [c.features["K"] for c in lm[1:]] == list(range(L + 5, L + 12))
    assert all(c.calls == 2 and c.batch == 1 for c in lm)  # prompt + negative prompt ""
    assert {c.component for c in calls if c.calls == 2 and c.role == "text_encoder"} == {
        "text_encoder", "text_encoder_2", "projection_model", "language_model"}


def test_stable_audio_cost_does_not_depend_on_length_and_t5_runs_once():
    spec = resolve_model("stable-audio-open-1.0")
    a = component_calls(spec, make_setting(spec, seconds=5.0))
    b = component_calls(spec, make_setting(spec, seconds=47.55))
    assert [(c.key, dict(c.features), c.calls) for c in a] == [(c.key, dict(c.features), c.calls) for c in b]
    by = {c.key: c for c in a}
    assert by["text_encoder"].calls == 1  # no negative prompt: zeros, not a second T5 pass
    assert by["text_encoder"].dims["T"] == 128
    assert by["transformer"].features["L"] == 1025 and by["transformer"].calls == 200
    tango = resolve_model("tango")
    t1 = {c.key: dict(c.dims) for c in component_calls(tango, make_setting(tango, seconds=2.0))}
    t2 = {c.key: dict(c.dims) for c in component_calls(tango, make_setting(tango, seconds=10.24))}
    assert t1 == t2 and t1["unet"]["T"] == 256 and t1["vocoder"]["M"] == 1024


def test_text_token_counts_have_provenance():
    for model in MODELS:
        spec = resolve_model(model)
        for name, n in spec.text_tokens.items():
            prov = spec.text_tokens_provenance[name]
            assert n > 0 and prov, (model, name)
    assert resolve_model("audioldm2").text_tokens_provenance["text_encoder_2"].startswith("assumed")
    assert resolve_model("tango").text_tokens_provenance["text_encoder"].startswith("assumed")
    assert resolve_model("audioldm-s").text_tokens["text_encoder"] == 512


def test_vocoder_is_linear_and_vae_quadratic_in_latent_frames():
    spec = resolve_model("audioldm-s-full-v2")
    table = _table(spec.key)
    assert [tuple(map(tuple, m)) for m in table["components"]["vocoder"]["basis"]] == [(), (("T", 1),)]
    voc = table["components"]["vocoder"]["coef"]
    assert voc["attention"] == pytest.approx([0.0, 0.0], abs=1e-3)
    vae = table["components"]["vae"]["coef"]["attention"]  # mid-block self-attention over T x 16 tokens
    assert vae[2] == pytest.approx(4 * 16 ** 2 * 512, rel=1e-9)  # 4 * F^2 * channels, per T^2


# -- hand-derived counts -------------------------------------------------------------------------

def test_clap_text_tower_counts_by_hand():
    """RoBERTa-base text tower, 12 layers, 768-d, 12 heads x 64, FFN 3072, at 512 tokens."""
    spec = resolve_model("audioldm-s-full-v2")
    call = next(c for c in component_calls(spec, make_setting(spec)) if c.component == "text_encoder")
    got = _traced(spec, call)
    T, d, layers = 512, 768, 12
    assert got["attention"] == 4 * T * T * d * layers
    per_layer = 4 * d * d + 2 * d * 3072
    pooler_and_projection = 2 * (d * d + d * 512 + 512 * 512)  # on the pooled token only
    assert got["linear"] == 2 * T * per_layer * layers + pooler_and_projection


def test_audioldm_unet_attention_by_hand():
    """encoder_hidden_states=None: every transformer block runs attn1 AND attn2 as self-attention
    over the latent tokens of its level. 4 * L^2 * C per attention; levels 1..3 have
    T2 x 8, T4 x 4, T8 x 2 tokens at 256, 384, 640 channels; 2 blocks per down level, 3 per up
    level, 1 in the middle."""
    spec = resolve_model("audioldm-s-full-v2")
    call = next(c for c in component_calls(spec, make_setting(spec, seconds=7.0)) if c.component == "unet")
    lv = call.features
    assert lv == {"T": 175, "T2": 88, "T4": 44, "T8": 22}
    got = _traced(spec, call)
    per_level = [(lv["T2"] * 8, 256), (lv["T4"] * 4, 384), (lv["T8"] * 2, 640)]
    expect = sum((2 + 3) * 2 * 4 * L * L * C for L, C in per_level) + 2 * 4 * (lv["T8"] * 2) ** 2 * 640
    assert got["attention"] == expect


def test_gpt2_decode_step_by_hand():
    """One new token over a cache of K: attention 4 * 12 heads * (K + 1) * 64 * 12 layers;
    linear 2 * (c_attn 768x2304 + c_proj 768x768 + MLP 2 x 768x3072) * 12 layers."""
    spec = resolve_model("audioldm2")
    step = [c for c in component_calls(spec, make_setting(spec)) if c.label == "decode"][3]
    got = _traced(spec, step)
    K = step.features["K"]
    assert got["attention"] == 4 * 12 * (K + 1) * 64 * 12
    assert got["linear"] == 2 * (768 * 2304 + 768 * 768 + 2 * 768 * 3072) * 12
    closed = evaluate(spec, step)
    assert closed["attention"] == pytest.approx(got["attention"], rel=1e-9)


def test_stable_audio_dit_attention_by_hand():
    """24 layers, 24 query heads x 64 (12 KV heads, repeated): self-attention over 1024 + 1
    tokens and cross-attention to 128 T5 + 2 timing tokens."""
    spec = resolve_model("stable-audio-open-1.0")
    call = next(c for c in component_calls(spec, make_setting(spec)) if c.component == "transformer")
    got = _traced(spec, call)
    L, Tc, inner, layers = 1025, 130, 24 * 64, 24
    assert got["attention"] == 4 * L * L * inner * layers + 4 * L * Tc * inner * layers


# parameters (millions) from the model-configs README table
README_PARAMS_M = {
    "audioldm-s-full-v2": {"unet": 185.0, "vae": 55.4, "text_encoder": 125.3, "vocoder": 55.3},
    "audioldm-l-full": {"unet": 739.1},
    "audioldm2": {"unet": 346.9, "text_encoder_2": 341.2, "language_model": 124.4, "text_encoder": 193.9},
    "musicldm": {"unet": 185.0, "text_encoder": 153.5},
    "tango": {"unet": 865.9, "text_encoder": 341.2},
    "stable-audio-open-1.0": {"transformer": 1057.0, "vae": 156.1, "text_encoder": 109.6},
}


@pytest.mark.parametrize("model", README_PARAMS_M)
def test_parameters_match_the_model_configs_readme(model):
    params = parameter_counts(resolve_model(model))
    for name, millions in README_PARAMS_M[model].items():
        assert params[name] / 1e6 == pytest.approx(millions, rel=1e-3), (model, name, params[name])


def test_default_generations_are_plausible():
    """Orders of magnitude of one default generation (closed form, TFLOP), per role."""
    from profilers.flops.profile import profile

    got = {m: profile(make_setting(m)).by_role() for m in MODELS}
    # AudioLDM-S, 5.12 s, 10 steps x CFG: a 49 GFLOP UNet call, the HiFi-GAN 0.51 TFLOP
    assert got["audioldm-s-full-v2"]["denoiser"] / 1e12 == pytest.approx(20 * 0.0487, rel=0.01)
    assert got["audioldm-s-full-v2"]["vocoder"] / 1e12 == pytest.approx(0.514, rel=0.01)
    # Stable Audio: 100 steps x CFG of a 1.06B DiT over 1025 tokens (~2 * params * tokens + attention)
    dit = got["stable-audio-open-1.0"]["denoiser"] / 200
    assert dit == pytest.approx(2 * 1.057e9 * 1025 + 0.175e12, rel=0.05)
    for m in MODELS:
        assert set(got[m]) >= {"text_encoder", "denoiser", "decoder"}
        assert got[m]["denoiser"] > got[m]["text_encoder"]
