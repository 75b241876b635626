"""The issue's validation targets on the published measurements (``datasets/public``).

Every target is asserted at the threshold the issue sets, on the form the shipped default law
uses (``fits.validation.PRIMARY_LAW``, chosen by the default law's own validation table, not by
these targets). The tables compare every candidate form on the same splits.

What the numbers rest on (see each test): rows whose model is not a registered architecture
(LTX-Video 0.9.7, Make-An-Audio 1/2, Kandinsky, SSD-1B, SD3-medium, ModelScope, I2VGen-XL,
SVD) have no FLOPs and cannot enter a FLOP law; CPU-offload rows (CogVideoX, Mochi) are left
out of the cross-model fits because weight transfers inflate their energy; first calls of
the audio scripts are excluded by the importer's policy.
"""

from __future__ import annotations

import math

import pytest

from fits import targets as T
from fits.validation import PRIMARY_LAW, SPLITS, candidate_laws, load_public

_BUILDERS = {
    "wan_sweeps": T.target_wan_sweeps,
    "audio_steps": T.target_audio_steps,
    "one_gpu_h100_video": lambda runs: T.target_one_gpu(runs, "h100_video"),
    "one_gpu_a100_image": lambda runs: T.target_one_gpu(runs, "a100_image"),
    "one_gpu_h100_image": lambda runs: T.target_one_gpu(runs, "h100_image"),
    "cross_gpu": T.target_cross_gpu,
}


@pytest.fixture(scope="module")
def runs(public_data):
    return load_public(public_data)


class _Targets(dict):
    """Targets computed on first use (tests spread over xdist workers compute only their own)."""

    def __init__(self, runs):
        super().__init__()
        self.runs = runs

    def __missing__(self, name):
        self[name] = _BUILDERS[name](self.runs)
        return self[name]


@pytest.fixture(scope="module")
def targets(runs):
    return _Targets(runs)


def _row(result, law, split):
    t = result.table
    return t[(t["law"] == law) & (t["split"] == split)].iloc[0]


def _same_splits(r):
    assert set(r.table["law"]) == set(candidate_laws()), r.name
    assert set(r.table["split"]) <= set(SPLITS)
    assert r.law == PRIMARY_LAW


def test_wan_sweeps_leave_one_configuration_out_mape_at_most_8_percent(targets):
    """Wan2.1-T2V-1.3B on H100, the resolution (14), frames (10) and steps (12) sweeps pooled.

    One law over the 36 configurations, each left out once. Achieved 3.3 % (the source paper's
    analytical model: 6.6 % frames, 11.6 % resolution, 1.9 % steps); per sweep the pooled law
    stays under 4.5 % (``detail``).
    """
    r = targets["wan_sweeps"]
    _same_splits(r)
    assert r.rows == 36
    assert r.achieved <= 0.08, r.summary()
    assert r.passed
    detail = r.detail[r.detail["law"] == PRIMARY_LAW].set_index("sweep")
    assert set(detail.index) == {"wan_resolution_sweep", "wan_frames_sweep", "wan_steps_sweep"}
    assert (detail["mape_pooled_fit"] <= 0.08).all()


def test_audio_step_sweeps_r2_log_at_least_099_per_model(targets):
    """A40 text-to-audio, experiment=inference_steps: one law per model, R^2(log) >= 0.99 each.

    Five registered models enter (AudioLDM, AudioLDM2, Stable Audio Open, Tango, Tango2); the
    two Make-An-Audio models are not registered architectures (no FLOPs): 58 rows left out.
    The worst model reaches 0.9987 in sample and 0.998 leave-one-configuration-out.
    """
    r = targets["audio_steps"]
    _same_splits(r)
    assert r.achieved >= 0.99, r.summary()
    per_model = r.detail[(r.detail["law"] == PRIMARY_LAW) & (r.detail["split"] == "in_sample")]
    assert len(per_model) == 5
    assert (per_model["r2_log"] >= 0.99).all()
    loo = r.detail[(r.detail["law"] == PRIMARY_LAW) & (r.detail["split"] == "config_loo")]
    assert (loo["r2_log"] >= 0.99).all()
    assert set(r.excluded["models"]) == {"Text-to-Audio/Make-An-Audio", "bytedance/Make-An-Audio-2"}


@pytest.mark.parametrize("which", ["h100_video", "a100_image", "h100_image"])
def test_one_law_across_models_on_one_gpu_r2_log_at_least_095(targets, which):
    """One law across models on one GPU: R^2(log) >= 0.95 in sample.

    h100_video: of the seven video models, CogVideoX-2b/5b and Mochi ran with CPU offload;
    AnimateDiff-Lightning, Wan2.1-1.3B, Wan2.1-14B and LTX-Video 0.9.7 (its two-pass recipe,
    registered for issue 12) remain.
    a100_image / h100_image: ML.ENERGY v2, four of eight text-to-image models are registered
    (SD2.1, SDXL, SDXL-Turbo, Openjourney v4); R^2 0.994 / 0.992, leave-one-model-out 0.99.
    """
    r = targets[f"one_gpu_{which}"]
    _same_splits(r)
    assert r.achieved >= 0.95, r.summary()
    assert len(r.models) >= 3
    lomo = _row(r, PRIMARY_LAW, "model_out")
    assert lomo["r2_log"] >= 0.95
    if which == "h100_video":
        assert set(r.models) == {"ByteDance/AnimateDiff-Lightning", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
                                 "Wan-AI/Wan2.1-T2V-14B-Diffusers", "Lightricks/LTX-Video-0.9.7-dev"}
        assert {"THUDM/CogVideoX-2b", "genmo/mochi-1-preview"} <= set(r.excluded["models"])


def test_across_gpus_leave_one_gpu_out_spearman_at_least_09(targets):
    """ML.ENERGY v2 on A100-SXM4-40GB and H100: train on one GPU, predict the other.

    Spearman 0.99 (target 0.9). MAPE on the held-out GPU: 23 % for the shipped roofline law, 21 %
    for the FLOP-only power law, 13 % for hw-fit+flatstep and 44 % for the compute-bound prior
    (TDP / peak): the A100/H100 energy ratio is 1.17, close to the memory-bound prior (1.23), far
    from the compute-bound one (1.81). With two GPUs, the roofline's three hardware exponents rest
    on their priors; a miss said, not hidden.
    """
    r = targets["cross_gpu"]
    _same_splits(r)
    assert r.achieved >= 0.9, r.summary()
    per_gpu = r.detail[r.detail["law"] == PRIMARY_LAW]
    assert set(per_gpu["held_out_gpu"]) == {"a100-sxm4-40gb", "h100-sxm"}
    assert (per_gpu["spearman"] >= 0.9).all()
    primary = _row(r, PRIMARY_LAW, "gpu_out")
    assert math.isfinite(primary["mape"]) and primary["mape"] < 0.25
    assert _row(r, "hw-fit+flatstep", "gpu_out")["mape"] < _row(r, "power", "gpu_out")["mape"]


def test_what_cannot_enter_a_flop_law_is_counted(runs):
    from fits.validation import exclusions

    ex = exclusions(runs)
    no_flop = ex["no FLOP (model not registered or no FLOP profile)"]
    assert no_flop["rows"] > 0
    assert set(no_flop["models"]) == {"Text-to-Audio/Make-An-Audio", "bytedance/Make-An-Audio-2"}
    assert ex["cpu_offload (energy inflated by weight transfers)"]["rows"] > 0
