"""The multi-GPU law (fits.parallel) and its features (scaling.app.parallel_features) on the ML.ENERGY v3 rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fits.parallel import (COEFFICIENTS, FEATURES, ParallelLaw, fit_coefficients, leave_one_model_out,
                           load_parallel_law, predict_arrays, time_parts, validation_summary)
from profilers.flops.profile import profile
from scaling.app.parallel_features import parallel_features, plan_from_notes, predict_parallel
from scaling.app.parallel_training import v3_frame
from scaling.errors import InvalidSettingError, LawError
from scaling.interconnect import interconnect
from scaling.parallel import ParallelPlan
from scaling.precision import ACTIVATION_BYTE
from scaling.registry import resolve_model
from scaling.settings import make_setting
from scaling.units import Interval


@pytest.fixture(scope="module")
def frame():
    return v3_frame()


@pytest.fixture(scope="module")
def law():
    return load_parallel_law(None)


def _columns(rows):
    return {f: rows[f].to_numpy(float) for f in FEATURES}


# -- the feature builder, by hand ------------------------------------------------------------------

def test_the_features_of_one_v3_row_by_hand(frame):
    """Wan2.1-1.3B, batch 1, 2 GPUs, Ulysses 2: every column from the model's config and xDiT's layout."""
    row = frame[(frame["model_key"] == "wan2.1-t2v-1.3b") & (frame["batch_size"] == 1)
                & (frame["plan"] == "ulysses=2,ring=1,cfg=1")].iloc[0]
    spec = resolve_model("wan2.1-t2v-1.3b")
    config = spec.components["transformer"].config
    pt, ph, pw = spec.pipeline["patch_size"]
    latent_f, latent_h, latent_w = (81 - 1) // 4 + 1, 480 // 8, 832 // 8      # Wan VAE: 4x in time, 8x in space
    tokens = (latent_f // pt) * (latent_h // ph) * (latent_w // pw)
    heads, head_dim, layers = config["num_attention_heads"], config["attention_head_dim"], config["num_layers"]
    samples = 2                                   # batch 1, both CFG branches on each GPU
    shard = samples * math.ceil(tokens / 2) * heads * head_dim
    bpv = ACTIVATION_BYTE["bf16"]
    ulysses_step = layers * 4 * (1 / 2) * shard * bpv              # Q, K, V and output, half of each leaves
    out_channels = config.get("out_channels") or spec.pipeline["latent_channels"]
    per_token = out_channels * latent_f * latent_h * latent_w / tokens
    gather_step = (2 - 1) * samples * math.ceil(tokens / 2) * per_token * bpv   # Wan gathers its output every pass
    assert row["comm_byte"] == pytest.approx(50 * (ulysses_step + gather_step), rel=1e-12)
    assert row["ring_byte"] == 0
    assert row["layer_steps"] == layers * 50
    assert row["tokens_per_gpu"] == samples * math.ceil(tokens / 2)
    assert row["tokens_one_gpu"] == samples * tokens
    assert row["link_byte_per_s"] == interconnect("h100").nvlink_byte_per_s_per_direction
    assert row["n_gpus"] == row["sequence_degree"] == 2 and row["cfg_degree"] == 1 and row["ring_degree"] == 1
    setting = make_setting(spec, height=480, width=832, frames=81, steps=50, batch_size=1)
    flops = profile(setting, spec=spec).by_role()
    assert row["decoder_share"] == pytest.approx(flops["decoder"] / sum(flops.values()), rel=1e-9)
    assert row["text_encoder_share"] == pytest.approx(flops["text_encoder"] / sum(flops.values()), rel=1e-9)
    one = frame[(frame["model_key"] == "wan2.1-t2v-1.3b") & (frame["batch_size"] == 1) & (frame["n_gpus"] == 1)].iloc[0]
    assert (row["anchor_time_s"], row["anchor_energy_j"]) == (one["time_s"], one["energy_j"])
    assert row["idle_gpus_during_decode"] == 1


def test_the_plan_comes_from_the_notes_and_a_bad_plan_is_refused():
    assert plan_from_notes("engine xDiT; ulysses_degree=2 ring_degree=4 (sequence ...)") == ParallelPlan(2, 4)
    assert plan_from_notes("ulysses_degree=4 ring_degree=1 cfg_degree=2") == ParallelPlan(4, 1, 2)
    assert plan_from_notes("single GPU") is None
    spec = resolve_model("wan2.1-t2v-1.3b")
    with pytest.raises(InvalidSettingError, match="ulysses=8 does not divide the 12 attention heads"):
        parallel_features(spec, make_setting(spec), ParallelPlan(ulysses=8), "h100")


# -- the fitted law on the data ----------------------------------------------------------------------

def test_the_law_reproduces_the_one_gpu_rows(frame, law):
    ones = frame[frame["n_gpus"] == 1]
    t, e = predict_arrays(law.coef, _columns(ones))
    np.testing.assert_array_equal(t, ones["time_s"].to_numpy(float))
    np.testing.assert_array_equal(e, ones["energy_j"].to_numpy(float))
    spec = resolve_model("pixart-sigma")
    feats = parallel_features(spec, make_setting(spec), ParallelPlan(), "h100")
    anchor_t, anchor_e = Interval(1.0, 0.8, 1.3), Interval(700.0, 600.0, 800.0)
    p = law.predict(feats, anchor_t, anchor_e)
    assert (p.time_s, p.energy_j, p.n_gpus, p.extrapolation) == (anchor_t, anchor_e, 1, False)


def _largest_ulysses(rows):
    """Per GPU count, the plan with the largest Ulysses degree (the default plan's choice)."""
    return rows.sort_values("ulysses").groupby("n_gpus").tail(1).sort_values("n_gpus")


@pytest.mark.parametrize("model", ["pixart-sigma", "sd3.5-medium", "wan2.1-t2v-1.3b", "cogvideox-2b"])
def test_energy_grows_and_time_falls_with_the_gpu_count_as_measured(frame, law, model):
    rows = _largest_ulysses(frame[(frame["model_key"] == model) & (frame["batch_size"] == 16)])
    assert len(rows) >= 2
    t, e = predict_arrays(law.coef, _columns(rows))
    measured_e, measured_t = rows["energy_j"].to_numpy(float), rows["time_s"].to_numpy(float)
    assert np.all(np.diff(measured_e) > 0) and np.all(np.diff(measured_t) < 0)   # what the data shows
    assert np.all(np.diff(e) > 0), (model, e)
    assert np.all(np.diff(t) < 0), (model, t)


def test_average_power_stays_under_the_gpus_tdp(frame, law):
    t, e = predict_arrays(law.coef, _columns(frame))
    power = e / t
    assert np.all(power <= frame["n_gpus"].to_numpy(float) * frame["tdp_w"].to_numpy(float))
    assert np.all(power > 0)
    parts = time_parts(law.coef, _columns(frame))
    assert np.all(parts["starved"] >= 0) and np.all(parts["comm"] >= 0)
    for gpu in ("h100", "b200"):
        p = predict_parallel("sd3.5-medium", ParallelPlan(ulysses=4, ring=2), gpu, law=law)
        assert 0 < p.power_w <= p.n_gpus * (700.0 if gpu == "h100" else 1000.0)
        assert p.power_w == pytest.approx(p.energy_j.value / p.time_s.value)
        assert p.energy_j.lo < p.energy_j.value < p.energy_j.hi and p.time_s.lo < p.time_s.value < p.time_s.hi


def test_a_gpu_never_measured_on_several_gpus_is_labelled_an_extrapolation(law):
    assert law.gpus_measured == ("h100-sxm",)
    measured = predict_parallel("wan2.1-t2v-1.3b", ParallelPlan(ulysses=4, ring=2), "h100", law=law)
    assert not measured.extrapolation
    for gpu in ("h200", "b200"):
        p = predict_parallel("wan2.1-t2v-1.3b", ParallelPlan(ulysses=4, ring=2), gpu, law=law)
        assert p.extrapolation
        assert any("interconnect" in n and "GB/s" in n for n in p.notes)
    cfg = predict_parallel("sd3.5-medium", ParallelPlan(ulysses=4, cfg=2), "h100", law=law)
    assert cfg.extrapolation and any("CFG parallel" in n for n in cfg.notes)


def test_the_shipped_law_file_is_a_fit_of_the_shipped_data(frame, law):
    refit = fit_coefficients(frame)
    for name, value in law.coef.items():
        assert refit[name] == pytest.approx(value, rel=1e-6), name
    assert set(law.coef) == set(COEFFICIENTS)
    for name, entry in law.document["coefficients"].items():
        assert entry["lo"] <= entry["estimate"] <= entry["hi"], name


def test_leave_one_model_out_scores_are_the_ones_recorded(frame, law):
    """The benchmark's numbers (benchmarks/multi_gpu_targets.py), with a little room; the law file holds them."""
    summary = validation_summary(leave_one_model_out(frame))
    recorded = law.document["validation"]["leave_one_model_out"]["overall"]
    assert summary["overall"]["energy_mape"] == pytest.approx(recorded["energy_mape"], rel=1e-6)
    assert summary["overall"]["energy_mape"] < 0.11
    assert summary["overall"]["time_mape"] < 0.12
    assert summary["overall"]["spearman"] >= 0.9


# -- the loader ----------------------------------------------------------------------------------------

def _damaged(doc, what):
    doc = json.loads(json.dumps(doc))
    if what == "schema":
        doc["schema"] = "scaling.law/1"
    elif what == "coefficient":
        doc["coefficients"]["comm_efficiency"]["estimate"] = 3.0
    elif what == "missing":
        del doc["coefficients"]["idle_power_fraction"]
    elif what == "bootstrap":
        doc["uncertainty"]["bootstrap"] = []
    elif what == "gpus":
        doc["training"]["gpus"] = "h100-sxm"
    return doc


@pytest.mark.parametrize("what, message", [
    ("schema", "schema 'scaling.law/1' is not"), ("coefficient", "comm_efficiency is 3.0"),
    ("missing", "coefficient 'idle_power_fraction' is missing"), ("bootstrap", "no coefficient draw"),
    ("gpus", "training.gpus"),
])
def test_the_loader_refuses_a_damaged_file_with_one_line(tmp_path, law, what, message):
    path = tmp_path / "parallel.json"
    path.write_text(json.dumps(_damaged(law.document, what)), encoding="utf-8")
    with pytest.raises(LawError, match=message) as err:
        load_parallel_law(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_the_loader_refuses_a_file_that_is_not_json_or_not_there(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(LawError, match="is not a law JSON") as err:
        load_parallel_law(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(LawError, match="does not exist"):
        load_parallel_law(tmp_path / "nowhere.json")
    with pytest.raises(LawError, match="not a JSON object"):
        ParallelLaw([1, 2])
