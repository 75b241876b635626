"""Generation settings: what one call of a pipeline is asked to produce.

``make_setting`` fills unset fields from the model's pipeline defaults and checks every rule
before any work starts; a bad value raises :class:`InvalidSettingError` naming the value and
the rule, on one line.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from scaling.errors import InvalidSettingError
from scaling.precision import PRECISIONS, normalize_precision  # noqa: F401  (PRECISIONS: re-exported)
from scaling.registry import ModelSpec, prompt_token_rule, resolve_model

NAMED_RESOLUTIONS = {"240p": 240, "360p": 360, "480p": 480, "540p": 540, "576p": 576, "720p": 720, "1080p": 1080,
                     "1440p": 1440, "2160p": 2160, "4k": 2160}


@dataclass(frozen=True)
class GenerationSetting:
    """One generation call. ``model`` is the resolved registry key.

    ``batch_size`` prompts are encoded; each prompt yields ``outputs_per_prompt`` outputs,
    so the denoiser and decoder run on ``batch_size * outputs_per_prompt`` samples.

    ``prompt_tokens``: the text length the prompt sets, for models whose text length is not
    fixed by the model (:func:`scaling.registry.prompt_token_rule`: the padded
    ``max_sequence_length`` of SD3, Flux, PixArt, Wan, LTX, CogVideoX and HunyuanVideo; the
    prompt's own tokens for Qwen-Image, Tango, AudioLDM 2 and Mochi's joint attention); None
    for models whose text encoders all pad to a fixed length (CLIP 77, CLAP 512, ...).
    """

    model: str
    modality: str
    height: int | None
    width: int | None
    frames: int | None
    audio_seconds: float | None
    steps: int
    guidance_scale: float | None
    cfg: bool
    batch_size: int = 1
    outputs_per_prompt: int = 1
    precision: str = "bf16"
    gpu: str | None = None
    prompt_tokens: int | None = None   # None: the model's text lengths are fixed (or its default)

    @property
    def n_outputs(self) -> int:
        return self.batch_size * self.outputs_per_prompt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_P_FORM = re.compile(r"(\d+)p")
_WXH_FORM = re.compile(r"(\d+)\s*[x×*]\s*(\d+)")
_SQUARE_FORM = re.compile(r"\d+")
RESOLUTION_FORMS = "480p/720p/1080p, WxH (e.g. 832x480, width first) or one number for a square"


def check_resolution_text(res: str | int) -> str | int:
    """``res`` if it is written in one of the forms :func:`parse_resolution` reads (a named height
    such as ``480p``, ``NNNp``, ``WxH``, ``N``), whatever the model; else :class:`InvalidSettingError`
    naming the value and the forms. What a model accepts (its multiple, its largest side) is checked
    by :func:`make_setting`."""
    text = str(res).strip().lower()
    if text in NAMED_RESOLUTIONS or _P_FORM.fullmatch(text) or _WXH_FORM.fullmatch(text) \
            or _SQUARE_FORM.fullmatch(text):
        return res
    raise InvalidSettingError(f"`res` {res!r} is not a resolution: use {RESOLUTION_FORMS}")


def parse_resolution(res: str | int, spec: ModelSpec) -> tuple[int, int]:
    """``480p`` / ``720p`` (height; width from the default aspect, rounded to the model's
    multiple), ``WxH`` (width first, as ffmpeg writes it) or a single number (square).

    A height in ``p`` is a named one (:data:`NAMED_RESOLUTIONS`: ``1080p`` on a model of multiple
    16 is 1088 px high, as the pipelines round it) or a multiple of the model's ``res_multiple``
    (``992p`` on Wan); any other (``999p``) is refused, naming the nearest heights: a height is
    never changed silently.

    Returns ``(height, width)``.
    """
    text = str(check_resolution_text(res)).strip().lower()
    multiple = spec.rules.get("res_multiple") or 8
    if text in NAMED_RESOLUTIONS or _P_FORM.fullmatch(text):
        height = NAMED_RESOLUTIONS.get(text) or int(text[:-1])
        if height < multiple:  # rounding would invent a size: 0p is not 16x16
            raise InvalidSettingError(f"`res` {res!r}: the height must be at least {multiple} px for {spec.id}")
        if text not in NAMED_RESOLUTIONS and height % multiple:
            lo = height // multiple * multiple
            named = ", ".join(NAMED_RESOLUTIONS)
            raise InvalidSettingError(
                f"`res` {res!r}: {height} px is not a height {spec.id} takes (rule: a named height, {named}, or a "
                f"multiple of {multiple} px: nearest {lo}p or {lo + multiple}p; or give WxH)")
        dh, dw = spec.defaults.get("height"), spec.defaults.get("width")
        aspect = (dw / dh) if dh and dw else 1.0
        # 480p on a landscape default means the short side; round each side to the model's multiple
        short, long_ = (dh, dw) if (dh or 1) <= (dw or 1) else (dw, dh)
        ratio = (long_ / short) if short and long_ else 1.0
        h = _round_to(height, multiple)
        w = _round_to(height * ratio, multiple)
        return (h, w) if aspect >= 1 else (w, h)
    m = _WXH_FORM.fullmatch(text)
    if m:
        width, height = int(m.group(1)), int(m.group(2))
        return height, width
    return int(text), int(text)


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or int(value) <= 0:
        raise InvalidSettingError(f"`{name}` is {value!r}: it must be a positive whole number")
    return int(value)


def make_setting(
    model: str | ModelSpec,
    *,
    res: str | int | None = None,
    height: int | None = None,
    width: int | None = None,
    frames: int | None = None,
    seconds: float | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    cfg: bool | None = None,
    batch_size: int = 1,
    outputs_per_prompt: int = 1,
    precision: str | None = None,
    gpu: str | None = None,
    prompt_tokens: int | None = None,
) -> GenerationSetting:
    """Build a checked :class:`GenerationSetting`; unset fields take the model's defaults."""
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    rules = spec.rules
    d = spec.defaults

    # -- resolution ---------------------------------------------------------------------------
    if spec.modality in ("image", "video"):
        if res is not None:
            if height is not None or width is not None:
                raise InvalidSettingError("give either `res` or `height`/`width`, not both")
            height, width = parse_resolution(res, spec)
        height = d["height"] if height is None else height
        width = d["width"] if width is None else width
        height = _check_positive_int("height", height)
        width = _check_positive_int("width", width)
        multiple = rules.get("res_multiple") or 8
        for name, v in (("height", height), ("width", width)):
            if v % multiple:
                lo = max(multiple, v // multiple * multiple)
                raise InvalidSettingError(
                    f"`{name}` {v} is not accepted by {spec.id}: it must be a multiple of {multiple} "
                    f"(nearest: {lo} or {lo + multiple})"
                )
            max_side = rules.get("max_side")
            if max_side and v > max_side:
                raise InvalidSettingError(f"`{name}` {v} is larger than {spec.id} supports here (at most {max_side} px)")
    elif res is not None or height is not None or width is not None:
        raise InvalidSettingError(f"`res` does not apply to {spec.id}: it is {'an' if spec.modality[:1] in 'aeiou' else 'a'} {spec.modality} model (use --seconds)")

    # -- frames -------------------------------------------------------------------------------
    if spec.modality == "video":
        frames = d["frames"] if frames is None else frames
        frames = _check_positive_int("frames", frames)
        step = rules.get("frame_step") or 1
        if step > 1 and (frames - 1) % step:
            k = (frames - 1) // step
            raise InvalidSettingError(
                f"`frames` {frames} is not accepted by {spec.id}: it must be of the form {step}k+1 "
                f"(nearest: {step * k + 1} or {step * (k + 1) + 1})"
            )
        max_frames = rules.get("max_frames")
        if max_frames and frames > max_frames:
            raise InvalidSettingError(f"`frames` {frames} is more than {spec.id} can generate (at most {max_frames})")
    elif frames is not None:
        raise InvalidSettingError(f"`frames` does not apply to {spec.id}: it is {'an' if spec.modality[:1] in 'aeiou' else 'a'} {spec.modality} model")

    # -- audio ---------------------------------------------------------------------------------
    if spec.modality == "audio":
        seconds = d["audio_seconds"] if seconds is None else seconds
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) or seconds <= 0:
            raise InvalidSettingError(f"`seconds` is {seconds!r}: it must be a positive number of seconds")
        max_s = rules.get("max_audio_s")
        if max_s and seconds > max_s + 1e-9:
            raise InvalidSettingError(f"`seconds` {seconds:g} is longer than {spec.id} can produce (at most {max_s:g} s)")
        seconds = float(seconds)
    elif seconds is not None:
        raise InvalidSettingError(f"`seconds` does not apply to {spec.id}: it is {'an' if spec.modality[:1] in 'aeiou' else 'a'} {spec.modality} model")

    # -- steps, guidance, batch, precision -----------------------------------------------------
    steps = _check_positive_int("steps", d["steps"] if steps is None else steps)
    if steps > 10_000:
        raise InvalidSettingError(f"`steps` {steps} is not plausible: at most 10000")
    if guidance is not None and (not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0):
        raise InvalidSettingError(f"`guidance` is {guidance!r}: it must be a finite number >= 0")
    guidance_scale = d["guidance_scale"] if guidance is None else float(guidance)
    if cfg is None:
        cfg = spec.guidance_type == "cfg"
        # diffusers turns CFG off when guidance_scale <= 1
        if cfg and guidance_scale is not None and guidance_scale <= 1.0:
            cfg = False
    else:
        _check_cfg(spec, bool(cfg), guidance, guidance_scale)
    batch_size = _check_positive_int("batch", batch_size)
    outputs_per_prompt = _check_positive_int("outputs_per_prompt", outputs_per_prompt)
    precision = normalize_precision(precision or "bf16")
    prompt_tokens = _prompt_tokens(spec, prompt_tokens)

    return GenerationSetting(
        model=spec.key,
        modality=spec.modality,
        height=height if spec.modality != "audio" else None,
        width=width if spec.modality != "audio" else None,
        frames=frames if spec.modality == "video" else None,
        audio_seconds=seconds if spec.modality == "audio" else None,
        steps=steps,
        guidance_scale=guidance_scale,
        cfg=bool(cfg),
        batch_size=batch_size,
        outputs_per_prompt=outputs_per_prompt,
        precision=precision,
        gpu=gpu,
        prompt_tokens=prompt_tokens,
    )


def _check_cfg(spec: ModelSpec, cfg: bool, guidance: float | None, guidance_scale: float | None) -> None:
    """The rules of an explicit ``cfg`` against the guidance (the one place they live):

    - CFG forced on (``cfg=True``, ``--cfg``) is two denoiser passes per step on any model, also
      one trained without guidance (ML.ENERGY ran SDXL-Turbo so) and a guidance-distilled one (its
      true CFG with a negative prompt); only a guidance scale of 0 *given with it* is refused (CFG
      at scale 0 is the unconditional pass alone: the prompt is ignored). The model's own default
      scale (0 for SDXL-Turbo) is not a contradiction: the scale is then unknown, and the setting
      is shown as "CFG forced";
    - CFG off (``cfg=False``, ``--no-cfg``) with a ``guidance`` > 1 given on a CFG model is a
      contradiction: a scale > 1 is what turns CFG on (diffusers' rule); the model's default scale
      is not a contradiction (``--no-cfg`` alone is how CFG is turned off).
    """
    if cfg and guidance is not None and guidance == 0:
        raise InvalidSettingError(
            "`cfg` on (--cfg) with `guidance` 0: CFG at a guidance scale of 0 is the unconditional pass "
            "alone, the prompt ignored (rule: CFG needs a guidance scale > 0; give --guidance G, or leave --cfg out)")
    if not cfg and spec.guidance_type == "cfg" and guidance is not None and guidance > 1.0:
        raise InvalidSettingError(
            f"`cfg` off (--no-cfg) with `guidance` {guidance:g}: on {spec.id} a guidance scale > 1 is classifier-free "
            "guidance (diffusers runs CFG when guidance > 1) (rule: give one: --no-cfg alone, or --guidance <= 1, "
            "or the guidance without --no-cfg)")


def _prompt_tokens(spec: ModelSpec, value: Any) -> int | None:
    """The checked ``prompt_tokens``: the rule's default when unset; refused (one line) where the
    model fixes every text length, unless it is that length."""
    rule = prompt_token_rule(spec)
    if rule is None:
        if value is None:
            return None
        fixed = sorted(set(spec.text_tokens.values()))
        if _check_positive_int("prompt_tokens", value) in fixed:
            return None
        lengths = ", ".join(f"{k} {v}" for k, v in spec.text_tokens.items())
        raise InvalidSettingError(
            f"`prompt_tokens` {value!r} does not apply to {spec.id}: its text encoders pad to a fixed length "
            f"({lengths} tokens); leave it unset")
    n = rule.default if value is None else _check_positive_int("prompt_tokens", value)
    if n > rule.max_tokens:
        raise InvalidSettingError(
            f"`prompt_tokens` {n} is more than {spec.id} takes: at most {rule.max_tokens} ({rule.note})")
    return n
