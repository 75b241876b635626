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

torch, diffusers and transformers are imported here; nothing on the predict path imports
this module.
"""

from __future__ import annotations


import inspect
import re
import time
import warnings
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from scaling.errors import InvalidSettingError, NoGPUError, ScalingError, UnknownModelError
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

MEASURABLE_PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
"""Precisions a random-weights pipeline can be built in. fp8 / int8 / nf4 / fp4 need a
quantisation backend and real calibration: load such checkpoints with ``weights=DIR``."""

TINY_KINDS = ("sd", "wan", "audioldm")

#: Roles of the diffusers attribute names, for pipelines the registry does not describe.
_ROLE_PATTERNS = (
    (re.compile(r"^(text_encoder(_\d+)?|language_model|projection_model|text_projection)$"), "text_encoder"),
    (re.compile(r"^(unet|transformer(_\d+)?|prior|motion_adapter)$"), "denoiser"),
    (re.compile(r"^vae$"), "decoder"),
    (re.compile(r"^vocoder$"), "vocoder"),
    (re.compile(r"^(latent_upsampler|upsampler)$"), "upsampler"),
)

#: Default ``model_max_length`` per tokenizer class where the registry states no token count.
#: CLIP: 77 (all CLIP tokenizers). RobertaTokenizer here is CLAP's (laion/clap-htsat-*):
#: 512, and AudioLDM pads to it. T5: 512 (google t5 tokenizers); Stable Audio Open's own is
#: set in _MODEL_MAX_LENGTH below.
_DEFAULT_MAX_LENGTH = {"CLIPTokenizer": 77, "RobertaTokenizer": 512, "T5Tokenizer": 512}

#: Token counts the registry leaves null, per registry key and text encoder.
#: stable-audio-open-1.0: T5 conditioner ``max_length`` 128 (stable-audio-tools model_config).
_MODEL_MAX_LENGTH = {("stable-audio-open-1.0", "text_encoder"): 128}


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
# devices and precision
# --------------------------------------------------------------------------------------------

def resolve_device(device: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA GPU is visible, else ``cpu``; ``cuda`` without one
    raises :class:`NoGPUError` saying what to do."""
    text = (device or "auto").strip().lower()
    if text in ("cpu", "mps"):
        return text
    import torch

    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise NoGPUError(
                f"`device` {device!r}: no CUDA GPU is visible to this process (torch "
                f"{torch.__version__}, CUDA_VISIBLE_DEVICES may hide it); run on a GPU machine, "
                "or pass --device cpu to run on the CPU with estimated energies"
            )
        index = text.split(":", 1)[1] if ":" in text else "0"
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise NoGPUError(f"`device` {device!r}: this process sees {torch.cuda.device_count()} GPU(s)")
        return text
    raise InvalidSettingError(f"`device` {device!r} is unknown: use auto, cuda, cuda:N or cpu")


def sync_device(device: str) -> None:
    """Wait until the work queued on ``device`` is done (CPU work is synchronous)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()


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
# prompts and tokenizers
# --------------------------------------------------------------------------------------------

@cache
def load_prompts(modality: str) -> tuple[str, ...]:
    """The shipped prompt set of a modality (``scaling/_prompts/<modality>.txt``)."""
    if modality not in ("image", "video", "audio"):
        raise InvalidSettingError(f"`modality` {modality!r}: prompts exist for image, video and audio")
    text = resources.files("scaling").joinpath("_prompts", f"{modality}.txt").read_text(encoding="utf-8")
    prompts = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if not prompts:
        raise ScalingError(f"scaling/_prompts/{modality}.txt holds no prompt")
    return prompts


@cache
def _prompt_words() -> tuple[str, ...]:
    """Every word of the shipped prompts, most frequent first (ties: alphabetical)."""
    counts: dict[str, int] = {}
    for modality in ("image", "video", "audio"):
        for p in load_prompts(modality):
            for w in re.findall(r"[a-z0-9]+", p.lower()):
                counts[w] = counts.get(w, 0) + 1
    return tuple(sorted(counts, key=lambda w: (-counts[w], w)))


_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def build_tokenizer(class_name: str, model_max_length: int, vocab_size: int | None = None):
    """A tokenizer built in memory, as an instance of the transformers class ``class_name``.

    Word-level over the words of the shipped prompts (CLIP: byte-pair merges that spell
    those words, as CLIP's own vocabulary does), capped so every id stays below
    ``vocab_size``; unknown words map to the unknown token. The pipeline pads or truncates
    to ``model_max_length``, which is what sets the text encoder's cost.
    """
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    cap = None if vocab_size is None else max(16, int(vocab_size) - 8)
    if class_name == "CLIPTokenizer":
        specials = ["<|startoftext|>", "<|endoftext|>"]
        vocab: dict[str, int] = {}
        for tok in specials + list(_CHARS) + [c + "</w>" for c in _CHARS]:
            vocab.setdefault(tok, len(vocab))
        merges: list[tuple[str, str]] = []
        for word in _prompt_words():
            parts = list(word[:-1]) + [word[-1] + "</w>"]
            new = []
            acc = parts[0]
            for p in parts[1:]:
                new.append(((acc, p), acc + p))
                acc = acc + p
            need = [t for _, t in new if t not in vocab]
            if cap is not None and len(vocab) + len(need) > cap:
                break
            for merge, tok in new:
                if tok not in vocab:
                    vocab[tok] = len(vocab)
                    merges.append(merge)
        return transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)

    specials = ["<pad>", "</s>", "<unk>", "<s>", "<mask>"]
    words = list(_prompt_words())
    if cap is not None:
        words = words[: max(0, cap - len(specials))]
    vocab = {tok: i for i, tok in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    cls = getattr(transformers, class_name, None)
    kwargs = dict(tokenizer_object=tok, model_max_length=model_max_length, pad_token="<pad>",
                  eos_token="</s>", unk_token="<unk>", bos_token="<s>")
    if class_name == "T5Tokenizer":
        kwargs["extra_ids"] = 0
    for candidate in (cls, transformers.PreTrainedTokenizerFast):
        if candidate is None:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return candidate(**kwargs)
        except (TypeError, ValueError, AttributeError):
            continue
    raise ScalingError(f"cannot build a {class_name} in memory")  # pragma: no cover


def _tokenizer_classes(pipeline_cls) -> dict[str, str]:
    """``tokenizer`` / ``tokenizer_2`` ... -> the class name the constructor annotates."""
    out = {}
    for name, p in inspect.signature(pipeline_cls.__init__).parameters.items():
        if name.startswith("tokenizer"):
            ann = p.annotation
            label = getattr(ann, "__name__", None) or str(ann)
            m = re.search(r"([A-Za-z0-9]+Tokenizer)(Fast)?", label)
            out[name] = m.group(1) if m else "PreTrainedTokenizerFast"
    return out


def _encoder_for(tokenizer_name: str) -> str:
    return "text_encoder" + tokenizer_name[len("tokenizer"):]


def _max_length(spec: ModelSpec, encoder: str, class_name: str, module: Any = None,
                tokenizer_name: str = "tokenizer") -> int:
    """The tokenizer's ``model_max_length``: a local folder's own tokenizer config, else the
    registry's token count, else the class default; never more positions than the text
    encoder has."""
    n = None
    if spec.source_dir and spec.key.startswith("local:"):
        cfg_file = Path(spec.source_dir) / tokenizer_name / "tokenizer_config.json"
        if cfg_file.is_file():
            import json

            value = json.loads(cfg_file.read_text(encoding="utf-8")).get("model_max_length")
            n = int(value) if isinstance(value, (int, float)) and value < 1e6 else None
    n = n or spec.text_tokens.get(encoder) or _MODEL_MAX_LENGTH.get((spec.architecture_key, encoder))
    n = int(n) if n else _DEFAULT_MAX_LENGTH.get(class_name, 512)
    cfg = getattr(module, "config", None)
    cfg = getattr(cfg, "text_config", None) or cfg
    positions = getattr(cfg, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        offset = 2 if class_name == "RobertaTokenizer" else 0  # RoBERTa positions start after the pad id
        n = min(n, positions - offset)
    return n


def _vocab_size(module: Any) -> int | None:
    cfg = getattr(module, "config", None)
    for obj in (cfg, getattr(cfg, "text_config", None)):
        n = getattr(obj, "vocab_size", None) if obj is not None else None
        if n:
            return int(n)
    return None


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
    for tok_name, cls_name in _tokenizer_classes(cls).items():
        encoder = _encoder_for(tok_name)
        if encoder not in parts and tok_name not in ("tokenizer",):
            continue
        enc = parts.get(encoder)
        parts[tok_name] = build_tokenizer(cls_name, _max_length(spec, encoder, cls_name, enc, tok_name),
                                          _vocab_size(enc))
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
            warnings.simplefilter("ignore")
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
) -> BuiltPipeline:
    """The full-size pipeline of ``model`` on ``device`` in ``precision``.

    ``weights=None`` builds it with random weights from the registry configs (no download);
    ``weights=DIR`` loads a local diffusers folder with ``DiffusionPipeline.from_pretrained``.
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

        folder = Path(weights)
        if not (folder / "model_index.json").is_file():
            raise UnknownModelError(f"--weights {str(folder)!r}: no model_index.json there (expected a diffusers pipeline folder)")
        if spec is None:
            from scaling.registry import model_from_dir

            spec = model_from_dir(folder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pipe = DiffusionPipeline.from_pretrained(str(folder), torch_dtype=torch_dtype(precision))
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

def tiny_spec(kind: str) -> ModelSpec:
    """The ModelSpec of a tiny test pipeline (``sd``, ``wan``, ``audioldm``)."""
    kind = kind.strip().lower()
    if kind not in TINY_KINDS:
        raise UnknownModelError(f"unknown tiny pipeline {kind!r}: use one of {', '.join(TINY_KINDS)}")
    return _tiny_specs()[kind]


@cache
def _tiny_specs() -> dict[str, ModelSpec]:
    def spec(kind, modality, pipeline_class, roles, defaults, rules, tokens):
        components = {n: ComponentSpec(n, r, lib, cls, {}) for n, (r, lib, cls) in roles.items()}
        return ModelSpec(
            key=f"tiny-{kind}", id=f"tiny:{kind}", aliases=(f"tiny:{kind}",), modality=modality, family="tiny",
            pipeline_class=pipeline_class, components=components, defaults=defaults, guidance_type="cfg",
            pipeline={"_class_name": pipeline_class, "max_sequence_length": tokens, "cfg_doubles_batch": True},
            rules=rules, text_tokens=tokens, text_tokens_provenance={k: "tiny test pipeline" for k in tokens},
            provenance="profilers/energy/pipelines.py tiny_pipeline (test only, random 1-layer components)",
            architecture_key=f"tiny-{kind}",
        )

    none_rules = {"res_multiple": None, "max_side": None, "frame_step": None, "max_frames": None, "max_audio_s": None}
    return {
        "sd": spec("sd", "image", "StableDiffusionPipeline",
                   {"text_encoder": ("text_encoder", "transformers", "CLIPTextModel"),
                    "unet": ("denoiser", "diffusers", "UNet2DConditionModel"),
                    "vae": ("decoder", "diffusers", "AutoencoderKL")},
                   {"height": 8, "width": 8, "frames": None, "fps": None, "audio_seconds": None, "steps": 2,
                    "guidance_scale": 5.0},
                   {**none_rules, "res_multiple": 8, "max_side": 64}, {"text_encoder": 16}),
        "wan": spec("wan", "video", "WanPipeline",
                    {"text_encoder": ("text_encoder", "transformers", "UMT5EncoderModel"),
                     "transformer": ("denoiser", "diffusers", "WanTransformer3DModel"),
                     "vae": ("decoder", "diffusers", "AutoencoderKLWan")},
                    {"height": 16, "width": 16, "frames": 5, "fps": 16, "audio_seconds": None, "steps": 2,
                     "guidance_scale": 5.0},
                    {**none_rules, "res_multiple": 16, "max_side": 64, "frame_step": 4, "max_frames": 17},
                    {"text_encoder": 16}),
        "audioldm": spec("audioldm", "audio", "AudioLDMPipeline",
                         {"text_encoder": ("text_encoder", "transformers", "ClapTextModelWithProjection"),
                          "unet": ("denoiser", "diffusers", "UNet2DConditionModel"),
                          "vae": ("decoder", "diffusers", "AutoencoderKL"),
                          "vocoder": ("vocoder", "transformers", "SpeechT5HifiGan")},
                         {"height": None, "width": None, "frames": None, "fps": None, "audio_seconds": 0.016,
                          "steps": 2, "guidance_scale": 2.5},
                         {**none_rules, "max_audio_s": 0.1}, {"text_encoder": 16}),
    }


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = {"sd": _tiny_sd, "wan": _tiny_wan, "audioldm": _tiny_audioldm}[kind](seed)
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


def _tiny_sd(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=4, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=8, sample_size=8,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1, vocab_size=1000,
        max_position_embeddings=16, projection_dim=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "scheduler": scheduler,
            "tokenizer": build_tokenizer("CLIPTokenizer", 16, 1000)}


def _tiny_wan(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=1000, d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    ))
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=32, ffn_dim=32, num_layers=1, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder, "scheduler": scheduler,
            "tokenizer": build_tokenizer("T5Tokenizer", 16, 1000)}


def _tiny_audioldm(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(16, 32), attention_head_dim=4, norm_num_groups=8,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=16, class_embeddings_concat=True,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(16, 32), in_channels=1, out_channels=1, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=8,
    )
    torch.manual_seed(seed)
    text_encoder = ClapTextModelWithProjection(ClapTextConfig(
        bos_token_id=3, eos_token_id=1, hidden_size=16, intermediate_size=32, layer_norm_eps=1e-5,
        num_attention_heads=2, num_hidden_layers=1, pad_token_id=0, vocab_size=1000, projection_dim=16,
        max_position_embeddings=24,
    ))
    torch.manual_seed(seed)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "vocoder": vocoder, "scheduler": scheduler,
            "tokenizer": build_tokenizer("RobertaTokenizer", 16, 1000)}
