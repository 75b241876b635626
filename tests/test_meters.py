"""Energy meters without hardware: Zeus over a strict fake NVML, replayed traces, real CodeCarbon offline.

The GPU meter is Zeus's; the fake NVML (tests/fixtures/fake_nvml.py) is installed as the
``pynvml`` Zeus calls, and copies pynvml's error classes, so its tests need zeus and
nvidia-ml-py (the [gpu] extra); the CodeCarbon tests need codecarbon (the [carbon] extra).
Without them those tests skip, saying so; the others run.
"""

from __future__ import annotations

import pickle
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from fake_clock import FakeClock  # noqa: E402

try:
    import codecarbon.core.gpu  # noqa: F401 - binds CodeCarbon to the real pynvml before any fake
except ImportError:
    HAS_CODECARBON = False
else:
    HAS_CODECARBON = True
try:
    import pynvml
    import zeus.monitor  # noqa: F401
except ImportError:
    HAS_ZEUS = False
else:
    HAS_ZEUS = True
    import fake_nvml
    from fake_nvml import FakeNVML, h100s
needs_zeus = pytest.mark.skipif(
    not HAS_ZEUS, reason="needs zeus and nvidia-ml-py (the [gpu] extra): the GPU meter is Zeus's, and the "
                         "fake NVML copies pynvml's error classes")
needs_codecarbon = pytest.mark.skipif(not HAS_CODECARBON, reason="needs codecarbon (the [carbon] extra)")

import profilers.energy.meters as meters  # noqa: E402
from profilers.energy.meters import (  # noqa: E402
    CodeCarbonMeter,
    CompositeMeter,
    CounterAccumulator,
    EstimateMeter,
    Measurement,
    Meter,
    NvmlMeter,
    PowerTrace,
    RaplMeter,
    ReplayMeter,
    check_meter_name,
    default_meter,
    make_meter,
    merge_measurements,
    parse_trace_name,
)
from scaling.errors import (  # noqa: E402
    DataError,
    InvalidSettingError,
    MeterError,
    MissingDependencyError,
    MissingMeterDependencyError,
    NoGPUError,
    UnknownCountryError,
    UnknownMeterError,
)

SYNTHETIC = FIXTURES / "synthetic-h100+sd21-512+cuda0.csv"


@pytest.fixture(autouse=True)
def _every_gpu_visible(monkeypatch):
    """Zeus reads CUDA_VISIBLE_DEVICES from the environment: unset unless a test sets it."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)


def nvml_meter(fake: FakeNVML, monkeypatch, **kw) -> NvmlMeter:
    """The Zeus-backed GPU meter over ``fake`` (installed for the test), on the fake's clock."""
    fake.install(monkeypatch)
    kw.setdefault("start_sampler", False)
    return NvmlMeter(clock=fake.clock, **kw)


def run(fake: FakeNVML, meter: NvmlMeter, seconds: float, steps: int = 10) -> None:
    """Let time pass in ``steps`` ticks, sampling after each but the last (end_window samples)."""
    for i in range(steps):
        fake.advance(seconds / steps)
        if i < steps - 1:
            meter.sample()


# -- the fake itself -----------------------------------------------------------------
@needs_zeus
def test_fake_nvml_is_strict(monkeypatch):
    fake = FakeNVML(h100s(1))
    with pytest.raises(TypeError):  # autospecced: wrong signature fails
        fake.module.nvmlDeviceGetTotalEnergyConsumption()
    for unused in ("nvmlDeviceGetTemperature", "nvmlDeviceGetPowerUsage"):  # what Zeus does not call here
        with pytest.raises(AttributeError):
            getattr(fake.module, unused)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.module.nvmlDeviceGetCount()
    assert fake.module.NVMLError_NotSupported is pynvml.NVMLError_NotSupported
    import zeus.device.gpu.nvidia as znv

    real = znv.pynvml
    with fake.installed():
        assert znv.pynvml is fake.module and sys.modules["pynvml"] is fake.module
    assert znv.pynvml is real and sys.modules["pynvml"] is pynvml  # and uninstalled again


# -- the GPU meter: Zeus over the fake NVML ------------------------------------------------
@needs_zeus
def test_nvml_counter_energy(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=300.0))
    m = nvml_meter(fake, monkeypatch)
    m.begin_window("call")
    run(fake, m, 2.0)
    r = m.end_window("call")
    m.close()
    assert r.time_s == pytest.approx(2.0)
    assert r.energy_gpu_counter_j == pytest.approx(600.0, abs=1e-3)
    assert r.energy_gpu_sampled_j == pytest.approx(600.0)
    assert r.energy_gpu_j == r.energy_gpu_counter_j  # the counter is preferred
    assert r.per_gpu_j == {0: pytest.approx(600.0, abs=1e-3)}
    assert r.samples == 10
    assert r.estimated == {"energy_gpu_j": False}
    assert r.meter == "zeus(nvml)" and r.notes == ""
    # Zeus read the counter (begin and end of the window), the sampler the power field
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] >= 2 and fake.calls["nvmlDeviceGetFieldValues"] >= 10


@needs_zeus
def test_nvml_keeps_both_sources_when_they_disagree(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=200.0, counter_scale=1.05))
    m = nvml_meter(fake, monkeypatch)
    m.begin_window("call")
    run(fake, m, 1.0, steps=4)
    fake.gpus[0].power_w = 400.0  # a step between samples: the trapezoid smears it
    fake.advance(0.5)
    r = m.end_window("call")
    assert r.energy_gpu_counter_j == pytest.approx(1.05 * (200.0 + 0.5 * 400.0), abs=1e-3)
    # samples at 0, .25, .5, .75 s read 200 W; the end sample at 1.5 s reads 400 W
    assert r.energy_gpu_sampled_j == pytest.approx(0.75 * 200.0 + 0.75 * (200.0 + 400.0) / 2)
    assert r.energy_gpu_j == r.energy_gpu_counter_j


@needs_zeus
def test_nvml_falls_back_to_sampled_power_without_counter(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=250.0, has_counter=False))  # a pre-Volta GPU, for Zeus
    m = nvml_meter(fake, monkeypatch)
    assert m._monitor.power_monitor is None  # Zeus's own (spawned) PowerMonitor is not started
    m.begin_window("call")
    run(fake, m, 1.0)
    r = m.end_window("call")
    assert r.energy_gpu_counter_j is None
    assert r.energy_gpu_j == r.energy_gpu_sampled_j == pytest.approx(250.0)
    assert "no energy counter: integrated sampled power" in r.notes
    assert r.estimated == {"energy_gpu_j": False}
    assert fake.calls["nvmlDeviceGetTotalEnergyConsumption"] == 0


@needs_zeus
def test_a_counter_that_goes_backwards_is_refused_never_negative(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=300.0, energy_mj=5_000_000))
    m = nvml_meter(fake, monkeypatch)
    m.begin_window("call")
    run(fake, m, 1.0)
    fake.reset_counter(0)  # a driver reload under a running meter
    fake.advance(0.5)
    with pytest.raises(MeterError, match="went backwards.*cannot be measured"):
        m.end_window("call")
    # the 64-bit mJ counter's wrap (5e8 years at 1 kW) reads the same way in Zeus: refused too
    fake = FakeNVML(h100s(1, power_w=300.0, energy_mj=fake_nvml.MODULUS_MJ - 100_000))
    m = nvml_meter(fake, monkeypatch)
    m.begin_window("call")
    run(fake, m, 1.0)
    with pytest.raises(MeterError, match="went backwards"):
        m.end_window("call")


def test_counter_accumulator_rules():
    c = CounterAccumulator(90, modulus=100, resettable=False)  # RAPL-like: always a wrap
    c.update(10)
    assert (c.total, c.wraps) == (20, 1)
    c = CounterAccumulator(10, modulus=2**64, resettable=True)  # low value dropped: a reset
    c.update(3)
    assert (c.total, c.resets) == (3, 1)
    c.update(2)  # a second reset below: never negative
    assert c.total == 5


@needs_zeus
def test_nvml_two_gpus(monkeypatch):
    gpus = h100s(2)
    gpus[0].power_w, gpus[1].power_w = 300.0, 200.0
    fake = FakeNVML(gpus)
    m = nvml_meter(fake, monkeypatch)
    m.begin_window("call")
    run(fake, m, 1.0)
    r = m.end_window("call")
    assert r.per_gpu_j == {0: pytest.approx(300.0, abs=1e-3), 1: pytest.approx(200.0, abs=1e-3)}
    assert r.energy_gpu_j == pytest.approx(500.0, abs=1e-3)
    assert r.energy_gpu_sampled_j == pytest.approx(500.0)


@needs_zeus
def test_nvml_one_gpu_without_counter_among_two(monkeypatch):
    gpus = h100s(2, power_w=100.0)
    gpus[1].has_counter = False
    fake = FakeNVML(gpus)
    m = nvml_meter(fake, monkeypatch)
    assert m._monitor.gpu_indices == [0]  # Zeus's monitor reads the counter GPU only
    m.begin_window("w")
    run(fake, m, 1.0)
    r = m.end_window("w")
    assert r.energy_gpu_counter_j is None  # not every GPU has the counter
    assert r.energy_gpu_j == pytest.approx(200.0, abs=1e-3)
    assert r.per_gpu_j == {0: pytest.approx(100.0, abs=1e-3), 1: pytest.approx(100.0)}
    assert "cuda:1 has no energy counter" in r.notes


def _four_gpus() -> FakeNVML:
    gpus = h100s(4)
    for i, g in enumerate(gpus):
        g.power_w = 100.0 * (i + 1)  # nvml i draws (i+1) x 100 W
    return FakeNVML(gpus)


@needs_zeus
def test_nvml_maps_cuda_visible_devices_indices(monkeypatch):
    fake = _four_gpus()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")  # Zeus maps it: cuda:0 is NVML 2, cuda:1 is NVML 0
    m = nvml_meter(fake, monkeypatch)
    assert [d.cuda_index for d in m.devices] == [0, 1]
    m.begin_window("w")
    run(fake, m, 1.0)
    r = m.end_window("w")
    assert r.per_gpu_j == {0: pytest.approx(300.0, abs=1e-3), 1: pytest.approx(100.0, abs=1e-3)}
    m.close()
    only = nvml_meter(fake, monkeypatch, gpu_indices=[1])
    only.begin_window("w")
    run(fake, only, 1.0)
    assert only.end_window("w").per_gpu_j == {1: pytest.approx(100.0, abs=1e-3)}


@needs_zeus
def test_cuda_visible_devices_uuids_are_refused_in_one_line(monkeypatch):
    fake = _four_gpus()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", fake.gpus[3].uuid[:12])  # a UUID prefix: CUDA takes it, Zeus not
    with pytest.raises(NoGPUError, match="Zeus reads it as comma-separated GPU indices.*not UUIDs") as info:
        nvml_meter(fake, monkeypatch)
    assert "\n" not in str(info.value)


@needs_zeus
def test_nvml_no_gpu_errors(monkeypatch):
    fake = FakeNVML(h100s(1), init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(NoGPUError, match="Zeus found no GPU.*zeus.show_env"):
        nvml_meter(fake, monkeypatch)
    with pytest.raises(NoGPUError, match="Zeus sees no GPU"):
        nvml_meter(FakeNVML([]), monkeypatch)
    fake = FakeNVML(h100s(2))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(NoGPUError, match="Zeus found no GPU.*empty string"):
        nvml_meter(fake, monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,7")  # names a GPU NVML does not have
    with pytest.raises(NoGPUError, match="could not open the GPUs named by CUDA_VISIBLE_DEVICES='0,7'"):
        nvml_meter(fake, monkeypatch)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(NoGPUError, match=r"`gpu_indices`=\[5\].*cuda:0..cuda:1"):
        nvml_meter(fake, monkeypatch, gpu_indices=[5])  # Zeus does not check them: we do
    with pytest.raises(NoGPUError, match=r"`gpu_indices`=\[0, 0\]"):
        nvml_meter(fake, monkeypatch, gpu_indices=[0, 0])
    assert issubclass(NoGPUError, MeterError)


@needs_zeus
def test_nvml_gpu_with_neither_source_is_a_meter_error(monkeypatch):
    fake = FakeNVML(h100s(1, has_counter=False, has_power=False))
    with pytest.raises(MeterError, match="neither an energy counter nor power"):
        nvml_meter(fake, monkeypatch)


@needs_zeus
def test_nvml_rejects_sampling_period_outside_10_to_100_ms(monkeypatch):
    with pytest.raises(MeterError, match="0.01 to 0.1"):
        nvml_meter(FakeNVML(h100s(1)), monkeypatch, sample_interval_s=0.5)


@needs_zeus
def test_nvml_nested_windows_and_key_errors(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=100.0))
    m = nvml_meter(fake, monkeypatch)
    m.begin_window("call")
    fake.advance(1.0)
    m.begin_window("denoiser")
    fake.advance(2.0)
    inner = m.end_window("denoiser")
    fake.advance(1.0)
    outer = m.end_window("call")
    assert inner.energy_gpu_j == pytest.approx(200.0, abs=1e-3)
    assert outer.energy_gpu_j == pytest.approx(400.0, abs=1e-3)
    m.begin_window("x")
    with pytest.raises(MeterError, match="already open"):
        m.begin_window("x")
    with pytest.raises(MeterError, match="no open window 'y'"):
        m.end_window("y")
    m.close()
    with pytest.raises(MeterError, match="closed"):
        m.begin_window("z")


@needs_zeus
def test_a_window_the_counter_did_not_see_is_noted_not_warned(monkeypatch, recwarn):
    fake = FakeNVML(h100s(1, power_w=100.0))
    m = nvml_meter(fake, monkeypatch)
    m.begin_window("short")
    fake.clock.t += 0.01  # time passes, the counter does not tick
    r = m.end_window("short")
    assert r.energy_gpu_counter_j == 0.0
    assert "energy counter did not change in this 10 ms window" in r.notes
    assert not [w for w in recwarn if "measured as zero" in str(w.message)]  # Zeus's warning: a note instead


@needs_zeus
def test_nvml_trace_records_both_sources(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=300.0))
    m = nvml_meter(fake, monkeypatch)
    run(fake, m, 1.0, steps=5)
    m.sample()
    tr = m.trace()[0]
    assert len(tr["t_s"]) == len(tr["power_w"]) == len(tr["energy_j"]) == 6
    assert tr["power_w"][-1] == pytest.approx(300.0)
    assert tr["energy_j"][-1] == pytest.approx(300.0, abs=1e-3)
    # the recorded trace round-trips through the replay format
    trace = PowerTrace(tuple(tr["t_s"]), tuple(tr["power_w"]), tuple(tr["energy_j"]))
    assert trace.energy_total_j == pytest.approx(300.0)


@needs_zeus
def test_nvml_without_trace_recording(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=100.0))
    m = nvml_meter(fake, monkeypatch, record_trace=False)
    m.begin_window("w")
    run(fake, m, 1.0)
    assert m.end_window("w").energy_gpu_j == pytest.approx(100.0, abs=1e-3)
    assert m.trace()[0]["t_s"] == []


@needs_zeus
def test_nvml_sampler_thread_runs_and_stops(monkeypatch):
    fake = FakeNVML(h100s(2, power_w=300.0))
    fake.install(monkeypatch)
    m = NvmlMeter(sample_interval_s=0.01)
    m.begin_window("w")
    polled = fake.calls["nvmlDeviceGetFieldValues"]
    deadline = time.monotonic() + 60  # only a thread that never samples meets it
    while fake.calls["nvmlDeviceGetFieldValues"] - polled < 2 * 5 and time.monotonic() < deadline:
        time.sleep(0.01)  # the thread reads both GPUs each tick: wait for 5 ticks
    r = m.end_window("w")
    m.close()
    assert r.samples >= 5
    assert r.energy_gpu_sampled_j == pytest.approx(600.0 * r.time_s, rel=1e-6)
    assert not any(t.name == "zeus-power-sampler" for t in threading.enumerate())


@needs_zeus
def test_nvml_sampler_error_surfaces_at_window_end(monkeypatch):
    fake = FakeNVML(h100s(1))
    fake.install(monkeypatch)
    m = NvmlMeter(sample_interval_s=0.01)
    m.begin_window("w")
    fake.gpus[0].has_power = False  # now NOT_SUPPORTED in the thread: Zeus raises its own error
    time.sleep(0.05)
    with pytest.raises(MeterError, match="sampler stopped|window boundary"):
        m.end_window("w")
    m.close()


@needs_zeus
def test_a_bug_in_the_sampler_surfaces_as_itself(monkeypatch):
    fake = FakeNVML(h100s(1))
    fake.install(monkeypatch)
    m = NvmlMeter(sample_interval_s=0.01)
    m.begin_window("w")
    fake.gpus[0].power_w = None  # the fake's power reading now fails with a TypeError: not NVML's doing
    with pytest.raises(TypeError):  # raised as it is, in the thread or at the boundary, never a MeterError
        m.end_window("w")
    m.close()


@needs_zeus
def test_the_fake_meter_helper_installs_for_the_meter_lifetime():
    import zeus.device.gpu.nvidia as znv

    real = znv.pynvml
    fake = FakeNVML(h100s(1, power_w=100.0))
    m = fake.meter(clock=fake.clock, start_sampler=False)
    assert znv.pynvml is fake.module
    m.begin_window("w")
    fake.advance(1.0)
    assert m.end_window("w").energy_gpu_j == pytest.approx(100.0, abs=1e-3)
    m.close()
    assert znv.pynvml is real


# -- replay ----------------------------------------------------------------------------
def test_synthetic_fixture_is_labelled_as_such():
    assert SYNTHETIC.name.startswith("synthetic-")
    assert parse_trace_name(SYNTHETIC) == {"gpu": "synthetic-h100", "workload": "sd21-512", "device": "cuda0"}
    trace = PowerTrace.read_csv(SYNTHETIC)
    assert trace.synthetic
    assert "NOT recorded" in trace.comments[0]


def test_replay_reproduces_the_trace_integral():
    trace = PowerTrace.read_csv(SYNTHETIC)
    t, p = trace.t_s, trace.power_w
    expected = sum(0.5 * (p[i] + p[i - 1]) * (t[i] - t[i - 1]) for i in range(1, len(t)))
    clock = FakeClock()
    m = ReplayMeter(SYNTHETIC, clock=clock)
    m.begin_window("call")
    clock.t = trace.duration_s
    r = m.end_window("call")
    assert r.energy_gpu_sampled_j == pytest.approx(expected, rel=1e-12)
    assert r.energy_gpu_counter_j == pytest.approx(trace.energy_j[-1], rel=1e-12)
    assert r.energy_gpu_j == r.energy_gpu_counter_j
    assert r.samples == len(t) - 1
    assert r.estimated == {"energy_gpu_j": True}  # synthetic: made up, not measured
    assert "SYNTHETIC" in r.notes and r.meter == "replay"


def test_replay_phase_windows_add_up_and_see_the_denoiser():
    clock = FakeClock()
    m = ReplayMeter(SYNTHETIC, clock=clock)
    bounds = [0.0, 0.5, 0.53, 2.33, 2.47, 3.0]
    names = ["idle", "text_encoder", "denoiser", "decoder", "tail"]
    got = {}
    for name, a, b in zip(names, bounds, bounds[1:]):
        clock.t = a
        m.begin_window(name)
        clock.t = b
        got[name] = m.end_window(name)
    total = sum(r.energy_gpu_sampled_j for r in got.values())
    assert total == pytest.approx(PowerTrace.read_csv(SYNTHETIC).energy_total_j, rel=1e-9)
    assert got["denoiser"].energy_gpu_j / got["denoiser"].time_s > 400  # ~455 W
    assert got["idle"].energy_gpu_j / got["idle"].time_s < 100


def test_replay_past_the_end_and_loop(tmp_path):
    path = tmp_path / "a100+flat+cuda0.csv"
    path.write_text("# recorded? no: a flat test trace\nt_s,power_w\n0,100\n1,100\n2,100\n")
    clock = FakeClock()
    m = ReplayMeter({0: path}, clock=clock)
    m.begin_window("w")
    clock.t = 2.5
    with pytest.raises(MeterError, match="past the end"):
        m.end_window("w")
    clock.t = 0.0
    looping = ReplayMeter([path, path], clock=clock, loop=True)
    looping.begin_window("w")
    clock.t = 5.0
    r = looping.end_window("w")
    assert r.energy_gpu_j == pytest.approx(2 * 500.0)
    assert r.per_gpu_j == {0: pytest.approx(500.0), 1: pytest.approx(500.0)}
    assert r.energy_gpu_counter_j is None and r.estimated == {"energy_gpu_j": False}


def test_replay_rejects_bad_traces(tmp_path):
    bad = tmp_path / "x+y+cuda0.csv"
    bad.write_text("t_s,power_w\n0,100\n0,120\n")
    with pytest.raises(DataError, match="must increase"):
        PowerTrace.read_csv(bad)
    bad.write_text("time,watts\n0,1\n1,1\n")
    with pytest.raises(DataError, match="header"):
        PowerTrace.read_csv(bad)
    with pytest.raises(DataError, match="<gpu>"):
        parse_trace_name("trace.csv")


# -- estimate --------------------------------------------------------------------------
def test_estimate_meter_flags_estimates_and_states_the_power():
    clock = FakeClock()
    m = EstimateMeter(gpu_power_w=700.0, gpu_count=2, cpu_power_w=65.0, source="H100 TDP", clock=clock)
    m.begin_window("call")
    clock.t = 3.0
    r = m.end_window("call")
    assert r.energy_gpu_j == pytest.approx(2 * 700.0 * 3.0)
    assert r.per_gpu_j == {0: pytest.approx(2100.0), 1: pytest.approx(2100.0)}
    assert r.energy_cpu_j == pytest.approx(195.0) and r.energy_ram_j is None
    assert r.estimated == {"energy_gpu_j": True, "energy_cpu_j": True}
    assert r.assumed_power_w == {"gpu": 700.0, "cpu": 65.0}
    assert r.any_estimated and "700 W" in r.notes and "H100 TDP" in r.notes
    assert r.meter == "estimate"


def test_estimate_meter_without_power_reports_time_only():
    clock = FakeClock()
    m = EstimateMeter(clock=clock)
    m.begin_window("w")
    clock.t = 1.5
    r = m.end_window("w")
    assert r.time_s == 1.5 and r.energy_total_j is None and r.estimated == {}
    assert "assume_power_w" in r.notes
    with pytest.raises(MeterError, match="finite number of watts"):
        EstimateMeter(cpu_power_w=-5)


# -- CodeCarbon (real, offline) ------------------------------------------------------
@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError(f"network access attempted: {a!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@needs_codecarbon
def test_codecarbon_offline_tracker_runs(no_network, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = CodeCarbonMeter("FRA")
    try:
        m.begin_window("call")
        end = time.perf_counter() + 0.2
        x = 0
        while time.perf_counter() < end:
            x += 1
        r = m.end_window("call")
    finally:
        m.close()
    assert r.energy_cpu_j >= 0 and r.energy_ram_j >= 0
    assert r.estimated["energy_ram_j"] is True
    assert r.estimated["energy_cpu_j"] is (not m.cpu_measured)
    if m.cpu_mode not in ("intel_rapl", "windows_emi", "intel_power_gadget"):
        assert r.estimated["energy_cpu_j"] is True
    assert r.carbon_intensity_g_per_kwh and r.carbon_intensity_g_per_kwh > 0
    assert r.meter == "codecarbon" and "offline, FRA" in r.notes
    assert list(tmp_path.iterdir()) == []  # save_to_file=False: nothing written


@needs_codecarbon
def test_codecarbon_unknown_country_is_a_meter_error(tmp_path):
    with pytest.raises(UnknownCountryError, match="country_iso_code"):
        CodeCarbonMeter("XYZ")
    assert issubclass(UnknownCountryError, MeterError)
    with pytest.raises(UnknownCountryError, match="country_iso_code"):  # up front, before any meter starts
        default_meter(country_iso_code="XYZ", rapl_root=str(tmp_path / "none"))


def test_a_missing_meter_package_is_named_and_probed_around(monkeypatch, tmp_path):
    for name in ("codecarbon", "codecarbon.input", "zeus.device.gpu", "zeus.monitor.energy"):
        monkeypatch.setitem(sys.modules, name, None)  # what `import` sees without the extras
    with pytest.raises(MissingMeterDependencyError, match=r"codecarbon.*\[carbon\]"):
        CodeCarbonMeter("USA")
    with pytest.raises(MissingMeterDependencyError, match=r"cannot import zeus.*\[gpu\]"):
        NvmlMeter()
    assert issubclass(MissingMeterDependencyError, MeterError)
    assert issubclass(MissingMeterDependencyError, MissingDependencyError)
    m = make_meter("auto", country="XYZ", rapl_root=str(tmp_path / "none"))  # no CodeCarbon: no check
    m.begin_window("w")
    r = m.end_window("w")
    m.close()
    assert "GPU not measured: cannot import zeus" in r.notes
    assert "CodeCarbon not used: cannot import codecarbon" in r.notes


def test_codecarbon_module_never_starts_the_online_tracker():
    src = Path(meters.__file__).with_name("codecarbon_meter.py").read_text()
    assert "OfflineEmissionsTracker(" in src
    assert " EmissionsTracker(" not in src and "track_emissions" not in src


# -- RAPL --------------------------------------------------------------------------------
def test_rapl_on_this_machine_reads_or_says_why():
    try:
        m = RaplMeter(start_poller=False)
    except MeterError as e:
        assert "RAPL" in str(e) or "powercap" in str(e)
        return
    m.begin_window("w")
    r = m.end_window("w")
    m.close()
    assert r.energy_cpu_j >= 0 and r.estimated["energy_cpu_j"] is False


def _powercap(root: Path, pkg_uj: int, dram_uj: int, max_uj: int = 1_000_000) -> None:
    for d, name, value in (("intel-rapl:0", "package-0", pkg_uj), ("intel-rapl:0:0", "dram", dram_uj)):
        (root / d).mkdir(parents=True, exist_ok=True)
        (root / d / "name").write_text(name + "\n")
        (root / d / "energy_uj").write_text(f"{value}\n")
        (root / d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (root / "intel-rapl:0:1").mkdir(exist_ok=True)  # core: inside the package figure, skipped
    (root / "intel-rapl:0:1" / "name").write_text("core\n")


def test_rapl_fake_tree_with_wraparound(tmp_path):
    _powercap(tmp_path, pkg_uj=900_000, dram_uj=100_000)
    clock = FakeClock()
    m = RaplMeter(tmp_path, clock=clock, start_poller=False)
    m.begin_window("w")
    _powercap(tmp_path, pkg_uj=200_000, dram_uj=400_000)  # the package counter wrapped
    m.poll()
    _powercap(tmp_path, pkg_uj=500_000, dram_uj=700_000)
    clock.t = 1.0
    r = m.end_window("w")
    m.close()
    assert r.energy_cpu_j == pytest.approx(0.6)  # (1e6 - 9e5 + 2e5) + 3e5 uJ
    assert r.energy_ram_j == pytest.approx(0.6)
    assert r.estimated == {"energy_cpu_j": False, "energy_ram_j": False}
    assert "wrapped 1x" in r.notes


def test_rapl_unreadable_counter_is_a_meter_error(tmp_path, monkeypatch):
    _powercap(tmp_path, 1, 1)
    with pytest.raises(MeterError, match="RAPL cannot be read"):
        RaplMeter(tmp_path / "missing", start_poller=False)
    with pytest.raises(MeterError, match="no RAPL package zones"):
        RaplMeter(tmp_path / "intel-rapl:0:0", start_poller=False)
    real_read = Path.read_text

    def read_text(self, *a, **k):  # what Linux does to non-root readers since 2020
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(MeterError, match="not readable by this user.*chmod o\\+r"):
        RaplMeter(tmp_path, start_poller=False)


# -- composite and default_meter ------------------------------------------------------
def _m(**kw) -> Measurement:
    base = dict(
        name="w", time_s=1.0, energy_gpu_j=None, energy_gpu_counter_j=None, energy_gpu_sampled_j=None,
        energy_cpu_j=None, energy_ram_j=None, per_gpu_j={}, samples=0, estimated={}, meter="x", notes="",
    )
    base.update(kw)
    return Measurement(**base)


def test_merge_prefers_measured_over_estimated():
    est = _m(energy_cpu_j=50.0, energy_ram_j=5.0, estimated={"energy_cpu_j": True, "energy_ram_j": True},
             meter="codecarbon", carbon_intensity_g_per_kwh=56.0)
    rapl = _m(energy_cpu_j=40.0, estimated={"energy_cpu_j": False}, meter="rapl")
    gpu = _m(energy_gpu_j=300.0, energy_gpu_counter_j=300.0, energy_gpu_sampled_j=290.0, per_gpu_j={0: 300.0},
             samples=20, estimated={"energy_gpu_j": False}, meter="nvml")
    r = merge_measurements("w", 1.0, [gpu, est, rapl], notes=["probe note"])
    assert (r.energy_gpu_j, r.energy_cpu_j, r.energy_ram_j) == (300.0, 40.0, 5.0)
    assert r.estimated == {"energy_gpu_j": False, "energy_cpu_j": False, "energy_ram_j": True}
    assert r.samples == 20 and r.energy_gpu_sampled_j == 290.0
    assert r.carbon_intensity_g_per_kwh == 56.0
    assert r.meter == "nvml+codecarbon+rapl" and r.notes.startswith("probe note")


def test_measurement_rejects_negative_energy_and_pickles():
    with pytest.raises(MeterError, match="finite number >= 0"):
        _m(energy_gpu_j=-1.0)
    m = _m(energy_cpu_j=1.0, estimated={"energy_cpu_j": True}, notes="n")
    assert pickle.loads(pickle.dumps(m)) == m
    row = m.as_row()
    assert row["phase"] == "w" and row["duration_s"] == 1.0 and row["notes"] == "estimated: energy_cpu_j; n"


@needs_zeus
def test_composite_nests_and_closes_everything(monkeypatch):
    fake = FakeNVML(h100s(1, power_w=100.0))
    clock = fake.clock
    gpu = nvml_meter(fake, monkeypatch)
    comp = CompositeMeter([gpu, EstimateMeter(cpu_power_w=10.0, clock=clock)], clock=clock)
    comp.begin_window("call")
    fake.advance(1.0)
    comp.begin_window("phase")
    fake.advance(1.0)
    inner = comp.end_window("phase")
    outer = comp.end_window("call")
    comp.close()
    assert inner.energy_gpu_j == pytest.approx(100.0, abs=1e-3) and inner.energy_cpu_j == pytest.approx(10.0)
    assert outer.energy_gpu_j == pytest.approx(200.0, abs=1e-3)
    assert outer.estimated == {"energy_gpu_j": False, "energy_cpu_j": True}
    assert outer.meter == "zeus(nvml)+estimate"
    assert gpu._closed


@needs_zeus
def test_default_meter_without_anything_still_runs(monkeypatch, tmp_path):
    FakeNVML([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND).install(monkeypatch)
    m = default_meter(country_iso_code=None, rapl_root=str(tmp_path / "none"))
    m.begin_window("call")
    r = m.end_window("call")
    m.close()
    assert r.meter == "estimate" and r.energy_total_j is None and r.time_s >= 0
    assert "GPU not measured: Zeus found no GPU" in r.notes and "RAPL not read" in r.notes

    m = default_meter(country_iso_code=None, assume_power_w=45.0, rapl_root=str(tmp_path / "none"))
    m.begin_window("call")
    r = m.end_window("call")
    m.close()
    assert r.estimated == {"energy_cpu_j": True} and r.assumed_power_w == {"cpu": 45.0}

    with pytest.raises(NoGPUError, match="gpu_tdp_w"):
        default_meter(gpu_indices=[0], country_iso_code=None, rapl_root=str(tmp_path / "none"))
    m = default_meter(gpu_indices=[0, 1], gpu_tdp_w=700.0, country_iso_code=None, rapl_root=str(tmp_path / "none"))
    m.begin_window("w")
    r = m.end_window("w")
    m.close()
    assert r.estimated == {"energy_gpu_j": True} and set(r.per_gpu_j) == {0, 1}
    assert r.assumed_power_w == {"gpu": 700.0}


@needs_codecarbon
@needs_zeus
def test_default_meter_uses_zeus_rapl_and_codecarbon(monkeypatch, tmp_path, no_network):
    gpus = h100s(2)
    gpus[0].power_w, gpus[1].power_w = 100.0, 300.0
    fake = FakeNVML(gpus)
    fake.install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    _powercap(tmp_path, 0, 0)
    m = default_meter(country_iso_code="USA", rapl_root=str(tmp_path))
    assert m.name == "zeus(nvml)+rapl+codecarbon"
    nvml = m.parts[0]
    windows = {}
    real_end = nvml.end_window
    monkeypatch.setattr(nvml, "end_window", lambda key: windows.setdefault(key, real_end(key)))
    m.begin_window("call")
    time.sleep(0.05)
    r = m.end_window("call")
    m.close()
    assert [d.cuda_index for d in nvml.devices] == [0]  # cuda:0 is NVML 1, the 300 W one
    # the fake counter only moves with the fake clock; sampled power follows real time, over
    # the NVML window (the innermost: the whole window around it may be longer or shorter
    # by the time the other meters take to begin and end)
    assert r.energy_gpu_counter_j == 0.0 and r.energy_gpu_j == 0.0
    assert r.energy_gpu_sampled_j == pytest.approx(300.0 * windows["call"].time_s, rel=1e-9)
    assert r.estimated == {"energy_gpu_j": False, "energy_cpu_j": False, "energy_ram_j": False}
    assert r.carbon_intensity_g_per_kwh > 0


# -- the public surface ----------------------------------------------------------------
@needs_zeus
def test_all_matches_public_names_and_meters_follow_the_protocol(tmp_path, monkeypatch):
    public = {n for n in vars(meters) if not n.startswith("_") and n not in {"annotations", "Sequence"}}
    public -= {"base", "zeus_meter", "rapl", "replay", "estimate", "codecarbon_meter", "factory"}
    assert set(meters.__all__) == public
    fake = FakeNVML(h100s(1))
    for m in (EstimateMeter(), ReplayMeter(SYNTHETIC), nvml_meter(fake, monkeypatch)):
        assert isinstance(m, Meter)
        m.close()


def test_meters_import_no_heavy_libraries():
    src = "".join(p.read_text() for p in Path(meters.__file__).parent.glob("*.py"))
    assert "import torch" not in src and "import pandas" not in src


@needs_zeus
def test_a_forgotten_nvml_meter_stops_its_thread(monkeypatch):
    import gc

    FakeNVML(h100s(1)).install(monkeypatch)
    m = NvmlMeter(sample_interval_s=0.01)
    time.sleep(0.03)
    del m
    gc.collect()
    time.sleep(0.03)
    assert not any(t.name == "zeus-power-sampler" for t in threading.enumerate())


@needs_zeus
def test_default_meter_estimates_from_the_registry_tdp(monkeypatch, tmp_path):
    from scaling.errors import UnknownGPUError

    FakeNVML([], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED).install(monkeypatch)
    none = str(tmp_path / "none")
    m = default_meter(gpu="h100", country_iso_code=None, rapl_root=none)
    m.begin_window("w")
    r = m.end_window("w")
    m.close()
    assert r.assumed_power_w == {"gpu": 700.0} and r.estimated == {"energy_gpu_j": True}
    assert "h100-sxm in the hardware registry" in r.notes
    assert EstimateMeter.for_gpu("h100", gpu_count=8).gpu_power_w == 700.0
    with pytest.raises(UnknownGPUError):
        default_meter(gpu="not-a-gpu", country_iso_code=None, rapl_root=none)


# -- the meter factory ----------------------------------------------------------------
def test_make_meter_checks_the_name_before_any_probe(monkeypatch):
    from profilers.energy.meters import factory

    def no_probe(*a, **k):
        raise AssertionError("a meter was probed before the name was checked")

    for cls in ("NvmlMeter", "RaplMeter", "CodeCarbonMeter", "EstimateMeter", "ReplayMeter"):
        monkeypatch.setattr(factory, cls, no_probe)
    for bad, rule in (("nvlm", "is unknown"), ("", "is unknown"), ("replay:", "names no trace"),
                      ("replay:/no/such/trace.csv", "no trace file")):
        with pytest.raises(UnknownMeterError, match=rule) as info:
            make_meter(bad, device="cuda")
        message = str(info.value)
        assert "\n" not in message and repr(bad) in message
    with pytest.raises(UnknownMeterError, match="`meter` 'NVML' is unknown: use one of auto, nvml, estimate or "
                                                "replay:TRACE.csv"):
        check_meter_name("NVML")
    with pytest.raises(UnknownMeterError, match="not a meter name"):
        check_meter_name(3)
    assert issubclass(UnknownMeterError, MeterError)
    assert check_meter_name(f"replay:{SYNTHETIC}") == f"replay:{SYNTHETIC}"


def test_make_meter_estimate_replay_and_objects(tmp_path):
    clock = FakeClock()
    cpu = make_meter("estimate", device="cpu")
    assert cpu.cpu_power_w == meters.DEFAULT_CPU_POWER_W and "default CPU power" in cpu.source
    assert make_meter("estimate", device="cpu", cpu_power_w=30.0).cpu_power_w == 30.0
    gpu = make_meter("estimate", device="cuda:1", gpu="h100")
    assert gpu.gpu_power_w == 700.0 and gpu.gpu_count == 1 and "h100-sxm" in gpu.source
    with pytest.raises(MeterError, match="needs the GPU's TDP"):
        make_meter("estimate", device="cuda")
    with pytest.raises(NoGPUError, match="'nvml' measures a GPU"):
        make_meter("nvml", device="cpu")
    replay = make_meter(f"replay:{SYNTHETIC}")
    assert isinstance(replay, ReplayMeter) and replay.loop
    mine = EstimateMeter(clock=clock)
    assert make_meter(mine) is mine  # a meter object is its caller's
    with pytest.raises(InvalidSettingError, match="`device` 'tpu'"):
        make_meter("auto", device="tpu")


def test_make_meter_for_cpu_work_always_estimates_the_cpu(tmp_path):
    m = make_meter("auto", device="cpu", country=None, rapl_root=str(tmp_path / "none"))
    m.begin_window("w")
    r = m.end_window("w")
    m.close()
    assert m.name == "estimate" and r.assumed_power_w == {"cpu": meters.DEFAULT_CPU_POWER_W}
    assert "RAPL not read" in r.notes and r.estimated == {"energy_cpu_j": True}
    m = make_meter("auto", device="cpu", country=None, cpu_power_w=20.0, rapl_root=str(tmp_path / "none"))
    assert m.parts[0].cpu_power_w == 20.0
    m.close()


class _ClosingStub(EstimateMeter):
    def __init__(self, error=None):
        super().__init__()
        self.error = error

    def close(self):
        super().close()
        if self.error is not None:
            raise self.error


def test_composite_close_reports_meter_errors_and_raises_bugs_as_they_are():
    parts = [_ClosingStub(MeterError("counter gone")), _ClosingStub()]
    with pytest.raises(MeterError, match="could not close every meter: estimate: counter gone"):
        CompositeMeter(parts).close()
    assert all(p._closed for p in parts)
    parts = [_ClosingStub(), _ClosingStub(KeyError("bug")), _ClosingStub()]
    with pytest.raises(KeyError):  # not a MeterError: a bug, and every other part still closes
        CompositeMeter(parts).close()
    assert all(p._closed for p in parts)


def test_meters_state_their_resolution(tmp_path):
    _powercap(tmp_path, 0, 0)
    rapl = RaplMeter(tmp_path, start_poller=False)
    replay = ReplayMeter(SYNTHETIC)
    t = PowerTrace.read_csv(SYNTHETIC).t_s
    spacing = sorted(b - a for a, b in zip(t, t[1:]))
    assert EstimateMeter().resolution_s == 0.0 and rapl.resolution_s == 0.001
    assert spacing[0] <= replay.resolution_s <= spacing[-1]
    assert CompositeMeter([EstimateMeter(), rapl, replay]).resolution_s == replay.resolution_s
    rapl.close()
