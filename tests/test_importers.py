"""Importers (the scaling/app/importers/ package) and `scaling data` on the real public files.

The public files are read from datasets/public (the `public_data` fixture fails, not
skips, when they are missing): they are part of the repository.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from scaling.app.cli import main
from scaling.app.curate import ENERGY_FILES, curate
from scaling.app.importers import (
    KWH_TO_J,
    POLICIES,
    annotate_flops,
    generated_frames,
    import_codecarbon,
    import_public,
    import_quality,
    resolve_policy,
)
from scaling.app.importers import flops as importer_flops
from scaling.errors import DataError, ProfilerError
from scaling.registry import resolve_model
from scaling.runs import has_flag, read_metadata, read_runs, validate_runs

FILES = {  # file -> (rows in the file, per PROVENANCE.md; rows kept under the default policies)
    "video_killed_energy_budget.csv": (518, 469),
    "benchlab_t2v.csv": (102, 92),
    "diffused_responsibility_t2a.csv": (26040, 26026),
    "leybzon_sd35_quantization.csv": (32, 32),
    "ml_energy_leaderboard_v2.csv": (118, 118),
}
WAN13 = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
WAN14 = "Wan-AI/Wan2.1-T2V-14B-Diffusers"
LTX = "Lightricks/LTX-Video-0.9.7-dev"


@pytest.fixture(scope="module")
def imported(public_data):
    return {name: import_public(public_data / name) for name in FILES}


def _raw(public_data, name):
    return pd.read_csv(public_data / name)


# -- the real files --------------------------------------------------------------------------

@pytest.mark.parametrize("name", FILES)
def test_every_public_file_imports_with_the_documented_row_counts(imported, name):
    result = imported[name]
    read, kept = FILES[name]
    assert result.report.rows_read == read and result.report.rows_kept == kept == len(result.runs)
    excluded = sum(e["rows"] for e in result.report.policies.values() if e["action"] == "exclude")
    assert read - kept == excluded  # nothing disappears without a policy that says so
    validate_runs(result.runs, name)
    assert result.runs["run_id"].str.startswith(result.runs["source"].iloc[0] + ":").all()
    assert "rows read" in result.report.to_text()


def test_quality_file_imports_as_a_tidy_table(public_data):
    q = import_quality(public_data / "diffused_responsibility_quality.csv")
    assert len(q) == 168
    assert set(q["metric"]) == {"clap", "fad"} and set(q["dataset"]) == {"audiocaps", "clotho"}
    assert q.groupby(["model", "dataset", "steps", "metric"]).size().max() == 1
    maa = q[q["model"].str.contains("Make-An-Audio") & (q["requested_steps"] == 150)]
    assert len(maa) == 8 and (maa["steps"] == 167).all() and (maa["flags"] == "steps_corrected").all()
    assert q["value"].notna().all()
    # it joins with the energy runs on model and steps, Make-An-Audio 167 included
    with pytest.raises(DataError, match="quality-metrics table"):
        import_public(public_data / "diffused_responsibility_quality.csv")


def test_quality_joins_runs_on_model_and_steps(public_data, imported):
    q = import_quality(public_data / "diffused_responsibility_quality.csv")
    runs = imported["diffused_responsibility_t2a.csv"].runs
    qm = runs[runs["notes"].str.contains("experiment=quality_metrics")]
    energy = qm.groupby(["model", "steps"], as_index=False)["energy_gpu_j"].mean()
    joined = q.merge(energy, on=["model", "steps"], how="left")
    assert joined["energy_gpu_j"].notna().all()


def test_wan_metadata_conflict_is_corrected_to_the_likely_true_values(imported, public_data):
    runs = imported["video_killed_energy_budget.csv"].runs
    cross = runs[runs["model"].isin([WAN13, WAN14]) & runs["notes"].str.contains("experiment=cross_model")]
    assert len(cross) == 90
    assert (cross["height"] == 720).all() and (cross["width"] == 1280).all() and (cross["steps"] == 50).all()
    assert has_flag(cross, "metadata_corrected").all()
    assert cross["notes"].str.contains("published height=480 width=832 steps=60").all()
    raw = _raw(public_data, "video_killed_energy_budget.csv")
    assert set(raw.loc[raw["notes"].str.contains("METADATA_CONFLICT"), "steps"]) == {60}

    bench = imported["benchlab_t2v.csv"].runs
    wan = bench[bench["model"].isin([WAN13, WAN14])]
    assert len(wan) == 22 and (wan["steps"] == 50).all() and has_flag(wan, "metadata_corrected").all()
    # benchlab really ran 480x832 (and the two exp4_ WAN-14B rows 720x1280 and 480x832): unchanged
    assert sorted(set(zip(wan["height"], wan["width"]))) == [(480, 832), (720, 1280)]
    assert (wan.loc[wan["model"] == WAN13, "height"] == 480).all()


def test_metadata_conflict_mark_keeps_the_published_values(public_data):
    r = import_public(public_data / "video_killed_energy_budget.csv", {"metadata_conflict": "mark"})
    wan = r.runs[r.runs["notes"].str.contains("METADATA_CONFLICT")]
    assert len(wan) == 90 and (wan["steps"] == 60).all() and (wan["height"] == 480).all()
    assert has_flag(wan, "metadata_conflict").all() and not has_flag(wan, "metadata_corrected").any()


def test_suspect_ltx_upsample_rows_are_excluded(imported, public_data):
    for name, n in (("video_killed_energy_budget.csv", 49), ("benchlab_t2v.csv", 10)):
        r = imported[name]
        assert r.report.policies["suspect"] == {"action": "exclude", "rows": n}
        assert "upsample" not in set(r.runs["phase"])
        assert not r.runs["notes"].str.contains("SUSPECT").any()
    kept = import_public(public_data / "benchlab_t2v.csv", {"suspect": "mark"}).runs
    assert has_flag(kept, "suspect").sum() == 10 and set(kept.loc[has_flag(kept, "suspect"), "phase"]) == {"upsample"}


def test_ltx_phases_are_kept_and_totals_are_their_sum(public_data, imported):
    r = import_public(public_data / "video_killed_energy_budget.csv", {"suspect": "mark"}).runs
    ltx = r[r["model"] == LTX]
    assert (ltx["model_key"] == "ltx-video-0.9.7-dev").all()  # registered for issue 12 (the two-pass recipe)
    assert ltx.groupby("run_id")["phase"].apply(sorted).map(tuple).unique().tolist() == [
        ("denoise", "generate", "total", "upsample")]
    stages = ltx[ltx["phase"] != "total"].groupby("run_id")["energy_gpu_j"].sum()
    total = ltx[ltx["phase"] == "total"].set_index("run_id")["energy_gpu_j"]
    np.testing.assert_allclose(stages.sort_index(), total.sort_index(), rtol=1e-6)
    assert has_flag(ltx[ltx["phase"] == "total"], "sum_of_phases").all()
    assert not has_flag(ltx[ltx["phase"] != "total"], "sum_of_phases").any()
    # default import: stages kept, upsample excluded
    d = imported["video_killed_energy_budget.csv"].runs
    assert d.loc[d["model"] == LTX, "phase"].value_counts().to_dict() == {"generate": 49, "denoise": 49, "total": 49}
    only_totals = import_public(public_data / "benchlab_t2v.csv", {"stage_phases": "exclude"}).runs
    assert set(only_totals["phase"]) == {"total"}


def test_first_calls_are_excluded_by_default_or_kept_and_marked(imported, public_data):
    r = imported["diffused_responsibility_t2a.csv"]
    assert r.report.policies["first_call"] == {"action": "exclude", "rows": 14}
    assert not r.runs["notes"].str.contains("FIRST call").any()
    marked = import_public(public_data / "diffused_responsibility_t2a.csv", {"first_call": "mark"})
    assert len(marked.runs) == 26040 and has_flag(marked.runs, "first_call").sum() == 14
    assert (marked.runs.loc[has_flag(marked.runs, "first_call"), "warmup"] == 0).all()


def test_cpu_offload_rows_are_kept_and_marked(imported):
    vk = imported["video_killed_energy_budget.csv"].runs
    off = has_flag(vk, "cpu_offload")
    assert off.sum() == 147
    assert set(vk.loc[off, "model"]) == {"THUDM/CogVideoX-2b", "THUDM/CogVideoX-5b", "genmo/mochi-1-preview"}
    assert has_flag(imported["benchlab_t2v.csv"].runs, "cpu_offload").sum() == 30
    assert has_flag(imported["leybzon_sd35_quantization.csv"].runs, "cpu_offload").all()
    assert not has_flag(imported["ml_energy_leaderboard_v2.csv"].runs, "cpu_offload").any()


def test_make_an_audio_150_steps_become_167(imported, public_data):
    runs = imported["diffused_responsibility_t2a.csv"].runs
    maa = runs[runs["model"].str.contains("Make-An-Audio")]
    assert 150 not in set(maa["steps"]) and (maa["steps"] == 167).sum() == 1210
    fixed = maa[maa["steps"] == 167]
    assert has_flag(fixed, "steps_corrected").all() and fixed["notes"].str.contains("requested steps=150").all()
    other = runs[~runs["model"].str.contains("Make-An-Audio")]
    assert 150 in set(other["steps"]) and not has_flag(other, "steps_corrected").any()
    keep = import_public(public_data / "diffused_responsibility_t2a.csv", {"ddim_steps": "mark"}).runs
    assert (keep.loc[has_flag(keep, "ddim_steps"), "steps"] == 150).all()


def test_n_repeats_and_warmup_follow_the_run_scripts(imported):
    vk = imported["video_killed_energy_budget.csv"].runs
    exp = vk["notes"].str.extract(r"experiment=(\w+)")[0]
    for name, runs in (("wan_resolution_sweep", 2), ("wan_frames_sweep", 2), ("wan_steps_sweep", 3)):
        rows = vk[exp == name]
        assert (rows["n_repeats"] == runs).all() and (rows["warmup"] == 1).all(), name
        assert has_flag(rows, "n_repeats_corrected").all()
    cross = vk[exp == "cross_model"]
    assert (cross["n_repeats"] == 5).all() and (cross["warmup"] == 2).all()
    bench = imported["benchlab_t2v.csv"].runs
    assert has_flag(bench, "n_repeats_corrected").sum() == 2
    ml = imported["ml_energy_leaderboard_v2.csv"].runs
    assert set(ml["n_repeats"]) == {8, 10} and ml["warmup"].notna().all()


def test_wan_frames_store_what_the_pipeline_generates(imported, public_data):
    vk = imported["video_killed_energy_budget.csv"].runs
    wan = vk[vk["model"] == WAN13]
    assert ((wan["frames"] - 1) % 4 == 0).all()
    snapped = wan[has_flag(wan, "frames_snapped")]
    assert len(snapped) == 21
    requested = snapped["notes"].str.extract(r"requested frames=(\d+)")[0].astype(int)
    assert (snapped["frames"].to_numpy() == requested.to_numpy() // 4 * 4 + 1).all()
    assert {50, 2, 92} <= set(requested)
    raw = _raw(public_data, "video_killed_energy_budget.csv")
    assert 50 in set(raw.loc[raw["model"] == WAN13, "frames"])
    spec = resolve_model("wan2.1")
    assert [generated_frames(spec, f) for f in (81, 50, 2, 92, 1)] == [81, 49, 1, 93, 1]
    mochi = resolve_model("genmo/mochi-1-preview")  # latent frames (84 - 1) // 6 + 1 = 14 = those of 79
    assert generated_frames(mochi, 84) == 79


def test_batch_rows_keep_energy_per_call(imported, public_data):
    ml = imported["ml_energy_leaderboard_v2.csv"].runs
    raw = _raw(public_data, "ml_energy_leaderboard_v2.csv")
    assert imported["ml_energy_leaderboard_v2.csv"].report.policies["batch"] == {"action": "keep", "rows": 92}
    np.testing.assert_array_equal(ml["energy_gpu_j"].to_numpy(), raw["energy_gpu_j"].to_numpy())
    assert (ml["batch_size"].to_numpy() == raw["batch_size"].to_numpy()).all()


def test_unresolved_models_and_gpus_are_kept_and_reported(imported):
    vk = imported["video_killed_energy_budget.csv"]
    assert vk.report.unresolved_models == {}  # LTX-Video 0.9.7 resolves since issue 12
    t2a = imported["diffused_responsibility_t2a.csv"]
    assert t2a.report.unresolved_models == {"Text-to-Audio/Make-An-Audio": 3718, "bytedance/Make-An-Audio-2": 3718}
    ml = imported["ml_energy_leaderboard_v2.csv"]
    # SSD-1B, SD3-medium and (issue 12) Kandinsky 2.2 / 3, SVD / SVD-XT, I2VGen-XL, ModelScope T2V are
    # registered architectures beyond the founding configs: every ML.ENERGY v2 model resolves
    assert ml.report.unresolved_models == {} and ml.runs["model_key"].notna().all()
    ley = imported["leybzon_sd35_quantization.csv"]
    assert ley.report.unresolved_gpus == {"(not stated)": 32} and ley.runs["gpu_key"].isna().all()
    assert (ley.runs["model_key"] == "sd3.5-large").all()
    assert ml.report.models["kandinsky-community/kandinsky-2-2-decoder"]["model_key"] == "kandinsky-2.2"
    text = t2a.report.to_text()
    assert "unresolved models" in text and "bytedance/Make-An-Audio-2: 3718 rows" in text
    keys = dict(zip(vk.runs["model"], vk.runs["model_key"]))
    assert keys[WAN13] == "wan2.1-t2v-1.3b" and set(vk.runs["gpu_key"]) == {"h100-sxm"}
    assert t2a.report.models["cvssp/audioldm2"] == {"model_key": "audioldm2", "rows": 3718, "settings": 9}


def test_cfg_follows_guidance_and_the_variant_default(imported):
    vk = imported["video_killed_energy_budget.csv"].runs
    cfg = vk.groupby("model")["cfg"].first()
    assert cfg["ByteDance/AnimateDiff-Lightning"] == False  # noqa: E712  guidance 1.0
    assert cfg[WAN13] == True and cfg["genmo/mochi-1-preview"] == True  # noqa: E712
    assert cfg[LTX] == True  # noqa: E712  LTXConditionPipeline's default guidance 3.0
    ml = imported["ml_energy_leaderboard_v2.csv"].runs
    # guidance unset in the source: the pipeline's own default (StableDiffusionXLPipeline 5.0) ran,
    # not the model card's 0.0 (the latency agrees: see fits.validation.CORRECTIONS)
    assert ml.loc[ml["model"] == "stabilityai/sdxl-turbo", "cfg"].all()


def test_policies_are_documented_and_overridable():
    for p in POLICIES.values():
        assert p.action in p.actions and p.reason and p.detects
        for action in p.actions:
            if action in ("correct", "mark"):
                assert action in p.marks or p.name == "batch"
    assert resolve_policy({"first_call": "mark"})["first_call"] == "mark"
    with pytest.raises(DataError, match="policy 'nope' is unknown"):
        resolve_policy({"nope": "mark"})
    with pytest.raises(DataError, match="suspect='correct' is not allowed"):
        resolve_policy({"suspect": "correct"})


# -- FLOP annotation -------------------------------------------------------------------------

def test_annotate_flops_writes_the_flop_of_each_phase(imported):
    vk = imported["video_killed_energy_budget.csv"].runs
    wan = vk[vk["model"] == WAN13].head(3).copy()
    phases = pd.concat([wan.head(1).assign(phase=p, run_id="x") for p in ("text_encoder", "denoiser", "decoder")])
    rows = pd.concat([wan, phases, vk[vk["model"] == LTX].head(2)], ignore_index=True)
    out = annotate_flops(rows)
    w = out[out["model"] == WAN13]
    parts = w[["flop_text_encoder", "flop_denoiser", "flop_decoder"]].sum(axis=1)
    tot = w[w["phase"] == "total"]
    np.testing.assert_allclose(tot["flop"], parts[tot.index], rtol=1e-12)
    assert (tot["flop"] > 1e16).all() and (w["flop_vocoder"] == 0).all() and w["flop_error"].isna().all()
    for p in ("text_encoder", "denoiser", "decoder"):
        row = w[(w["run_id"] == "x") & (w["phase"] == p)].iloc[0]
        assert row["flop"] == row[f"flop_{p}"] > 0
    ltx = out[out["model"] == LTX]
    assert ltx["flop"].isna().all() and ltx["flop_error"].str.contains("pipeline stage").all()  # stage rows
    # 720x1280 81 frames costs more than 480x832: the corrected setting is the one profiled
    small = annotate_flops(wan.head(1).assign(height=480, width=832))
    assert small["flop"].iloc[0] < out["flop"].iloc[0]


def test_annotate_flops_reports_missing_tables_and_bad_settings_without_dropping(imported, monkeypatch):
    real = importer_flops.profile
    calls = []

    def fake(setting, method="closed-form", spec=None):
        calls.append(setting)
        if setting.model == "audioldm2":
            raise ProfilerError("no closed-form FLOP table for 'audioldm2'")
        return real(setting, method, spec)

    monkeypatch.setattr(importer_flops, "profile", fake)
    t2a = imported["diffused_responsibility_t2a.csv"].runs
    out = annotate_flops(t2a)
    assert len(out) == len(t2a)
    settings = t2a[t2a["model_key"].notna()].drop_duplicates(
        ["model_key", "steps", "audio_seconds", "batch_size", "precision", "guidance_scale", "cfg"])
    assert len(calls) == len(settings) < 100  # one profile per distinct setting, not per row
    a2 = out[out["model"] == "cvssp/audioldm2"]
    assert a2["flop"].isna().all() and a2["flop_error"].str.contains("ProfilerError: no closed-form").all()
    assert (out.loc[out["model_key"].isna(), "flop_error"] == "model not registered").all()
    bad = imported["video_killed_energy_budget.csv"].runs
    bad = bad[bad["model"] == WAN13].head(1).assign(height=500)
    err = annotate_flops(bad)["flop_error"].iloc[0]
    assert err.startswith("InvalidSettingError") and "multiple of" in err


def test_annotate_flops_lets_a_bug_propagate_instead_of_writing_it_as_data(imported, monkeypatch):
    # only the toolkit's own errors mean "this setting cannot be profiled"; a TypeError is a bug
    def broken(setting, method="closed-form", spec=None):
        raise TypeError("unsupported operand type(s) for *: 'NoneType' and 'int'")

    monkeypatch.setattr(importer_flops, "profile", broken)
    runs = imported["leybzon_sd35_quantization.csv"].runs
    with pytest.raises(TypeError, match="unsupported operand"):
        annotate_flops(runs)


def test_the_package_exports_what_its_all_lists():
    import __future__
    import types

    import scaling.app.importers as pkg

    public = {n for n, v in vars(pkg).items() if not n.startswith("_")
              and not isinstance(v, (types.ModuleType, __future__._Feature))}
    assert public == set(pkg.__all__)
    assert pkg.annotate_flops is importer_flops.annotate_flops


# -- CodeCarbon ------------------------------------------------------------------------------

CC_HEADER = ("timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,gpu_power,"
             "ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,codecarbon_version,"
             "cpu_count,cpu_model,gpu_count,gpu_model,tracking_mode,pue")


def _cc(tmp_path, rows, header=CC_HEADER, name="emissions.csv"):
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def _cc_row(cpu=0.000124, gpu=0.000817, ram=0.0000292, total=None, duration=10.5, pue=1.0, run="r1",
            gpu_model="1 x NVIDIA H100 80GB HBM3"):
    total = cpu + gpu + ram if total is None else total
    return (f"2025-06-01T10:00:00,p,{run},e,{duration},0.0004,3e-05,42,280,10,{cpu},{gpu},{ram},{total},France,FRA,"
            f"3.0.2,16,AMD EPYC,1,{gpu_model},machine,{pue}")


def test_codecarbon_kwh_become_joules_once(tmp_path):
    path = _cc(tmp_path, [_cc_row(), _cc_row(gpu=0.0009, pue=1.5)])
    r = import_codecarbon(path, {"model": "wan2.1", "height": 480, "width": 832, "frames": 81, "steps": 50})
    runs = r.runs
    assert runs["energy_gpu_j"].iloc[0] == pytest.approx(0.000817 * KWH_TO_J)
    assert runs["energy_cpu_j"].iloc[0] == pytest.approx(0.000124 * 3.6e6)
    assert runs["energy_ram_j"].iloc[0] == pytest.approx(0.0000292 * 3.6e6)
    assert runs["energy_gpu_j"].iloc[1] == pytest.approx(0.0009 * 3.6e6 / 1.5)  # PUE divided out
    assert runs["duration_s"].iloc[0] == 10.5
    assert list(runs["repeat"]) == [0, 1] and runs["run_id"].nunique() == 1
    assert (runs["model"] == WAN13).all() and (runs["model_key"] == "wan2.1-t2v-1.3b").all()
    assert (runs["gpu_key"] == "h100-sxm").all() and (runs["cfg"]).all() and not runs["estimated"].any()
    assert has_flag(runs, "cpu_ram_estimated").all() and (runs["meter"] == "codecarbon").all()
    assert str(runs["timestamp"].iloc[0]) == "2025-06-01 10:00:00+00:00"


def test_codecarbon_with_a_generation_setting_and_no_gpu(tmp_path):
    from scaling.settings import make_setting

    path = _cc(tmp_path, [_cc_row(gpu=0.0, gpu_model="")])
    r = import_codecarbon(path, make_setting("cvssp/audioldm2", seconds=10, steps=100), phase="denoiser")
    row = r.runs.iloc[0]
    assert row["phase"] == "denoiser" and row["steps"] == 100 and row["audio_seconds"] == 10.0
    assert pd.isna(row["energy_gpu_j"]) and row["estimated"] and pd.isna(row["gpu"])


@pytest.mark.parametrize("row,header,message", [
    (_cc_row(gpu=-0.001), CC_HEADER, r"row 1, column `gpu_energy`: '-0.001' breaks the rule: >= 0"),
    (_cc_row(duration=0), CC_HEADER, r"row 1, column `duration`: '0' breaks the rule: > 0"),
    (_cc_row(total=0.5), CC_HEADER, r"row 1, column `energy_consumed`: 0.5 kWh breaks the rule: equals cpu_energy"),
    (_cc_row(), CC_HEADER.replace("ram_energy", "ram_kwh"), r"column `ram_energy`: missing required column"),
])
def test_codecarbon_bad_input(tmp_path, row, header, message):
    path = _cc(tmp_path, [row], header)
    with pytest.raises(DataError, match=message):
        import_codecarbon(path, {"model": "wan2.1", "steps": 50})


def test_codecarbon_setting_errors(tmp_path):
    path = _cc(tmp_path, [_cc_row()])
    with pytest.raises(DataError, match="setting field 'resolution' is unknown"):
        import_codecarbon(path, {"model": "wan2.1", "resolution": "480p"})
    with pytest.raises(DataError, match="not registered: give `modality`"):
        import_codecarbon(path, {"model": "someone/unknown-model"})
    r = import_codecarbon(path, {"model": "someone/unknown-model", "modality": "image"})
    assert r.report.unresolved_models == {"someone/unknown-model": 1}


# -- bad public input ------------------------------------------------------------------------

def _public_rows(public_data, n=5):
    with open(public_data / "benchlab_t2v.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:n + 1]


def _write(path, header, rows):
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_text(buf.getvalue())
    return path


def _edit(column, value):
    def f(header, rows):
        rows[2][header.index(column)] = value
        return header, rows
    return f


BAD_PUBLIC = {
    "missing column": (lambda h, r: ([c for c in h if c != "steps"], [[v for c, v in zip(h, x) if c != "steps"] for x in r]),
                       r"bad.csv, column `steps`: missing required column"),
    "empty energy": (_edit("energy_gpu_j", ""), r"bad.csv, row 3, column `energy_gpu_j`: empty cell breaks the rule"),
    "nan energy": (_edit("energy_gpu_j", "nan"), r"bad.csv, row 3, column `energy_gpu_j`: 'nan' breaks the rule: a number"),
    "zero energy": (_edit("energy_cpu_j", "0"), r"bad.csv, row 3, column `energy_cpu_j`: 0.0 breaks the rule: an energy must be > 0"),
    "negative energy": (_edit("energy_gpu_j", "-12.5"), r"bad.csv, row 3, column `energy_gpu_j`: -12.5 breaks the rule"),
    "infinite energy": (_edit("energy_ram_j", "inf"), r"bad.csv, row 3, column `energy_ram_j`: inf breaks the rule: an energy must be finite"),
    "text in steps": (_edit("steps", "fifty"), r"bad.csv, row 3, column `steps`: 'fifty' breaks the rule: a number"),
    "zero duration": (_edit("duration_s", "0"), r"bad.csv, row 3, column `duration_s`: 0.0 breaks the rule"),
    "unknown phase": (_edit("phase", "warmup"), r"bad.csv, row 3, column `phase`: 'warmup' breaks the rule"),
    "empty meter": (_edit("meter", ""), r"bad.csv, row 3, column `meter`: empty cell breaks the rule"),
    "empty batch": (_edit("batch_size", ""), r"bad.csv, row 3, column `batch_size`: empty cell breaks the rule"),
    "empty phase": (_edit("phase", ""), r"bad.csv, row 3, column `phase`: empty cell breaks the rule"),
}


@pytest.mark.parametrize("case", BAD_PUBLIC)
def test_bad_public_input_names_file_row_column_and_rule(public_data, tmp_path, case):
    change, message = BAD_PUBLIC[case]
    header, rows = change(*_public_rows(public_data))
    path = _write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(DataError, match=message) as info:
        import_public(path)
    assert "\n" not in str(info.value)


def test_truncated_and_non_csv_files(public_data, tmp_path):
    text = (public_data / "benchlab_t2v.csv").read_text()
    lines = text.splitlines(keepends=True)
    (tmp_path / "cut_row.csv").write_text("".join(lines[:4]) + lines[4][:60])
    with pytest.raises(DataError, match=r"cut_row.csv, row 4, column `\w+`: missing; the row has \d+ of 22 fields"):
        import_public(tmp_path / "cut_row.csv")
    cut = text.index("prompt=", len("".join(lines[:3])))
    (tmp_path / "cut_quote.csv").write_text(text[: cut + 40])  # ends inside a quoted notes cell
    with pytest.raises(DataError, match=r"cut_quote.csv, row 3"):
        import_public(tmp_path / "cut_quote.csv")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"binary.csv: not a text CSV file"):
        import_public(tmp_path / "binary.csv")
    (tmp_path / "latin.csv").write_bytes("source,model\ncaf\xe9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv: not a text CSV file"):
        import_public(tmp_path / "latin.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty.csv: empty file"):
        import_public(tmp_path / "empty.csv")
    (tmp_path / "prose.csv").write_text("hello world\nthis is not a table\n")
    with pytest.raises(DataError, match=r"prose.csv, column `source`: missing required column"):
        import_public(tmp_path / "prose.csv")


# -- the CLI ---------------------------------------------------------------------------------

def test_cli_import_inspect_export(public_data, tmp_path, capsys):
    out = tmp_path / "runs.parquet"
    sources = [str(public_data / "benchlab_t2v.csv"), str(public_data / "leybzon_sd35_quantization.csv")]
    assert main(["data", "import", *sources, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 124 rows" in printed and "rows read: 134, kept: 124" in printed
    runs = read_runs(out)
    assert len(runs) == 124 and runs["flop_error"].notna().any()  # annotated (some models lack tables)
    assert read_metadata(out)["import_report"]["rows_read"] == 134

    assert main(["data", "inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "runs table, 124 rows" in text and "suspect" in text and "unresolved models" in text
    assert LTX in text and "(not stated): 32 rows" in text

    assert main(["data", "inspect", str(public_data / "benchlab_t2v.csv"), "--policy", "suspect=mark"]) == 0
    assert "rows read: 102, kept: 102" in capsys.readouterr().out
    assert main(["data", "inspect", str(public_data / "diffused_responsibility_quality.csv")]) == 0
    assert "quality table, 168 rows" in capsys.readouterr().out

    csv_out = tmp_path / "runs.csv"
    assert main(["data", "export", str(out), "--out", str(csv_out)]) == 0
    pd.testing.assert_frame_equal(read_runs(csv_out), runs)

    # --append adds rows, and refuses the same rows twice
    assert main(["data", "import", str(public_data / "ml_energy_leaderboard_v2.csv"), "--out", str(out),
                 "--append", "--no-flops"]) == 0
    assert len(read_runs(out)) == 124 + 118
    capsys.readouterr()
    assert main(["data", "import", sources[1], "--out", str(out), "--append"]) == 2
    assert "appears twice" in capsys.readouterr().err
    assert main(["data", "policies"]) == 0 and "metadata_conflict" in capsys.readouterr().out


def test_cli_imports_the_public_folder_and_skips_the_quality_table(public_data, tmp_path, capsys):
    # `scaling data import datasets/public/*.csv`: the quality table holds no energies, so it is
    # skipped with a one-line note; the energy files give the rows of the curated table
    sources = sorted(str(p) for p in public_data.glob("*.csv"))
    quality = str(public_data / "diffused_responsibility_quality.csv")
    assert quality in sources and len(sources) == len(ENERGY_FILES) + 1
    out = tmp_path / "runs.parquet"
    assert main(["data", "import", *sources, "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    note = captured.err.strip()
    assert note.count("\n") == 0 and note.startswith("scaling data: note: skipped") and quality in note
    assert captured.out.startswith("wrote ")
    curated, _ = curate(public_data)
    key = ["run_id", "phase"]
    pd.testing.assert_frame_equal(read_runs(out).sort_values(key).reset_index(drop=True),
                                  curated.sort_values(key).reset_index(drop=True))
    # quality tables only: nothing to import, one error line, nothing written
    assert main(["data", "import", quality, "--out", str(tmp_path / "q.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no energies to import" in err and not (tmp_path / "q.parquet").exists()


def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(public_data, tmp_path, capsys):
    header, rows = _public_rows(public_data)
    rows[3][header.index("energy_gpu_j")] = "-1"
    bad = _write(tmp_path / "bad.csv", header, rows)
    out = tmp_path / "runs.parquet"
    assert main(["data", "import", str(public_data / "leybzon_sd35_quantization.csv"), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.csv, row 4, column `energy_gpu_j`" in err and err.startswith("scaling data: error:")
    assert not out.exists() and list(tmp_path.glob("*.tmp")) == []

    # an existing output is left untouched
    assert main(["data", "import", str(public_data / "leybzon_sd35_quantization.csv"), "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(["data", "import", str(bad), "--out", str(out)]) == 2
    assert out.read_bytes() == before

    assert main(["data", "import", str(public_data / "leybzon_sd35_quantization.csv"), "--out", str(out),
                 "--policy", "suspect=correct"]) == 2
    assert main(["data", "import", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
    assert main(["data", "inspect", str(bad)]) == 2
    (tmp_path / "emissions.csv").write_text(CC_HEADER + "\n" + _cc_row() + "\n")
    assert main(["data", "import", str(tmp_path / "emissions.csv"), "--out", str(out)]) == 2
    assert "--setting" in capsys.readouterr().err
    assert main(["data", "import", str(tmp_path / "emissions.csv"), "--out", str(tmp_path / "cc.parquet"),
                 "--setting", "model=wan2.1,steps=50,height=720,width=1280"]) == 0
    assert read_runs(tmp_path / "cc.parquet")["height"].iloc[0] == 720
