"""Build the diffusers pipeline a measurement runs: full size with random weights, a user's
local weights, or a tiny random pipeline for tests.

Energy and time depend on shapes, not on weight values, so ``random_weights`` builds every
component from its registry config with its real class, random-initialised directly on the
target device, then cast to the chosen precision (modules a real checkpoint keeps in fp32,
``_keep_in_fp32_modules``, stay in fp32, as ``from_pretrained(torch_dtype=...)`` does).
Tokenizers are built in memory (no download): a word-level vocabulary over the shipped
prompts, wrapped in the transformers tokenizer class the pipeline's constructor names, with
the ``model_max_length`` the real tokenizer has, so every text encoder sees the real
sequence length (pipelines pad to it). The scheduler comes from the registry's
``scheduler.json``.

::

    built = build_pipeline("sd2.1", device="cuda", precision="fp16")     # random weights
    built = build_pipeline("sd2.1", weights="/models/sd21")               # local weights
    built = tiny_pipeline("wan")                                           # tests, CPU, seconds
    kwargs = call_kwargs(built, setting, prompts=["a fox"], seed=0)
    out = built.pipe(**kwargs)

``tiny_pipeline(kind)`` (``sd``, ``wan``, ``audioldm``) builds the real diffusers pipeline
classes with 1-layer components of width 16 to 32 from a fixed seed; each has a
:class:`~scaling.registry.ModelSpec` (``tiny:sd`` ...) so settings, the runner and sweeps
treat it like a registered model.

Pieces live beside this module and are re-exported here: devices (:mod:`.devices`:
``resolve_device``, ``sync_device``, out-of-memory errors), prompts and in-memory tokenizers
(:mod:`.tokenizers`), the tiny test pipelines' specs and components (:mod:`.tiny`).

torch, diffusers and transformers are imported here; nothing on the predict path imports
this module.
"""

from __future__ import annotations

import inspect
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from profilers.energy.devices import resolve_device, sync_device
from profilers.energy.tiny import TINY_KINDS, tiny_parts, tiny_spec
from profilers.energy.tokenizers import (
    build_tokenizer,
    encoder_for,
    load_prompts,
    tokenizer_classes,
    tokenizer_max_length,
    vocab_size_of,
)
from scaling.errors import InvalidSettingError, UnknownModelError
from scaling.precision import UNQUANTISED_PRECISIONS
from scaling.registry import ComponentSpec, ModelSpec, resolve_model

__all__ = [
    "MEASURABLE_PRECISIONS",
    "TINY_KINDS",
    "BuiltPipeline",
    "build_pipeline",
    "build_tokenizer",
    "call_kwargs",
    "load_prompts",
    "resolve_device",
    "resolve_spec",
    "sync_device",
    "tiny_pipeline",
    "tiny_spec",
]

MEASURABLE_PRECISIONS: tuple[str, ...] = UNQUANTISED_PRECISIONS
"""Precisions a random-weights pipeline can be built in: the unquantised ones of
:mod:`scaling.precision`. fp8 / int8 / nf4 / fp4 need a quantisation backend and real
calibration: load such checkpoints with ``weights=DIR``."""

#: Roles of the diffusers attribute names, for pipelines the registry does not describe.
_ROLE_PATTERNS = (
    (re.compile(r"^(text_encoder(_\d+)?|language_model|projection_model|text_projection)$"), "text_encoder"),
    (re.compile(r"^(unet|transformer(_\d+)?|prior|motion_adapter)$"), "denoiser"),
    (re.compile(r"^vae$"), "decoder"),
    (re.compile(r"^vocoder$"), "vocoder"),
    (re.compile(r"^(latent_upsampler|upsampler)$"), "upsampler"),
)


# --------------------------------------------------------------------------------------------
# the built pipeline
# --------------------------------------------------------------------------------------------

@dataclass
class BuiltPipeline:
    """A pipeline ready to measure, and what the runner needs to know about it.

    Attributes
    ----------
    pipe : diffusers.DiffusionPipeline
    spec : ModelSpec
        The model it implements (a registry entry, a local folder, or a tiny test spec).
    roles : dict
        diffusers attribute name -> phase (``text_encoder``, ``denoiser``, ``decoder``,
        ``vocoder``, ``upsampler``); only components that compute.
    device : str
        ``cuda``, ``cuda:1``, ``cpu``.
    precision : str
    weights : str
        ``random`` or the local folder the weights came from.
    build_s : float
        Seconds the build took.
    """

    pipe: Any
    spec: ModelSpec
    roles: dict[str, str]
    device: str
    precision: str
    weights: str = "random"
    build_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def parameter_count(self) -> int:
        return sum(p.numel() for name in self.roles for p in getattr(self.pipe, name).parameters())


# --------------------------------------------------------------------------------------------
# precision
# --------------------------------------------------------------------------------------------

def torch_dtype(precision: str):
    import torch

    table = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in table:
        raise InvalidSettingError(
            f"`precision` {precision!r} cannot be measured with random weights: use one of "
            f"{', '.join(MEASURABLE_PRECISIONS)} (quantised formats need a quantised checkpoint: --weights DIR)"
        )
    return table[precision]


def _set_tf32(precision: str) -> None:
    import torch

    on = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


# --------------------------------------------------------------------------------------------
# specs: registry, local folders, tiny test pipelines
# --------------------------------------------------------------------------------------------

def resolve_spec(model: str | ModelSpec) -> ModelSpec:
    """A registry id / alias, ``tiny:<kind>``, a local diffusers folder (its configs), or a
    ModelSpec (returned as is)."""
    if isinstance(model, ModelSpec):
        return model
    text = str(model).strip()
    if text.lower().startswith("tiny:") or text.lower().startswith("tiny-"):
        return tiny_spec(text[5:])
    if (Path(text) / "model_index.json").is_file():
        from scaling.registry import model_from_dir

        return model_from_dir(text)
    return resolve_model(text)


def roles_of(spec: ModelSpec, pipe: Any) -> dict[str, str]:
    """Component attribute -> phase, from the registry where it says, else by name."""
    out: dict[str, str] = {}
    components = getattr(pipe, "components", {}) or {}
    for name, obj in components.items():
        if obj is None or not hasattr(obj, "forward"):
            continue  # tokenizers, schedulers, feature extractors: no compute
        if name in spec.components:
            out[name] = spec.components[name].role
            continue
        for pattern, role in _ROLE_PATTERNS:
            if pattern.match(name):
                out[name] = role
                break
    # AnimateDiff folds its motion adapter into the UNet at construction: nothing to hook there
    if "motion_adapter" in out and "unet" in out:
        del out["motion_adapter"]
    return out


# --------------------------------------------------------------------------------------------
# random-weights build
# --------------------------------------------------------------------------------------------

def _pipeline_class(spec: ModelSpec):
    import diffusers

    cls = getattr(diffusers, spec.pipeline_class, None)
    if cls is None:
        raise InvalidSettingError(
            f"{spec.id}: its pipeline ({spec.pipeline_class!r}) is not a diffusers class, so it "
            "cannot be built and measured here; measure it with its own code and import the runs"
        )
    return cls


def _build_component(comp: ComponentSpec, device: str):
    """One component from its config, random-initialised on ``device`` (fp32)."""
    from profilers.flops.traced import build_from_config

    if comp.library not in ("diffusers", "transformers"):
        raise InvalidSettingError(f"component {comp.name}: unknown library {comp.library!r}")
    return build_from_config(comp, device).requires_grad_(False)


def _keep_fp32_patterns(module: Any, dtype) -> list[str]:
    import torch

    if dtype == torch.float32:
        return []
    keep = list(getattr(module, "_keep_in_fp32_modules_strict", None) or [])
    lax = list(getattr(module, "_keep_in_fp32_modules", None) or [])
    # transformers applies the lax list for fp16 only; diffusers for any reduced precision
    if dtype == torch.float16 or type(module).__module__.startswith("diffusers"):
        keep += lax
    return keep


def cast_module(module: Any, precision: str) -> Any:
    """Cast floating parameters and buffers to ``precision``, keeping fp32 where the class
    says a real checkpoint does (``_keep_in_fp32_modules``)."""
    import torch

    dtype = torch_dtype(precision)
    keep = _keep_fp32_patterns(module, dtype)
    if not keep:
        # torch's own .to(): diffusers' override warns about fp32 modules even when there are none
        return torch.nn.Module.to(module, dtype)
    for name, sub in module.named_modules():
        parts = name.split(".")
        if any(k in parts for k in keep) or any(name.startswith(k) or f".{k}." in f".{name}." for k in keep):
            continue
        for pname, p in list(sub.named_parameters(recurse=False)):
            if p.is_floating_point():
                p.data = p.data.to(dtype)
        for bname, b in list(sub.named_buffers(recurse=False)):
            if b is not None and b.is_floating_point():
                sub._buffers[bname] = b.to(dtype)
    return module


def _scheduler(spec: ModelSpec, pipeline_cls=None, notes: list[str] | None = None):
    """The scheduler of the registry's ``scheduler.json``. Where that class needs a library
    this environment lacks (CosineDPMSolverMultistepScheduler needs torchsde), the class the
    pipeline's constructor names is built from the same config instead, and a note says so:
    a scheduler step costs next to nothing beside the denoiser."""
    import json

    import diffusers

    folder = Path(spec.source_dir) if spec.source_dir else None
    cfg: dict[str, Any] | None = None
    if folder is not None:
        for path in (folder / "scheduler.json", folder / "scheduler" / "scheduler_config.json"):
            if path.is_file():
                cfg = json.loads(path.read_text(encoding="utf-8"))
                break
    if cfg is None:
        lib_cls = (spec.pipeline.get("components") or {}).get("scheduler")
        if not lib_cls:
            raise InvalidSettingError(f"{spec.id}: no scheduler config in the registry")
        cfg = {"_class_name": lib_cls[1]}
    params = {k: v for k, v in cfg.items() if not k.startswith("_")}
    try:
        return getattr(diffusers, cfg["_class_name"]).from_config(params)
    except ImportError as exc:
        ann = inspect.signature(pipeline_cls.__init__).parameters.get("scheduler") if pipeline_cls else None
        alt = getattr(ann, "annotation", None)
        if not (isinstance(alt, type) and hasattr(alt, "from_config")):
            raise InvalidSettingError(f"{spec.id}: its scheduler {cfg['_class_name']} cannot be built here: "
                                      f"{str(exc).strip().splitlines()[0]}") from exc
        if notes is not None:
            notes.append(f"scheduler {cfg['_class_name']} needs a missing library "
                         f"({str(exc).strip().splitlines()[0]}); used {alt.__name__} with the same config")
        return alt.from_config(params)


def _random_pipeline(spec: ModelSpec, device: str, precision: str, seed: int, notes: list[str] | None = None):
    import torch

    cls = _pipeline_class(spec)
    torch.manual_seed(seed)
    parts: dict[str, Any] = {}
    for name, comp in spec.components.items():
        module = _build_component(comp, device)
        parts[name] = cast_module(module, precision)
    parts["scheduler"] = _scheduler(spec, cls, notes)
    for tok_name, cls_name in tokenizer_classes(cls).items():
        encoder = encoder_for(tok_name)
        if encoder not in parts and tok_name not in ("tokenizer",):
            continue
        enc = parts.get(encoder)
        parts[tok_name] = build_tokenizer(cls_name, tokenizer_max_length(spec, encoder, cls_name, enc, tok_name),
                                          vocab_size_of(enc))
    return _assemble(cls, parts, spec)


def _assemble(cls, parts: Mapping[str, Any], spec: ModelSpec):
    kwargs = dict(parts)
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in kwargs or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if name == "requires_safety_checker":
            kwargs[name] = False
        elif p.default is not inspect.Parameter.empty:
            continue
        elif name in ("safety_checker", "feature_extractor", "image_encoder") or name in cls._optional_components:
            kwargs[name] = None
        else:
            raise InvalidSettingError(
                f"{spec.id}: {cls.__name__} needs `{name}`, which cannot be built with random weights "
                "here; measure it with --weights DIR (a local copy of the checkpoint)"
            )
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity_error()  # deprecation notices (AudioLDM) are not news to a measurement
    try:
        with warnings.catch_warnings():
            # diffusers' deprecation notices about the scheduler config (steps_offset, ...)
            warnings.simplefilter("ignore", FutureWarning)
            pipe = cls(**kwargs)
    finally:
        dlog.set_verbosity(level)
    return pipe


def build_pipeline(
    model: str | ModelSpec,
    *,
    device: str = "auto",
    precision: str = "fp16",
    weights: str | Path | None = None,
    seed: int = 0,
    allow_pickle: bool = False,
) -> BuiltPipeline:
    """The full-size pipeline of ``model`` on ``device`` in ``precision``.

    ``weights=None`` builds it with random weights from the registry configs (no download);
    ``weights=DIR`` loads a local diffusers folder with ``DiffusionPipeline.from_pretrained``:
    safetensors only (``allow_pickle=True`` admits pickled ``.bin``/``.pt`` files), local files
    only, no remote code (:mod:`profilers.energy.weights`).
    Raises :class:`InvalidSettingError` / :class:`NoGPUError` before any work when the
    model, precision or device cannot be used.
    """
    import torch

    dev = resolve_device(device)
    if isinstance(model, str) and model.lower().startswith("tiny"):
        return tiny_pipeline(model.split(":", 1)[-1].split("-", 1)[-1], device=dev, precision=precision, seed=seed)
    spec = resolve_spec(model) if model is not None else None
    torch_dtype(precision)  # check before work
    _set_tf32(precision)
    t0 = time.perf_counter()
    if weights is not None:
        from diffusers import DiffusionPipeline

        from profilers.energy.weights import check_weights_dir, from_pretrained_kwargs

        folder = check_weights_dir(weights, allow_pickle=allow_pickle)
        if spec is None:
            from scaling.registry import model_from_dir

            spec = model_from_dir(folder)
        with warnings.catch_warnings():
            # newer diffusers rename `torch_dtype` to `dtype` and say so; older ones know only the old name
            warnings.simplefilter("ignore", FutureWarning)
            pipe = DiffusionPipeline.from_pretrained(str(folder), torch_dtype=torch_dtype(precision),
                                                     **from_pretrained_kwargs(allow_pickle))
        pipe = pipe.to(dev)
        source = str(folder.resolve())
        notes = []
    else:
        if spec is None:
            raise UnknownModelError("give a model (--model) or a weights folder (--weights DIR)")
        if spec.modality not in ("image", "video", "audio"):
            raise InvalidSettingError(f"{spec.id}: unknown modality {spec.modality!r}")
        notes: list[str] = []
        pipe = _random_pipeline(spec, dev, precision, seed, notes)
        source = "random"
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    if dev.startswith("cuda"):
        torch.cuda.synchronize(dev)
    return BuiltPipeline(pipe=pipe, spec=spec, roles=roles_of(spec, pipe), device=dev, precision=precision,
                         weights=source, build_s=time.perf_counter() - t0, notes=notes)


# --------------------------------------------------------------------------------------------
# call arguments
# --------------------------------------------------------------------------------------------

def call_kwargs(built: BuiltPipeline, setting, prompts: Sequence[str], seed: int) -> dict[str, Any]:
    """The pipeline ``__call__`` arguments that produce ``setting`` for ``prompts``.

    ``prompts`` has ``setting.batch_size`` entries. CFG is switched off through the
    guidance scale (diffusers runs CFG when guidance_scale > 1). Outputs are torch tensors
    (``output_type="pt"``): no image or audio files are written.
    """
    import torch

    pipe = built.pipe
    params = inspect.signature(pipe.__call__).parameters
    spec = built.spec
    if len(prompts) != setting.batch_size:
        raise InvalidSettingError(f"`prompts` has {len(prompts)} entries for batch_size {setting.batch_size}")
    kw: dict[str, Any] = {"prompt": list(prompts) if setting.batch_size > 1 else prompts[0]}

    def put(name: str, value: Any) -> None:
        if value is not None and name in params:
            kw[name] = value

    if setting.modality in ("image", "video"):
        put("height", setting.height)
        put("width", setting.width)
    if setting.modality == "video":
        put("num_frames", setting.frames)
    if setting.modality == "audio":
        if "audio_length_in_s" in params:
            kw["audio_length_in_s"] = setting.audio_seconds
        elif "audio_end_in_s" in params:
            kw["audio_end_in_s"] = setting.audio_seconds
    put("num_inference_steps", setting.steps)
    guidance = setting.guidance_scale
    if spec.guidance_type == "cfg" and not setting.cfg:
        guidance = 1.0  # diffusers switches CFG off at guidance <= 1
    put("guidance_scale", guidance)
    for name in ("num_images_per_prompt", "num_videos_per_prompt", "num_waveforms_per_prompt"):
        put(name, setting.outputs_per_prompt)
    lengths = [v for v in (spec.pipeline.get("max_sequence_length") or {}).values() if v]
    if lengths and "max_sequence_length" in params:
        kw["max_sequence_length"] = int(max(lengths))
    gen_device = built.device if built.device.startswith("cuda") else "cpu"
    put("generator", torch.Generator(device=gen_device).manual_seed(int(seed)))
    if "output_type" in params:
        kw["output_type"] = "pt"
    return kw


# --------------------------------------------------------------------------------------------
# tiny pipelines for tests
# --------------------------------------------------------------------------------------------

def tiny_pipeline(kind: str, *, device: str = "cpu", precision: str = "fp32", seed: int = 0) -> BuiltPipeline:
    """A tiny random pipeline of the real diffusers class, for tests: 1 layer, width 16-32,
    fixed seed; 2 steps at 8x8 (``sd``), 16x16x5 frames (``wan``: its VAE and patching need
    16 px) or 0.016 s of audio (``audioldm``) run on a CPU in well under a second."""
    import torch

    spec = tiny_spec(kind)
    kind = spec.key.split("-", 1)[1]
    dev = resolve_device(device)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    parts = tiny_parts(kind, seed)
    cls = _pipeline_class(spec)
    parts = {k: (v.eval().requires_grad_(False) if hasattr(v, "requires_grad_") else v) for k, v in parts.items()}
    pipe = _assemble(cls, parts, spec)
    pipe = pipe.to(dev)
    if precision != "fp32":
        for name in spec.components:
            cast_module(getattr(pipe, name), precision)
    pipe.set_progress_bar_config(disable=True)
    return BuiltPipeline(pipe=pipe, spec=spec, roles=roles_of(spec, pipe), device=dev, precision=precision,
                         weights="random", build_s=time.perf_counter() - t0)
