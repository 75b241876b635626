"""Batch size and few-step models: the law's curve against the public sweeps, and `predict --baseline`.

The numbers asserted are the ones achieved (benchmarks/whatif_batch.py, whatif_fewstep.py; written
to docs/whatifs.md by benchmarks/whatif_report.py), with a little room.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from scaling.app.cli import main
from scaling.app.estimate import predict

ROOT = Path(__file__).resolve().parents[1]


def _shipped_label():
    from fits.validation import PRIMARY_LAW

    return f"{PRIMARY_LAW} (shipped)"


SHIPPED = _shipped_label()


def _bench(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import importlib

    return importlib.import_module(name)


@pytest.fixture(scope="module")
def batch(public_data):
    return _bench("whatif_batch").build(public_data)


@pytest.fixture(scope="module")
def fewstep(public_data):
    return _bench("whatif_fewstep").build(public_data)


# -- batch --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model,gpu,kw", [("audioldm2", "a40", {"seconds": 10, "steps": 100}),
                                          ("tango-full", "a40", {"steps": 100, "precision": "fp32"}),
                                          ("sd2.1", "h100", {"steps": 25}),
                                          ("sdxl-turbo", "a100", {"steps": 1})])
def test_energy_per_output_falls_as_the_batch_grows(model, gpu, kw):
    per_output = [predict(model, gpu=gpu, batch_size=b, **kw).energy_j / b for b in (1, 2, 4, 8, 16)]
    assert all(a > b for a, b in zip(per_output, per_output[1:]))
    assert per_output[-1] / per_output[0] > 0.2          # it saturates: the work itself does not batch away


def test_batch_sweeps_are_all_there(batch):
    cur = batch["curves"][SHIPPED]["held_out"]
    audio = [r for r in cur if r["source"].startswith("diffused")]
    assert {r["model"] for r in audio} == {"cvssp/audioldm", "cvssp/audioldm2", "declare-lab/tango-full",
                                           "declare-lab/tango2-full", "stabilityai/stable-audio-open-1.0"}
    assert sorted({r["batch"] for r in audio}) == [2, 5, 10]
    assert max(r["batch"] for r in cur) == 64
    # 5 audio models on A40, and the 13 image/video models x {A100, H100} of ML.ENERGY v2 (all registered
    # since issue 12: Kandinsky 2.2 / 3, SVD / SVD-XT, I2VGen-XL and ModelScope joined the first 7)
    assert batch["n_sweeps"] == 31


def test_audio_batch_sweep_error_bound(batch):
    """Audio sweep (A40, 100 steps, batch 2/5/10), law refitted without any batch > 1 setting.

    The achieved figures are generated into docs/whatifs.md (`python benchmarks/update_docs.py`).
    With the roofline law (issue 16): ratio MAPE about 7 % over the 15 points (FLOP-only law: 9 %);
    at batch 10 measured 0.38x-0.89x per clip; AudioLDM, Tango, Tango 2 and Stable Audio within 4 %,
    the worst point is AudioLDM2 at batch 10 (about +39 %: its memory term, which the law sees as
    not batching away, dominates its small-batch calls; the FLOP-only law had it within 7 %).
    """
    sc = {r["law"]: r for r in batch["score"]}[SHIPPED]
    assert sc["held_out_audio_mape"] <= 0.08
    a10 = {r["model"]: r for r in batch["audio10"]}
    meas = [r["measured"] for r in a10.values()]
    assert min(meas) == pytest.approx(0.384, abs=0.005) and max(meas) == pytest.approx(0.889, abs=0.005)
    for r in a10.values():
        assert abs(r["error"]) <= 0.42
    for m in ("cvssp/audioldm", "declare-lab/tango-full", "declare-lab/tango2-full", "stabilityai/stable-audio-open-1.0"):
        assert abs(a10[m]["error"]) <= 0.06, m


def test_all_batch_sweeps_error_bound_and_the_shipped_form_wins(batch):
    sc = {r["law"]: r for r in batch["score"]}
    shipped = sc[SHIPPED]
    before = sc["hw-fit+step (overhead x H; shipped before)"]
    flop_only = sc["hw-fit+flatstep (FLOP-only; shipped before)"]
    assert shipped["held_out_mape"] <= 0.07            # achieved 5.1 % (FLOP-only law 10.2 %, max +39 %)
    assert shipped["held_out_mape"] < flop_only["held_out_mape"] < before["held_out_mape"]
    assert shipped["held_out_audio_mape"] < before["held_out_audio_mape"]
    assert batch["winner"] == SHIPPED   # the validation table decides, not the batch curve
    assert batch["fp32_overhead_scale"] > 2               # why the old form failed the fp32 Tango sweep


# -- few-step ----------------------------------------------------------------------------------------

def _row(res, case, law, split="model_out"):
    return next(r for r in res["rows"] if r["case"] == case and r["law"] == law and r["split"] == split)


def test_few_step_models_in_the_public_data(fewstep):
    assert "black-forest-labs/FLUX.1-schnell" in fewstep["missing"]
    assert {d["model"] for d in fewstep["detail"]} == {"ByteDance/AnimateDiff-Lightning", "stabilityai/sdxl-turbo"}


def test_the_overhead_carries_sdxl_turbo(fewstep):
    """sdxl-turbo (ML.ENERGY, 25 steps CFG on, batch 1-64, A100 + H100), model left out: 18.3 % with the
    per-step overhead on the 202-setting data (16.8 % on the 156 settings before the 11 new models'
    rows resolved), about 27 % without."""
    with_o = _row(fewstep, "stabilityai/sdxl-turbo", "hw-fit+flatstep (per step, flat)")
    without = _row(fewstep, "stabilityai/sdxl-turbo", "hw-fit (no overhead)")
    assert with_o["mape"] <= 0.20
    assert with_o["mape"] < without["mape"] - 0.05


def test_animatediff_lightning_as_achieved(fewstep):
    """AnimateDiff-Lightning (4 steps, no CFG, H100), model left out: 16.8 % with the per-step overhead,
    9.6 % without, 3.1 % with a per-call overhead: its miss is not a per-step cost (documented)."""
    with_o = _row(fewstep, "ByteDance/AnimateDiff-Lightning", "hw-fit+flatstep (per step, flat)")
    e0 = _row(fewstep, "ByteDance/AnimateDiff-Lightning", "hw-fit+E0 (per call)")
    assert with_o["n"] == 1
    assert with_o["mape"] <= 0.20
    assert e0["mape"] <= 0.05


def test_overheads_win_on_every_setting_and_on_few_steps(fewstep):
    overall = {(o["law"], o["split"]): o["mape"] for o in fewstep["overall"]}
    assert overall[("hw-fit+flatstep (per step, flat)", "model_out")] < overall[("hw-fit (no overhead)", "model_out")]
    few = [c for c in dict.fromkeys(r["case"] for r in fewstep["rows"]) if c.startswith("every")][0]
    assert _row(fewstep, few, "hw-fit+flatstep (per step, flat)")["mape"] < \
        _row(fewstep, few, "hw-fit (no overhead)")["mape"]


# -- predict --baseline ----------------------------------------------------------------------------

def test_predict_baseline_prints_both_and_the_ratio(capsys):
    assert main(["predict", "-m", "flux-dev", "--gpu", "h100", "--precision", "fp8", "--steps", "20",
                 "--batch", "8", "--baseline"]) == 0
    out = capsys.readouterr().out
    assert "what-if against the baseline" in out
    assert "fp8, 20 steps, batch 8, full attention" in out
    assert "bf16, 28 steps, batch 1, full attention" in out
    assert "ratio      energy" in out
    # the usual output comes first, unchanged
    assert out.startswith("model      black-forest-labs/FLUX.1-dev")


def test_predict_baseline_json_ratio_is_per_output(capsys):
    assert main(["predict", "-m", "sd2.1", "--gpu", "a100", "--batch", "4", "--baseline", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    c = d["whatif_vs_baseline"]
    assert d["baseline"]["setting"]["batch_size"] == 1 and d["baseline"]["precision"] == "bf16"
    assert c["energy_per_output_j"] == pytest.approx(d["energy_j"] / 4)
    assert c["energy_ratio"] == pytest.approx(c["energy_per_output_j"] / c["baseline_energy_per_output_j"])
    assert c["energy_ratio"] < 1
    lo, hi = c["baseline_energy_per_output_interval_j"]
    assert lo < c["baseline_energy_per_output_j"] < hi


def test_predict_without_baseline_is_unchanged(capsys):
    assert main(["predict", "-m", "sd2.1", "--gpu", "a100"]) == 0
    assert "baseline" not in capsys.readouterr().out
    assert np.isfinite(predict("sd2.1", gpu="a100").energy_j)


# -- the flat per-step overhead (overhead_scale="none") --------------------------------------------

def test_flat_step_law_evaluates_the_same_in_numpy_and_recovers_its_overhead():
    """The shipped form E = H a C^b + s N: the numpy path (fits.law_file) equals the estimator, intervals
    included, and a synthetic flat overhead is recovered on three GPUs."""
    from sklearn.base import clone

    from fits.default_law import law_document
    from fits.features import hardware_vector, prior_exponents
    from fits.law_file import Law
    from fits.uncertainty import prediction_interval
    from fits.validation import candidate_laws
    from scaling.hardware import resolve_gpu

    rng = np.random.default_rng(0)
    n = 60
    gpus = [("h100", "bf16"), ("a100-sxm4-40gb", "fp16"), ("a40", "fp32")]
    flop = np.geomspace(1e13, 1e17, n)
    steps = rng.choice([4, 10, 25, 50, 100], size=n).astype(float)
    hw = np.vstack([hardware_vector(*gpus[i % 3]) for i in range(n)])
    X = np.column_stack([flop, steps, hw])
    H = np.exp(np.log(hw) @ np.asarray(prior_exponents("memory")))
    y = (H / H.mean() * 3e-12 * flop ** 0.95 + 4.0 * steps) * np.exp(rng.normal(0, 0.02, n))
    law = clone(candidate_laws()["hw-fit+flatstep"]).fit(X, y)
    assert law.overhead_scale == "none"
    assert law.s_ == pytest.approx(4.0, rel=0.25)
    import pandas as pd

    settings = pd.DataFrame({"gpu_key": ["x"] * n, "precision": ["fp16"] * n, "model": ["m"] * n,
                             "flop": flop, "steps": steps})
    doc = json.loads(json.dumps(law_document(law, law, form="hw-fit+flatstep", name="t", description="", X=X, y=y,
                                             X_time=X, y_time=y, settings=settings)))
    assert "not scaled" in doc["model"]["equation"]
    shipped = Law(doc)
    mean, lo, hi = prediction_interval(law, X[:9])
    for i in range(9):
        gpu, prec = gpus[i % 3]
        out = shipped.predict_energy({"denoiser": X[i, 0]}, resolve_gpu(gpu), prec, steps=int(X[i, 1]))
        assert out["total"].as_tuple() == pytest.approx((mean[i], lo[i], hi[i]), rel=1e-9)
