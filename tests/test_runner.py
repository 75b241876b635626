"""The measurement runner: protocol, runs-table rows, resume, failures, CLI; tiny pipelines on the CPU."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from profilers.energy.meters import EstimateMeter, NvmlMeter, ReplayMeter  # noqa: E402
from profilers.energy.pipelines import (  # noqa: E402
    _random_pipeline,
    build_tokenizer,
    call_kwargs,
    load_prompts,
    resolve_spec,
    roles_of,
)
from profilers.energy.runner import (  # noqa: E402
    RUNNER_SOURCE,
    ModelTooLargeError,
    Protocol,
    Runner,
    SettingRequest,
    failures_path,
    read_failures,
)
from scaling.app.cli import main  # noqa: E402
from scaling.errors import AttentionNotCountedError, ProfilerError, UnknownMeterError  # noqa: E402
from scaling.runs import read_runs  # noqa: E402

torch.set_num_threads(1)

QUICK = Protocol(repeats=2, warmup=1, idle_s=0.0, country=None)
PHASES = {
    "tiny:sd": {"text_encoder", "denoiser", "decoder", "total"},
    "tiny:wan": {"text_encoder", "denoiser", "decoder", "total"},
    "tiny:audioldm": {"text_encoder", "denoiser", "decoder", "vocoder", "total"},
}


def _runner(out, meter=None, protocol=QUICK, **kw):
    return Runner(out, device="cpu", meter=meter or EstimateMeter(cpu_power_w=50.0), protocol=protocol,
                  echo=None, **kw)


def test_tiny_pipelines_end_to_end(tmp_path):
    out = tmp_path / "runs.parquet"
    with _runner(out) as r:
        outcomes = [r.run(SettingRequest(m)) for m in PHASES]
    assert [o.status for o in outcomes] == ["measured"] * 3, [o.message for o in outcomes]
    df = read_runs(out)
    for model, phases in PHASES.items():
        mine = df[df["model"] == model]
        assert set(mine["phase"]) == phases
        assert len(mine) == len(phases) * 2  # one row per phase per repeat, plus total
        assert sorted(mine["repeat"].unique()) == [0, 1]
        assert mine.groupby("run_id")["repeat"].nunique().eq(1).all()  # a run_id is one call
        assert (mine["source"] == RUNNER_SOURCE).all() and (mine["warmup"] == 1).all()
        assert (mine["n_repeats"] == 1).all() and mine["model_key"].isna().all()  # not a registered model
        assert mine["estimated"].all()  # CPU estimates are never reported as measurements
        assert mine["flags"].str.contains("cpu_only").all()
        assert (mine["energy_cpu_j"] > 0).all() and (mine["duration_s"] > 0).all()
        assert (mine["flop_denoiser"] > 0).all()
        den = mine[mine["phase"] == "denoiser"]
        assert (den["flop"] == den["flop_denoiser"]).all()
        tot = mine[mine["phase"] == "total"]
        assert (tot["flop"] > den["flop"].to_numpy()).all()
        phase_sum = mine[mine["phase"] != "total"].groupby("repeat")["energy_cpu_j"].sum()
        assert (phase_sum <= tot.set_index("repeat")["energy_cpu_j"] * 1.05).all()
        assert tot["notes"].str.contains("measured on its own").all()
        assert mine["notes"].str.contains("prompt #").all()
    assert df.loc[df["model"] == "tiny:wan", "frames"].eq(5).all()
    assert df.loc[df["model"] == "tiny:audioldm", "audio_seconds"].eq(0.016).all()


def test_prompts_and_seeds_are_fixed_per_repeat(tmp_path):
    out = tmp_path / "runs.parquet"
    with _runner(out, protocol=Protocol(repeats=3, warmup=0, idle_s=0.0, seed=7, country=None)) as r:
        r.run(SettingRequest("tiny:sd"))
    tot = read_runs(out).query("phase == 'total'").sort_values("repeat")
    assert [n.split("; seed ")[1].split(";")[0] for n in tot["notes"]] == ["7", "8", "9"]
    assert all(f"prompt #{i};" in n for i, n in enumerate(tot["notes"]))
    assert len(load_prompts("image")) >= 20 and len(load_prompts("video")) >= 20 and len(load_prompts("audio")) >= 20


def test_resume_skips_what_is_measured_and_completes_the_rest(tmp_path):
    out = tmp_path / "runs.parquet"
    with _runner(out, protocol=Protocol(repeats=1, warmup=0, idle_s=0.0, country=None)) as r:
        assert r.run(SettingRequest("tiny:wan")).status == "measured"
    first = set(read_runs(out)["run_id"])
    with _runner(out, protocol=Protocol(repeats=3, warmup=0, idle_s=0.0, country=None), resume=True) as r:
        o = r.run(SettingRequest("tiny:wan"))
        assert o.status == "measured" and o.calls == 2
        assert r.run(SettingRequest("tiny:wan")).status == "skipped"
    df = read_runs(out)
    assert first <= set(df["run_id"])  # earlier rows untouched
    assert sorted(df.query("phase == 'total'")["repeat"]) == [0, 1, 2]
    # without --resume the same setting is measured again, under new run ids
    with _runner(out, protocol=Protocol(repeats=1, warmup=0, idle_s=0.0, country=None)) as r:
        assert r.run(SettingRequest("tiny:wan")).status == "measured"
    assert len(read_runs(out).query("phase == 'total'")) == 4


def test_failures_are_recorded_and_the_runner_goes_on(tmp_path, monkeypatch):
    out = tmp_path / "runs.parquet"
    real_pipeline = Runner._pipeline

    def fake_pipeline(self, spec, precision):
        built = real_pipeline(self, spec, precision)
        if spec.key == "tiny-wan":
            def oom(*a, **k):
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            built.pipe.transformer.forward = oom
        if spec.key == "tiny-audioldm":
            raise ModelTooLargeError("tiny:audioldm has 80 B parameters: too large (simulated)")
        return built

    monkeypatch.setattr(Runner, "_pipeline", fake_pipeline)
    with _runner(out) as r:
        outcomes = [r.run(SettingRequest(m)) for m in ("tiny:wan", "tiny:audioldm", "tiny:sd")]
    assert [o.status for o in outcomes] == ["failed", "failed", "measured"]
    assert "out of memory" in outcomes[0].message and "smaller resolution" in outcomes[0].message
    fails = read_failures(out)
    assert [f["kind"] for f in fails] == ["out_of_memory", "model_too_large"]
    assert fails[0]["request"]["model"] == "tiny:wan" and fails[0]["key"].startswith("tiny-wan-")
    assert failures_path(out).name == "runs.failures.jsonl"
    df = read_runs(out)
    assert set(df["model"]) == {"tiny:sd"}  # no fake energy rows for the failures


def test_no_gpu_is_a_recorded_failure(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "runs.parquet"
    with Runner(out, device="cuda", meter="auto", protocol=QUICK, echo=None) as r:
        o = r.run(SettingRequest("tiny:sd"))
    assert o.status == "failed" and o.failure_kind == "no_gpu"
    assert "--device cpu" in o.message
    assert read_failures(out)[0]["kind"] == "no_gpu" and not out.exists()


def test_nvml_meter_through_the_runner_with_idle_baseline(tmp_path, monkeypatch):
    """The NVML path at the hardware boundary: a strict fake pynvml whose counter follows real time."""
    pytest.importorskip("zeus", reason="the GPU meter is Zeus's, over a fake NVML (the [gpu] extra)")
    from fake_nvml import FakeNVML, h100s

    fake = FakeNVML(h100s(1, power_w=300.0))
    state = {"last": time.perf_counter()}

    def clock():  # the fake GPU draws its set power in real time
        now = time.perf_counter()
        fake.advance(now - state["last"])
        state["last"] = now
        return fake.clock.t

    meter = fake.meter(clock=clock, start_sampler=False)  # Zeus over the fake NVML, installed until close
    real_idle = Runner._idle

    def idle_at_60w(self, m):
        fake.gpus[0].power_w = 60.0
        try:
            return real_idle(self, m)
        finally:
            fake.gpus[0].power_w = 300.0

    monkeypatch.setattr(Runner, "_idle", idle_at_60w)
    out = tmp_path / "runs.parquet"
    proto = Protocol(repeats=2, warmup=0, idle_s=0.2, subtract_idle=True, repeat_short=False, country=None)
    with _runner(out, meter=meter, protocol=proto) as r:
        o = r.run(SettingRequest("tiny:sd"))
    meter.close()
    assert o.status == "measured", o.message
    df = read_runs(out)
    assert (df["meter"] == "zeus(nvml)").all() and not df["estimated"].any()  # measured, not estimated
    assert df["idle_power_w"].iloc[0] == pytest.approx(60.0, rel=0.02)
    tot = df[df["phase"] == "total"]
    assert tot["flags"].str.contains("idle_subtracted").all()
    # net of idle: (300 - 60) W x duration
    assert (tot["energy_gpu_j"] / tot["duration_s"]).to_numpy() == pytest.approx(240.0, rel=0.05)
    assert tot["notes"].str.contains("raw").all()


def test_replayed_synthetic_trace_is_an_estimate(tmp_path):
    trace = FIXTURES / "synthetic-h100+sd21-512+cuda0.csv"
    out = tmp_path / "runs.parquet"
    with _runner(out, meter=ReplayMeter(trace, loop=True), protocol=Protocol(repeats=1, warmup=0, idle_s=0.1,
                                                                             repeat_short=False, country=None)) as r:
        o = r.run(SettingRequest("tiny:sd"))
    assert o.status == "measured", o.message
    df = read_runs(out)
    assert (df["energy_gpu_j"] > 0).all() and df["estimated"].all()  # a synthetic trace measures nothing
    assert df["idle_power_w"].isna().all()
    assert df["notes"].str.contains("SYNTHETIC").all()


def test_cpu_auto_meter_labels_estimates(tmp_path):
    from profilers.energy.meters import RaplMeter
    from scaling.errors import MeterError

    out = tmp_path / "runs.parquet"
    with Runner(out, device="cpu", meter="auto", protocol=Protocol(repeats=1, warmup=0, idle_s=0.0),
                echo=None) as r:
        o = r.run(SettingRequest("tiny:audioldm"))
    assert o.status == "measured", o.message
    df = read_runs(out)
    assert df["energy_gpu_j"].isna().all() and df["flags"].str.contains("cpu_only").all()
    try:
        RaplMeter().close()
        rapl = True
    except MeterError:
        rapl = False
    if not rapl:  # nothing on this machine reads energy: every figure is an estimate
        assert df["estimated"].all()


def test_an_unknown_meter_fails_before_any_work(tmp_path, capsys, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("a pipeline was built before the meter name was checked")

    monkeypatch.setattr(Runner, "_pipeline", no_build)
    out = tmp_path / "runs.parquet"
    with pytest.raises(UnknownMeterError, match="`meter` 'nvlm' is unknown: use one of auto, nvml, estimate"):
        Runner(out, device="cpu", meter="nvlm", protocol=QUICK, echo=None)
    rc = main(["measure", "--model", "tiny:sd", "--meter", "nvlm", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "'nvlm'" in err and "auto, nvml, estimate or replay:TRACE.csv" in err and "\n" not in err
    assert not out.exists() and not failures_path(out).exists()


def _as_registered(monkeypatch):
    """Make the tiny pipelines take the registry-profile path of _flops (they are counted otherwise)."""
    real_pipeline = Runner._pipeline

    def pipeline(self, spec, precision):
        built = real_pipeline(self, spec, precision)
        built.spec = replace(built.spec, family="test")
        return built

    monkeypatch.setattr(Runner, "_pipeline", pipeline)


def test_attention_dropped_from_the_flop_count_fails_the_setting(tmp_path, monkeypatch):
    import profilers.flops.profile as prof

    def profile(setting, method="closed-form", spec=None):
        if method == "closed-form":
            raise ProfilerError(f"no closed-form FLOP table for {spec.architecture_key!r}")
        raise AttentionNotCountedError(f"{spec.id}: unet has 4 attention modules but 0 attention FLOPs were counted")

    monkeypatch.setattr(prof, "profile", profile)
    _as_registered(monkeypatch)
    out = tmp_path / "runs.parquet"
    with _runner(out) as r:
        o = r.run(SettingRequest("tiny:sd"))
    assert o.status == "failed" and o.failure_kind == "AttentionNotCountedError"  # never a row with a bad count
    assert read_failures(out)[0]["kind"] == "AttentionNotCountedError" and not out.exists()


def test_a_flop_profile_that_cannot_be_made_leaves_the_reason(tmp_path, monkeypatch):
    import profilers.flops.profile as prof

    def profile(setting, method="closed-form", spec=None):
        raise ProfilerError(f"{method}: no input builder (simulated)")

    monkeypatch.setattr(prof, "profile", profile)
    _as_registered(monkeypatch)
    out = tmp_path / "runs.parquet"
    with _runner(out, protocol=Protocol(repeats=1, warmup=0, idle_s=0.0, country=None)) as r:
        assert r.run(SettingRequest("tiny:sd")).status == "measured"
    df = read_runs(out)
    assert (df["flop_denoiser"] > 0).all()  # counted on the real call instead
    monkeypatch.setattr(prof, "profile", lambda *a, **k: {}["a bug"])  # a KeyError: not a profile failure
    with _runner(tmp_path / "other.parquet") as r, pytest.raises(KeyError):
        r.run(SettingRequest("tiny:wan"))


def test_a_bug_propagates_and_is_not_recorded(tmp_path, monkeypatch):
    def warmup(self, built, setting):
        raise TypeError("unsupported operand (a bug, simulated)")

    monkeypatch.setattr(Runner, "_warmup", warmup)
    out = tmp_path / "runs.parquet"
    with _runner(out) as r, pytest.raises(TypeError, match="a bug"):
        r.run(SettingRequest("tiny:sd"))
    assert read_failures(out) == []


def test_running_out_of_memory_is_classified_by_type(tmp_path, monkeypatch):
    def warmup(self, built, setting):
        raise MemoryError()  # host memory: no message at all, the type says it

    monkeypatch.setattr(Runner, "_warmup", warmup)
    out = tmp_path / "runs.parquet"
    with _runner(out) as r:
        o = r.run(SettingRequest("tiny:sd"))
    assert o.failure_kind == "out_of_memory" and "out of memory on cpu for tiny:sd" in o.message
    assert "traceback" not in read_failures(out)[0]


def test_cli_measure_and_bad_setting(tmp_path, capsys):
    out = tmp_path / "runs.parquet"
    rc = main(["measure", "--model", "tiny:wan", "--repeats", "1", "--warmup", "0", "--idle-s", "0", "--meter",
               "estimate", "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "denoiser" in captured.out and "estimate" in captured.out
    assert len(read_runs(out)) == 4
    rc = main(["measure", "--model", "tiny:wan", "--repeats", "1", "--out", str(out), "--resume", "--quiet"])
    assert rc == 0 and "already measured" in capsys.readouterr().out
    rc = main(["measure", "--model", "tiny:wan", "--frames", "6", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "`frames` 6" in err and not failures_path(out).exists()


# -- random-weights builds of registry models (on the meta device: no memory, no compute) ----------

@pytest.mark.parametrize("model,tokenizers", [
    ("sd2.1", {"tokenizer": ("CLIPTokenizer", 77)}),
    ("wan2.1", {"tokenizer": (None, 512)}),
    ("flux.1-schnell", {"tokenizer": ("CLIPTokenizer", 77), "tokenizer_2": ("T5Tokenizer", 256)}),
    ("sd3.5-medium", {"tokenizer": ("CLIPTokenizer", 77), "tokenizer_3": ("T5Tokenizer", 256)}),
    ("cogvideox-2b", {"tokenizer": ("T5Tokenizer", 226)}),
    ("audioldm-s-full-v2", {"tokenizer": ("RobertaTokenizer", 512)}),
    ("stable-audio-open-1.0", {"tokenizer": ("T5Tokenizer", 128)}),
])
def test_random_weights_pipeline_from_registry(model, tokenizers):
    spec = resolve_spec(model)
    notes = []
    pipe = _random_pipeline(spec, "meta", "fp16", 0, notes)
    assert type(pipe).__name__ == spec.pipeline_class
    for name, (cls, length) in tokenizers.items():
        tok = getattr(pipe, name)
        assert cls is None or type(tok).__name__ == cls
        assert tok.model_max_length == length
    roles = roles_of(spec, pipe)
    assert set(roles.values()) >= {"text_encoder", "denoiser", "decoder"}
    for name in roles:
        dtypes = {p.dtype for p in getattr(pipe, name).parameters()}
        assert torch.float16 in dtypes and dtypes <= {torch.float16, torch.float32}
    # the call the runner makes: the registry's sequence length, CFG through the guidance scale
    from scaling.settings import make_setting

    setting = make_setting(spec, steps=2, precision="fp16")
    from profilers.energy.pipelines import BuiltPipeline

    kw = call_kwargs(BuiltPipeline(pipe, spec, roles, "cpu", "fp16"), setting, ["a fox"], seed=0)
    assert kw["num_inference_steps"] == 2 and kw["output_type"] == "pt"
    if "max_sequence_length" in kw:
        assert kw["max_sequence_length"] == max(v for v in spec.text_tokens.values())


def test_tokenizer_in_memory_stays_in_vocab():
    tok = build_tokenizer("CLIPTokenizer", 77, vocab_size=1000)
    ids = tok(["a red fox sitting in fresh snow"], padding="max_length", max_length=77, truncation=True,
              return_tensors="pt").input_ids
    assert ids.shape == (1, 77) and int(ids.max()) < 1000
    t5 = build_tokenizer("T5Tokenizer", 256, vocab_size=32128)
    ids = t5(["rain falling on a tin roof"], padding="max_length", max_length=256, truncation=True,
             return_tensors="pt").input_ids
    assert ids.shape == (1, 256) and int((ids != t5.pad_token_id).sum()) == 7  # 6 words + </s>


def test_local_weights_and_local_configs(tmp_path, capsys):
    """--weights DIR loads a saved pipeline (from_pretrained); --config DIR builds it from its
    configs with random weights. Both get their FLOPs: the traced profile of the folder where
    its guessed shapes fit (here they do not: the tiny CLIP has 16 positions), else counted on
    one real call."""
    from profilers.energy.pipelines import tiny_pipeline

    folder = tmp_path / "tiny-sd"
    tiny_pipeline("sd").pipe.save_pretrained(folder)
    out = tmp_path / "runs.parquet"
    common = ["--res", "8", "--steps", "2", "--repeats", "1", "--warmup", "0", "--idle-s", "0", "--meter",
              "estimate", "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(["measure", "--weights", str(folder), *common]) == 0, capsys.readouterr().err
    assert main(["measure", "--config", str(folder), *common]) == 0, capsys.readouterr().err
    df = read_runs(out)
    tot = df[df["phase"] == "total"]
    assert len(tot) == 2 and tot["run_id"].str.startswith("local:tiny-sd-").all()
    assert tot["run_id"].str.split("/").str[0].nunique() == 2  # local weights vs random: two settings
    assert (df["flop"] > 0).all() and df["flop_error"].isna().all()
    assert tot["notes"].str.contains(f"weights {folder}").sum() == 1
