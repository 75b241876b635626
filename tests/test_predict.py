"""`scaling predict`, `compare`, `plan` and the Python API on the shipped default law."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import scaling
from scaling.app.cli import main
from scaling.errors import DoesNotFitError, InvalidSettingError

ROOT = Path(__file__).resolve().parents[1]


def test_predict_the_readme_command(capsys):
    assert main(["predict", "--model", "wan2.1", "--frames", "81", "--res", "480p"]) == 0
    out = capsys.readouterr().out
    for needle in ("Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "h100-sxm", "bf16", "law", "text_encoder", "denoiser",
                   "decoder", "total", "90% interval", "CO2e", "estimates", "the default; choose with --gpu"):
        assert needle in out, needle


def test_python_api_returns_a_typed_estimate_with_consistent_parts():
    est = scaling.predict("wan2.1", frames=81, res="480p", gpu="a100", region="FR", count=100_000)
    assert isinstance(est, scaling.Estimate)
    assert est.model_id == "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" and est.gpu == "a100-sxm4-40gb"
    assert est.energy_lo_j < est.energy_j < est.energy_hi_j
    assert sum(c.energy_j for c in est.components) == pytest.approx(est.energy_j, rel=0.05)
    assert {c.role for c in est.components} == {"text_encoder", "denoiser", "decoder"}
    assert est.fleet_kwh == pytest.approx(est.energy_j * 100_000 / 3.6e6)
    assert est.fleet_gpu_hours == pytest.approx(est.time_s * 100_000 / 3600)
    assert est.intensity_source.startswith("CodeCarbon") and est.intensity_g_per_kwh < 200  # France is low-carbon
    assert est.co2e_g == pytest.approx(est.energy_j / 3.6e6 * est.intensity_g_per_kwh)


def test_energy_grows_with_work():
    base = scaling.predict("wan2.1", frames=81, res="480p")
    assert scaling.predict("wan2.1", frames=81, res="720p").energy_j > base.energy_j
    assert scaling.predict("wan2.1", frames=41, res="480p").energy_j < base.energy_j
    assert scaling.predict("wan2.1", frames=81, res="480p", steps=25).energy_j < base.energy_j
    assert scaling.predict("wan2.1", frames=81, res="480p", cfg=False).energy_j < base.energy_j


def test_pue_and_intensity():
    a = scaling.predict("sd2.1", intensity=100.0)
    b = scaling.predict("sd2.1", intensity=100.0, pue=1.5)
    assert b.co2e_g == pytest.approx(1.5 * a.co2e_g)
    assert a.intensity_source == "user"


def test_json_output(capsys):
    assert main(["predict", "-m", "audioldm2", "--seconds", "20", "--gpu", "a40", "--count", "1000", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["estimate"] is True and data["count"] == 1000
    assert {c["role"] for c in data["components"]} >= {"text_encoder", "denoiser", "decoder", "vocoder"}
    assert data["fleet_kwh"] > 0


def test_fleet_line(capsys):
    assert main(["predict", "-m", "flux-dev", "--count", "1000000", "--region", "DE"]) == 0
    out = capsys.readouterr().out
    assert "1,000,000" in out and "GPU-hours" in out and "kg CO2e" in out


def test_count_counts_outputs_and_the_json_carries_per_output_and_per_call_figures():
    one = scaling.predict("sd2.1", gpu="h100", intensity=100.0, count=1000)
    four = scaling.predict("sd2.1", gpu="h100", intensity=100.0, batch_size=2, outputs_per_prompt=2, count=1000)
    assert four.n_outputs == 4
    assert four.energy_per_output_j == pytest.approx(four.energy_j / 4)
    assert (four.energy_per_output_lo_j, four.energy_per_output_hi_j) == pytest.approx(
        (four.energy_lo_j / 4, four.energy_hi_j / 4))
    assert four.time_per_output_s == pytest.approx(four.time_s / 4)
    assert four.co2e_per_output_g == pytest.approx(four.co2e_g / 4)
    # `count` is outputs: the fleet is per output x count, so 1000 outputs in batches of 4 are 250 calls
    assert four.fleet_calls == pytest.approx(250)
    assert four.fleet_kwh == pytest.approx(four.energy_j * 250 / 3.6e6)
    assert four.fleet_gpu_hours == pytest.approx(four.time_s * 250 / 3600)
    assert four.fleet_co2e_kg == pytest.approx(four.co2e_per_output_g)
    assert one.fleet_kwh == pytest.approx(one.energy_j * 1000 / 3.6e6)
    d = four.to_dict()
    json.dumps(d)
    for key in ("energy_per_output_j", "energy_per_output_lo_j", "energy_per_output_hi_j", "time_per_output_s",
                "co2e_per_output_g", "energy_per_call_j", "time_per_call_s", "co2e_per_call_g", "fleet_outputs",
                "fleet_calls", "n_outputs", "units"):
        assert key in d, key
    assert d["energy_per_call_j"] == d["energy_j"] == pytest.approx(4 * d["energy_per_output_j"])
    assert d["fleet_outputs"] == d["count"] == 1000


@pytest.mark.parametrize("argv,needle", [
    (["predict", "-m", "wan2.1", "--gpu", "tpu-v5"], "unknown GPU 'tpu-v5'"),
    (["predict", "-m", "wan2.1", "--region", "XX"], "`region` 'XX'"),
    (["predict", "-m", "wan2.1", "--count", "0"], "`count` 0"),
    (["predict", "-m", "wan2.1", "--pue", "0.5"], "`pue` 0.5"),
    (["predict", "-m", "wan2.1", "--intensity", "-3"], "`intensity` -3"),
    (["predict", "-m", "wan2.1", "--law", "/nonexistent/law.json"], "does not exist"),
])
def test_predict_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


def test_predict_corrupt_law_file(tmp_path, capsys):
    bad = tmp_path / "law.json"
    bad.write_text("{not json")
    assert main(["predict", "-m", "sd2.1", "--law", str(bad)]) == 2
    assert "law" in capsys.readouterr().err


def test_predict_is_fast_and_imports_no_torch():
    code = ("import sys, time; t = time.perf_counter(); from scaling.app.cli import main; "
            "main(['predict', '--model', 'wan2.1', '--frames', '81', '--res', '480p']); "
            "bad = [m for m in ('torch', 'diffusers', 'transformers', 'plotly') if m in sys.modules]; "
            "print('BAD', bad, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "BAD []" in out


def test_compare_ranks_by_energy_and_marks_unmeasured(capsys):
    rows = scaling.compare("sd2.1", gpus=["a100", "h100", "l4"])
    energies = [r.estimate.energy_j for r in rows]
    assert energies == sorted(energies)
    assert [r.estimate.gpu_measured for r in rows if r.estimate.gpu == "l4"] == [False]
    assert all(r.estimate.extrapolated for r in rows if not r.estimate.gpu_measured)
    assert main(["compare", "-m", "wan2.1", "--gpu", "a100,h100", "--steps-list", "20,50"]) == 0
    out = capsys.readouterr().out
    assert "20 steps" in out and "50 steps" in out and "a100-sxm4-40gb" in out


def test_compare_returns_a_comparison_with_a_frame_and_ranks_what_fits_first(capsys):
    rows = scaling.compare("flux-dev", gpus=["t4", "h100", "l4"])
    assert isinstance(rows, scaling.Comparison) and len(rows) == 3 and rows[0] is list(rows)[0]
    fits = [r.fits_memory for r in rows]
    assert fits == sorted(fits, reverse=True), "the rows that fit come first"
    assert [r.estimate.gpu for r in rows.fitting] == ["h100-sxm"]
    verdicts = {r.estimate.gpu: r.estimate.memory_fit for r in rows}
    assert verdicts == {"h100-sxm": "all resident", "l4": "with model CPU offload", "t4": "does not fit"}, \
        "FLUX.1-dev (12B) needs CPU offload on a 24 GiB L4 and does not fit a 16 GiB T4"
    assert [r.rank for r in rows if r.fits_memory] == list(range(1, sum(fits) + 1))
    assert all(r.rank is None for r in rows.not_fitting) and rows.best is rows[0]
    df = rows.to_frame()
    assert list(df.label) == [r.label for r in rows] and df["rank"].isna().tolist() == [not f for f in fits]
    t4 = df[df.gpu == "t4"].iloc[0]
    assert t4.memory_fit == "does not fit" and t4.memory_need_gib > t4.gpu_memory_gib
    l4 = df[df.gpu == "l4"].iloc[0]
    assert l4.memory_need_gib <= l4.gpu_memory_gib < l4.memory_resident_gib and l4.extrapolated
    assert "CPU offload is not modelled" in l4.extrapolation
    assert df.energy_per_output_j.tolist() == [r.estimate.energy_j for r in rows]  # batch 1
    assert main(["compare", "-m", "flux-dev", "--gpu", "t4,h100,l4"]) == 0
    out = capsys.readouterr().out
    ranked = [x.split()[0] for x in out.splitlines() if x[:1].isdigit()]
    assert ranked == ["1"], "neither the option that needs offload nor the one that does not fit is ranked"
    assert main(["compare", "-m", "flux-dev", "--gpu", "t4,h100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["rank"] for d in data] == [1, None] and data[1]["fits_memory"] is False


def test_compare_sd35_large_ranks_neither_the_t4_nor_the_offload_l4():
    """Issue 16: `scaling compare -m sd3.5-large --gpu h100,l4,t4` must not rank the T4, and the L4
    (CPU offload, not modelled) neither; compare and predict use one memory rule."""
    rows = scaling.compare("sd3.5-large", gpus=["h100", "l4", "t4"])
    assert [(r.estimate.gpu, r.rank) for r in rows.fitting] == [("h100-sxm", 1)]
    assert {r.estimate.gpu for r in rows.not_fitting} == {"l4", "t4"}
    for r in rows:
        if r.fits_memory:
            assert scaling.predict("sd3.5-large", gpu=r.estimate.gpu).energy_j == pytest.approx(r.estimate.energy_j)
        else:
            with pytest.raises(DoesNotFitError):
                scaling.predict("sd3.5-large", gpu=r.estimate.gpu)


def test_predict_refuses_a_gpu_the_model_does_not_fit_with_one_line():
    with pytest.raises(DoesNotFitError) as info:
        scaling.predict("sd3.5-large", gpu="t4")
    msg = str(info.value)
    assert "\n" not in msg and "stabilityai/stable-diffusion-3.5-large" in msg and "batch 1" in msg
    assert "bf16" in msg and "GPU t4" in msg and "which has 16 GiB" in msg and "rule:" in msg
    assert "even with model CPU offload" in msg
    with pytest.raises(DoesNotFitError, match="fits only with model CPU offload.*--allow-offload"):
        scaling.predict("sd3.5-large", gpu="l4")
    est = scaling.predict("sd3.5-large", gpu="l4", allow_offload=True)
    assert est.memory_fit == "with model CPU offload" and not est.fits_memory and est.extrapolated
    assert any("offload" in n and "not modelled" in n for n in est.notes)
    with pytest.raises(DoesNotFitError):  # offload allowed, but it does not fit even so
        scaling.predict("sd3.5-large", gpu="t4", allow_offload=True)
    assert isinstance(info.value, scaling.ScalingError) and isinstance(info.value, InvalidSettingError)
    assert main(["predict", "-m", "sd3.5-large", "--gpu", "t4"]) == 2


def test_batch_counts_against_memory():
    fits = scaling.predict("sdxl", gpu="l4", batch_size=1)
    assert fits.memory_fit == "all resident"
    with pytest.raises(DoesNotFitError, match="at batch 64"):
        scaling.predict("sdxl", gpu="l4", batch_size=64)
    big = scaling.predict("sdxl", gpu="l4", batch_size=64, check_memory=False)
    assert big.memory_resident_gib > fits.memory_resident_gib and big.memory_fit != "all resident"


def test_extrapolation_flags_are_said_in_text_and_json_and_widen_the_interval():
    inside = scaling.predict("wan2.1", gpu="h100", frames=81, res="480p")
    assert inside.gpu_measured and inside.precision_measured_on_gpu_class and inside.model_in_data
    assert inside.family_in_data and inside.flop_in_range and not inside.extrapolated
    assert inside.extrapolation == () and inside.interval_widened_by == ()
    new_gpu = scaling.predict("wan2.1", gpu="l40s", frames=81, res="480p")
    assert not new_gpu.gpu_measured and new_gpu.extrapolated and "gpu_out" in new_gpu.interval_widened_by
    assert any("l40s" in r and "never measured" in r for r in new_gpu.extrapolation)
    fp8 = scaling.predict("wan2.1", gpu="h100", precision="fp8", frames=81, res="480p")
    assert fp8.gpu_measured and not fp8.precision_measured_on_gpu_class and fp8.extrapolated
    a100_bf16 = scaling.predict("sd2.1", gpu="a100", precision="bf16")
    assert a100_bf16.precision_measured_on_gpu_class, "bf16 and fp16 are one class on an A100 (fp16 measured)"
    sd15 = scaling.predict("sd1.5", gpu="h100")
    assert not sd15.model_in_data and sd15.family_in_data and sd15.interval_widened_by == ("model_out",)
    flux = scaling.predict("flux-dev", gpu="h100")
    assert not flux.family_in_data and flux.interval_widened_by == ("family_out",)
    assert any("family flux" in r for r in flux.extrapolation)
    # the widening moves the bounds outwards and keeps the central value (log-space half-width grows)
    from fits.law_file import load_law

    doc = dict(load_law().document)
    doc.pop("residual_spread")
    plain = scaling.predict("flux-dev", gpu="h100", law=scaling.load_law().__class__(doc, "no-spread"))
    assert plain.energy_j == pytest.approx(flux.energy_j)
    assert flux.energy_lo_j < plain.energy_lo_j and flux.energy_hi_j > plain.energy_hi_j
    assert plain.interval_widened_by == () and any("no residual_spread" in n for n in plain.notes)
    d = flux.to_dict()
    for key in ("gpu_measured", "precision_measured_on_gpu_class", "flop_in_range", "family_in_data",
                "model_in_data", "extrapolated", "extrapolation", "interval_widened_by"):
        assert key in d, key
    assert d["extrapolated"] is True and json.loads(json.dumps(d))["extrapolation"] == list(flux.extrapolation)


def test_the_law_file_stores_the_out_of_split_spreads_and_checks_them():
    from fits.law_file import Law, load_law

    law = load_law()
    doc = law.document
    for target in ("energy", "time"):
        spread = doc["residual_spread"][target]
        assert set(spread) == {"gpu_out", "model_out", "family_out"}
        for split, rec in spread.items():
            assert rec["n"] > 0 and rec["folds"] >= 2 and rec["failed_folds"] == 0, (target, split)
            # held-out residuals spread wider than the in-sample ones: that is what widens the interval
            assert rec["sigma2"] > doc[target]["sigma2"], (target, split)
    pairs = {tuple(p) for p in doc["training"]["gpu_precisions"]}
    assert pairs and all(g in doc["training"]["gpus"] and p in doc["training"]["precisions"] for g, p in pairs)
    assert scaling.resolve_model("wan2.1").family in doc["training"]["families"]
    for bad in (-1.0, float("nan"), "x"):
        broken = json.loads(json.dumps(doc))
        broken["residual_spread"]["energy"]["gpu_out"]["sigma2"] = bad
        with pytest.raises(scaling.ScalingError, match="residual_spread.energy.gpu_out.sigma2") as info:
            Law(broken, "broken.json")
        assert "\n" not in str(info.value)
    old = json.loads(json.dumps(doc))  # a file written before the flags: no pairs, no families, no spread
    for key in ("gpu_precisions", "families"):
        old["training"].pop(key)
    old.pop("residual_spread")
    est = scaling.predict("flux-dev", gpu="h100", law=Law(old, "old.json"))
    assert not est.family_in_data and est.interval_widened_by == () and est.extrapolated


def test_a100_is_the_measured_board_and_the_output_says_so():
    est = scaling.predict("sd2.1", gpu="a100")
    assert est.gpu == "a100-sxm4-40gb" and est.gpu_measured
    assert any("`a100` resolves to" in n and "a100-80gb" in n for n in est.notes)
    assert not any("resolves to" in n for n in scaling.predict("sd2.1", gpu="a100-sxm4-40gb").notes)
    from scaling.app.planning import DEFAULT_GPUS

    assert scaling.resolve_gpu(DEFAULT_GPUS[0]).key == "a100-sxm4-40gb"
    assert "a100-sxm4-40gb" in {r.estimate.gpu for r in scaling.compare("sd2.1")}


def test_frame_columns_are_documented_and_per_output_divides_by_the_batch():
    from scaling.app.frames import COLUMNS

    grid = scaling.predict_grid(["sd2.1", "audioldm2"], gpus=["h100", "b200"], res=[512, 768], seconds=[5.0],
                                batch_size=2, outputs_per_prompt=2, precision=["bf16", "fp8"], regions=["FR", "US"],
                                count=10)
    assert isinstance(grid, scaling.PredictionGrid)
    assert len(grid) == 2 * 2 * 2 * 2 + 2 * 2 * 2, "res applies to sd2.1 only, seconds to audioldm2 only"
    df = grid.to_frame()
    assert set(df.columns) <= set(COLUMNS), sorted(set(df.columns) - set(COLUMNS))
    assert (df.n_outputs == 4).all()
    for e, r in zip(grid.estimates, df.itertuples()):
        assert r.energy_per_output_j == pytest.approx(e.energy_j / 4)
        assert r.energy_per_output_lo_j == pytest.approx(e.energy_lo_j / 4)
        assert r.time_per_output_s == pytest.approx(e.time_s / 4)
        assert r.co2e_per_output_g == pytest.approx(e.co2e_g / 4)
        assert r.kwh == pytest.approx(e.fleet_kwh) and r.outputs == 10, "count is outputs"
        assert r.kwh == pytest.approx(e.energy_per_output_j * 10 / 3.6e6)
    assert set(df[df.model_key == "audioldm2"].res.isna()) == {True}
    assert set(df.region) == {"FR", "US"}
    us, fr = df[df.region == "US"], df[df.region == "FR"]
    assert (us.co2e_kg.to_numpy() > fr.co2e_kg.to_numpy()).all()
    assert (df[df.gpu == "b200-sxm"].extrapolated).all(), "a GPU never measured is extrapolated"
    h100 = df[(df.gpu == "h100-sxm") & (df.model_key == "sd2.1")]
    assert h100.gpu_measured.all()
    assert set(h100[h100.precision == "fp8"].extrapolated) == {True}, "fp8 lies outside the law's data"
    with pytest.raises(scaling.ScalingError, match="grid axis `colour`"):
        scaling.predict_grid("sd2.1", colour=["red"])
    with pytest.raises(scaling.ScalingError, match="`frames` 80"):
        scaling.predict_grid("wan2.1", gpus=["h100"], frames=[80])


def test_profile_to_frame_sums_to_the_profile():
    prof = scaling.profile(scaling.make_setting("wan2.1", res="480p", frames=81))
    df = prof.to_frame()
    assert df.flop.sum() == pytest.approx(prof.total_flop)
    assert df[[c for c in df.columns if c.endswith("_flop") and c != "per_call_flop"]].sum(axis=1).tolist() == \
        pytest.approx(df.flop.tolist())
    assert set(df.role) == set(prof.by_role())


def test_profile_frame_columns_are_documented():
    from scaling.app.frames import COLUMNS

    for model in ("sdxl", "wan2.1", "audioldm2"):  # image, video, audio (with labelled sub-calls)
        df = scaling.profile(scaling.make_setting(model)).to_frame()
        assert set(df.columns) <= set(COLUMNS), (model, sorted(set(df.columns) - set(COLUMNS)))


def _workload(tmp_path, text):
    p = tmp_path / "workload.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_plan_totals_and_pareto(tmp_path, capsys):
    p = _workload(tmp_path, """\
        jobs:
          - model: wan2.1
            res: 480p
            frames: 81
            count: 100000
          - model: flux-schnell
            count: 1e6
        gpus: [h100, a100, l40s]
        regions: [FR, US]
        pue: 1.2
        """)
    res = scaling.plan(p)
    assert len(res.candidates) == 6
    kwh = [c["kwh"] for c in res.candidates]
    assert kwh == sorted(kwh)
    one = scaling.predict("wan2.1", res="480p", frames=81, gpu="h100", pue=1.2, count=100000)
    two = scaling.predict("flux-schnell", gpu="h100", pue=1.2, count=1_000_000)
    h100_fr = next(c for c in res.candidates if c["gpu"] == "h100-sxm" and c["region"] == "FR")
    assert h100_fr["kwh"] == pytest.approx(one.fleet_kwh + two.fleet_kwh)
    assert h100_fr["outputs"] == 100_000 + 1_000_000
    assert res.pareto
    # Pareto over (kWh, GPU-hours, CO2e): the same GPU in the US (dirtier grid, same kWh and hours)
    # is dominated by it in France, so no GPU is on the front in both regions
    for gpu in {c["gpu"] for c in res.candidates}:
        us, fr = (next(c for c in res.candidates if c["gpu"] == gpu and c["region"] == r) for r in ("US", "FR"))
        assert us["kwh"] == pytest.approx(fr["kwh"]) and us["co2e_kg"] > fr["co2e_kg"]
        assert not us["pareto"], gpu
    assert all(c["region"] == "FR" for c in res.candidates if c["pareto"])
    assert [c["option"] for c in res.candidates if c["pareto"]] == [o for o in (c["option"] for c in res.candidates)
                                                                    if o in res.pareto]
    # the per-job breakdown carries the per-output and the per-job figures
    jobs = res.jobs_frame()
    assert len(jobs) == 2 * len(res.candidates)
    for col in ("energy_per_output_j", "time_per_output_s", "co2e_per_output_g", "kwh", "gpu_hours", "co2e_kg",
                "count", "calls", "extrapolated", "memory_fit"):
        assert col in jobs.columns, col
    assert main(["plan", str(p)]) == 0
    assert "GPU-hours" in capsys.readouterr().out


def test_plan_frames_options_and_what_does_not_fit(tmp_path, capsys):
    from scaling.app.frames import COLUMNS

    p = _workload(tmp_path, """\
        jobs:
          - name: hero
            model: wan2.1-14b
            res: 720p
            frames: 81
            count: 100
          - model: flux-schnell
            count: 1000
        gpus: [h100, l4]
        regions: [FR]
        """)
    res = scaling.plan(p, precisions=["bf16", "fp8"], step_scales=[1.0, 0.5])
    assert len(res.candidates) == 2 * 2 * 2
    df, jobs = res.to_frame(), res.jobs_frame()
    assert set(df.columns) <= set(COLUMNS) and set(jobs.columns) <= set(COLUMNS)
    assert len(jobs) == 2 * len(df)
    assert df.fits_memory.tolist() == sorted(df.fits_memory, reverse=True), "options that fit come first"
    l4 = df[df.gpu == "l4"]
    assert not l4.fits_memory.any() and l4["rank"].isna().all()
    assert {j.split("; ")[0] for j in l4.jobs_not_fitting} == {"hero"}, "Wan2.1-14B at 720p does not fit an L4"
    needs = dict(zip(l4.precision, l4.jobs_needing_offload))
    assert "FLUX.1-schnell" in needs["bf16"] and "FLUX.1-schnell" not in needs["fp8"], \
        "FLUX.1-schnell needs CPU offload on an L4 in bf16, and fits resident in fp8"
    assert not any(o.startswith("l4") for o in res.pareto), "the Pareto set is taken over options that fit"
    fitting = df[df.fits_memory]
    assert fitting.kwh.is_monotonic_increasing and fitting["rank"].tolist() == list(range(1, len(fitting) + 1))
    for row in df.itertuples():
        mine = jobs[jobs.option == row.option]
        assert row.kwh == pytest.approx(mine.kwh.sum()) and row.kwh_lo == pytest.approx(mine.kwh_lo.sum())
        assert row.co2e_kg_hi == pytest.approx(mine.co2e_kg_hi.sum())
        assert row.kwh_lo < row.kwh < row.kwh_hi and row.gpu_hours_lo < row.gpu_hours < row.gpu_hours_hi
    half = jobs[(jobs.steps_scale == 0.5) & (jobs.model_key == "wan2.1-t2v-14b")]
    assert set(half.steps) == {25}, "steps scale 0.5 halves the model's default 50 steps"
    assert set(jobs[jobs.option.str.contains("fp8")].precision) == {"fp8"}
    assert main(["plan", str(p), "--precisions", "bf16,fp8", "--steps-scale", "1,0.5"]) == 0
    out = capsys.readouterr().out
    assert "not ranked" in out and "l4 bf16 x1 steps@FR" in out
    with pytest.raises(scaling.ScalingError, match="steps scale"):
        scaling.plan(p, step_scales=[0])


@pytest.mark.parametrize("text,needle", [
    ("jobs:\n  - model: wan2.1\n    count: 10\n  - model: wan2.1\n    frames: 80\n", "workload.yaml:4: job 2: `frames` 80"),
    ("jobs:\n  - model: nope\n", "workload.yaml:2: job 1: unknown model 'nope'"),
    ("jobs:\n  - model: sd2.1\n    count: -1\n", "workload.yaml:3: job 1: `count` is -1"),
    ("jobs:\n  - model: sd2.1\n    colour: red\n", "unknown key `colour`"),
    ("jobs: []\n", "`jobs` is []; rule: a non-empty list"),
    ("gpus: [h100]\njobs:\n  - model: sd2.1\nextra: 1\n", "workload.yaml:4: unknown key `extra`"),
    ("jobs:\n  - model: sd2.1\n  bad indent\n", "workload.yaml:4: not valid YAML"),
])
def test_plan_bad_workload_has_line_numbers(tmp_path, text, needle, capsys):
    p = _workload(tmp_path, text)
    assert main(["plan", str(p)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
