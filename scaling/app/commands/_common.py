"""Argument helpers shared by the subcommands (settings options, JSON output, tables)."""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any, Sequence

from scaling.app.commands import _types as T

_NUMERIC = re.compile(r"^[-+~]?[\d.,]+(e[-+]?\d+)?( ?[%a-zA-Z/]+)?$|^-$")


def add_setting_args(p: argparse.ArgumentParser, with_gpu: bool = True) -> None:
    g = p.add_argument_group("generation setting (unset fields take the model's defaults)")
    g.add_argument("--model", "-m", help="registered id or alias (see `scaling models`)")
    g.add_argument("--config", metavar="DIR", help="a local diffusers folder (model_index.json + component configs)")
    g.add_argument("--res", type=T.nonempty("res"),
                   help="480p | 720p | 1080p | WxH (width first, e.g. 832x480) | N (square)")
    g.add_argument("--frames", type=T.frames, help="video frames (each model's rule: Wan 4k+1, CogVideoX/LTX 8k+1, ...)")
    g.add_argument("--seconds", type=T.seconds, help="audio length in seconds")
    g.add_argument("--steps", type=T.steps, help="denoising steps")
    g.add_argument("--guidance", type=T.guidance, help="guidance scale (<= 1 turns CFG off)")
    cfg = g.add_mutually_exclusive_group()
    cfg.add_argument("--no-cfg", dest="cfg", action="store_const", const=False, default=None,
                     help="one denoiser pass per step (no classifier-free guidance)")
    cfg.add_argument("--cfg", dest="cfg", action="store_const", const=True, help="force CFG on (two passes per step)")
    g.add_argument("--batch", type=T.batch, default=1, help=f"prompts per call (default 1, at most {T.MAX_BATCH})")
    g.add_argument("--outputs-per-prompt", type=T.outputs_per_prompt, default=1,
                   help="outputs per prompt (default 1); a call makes batch x outputs-per-prompt outputs")
    g.add_argument("--precision", type=T.nonempty("precision"),
                   help="fp32 | tf32 | bf16 | fp16 | fp8 | int8 | nf4 | fp4 (default bf16)")
    g.add_argument("--prompt-tokens", type=T.prompt_tokens, metavar="N",
                   help="text tokens of the prompt, for models whose text length is not fixed by padding (the "
                        "padded max_sequence_length of SD3, Flux, PixArt, Wan, LTX, CogVideoX, HunyuanVideo; the "
                        "prompt's own tokens for Qwen-Image, Tango, AudioLDM 2, Mochi); default: the model's assumption")
    if with_gpu:
        g.add_argument("--gpu", type=T.nonempty("gpu"),
                       help="GPU name as you type it or as nvidia-smi prints it (see `scaling gpus`)")


MAX_GPUS = 64
"""GPUs of one call: beyond an NVLink domain of 64 a plan is not one call of one pipeline."""


def parallel_plan(text: str):
    """``--parallel ulysses=U,ring=R[,cfg=2]``, read by :func:`scaling.parallel.parse_plan` (one-line error)."""
    from scaling.errors import InvalidSettingError
    from scaling.parallel import parse_plan

    try:
        return parse_plan(text)
    except InvalidSettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parallel_args(p: argparse.ArgumentParser, several_counts: bool = False) -> None:
    """``--gpus`` (one count, or a comma-separated list when ``several_counts``) and ``--parallel``."""
    g = p.add_argument_group("several GPUs (xDiT sequence / CFG parallelism; the multi-GPU law)")
    count = T.whole("gpus", 1, MAX_GPUS)
    if several_counts:
        g.add_argument("--gpus", type=T.csv_of(count, "gpus"), metavar="N,...",
                       help="comma-separated GPU counts to compare (e.g. 1,2,4,8): each with its default plan and "
                            "the other valid Ulysses / ring / CFG splits")
    else:
        g.add_argument("--gpus", type=count, metavar="N",
                       help="GPUs of one call (default 1, or the product of --parallel); energy counts every GPU")
        g.add_argument("--parallel", type=parallel_plan, metavar="ulysses=U,ring=R[,cfg=2]",
                       help="how the call is split (ulysses x ring x cfg = --gpus; default: CFG parallel when the "
                            "setting runs CFG, then the largest Ulysses degree that divides the heads)")


def model_spec_from_args(args):
    """The spec of ``--config DIR`` or ``--model NAME``; a hub id that is not registered is looked
    up in the local Hugging Face cache (offline). A local folder's closed-form tables are built
    and cached on its first use (:mod:`profilers.flops.local_tables`)."""
    from profilers.flops.local_tables import ensure_tables
    from scaling.errors import UnknownModelError
    from scaling.registry import hub_cache_snapshot, model_from_dir, resolve_model

    if getattr(args, "config", None):
        spec = model_from_dir(args.config)
    elif not args.model:
        raise UnknownModelError("no model given: pass --model NAME (see `scaling models`) or --config DIR")
    else:
        try:
            return resolve_model(args.model)
        except UnknownModelError:
            snap = hub_cache_snapshot(args.model)
            if snap is None:
                raise
            spec = model_from_dir(snap)
    ensure_tables(spec)
    return spec


def setting_from_args(args, spec=None):
    from scaling.settings import make_setting

    spec = spec or model_spec_from_args(args)
    return make_setting(
        spec, res=args.res, frames=args.frames, seconds=args.seconds, steps=args.steps, guidance=args.guidance,
        cfg=args.cfg, batch_size=args.batch, outputs_per_prompt=args.outputs_per_prompt,
        precision=args.precision, gpu=getattr(args, "gpu", None),
        prompt_tokens=getattr(args, "prompt_tokens", None),
    )


def fmt_flop(x: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if abs(x) >= scale:
            return f"{x / scale:.3f} {unit}"
    return f"{x:.0f} FLOP"


def fmt_params(n: float | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table; numeric columns right-aligned."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    numeric = [i > 0 and all(_NUMERIC.match(r[i]) for r in cells[1:]) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)]
        lines.append("  ".join(parts).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dump_json(obj: Any) -> str:
    def default(o):
        if hasattr(o, "to_dict"):
            return o.to_dict()
        if isinstance(o, float) and not math.isfinite(o):
            return None
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return json.dumps(obj, indent=2, default=default)


def describe_setting(s) -> str:
    """``832x480, 81 frames`` / ``1024x1024`` / ``10 s``."""
    if s.modality == "audio":
        return f"{s.audio_seconds:g} s"
    out = f"{s.width}x{s.height}"
    return out + (f", {s.frames} frames" if s.modality == "video" else "")
