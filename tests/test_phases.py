"""Phase hooks: energy, time and FLOPs per phase of tiny real diffusers pipelines, on the CPU.

Time is a fake clock: each component call of the real tiny pipeline lets a set amount of fake
time pass (:func:`fake_compute`), the meters read that clock, so every duration and energy
below is exact, whatever the load on the machine.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from fake_clock import FakeClock, fake_compute  # noqa: E402

from profilers.energy.meters import EstimateMeter, Measurement, NvmlMeter  # noqa: E402
from profilers.energy.meters.base import MeterBase  # noqa: E402
from profilers.energy.phases import (  # noqa: E402
    PhaseRecorder,
    count_phase_flops,
    meter_resolution_s,
    rows_of,
)
from profilers.energy.pipelines import call_kwargs, load_prompts, tiny_pipeline  # noqa: E402
from scaling.settings import make_setting  # noqa: E402

torch.set_num_threads(1)

PHASES = {
    "sd": ["text_encoder", "denoiser", "decoder"],
    "wan": ["text_encoder", "denoiser", "decoder"],
    "audioldm": ["text_encoder", "denoiser", "decoder", "vocoder"],
}
# component calls per generation at 2 steps with CFG: SD/AudioLDM batch cond+uncond in one
# denoiser call; Wan calls its transformer twice per step; every pipeline encodes the
# prompt and the (empty) negative prompt in two text-encoder calls.
DENOISER_CALLS = {"sd": 2, "wan": 4, "audioldm": 2}


@pytest.fixture(scope="module")
def tiny():
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = tiny_pipeline(kind)
        return cache[kind]

    return get


def _kwargs(built, seed=0):
    setting = make_setting(built.spec, precision="fp32")
    return call_kwargs(built, setting, [load_prompts(setting.modality)[0]], seed=seed)


class CountingSync:
    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1


#: Fake seconds one call of each phase's component takes (powers of two: exact sums).
CALL_S = {"text_encoder": 2**-7, "denoiser": 2**-5, "decoder": 2**-6, "vocoder": 2**-8}


@pytest.mark.parametrize("kind", ["sd", "wan", "audioldm"])
def test_tiny_pipeline_phases_add_up(tiny, kind):
    built = tiny(kind)
    clock = FakeClock()
    meter = EstimateMeter(cpu_power_w=100.0, clock=clock)
    sync = CountingSync()
    with fake_compute(built, clock, CALL_S), PhaseRecorder(built.pipe, meter, built.roles, sync=sync) as rec:
        rec.measure(built.pipe, **_kwargs(built))  # warm-up
        sync.n = 0
        out, m = rec.measure(built.pipe, **_kwargs(built))
    assert list(m.phases) == PHASES[kind]
    assert m.phases["denoiser"].calls == DENOISER_CALLS[kind]
    assert m.phases["text_encoder"].calls == 2
    # one sync before the call, one at each side of every component call, one at the end
    assert sync.n == 2 + 2 * sum(m.component_calls.values())
    for role, ph in m.phases.items():
        assert ph.time_s == ph.calls * CALL_S[role]  # inside its calls, and between them (no fake time)
        assert ph.energy_cpu_j == pytest.approx(100.0 * ph.time_s)
        assert ph.estimated["energy_cpu_j"] is True
    # the chain of windows covers the call: phases + unattributed + gap = total
    assert m.total.time_s == sum(ph.time_s for ph in m.phases.values())
    assert m.other.time_s == 0.0 and m.gap_time_s == 0.0  # no fake time passes outside the components
    assert m.gap_fraction() == 0.0
    rows = rows_of(m)
    assert [r["phase"] for r in rows] == PHASES[kind] + ["total"]
    assert "measured on its own" in rows[-1]["notes"] and "gap" in rows[-1]["notes"]
    assert all(r["estimated"] for r in rows)
    assert out is not None


def test_hooks_do_not_change_the_output_and_are_removed(tiny):
    built = tiny("sd")
    plain = built.pipe(**_kwargs(built, seed=3))[0]
    with PhaseRecorder(built.pipe, EstimateMeter(cpu_power_w=10.0), built.roles) as rec:
        assert "forward" in built.pipe.unet.__dict__ and "decode" in built.pipe.vae.__dict__
        hooked, _ = rec.measure(built.pipe, **_kwargs(built, seed=3))
    assert torch.equal(plain, hooked[0])
    for name in built.roles:
        module = getattr(built.pipe, name)
        assert "forward" not in module.__dict__ and "decode" not in module.__dict__


def test_a_failing_call_closes_every_window(tiny):
    built = tiny("sd")
    meter = EstimateMeter(cpu_power_w=10.0)

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")

    orig = built.pipe.vae.decode
    built.pipe.vae.decode = boom
    try:
        with PhaseRecorder(built.pipe, meter, built.roles) as rec:
            with pytest.raises(RuntimeError, match="out of memory"):
                rec.measure(built.pipe, **_kwargs(built))
            assert meter.open_windows == ()
            _, m = rec.measure(lambda: None)  # the recorder is usable again
            assert m.phases == {}
    finally:
        del built.pipe.vae.decode
    assert built.pipe.vae.decode.__func__ is orig.__func__


def test_flops_per_phase_counted_with_attention(tiny):
    built = tiny("sd")
    flops = count_phase_flops(built.pipe, built.roles, built.pipe, **_kwargs(built))
    assert set(flops) == {"text_encoder", "denoiser", "decoder"}
    assert all(v > 0 for v in flops.values())
    # the UNet's cross-attention at 2x2 latents: without the math kernel forced, SDPA on CPU
    # escapes the counter; with it, a second count with attention disabled must be smaller
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as c:
        built.pipe.text_encoder(torch.zeros(2, 16, dtype=torch.long))
    escaped = c.get_total_flops()
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as c2:
        built.pipe.text_encoder(torch.zeros(2, 16, dtype=torch.long))
    assert c2.get_total_flops() > escaped
    assert flops["text_encoder"] == c2.get_total_flops()  # 2 calls of batch 1 == 1 call of batch 2


# -- resolution: a coarse counter ---------------------------------------------------------------

class CoarseCounterMeter(MeterBase):
    """A GPU counter that ticks only every ``step_s`` seconds (as NVML's does), on ``clock``."""

    name = "coarse"

    def __init__(self, clock, power_w=200.0, step_s=0.02):
        super().__init__(clock)
        self.power_w = power_w
        self.resolution_s = step_s
        self._t0 = clock()

    def _snapshot(self):
        t = self._clock()
        ticks = math.floor((t - self._t0) / self.resolution_s)
        return t, ticks * self.resolution_s * self.power_w

    def _measure(self, key, start, end):
        return Measurement(name=key, time_s=end[0] - start[0], energy_gpu_j=end[1] - start[1],
                           energy_gpu_counter_j=end[1] - start[1], energy_gpu_sampled_j=None, energy_cpu_j=None,
                           energy_ram_j=None, per_gpu_j={0: end[1] - start[1]}, samples=0,
                           estimated={"energy_gpu_j": False}, meter=self.name, notes="")


def test_short_phases_are_flagged_and_never_zero(tiny):
    built = tiny("sd")
    clock = FakeClock()
    meter = CoarseCounterMeter(clock, power_w=200.0, step_s=0.25)  # longer than any phase
    assert meter_resolution_s(meter) == 0.25

    def slow_call(**kw):  # set-up before the components spans two ticks; each phase reads 0 J
        clock.advance(0.625)
        return built.pipe(**kw)

    seconds = dict.fromkeys(CALL_S, 2**-7)  # 5 component calls: 0.039 s in all, no tick
    with fake_compute(built, clock, seconds), PhaseRecorder(built.pipe, meter, built.roles,
                                                            repeat_short=False) as rec:
        _, m = rec.measure(slow_call, **_kwargs(built))
    assert m.total.energy_gpu_j == 2 * 0.25 * 200.0 and m.other.energy_gpu_j == m.total.energy_gpu_j
    for ph in m.phases.values():
        assert ph.low_confidence
        # the meter read 0 J: the phase takes its time share of the call, as an estimate
        assert ph.energy_gpu_j == pytest.approx(m.total.energy_gpu_j * ph.time_s / m.total.time_s)
        assert ph.estimated["energy_gpu_j"] is True
    rows = rows_of(m)
    assert all("low_confidence" in r["flags"] for r in rows[:-1])
    assert "phase_low_confidence" in rows[-1]["flags"]
    assert all(r["energy_gpu_j"] > 0 for r in rows)
    assert all(r["estimated"] for r in rows[:-1])  # time-share estimates, and said so
    assert all("time share" in r["notes"] for r in rows[:-1] if "estimated" in r["notes"])


def test_short_phases_are_replayed_until_resolved(tiny):
    built = tiny("sd")
    clock = FakeClock()
    meter = CoarseCounterMeter(clock, power_w=200.0, step_s=2**-6)
    seconds = dict.fromkeys(CALL_S, 2**-8)  # every call below the resolution
    with fake_compute(built, clock, seconds), PhaseRecorder(built.pipe, meter, built.roles, repeat_short=True,
                                                            min_repeat_s=2**-4, clock=clock) as rec:
        _, m = rec.measure(built.pipe, **_kwargs(built))
    assert list(m.phases) == PHASES["sd"]
    for ph in m.phases.values():
        # replayed until 2**-4 s have passed: 2 calls of 2**-8 s a round take 8 rounds, 1 call 16
        assert ph.repeated == (2**-4) / ph.time_s
        assert not ph.low_confidence
        assert ph.estimated["energy_gpu_j"] is False  # measured, in isolation
        assert ph.energy_gpu_j == pytest.approx(200.0 * ph.time_s)  # the counter's 4 ticks, per round
        assert "isolated repeats" in ph.notes[0]
        assert not any("low confidence" in n for n in ph.notes)
    assert all("phase_repeated" in r["flags"] for r in rows_of(m)[:-1])


# -- NVML at the hardware boundary ----------------------------------------------------------------

def _fake_pipeline(fake, plan):
    """Components that 'run' on a fake GPU: each call lets fake time pass at a set power."""

    class Component(torch.nn.Module):
        def __init__(self, seconds, power_w):
            super().__init__()
            self.seconds, self.power_w = seconds, power_w

        def forward(self, x=None):
            fake.gpus[0].power_w = self.power_w
            fake.advance(self.seconds)
            fake.gpus[0].power_w = 50.0
            return x

        def decode(self, z):
            return self.forward(z)

    pipe = SimpleNamespace(**{name: Component(s, p) for name, (s, p) in plan.items()})

    def call():
        pipe.text_encoder()
        pipe.text_encoder()
        for _ in range(10):
            pipe.unet()
            fake.advance(0.01)  # the scheduler step at 50 W: part of the denoiser phase
        fake.advance(0.1)  # latent post-processing: unattributed
        pipe.vae.decode(None)

    return pipe, call


def test_nvml_energy_per_phase_with_fake_nvml():
    pytest.importorskip("zeus", reason="the GPU meter is Zeus's, over a fake NVML (the [gpu] extra)")
    from fake_nvml import FakeNVML, h100s

    fake = FakeNVML(h100s(1, power_w=50.0))
    meter = fake.meter(clock=fake.clock, start_sampler=False)  # Zeus over the fake NVML, installed until close
    assert meter_resolution_s(meter) == 0.1
    plan = {"text_encoder": (0.2, 100.0), "unet": (0.1, 300.0), "vae": (0.5, 200.0)}
    pipe, call = _fake_pipeline(fake, plan)
    roles = {"text_encoder": "text_encoder", "unet": "denoiser", "vae": "decoder"}
    with PhaseRecorder(pipe, meter, roles, device="cpu", flops={"denoiser": 1e12}) as rec:
        _, m = rec.measure(call)
    meter.close()
    te, den, dec = m.phases["text_encoder"], m.phases["denoiser"], m.phases["decoder"]
    assert te.energy_gpu_j == pytest.approx(2 * 0.2 * 100.0, abs=0.01)
    # 10 calls at 300 W for 0.1 s, and the 9 scheduler steps between them at 50 W
    assert den.energy_gpu_j == pytest.approx(10 * 0.1 * 300.0 + 9 * 0.01 * 50.0, abs=0.01)
    assert den.time_s == pytest.approx(10 * 0.1 + 9 * 0.01)
    assert dec.energy_gpu_j == pytest.approx(0.5 * 200.0, abs=0.01)
    assert m.other.energy_gpu_j == pytest.approx((0.01 + 0.1) * 50.0, abs=0.01)
    assert m.total.energy_gpu_j == pytest.approx(40 + 304.5 + 100 + 5.5, abs=0.02)
    assert abs(m.gap_j["energy_gpu_j"]) < 0.01  # counters: phases + other == total
    assert not te.low_confidence and not den.low_confidence
    assert te.estimated["energy_gpu_j"] is False
    assert den.flop == 1e12
    rows = rows_of(m)
    assert rows[-1]["estimated"] is False and rows[-1]["meter"] == "zeus(nvml)"
