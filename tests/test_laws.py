"""The laws as estimators: scikit-learn contract, recovery of known laws, intervals, the numpy path.

Synthetic data only (fast); the public data is in test_validation_public.py and
test_default_law.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

import fits
from fits.features import DESIGN_COLUMNS, STEPS_COLUMN, design_matrix, hardware_vector, prior_exponents
from fits.laws import HardwareLaw, IdentifiabilityWarning, PowerLaw, PowerLawOverhead, r2_log
from fits.law import LawState, predict_interval
from fits.law_file import Law
from fits.uncertainty import bootstrap, coef_table, ols_results, prediction_interval
from fits.validation import candidate_laws, compare_laws, cross_val_predictions, metrics
from scaling.errors import DataError, LawError
from scaling.hardware import resolve_gpu

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------- sklearn


@parametrize_with_checks([
    PowerLaw(),
    PowerLaw(robust=True),
    PowerLawOverhead(),
    PowerLawOverhead(overhead="step", steps_column=1),
    HardwareLaw(overhead="call+step", steps_column=1),
])
def test_sklearn_estimator_contract(estimator, check):
    check(estimator)


# ---------------------------------------------------------------------------------- synthetic data


def _design(flop, steps, gpus, precision="fp16"):
    hw = np.vstack([hardware_vector(g, precision) for g in gpus])
    return np.column_stack([flop, steps, hw])


def _synthetic(n=40, seed=0, noise=0.03, a=3e-12, b=0.95, e0=0.0, s=0.0, gpus=("h100",), regime="memory"):
    rng = np.random.default_rng(seed)
    flop = np.geomspace(1e13, 1e17, n)
    steps = rng.choice([10, 25, 50, 100], size=n).astype(float)
    g = [gpus[i % len(gpus)] for i in range(n)]
    X = _design(flop, steps, g)
    p = np.asarray(prior_exponents(regime))
    H = np.exp(np.log(X[:, 2:]) @ p)
    H = H / H[0]
    y = H * (a * flop ** b + e0 + s * steps) * np.exp(rng.normal(0, noise, n))
    return X, y


def test_power_law_recovers_a_and_b():
    X, y = _synthetic(noise=0.01)
    law = PowerLaw().fit(X, y)
    assert law.b_ == pytest.approx(0.95, abs=0.01)
    assert np.exp(law.log_a_) == pytest.approx(3e-12, rel=0.3)
    assert law.score(X, y) > 0.999
    assert law.e0_ == 0.0 and law.s_ == 0.0


def test_overhead_law_recovers_the_fixed_overhead_and_beats_the_power_law():
    X, y = _synthetic(noise=0.01, b=1.0, e0=2000.0, a=2e-12)
    law = PowerLawOverhead().fit(X, y)
    assert law.e0_ == pytest.approx(2000.0, rel=0.15)
    assert law.b_ == pytest.approx(1.0, abs=0.02)
    assert law.n_starts_ >= 3
    assert r2_log(y, law.predict(X)) > r2_log(y, PowerLaw().fit(X, y).predict(X))


def test_step_overhead_is_read_from_the_steps_column():
    X, y = _synthetic(noise=0.01, b=1.0, s=50.0, a=2e-12)
    law = PowerLawOverhead(overhead="step", steps_column=STEPS_COLUMN).fit(X, y)
    assert law.s_ == pytest.approx(50.0, rel=0.15)
    assert law.e0_ == 0.0
    with pytest.raises(ValueError, match="steps_column"):
        PowerLawOverhead(overhead="step").fit(X, y)


def test_hardware_law_predicts_a_gpu_it_never_saw_through_its_prior():
    X, y = _synthetic(noise=0.005, gpus=("h100", "a100-sxm4-40gb"), regime="memory")
    h100 = X[:, 4] == X[0, 4]
    law = HardwareLaw(prior_exponents=prior_exponents("memory"), fit_hardware=False, steps_column=STEPS_COLUMN)
    law.fit(X[h100], y[h100])
    ape = np.abs(law.predict(X[~h100]) / y[~h100] - 1)
    assert ape.mean() < 0.02
    flop_only = PowerLaw().fit(X[h100], y[h100])
    assert np.abs(flop_only.predict(X[~h100]) / y[~h100] - 1).mean() > 0.1  # the prior is what carries it


def test_fit_hardware_auto_fits_what_varies_and_keeps_the_prior_otherwise():
    X, y = _synthetic(noise=0.005, gpus=("h100", "a100-sxm4-40gb", "a40"))
    law = HardwareLaw(prior_exponents=prior_exponents("memory"), fit_hardware="auto", steps_column=STEPS_COLUMN)
    law.fit(X, y)
    assert law.fitted_hardware_  # three GPUs identify at least one exponent
    assert STEPS_COLUMN not in law.hardware_columns_
    one = X[:, 4] == X[0, 4]
    law1 = clone(law).fit(X[one], y[one])
    assert law1.fitted_hardware_ == []
    assert list(law1.hardware_exponents_) == list(prior_exponents("memory"))
    with pytest.raises(LawError, match="cannot identify"):
        clone(law).set_params(fit_hardware=True).fit(X[one], y[one])


def test_robust_loss_resists_an_outlying_run():
    X, y = _synthetic(noise=0.01)
    y = y.copy()
    y[5] *= 8.0
    ols = PowerLaw().fit(X, y)
    rob = PowerLaw(robust=True).fit(X, y)
    assert abs(rob.b_ - 0.95) < abs(ols.b_ - 0.95)
    assert abs(rob.b_ - 0.95) < 0.01


def test_one_distinct_setting_raises_and_few_settings_warn():
    X, y = _synthetic(n=6)
    same = np.repeat(X[:1], 5, axis=0)
    with pytest.raises(LawError, match="1 distinct setting"):
        PowerLaw().fit(same, y[:5])
    with pytest.warns(IdentifiabilityWarning, match="distinct settings"):
        PowerLawOverhead().fit(X[:4], y[:4])  # 4 settings < 2 x 3 parameters
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=IdentifiabilityWarning)
        PowerLaw().fit(X, y)  # 6 settings >= 2 x 2 parameters


def test_repeats_do_not_count_as_settings():
    X, y = _synthetic(n=3)
    Xr = np.repeat(X, 10, axis=0)
    yr = np.repeat(y, 10)
    with pytest.warns(IdentifiabilityWarning):
        law = PowerLaw().fit(Xr, yr)
    assert law.n_settings_ == 3


def test_bad_targets_are_refused():
    X, y = _synthetic(n=5)
    y = y.copy()
    y[2] = 0.0
    with pytest.raises(DataError, match="row 2"):
        PowerLaw().fit(X, y)
    with pytest.raises(ValueError, match="Negative values"):
        PowerLaw().fit(-X, np.abs(y) + 1)


def test_smearing_corrects_the_log_space_retransformation():
    X, y = _synthetic(noise=0.3, n=400, seed=3)
    law = PowerLaw().fit(X, y)
    assert law.smearing_ == pytest.approx(np.mean(np.exp(law.resid_log_)))
    assert law.smearing_ > 1.0
    # the smeared mean is unbiased in linear space; the median is low by ~sigma^2/2
    assert np.mean(y / law.predict(X)) == pytest.approx(1.0, abs=0.02)
    assert np.mean(y / law.predict_median(X)) > 1.03
    assert np.allclose(PowerLaw(smearing=False).fit(X, y).predict(X), law.predict_median(X))


# ---------------------------------------------------------------------------------- intervals


def test_intervals_equal_statsmodels_ols():
    X, y = _synthetic(noise=0.05)
    law = HardwareLaw(prior_exponents=prior_exponents("memory"), fit_hardware=False, steps_column=1).fit(X, y)
    res = ols_results(law, X, y)
    tab = coef_table(law, X, y, level=0.9).set_index("param")
    lo, hi = np.asarray(res.conf_int(alpha=0.1)).T
    assert tab.loc["b", "lo"] == pytest.approx(lo[1]) and tab.loc["b", "hi"] == pytest.approx(hi[1])
    assert tab.loc["b", "method"] == "statsmodels OLS"
    assert tab.loc["w_tdp_w", "method"] == "prior (fixed)"
    Xn = X[:5]
    mean, plo, phi = prediction_interval(law, Xn, level=0.9)
    state = law.to_state()
    Z = state.log_features(Xn)
    frame = res.get_prediction(state.linear_design(Z)).summary_frame(alpha=0.1)
    off = state.hardware_offset(Z)  # the prior-held hardware term is an offset of the OLS
    assert np.allclose(plo, np.exp(frame["obs_ci_lower"] + off), rtol=1e-9)
    assert np.allclose(phi, np.exp(frame["obs_ci_upper"] + off), rtol=1e-9)
    assert np.all(plo < mean) and np.all(mean < phi)


def test_prediction_intervals_cover_new_measurements():
    X, y = _synthetic(noise=0.1, n=200, seed=1)
    Xn, yn = _synthetic(noise=0.1, n=200, seed=2)
    for law in (PowerLaw(), PowerLawOverhead()):
        law.fit(X, y)
        _, lo, hi = prediction_interval(law, Xn, level=0.9)
        coverage = np.mean((yn >= lo) & (yn <= hi))
        assert 0.83 <= coverage <= 0.97, (law, coverage)


def test_nonlinear_intervals_are_asymptotic_and_named_so():
    X, y = _synthetic(noise=0.02, b=1.0, e0=2000.0, a=2e-12)
    law = PowerLawOverhead().fit(X, y)
    tab = coef_table(law, X, y).set_index("param")
    assert tab.loc["e0", "lo"] < law.e0_ < tab.loc["e0", "hi"]
    assert tab.loc["e0", "method"].startswith("asymptotic")


def test_bootstrap_resamples_whole_settings_with_a_fixed_seed():
    X, y = _synthetic(n=12, noise=0.05)
    groups = np.arange(12)
    Xr, yr, gr = np.repeat(X, 5, axis=0), np.repeat(y, 5), np.repeat(groups, 5)
    a = bootstrap(PowerLaw(), Xr, yr, gr, n_boot=60, X_new=X[:2])
    b = bootstrap(PowerLaw(), Xr, yr, gr, n_boot=60, X_new=X[:2])
    assert a.params.equals(b.params)  # same seed, same intervals
    row = a.intervals.set_index("param").loc["b"]
    assert row["lo"] < row["estimate"] < row["hi"]
    # resampling settings, not repeats: 5 repeats of each setting change nothing
    c = bootstrap(PowerLaw(), X, y, groups, n_boot=60)
    assert np.allclose(a.params["b"], c.params["b"], rtol=1e-9)
    assert a.pred_lo.shape == (2,) and np.all(a.pred_lo < a.pred_hi)


# ---------------------------------------------------------------------------------- validation


def test_compare_laws_puts_every_form_through_the_same_splits():
    X, y = _synthetic(n=30, noise=0.02, gpus=("h100", "a100-sxm4-40gb"), e0=500.0)
    models = np.array(["m%d" % (i % 5) for i in range(30)])
    gpus = np.array(["h100" if X[i, 4] == X[0, 4] else "a100" for i in range(30)])
    groups = {"config_kfold": np.arange(30), "config_loo": np.arange(30), "model_out": models, "gpu_out": gpus}
    laws = candidate_laws()
    tab = compare_laws(laws, X, y, groups)
    assert set(tab["law"]) == set(laws)
    assert set(tab["split"]) == {"in_sample", "config_kfold", "config_loo", "model_out", "gpu_out"}
    gpu = tab[tab["split"] == "gpu_out"].set_index("law")
    assert (gpu["folds"] == 2).all()
    assert gpu.loc["hw-memory+E0", "mape"] < gpu.loc["power+E0", "mape"]  # generated with the memory prior


def test_cross_validation_never_trains_on_the_held_out_group():
    X, y = _synthetic(n=20)
    groups = np.repeat(np.arange(4), 5)
    seen = []

    class Spy(PowerLaw):
        def fit(self, X, y):
            seen.append({tuple(r) for r in X.tolist()})
            return super().fit(X, y)

    pred, info = cross_val_predictions(Spy(), X, y, groups, "config_loo")
    assert info["folds"] == 4 and np.isfinite(pred).all()
    for g, train_rows in zip(range(4), seen):
        held = {tuple(r) for r in X[groups == g].tolist()}
        assert not (held & train_rows)


def test_metrics():
    m = metrics([100, 200, 400], [110, 180, 400])
    assert m["mape"] == pytest.approx((0.1 + 0.1 + 0) / 3)
    assert m["mdape"] == pytest.approx(0.1)
    assert m["spearman"] == pytest.approx(1.0)
    assert 0.9 < m["r2_log"] < 1.0


# ---------------------------------------------------------------------------------- the numpy path


def _document(law, X, y, name):
    import pandas as pd

    from fits.default_law import law_document

    settings = pd.DataFrame({"gpu_key": ["x"] * len(y), "precision": ["fp16"] * len(y), "model": ["m"] * len(y),
                             "flop": X[:, 0], "steps": X[:, 1]})
    return json.loads(json.dumps(law_document(law, law, form=name, name="t", description="", X=X, y=y, X_time=X,
                                              y_time=y, settings=settings)))


@pytest.mark.parametrize("name", ["power", "power+E0", "power+step", "hw-memory+E0+step", "hw-fit+step"])
def test_law_file_evaluation_equals_the_estimator(name):
    X, y = _synthetic(n=40, noise=0.05, gpus=("h100", "a100-sxm4-40gb", "a40"), e0=300.0, s=20.0)
    law = clone(candidate_laws()[name]).fit(X, y)
    loaded = Law(_document(law, X, y, name))
    mean, lo, hi = prediction_interval(law, X[:7])
    for i in range(7):
        gpu = resolve_gpu({X[0, 4]: "h100", X[1, 4]: "a100-sxm4-40gb", X[2, 4]: "a40"}[X[i, 4]])
        out = loaded.predict_energy({"denoiser": X[i, 0] * 0.75, "decoder": X[i, 0] * 0.25}, gpu, "fp16",
                                    steps=int(X[i, 1]))
        assert out["total"].as_tuple() == pytest.approx((mean[i], lo[i], hi[i]), rel=1e-9)
        assert out["total"].level == 0.9
        assert out["denoiser"].value == pytest.approx(0.75 * mean[i], rel=1e-9)
        t = loaded.predict_time({"denoiser": X[i, 0]}, gpu, "fp16", steps=int(X[i, 1]))
        assert t.as_tuple() == pytest.approx((mean[i], lo[i], hi[i]), rel=1e-9)


def test_the_state_round_trips_through_the_law_file_exactly():
    X, y = _synthetic(n=40, noise=0.05, gpus=("h100", "a100-sxm4-40gb", "a40"), s=20.0)
    law = clone(candidate_laws()["hw-fit+flatstep"]).fit(X, y)
    state = law.to_state()
    back = LawState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert np.array_equal(back.theta, state.theta) and np.array_equal(back.cov, state.cov)
    assert (back.fitted, back.fixed, back.overhead, back.overhead_scale) == \
        (state.fitted, state.fixed, state.overhead, state.overhead_scale)
    for a, b in zip(predict_interval(state, X), predict_interval(back, X)):
        assert np.array_equal(a, b)  # bit for bit
    # the estimator's own prediction is the state's mean; another level needs scipy, same formula
    assert np.allclose(law.predict(X), predict_interval(state, X)[0], rtol=1e-12)
    _, lo80, hi80 = predict_interval(state, X, level=0.8)
    _, lo90, hi90 = predict_interval(state, X)
    assert np.all(lo90 < lo80) and np.all(hi80 < hi90)
    assert state.to_dict()["a"] == pytest.approx(np.exp(law.log_a_)) and state.to_dict()["s"] == law.s_


def test_the_law_file_takes_resolved_objects_and_returns_intervals():
    X, y = _synthetic(n=40, noise=0.05, gpus=("h100", "a100-sxm4-40gb", "a40"), s=20.0)
    law = clone(candidate_laws()["hw-fit+step"]).fit(X, y)
    loaded = Law(_document(law, X, y, "hw-fit+step"))
    with pytest.raises(LawError, match="GPUSpec"):
        loaded.predict_energy({"denoiser": 1e15}, "h100", "fp16", steps=20)
    with pytest.raises(LawError, match="steps"):
        loaded.predict_energy({"denoiser": 1e15}, resolve_gpu("h100"), "fp16")
    with pytest.raises(LawError, match="0 FLOP"):
        loaded.predict_energy({"denoiser": 0.0}, resolve_gpu("h100"), "fp16", steps=20)


def test_public_api_is_lazy_and_complete():
    assert set(dir(fits)) == set(fits.__all__)
    for name in fits.__all__:
        assert getattr(fits, name) is not None, name
    code = ("import sys, fits\nlaw = fits.load_law\n"
            "print(','.join(m for m in ('sklearn', 'statsmodels', 'scipy', 'plotly', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_design_matrix_columns_and_errors():
    import pandas as pd

    runs = pd.DataFrame({"flop": [1e15, 2e15], "steps": [25, 50], "gpu_key": ["h100-sxm", "a40"],
                         "precision": ["bf16", "fp32"]})
    X = design_matrix(runs)
    assert X.shape == (2, len(DESIGN_COLUMNS))
    assert X[0, 2] == pytest.approx(989.5e12) and X[1, 2] == pytest.approx(37.4e12)
    assert X[1, 5] == 4.0
    with pytest.raises(DataError, match="row 1 has flop"):
        design_matrix(runs.assign(flop=[1e15, float("nan")]))
    with pytest.raises(DataError, match="missing column"):
        design_matrix(runs.drop(columns=["steps"]))
    with pytest.raises(DataError, match="unknown GPU"):
        design_matrix(runs.assign(gpu_key=["h100-sxm", "nope-gpu"]))
