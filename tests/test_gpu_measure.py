"""`scaling measure` on a real NVIDIA GPU with random weights (run on the device machine)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from scaling.app.cli import main  # noqa: E402
from scaling.runs import read_runs  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="needs an NVIDIA GPU visible to CUDA (torch.cuda.is_available() is False here); "
                              "run `pytest -m gpu` on the device machine"),
]


def _check_measured(df, phases):
    assert set(df["phase"]) == phases
    assert df["meter"].str.contains("nvml").all()
    assert not df["estimated"].any(), df.loc[df["estimated"], "notes"].tolist()  # NVML measured the GPU
    assert (df["energy_gpu_j"] > 0).all() and (df["duration_s"] > 0).all()
    assert df["gpu"].notna().all() and not df["flags"].str.contains("cpu_only").any()
    tot = df[df["phase"] == "total"].set_index("repeat")
    assert tot["idle_power_w"].notna().all() and (tot["idle_power_w"] > 0).all()
    phase_sum = df[df["phase"] != "total"].groupby("repeat")["energy_gpu_j"].sum()
    # phases lie inside the call; short ones are replayed in isolation, and NVML's counter
    # ticks coarsely, hence the slack
    assert (phase_sum <= tot["energy_gpu_j"] * 1.2).all()
    assert (phase_sum >= tot["energy_gpu_j"] * 0.5).all()
    assert tot["notes"].str.contains("measured on its own").all()


def test_measure_sd21_random_weights(tmp_path):
    out = tmp_path / "runs.parquet"
    rc = main(["measure", "--model", "sd2.1", "--res", "512", "--steps", "20", "--random-weights",
               "--precision", "fp16", "--repeats", "2", "--warmup", "1", "--idle-s", "2", "--out", str(out),
               "--quiet"])
    assert rc == 0
    df = read_runs(out)
    assert len(df) == 2 * 4
    _check_measured(df, {"text_encoder", "denoiser", "decoder", "total"})
    den = df[df["phase"] == "denoiser"]
    assert (den["flop"] > 1e12).all() and (den["duration_s"] > 0.1).all()
    assert (df["model_key"] == "sd2.1").all() and df["gpu_key"].notna().all()
