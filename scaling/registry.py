"""The model registry: every registered pipeline, its components and their real configs.

The configs under ``scaling/_registry/models/<key>/`` are copied verbatim from the
architecture configs of the public checkpoints (each folder keeps its ``SOURCE.md``);
``scaling/_registry/models.json`` adds what the package needs on top: the public id, short
aliases, the role of each component, and the rules a setting must follow.

Nothing here imports torch: a ``ModelSpec`` is plain data.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from scaling.errors import UnknownModelError

ROLES = ("text_encoder", "denoiser", "decoder", "vocoder")
"""The phases a generation is split into. A pipeline may name more (``upsampler``)."""

GUIDANCE_TYPES = ("cfg", "distilled", "none")
"""``cfg``: two denoiser passes per step (cond + uncond); ``distilled``: guidance enters as an
embedding, one pass; ``none``: no guidance at all."""


@dataclass(frozen=True)
class ComponentSpec:
    """One component of a pipeline, as diffusers names it (``text_encoder_2``, ``unet``)."""

    name: str
    role: str
    library: str
    class_name: str
    config: Mapping[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    """A registered pipeline: its components, defaults and rules. No weights."""

    key: str
    id: str
    aliases: tuple[str, ...]
    modality: str
    family: str
    pipeline_class: str
    components: Mapping[str, ComponentSpec]
    defaults: Mapping[str, Any]
    guidance_type: str
    pipeline: Mapping[str, Any]
    rules: Mapping[str, Any]
    text_tokens: Mapping[str, int]
    text_tokens_provenance: Mapping[str, str]
    provenance: str
    architecture_key: str = ""
    notes: str = ""
    source_dir: str | None = None
    config_hash: str = ""   # local folders only: sha256 of the canonical JSON of their configs

    @property
    def default_cfg(self) -> bool:
        return self.guidance_type == "cfg"

    def roles(self) -> dict[str, list[str]]:
        """role -> component names, in pipeline order (only components that compute)."""
        out: dict[str, list[str]] = {}
        for comp in self.components.values():
            out.setdefault(comp.role, []).append(comp.name)
        return out


@dataclass(frozen=True)
class PromptTokens:
    """How the prompt sets a pipeline's text length (``prompt_tokens`` of a setting).

    ``how``:

    - ``"max_sequence_length"``: the tokenizer pads (and truncates) to ``max_sequence_length``, a
      call argument: the encoder runs on, and the denoiser sees, that many tokens whatever the
      prompt; ``prompt_tokens`` is that length;
    - ``"prompt"``: no padding to a fixed length (a single prompt is its own longest prompt):
      the encoder runs on the prompt's tokens (plus the pipeline's template, ``template``
      tokens before and after), the denoiser sees them;
    - ``"valid"``: the encoder runs on the padded ``max_sequence_length`` (fixed here), the
      denoiser's attention keeps only the prompt's (valid) tokens.
    """

    component: str      # the text encoder whose sequence the prompt sets
    how: str
    default: int        # today's assumption (the registry's text token count, template excluded)
    max_tokens: int
    template: tuple[int, int] = (0, 0)
    note: str = ""


# family -> (component, how, max tokens, note); the other families pad every encoder to a length
# the model fixes (CLIP 77, CLAP 512, Stable Audio's T5 model_max_length 128)
_PROMPT_TOKEN_FAMILIES: dict[str, tuple[str, str, int, str]] = {
    "sd3": ("text_encoder_3", "max_sequence_length", 512, "T5 padded to max_sequence_length (at most 512); "
            "the CLIPs stay at 77"),
    "flux": ("text_encoder_2", "max_sequence_length", 512, "T5 padded to max_sequence_length (at most 512)"),
    "pixart": ("text_encoder", "max_sequence_length", 512, "T5 padded to max_sequence_length"),
    "wan": ("text_encoder", "max_sequence_length", 512, "UMT5 padded to max_sequence_length"),
    "ltx": ("text_encoder", "max_sequence_length", 512, "T5 padded to max_sequence_length"),
    "cogvideox": ("text_encoder", "max_sequence_length", 226, "T5 padded to max_sequence_length (at most the "
                  "transformer's max_text_seq_length, 226)"),
    "hunyuan": ("text_encoder", "max_sequence_length", 1024, "Llama on the chat template + max_sequence_length "
                "tokens (padded), the template cropped after"),
    "mochi": ("text_encoder", "valid", 256, "T5 runs on 256 padded tokens; the joint attention keeps the "
              "prompt's own tokens"),
    "qwen": ("text_encoder", "prompt", 1019, "the prompt's own tokens inside the chat template (34 before, "
             "5 after); no padding"),
    "audioldm2": ("text_encoder_2", "prompt", 512, "Flan-T5 pads to the longest prompt: the prompt's own tokens"),
    "tango": ("text_encoder", "prompt", 512, "Flan-T5 pads to the longest prompt: the prompt's own tokens"),
}
# Qwen-Image's chat template around the prompt: prompt_template_drop_tokens before, and
# <|im_end|>, newline, <|im_start|>, assistant, newline after (see models.json's provenance)
_QWEN_TEMPLATE_AFTER = 5


def prompt_token_rule(spec: "ModelSpec") -> PromptTokens | None:
    """How ``prompt_tokens`` applies to ``spec``; None where every text length is fixed by padding."""
    entry = _PROMPT_TOKEN_FAMILIES.get(spec.family)
    if entry is None or entry[0] not in spec.text_tokens:
        return None
    if spec.family == "cogvideox" and not spec.components["transformer"].config.get("use_rotary_positional_embeddings"):
        return None  # CogVideoX-2b: learnt sin-cos positions for exactly max_text_seq_length text tokens
    component, how, max_tokens, note = entry
    template = (0, 0)
    if spec.family == "qwen":
        template = (int(spec.pipeline.get("prompt_template_drop_tokens", 34)), _QWEN_TEMPLATE_AFTER)
    elif spec.family == "hunyuan":
        template = (int(spec.pipeline.get("prompt_template_drop_tokens", 0)), 0)
    default = int(spec.text_tokens[component])
    if spec.family == "qwen":  # the registry counts the templated sequence
        default -= sum(template)
    return PromptTokens(component, how, default, max_tokens, template, note)


def _pkg_file(*parts: str):
    return resources.files("scaling").joinpath("_registry", *parts)


def _read_json(*parts: str) -> Any:
    return json.loads(_pkg_file(*parts).read_text(encoding="utf-8"))


def _guidance_type(pipeline: Mapping[str, Any]) -> str:
    if pipeline.get("cfg_doubles_batch"):
        return "cfg"
    text = str(pipeline.get("guidance_type", "")).lower()
    return "distilled" if text.startswith("distilled") else "none"


def _defaults(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "height": pipeline.get("height"),
        "width": pipeline.get("width"),
        "frames": pipeline.get("num_frames"),
        "fps": pipeline.get("fps"),
        "audio_seconds": pipeline.get("audio_length_in_s", pipeline.get("audio_end_in_s")),
        "steps": pipeline.get("num_inference_steps"),
        "guidance_scale": pipeline.get("guidance_scale"),
    }
    if d["guidance_scale"] is None and pipeline.get("true_cfg_scale") is not None:
        d["guidance_scale"] = pipeline["true_cfg_scale"]
    return d


def _text_tokens(entry: Mapping[str, Any], pipeline: Mapping[str, Any]):
    tokens: dict[str, int] = {}
    prov: dict[str, str] = {}
    for name, n in (pipeline.get("max_sequence_length") or {}).items():
        if n is not None:
            tokens[name] = int(n)
            prov[name] = "pipeline max_sequence_length (pipeline.json)"
    for name, spec in (entry.get("text_tokens") or {}).items():
        tokens[name] = int(spec["tokens"])
        prov[name] = spec["provenance"]
    return tokens, prov


@cache
def _load() -> tuple[dict[str, ModelSpec], dict[str, str]]:
    index = _read_json("models.json")
    specs: dict[str, ModelSpec] = {}
    for entry in index["models"]:
        key = entry["key"]
        folder = _pkg_file("models", key)
        pipeline = json.loads(folder.joinpath("pipeline.json").read_text(encoding="utf-8"))
        components = {}
        for name, role in entry["roles"].items():
            cfg = json.loads(folder.joinpath(f"{name}.json").read_text(encoding="utf-8"))
            components[name] = ComponentSpec(
                name=name,
                role=role,
                library=cfg.get("_library", pipeline["components"][name][0]),
                class_name=cfg.get("_class_name", pipeline["components"][name][1]),
                config=cfg,
            )
        tokens, prov = _text_tokens(entry, pipeline)
        specs[key] = ModelSpec(
            key=key,
            id=entry["id"],
            aliases=tuple(entry["aliases"]),
            modality=pipeline["modality"],
            family=entry["family"],
            pipeline_class=pipeline["_class_name"],
            components=components,
            defaults=_defaults(pipeline),
            guidance_type=_guidance_type(pipeline),
            pipeline=pipeline,
            rules={
                "res_multiple": entry.get("res_multiple"),
                "max_side": entry.get("max_side"),
                "frame_step": entry.get("frame_step"),
                "max_frames": entry.get("max_frames"),
                "max_audio_s": entry.get("max_audio_s"),
            },
            text_tokens=tokens,
            text_tokens_provenance=prov,
            provenance=f"scaling/_registry/models/{key}/SOURCE.md",
            architecture_key=key,
            notes=entry.get("notes", ""),
            source_dir=str(folder),
        )
    names: dict[str, str] = {}
    for spec in specs.values():
        for name in (spec.key, spec.id, *spec.aliases, *_other_ids(index, spec.key)):
            names[_norm(name)] = spec.key
    for var in index["variants"]:
        base = specs[var["architecture"]]
        vkey = var["id"]
        defaults = dict(base.defaults)
        d = var["defaults"]
        for src, dst in (("num_inference_steps", "steps"), ("guidance_scale", "guidance_scale"),
                         ("height", "height"), ("width", "width"), ("num_frames", "frames")):
            if src in d:
                defaults[dst] = d[src]
        specs[vkey] = ModelSpec(
            **{**base.__dict__,
               "key": vkey, "id": var["id"], "aliases": tuple(var["aliases"]),
               "defaults": defaults,
               "guidance_type": d.get("guidance_type", base.guidance_type),
               "provenance": var["provenance"] + f" Architecture: {base.provenance}",
               "architecture_key": base.key}
        )
        for name in (vkey, *var["aliases"]):
            names[_norm(name)] = vkey
    return specs, names


def _other_ids(index: Mapping[str, Any], key: str) -> list[str]:
    for entry in index["models"]:
        if entry["key"] == key:
            return list(entry.get("other_ids", []))
    return []


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def resolve_model(name: str) -> ModelSpec:
    """Return the registered model for an id, key or alias (case-insensitive).

    Raises :class:`UnknownModelError` naming the value and the closest registered names.
    """
    specs, names = _load()
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"model name {name!r} is empty: give a registered id or alias (see `scaling models`)")
    key = names.get(_norm(name))
    if key is None:
        close = difflib.get_close_matches(_norm(name), list(names), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}: not a registered id or alias{hint} (see `scaling models`, "
            "or profile a local diffusers folder with --config DIR)"
        )
    return specs[key]


def list_models(include_variants: bool = False) -> list[ModelSpec]:
    """The registered models (architectures), in registry order."""
    specs, _ = _load()
    return [s for s in specs.values() if include_variants or s.key == s.architecture_key]


def model_from_dir(path: str | Path) -> ModelSpec:
    """Build a ModelSpec from a local folder in the diffusers layout.

    The folder holds ``model_index.json`` and one sub-folder per component with its
    ``config.json``. Defaults come from the pipeline class where the registry knows a model
    of the same class (its family and rules are reused); otherwise the folder is refused.
    """
    root = Path(path)
    index_file = root / "model_index.json"
    if not index_file.is_file():
        raise UnknownModelError(f"--config {str(root)!r}: no model_index.json there (expected a diffusers pipeline folder)")
    index = _read_local_json(index_file, root)
    if not isinstance(index, dict):
        raise UnknownModelError(f"--config {str(index_file)!r}: holds a JSON {type(index).__name__}; rule: a JSON "
                                "object naming the pipeline class and its components")
    pipeline_class = index.get("_class_name")
    template = next((s for s in list_models() if s.pipeline_class == pipeline_class), None)
    if template is None:
        known = sorted({s.pipeline_class for s in list_models()})
        raise UnknownModelError(
            f"--config {str(root)!r}: pipeline class {pipeline_class!r} is not supported; supported: {', '.join(known)}"
        )
    named = {k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and len(v) == 2}
    if not named:
        raise UnknownModelError(f"--config {str(index_file)!r}: names no components; rule: entries "
                                '"name": ["library", "ClassName"] (a diffusers model_index.json)')
    components = {}
    raw = {}
    for name, tmpl in template.components.items():
        cfg_file = root / name / "config.json"
        if not cfg_file.is_file():
            raise UnknownModelError(f"--config {str(root)!r}: missing {name}/config.json (a {pipeline_class} needs it)")
        cfg = _read_local_json(cfg_file, root)
        if not isinstance(cfg, dict):
            raise UnknownModelError(f"--config {str(cfg_file)!r}: holds a JSON {type(cfg).__name__}; rule: a JSON object")
        raw[name] = dict(cfg)
        lib_cls = index.get(name) or [tmpl.library, tmpl.class_name]
        cfg.setdefault("_class_name", lib_cls[1])
        cfg["_library"] = lib_cls[0]
        components[name] = ComponentSpec(name, tmpl.role, lib_cls[0], lib_cls[1], cfg)
    digest = config_hash(index, raw)
    key = f"local:{root.name}"
    return ModelSpec(**{**template.__dict__, "key": key, "id": str(root.resolve()), "aliases": (),
                        "components": components, "provenance": f"local folder {root.resolve()}",
                        "architecture_key": key, "source_dir": str(root), "config_hash": digest})


def _read_local_json(path: Path, root: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UnknownModelError(f"--config {str(path)!r}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise UnknownModelError(f"--config {str(path)!r}: not UTF-8 text") from None


def config_hash(index: Mapping[str, Any], configs: Mapping[str, Mapping[str, Any]]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of a folder's model_index and its
    component configs: the key of its cached closed-form tables."""
    blob = json.dumps({"model_index": index, "components": configs}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def hub_cache_snapshot(name: str) -> Path | None:
    """The newest snapshot of hub id ``ORG/NAME`` in the local Hugging Face cache that holds a
    ``model_index.json`` (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub``); None if there is none. Reads files only, never the network."""
    import os

    if not isinstance(name, str) or name.count("/") != 1 or not all(name.split("/")):
        return None
    hub = os.environ.get("HF_HUB_CACHE") or (
        str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME")
        else str(Path.home() / ".cache" / "huggingface" / "hub"))
    repo = Path(hub) / ("models--" + name.strip().replace("/", "--"))
    snaps = [p.parent for p in (repo / "snapshots").glob("*/model_index.json")]
    if not snaps:
        return None
    return max(snaps, key=lambda p: p.stat().st_mtime)
