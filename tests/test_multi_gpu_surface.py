"""The multi-GPU law on the product surface: predict / compare / plan with --gpus and --parallel."""

from __future__ import annotations

import pytest

from scaling.app.cli import main
from scaling.app.estimate import predict
from scaling.app.planning import compare, plan
from scaling.errors import InvalidSettingError


def test_done_when_command_prints_energy_time_power_interval_and_flags(capsys):
    rc = main(["predict", "-m", "wan2.1-14b", "--gpu", "h100", "--gpus", "8", "--parallel", "ulysses=2,ring=4"])
    out = capsys.readouterr().out
    assert rc == 0
    for word in ("energy", "time", "power", "90% interval", "flags", "plan ulysses=2,ring=4,cfg=1", "8 GPUs"):
        assert word in out, word


def test_estimate_on_eight_gpus_counts_every_gpu():
    one = predict("wan2.1-14b", gpu="h100")
    eight = predict("wan2.1-14b", gpu="h100", gpus=8, parallel="ulysses=2,ring=4")
    assert (eight.gpu_count, eight.plan) == (8, "ulysses=2,ring=4,cfg=1")
    assert eight.time_s < one.time_s and eight.energy_j > one.energy_j
    assert eight.energy_lo_j < eight.energy_j < eight.energy_hi_j
    assert eight.average_power_w == pytest.approx(eight.energy_j / eight.time_s)
    assert any("every GPU" in n for n in eight.notes)
    assert eight.to_dict()["gpu_count"] == 8
    assert (one.gpu_count, one.plan) == (1, None)


def test_a_gpu_never_measured_multi_gpu_is_an_extrapolation():
    est = predict("wan2.1-14b", gpu="b200", gpus=8, parallel="ulysses=2,ring=4")
    assert est.extrapolated
    assert any("multi-GPU" in r for r in est.extrapolation)


@pytest.mark.parametrize("argv", [
    ["--gpus", "3", "--parallel", "ulysses=3"],                  # 3 does not divide Wan 14B's 40 heads
    ["--no-cfg", "--gpus", "2", "--parallel", "cfg=2"],          # CFG parallel without CFG
    ["--gpus", "8", "--parallel", "ulysses=2,ring=2"],           # product 4 != 8
    ["--gpus", "8", "--parallel", "ulysses=x"],                  # not a plan
    ["--gpus", "0"],                                             # not a GPU count
])
def test_a_bad_plan_is_one_line_exit_2(argv, capsys):
    rc = main(["predict", "-m", "wan2.1-14b", "--gpu", "h100", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "error" in err


def test_the_api_checks_the_plan_before_work():
    with pytest.raises(InvalidSettingError, match="heads"):
        predict("wan2.1-14b", gpu="h100", gpus=3, parallel="ulysses=3")


def test_compare_over_gpu_counts_trades_time_for_energy(capsys):
    rows = compare("wan2.1-14b", gpus=["h100"], gpu_counts=[1, 2, 4, 8])
    assert len(rows) >= 4
    default = {r.estimate.gpu_count: r.estimate for r in rows
               if r.estimate.gpu_count == 1 or r.label.endswith("*")}
    assert sorted(default) == [1, 2, 4, 8]
    times = [default[n].time_s for n in (1, 2, 4, 8)]
    energies = [default[n].energy_j for n in (1, 2, 4, 8)]
    assert times == sorted(times, reverse=True) and energies == sorted(energies)
    per_output = [r.energy_per_output_j for r in rows.fitting]
    assert per_output == sorted(per_output)
    frame = rows.to_frame()
    assert {"gpu_count", "plan", "average_power_w"} <= set(frame.columns)
    assert main(["compare", "-m", "wan2.1-14b", "--gpu", "h100", "--gpus", "1,2,4,8"]) == 0
    out = capsys.readouterr().out
    # the power header may wrap at its space ("average" / "power"): the labels do not (tests/test_cli_audit_fixes.py)
    assert "average" in out and "(all GPUs)" in out and "x8" in out


def _workload(tmp_path, limit_s):
    path = tmp_path / "w.yaml"
    path.write_text(f"jobs:\n  - model: wan2.1-14b\n    count: 10\ngpus: [h100]\ngpu_counts: [1, 2, 4, 8]\n"
                    f"max_latency_s: {limit_s}\n")
    return path


def test_plan_with_a_latency_limit_picks_several_gpus(tmp_path, capsys):
    one = predict("wan2.1-14b", gpu="h100")
    path = _workload(tmp_path, one.time_s / 3)           # one GPU is too slow
    res = plan(path)
    job = res.jobs[0]
    assert job["gpu_count"] > 1 and job["meets_latency"] and job["time_s"] <= one.time_s / 3
    loose = plan(_workload(tmp_path, one.time_s * 2)).jobs[0]
    assert loose["gpu_count"] == 1                        # one GPU is the cheapest when it is fast enough
    assert main(["plan", str(path)]) == 0
    assert f"plan of job" in capsys.readouterr().out


def test_workload_refuses_a_bad_gpu_count(tmp_path):
    from scaling.errors import WorkloadError

    path = tmp_path / "w.yaml"
    path.write_text("jobs:\n  - model: wan2.1-14b\ngpu_counts: [0]\n")
    with pytest.raises(WorkloadError, match="gpu_counts"):
        plan(path)
