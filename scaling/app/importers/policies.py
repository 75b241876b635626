"""The flag policies: how each flag of the public data is handled on import.

Each flag is handled by one named policy with a default action, the actions it allows and the
reason (:data:`POLICIES`). Actions: ``correct`` (change the value, keep the published one in
``notes``, add a mark to ``flags``), ``exclude`` (drop the row, count it), ``mark`` (keep the
row, add a mark to ``flags``), ``keep`` (documented, no change). Override with
``import_public(path, policy={"first_call": "mark"})`` or ``scaling data import ... --policy
first_call=mark`` (:func:`parse_policy_args`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from scaling.errors import DataError

__all__ = ["Policy", "POLICIES", "resolve_policy", "parse_policy_args"]


@dataclass(frozen=True)
class Policy:
    """How one flag of the source data is handled.

    ``detects`` says which rows carry the flag; ``marks`` is the flag written to ``flags``
    for each action that keeps the row.
    """

    name: str
    detects: str
    action: str
    actions: tuple[str, ...]
    reason: str
    marks: Mapping[str, str] = field(default_factory=dict)


POLICIES: dict[str, Policy] = {p.name: p for p in (
    Policy(
        "metadata_conflict", "notes contain METADATA_CONFLICT (all WAN2.1 rows of video_killed cross_model "
        "and benchlab)", "correct", ("correct", "mark", "exclude"),
        "the published height/width/steps were hard-coded after the fact; the run scripts and the measured "
        "time agree with the values the note gives as 'likely actual' (video_killed: 720x1280, 50 steps; "
        "benchlab: 50 steps). The published values stay in notes.",
        {"correct": "metadata_corrected", "mark": "metadata_conflict"}),
    Policy(
        "suspect", "notes contain SUSPECT (LTX-Video `upsample` phase rows)", "exclude", ("exclude", "mark"),
        "a ~6 ms CodeCarbon window implying 2.7-3.9 kW on a 700 W GPU: not a physical measurement "
        "(about 19 J of 11 kJ; the `total` row still includes it, as the source sums it)",
        {"mark": "suspect"}),
    Policy(
        "first_call", "notes contain 'FIRST call of script' (text-to-audio scripts, no warm-up call)",
        "exclude", ("exclude", "mark"),
        "the first call of a script without warm-up carries one-off costs (CUDA context, kernel autotuning, "
        "caches) and is often inflated (AudioLDM2 10 steps: 217 J against ~110 J afterwards)",
        {"mark": "first_call"}),
    Policy(
        "cpu_offload", "notes mention enable_model_cpu_offload (CogVideoX and Mochi in video_killed/benchlab, "
        "every SD3.5 quantization row)", "mark", ("mark", "exclude"),
        "weights move between CPU and GPU on every call, which inflates time and energy beyond the compute; "
        "the measurement is real, so keep it and let fits decide (filter on the `cpu_offload` flag)",
        {"mark": "cpu_offload"}),
    Policy(
        "ddim_steps", "notes say 'likely runs N steps for a request of M' (Make-An-Audio 1 and 2 at 150 steps)",
        "correct", ("correct", "mark", "exclude"),
        "LDM DDIM uniform spacing with 1000 // 150 = 6 runs 167 steps, and the measured energy agrees "
        "(150/200 ratio 0.835, not 0.75); the requested 150 stays in notes",
        {"correct": "steps_corrected", "mark": "ddim_steps"}),
    Policy(
        "n_repeats", "notes say the slurm file 'passes/uses RUNS=N [WARMUP=K]' while the published n_repeats "
        "was hard-coded (WAN sweeps of video_killed, benchlab exp4_ rows)", "correct", ("correct", "keep"),
        "`n_repeats` must say how many calls were averaged; the run scripts are the authority. Energy per "
        "call is right either way.",
        {"correct": "n_repeats_corrected"}),
    Policy(
        "wan_frames", "WanPipeline rows whose requested frames are not 4k+1 (WAN frames and steps sweeps)",
        "correct", ("correct", "keep"),
        "WanPipeline rounds num_frames to num_frames // 4 * 4 + 1 before generating; the table stores the "
        "frames actually generated and keeps the requested value in notes",
        {"correct": "frames_snapped"}),
    Policy(
        "stage_phases", "rows with a pipeline-stage phase (generate, upsample, denoise: LTX-Video) and the "
        "`total` row of the same call", "mark", ("mark", "exclude"),
        "stage rows are the source's own measurements of parts of one call and the `total` row is their sum; "
        "keep both and mark the total `sum_of_phases`: count a call once with phase == 'total'. "
        "'exclude' drops the stage rows and keeps the totals",
        {"mark": "sum_of_phases"}),
    Policy(
        "batch", "rows with batch_size > 1", "keep", ("keep",),
        "energy and duration are per call, i.e. for the whole batch (PROVENANCE convention); divide by "
        "batch_size for energy per output"),
    Policy(
        "cpu_ram_estimate", "CodeCarbon rows with CPU or RAM energy", "mark", ("mark", "keep"),
        "CodeCarbon's CPU and RAM energies are TDP/size-based estimates, not meter readings (its GPU energy "
        "is read from NVML); mark them so fits on CPU/RAM energy can exclude them",
        {"mark": "cpu_ram_estimated"}),
)}


def resolve_policy(policy: Mapping[str, str] | None = None) -> dict[str, str]:
    """The action per policy: the defaults of :data:`POLICIES` with ``policy`` on top."""
    actions = {name: p.action for name, p in POLICIES.items()}
    for name, action in (policy or {}).items():
        if name not in POLICIES:
            raise DataError(f"policy {name!r} is unknown: use one of {', '.join(POLICIES)}")
        if action not in POLICIES[name].actions:
            raise DataError(f"policy {name}={action!r} is not allowed: use one of {', '.join(POLICIES[name].actions)}")
        actions[name] = action
    return actions


def parse_policy_args(items: Sequence[str] | None) -> dict[str, str]:
    """``["first_call=mark", ...]`` (CLI ``--policy``) -> ``{"first_call": "mark"}``."""
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, action = item.partition("=")
        if not sep or not name.strip() or not action.strip():
            raise DataError(f"--policy {item!r}: write NAME=ACTION, e.g. first_call=mark")
        out[name.strip()] = action.strip()
    resolve_policy(out)
    return out
