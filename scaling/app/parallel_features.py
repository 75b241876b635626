"""The physics columns of the multi-GPU law and its end-to-end prediction (no pandas: the predict path).

The multi-GPU law (:mod:`fits.parallel`) reads per-call columns it cannot compute itself (``fits``
imports only the vocabulary); this module builds them from :mod:`profilers.flops.comm` (shapes,
bytes, shards), :mod:`profilers.flops.profile` (FLOP per role) and :mod:`scaling.interconnect`::

    parallel_features(spec, setting, plan, gpu)      -> fits.parallel.ParallelFeatures
    predict_parallel("wan2.1-t2v-1.3b", ParallelPlan(ulysses=4, ring=2), "h100")  -> ParallelPrediction

The training table and the refit (``python -m scaling.app.parallel_training``) live in
:mod:`scaling.app.parallel_training`, so that a prediction does not import pandas.
"""

from __future__ import annotations

import math
import re

from fits.law_file import load_law
from fits.parallel import ParallelFeatures, ParallelPrediction, load_parallel_law
from profilers.flops.comm import attention_shapes, parallel_cost
from profilers.flops.profile import profile
from scaling.errors import InvalidSettingError
from scaling.hardware import GPUSpec, resolve_gpu
from scaling.interconnect import interconnect, link_byte_per_s
from scaling.parallel import ParallelPlan, default_plan
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting, make_setting
from scaling.units import Interval

__all__ = ["parallel_features", "plan_from_notes", "predict_parallel", "single_gpu_anchor"]

_DEGREES = re.compile(r"ulysses_degree=(\d+)\s+ring_degree=(\d+)(?:\s+cfg_degree=(\d+))?")


def plan_from_notes(notes: str) -> ParallelPlan | None:
    """The plan a row's notes name (``ulysses_degree=U ring_degree=R [cfg_degree=C]``), None if none."""
    m = _DEGREES.search(notes or "")
    if m is None:
        return None
    return ParallelPlan(ulysses=int(m.group(1)), ring=int(m.group(2)), cfg=int(m.group(3) or 1))


def parallel_features(spec: ModelSpec, setting: GenerationSetting, plan: ParallelPlan, gpu: str | GPUSpec,
                      *, flop_by_role: dict[str, float] | None = None) -> ParallelFeatures:
    """The per-call physics of ``setting`` on ``plan.gpus`` GPUs of kind ``gpu``.

    ``flop_by_role``: the one-GPU call's FLOP per role (default: the closed-form profile).

    Raises
    ------
    InvalidSettingError
        If the plan breaks a rule of :func:`scaling.parallel.check_plan` or the family has no
        known sequence-parallel layout.
    """
    gpu_spec = resolve_gpu(gpu)
    flops = dict(flop_by_role) if flop_by_role is not None else profile(setting, spec=spec).by_role()
    total = sum(flops.values())
    if not total > 0:
        raise InvalidSettingError(f"{spec.id}: the one-GPU call has {total!r} FLOP; nothing to split")
    shapes = attention_shapes(spec, setting)
    cost = parallel_cost(shapes, plan, denoiser_flop=flops.get("denoiser", 0.0),
                         text_encoder_flop=flops.get("text_encoder", 0.0), decoder_flop=flops.get("decoder", 0.0))
    n = plan.gpus
    link = interconnect(gpu_spec)
    nvlink = link.has_nvlink and max(n, 2) <= link.nvlink_domain_gpus
    samples = shapes.batch * (2 if shapes.cfg else 1)
    return ParallelFeatures(
        gpu_key=gpu_spec.key, plan=str(plan), n_gpus=n, sequence_degree=plan.sequence_degree, ring_degree=plan.ring,
        cfg_degree=plan.cfg,
        text_encoder_share=flops.get("text_encoder", 0.0) / total, decoder_share=flops.get("decoder", 0.0) / total,
        comm_byte=cost.comm_byte, ring_byte=cost.ring_byte, link_byte_per_s=link_byte_per_s(gpu_spec, n),
        link="nvlink" if nvlink else "pcie", layer_steps=float(shapes.layers * shapes.steps),
        tokens_per_gpu=samples / plan.cfg * math.ceil(shapes.tokens / plan.sequence_degree),
        tokens_one_gpu=float(samples * shapes.tokens), tdp_w=gpu_spec.tdp_w,
        idle_gpus_during_decode=cost.idle_gpus_during_decode,
    )


def single_gpu_anchor(spec: ModelSpec, setting: GenerationSetting, gpu: str | GPUSpec, *, law=None
                      ) -> tuple[Interval, Interval, tuple[str, ...]]:
    """(time s, energy J, notes) of ``setting`` on ONE ``gpu``, from the single-GPU law (default: the shipped one)."""
    law = load_law(None) if law is None else law
    gpu_spec = resolve_gpu(gpu)
    prof = profile(setting, spec=spec)
    pred = law.predict(setting, prof.by_role(), gpu_spec, spec,
                       byte_by_role=prof.by_role_byte() if prof.has_bytes else None)
    return pred.time_s, pred.energy_j["total"], pred.notes


def predict_parallel(model: str | ModelSpec, plan: ParallelPlan | int, gpu: str | GPUSpec, *,
                     setting: GenerationSetting | None = None, law=None, single_law=None) -> ParallelPrediction:
    """Energy, time and average power of one call on several GPUs: the single-GPU law's call on one
    ``gpu`` (the anchor) carried to ``plan`` by the multi-GPU law.

    ``plan``: a :class:`~scaling.parallel.ParallelPlan`, or a GPU count (then
    :func:`scaling.parallel.default_plan`). ``setting``: default the model's defaults.
    ``law`` / ``single_law``: a :class:`fits.parallel.ParallelLaw` / :class:`fits.law_file.Law`
    (default: the shipped ones). The notes of the single-GPU prediction come first in the result's.

    Raises
    ------
    InvalidSettingError
        If the plan breaks the engine's rules for this setting.
    LawError
        If a law file cannot be read.
    """
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    setting = make_setting(spec) if setting is None else setting
    if isinstance(plan, int) and not isinstance(plan, bool):
        shapes = attention_shapes(spec, setting)
        plan = default_plan(plan, cfg=setting.cfg, heads=shapes.heads, seq_len=shapes.split_len, pads=shapes.pads)
    features = parallel_features(spec, setting, plan, gpu)
    time_1, energy_1, notes_1 = single_gpu_anchor(spec, setting, gpu, law=single_law)
    law = load_parallel_law(None) if law is None else law
    pred = law.predict(features, time_1, energy_1)
    return ParallelPrediction(pred.energy_j, pred.time_s, pred.power_w, pred.n_gpus, pred.plan, pred.gpu_key,
                              pred.extrapolation, (*notes_1, *pred.notes))
