"""Real xDiT (PyPI ``xfuser``) as a measurement backend: one call per GPU rank under torchrun, every GPU measured.

**Not run here.** This backend needs a machine with several CUDA GPUs, ``torch.distributed``
(NCCL) and ``xfuser``; the toolkit's own machines have none of them. It is tested with a fake
``xfuser`` module at its boundary (``tests/test_xdit_backend.py``): the arguments it hands xDiT,
the check of the parallel config xDiT builds, the windows it opens, the rows it writes. On a
multi-GPU machine (one node)::

    pip install xfuser
    torchrun --nproc_per_node 8 -m profilers.energy.xdit --model wan2.1-t2v-1.3b \\
        --parallel ulysses=4,ring=2 --weights /models/Wan2.1-T2V-1.3B-Diffusers --repeats 2 --out runs.parquet

What happens, on every rank (SPMD, as xDiT's own examples run):

1. the engine config comes from xDiT's own argument parser (``xFuserArgs``), fed with the plan
   (``--ulysses_degree``, ``--ring_degree``, ``--use_cfg_parallel``) and the setting; the
   ``ParallelConfig`` xDiT builds is checked against the plan (:class:`~scaling.errors.ProfilerError`
   if they differ, e.g. a world size that is not the plan's GPU count);
2. the pipeline: xDiT's wrapper class for the diffusers pipeline (:data:`XFUSER_WRAPPERS`), else the
   diffusers pipeline wrapped by ``xfuser.xDiTParallel`` (Wan and the others xDiT registers that way);
3. warm-up calls, then each measured call between two barriers: rank 0 opens one meter window over
   **all** the node's GPUs of the call (the meter of :func:`profilers.energy.meters.make_meter` with
   ``gpu_indices = 0..n-1``: Zeus reads every GPU's energy counter, summed in ``energy_gpu_j``, kept
   per GPU in ``per_gpu_j``) and closes it after the last rank has finished (so the decode on one
   GPU and the others' wait are inside the window);
4. rank 0 appends one ``total`` row per call (:func:`xdit_rows`): ``gpu_count`` = the plan's GPUs,
   ``energy_gpu_j`` = the sum over them, each GPU's energy and the plan
   (``ulysses_degree=U ring_degree=R cfg_degree=C``, as the ML.ENERGY v3 rows write it) in the notes.

One node only: a plan whose world spans several nodes is refused (the meter reads the GPUs of its
own node). Phases are not split (xDiT's pipelines run their roles inside one call).
"""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from profilers.energy.run_rows import base_row
from scaling.errors import InvalidSettingError, MeterError, MissingDependencyError, ProfilerError
from scaling.parallel import ParallelPlan, check_plan, parse_plan
from scaling.registry import ModelSpec, resolve_model
from scaling.settings import GenerationSetting, make_setting

__all__ = ["XFUSER_WRAPPERS", "RankInfo", "XditPipeline", "build_xdit_pipeline", "call_kwargs", "import_xfuser",
           "main", "measure_call", "plan_notes", "xdit_rows", "xfuser_args"]

XFUSER_WRAPPERS = {
    "PixArtSigmaPipeline": "xFuserPixArtSigmaPipeline",
    "PixArtAlphaPipeline": "xFuserPixArtAlphaPipeline",
    "StableDiffusion3Pipeline": "xFuserStableDiffusion3Pipeline",
    "FluxPipeline": "xFuserFluxPipeline",
    "CogVideoXPipeline": "xFuserCogVideoXPipeline",
    "HunyuanDiTPipeline": "xFuserHunyuanDiTPipeline",
    "SanaPipeline": "xFuserSanaPipeline",
    "StableDiffusionXLPipeline": "xFuserStableDiffusionXLPipeline",
}
"""diffusers pipeline class -> the xfuser 0.7 wrapper class exported by ``xfuser``."""

TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in the torchrun world."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "RankInfo":
        """From torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``).

        Raises
        ------
        ProfilerError
            If a variable is missing (not started by torchrun) or the world spans several nodes.
        """
        env = os.environ if env is None else env
        try:
            info = cls(*(int(env[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")))
        except KeyError as exc:
            raise ProfilerError(f"the xDiT backend runs under torchrun: {exc.args[0]} is not set "
                                "(torchrun --nproc_per_node N -m profilers.energy.xdit ...)") from None
        if info.world_size != info.local_world_size:
            raise ProfilerError(f"the xDiT backend measures one node: world size {info.world_size} spans "
                                f"{info.world_size // max(info.local_world_size, 1)} nodes")
        return info


def import_xfuser():
    """``import xfuser``, or one line saying how to get it."""
    try:
        return importlib.import_module("xfuser")
    except ImportError as exc:
        raise MissingDependencyError(f"the xDiT backend needs xfuser, which is not importable ({exc}): "
                                     "pip install xfuser, on a machine with CUDA GPUs") from None


def xfuser_args(spec: ModelSpec, setting: GenerationSetting, plan: ParallelPlan, weights: str) -> list[str]:
    """The ``xFuserArgs`` command line of one setting and plan (xDiT's own parser reads it)."""
    args = ["--model", str(weights), "--height", str(setting.height), "--width", str(setting.width),
            "--num_inference_steps", str(setting.steps), "--ulysses_degree", str(plan.ulysses),
            "--ring_degree", str(plan.ring), "--warmup_steps", "0"]
    if setting.modality == "video" and setting.frames:
        args += ["--num_frames", str(setting.frames)]
    if setting.guidance_scale is not None:
        args += ["--guidance_scale", str(setting.guidance_scale)]
    if plan.cfg == 2:
        args.append("--use_cfg_parallel")
    return args


@dataclass
class XditPipeline:
    """A built xDiT pipeline and the configs xDiT made for it."""

    pipe: Any
    engine_config: Any
    input_config: Any
    wrapper: str


def _check_parallel_config(engine_config: Any, plan: ParallelPlan) -> None:
    pc = engine_config.parallel_config
    got = (int(pc.ulysses_degree), int(pc.ring_degree), int(pc.cfg_degree))
    if got != (plan.ulysses, plan.ring, plan.cfg):
        raise ProfilerError(f"xDiT built ulysses={got[0]},ring={got[1]},cfg={got[2]} for the plan {plan}: "
                            "start torchrun with --nproc_per_node equal to the plan's GPU count")


def build_xdit_pipeline(spec: ModelSpec, setting: GenerationSetting, plan: ParallelPlan, weights: str,
                        rank: RankInfo, *, xfuser: Any = None, torch: Any = None, diffusers: Any = None) -> XditPipeline:
    """Build the xDiT pipeline of ``spec`` for ``plan`` on this rank's GPU (``xfuser`` / ``torch`` /
    ``diffusers``: the modules, injected by tests; imported when None).

    Raises
    ------
    InvalidSettingError
        If the precision is not one xDiT runs (bf16, fp16, fp32) or the plan breaks the engine's rules.
    ProfilerError
        If the plan's GPU count is not the world size, or xDiT's parallel config differs from the plan.
    """
    from profilers.flops.comm import attention_shapes

    if setting.precision not in TORCH_DTYPES:
        raise InvalidSettingError(f"precision {setting.precision!r}: the xDiT backend runs {', '.join(TORCH_DTYPES)}")
    shapes = attention_shapes(spec, setting)
    check_plan(plan, heads=shapes.heads, seq_len=shapes.split_len, cfg=setting.cfg, pads=shapes.pads)
    if plan.gpus != rank.world_size:
        raise ProfilerError(f"plan {plan} runs on {plan.gpus} GPUs but torchrun started {rank.world_size} ranks")
    xf = import_xfuser() if xfuser is None else xfuser
    torch = importlib.import_module("torch") if torch is None else torch
    config = importlib.import_module("xfuser.config") if xfuser is None else xf.config
    parser = config.FlexibleArgumentParser(description="xDiT backend of profilers.energy.xdit")
    parsed = xf.xFuserArgs.add_cli_args(parser).parse_args(xfuser_args(spec, setting, plan, weights))
    engine_config, input_config = xf.xFuserArgs.from_cli_args(parsed).create_config()
    _check_parallel_config(engine_config, plan)
    dtype = getattr(torch, TORCH_DTYPES[setting.precision])
    device = f"cuda:{rank.local_rank}"
    wrapper = XFUSER_WRAPPERS.get(spec.pipeline_class)
    if wrapper is not None:
        pipe = getattr(xf, wrapper).from_pretrained(pretrained_model_name_or_path=weights, engine_config=engine_config,
                                                    torch_dtype=dtype).to(device)
        pipe.prepare_run(input_config)
        return XditPipeline(pipe, engine_config, input_config, wrapper)
    diffusers = importlib.import_module("diffusers") if diffusers is None else diffusers
    base = getattr(diffusers, spec.pipeline_class).from_pretrained(weights, torch_dtype=dtype).to(device)
    return XditPipeline(xf.xDiTParallel(base, engine_config, input_config), engine_config, input_config, "xDiTParallel")


def call_kwargs(setting: GenerationSetting, prompts: Sequence[str], generator: Any) -> dict[str, Any]:
    """The pipeline call of one measured batch (the decode included: images or frames come out)."""
    kw: dict[str, Any] = {"prompt": list(prompts), "height": setting.height, "width": setting.width,
                          "num_inference_steps": setting.steps, "generator": generator}
    if setting.modality == "video" and setting.frames:
        kw["num_frames"] = setting.frames
    if setting.guidance_scale is not None:
        kw["guidance_scale"] = setting.guidance_scale
    return kw


def measure_call(run: Callable[[], Any], *, rank: RankInfo, meter: Any, barrier: Callable[[], None],
                 synchronize: Callable[[], None], key: str = "total"):
    """One call on every rank, measured on rank 0 between two barriers; rank 0 returns the Measurement.

    The window opens once every rank is ready and closes once every rank has finished (the
    second barrier follows each rank's device synchronisation), so it holds the slowest rank's
    call, the decode on one GPU and the other GPUs' wait. Other ranks return None.
    """
    barrier()
    if rank.rank == 0:
        meter.begin_window(key)
    run()
    synchronize()
    barrier()
    if rank.rank == 0:
        return meter.end_window(key)
    return None


def plan_notes(plan: ParallelPlan) -> str:
    """The plan as the v3 rows write it (``scaling.app.parallel_features.plan_from_notes`` reads it back)."""
    return (f"ulysses_degree={plan.ulysses} ring_degree={plan.ring} cfg_degree={plan.cfg} "
            f"(sequence parallel over {plan.sequence_degree} GPUs, {plan.gpus} GPUs in all)")


def xdit_rows(spec: ModelSpec, setting: GenerationSetting, plan: ParallelPlan, measurement: Any, *, run_id: str,
              started: datetime, repeat: int, gpu: str | None, gpu_key: str | None, warmup: int,
              flops: Mapping[str, float], xfuser_version: str) -> list[dict[str, Any]]:
    """The runs-table row of one measured call on ``plan.gpus`` GPUs.

    Raises
    ------
    MeterError
        If the meter did not measure exactly the plan's GPUs (a sum over fewer would be wrong).
    """
    per_gpu = dict(measurement.per_gpu_j)
    if sorted(per_gpu) != list(range(plan.gpus)):
        raise MeterError(f"the meter measured GPUs {sorted(per_gpu)} of a call on {plan.gpus} GPUs "
                         f"(0..{plan.gpus - 1}): measure them all (gpu_indices)")
    row = base_row(SimpleNamespace(spec=spec), setting, run_id=run_id, started=started, repeat=repeat, gpu=gpu,
                   gpu_key=gpu_key, warmup=warmup, flops=flops, flop_error=None, idle_power_w=None)
    row.update(measurement.as_row())
    each = ", ".join(f"cuda:{i}={per_gpu[i]:.6g} J" for i in sorted(per_gpu))
    row.update(gpu_count=plan.gpus, energy_gpu_j=sum(per_gpu.values()),
               estimated=bool(measurement.estimated.get("energy_gpu_j", False)), flags="",
               notes="; ".join(x for x in (
                   f"engine xDiT (xfuser {xfuser_version}); {plan_notes(plan)}",
                   f"energy_gpu_j = GPU energy of one call summed over all {plan.gpus} GPUs; per GPU: {each}",
                   row.get("notes") or "") if x))
    return [row]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="torchrun --nproc_per_node N -m profilers.energy.xdit", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--parallel", required=True, help="the plan, e.g. ulysses=4,ring=2 (product = GPUs)")
    ap.add_argument("--weights", required=True, help="local folder (or hub id) of the diffusers weights")
    for name, kind in (("--height", int), ("--width", int), ("--frames", int), ("--steps", int), ("--guidance", float)):
        ap.add_argument(name, type=kind, default=None)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="runs table to append to")
    return ap.parse_args(argv)


PROG = "profilers.energy.xdit"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the backend; a refusal (not under torchrun, a bad model, setting or plan, no xfuser) is one line on
    stderr, ``profilers.energy.xdit: error: ...``, and exit status 2. The torchrun check comes first, before
    any work."""
    import sys

    from scaling.errors import ScalingError

    args = _parse(argv)
    try:
        return _main(args)
    except ScalingError as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:  # pragma: no cover - needs GPUs, torchrun and xfuser
    rank = RankInfo.from_env()
    spec = resolve_model(args.model)
    setting = make_setting(spec, height=args.height, width=args.width, frames=args.frames, steps=args.steps,
                           guidance=args.guidance, batch_size=args.batch_size, precision=args.precision)
    plan = parse_plan(args.parallel)
    xf = import_xfuser()
    torch = importlib.import_module("torch")
    built = build_xdit_pipeline(spec, setting, plan, args.weights, rank)
    from profilers.energy.meters import make_meter
    from profilers.energy.tokenizers import load_prompts
    from profilers.flops.profile import profile
    from scaling.hardware import resolve_gpu
    from scaling.runs import append_runs

    prompts = load_prompts(setting.modality)
    meter = make_meter("auto", gpu_indices=list(range(plan.gpus))) if rank.rank == 0 else None
    gpu_name = torch.cuda.get_device_name(rank.local_rank)
    gpu_key = resolve_gpu(gpu_name).key
    flops = profile(setting, spec=spec).by_role()
    barrier = torch.distributed.barrier
    sync = torch.cuda.synchronize

    def one_call(i: int):
        batch = [prompts[(i * setting.n_outputs + j) % len(prompts)] for j in range(setting.n_outputs)]
        gen = torch.Generator(device=f"cuda:{rank.local_rank}").manual_seed(args.seed + i)
        return lambda: built.pipe(**call_kwargs(setting, batch, gen))

    for w in range(args.warmup):
        one_call(-1 - w)()
    try:
        for i in range(args.repeats):
            started = datetime.now(timezone.utc)
            m = measure_call(one_call(i), rank=rank, meter=meter, barrier=barrier, synchronize=sync)
            if rank.rank == 0:
                run_id = f"xdit:{spec.key}:{plan}:{secrets.token_hex(4)}:{i}"
                append_runs(xdit_rows(spec, setting, plan, m, run_id=run_id, started=started, repeat=i, gpu=gpu_name,
                                      gpu_key=gpu_key, warmup=args.warmup, flops=flops,
                                      xfuser_version=getattr(xf, "__version__", "?")), args.out)
                print(f"{spec.key} {plan}: {m.energy_gpu_j:.1f} J over {plan.gpus} GPUs in {m.time_s:.2f} s", flush=True)
    finally:
        if meter is not None:
            meter.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
