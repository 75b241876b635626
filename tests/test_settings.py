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
