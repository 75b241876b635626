"""Attention variants (full, LiteFocus, token merging, windows): parsing, the site tables, the
closed-form arithmetic against hand counts and against traces with the variants patched in, the
wiring into ``profile`` and ``scaling profile``, and the LiteFocus trend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from profilers.flops.attention_variants import (
    AttentionVariant, apply_variant, component_sites, parse_attention, parse_variant, resolve_sites, site_rows,
    site_table, tome_tokens, variant_delta)
from profilers.flops.profile import evaluate, profile
from scaling.errors import InvalidSettingError
from scaling.registry import resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls

SITES_DIR = Path(__file__).resolve().parents[1] / "scaling" / "_registry" / "attention_sites"
SITE_MODELS = {p.stem: c for p in sorted(SITES_DIR.glob("*.json")) for c in json.loads(p.read_text())["components"]}


def _call(model, component, **kw):
    spec = resolve_model(model)
    s = make_setting(spec, steps=1, **kw)
    return spec, next(c for c in component_calls(spec, s) if c.component == component)


# -- parsing ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,canonical", [
    ("full", "full"),
    ("litefocus", "litefocus:r=0.1"),
    ("litefocus:r=0.1", "litefocus:r=0.1"),
    ("LiteFocus:r=0.25,blocks=down.1+up.1", "litefocus:r=0.25,blocks=down.1+up.1"),
    ("tome:ratio=0.5", "tome:ratio=0.5,merge=attn"),
    ("tome:ratio=0.3,merge=all,blocks=all", "tome:ratio=0.3,merge=all,blocks=all"),
    ("window:size=512", "window:size=512"),
    ("window:size=64,blocks=blocks.0-9", "window:size=64,blocks=blocks.0-9"),
])
def test_parse_valid(text, canonical):
    assert str(parse_variant(text)) == canonical


@pytest.mark.parametrize("text,needle", [
    ("sparse", "unknown variant 'sparse'"),
    ("litefocus:r=2", "0 <= r <= 1"),
    ("litefocus:r=abc", "not a number"),
    ("litefocus:ratio=0.1", "litefocus takes r, blocks, kernel, not 'ratio'"),
    ("tome:ratio=0", "0 < ratio <= 0.75"),
    ("tome:ratio=0.9", "0 < ratio <= 0.75"),
    ("tome:ratio=0.5,merge=mlp", "merge='mlp'"),
    ("window", "window needs size=N"),
    ("window:size=0", "size=0 must be a whole number"),
    ("window:size=1.5", "must be a whole number"),
    ("window:size", "'size' is not key=value"),
    ("full:r=0.1", "full takes kernel, not 'r'"),
    ("litefocus:blocks=left.1", "name blocks as down.N"),
    ("litefocus:r=0.1,r=0.2", "given twice"),
    ("", "empty"),
])
def test_parse_invalid_is_one_line_with_value_and_rule(text, needle):
    with pytest.raises(InvalidSettingError) as e:
        parse_variant(text)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and repr(text.strip()) in msg


def test_parse_attention_components():
    got = parse_attention("unet=litefocus:r=0.2; vae=full")
    assert set(got) == {"unet", "vae"} and got["unet"].params["r"] == 0.2 and got["vae"].kind == "full"
    assert parse_attention("tome:ratio=0.5")[None].kind == "tome"
    assert parse_attention({"transformer": "window:size=8"})["transformer"].params["size"] == 8
    with pytest.raises(InvalidSettingError, match="two variants"):
        parse_attention("litefocus;tome")


# -- the site tables --------------------------------------------------------------------------------

@pytest.mark.parametrize("model,component", SITE_MODELS.items())
def test_sites_add_up_to_the_closed_form_attention(model, component):
    """Every attention FLOP of the component is in exactly one site (torch-free)."""
    spec = resolve_model(model)
    comp = component_sites(spec, component)
    kw = {"seconds": 37.3} if spec.modality == "audio" else ({"res": "600x1000"} if spec.modality == "image"
                                                            else {"res": "480p", "frames": 33})
    spec, call = _call(model, component, **kw)
    total = sum(c[0] + c[1] * call.features[s["feature"]] + c[2] * call.features[s["feature"]] ** 2
                for s in comp["sites"] for c in [s["coef"]["attention"]])
    assert total == pytest.approx(evaluate(spec, call)["attention"], rel=1e-9)


@pytest.mark.parametrize("model,component", SITE_MODELS.items())
def test_self_sites_are_4_heads_headdim_L_squared(model, component):
    spec = resolve_model(model)
    comp = component_sites(spec, component)
    assert comp["max_rel_residual"] < 1e-6
    selfs = [s for s in comp["sites"] if s["kind"] == "self"]
    assert selfs
    for s in selfs:
        k, (c0, c1, c2) = s["tokens_per_feature"], s["coef"]["attention"]
        assert c0 == 0 and c1 == 0
        assert c2 == pytest.approx(4 * s["heads"] * s["head_dim"] * k * k, rel=1e-9)


def test_audioldm2_sites():
    comp = component_sites("audioldm2", "unet")
    selfs = [s for s in comp["sites"] if s["kind"] == "self"]
    # 16 transformer layers x (attn1 of 3 Transformer2DModels + attn2 of the one without cross-attention)
    assert len(selfs) == 64 and len(comp["sites"]) == 96
    assert comp["finest_blocks"] == ["down.1", "up.2"]
    down1 = [s for s in selfs if s["block"] == "down.1"]
    assert len(down1) == 8 and all(s["grid"]["freq_bins"] == 8 and s["feature"] == "T2" for s in down1)
    # AudioLDM's attn2 layers are built as cross-attention but called without text: self
    selfs_s = [s for s in component_sites("audioldm-s-full-v2", "unet")["sites"] if s["kind"] == "self"]
    assert any(s["path"].endswith("attn2") for s in selfs_s)


# -- the arithmetic ---------------------------------------------------------------------------------

def test_litefocus_by_hand_audioldm2_10s():
    spec, call = _call("audioldm2", "unet", seconds=10)
    T2 = call.features["T2"]                                      # 125 latent frames at down.1 / up.2
    L, Nt, C = 8 * T2, T2, int(8 * T2 * 0.1)                      # 1000 tokens, 125 per band, 100 random
    rows = site_rows(spec, "unet", "litefocus:r=0.1", call.features)
    assert {r["block"] for r in rows} == {"down.1", "up.2"} and len(rows) == 20
    assert all(r["tokens"] == L and r["keys"] == Nt + C for r in rows)
    per_site = 4 * 256 * L * (L - (Nt + C))                        # heads x head_dim = 256 at this level
    assert variant_delta(spec, "unet", "litefocus:r=0.1", call.features)["attention"] == pytest.approx(
        -20 * per_site, rel=1e-12)


def test_window_and_full():
    spec, call = _call("sd2.1", "unet", res=512)
    full = evaluate(spec, call)
    assert apply_variant(full, "full", call.features, model=spec, component="unet") == full
    big = apply_variant(full, "window:size=100000", call.features, model=spec, component="unet")
    assert big == pytest.approx(full)                              # a window larger than L is full attention
    w = apply_variant(full, "window:size=256", call.features, model=spec, component="unet")
    assert w["attention"] < full["attention"] and w["linear"] == full["linear"] and w["conv"] == full["conv"]


def test_tome_tokens_follow_tomesd():
    assert tome_tokens(1000, 0.5, 8) == (500, 248)                 # (125 // 2) * (8 // 2) destinations
    assert tome_tokens(4096, 0.75) == (1024, 1024)                 # at most the 3/4 source tokens merge
    assert tome_tokens(4096, 0.5) == (2048, 1024)


def test_tome_merge_all_reduces_more_than_attn():
    spec, call = _call("audioldm2", "unet", seconds=20)
    a = variant_delta(spec, "unet", "tome:ratio=0.5", call.features)
    b = variant_delta(spec, "unet", "tome:ratio=0.5,merge=all", call.features)
    assert a["other"] > 0 and a["other"] == pytest.approx(b["other"])   # the matching cost, once per block
    assert sum(b.values()) < sum(a.values()) < 0 and b["linear"] < a["linear"] < 0


def test_block_selection_errors():
    comp = component_sites("audioldm2", "unet")
    with pytest.raises(InvalidSettingError, match="block 'down.0' has no self-attention sites"):
        resolve_sites(comp, parse_variant("litefocus:blocks=down.0"))
    with pytest.raises(InvalidSettingError, match="no \\(time, freq\\) grid"):
        resolve_sites(component_sites("sd2.1", "unet"), parse_variant("litefocus"))
    assert len(resolve_sites(comp, parse_variant("window:size=8"))) == 64      # window: all blocks
    assert len(resolve_sites(comp, parse_variant("litefocus:blocks=down.1+up.1"))) == 20
    wan = component_sites("wan2.1-t2v-1.3b", "transformer")
    assert len(resolve_sites(wan, parse_variant("tome:blocks=blocks.0-9"))) == 10


# -- wiring -----------------------------------------------------------------------------------------

def test_profile_with_attention():
    s = make_setting("audioldm2", seconds=40, steps=200)
    full, lf = profile(s), profile(s, attention="litefocus:r=0.1")
    assert lf.attention == {"unet": "litefocus:r=0.1"} and full.attention == {}
    assert lf.by_role()["decoder"] == full.by_role()["decoder"]
    assert lf.by_op()["linear"] == pytest.approx(full.by_op()["linear"])
    assert lf.by_op()["attention"] < 0.5 * full.by_op()["attention"]
    assert lf.to_dict()["attention"] == {"unet": "litefocus:r=0.1"}
    assert profile(s, attention="unet=full").total_flop == pytest.approx(full.total_flop)


@pytest.mark.parametrize("model,attention,needle", [
    ("audioldm2", "vae=window:size=64", "'vae' of cvssp/audioldm2 has none"),
    ("audioldm2", "nope=full", "no component 'nope'"),
    ("flux-dev", "tome:ratio=0.5", "not built"),
    ("sd2.1", "litefocus", "no (time, freq) grid"),
])
def test_profile_attention_errors(model, attention, needle):
    with pytest.raises(InvalidSettingError) as e:
        profile(make_setting(model, steps=1), attention=attention)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_cli_profile_attention(capsys):
    from scaling.app.cli import main

    assert main(["profile", "-m", "audioldm2", "--seconds", "80", "--steps", "200", "--attention",
                 "litefocus:r=0.1"]) == 0
    out = capsys.readouterr().out
    assert "attention unet: litefocus:r=0.1 (FLOP per call -38." in out
    assert main(["profile", "-m", "audioldm2", "--seconds", "10", "--attention", "tome:ratio=0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["attention"] == {"unet": "tome:ratio=0.5,merge=attn"}
    assert main(["profile", "-m", "audioldm2", "--attention", "litefocus:r=7"]) == 2
    err = capsys.readouterr().err.strip()
    assert "0 <= r <= 1" in err and "\n" not in err


def test_litefocus_trend_matches_the_seed_ordering():
    """Predicted speed-ups grow with the clip; LiteFocus beats ToMe on the same blocks, as measured."""
    spec = resolve_model("audioldm2")
    lf, tome = [], []
    for sec in (10, 20, 40, 80):
        s = make_setting(spec, seconds=sec, steps=200)
        full = profile(s, spec=spec).total_flop
        lf.append(full / profile(s, spec=spec, attention="litefocus:r=0.1").total_flop)
        tome.append(full / profile(s, spec=spec, attention="tome:ratio=0.5,blocks=down.1+up.2").total_flop)
    assert lf == sorted(lf) and tome == sorted(tome)
    assert all(a > b for a, b in zip(lf[1:], tome[1:]))
    assert 1.05 < lf[0] < 1.15 and 1.5 < lf[-1] < 1.8


# -- traced cross-check: the variants run for real on meta tensors ------------------------------------

# the fast lane traces the small SD 2.1 UNet with a window and with token merging; the rest is `slow`
@pytest.mark.parametrize("model,component,kw,variant", [
    pytest.param("audioldm2", "unet", {"seconds": 6.76}, "litefocus:r=0.1", marks=pytest.mark.slow),
    pytest.param("audioldm2", "unet", {"seconds": 6.76}, "litefocus:r=0.3,blocks=all", marks=pytest.mark.slow),
    pytest.param("audioldm2", "unet", {"seconds": 6.76}, "tome:ratio=0.5", marks=pytest.mark.slow),
    ("sd2.1", "unet", {"res": "264x392"}, "window:size=100"),
    ("sd2.1", "unet", {"res": "264x392"}, "tome:ratio=0.5,merge=all"),
    pytest.param("wan2.1-t2v-1.3b", "transformer", {"res": "256x256", "frames": 9}, "window:size=300",
                 marks=pytest.mark.slow),
    pytest.param("wan2.1-t2v-1.3b", "transformer", {"res": "256x256", "frames": 9},
                 "tome:ratio=0.4,merge=all,blocks=blocks.0-3", marks=pytest.mark.slow),
])
def test_closed_form_variant_matches_traced_variant(model, component, kw, variant):
    pytest.importorskip("diffusers")
    from profilers.flops.build_attention_sites import trace_variant

    spec, call = _call(model, component, **kw)
    full = evaluate(spec, call)
    cf = apply_variant(full, variant, call.features, model=spec, component=component)
    tr = trace_variant(spec, call, variant)
    assert sum(cf.values()) == pytest.approx(sum(tr.values()), rel=0.01)
    assert cf["linear"] == pytest.approx(tr["linear"], rel=0.01)
    # the traced counter files ToMe's similarity matmul under attention when it runs inside an
    # attention-named module; compare the batched matmuls together
    assert cf["attention"] + cf["other"] == pytest.approx(tr["attention"] + tr["other"], rel=0.01)
    assert sum(cf.values()) < sum(full.values())


def test_site_tables_cover_the_brief():
    assert {"audioldm2", "audioldm-s-full-v2", "sd2.1", "wan2.1-t2v-1.3b"} <= set(SITE_MODELS)


def test_site_table_versions():
    for model in SITE_MODELS:
        t = site_table(model)
        assert t["generated_by"] == "python -m profilers.flops.build_attention_sites"
        assert set(t["versions"]) == {"torch", "diffusers", "transformers"}
    assert isinstance(parse_variant(AttentionVariant("full")), AttentionVariant)


def test_variants_and_memory_need_no_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, scaling\n"
        "from profilers.flops.profile import profile\n"
        "from profilers.flops.memory import memory_profile\n"
        "s = scaling.make_setting('audioldm2', seconds=40)\n"
        "assert profile(s, attention='litefocus:r=0.1').total_flop < profile(s).total_flop\n"
        "assert memory_profile(s, gpu='h100').pipeline_fit()\n"
        "print(','.join(m for m in ('torch', 'diffusers', 'transformers', 'plotly') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- bytes ------------------------------------------------------------------------------------------

def test_site_tables_carry_traffic_and_fused_sites_have_no_score_traffic():
    from profilers.flops.attention_variants import BYTE_CLASSES, TRAFFIC_KINDS

    for model, component in SITE_MODELS.items():
        comp = component_sites(model, component)
        for s in comp["sites"] + comp["transformer_blocks"]:
            assert set(s["traffic"]) == set(TRAFFIC_KINDS) and set(s["traffic"]["activation"]) == set(BYTE_CLASSES)
        assert comp["traffic_max_rel_residual"] < 1e-9, model
        # diffusers runs these through SDPA: Q, K, V, O are linear in the tokens, no L x L term
        for s in comp["sites"]:
            a = s["traffic"]["activation"]["attention"]
            assert abs(a[2]) * (100 ** 2) <= 1e-9 * max(1.0, abs(a[1]) * 100), (model, s["path"])


def test_sparse_variants_leave_fused_bytes_and_tome_moves_fewer():
    spec = resolve_model("sd2.1")
    s = make_setting(spec, steps=1)
    full = profile(s)
    window = profile(s, attention="window:size=256,blocks=all")
    tome = profile(s, attention="tome:ratio=0.5")
    full, window, tome = (next(c for c in p.components if c.component == "unet") for p in (full, window, tome))
    assert window.byte == pytest.approx(full.byte, rel=1e-12)   # fused SDPA: no score traffic
    assert window.flop < full.flop
    # token merging moves fewer activations in the merged attention but adds its (L - n_dst) x n_dst
    # similarity scores: at SD 2.1's finest level the scores outweigh the saving
    assert tome.byte != pytest.approx(full.byte, rel=1e-6)
    assert tome.weight_byte == pytest.approx(full.weight_byte)  # weights are read whatever the tokens


def test_eager_score_traffic_scales_with_the_kept_keys(monkeypatch):
    """A synthetic eager site: its x^2 attention traffic (the score matrix) scales by keys / L."""
    from profilers.flops import attention_variants as av

    zeros = {c: [0.0, 0.0, 0.0] for c in av.BYTE_CLASSES}
    traffic = {"activation": {**zeros, "attention": [0.0, 40.0, 6.0]}, "weight": dict(zeros), "fixed_byte": dict(zeros)}
    site = {"path": "blocks.0.attn1", "block": "blocks.0", "transformer_block": "blocks.0", "kind": "self",
            "heads": 1, "head_dim": 8, "dim": 8, "feature": "L", "tokens_per_feature": 1,
            "coef": {op: [0.0, 0.0, 0.0] for op in av.OP_CLASSES}, "traffic": traffic}
    table = {"id": "synthetic", "components": {"transformer": {
        "sites": [site], "transformer_blocks": [], "finest_blocks": ["blocks.0"]}}}
    monkeypatch.setattr(av, "_load", lambda key: table)
    L = 1000
    delta = av.variant_traffic_delta("synthetic", "transformer", "window:size=100", {"L": L})
    assert delta["activation"]["attention"] == pytest.approx(6.0 * L * L * (100 / L - 1.0))
    assert sum(v for k in delta for c, v in delta[k].items() if (k, c) != ("activation", "attention")) == 0.0


def test_tome_traffic_delta_by_hand():
    from profilers.flops import attention_variants as av

    spec, call = _call("sd2.1", "unet")
    comp = component_sites(spec, "unet")
    sites = resolve_sites(comp, parse_variant("tome:ratio=0.5"))
    delta = av.variant_traffic_delta(spec, "unet", "tome:ratio=0.5", call.features)
    expected_other = 0.0
    for tb in dict.fromkeys(s["transformer_block"] for s in sites):
        blk = next(b for b in comp["transformer_blocks"] if b["path"] == tb)
        L = blk["tokens_per_feature"] * call.features[blk["feature"]]
        keep, n_dst = tome_tokens(L, 0.5)
        expected_other += (L - n_dst) * blk["dim"] + n_dst * blk["dim"] + (L - n_dst) * n_dst
    assert delta["activation"]["other"] == pytest.approx(expected_other)
    assert delta["activation"]["linear"] < 0 and delta["weight"]["linear"] == pytest.approx(0.0, abs=1e-3)
