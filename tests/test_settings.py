import pytest

from scaling.errors import InvalidSettingError
from scaling.settings import make_setting, parse_resolution
from scaling.registry import resolve_model


def test_defaults_come_from_the_pipeline():
    s = make_setting("wan2.1")
    assert (s.height, s.width, s.frames, s.steps, s.cfg) == (480, 832, 81, 50, True)
    s = make_setting("flux-schnell")
    assert (s.height, s.width, s.steps, s.cfg) == (1024, 1024, 4, False)
    s = make_setting("audioldm2")
    assert s.audio_seconds == pytest.approx(10.24) and s.height is None


@pytest.mark.parametrize("res,expected", [("480p", (480, 832)), ("720p", (720, 1248)), ("832x480", (480, 832)),
                                          ("1280x720", (720, 1280)), ("512", (512, 512))])
def test_resolution_forms(res, expected):
    s = make_setting("wan2.1", res=res)
    assert (s.height, s.width) == expected


def test_named_resolution_on_square_model():
    assert parse_resolution("720p", resolve_model("sd2.1")) == (720, 720)


@pytest.mark.parametrize("kwargs,match", [
    ({"frames": 80}, r"`frames` 80 .* 4k\+1 \(nearest: 77 or 81\)"),
    ({"frames": 0}, "positive whole number"),
    ({"res": "833x480"}, "multiple of 16"),
    ({"res": "fullhd"}, "not a resolution"),
    ({"steps": 0}, "`steps` is 0"),
    ({"steps": -3}, "`steps` is -3"),
    ({"seconds": 3.0}, "does not apply"),
    ({"precision": "fp64"}, "precision"),
    ({"batch_size": 0}, "`batch`"),
    ({"res": "4096x4096"}, "larger than"),
])
def test_invalid_settings_fail_before_work(kwargs, match):
    with pytest.raises(InvalidSettingError, match=match) as exc:
        make_setting("wan2.1", **kwargs)
    assert "\n" not in str(exc.value)


def test_frame_rules_per_family():
    make_setting("cogvideox-2b", frames=49)
    with pytest.raises(InvalidSettingError, match="8k\\+1"):
        make_setting("ltx-video", frames=160)
    make_setting("ltx-video", frames=161)
    with pytest.raises(InvalidSettingError, match="6k\\+1"):
        make_setting("mochi", frames=20)


def test_audio_longer_than_the_model_can_produce():
    with pytest.raises(InvalidSettingError, match="at most 47.55 s"):
        make_setting("stable-audio-open", seconds=60)
    with pytest.raises(InvalidSettingError, match="positive number of seconds"):
        make_setting("audioldm2", seconds=float("nan"))
    assert make_setting("audioldm2", seconds=80).audio_seconds == 80


def test_cfg_follows_guidance():
    assert make_setting("sd2.1", guidance=1.0).cfg is False
    assert make_setting("sd2.1", cfg=False).cfg is False
    assert make_setting("flux-dev").cfg is False


# -- prompt tokens (issue 15) ------------------------------------------------------------------

def test_prompt_tokens_default_to_the_registry_assumption():
    from scaling.registry import prompt_token_rule

    assert make_setting("qwen-image").prompt_tokens == 72        # 111 templated - 34 before - 5 after
    assert make_setting("sd3.5-large").prompt_tokens == 256      # T5 max_sequence_length
    assert make_setting("tango").prompt_tokens == 12
    assert make_setting("mochi").prompt_tokens == 256
    assert make_setting("sd1.5").prompt_tokens is None           # CLIP pads to 77: fixed
    rule = prompt_token_rule(resolve_model("qwen-image"))
    assert rule.template[0] + rule.default + rule.template[1] == resolve_model("qwen-image").text_tokens["text_encoder"]


@pytest.mark.parametrize("model,value,match", [
    ("sd1.5", 50, r"`prompt_tokens` 50 does not apply to .*fixed length \(text_encoder 77 tokens\)"),
    ("audioldm-s", 64, r"`prompt_tokens` 64 does not apply"),
    ("stable-audio", 64, r"`prompt_tokens` 64 does not apply"),
    ("cogvideox-2b", 100, r"`prompt_tokens` 100 does not apply"),
    ("sd3.5-large", 600, r"`prompt_tokens` 600 is more than .* at most 512"),
    ("mochi", 300, r"at most 256"),
    ("qwen-image", 0, "positive whole number"),
    ("flux-dev", 2.5, "positive whole number"),
])
def test_prompt_tokens_refused_with_one_line(model, value, match):
    with pytest.raises(InvalidSettingError, match=match) as e:
        make_setting(model, prompt_tokens=value)
    assert "\n" not in str(e.value)


def test_prompt_tokens_equal_to_a_fixed_length_are_accepted():
    assert make_setting("sd1.5", prompt_tokens=77).prompt_tokens is None


@pytest.mark.parametrize("model", ["qwen-image", "sd3.5-large", "flux-dev", "wan2.1", "hunyuanvideo", "mochi",
                                   "tango", "audioldm2"])
def test_prompt_tokens_change_the_flops(model):
    from profilers.flops.profile import profile

    spec = resolve_model(model)
    default = make_setting(spec).prompt_tokens
    base = profile(make_setting(spec, steps=1))
    fewer = profile(make_setting(spec, steps=1, prompt_tokens=default // 2))
    assert fewer.total_flop < base.total_flop
    assert fewer.total_byte < base.total_byte
    den = {p is base: next(c for c in p.components if c.role == "denoiser") for p in (base, fewer)}
    assert den[False].flop < den[True].flop  # the denoiser sees the text tokens too


def test_qwen_joint_attention_grows_with_the_prompt():
    from profilers.flops.profile import profile

    spec = resolve_model("qwen-image")
    short = profile(make_setting(spec, steps=1, prompt_tokens=20))
    long_ = profile(make_setting(spec, steps=1, prompt_tokens=500))
    den = {p.setting.prompt_tokens: next(c for c in p.components if c.role == "denoiser") for p in (short, long_)}
    assert den[500].by_op_flop["attention"] > den[20].by_op_flop["attention"] * 1.1
    assert "500 prompt tokens" in next(c for c in long_.components if c.role == "text_encoder").description
