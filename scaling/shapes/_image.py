"""Shapes of the image pipelines.

One function per family, each mirroring what the diffusers pipeline ``__call__`` runs
(diffusers 0.42.1):

- ``sd`` (StableDiffusionPipeline) and ``sdxl`` (StableDiffusionXLPipeline): UNet on the
  latent (H/8, W/8). The UNet's FLOPs are exact polynomials in the pixel counts of its levels
  (``P`` = h*w, ``P1`` = ceil(h/2)*ceil(w/2), ...): each stride-2 downsampling conv rounds up,
  so a latent side that is not a multiple of 2**(levels-1) is not P/4 per level.
- ``sd3`` (StableDiffusion3Pipeline): MMDiT on 2x2 patches, joint attention with 77 CLIP + T5
  tokens; ``flux`` (FluxPipeline): latents packed 2x2 into 64-channel tokens, img/txt ids;
  ``qwen`` (QwenImagePipeline): packed latents, Qwen2.5-VL text encoder (language model and
  lm_head on the templated prompt; the vision tower does not run);
  ``pixart`` (PixArtSigmaPipeline): DiT with cross-attention to 300 T5 tokens, run at the
  aspect-ratio bin the pipeline snaps the requested size to.
"""

from __future__ import annotations

from dataclasses import replace

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes._common import (
    ComponentCall,
    denoiser_calls_per_generation,
    encoder_tokens,
    poly,
    prompt_tokens,
    quadratic,
    text_encoder_calls,
    with_perimeter,
)


def _latent(spec: ModelSpec, setting: GenerationSetting, height: int | None = None,
            width: int | None = None) -> tuple[int, int]:
    s = spec.pipeline["vae_scale_factor_spatial"]
    return (setting.height if height is None else height) // s, (setting.width if width is None else width) // s


def _vae_call(spec: ModelSpec, setting: GenerationSetting, h: int, w: int, height: int, width: int,
              note: str = "") -> ComponentCall:
    C = spec.pipeline["latent_channels"]
    return ComponentCall("vae", "decoder", dims={"h": h, "w": w}, features={"P": h * w}, basis=poly(("P", 2)),
                         batch=setting.n_outputs, calls=1,
                         description=f"latent {C}x{h}x{w} -> 3x{height}x{width}" + note)


# -- UNets (sd, sdxl) ------------------------------------------------------------------------

_LEVEL_NAMES = ("P", "P1", "P2", "P3", "P4", "P5")


def _unet_levels(spec: ModelSpec, h: int, w: int) -> dict[str, int]:
    """Pixels per UNet level: a stride-2 conv (kernel 3, padding 1) gives ceil(side / 2)."""
    levels = len(spec.components["unet"].config["block_out_channels"])
    out = {}
    for k in range(levels):
        out[_LEVEL_NAMES[k]] = h * w
        h, w = -(-h // 2), -(-w // 2)
    return out


def _unet_basis(features: dict[str, int]) -> tuple:
    # conv/linear work is linear in each level's pixels, self-attention quadratic
    out: list = [()]
    for name in features:
        out += [((name, 1),), ((name, 2),)]
    return tuple(out)


def _unet_call(spec: ModelSpec, setting: GenerationSetting, T: int, extra: str = "") -> ComponentCall:
    h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    features = _unet_levels(spec, h, w)
    return ComponentCall("unet", "denoiser", dims={"h": h, "w": w, "T": T}, features=features,
                         basis=_unet_basis(features), batch=setting.n_outputs,
                         calls=denoiser_calls_per_generation(setting),
                         description=f"latent {C}x{h}x{w}, cross-attention to {T} tokens{extra}")


def stable_diffusion(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """StableDiffusionPipeline: CLIP (prompt, and the empty negative prompt under CFG), UNet, VAE."""
    h, w = _latent(spec, setting)
    return [
        *text_encoder_calls(spec, setting),
        _unet_call(spec, setting, spec.text_tokens["text_encoder"]),
        _vae_call(spec, setting, h, w, setting.height, setting.width),
    ]


def stable_diffusion_xl(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """StableDiffusionXLPipeline.

    Both CLIPs encode the prompt (77 tokens each, all layers run; penultimate hidden states
    concatenated to 2048 channels, pooled CLIP-G output + 6 time ids feed the added embedding).
    Under CFG with no negative prompt, ``force_zeros_for_empty_prompt`` (true for SDXL base)
    makes the negative embeddings zeros: the text encoders are NOT run a second time.
    """
    h, w = _latent(spec, setting)
    names = [n for n, c in spec.components.items() if c.role == "text_encoder"]
    texts = text_encoder_calls(spec, setting, names, negative=False)
    if setting.cfg:
        texts = [_replace_description(c, c.description + " (negative prompt: zeros, not encoded)") for c in texts]
    T = spec.text_tokens[names[0]]
    return [
        *texts,
        _unet_call(spec, setting, T, extra=", pooled text embeds 1280 + 6 time ids"),
        _vae_call(spec, setting, h, w, setting.height, setting.width),
    ]


def _replace_description(call: ComponentCall, description: str) -> ComponentCall:
    return replace(call, description=description)


# -- MMDiT / DiT transformers ----------------------------------------------------------------

def _tokens(spec: ModelSpec, h: int, w: int) -> int:
    p = spec.pipeline["patch_size"]
    return (h // p) * (w // p)


def _transformer_call(spec: ModelSpec, setting: GenerationSetting, h: int, w: int, T: int,
                      what: str) -> ComponentCall:
    C = spec.pipeline["latent_channels"]
    L = _tokens(spec, h, w)
    # the text tokens T are a feature: joint attention is quadratic in L + T, cross-attention
    # bilinear in L and T, the text stream's layers linear in T
    return ComponentCall("transformer", "denoiser", dims={"h": h, "w": w, "L": L, "T": T},
                         features={"L": L, "T": T}, basis=quadratic("L", "T"), batch=setting.n_outputs,
                         calls=denoiser_calls_per_generation(setting),
                         description=f"latent {C}x{h}x{w}, {L} image tokens, {what}")


def stable_diffusion_3(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """StableDiffusion3Pipeline.

    CLIP-L and CLIP-G (77 tokens each, with projection: pooled 768 + 1280 = 2048) and T5
    (``max_sequence_length`` 256, padded to it; ``prompt_tokens`` sets it) encode the prompt,
    and under CFG the empty negative prompt too (all three encoders, same lengths). The
    transformer sees 77 (CLIP-L|CLIP-G on channels, padded to 4096) + 256 T5 = 333 text tokens
    jointly with the (H/16)*(W/16) image tokens; CFG concatenates uncond + cond into one batch of 2.
    """
    h, w = _latent(spec, setting)
    T = spec.text_tokens["text_encoder"] + encoder_tokens(spec, setting, "text_encoder_3")[0]
    return [
        *text_encoder_calls(spec, setting),
        _transformer_call(spec, setting, h, w, T, f"joint attention with {T} text tokens, pooled 2048"),
        _vae_call(spec, setting, h, w, setting.height, setting.width),
    ]


def flux(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """FluxPipeline.

    CLIP-L (77 tokens, pooled output only) and T5 (``max_sequence_length``: 512 for dev, 256 for
    schnell, padded to it). Latents (16, H/8, W/8) are packed 2x2 into (H/16)*(W/16) tokens of
    64 channels with img_ids; text tokens carry txt_ids; dev adds the guidance embedding (one
    pass per step, no CFG). True CFG (``true_cfg_scale`` > 1 and a negative prompt) is off by
    default; when a setting asks for CFG, the negative prompt is encoded by both encoders and
    the transformer runs twice per step.
    """
    h, w = _latent(spec, setting)
    T = encoder_tokens(spec, setting, "text_encoder_2")[0]
    guidance = spec.components["transformer"].config.get("guidance_embeds", False)
    what = f"joint attention with {T} T5 tokens, pooled 768" + (", guidance embedding" if guidance else "")
    return [
        *text_encoder_calls(spec, setting),
        _transformer_call(spec, setting, h, w, T, what),
        _vae_call(spec, setting, h, w, setting.height, setting.width),
    ]


def qwen_text_tokens(spec: ModelSpec, setting: GenerationSetting | None = None) -> tuple[int, int]:
    """(tokens the text encoder runs on, text tokens the transformer sees).

    The prompt (``prompt_tokens``, 72 by default) is wrapped in a chat template (34 tokens
    before, 5 after); the encoder runs on the whole sequence, the first
    ``prompt_template_drop_tokens`` (34) hidden states are dropped and at most
    ``max_sequence_length`` (512) are kept.
    """
    T_enc = spec.text_tokens["text_encoder"] if setting is None else encoder_tokens(spec, setting, "text_encoder")[0]
    drop = spec.pipeline.get("prompt_template_drop_tokens", 34)
    cap = (spec.pipeline.get("max_sequence_length") or {}).get("text_encoder") or 512
    return T_enc, min(T_enc - drop, cap)


def qwen_image(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """QwenImagePipeline.

    Text encoder: Qwen2_5_VLForConditionalGeneration called on the templated prompt with
    ``output_hidden_states=True``: the 28-layer language model AND its lm_head (logits over
    the 152064-token vocabulary for every position: transformers computes them although the
    pipeline keeps only ``hidden_states[-1]``); the vision tower is not run (text only).
    Transformer: (H/16)*(W/16) packed image tokens + the text tokens after the 34 template
    tokens are dropped, joint attention. True CFG (``true_cfg_scale`` 4.0) needs a negative
    prompt in diffusers; the registry counts it on by default (cfg), assuming the negative
    prompt has the same token count as the prompt: it is encoded separately (2 encoder calls)
    and the transformer runs a separate uncond pass per step.
    The VAE (AutoencoderKLQwenImage, Wan-style causal 3-D) decodes one latent frame.
    """
    h, w = _latent(spec, setting)
    T_enc, T = qwen_text_tokens(spec, setting)
    texts = text_encoder_calls(spec, setting)
    texts = [_replace_description(c, c.description + f" ({prompt_tokens(spec, setting)} prompt tokens in the chat "
                                  f"template; {T} kept for the transformer)")
             for c in texts]
    C = spec.pipeline["latent_channels"]
    vae = ComponentCall("vae", "decoder", dims={"f": 1, "h": h, "w": w}, features={"P": h * w, "S": h + w},
                        basis=poly(("P", 2)), batch=setting.n_outputs, calls=1, byte_basis=with_perimeter(poly(("P", 2))),
                        description=f"latent {C}x1x{h}x{w} -> 3x{setting.height}x{setting.width}")
    dit = _transformer_call(spec, setting, h, w, T, f"joint attention with {T} text tokens")
    # the rotary tables are expanded per axis (frame, height, width): their reads have a
    # perimeter term (feature S = h + w), bytes only
    dit = replace(dit, features={**dit.features, "S": h + w}, byte_basis=dit.basis + ((("S", 1),),))
    return [
        *texts,
        dit,
        vae,
    ]


# Aspect-ratio bins of the PixArt pipelines, keyed by transformer sample_size, copied from
# diffusers 0.42.1 (pipelines/pixart_alpha/pipeline_pixart_alpha.py: ASPECT_RATIO_1024_BIN,
# _512_BIN, _256_BIN; pipeline_pixart_sigma.py: ASPECT_RATIO_2048_BIN); the order matters
# (ties go to the first key), tests check them against diffusers.
_PIXART_BINS: dict[int, dict[str, tuple[int, int]]] = {
    256: {
        "0.25": (1024, 4096), "0.26": (1024, 3968), "0.27": (1024, 3840), "0.28": (1024, 3712),
        "0.32": (1152, 3584), "0.33": (1152, 3456), "0.35": (1152, 3328), "0.4": (1280, 3200), "0.42": (1280, 3072),
        "0.48": (1408, 2944), "0.5": (1408, 2816), "0.52": (1408, 2688), "0.57": (1536, 2688), "0.6": (1536, 2560),
        "0.68": (1664, 2432), "0.72": (1664, 2304), "0.78": (1792, 2304), "0.82": (1792, 2176),
        "0.88": (1920, 2176), "0.94": (1920, 2048), "1.0": (2048, 2048), "1.07": (2048, 1920), "1.13": (2176, 1920),
        "1.21": (2176, 1792), "1.29": (2304, 1792), "1.38": (2304, 1664), "1.46": (2432, 1664),
        "1.67": (2560, 1536), "1.75": (2688, 1536), "2.0": (2816, 1408), "2.09": (2944, 1408), "2.4": (3072, 1280),
        "2.5": (3200, 1280), "2.89": (3328, 1152), "3.0": (3456, 1152), "3.11": (3584, 1152), "3.62": (3712, 1024),
        "3.75": (3840, 1024), "3.88": (3968, 1024), "4.0": (4096, 1024),
    },
    128: {
        "0.25": (512, 2048), "0.28": (512, 1856), "0.32": (576, 1792), "0.33": (576, 1728), "0.35": (576, 1664),
        "0.4": (640, 1600), "0.42": (640, 1536), "0.48": (704, 1472), "0.5": (704, 1408), "0.52": (704, 1344),
        "0.57": (768, 1344), "0.6": (768, 1280), "0.68": (832, 1216), "0.72": (832, 1152), "0.78": (896, 1152),
        "0.82": (896, 1088), "0.88": (960, 1088), "0.94": (960, 1024), "1.0": (1024, 1024), "1.07": (1024, 960),
        "1.13": (1088, 960), "1.21": (1088, 896), "1.29": (1152, 896), "1.38": (1152, 832), "1.46": (1216, 832),
        "1.67": (1280, 768), "1.75": (1344, 768), "2.0": (1408, 704), "2.09": (1472, 704), "2.4": (1536, 640),
        "2.5": (1600, 640), "3.0": (1728, 576), "4.0": (2048, 512),
    },
    64: {
        "0.25": (256, 1024), "0.28": (256, 928), "0.32": (288, 896), "0.33": (288, 864), "0.35": (288, 832),
        "0.4": (320, 800), "0.42": (320, 768), "0.48": (352, 736), "0.5": (352, 704), "0.52": (352, 672),
        "0.57": (384, 672), "0.6": (384, 640), "0.68": (416, 608), "0.72": (416, 576), "0.78": (448, 576),
        "0.82": (448, 544), "0.88": (480, 544), "0.94": (480, 512), "1.0": (512, 512), "1.07": (512, 480),
        "1.13": (544, 480), "1.21": (544, 448), "1.29": (576, 448), "1.38": (576, 416), "1.46": (608, 416),
        "1.67": (640, 384), "1.75": (672, 384), "2.0": (704, 352), "2.09": (736, 352), "2.4": (768, 320),
        "2.5": (800, 320), "3.0": (864, 288), "4.0": (1024, 256),
    },
    32: {
        "0.25": (128, 512), "0.28": (128, 464), "0.32": (144, 448), "0.33": (144, 432), "0.35": (144, 416),
        "0.4": (160, 400), "0.42": (160, 384), "0.48": (176, 368), "0.5": (176, 352), "0.52": (176, 336),
        "0.57": (192, 336), "0.6": (192, 320), "0.68": (208, 304), "0.72": (208, 288), "0.78": (224, 288),
        "0.82": (224, 272), "0.88": (240, 272), "0.94": (240, 256), "1.0": (256, 256), "1.07": (256, 240),
        "1.13": (272, 240), "1.21": (272, 224), "1.29": (288, 224), "1.38": (288, 208), "1.46": (304, 208),
        "1.67": (320, 192), "1.75": (336, 192), "2.0": (352, 176), "2.09": (368, 176), "2.4": (384, 160),
        "2.5": (400, 160), "3.0": (432, 144), "4.0": (512, 128),
    },
}


def pixart_bin(spec: ModelSpec, height: int, width: int) -> tuple[int, int]:
    """The (height, width) PixArtSigmaPipeline really generates at with ``use_resolution_binning``
    (``PixArtImageProcessor.classify_height_width_bin``: the bin of the closest aspect ratio)."""
    if not spec.pipeline.get("use_resolution_binning", True):
        return height, width
    sample_size = spec.components["transformer"].config["sample_size"]
    try:
        bins = _PIXART_BINS[sample_size]
    except KeyError:
        raise NotImplementedError(f"{spec.id}: no PixArt aspect-ratio bins for sample_size {sample_size}") from None
    ar = float(height / width)
    closest = min(bins.keys(), key=lambda ratio: abs(float(ratio) - ar))
    return bins[closest]


def pixart(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """PixArtSigmaPipeline.

    T5 encodes the prompt padded to 300 tokens, and under CFG the empty negative prompt padded
    to the same length (2 calls). With ``use_resolution_binning`` (default) the requested size
    is snapped to the aspect-ratio bin of the 1024 model; the transformer and the VAE run at
    the bin, and the decoded image is resized back (no counted FLOPs).
    """
    H, W = pixart_bin(spec, setting.height, setting.width)
    h, w = _latent(spec, setting, H, W)
    T = encoder_tokens(spec, setting, "text_encoder")[0]
    note = "" if (H, W) == (setting.height, setting.width) else f" (bin of {setting.height}x{setting.width})"
    dit = _transformer_call(spec, setting, h, w, T, f"cross-attention to {T} T5 tokens{note}")
    # PatchEmbed recomputes its sin-cos positional embedding (in float64) at every call whose
    # latent is not the model's sample_size square: bytes only (feature R = 1), no FLOP
    ss = spec.components["transformer"].config["sample_size"]
    R = 0 if (h, w) == (ss, ss) else 1
    dit = replace(dit, features={**dit.features, "R": R}, byte_basis=dit.basis + ((("R", 1),), (("L", 1), ("R", 1))))
    return [
        *text_encoder_calls(spec, setting),
        dit,
        _vae_call(spec, setting, h, w, H, W, note),
    ]
