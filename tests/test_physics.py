"""Energy and time agree with physics (issue 16): on every registered model, GPU and precision where
the model fits, the predicted time is no faster than the roofline and the implied power lies
between the idle floor and the board's TDP (scaling/app/physics.py)."""

from __future__ import annotations

import math

import pytest

import scaling
from profilers.flops.profile import has_table
from scaling.app.physics import IDLE_FRACTION_OF_TDP, bound, idle_floor_w, profile_byte, roofline_time_s
from scaling.errors import DoesNotFitError
from scaling.hardware import list_gpus, resolve_gpu
from scaling.precision import precision_plan
from scaling.registry import list_models

PRECISIONS = ("bf16", "fp16", "fp8", "fp32")
REL = 1e-9  # floating-point slack only


@pytest.fixture(scope="module")
def law():
    return scaling.load_law()


def _models():
    """The registered models the closed form can profile (a model added without its FLOP table yet
    cannot be predicted at all)."""
    return [s for s in list_models() if has_table(s)]


def _sweep(law):
    """Every model's default setting x every GPU x PRECISIONS where it fits (resident)."""
    out = []
    for spec in _models():
        for gpu in list_gpus():
            for p in PRECISIONS:
                try:
                    out.append(scaling.predict(spec, gpu=gpu, precision=p, law=law))
                except DoesNotFitError:
                    continue
    return out


@pytest.fixture(scope="module")
def sweep(law):
    return _sweep(law)


def test_the_sweep_covers_the_registry(sweep):
    models = {e.model_id for e in sweep}
    gpus = {e.gpu for e in sweep}
    assert len(_models()) >= 20
    assert models == {s.id for s in _models()}, "every model fits some registered GPU at some precision"
    assert gpus == {g.key for g in list_gpus()}
    assert {e.precision for e in sweep} == set(PRECISIONS)


def test_time_never_beats_the_roofline(sweep):
    for e in sweep:
        gpu = resolve_gpu(e.gpu)
        plan = precision_plan(e.precision, gpu)
        floor = e.flop / plan.peak_flop_per_s
        prof = scaling.profile(e.setting)
        byte = profile_byte(prof)
        if byte is not None:  # bytes / bandwidth once the profile counts bytes
            floor = max(floor, byte / gpu.memory_bandwidth_byte_per_s)
        assert e.time_s >= floor * (1 - REL), (e.model_id, e.gpu, e.precision, e.time_s, floor)
        assert e.time_lo_s >= floor * (1 - REL), (e.model_id, e.gpu, e.precision)
        assert e.roofline_time_s == pytest.approx(floor)


def test_implied_power_lies_between_idle_and_tdp(sweep):
    for e in sweep:
        gpu = resolve_gpu(e.gpu)
        power = e.energy_j / e.time_s
        idle = gpu.idle_power_w if gpu.idle_power_w is not None else IDLE_FRACTION_OF_TDP * gpu.tdp_w
        assert power <= gpu.tdp_w * (1 + REL), (e.model_id, e.gpu, e.precision, power, gpu.tdp_w)
        assert power >= idle * (1 - REL), (e.model_id, e.gpu, e.precision, power, idle)
        assert e.power_w == pytest.approx(power)
        assert e.time_lo_s <= e.time_s <= e.time_hi_s and e.energy_lo_j <= e.energy_j <= e.energy_hi_j


def test_every_clamp_is_said(sweep):
    clamped = [e for e in sweep if e.clamps]
    assert clamped, "the separate energy and time fits disagree with physics somewhere: the sweep must see it"
    for e in sweep:
        notes = " ".join(e.notes)
        for c in e.clamps:
            assert c in notes
        raised = e.law_time_s is not None and not math.isclose(e.time_s, e.law_time_s, rel_tol=1e-12)
        assert raised == any(c.startswith(("time raised", "time lowered", "energy raised")) for c in e.clamps)
        if any(c.startswith("time raised") and "TDP" in c for c in e.clamps):
            assert e.power_w == pytest.approx(e.tdp_w)


def test_component_times_move_with_the_total(sweep):
    for e in sweep[:: max(1, len(sweep) // 50)]:
        times = [c.time_s for c in e.components if c.time_s is not None]
        if times:
            assert sum(times) == pytest.approx(e.time_s, rel=1e-6)


# -- the rules one by one ---------------------------------------------------------------------------

def test_bound_raises_a_time_faster_than_the_roofline():
    gpu = resolve_gpu("h100")
    peak = gpu.peak_for("bf16")
    flop = peak * 10.0                                   # 10 s at peak
    out = bound((3000.0, 2500.0, 3600.0), (5.0, 4.0, 6.0), flop=flop, peak_flop_per_s=peak, gpu=gpu,
                precision="bf16")
    assert out.time_s[0] == pytest.approx(10.0) and out.time_s[1] >= 10.0 and out.time_s[2] >= 10.0
    assert out.energy_j == (3000.0, 2500.0, 3600.0), "the energy is kept"
    assert any("roofline" in c for c in out.clamps)


def test_bound_raises_time_to_energy_over_tdp_and_keeps_the_energy():
    gpu = resolve_gpu("rtx-4090")
    out = bound((9000.0, 7000.0, 11000.0), (10.0, 8.0, 12.5), flop=1e12, peak_flop_per_s=gpu.peak_for("bf16"),
                gpu=gpu)
    assert out.energy_j[0] == 9000.0 and out.time_s[0] == pytest.approx(9000.0 / gpu.tdp_w)
    assert out.time_factor == pytest.approx(out.time_s[0] / 10.0)
    assert out.time_s[2] == pytest.approx(12.5 * out.time_factor), "the interval moves with the value"
    assert out.time_s[1] >= 7000.0 / gpu.tdp_w
    assert any("TDP" in c for c in out.clamps)


def test_bound_lowers_a_time_the_energy_cannot_pay_for():
    gpu = resolve_gpu("l4")
    idle = idle_floor_w(gpu)
    out = bound((100.0, 80.0, 120.0), (100.0, 80.0, 120.0), flop=1e9, peak_flop_per_s=gpu.peak_for("bf16"), gpu=gpu)
    assert 100.0 / out.time_s[0] == pytest.approx(idle) and out.energy_j[0] == 100.0
    # when even the roofline time at idle power costs more than the energy law says, energy is raised
    flop = gpu.peak_for("bf16") * 100.0
    out = bound((100.0, 80.0, 120.0), (150.0, 120.0, 180.0), flop=flop, peak_flop_per_s=gpu.peak_for("bf16"), gpu=gpu)
    assert out.time_s[0] == pytest.approx(100.0) and out.energy_j[0] == pytest.approx(idle * 100.0)
    assert any(c.startswith("energy raised") for c in out.clamps)


def test_bound_leaves_a_physical_prediction_alone():
    gpu = resolve_gpu("h100")
    out = bound((3500.0, 3000.0, 4000.0), (10.0, 9.0, 11.0), flop=1e15, peak_flop_per_s=gpu.peak_for("bf16"), gpu=gpu)
    assert out.time_s == (10.0, 9.0, 11.0) and out.energy_j == (3500.0, 3000.0, 4000.0) and out.clamps == ()


def test_roofline_takes_bytes_when_the_profile_has_them():
    gpu = resolve_gpu("h100")
    bw = gpu.memory_bandwidth_byte_per_s
    roof, compute, memory = roofline_time_s(1e12, 1e15, byte=bw * 2.0, bandwidth_byte_per_s=bw)
    assert (roof, compute, memory) == pytest.approx((2.0, 1e-3, 2.0))
    assert roofline_time_s(1e12, 1e15) == (pytest.approx(1e-3), pytest.approx(1e-3), None)
    out = bound((1400.0, 1200.0, 1600.0), (1.0, 0.9, 1.1), flop=1e12, peak_flop_per_s=1e15, gpu=gpu, byte=bw * 2.0)
    assert out.time_s[0] == pytest.approx(2.0) and any("byte" in c for c in out.clamps)

    class WithBytes:
        total_byte = 5.0e9

    assert profile_byte(WithBytes()) == 5.0e9 and profile_byte(object()) is None


def test_the_issue_examples_are_physical_now(law):
    """Issue 16's examples: Wan2.1 on an L40S implied 407 W against 350 W; AudioLDM2 on an L4 105 W against 72 W."""
    for model, gpu in (("wan2.1", "l40s"), ("audioldm2", "l4")):
        e = scaling.predict(model, gpu=gpu, law=law)
        assert e.power_w <= e.tdp_w * (1 + REL)
        prof = scaling.profile(e.setting)
        raw = law.predict(e.setting, prof.by_role(), resolve_gpu(gpu), scaling.resolve_model(model),
                          byte_by_role=prof.by_role_byte())
        if raw.energy_j["total"].value / raw.time_s.value > e.tdp_w:
            assert any("TDP" in c for c in e.clamps) and e.time_s > raw.time_s.value
