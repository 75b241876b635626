"""The roofline laws (:mod:`fits.roofline`): recovery on synthetic data, the model's Jacobian, the
state round trip and its checks, the 7-column design matrix, the shipped roofline law and the bytes
of the curated public table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fits.features import design_matrix, hardware_vector
from fits.law import BYTE_COLUMN, DESIGN_COLUMNS, LawState, predict_interval, roofline_log_model
from fits.roofline import RooflineLaw
from scaling.errors import DataError, LawError

ROOT = Path(__file__).resolve().parents[1]

TRAIN_GPUS = (("h100-sxm", "bf16"), ("a100-sxm4-80gb", "bf16"), ("rtx-a6000", "bf16"), ("l40s", "bf16"),
              ("rtx-4090", "bf16"), ("t4", "fp16"), ("a100-sxm4-80gb", "fp32"), ("h100-sxm", "fp32"))
HELD_OUT_GPUS = (("l4", "bf16"), ("a40", "bf16"), ("h200-sxm", "bf16"))
#: the true law: [alpha_c, b, alpha_m, w_peak, w_bw, w_tdp, log_s]
THETA = np.array([5.0, 1.05, 5.0, -0.9, -1.1, 0.8, math.log(0.5)])


def _rows(gpus, n_per_gpu, rng):
    """Design rows over ``gpus``: FLOPs over four decades, arithmetic intensity 3-3000 FLOP/byte."""
    out = []
    for gpu, prec in gpus:
        hw = hardware_vector(gpu, prec)
        flop = 10.0 ** rng.uniform(12, 16, n_per_gpu)
        byte = flop / 10.0 ** rng.uniform(0.5, 3.5, n_per_gpu)
        steps = rng.choice([10.0, 25.0, 50.0], n_per_gpu)
        out.append(np.column_stack([flop, steps, np.tile(hw, (n_per_gpu, 1)), byte]))
    return np.vstack(out)


def _centers(X):
    Z = np.log(X)
    return {"flop_center": float(Z[:, 0].mean()), "byte_center": float(Z[:, BYTE_COLUMN].mean()),
            "fitted_center": tuple(float(Z[:, j].mean()) for j in (2, 3, 4)), "steps_column": 1}


def _truth(X, centers, combine="max"):
    """The noise-free log target of the true law (centred at the training set's centres)."""
    return roofline_log_model(THETA, np.log(X), combine=combine, **centers)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(20240611)
    X = _rows(TRAIN_GPUS, 40, rng)
    centers = _centers(X)
    y = np.exp(_truth(X, centers) + rng.normal(0.0, 0.02, len(X)))
    X_out = _rows(HELD_OUT_GPUS, 30, rng)
    return X, y, centers, X_out


@pytest.fixture(scope="module")
def fitted(synthetic):
    X, y, _, _ = synthetic
    return RooflineLaw(combine="max").fit(X, y)


# -- recovery -----------------------------------------------------------------------------------------

def test_recovers_b_and_the_exponents(fitted):
    theta = fitted.theta_
    assert theta[1] == pytest.approx(THETA[1], abs=0.02)                       # b
    np.testing.assert_allclose(fitted.hardware_exponents_, THETA[3:6], atol=0.06)  # w_peak, w_bw, w_tdp
    np.testing.assert_allclose(theta[[0, 2]], THETA[[0, 2]], atol=0.1)          # alpha_c, alpha_m (same centres)
    assert fitted.s_ == pytest.approx(0.5, rel=0.25)
    assert math.sqrt(fitted.sigma2_) == pytest.approx(0.02, rel=0.25)


def test_predicts_held_out_gpus(fitted, synthetic):
    _, _, centers, X_out = synthetic
    err = np.log(fitted.predict_median(X_out)) - _truth(X_out, centers)
    assert np.max(np.abs(err)) < 0.05, f"max |log error| on held-out GPUs {np.max(np.abs(err)):.3f}"


def test_max_and_sum_differ_where_compute_meets_memory():
    rng = np.random.default_rng(1)
    Z = np.log(_rows(TRAIN_GPUS[:1], 1, rng))
    kw = {"flop_center": 0.0, "byte_center": 0.0, "fitted_center": (0.0, 0.0, 0.0), "steps_column": 1}
    theta = np.array([0.0, 1.0, 0.0, -1.0, -1.0, 1.0, -200.0])              # no step cost
    u_c = Z[0, 0] - Z[0, 2] + Z[0, 4]
    u_m = Z[0, 6] - Z[0, 3] + Z[0, 4]
    for gap, want in ((0.0, math.log(2.0) - math.log(2.0) / 8.0), (5.0, None)):
        th = theta.copy()
        th[2] = u_c - u_m - gap                                              # memory term `gap` below compute
        d = float(roofline_log_model(th, Z, combine="sum", **kw)[0] - roofline_log_model(th, Z, combine="max", **kw)[0])
        if want is not None:
            assert d == pytest.approx(want, rel=1e-9)                        # log 2 vs log 2 / 8 when balanced
        else:
            assert 0.0 < d < 0.01                                            # far from the ridge they agree


@pytest.mark.parametrize("truth", ["max", "sum"])
def test_each_combine_fits_its_own_data_and_not_the_other(truth):
    """The two forms are told apart by data where the terms are close: each fits its own data to the
    noise (and recovers its parameters), the other leaves a residual several times larger."""
    rng = np.random.default_rng(5)
    X = _rows(TRAIN_GPUS, 40, rng)
    centers = _centers(X)
    y = np.exp(_truth(X, centers, truth) + rng.normal(0.0, 0.02, len(X)))
    own = RooflineLaw(combine=truth).fit(X, y)
    other = RooflineLaw(combine="sum" if truth == "max" else "max").fit(X, y)
    assert math.sqrt(own.sigma2_) == pytest.approx(0.02, rel=0.25)
    assert other.sigma2_ > 9.0 * own.sigma2_
    np.testing.assert_allclose(own.theta_[:6], THETA[:6], atol=0.06)


def test_memory_share_in_unit_interval_and_rises_with_bytes(fitted, synthetic):
    X = synthetic[0]
    assert np.all((fitted.memory_share_ >= 0.0) & (fitted.memory_share_ <= 1.0))
    assert fitted.memory_share_.min() < 0.1 and fitted.memory_share_.max() > 0.9   # both regimes in the data
    row = X[:1].copy()
    rows = np.repeat(row, 7, axis=0)
    rows[:, BYTE_COLUMN] = row[0, BYTE_COLUMN] * np.logspace(-3, 3, 7)
    share = fitted.memory_share(rows)
    assert np.all((share >= 0.0) & (share <= 1.0)) and np.all(np.diff(share) > 0)


@pytest.mark.parametrize("overhead", [("step",), ("step", "call")])
@pytest.mark.parametrize("combine", ["max", "sum"])
def test_jacobian_matches_finite_differences(combine, overhead):
    rng = np.random.default_rng(7)
    Z = np.log(_rows(TRAIN_GPUS, 3, rng))
    kw = dict(_centers(np.exp(Z)), combine=combine)
    if overhead != ("step",):
        kw["overhead"] = overhead
    theta = np.r_[THETA + rng.normal(0, 0.3, 7), [4.0] * (len(overhead) - 1)]
    theta[6] = 1.5                                                          # the step term matters somewhere
    f0, J = roofline_log_model(theta, Z, grad=True, **kw)
    assert np.allclose(roofline_log_model(theta, Z, **kw), f0)
    h = 1e-6
    for i in range(len(theta)):
        e = np.zeros_like(theta)
        e[i] = h
        fd = (roofline_log_model(theta + e, Z, **kw) - roofline_log_model(theta - e, Z, **kw)) / (2 * h)
        np.testing.assert_allclose(J[:, i], fd, rtol=1e-5, atol=1e-7, err_msg=f"column {i} ({combine})")


# -- the state ------------------------------------------------------------------------------------------

def test_state_round_trip_predicts_identically(fitted, synthetic):
    X_out = synthetic[3]
    state = fitted.to_state()
    assert state.family == "roofline" and state.combine == "max" and state.reads_bytes
    doc = json.loads(json.dumps(state.to_dict(), allow_nan=False))
    back = LawState.from_dict(doc)
    for a, b in zip(predict_interval(state, X_out), predict_interval(back, X_out)):
        np.testing.assert_array_equal(a, b)
    mean, lo, hi = predict_interval(state, X_out)
    np.testing.assert_allclose(mean, fitted.predict(X_out), rtol=1e-12)
    assert np.all(lo < mean) and np.all(mean < hi)


def test_state_round_trip_with_a_call_overhead(synthetic):
    X, y, _, X_out = synthetic
    law = RooflineLaw(combine="sum", overhead="call+step").fit(X, y)
    state = law.to_state()
    assert state.overhead == ("step", "call") and len(state.theta) == 8
    back = LawState.from_dict(json.loads(json.dumps(state.to_dict(), allow_nan=False)))
    for a, b in zip(predict_interval(state, X_out), predict_interval(back, X_out)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(predict_interval(state, X_out)[0], law.predict(X_out), rtol=1e-12)


@pytest.mark.parametrize("change,needle", [
    ({"family": "bogus"}, "family 'bogus'"),
    ({"n_features": 6}, "a roofline law needs n_features 7"),
    ({"combine": "min"}, "combine 'min'"),
    ({"fitted": [2, 3]}, "a roofline law needs n_features 7"),
])
def test_from_dict_refuses_a_bad_state(fitted, change, needle):
    doc = {**fitted.to_state().to_dict(), **change}
    with pytest.raises(LawError) as e:
        LawState.from_dict(doc, where="law file 'x.json', energy")
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and "x.json" in msg


def test_fit_refuses_rows_without_bytes(synthetic):
    X, y = synthetic[0].copy(), synthetic[1]
    X[5, BYTE_COLUMN] = 0.0
    with pytest.raises(DataError, match=r"row 5 has no bytes moved"):
        RooflineLaw().fit(X, y)
    with pytest.raises(LawError, match="7 design columns"):
        RooflineLaw().fit(X[:, :6], y)


# -- the design matrix ------------------------------------------------------------------------------------

def _runs(**extra):
    base = {"flop": [1e15, 2e15, 4e15], "flop_denoiser": [8e14, 1.6e15, 3.2e15], "steps": [50, 50, 25],
            "gpu_key": ["h100-sxm", "a100-sxm4-80gb", "h100-sxm"], "precision": ["bf16", "bf16", "fp32"]}
    return pd.DataFrame({**base, **extra})


def test_design_matrix_without_bytes_has_a_zero_byte_column():
    X = design_matrix(_runs())
    assert X.shape == (3, len(DESIGN_COLUMNS)) == (3, 7)
    np.testing.assert_array_equal(X[:, BYTE_COLUMN], 0.0)
    np.testing.assert_array_equal(X[0, 2:6], hardware_vector("h100-sxm", "bf16"))
    np.testing.assert_array_equal(X[2, 2:6], hardware_vector("h100-sxm", "fp32"))


def test_design_matrix_reads_the_byte_column_of_the_flop_column():
    runs = _runs(byte=[1e12, np.nan, 3e12], byte_denoiser=[5e11, 6e11, 7e11])
    X = design_matrix(runs)
    np.testing.assert_array_equal(X[:, BYTE_COLUMN], [1e12, 0.0, 3e12])      # a missing count is 0
    Xd = design_matrix(runs, flop_column="flop_denoiser")
    np.testing.assert_array_equal(Xd[:, 0], runs["flop_denoiser"])
    np.testing.assert_array_equal(Xd[:, BYTE_COLUMN], [5e11, 6e11, 7e11])


def test_design_matrix_refuses_negative_bytes():
    with pytest.raises(DataError) as e:
        design_matrix(_runs(byte=[1e12, -4.0, 3e12]), source="runs.csv")
    msg = str(e.value)
    assert "runs.csv" in msg and "row 1" in msg and "byte=" in msg and "-4" in msg and ">= 0" in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="byte_denoiser="):
        design_matrix(_runs(byte_denoiser=[1e12, 2e12, -1.0]), flop_column="flop_denoiser")


def test_hardware_law_skips_the_byte_column():
    from fits.laws import HardwareLaw
    from fits.features import prior_exponents

    rng = np.random.default_rng(3)
    X = _rows(TRAIN_GPUS, 6, rng)
    y = X[:, 0] ** 0.9 * X[:, 4] / X[:, 2] * 1e3 * np.exp(rng.normal(0, 0.05, len(X)))
    X0 = X.copy()
    X0[:, BYTE_COLUMN] = 0.0
    kw = {"prior_exponents": prior_exponents("compute"), "steps_column": 1, "overhead": "step",
          "byte_column": BYTE_COLUMN}
    a, b = HardwareLaw(**kw).fit(X, y), HardwareLaw(**kw).fit(X0, y)
    np.testing.assert_allclose(a.predict(X), b.predict(X0), rtol=1e-10)


# -- the shipped law -------------------------------------------------------------------------------------

def _shipped_inputs(model="sd2.1", gpu="h100-sxm", **kw):
    from profilers.flops.profile import profile
    from scaling.hardware import resolve_gpu
    from scaling.registry import resolve_model
    from scaling.settings import make_setting

    spec = resolve_model(model)
    s = make_setting(spec, **kw)
    return s, profile(s, spec=spec), resolve_gpu(gpu), spec


def test_shipped_law_predicts_with_bytes_and_refuses_without():
    import fits

    law = fits.load_law()
    assert law.form.startswith("hw-roofline") and law._main.energy.family == "roofline"   # the shipped form
    s, prof, gpu, spec = _shipped_inputs(steps=50)
    res = law.predict(s, prof.by_role(), gpu, spec, byte_by_role=prof.by_role_byte())
    assert res.energy_j["total"].value > 0 and res.time_s.value > 0 and res.byte_in_range
    with pytest.raises(LawError) as e:
        law.predict(s, prof.by_role(), gpu, spec)
    assert "byte_by_role" in str(e.value) and "\n" not in str(e.value)
    for call in (law.predict_energy, law.predict_time):
        with pytest.raises(LawError, match="byte_by_role"):
            call(prof.by_role(), gpu, s.precision, steps=s.steps)
    far = law.predict(s, prof.by_role(), gpu, spec, byte_by_role={k: v * 1e6 for k, v in prof.by_role_byte().items()})
    assert not far.byte_in_range and any("bytes moved" in r for r in far.extrapolation)


def test_doubling_the_bytes_of_a_memory_bound_setting_raises_the_time():
    import fits
    from fits.law import hardware_row
    from scaling.precision import precision_plan

    law = fits.load_law()
    state = law._main.time
    th, (cp, cb, ct) = state.theta, state.fitted_center
    best = None
    for model, kw in (("sdxl", {"steps": 50}), ("sd2.1", {"steps": 50}), ("audioldm2", {"seconds": 80, "steps": 200})):
        for gpu in ("h100-sxm", "h200-sxm"):
            s, prof, g, spec = _shipped_inputs(model, gpu, **kw)
            row = np.r_[prof.total_flop, s.steps, hardware_row(g, precision_plan(s.precision, g)), prof.total_byte]
            z = state.log_features(row[None])[0]
            u_c = th[0] + th[1] * (z[0] - state.flop_center) + th[3] * (z[2] - cp) + th[5] * (z[4] - ct)
            u_m = th[2] + (z[6] - state.byte_center) + th[4] * (z[3] - cb) + th[5] * (z[4] - ct)
            if best is None or u_m - u_c > best[0]:
                best = (u_m - u_c, s, prof, g)
    margin, s, prof, g = best
    assert margin > 0, "none of the candidate settings is memory-bound under the shipped time law"
    one = law.predict_time(prof.by_role(), g, s.precision, steps=s.steps, byte_by_role=prof.by_role_byte())
    two = law.predict_time(prof.by_role(), g, s.precision, steps=s.steps,
                           byte_by_role={k: 2 * v for k, v in prof.by_role_byte().items()})
    assert two.value > 1.1 * one.value


# -- the curated public table ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def public_runs(public_data):
    from fits.validation import load_public

    return load_public(public_data, sources=None)


def test_public_total_bytes_are_the_sum_of_the_roles(public_runs):
    tot = public_runs[(public_runs["phase"] == "total") & public_runs["flop"].notna()]
    assert len(tot) > 100
    byte = tot["byte"].to_numpy(dtype=float, na_value=np.nan)
    assert np.all(np.isfinite(byte) & (byte > 0))
    roles = ("text_encoder", "denoiser", "decoder", "vocoder")
    role_byte = tot[[f"byte_{r}" for r in roles]].to_numpy(dtype=float, na_value=0.0).sum(axis=1)
    role_flop = tot[[f"flop_{r}" for r in roles]].to_numpy(dtype=float, na_value=0.0).sum(axis=1)
    # a role without a column of its own (LTX-Video's latent upsampler) is in the totals only, FLOPs and
    # bytes alike; every other total row is the sum of its role columns
    four = np.isclose(tot["flop"].to_numpy(dtype=float), role_flop, rtol=1e-9)
    assert four.mean() > 0.95
    np.testing.assert_allclose(byte[four], role_byte[four], rtol=1e-9)
    assert np.all(byte[~four] > role_byte[~four])
    from scaling.registry import resolve_model
    from scaling.settings import make_setting
    from scaling.shapes import component_calls

    for key in set(tot.loc[~four, "model_key"].astype(str)):
        spec = resolve_model(key)
        assert {c.role for c in component_calls(spec, make_setting(spec, steps=1))} - set(roles), key


def test_public_bytes_match_a_rebuilt_profile(public_runs):
    from profilers.flops.profile import profile
    from scaling.app.importers._lookups import generated_frames
    from scaling.registry import resolve_model
    from scaling.settings import make_setting

    rows = public_runs[(public_runs["model_key"] == "wan2.1-t2v-1.3b") & (public_runs["phase"] == "total")
                       & public_runs["byte"].notna()]
    assert len(rows)
    r = rows.iloc[0]
    spec = resolve_model("wan2.1-t2v-1.3b")
    kw = {"steps": int(r["steps"]), "batch_size": int(r["batch_size"] if pd.notna(r["batch_size"]) else 1),
          "height": int(r["height"]), "width": int(r["width"]), "frames": generated_frames(spec, int(r["frames"]))}
    if pd.notna(r["guidance_scale"]):
        kw["guidance"] = float(r["guidance_scale"])
    if pd.notna(r["cfg"]):
        kw["cfg"] = bool(r["cfg"])
    if pd.notna(r["precision"]):
        kw["precision"] = str(r["precision"])
    prof = profile(make_setting(spec, **kw), spec=spec)
    assert float(r["byte"]) == pytest.approx(prof.total_byte, rel=1e-9)
    assert float(r["flop"]) == pytest.approx(prof.total_flop, rel=1e-9)
    assert float(r["byte_denoiser"]) == pytest.approx(prof.by_role_byte()["denoiser"], rel=1e-9)


def test_fill_bytes_adds_only_the_missing_byte_cells_and_scaling_fit_reads_them(tmp_path, capsys):
    """A runs table with FLOPs and no bytes (measured by `scaling measure`, or written before the byte
    columns) gets its bytes from the closed-form profiles; its FLOPs and every other column stay."""
    from scaling.app.cli import main
    from scaling.app.importers.flops import fill_bytes
    from scaling.runs import read_runs, write_runs

    full = read_runs(ROOT / "datasets" / "public" / "runs.parquet")
    part = full[full["source"].astype(str) == "video_killed_energy_budget"].reset_index(drop=True)
    bare = part.drop(columns=[c for c in part.columns if c.startswith("byte")])
    out, n = fill_bytes(bare)
    has = part["byte"].notna().to_numpy(bool)
    assert n == int(has.sum()) > 0
    assert np.allclose(out["byte"].to_numpy(float)[has], part["byte"].to_numpy(float)[has], rtol=1e-12)
    assert out["flop"].equals(bare["flop"]) and out["energy_gpu_j"].equals(bare["energy_gpu_j"])
    again, n2 = fill_bytes(out)  # nothing left to fill
    assert n2 == 0 and again["byte"].equals(out["byte"])
    path = tmp_path / "no_bytes.parquet"
    write_runs(bare, path)
    assert main(["fit", "--data", str(path), "--law", "hw-roofline-max"]) == 0
    text = capsys.readouterr().out
    assert f"moved bytes filled from the closed-form profiles for {n} rows" in text
    assert "Q: bytes moved" in text


def test_predict_says_whether_the_call_is_compute_or_memory_bound(capsys):
    """The roofline time law's two terms reach the estimate, its JSON and one `bound` line of the text:
    Wan2.1 at 480p on an H100 is compute-bound, AudioLDM2 80 s with eager attention memory-bound."""
    import scaling
    from scaling.app.cli import main

    wan = scaling.predict("wan2.1", frames=81, res="480p", gpu="h100")
    assert wan.law_compute_time_s > wan.law_memory_time_s > 0
    audio = scaling.predict("audioldm2", seconds=80, steps=200, gpu="rtx-a6000", attention="full:kernel=eager")
    assert audio.law_memory_time_s > 5 * audio.law_compute_time_s
    assert main(["predict", "-m", "wan2.1", "--frames", "81", "--res", "480p", "--gpu", "h100"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("bound"))
    assert "compute-bound" in line and "memory term" in line
    assert main(["predict", "-m", "wan2.1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["law_compute_time_s"] > 0 and data["law_memory_time_s"] > 0


def test_a_power_law_state_has_no_roofline_terms():
    from fits.laws import HardwareLaw

    rng = np.random.default_rng(0)
    hw = np.vstack([hardware_vector(g, "bf16") for g in ("h100", "a100", "l40s")])
    X = np.column_stack([10 ** rng.uniform(13, 16, 30), rng.integers(10, 50, 30), hw[rng.integers(0, 3, 30)],
                         np.full(30, 1e12)])
    y = 1e-12 * X[:, 0] * (1 + 0.01 * rng.standard_normal(30))
    state = HardwareLaw(steps_column=1, byte_column=BYTE_COLUMN).fit(X, y).to_state()
    assert state.family == "power" and state.roofline_terms(X[:2]) is None


def test_a_profile_without_bytes_under_a_roofline_law_is_one_clear_refusal(monkeypatch):
    """A table built before the byte counts (say, a cached local one) meets the roofline law: one LawError
    that names the model and the way out, not a KeyError deep in the law."""
    import dataclasses

    import scaling.app.estimate as est
    from fits.law_file import load_law

    assert load_law().reads_bytes
    real = est.profile

    def no_bytes(*a, **k):
        p = real(*a, **k)
        comps = tuple(dataclasses.replace(c, per_sample_call_activation_byte={}, per_call_weight_byte={})
                      for c in p.components)
        return dataclasses.replace(p, components=comps)

    monkeypatch.setattr(est, "profile", no_bytes)
    with pytest.raises(LawError, match=r"no byte counts .* reads the bytes moved \(rule: rebuild"):
        est.predict("wan2.1", gpu="h100")
