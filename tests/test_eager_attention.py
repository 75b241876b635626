"""Eager attention kernels (``kernel=eager``): parsing, the score-matrix bytes they add (checked by hand
against the site table), LiteFocus with an eager kernel, and the predict / CLI wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profilers.flops.attention_variants import (EAGER_SCORE_PASSES, AttentionVariant, component_sites,
                                                eager_score_values, parse_variant)
from profilers.flops.profile import profile
from scaling.errors import InvalidSettingError
from scaling.precision import ACTIVATION_BYTE
from scaling.registry import resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls

SITES = Path(__file__).resolve().parents[1] / "scaling" / "_registry" / "attention_sites" / "audioldm2.json"


# -- parsing ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,canonical", [
    ("full:kernel=eager", "full:kernel=eager"),
    ("FULL:kernel=EAGER", "full:kernel=eager"),
    ("full:kernel=sdpa", "full"),
    ("litefocus:kernel=eager", "litefocus:r=0.1,kernel=eager"),
    ("litefocus:r=0.25,blocks=down.1+up.1,kernel=eager", "litefocus:r=0.25,kernel=eager,blocks=down.1+up.1"),
    ("window:size=512,kernel=eager", "window:size=512,kernel=eager"),
    ("window:kernel=sdpa,size=64", "window:size=64"),
])
def test_kernel_round_trip(text, canonical):
    v = parse_variant(text)
    assert str(v) == canonical
    assert parse_variant(str(v)) == v and str(parse_variant(str(v))) == canonical
    assert v.kernel == ("eager" if "eager" in text.lower() else "sdpa")


def test_default_kernel_is_sdpa():
    assert AttentionVariant().kernel == "sdpa" and parse_variant("full").kernel == "sdpa"
    assert parse_variant("tome:ratio=0.5,kernel=sdpa").kernel == "sdpa"


@pytest.mark.parametrize("text,needle", [
    ("full:kernel=bogus", "kernel='bogus': use kernel=sdpa"),
    ("litefocus:kernel=flash", "kernel='flash': use kernel=sdpa"),
    ("tome:ratio=0.5,kernel=eager", "kernel=eager is not modelled with tome"),
    ("full:kernel=eager,kernel=sdpa", "given twice"),
])
def test_bad_kernels_are_refused_naming_the_rule(text, needle):
    with pytest.raises(InvalidSettingError) as e:
        parse_variant(text)
    msg = str(e.value)
    assert needle in msg and repr(text) in msg and "\n" not in msg


# -- the bytes ----------------------------------------------------------------------------------------

def _audioldm2(seconds):
    spec = resolve_model("audioldm2")
    return spec, make_setting(spec, seconds=seconds, steps=200)


def _by_hand_eager_byte(spec, setting, kept=None):
    """Score bytes an eager UNet adds, from the site table file and the component calls alone:
    passes x sum over sites of (attention FLOP / (4 head_dim)) x kept share x bytes per value x
    calls x batch."""
    sites = json.loads(SITES.read_text(encoding="utf-8"))["components"]["unet"]["sites"]
    total = 0.0
    for call in component_calls(spec, setting):
        if call.component != "unet":
            continue
        values = 0.0
        for s in sites:
            x = float(call.features[s["feature"]])
            c0, c1, c2 = s["coef"]["attention"]
            share = kept(s, int(round(s["tokens_per_feature"] * x))) if kept else 1.0
            values += EAGER_SCORE_PASSES * (c0 + c1 * x + c2 * x * x) / (4.0 * s["head_dim"]) * share
        total += values * ACTIVATION_BYTE[setting.precision] * call.calls * call.batch
    assert total > 0
    return total


def test_full_eager_keeps_the_flops_and_adds_the_score_bytes():
    spec, s = _audioldm2(10)
    fused, eager = profile(s, spec=spec), profile(s, spec=spec, attention="full:kernel=eager")
    assert eager.attention == {"unet": "full:kernel=eager"} and eager.to_dict()["attention"] == eager.attention
    assert eager.total_flop == fused.total_flop and eager.by_op() == fused.by_op()
    assert eager.total_byte > fused.total_byte
    added = eager.by_role_byte()["denoiser"] - fused.by_role_byte()["denoiser"]
    assert added == pytest.approx(_by_hand_eager_byte(spec, s), rel=1e-9)
    for role in ("text_encoder", "decoder", "vocoder"):
        assert eager.by_role_byte()[role] == fused.by_role_byte()[role]
    # only the activation traffic of the attention class changes, weights are read as before
    f_unet, e_unet = (next(c for c in p.components if c.component == "unet") for p in (fused, eager))
    assert e_unet.weight_byte == f_unet.weight_byte
    diff = {k: e_unet.by_class_byte[k] - f_unet.by_class_byte[k] for k in f_unet.by_class_byte}
    assert diff["attention"] == pytest.approx(added, rel=1e-12)
    assert all(v == 0.0 for k, v in diff.items() if k != "attention")


def test_eager_score_values_matches_the_hand_count_per_call():
    spec, s = _audioldm2(10)
    call = next(c for c in component_calls(spec, s) if c.component == "unet")
    values = eager_score_values(component_sites(spec, "unet"), call.features)
    per_call = _by_hand_eager_byte(spec, s) / (ACTIVATION_BYTE[s.precision] * call.calls * call.batch)
    assert values == pytest.approx(per_call, rel=1e-12)


def test_litefocus_eager_moves_fewer_bytes_than_full_eager_and_saves_more_on_longer_clips():
    saved = []
    for seconds in (10, 20, 40, 80):
        spec, s = _audioldm2(seconds)
        full = profile(s, spec=spec, attention="full:kernel=eager")
        lite = profile(s, spec=spec, attention="litefocus:r=0.1,kernel=eager")
        assert lite.total_byte < full.total_byte
        assert lite.total_flop < full.total_flop
        saved.append(full.total_byte - lite.total_byte)
        if seconds == 10:  # the kept share by hand: a frequency band plus r L random keys on down.1 / up.2
            def kept(site, L):
                if site["kind"] != "self" or site["block"] not in ("down.1", "up.2"):
                    return 1.0
                return (L // site["grid"]["freq_bins"] + int(0.1 * L)) / L

            fused = profile(s, spec=spec)
            added = lite.by_role_byte()["denoiser"] - fused.by_role_byte()["denoiser"]
            assert added == pytest.approx(_by_hand_eager_byte(spec, s, kept), rel=1e-9)
    assert all(b > a for a, b in zip(saved, saved[1:])), saved


def test_fused_litefocus_moves_the_bytes_of_fused_full():
    spec, s = _audioldm2(20)
    assert profile(s, spec=spec, attention="litefocus:r=0.1").total_byte == pytest.approx(
        profile(s, spec=spec).total_byte, rel=1e-12)


def test_a_model_without_a_site_table_refuses_an_eager_kernel():
    with pytest.raises(InvalidSettingError) as e:
        profile(make_setting("flux-dev", steps=1), attention="full:kernel=eager")
    msg = str(e.value)
    assert "not built" in msg and "build_attention_sites" in msg and "\n" not in msg


# -- predict and the CLI ----------------------------------------------------------------------------------

def test_predict_with_an_eager_kernel_is_slower_than_the_fused_default():
    from scaling.app.estimate import predict

    kw = {"gpu": "rtx-a6000", "steps": 200, "seconds": 80}
    fused = predict("audioldm2", **kw)
    eager = predict("audioldm2", attention="full:kernel=eager", **kw)
    assert eager.flop == fused.flop
    assert eager.time_s > fused.time_s and eager.energy_j > fused.energy_j
    assert any("full:kernel=eager" in n for n in eager.notes)


def test_cli_predict_with_an_eager_kernel(capsys):
    from scaling.app.cli import main

    assert main(["predict", "-m", "audioldm2", "--attention", "full:kernel=eager"]) == 0
    out = capsys.readouterr().out
    assert "full:kernel=eager" in out
    assert main(["predict", "-m", "audioldm2", "--attention", "tome:ratio=0.5,kernel=eager"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not modelled with tome" in err and "\n" not in err
