"""What a measured pipeline call was: its model and its setting, read for :func:`~profilers.energy.track.track`.

The model is ``pipe.name_or_path`` where the registry resolves it (:func:`registered`), else
``local:<PipelineClass>``. The setting (:func:`read_setting`) comes from the call's arguments,
the signature's defaults, what the pipeline reports after the call (``num_timesteps``,
``do_classifier_free_guidance``) and the shape of what it returned. A registered model's
phases get their closed-form FLOPs (:func:`closed_form_flops`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from typing import Any

from scaling.errors import InvalidSettingError, ProfilerError, UnknownGPUError, UnknownModelError

__all__ = ["NO_SPEC", "closed_form_flops", "gpu_key", "gpu_name", "read_setting", "registered", "setting_digest"]

_OUTPUTS_PER_PROMPT = ("num_images_per_prompt", "num_videos_per_prompt", "num_waveforms_per_prompt")


class _NoSpec:
    """Stands in for a registry entry where there is none: no components named, so the
    pipeline's roles come from its attribute names."""

    components: dict = {}


NO_SPEC = _NoSpec()


def registered(pipe: Any):
    """The registry's model of ``pipe``, else None: the one ``pipe.name_or_path`` (or its last
    parts) names, else the one registered architecture of the same pipeline class whose
    component configs ``pipe``'s match (a pipeline loaded from a local copy, say)."""
    from scaling.registry import list_models, resolve_model

    name = getattr(pipe, "name_or_path", None) or (getattr(pipe, "config", None) or {}).get("_name_or_path")
    if name:
        parts = str(name).replace("\\", "/").rstrip("/").split("/")
        for candidate in dict.fromkeys([str(name), "/".join(parts[-2:]), parts[-1]]):
            try:
                return resolve_model(candidate)
            except UnknownModelError:
                continue
    same_class = [s for s in list_models() if s.pipeline_class == type(pipe).__name__]
    matches = [s for s in same_class if _configs_match(pipe, s)]
    return matches[0] if len(matches) == 1 else None


def _configs_match(pipe: Any, spec) -> bool:
    """Every component of ``spec`` that ``pipe`` has carries the same config values (on the keys
    both state; at least one component, and at least three keys in each)."""
    compared = 0
    for name, comp in spec.components.items():
        cfg = getattr(getattr(pipe, name, None), "config", None)
        if cfg is not None and not isinstance(cfg, Mapping):
            cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else None  # a transformers config
        if cfg is None:
            continue
        keys = [k for k in comp.config if not k.startswith("_") and k in cfg]
        if len(keys) < 3 or any(_plain(cfg[k]) != _plain(comp.config[k]) for k in keys):
            return False
        compared += 1
    return compared > 0


def _plain(v: Any) -> Any:
    """Config values as JSON holds them (tuples as lists), for comparison."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    return v


def read_setting(pipe, original, args, kwargs, out, spec, device: str) -> dict[str, Any]:
    """The runs-table setting of one finished call of ``pipe`` (``original``: its class's
    ``__call__``; ``out``: what it returned; ``spec``: its registry entry or None), plus
    ``batch`` (prompts) and ``outputs_per_prompt``. A figure nothing states is None."""
    sig = inspect.signature(original)
    try:
        bound = sig.bind_partial(pipe, *args, **kwargs)
    except TypeError:  # the call itself raised it already, had it been wrong; read what is named
        bound = None
    given = dict(bound.arguments) if bound is not None else dict(kwargs)
    params = sig.parameters

    def arg(name: str):
        if given.get(name) is not None:
            return given[name]
        p = params.get(name)
        return None if p is None or p.default is inspect.Parameter.empty else p.default

    modality = spec.modality if spec is not None else (
        "video" if "num_frames" in params else "audio" if {"audio_length_in_s", "audio_end_in_s"} & set(params)
        else "image")
    prompt = given.get("prompt")
    if isinstance(prompt, (list, tuple)):
        batch = len(prompt)
    elif prompt is None and getattr(given.get("prompt_embeds"), "shape", None) is not None:
        batch = int(given["prompt_embeds"].shape[0])
    else:
        batch = 1
    per_prompt = next((int(arg(n)) for n in _OUTPUTS_PER_PROMPT if arg(n) is not None), 1)
    shape = _output_shape(out, modality)
    steps = getattr(pipe, "num_timesteps", None)
    steps = steps if isinstance(steps, int) and steps > 0 else arg("num_inference_steps")
    guidance = arg("guidance_scale")
    cfg = getattr(pipe, "do_classifier_free_guidance", None)
    if not isinstance(cfg, bool):
        guided = spec is None or spec.guidance_type == "cfg"
        cfg = bool(guided and guidance is not None and guidance > 1)
    seconds = arg("audio_length_in_s") if modality == "audio" else None
    if modality == "audio" and seconds is None and shape.get("samples"):
        rate = getattr(getattr(getattr(pipe, "vocoder", None), "config", None), "sampling_rate", None)
        seconds = shape["samples"] / rate if rate else None
    registered = spec is not None
    return {
        "model": spec.id if registered else (str(getattr(pipe, "name_or_path", "") or "") or
                                             f"local:{type(pipe).__name__}"),
        "model_key": spec.key if registered else None,
        "modality": modality,
        "gpu": gpu_name(device),
        "precision": _precision(pipe, device),
        "height": (arg("height") or shape.get("height")) if modality != "audio" else None,
        "width": (arg("width") or shape.get("width")) if modality != "audio" else None,
        "frames": (arg("num_frames") or shape.get("frames")) if modality == "video" else None,
        "fps": (spec.defaults.get("fps") if registered else None) if modality == "video" else None,
        "audio_seconds": float(seconds) if seconds else None,
        "steps": int(steps) if steps else None,
        "guidance_scale": float(guidance) if guidance is not None else None,
        "cfg": cfg,
        "batch": batch,
        "outputs_per_prompt": per_prompt,
        "n_outputs": batch * per_prompt,
    }


def _output_shape(out: Any, modality: str) -> dict[str, int]:
    """Height, width, frames (or audio samples) of what the call returned, where they show."""
    first = out[0] if isinstance(out, tuple) and out else None
    data = getattr(out, {"image": "images", "video": "frames", "audio": "audios"}[modality], first)
    if isinstance(data, list) and data and isinstance(data[0], list):  # video as lists of PIL images
        return {"frames": len(data[0]), "width": data[0][0].size[0], "height": data[0][0].size[1]}
    if isinstance(data, list) and data and hasattr(data[0], "size") and isinstance(data[0].size, tuple):
        return {"width": data[0].size[0], "height": data[0].size[1]}  # PIL images
    shape = tuple(getattr(data, "shape", ()) or ())
    if modality == "audio" and shape:
        return {"samples": int(shape[-1])}
    if len(shape) < 4:
        return {}
    channels_first = type(data).__module__.startswith("torch")  # output_type="pt": (B, [F,] C, H, W)
    h, w = (shape[-2], shape[-1]) if channels_first else (shape[-3], shape[-2])
    got = {"height": int(h), "width": int(w)}
    if modality == "video" and len(shape) == 5:
        got["frames"] = int(shape[1])
    return got


def _precision(pipe: Any, device: str) -> str | None:
    import torch

    for name in ("transformer", "unet", "prior"):
        module = getattr(pipe, name, None)
        if module is not None and hasattr(module, "parameters"):
            p = next(module.parameters(), None)
            if p is not None:
                if p.dtype == torch.float32:
                    return "tf32" if device.startswith("cuda") and torch.backends.cuda.matmul.allow_tf32 else "fp32"
                return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(p.dtype)
    return None


def gpu_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(int(device.split(":")[1]) if ":" in device else 0)


def gpu_key(device: str) -> str | None:
    name = gpu_name(device)
    if name is None:
        return None
    from scaling.hardware import resolve_gpu

    try:
        return resolve_gpu(name).key
    except UnknownGPUError:
        return None


def closed_form_flops(spec, s: dict[str, Any]) -> tuple[dict[str, float], str | None]:
    """Closed-form FLOP per phase for a registered model; else why there are none."""
    if spec is None:
        return {}, "not a registered model: scaling.track counts no FLOPs for it"
    from profilers.flops.profile import profile
    from scaling.settings import make_setting

    try:
        setting = make_setting(spec, height=s["height"], width=s["width"], frames=s["frames"],
                               seconds=s["audio_seconds"], steps=s["steps"], guidance=s["guidance_scale"],
                               cfg=s["cfg"], batch_size=s["batch"], outputs_per_prompt=s["outputs_per_prompt"],
                               precision=s["precision"] or "bf16")
        return profile(setting, method="closed-form", spec=spec).by_role(), None
    except (InvalidSettingError, ProfilerError) as e:
        return {}, f"{type(e).__name__}: {str(e)[:150]}"


def setting_digest(s: Mapping[str, Any]) -> str:
    """Ten hex digits that tell settings apart (they start every run id, after the model)."""
    fields = {k: s.get(k) for k in ("model", "height", "width", "frames", "audio_seconds", "steps", "guidance_scale",
                                    "cfg", "n_outputs", "precision", "gpu")}
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:10]
