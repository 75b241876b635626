"""scaling.track: measure your own pipeline (tiny random diffusers pipelines, on the CPU).

Most tests run on a fake clock: each component call of the real tiny pipeline lets a set
amount of fake time pass (:func:`fake_compute`) and the estimate meter reads that clock, so
every duration and energy is exact, whatever the load on the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from fake_clock import FakeClock  # noqa: E402
from fake_clock import fake_compute as _fake_compute  # noqa: E402

import scaling  # noqa: E402
from profilers.energy.meters import EstimateMeter  # noqa: E402
from profilers.energy.pipelines import tiny_pipeline  # noqa: E402
from profilers.energy.track import TRACK_SOURCE, Tracker, track  # noqa: E402
from scaling.errors import InvalidSettingError, OutputError  # noqa: E402
from scaling.runs import read_runs  # noqa: E402

torch.set_num_threads(1)

CALL_S = {"text_encoder": 0.05, "denoiser": 0.2, "decoder": 0.1}  # fake seconds per component call
WATTS = 40.0
SD_CALL = dict(num_inference_steps=2, height=8, width=8, output_type="pt")


@pytest.fixture(scope="module")
def sd():
    return tiny_pipeline("sd")


def fake_compute(built, clock, seconds=CALL_S):
    """:func:`fake_clock.fake_compute` with this file's seconds per component call."""
    return _fake_compute(built, clock, seconds)


def _fake_meter():
    clock = FakeClock()
    return clock, EstimateMeter(cpu_power_w=WATTS, clock=clock, source="the test's power")


def test_track_measures_a_tiny_pipeline_phase_by_phase(sd, tmp_path):
    out = tmp_path / "runs.parquet"
    clock, meter = _fake_meter()
    cls = type(sd.pipe)
    own_call = cls.__dict__["__call__"]
    with fake_compute(sd, clock), scaling.track(sd.pipe, out=out, meter=meter, country=None) as run:
        assert cls.__dict__["__call__"] is not own_call  # the calls of this pipeline are routed through track
        sd.pipe(["a fox", "a cat"], num_images_per_prompt=2, **SD_CALL)
    assert cls.__dict__["__call__"] is own_call  # and no longer
    df = read_runs(out)
    assert sorted(df["phase"]) == ["decoder", "denoiser", "text_encoder", "total"]
    assert df["run_id"].nunique() == 1 and (df["source"] == TRACK_SOURCE).all()
    # the setting, read from the call's arguments and the pipeline
    row = df[df["phase"] == "total"].iloc[0]
    assert (row["model"], row["modality"], row["height"], row["width"], row["steps"]) == \
        ("local:StableDiffusionPipeline", "image", 8, 8, 2)
    assert row["batch_size"] == 4 and row["precision"] == "fp32"  # 2 prompts x 2 images each
    assert row["guidance_scale"] == 7.5 and bool(row["cfg"])  # the signature's default; CFG on
    assert pd_na(row["model_key"]) and "not a registered model" in row["flop_error"]
    # the phases, each on its own window, add up to the call
    calls = sd_calls(run)
    phases = df[df["phase"] != "total"].set_index("phase")
    expected = {p: calls[p] * CALL_S[p] * WATTS for p in CALL_S}
    assert phases["energy_cpu_j"].to_dict() == pytest.approx(expected)
    assert phases["energy_cpu_j"].sum() == pytest.approx(row["energy_cpu_j"])
    assert phases["duration_s"].sum() == pytest.approx(row["duration_s"])
    # labelled as what it is: an estimate from an assumed power, on the CPU
    assert df["estimated"].all() and (df["meter"] == "estimate").all()
    assert df["flags"].str.contains("cpu_only").all() and df["notes"].str.contains("the test's power").all()
    # the results, in memory too
    assert list(run.phases) == ["text_encoder", "denoiser", "decoder"]
    assert {p: m.energy_cpu_j for p, m in run.phases.items()} == pytest.approx(expected)
    assert run.total.energy_cpu_j == pytest.approx(row["energy_cpu_j"]) and run.estimated
    assert len(run.calls) == 1 and len(run.rows) == 4


def sd_calls(run: Tracker) -> dict[str, int]:
    return {p: m.calls for p, m in run.phases.items()}


def pd_na(v) -> bool:
    import pandas as pd

    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def test_without_a_gpu_the_default_meter_estimates_and_says_so(sd, tmp_path):
    from profilers.energy.meters import RaplMeter
    from scaling.errors import MeterError

    out = tmp_path / "runs.csv"
    with scaling.track(sd.pipe, out=out, country=None) as run:  # meter="auto", on the CPU
        sd.pipe("a fox", **SD_CALL)
    df = read_runs(out)
    assert len(df) == 4 and df["energy_gpu_j"].isna().all() and (df["energy_cpu_j"] > 0).all()
    try:
        RaplMeter().close()
    except MeterError:  # nothing on this machine reads energy: time x the default CPU power
        assert df["estimated"].all() and (df["meter"] == "estimate").all() and run.estimated
        assert df["notes"].str.contains("assumed power").all()


def test_the_decorator_form_measures_each_call(sd, tmp_path):
    out = tmp_path / "runs.parquet"
    clock, meter = _fake_meter()
    tracker = track(sd.pipe, out=out, meter=meter)

    @tracker
    def generate(prompt):
        return sd.pipe(prompt, **SD_CALL)

    with fake_compute(sd, clock):
        images = generate("a fox").images
        generate("a cat")
    assert tuple(images.shape[-2:]) == (8, 8)  # the decorated function returns what the pipeline did
    df = read_runs(out)
    assert df["run_id"].nunique() == 2 and len(df) == 8  # one window per call, each with its phases
    assert len(tracker.calls) == 1 and tracker.total.energy_cpu_j > 0  # the last block
    assert generate.__name__ == "generate"


def test_the_plain_window(tmp_path):
    out = tmp_path / "runs.parquet"
    clock, meter = _fake_meter()
    with scaling.track(name="my-step", out=out, meter=meter, modality="video") as run:
        clock.advance(2.5)
    df = read_runs(out)
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["model"], row["phase"], row["modality"]) == ("my-step", "total", "video")
    assert row["duration_s"] == pytest.approx(2.5) and row["energy_cpu_j"] == pytest.approx(2.5 * WATTS)
    assert bool(row["estimated"]) and row["meter"] == "estimate"
    assert run.total.energy_cpu_j == pytest.approx(2.5 * WATTS) and run.phases == {}


def test_tracks_nest(sd, tmp_path):
    """The inner track's call is its own window; the outer one records the whole block."""
    out = tmp_path / "runs.parquet"
    clock, meter = _fake_meter()
    own_call = type(sd.pipe).__dict__["__call__"]
    with fake_compute(sd, clock):
        with scaling.track(name="batch", out=out, meter=meter) as outer:
            clock.advance(1.0)  # work around the call
            with scaling.track(sd.pipe, out=out) as inner:  # the default meter: the outer one's
                sd.pipe("a fox", **SD_CALL)
            assert inner._last["meter"] is meter
    df = read_runs(out)
    whole = df[df["model"] == "batch"]
    call = df[(df["model"] != "batch") & (df["phase"] == "total")]
    assert len(whole) == 1 and len(call) == 1 and len(df) == 5
    assert whole["energy_cpu_j"].iloc[0] == pytest.approx(call["energy_cpu_j"].iloc[0] + 1.0 * WATTS)
    assert outer.total.energy_cpu_j == pytest.approx(inner.total.energy_cpu_j + 1.0 * WATTS)

    # the same pipeline tracked twice: the inner track measures the phases, the outer the call
    out2 = tmp_path / "nested.parquet"
    with fake_compute(sd, clock):
        with scaling.track(sd.pipe, out=out2, meter=meter) as outer, scaling.track(sd.pipe, out=out2) as inner:
            sd.pipe("a fox", **SD_CALL)
    df = read_runs(out2)
    assert df["run_id"].nunique() == 2 and len(df) == 5
    assert list(inner.phases) == ["text_encoder", "denoiser", "decoder"] and outer.phases == {}
    assert outer.total.energy_cpu_j == pytest.approx(inner.total.energy_cpu_j)
    assert type(sd.pipe).__dict__["__call__"] is own_call  # both unhooked


def test_a_bad_out_is_refused_before_the_call(sd, tmp_path):
    calls = []

    class Pipe:  # nothing may be called, hooked or written
        def __call__(self, *a, **k):
            calls.append(a)

    (tmp_path / "a-folder.parquet").mkdir()
    bad = {"runs.txt": r"ends in \.parquet, \.csv", "a-folder.parquet": "it is a folder",
           "missing/runs.parquet": r"the folder .*missing does not exist \(rule: the output's folder must exist\)"}
    for name, rule in bad.items():
        with pytest.raises(OutputError, match=rule) as info:
            scaling.track(Pipe(), out=tmp_path / name)
        assert "\n" not in str(info.value) and name.split("/")[0] in str(info.value)
    assert calls == [] and "__call__" in Pipe.__dict__ and not list(tmp_path.glob("*.txt"))
    with pytest.raises(InvalidSettingError, match="needs a pipeline, or `name`"):
        scaling.track()
    with pytest.raises(InvalidSettingError, match="modality"):
        scaling.track(name="x", modality="text")


def test_a_registered_pipeline_resolves_and_gets_its_flops(tmp_path):
    built = tiny_pipeline("sd")  # its own copy: the name is changed below
    built.pipe.register_to_config(_name_or_path="stabilityai/stable-diffusion-2-1")
    clock, meter = _fake_meter()
    with fake_compute(built, clock), scaling.track(built.pipe, meter=meter) as run:
        built.pipe("a fox", num_inference_steps=2, height=64, width=64, output_type="pt")
    rows = {r["phase"]: r for r in run.rows}
    total = rows["total"]
    assert (total["model"], total["model_key"]) == ("stabilityai/stable-diffusion-2-1", "sd2.1")
    if total["flop_error"] is None:  # the registered model's closed-form table, at this setting
        assert rows["denoiser"]["flop"] > 0 and total["flop_denoiser"] == rows["denoiser"]["flop"]
        assert total["flop"] == pytest.approx(sum(rows[p]["flop"] for p in ("text_encoder", "denoiser", "decoder")))
    else:  # a table that cannot be used says why, and the energy rows are written all the same
        assert total["flop_error"].startswith("ProfilerError") and total["flop"] is None
        assert total["energy_cpu_j"] > 0


def test_a_pipeline_without_a_hub_name_resolves_by_its_configs():
    from types import SimpleNamespace

    from profilers.energy.track_setting import registered
    from scaling.registry import resolve_model

    unet = dict(resolve_model("sd2.1").components["unet"].config)
    cls = type("StableDiffusionPipeline", (), {})  # the class name, and the denoiser's config
    pipe = cls()
    pipe.unet = SimpleNamespace(config={k: tuple(v) if isinstance(v, list) else v for k, v in unet.items()})
    assert registered(pipe).key == "sd2.1"
    pipe.unet.config["cross_attention_dim"] = 7  # an architecture registered nowhere
    assert registered(pipe) is None
    assert registered(tiny_pipeline("sd").pipe) is None  # the tiny test pipeline: local:StableDiffusionPipeline


def test_track_is_public():
    assert "track" in scaling.__all__ and scaling.track is track
