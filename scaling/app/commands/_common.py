"""Argument helpers shared by the subcommands: the number checks, settings options, JSON output, tables.

Every number the command line reads is checked here, in one place, by argparse ``type=``
functions (the first section). Each takes the text of one option and returns the value, or
raises ``argparse.ArgumentTypeError`` with a one-line message that names the value and the
rule; argparse turns it into ``scaling CMD: error: argument --flag: MESSAGE`` and exit status 2
(see :class:`scaling.app.cli.Parser`). The rules:

- finite: ``nan``, ``inf`` and overflowing literals (``1e400``) are refused everywhere;
- whole numbers where a count is meant: ``1000``, ``1_000`` and ``1e6`` (an integral float, as
  the workload YAML accepts it) are read as integers; ``2.5``, ``10**400`` and ``abc`` are not;
- in range: each option has its lowest and highest plausible value, named in the message.

Lists (``--steps-list 20,50``, ``--steps-scale 1,0.5``) apply the same rule to every item.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from typing import Any, Callable, Sequence

_NUMERIC = re.compile(r"^[-+~]?[\d.,]+(e[-+]?\d+)?( ?[%a-zA-Z/]+)?$|^-$")


# -- the number checks (argparse ``type=`` functions) -------------------------------------------

MAX_COUNT = 10**15
"""Outputs of a fleet: a quadrillion images is beyond any deployment; more is a typo."""
MAX_STEPS = 10_000
"""Denoising steps (the rule of scaling.settings.make_setting)."""
MAX_BATCH = 4096
"""Prompts per call (and outputs per prompt): beyond this a call is not one GPU's batch; the memory
model refuses the settings below it that do not fit."""


def _fail(name: str, text: str, rule: str):
    raise argparse.ArgumentTypeError(f"`{name}` {text}: {rule}")


def _to_float(name: str, text: str, rule: str) -> float:
    try:
        value = float(str(text).strip().replace("_", ""))
    except ValueError:
        _fail(name, text, f"not a number; {rule}")
    if not math.isfinite(value):
        _fail(name, text, f"not a finite number; {rule}")
    return value


def whole(name: str, lo: int = 1, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in ``[lo, hi]``; ``1e6`` counts as 1000000 (integral), ``2.5`` does not."""
    rule = (f"it must be a whole number >= {lo}" if hi is None else f"it must be a whole number from {lo} to {hi:,}")

    def parse(text: str) -> int:
        s = str(text).strip().replace("_", "")
        try:
            value = int(s)
        except ValueError:
            value = _to_float(name, text, rule)
            if not value.is_integer():
                _fail(name, text, rule)
            value = int(value)
        if value < lo or (hi is not None and value > hi):
            _fail(name, text, rule)
        return value

    parse.__name__ = name
    return parse


def number(name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           unit: str = "") -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        rule = f"it must be a finite number{u} {'>' if lo_open else '>='} {lo:g} and <= {hi:g}"
    elif lo is not None:
        rule = f"it must be a finite number{u} {'>' if lo_open else '>='} {lo:g}"
    else:
        rule = f"it must be a finite number{u}"

    def parse(text: str) -> float:
        value = _to_float(name, text, rule)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            _fail(name, text, rule)
        if hi is not None and value > hi:
            _fail(name, text, rule)
        return value

    parse.__name__ = name
    return parse


def csv_of(item: Callable[[str], object], name: str) -> Callable[[str], list]:
    """A comma-separated list, each item read by ``item``; empty items are refused."""

    def parse(text: str) -> list:
        parts = [p.strip() for p in str(text).split(",")]
        if not parts or any(not p for p in parts):
            _fail(name, repr(text), "write a comma-separated list without empty items (e.g. 20,30,50)")
        return [item(p) for p in parts]

    parse.__name__ = name
    return parse


NAME_EXAMPLES = {"gpu": "a100,h100", "gpus": "a100,h100", "precisions": "bf16,fp8", "regions": "FR,DE",
                 "model": "sdxl,wan2.1"}
"""The example each list of names shows in its refusal (a list of GPUs is not a list of regions)."""


def names(name: str, example: str | None = None) -> Callable[[str], list[str]]:
    """A comma-separated list of names (GPUs, precisions, regions); empty items are refused, with
    ``example`` (default: the list's own in :data:`NAME_EXAMPLES`)."""
    example = example or NAME_EXAMPLES.get(name, "a,b")

    def parse(text: str) -> list[str]:
        parts = [p.strip() for p in str(text).split(",")]
        if not parts or any(not p for p in parts):
            _fail(name, repr(text), f"write a comma-separated list of names without empty items (e.g. {example})")
        return parts

    parse.__name__ = name
    return parse


def nonempty(name: str) -> Callable[[str], str]:
    """A text that is not empty or blank (a path, a name)."""

    def parse(text: str) -> str:
        if not str(text).strip():
            _fail(name, repr(text), "it must not be empty")
        return text

    parse.__name__ = name
    return parse


def resolution(text: str) -> str:
    """``--res``: one of the forms of :func:`scaling.settings.check_resolution_text` (a named height,
    ``NNNp``, ``WxH``, ``N``); what the model accepts is checked when the setting is made."""
    from scaling.errors import InvalidSettingError
    from scaling.settings import check_resolution_text

    if not str(text).strip():
        _fail("res", repr(text), "it must not be empty")
    try:
        return check_resolution_text(text)
    except InvalidSettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- the options of the commands ---------------------------------------------------------------
count = whole("count", 1, MAX_COUNT)
steps = whole("steps", 1, MAX_STEPS)
frames = whole("frames", 1, 100_000)
batch = whole("batch", 1, MAX_BATCH)
outputs_per_prompt = whole("outputs_per_prompt", 1, MAX_BATCH)
prompt_tokens = whole("prompt_tokens", 1, 1_000_000)
seconds = number("seconds", 0.0, 86_400.0, lo_open=True, unit="of seconds")
guidance = number("guidance", 0.0, 1_000.0)
pue = number("pue", 1.0, 5.0)                     # the rule of scaling.carbon.check_pue
intensity = number("intensity", 0.0, 2_000.0, unit="of gCO2e/kWh")  # the dirtiest grids are about 1,100
repeats = whole("repeats", 1, 10_000)
warmup = whole("warmup", 0, 10_000)
idle_s = number("idle_s", 0.0, 3_600.0, unit="of seconds")
seed = whole("seed", 0, 2**32 - 1)
power_w = number("cpu_power_w", 0.0, 10_000.0, lo_open=True, unit="of watts")
n_splits = whole("n_splits", 2, 1_000)
steps_scale = number("steps_scale", 0.0, 100.0, lo_open=True)
settings_per_job = whole("settings_per_job", 1, 100_000)
minutes = whole("time_min", 1, 60 * 24 * 30)
array_parallelism = whole("array_parallelism", 1, 100_000)


# -- the shared options --------------------------------------------------------------------------

def add_setting_args(p: argparse.ArgumentParser, with_gpu: bool = True) -> None:
    g = p.add_argument_group("generation setting (unset fields take the model's defaults)")
    g.add_argument("--model", "-m", help="registered id or alias (see `scaling models`)")
    g.add_argument("--config", metavar="DIR", type=nonempty("config"),
                   help="a local diffusers folder (model_index.json + component configs)")
    g.add_argument("--res", type=resolution,
                   help="480p | 720p | 1080p | WxH (width first, e.g. 832x480) | N (square)")
    g.add_argument("--frames", type=frames, help="video frames (each model's rule: Wan 4k+1, CogVideoX/LTX 8k+1, ...)")
    g.add_argument("--seconds", type=seconds, help="audio length in seconds")
    g.add_argument("--steps", type=steps, help="denoising steps")
    g.add_argument("--guidance", type=guidance, help="guidance scale (<= 1 turns CFG off)")
    cfg = g.add_mutually_exclusive_group()
    cfg.add_argument("--no-cfg", dest="cfg", action="store_const", const=False, default=None,
                     help="one denoiser pass per step (no classifier-free guidance)")
    cfg.add_argument("--cfg", dest="cfg", action="store_const", const=True, help="force CFG on (two passes per step)")
    g.add_argument("--batch", type=batch, default=1, help=f"prompts per call (default 1, at most {MAX_BATCH})")
    g.add_argument("--outputs-per-prompt", type=outputs_per_prompt, default=1,
                   help="outputs per prompt (default 1); a call makes batch x outputs-per-prompt outputs")
    g.add_argument("--precision", type=nonempty("precision"),
                   help="fp32 | tf32 | bf16 | fp16 | fp8 | int8 | nf4 | fp4 (default bf16)")
    g.add_argument("--prompt-tokens", type=prompt_tokens, metavar="N",
                   help="text tokens of the prompt, for models whose text length is not fixed by padding (the "
                        "padded max_sequence_length of SD3, Flux, PixArt, Wan, LTX, CogVideoX, HunyuanVideo; the "
                        "prompt's own tokens for Qwen-Image, Tango, AudioLDM 2, Mochi); default: the model's assumption")
    if with_gpu:
        g.add_argument("--gpu", type=nonempty("gpu"),
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
    count = whole("gpus", 1, MAX_GPUS)
    if several_counts:
        g.add_argument("--gpus", type=csv_of(count, "gpus"), metavar="N,...",
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


SETTING_KEYWORDS = {"res": "res", "frames": "frames", "seconds": "seconds", "steps": "steps", "guidance": "guidance",
                    "cfg": "cfg", "batch_size": "batch", "outputs_per_prompt": "outputs_per_prompt",
                    "precision": "precision", "prompt_tokens": "prompt_tokens"}
"""Keyword of :func:`scaling.settings.make_setting` -> the ``args`` field :func:`add_setting_args` fills: every
option of the setting group but ``--model``, ``--config`` and ``--gpu`` (a test holds the two together)."""


def setting_kwargs(args) -> dict[str, Any]:
    """The :func:`scaling.settings.make_setting` keywords of the parsed setting options (:data:`SETTING_KEYWORDS`),
    ``--gpu`` apart: the one place a command turns them into a setting, so that none is left out. An option
    left unset (None) is left out: make_setting's default (the model's) applies."""
    values = {kw: getattr(args, dest, None) for kw, dest in SETTING_KEYWORDS.items()}
    return {kw: v for kw, v in values.items() if v is not None}


def setting_from_args(args, spec=None):
    from scaling.settings import make_setting

    spec = spec or model_spec_from_args(args)
    return make_setting(spec, gpu=getattr(args, "gpu", None), **setting_kwargs(args))


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
