"""Shapes of the resolution-binned image DiTs: SANA (1.5) and HunyuanDiT.

Both pipelines snap the requested size to a fixed set of shapes before generating
(``use_resolution_binning``, on by default) and run the transformer and the VAE there
(diffusers 0.42.1); the decoded image is resized back to the request (SANA) or returned at the
binned size (HunyuanDiT). The transformer's FLOPs are polynomials in its image tokens ``L``, the
VAE's in the latent pixels ``P``.
"""

from __future__ import annotations

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes._common import ComponentCall, denoiser_calls_per_generation, poly, text_encoder_calls
from scaling.shapes._image import _PIXART_BINS

# SanaPipeline picks the aspect-ratio bins by transformer.config.sample_size (latent side at 32x):
# 16 -> ASPECT_RATIO_512_BIN, 32 -> _1024_BIN, 64 -> _2048_BIN (the PixArt tables, keyed here by the
# PixArt transformer's sample_size at 8x), 128 -> ASPECT_RATIO_4096_BIN (not copied: no 4K model here).
_SANA_BIN_KEY = {16: 64, 32: 128, 64: 256}


def sana_bin(spec: ModelSpec, height: int, width: int) -> tuple[int, int]:
    """The (height, width) SanaPipeline generates at (``classify_height_width_bin``: the bin of
    the closest aspect ratio, ties to the first)."""
    if not spec.pipeline.get("use_resolution_binning", True):
        return height, width
    sample_size = spec.components["transformer"].config["sample_size"]
    key = _SANA_BIN_KEY.get(sample_size)
    if key is None:
        raise NotImplementedError(f"{spec.id}: no SANA aspect-ratio bins for sample_size {sample_size}")
    bins = _PIXART_BINS[key]
    closest = min(bins.keys(), key=lambda ratio: abs(float(ratio) - height / width))
    return bins[closest]


def sana(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """SanaPipeline.

    Gemma-2-2B (its decoder stack, no lm_head) encodes the prompt behind the complex human
    instruction: ``complex_human_instruction_tokens + max_sequence_length - 2`` tokens (padded to
    that length), of which the first and the last 299 hidden states are kept (300); under CFG the
    negative prompt ``""`` is encoded alone, padded to 300. The transformer (linear self-attention
    over the ``(H/32)*(W/32)`` tokens of the bin, cross-attention to 300 text tokens, Mix-FFN with
    a depthwise convolution; a batch of 2 under CFG) and the DC-AE decoder run at the bin.
    """
    H, W = sana_bin(spec, setting.height, setting.width)
    s = spec.pipeline["vae_scale_factor_spatial"]
    h, w = H // s, W // s
    T = spec.text_tokens["text_encoder"]
    chi = int(spec.pipeline["complex_human_instruction_tokens"])
    T_prompt = chi + T - 2
    b = setting.batch_size
    note = "" if (H, W) == (setting.height, setting.width) else f" (bin of {setting.height}x{setting.width})"
    calls = [ComponentCall("text_encoder", "text_encoder", dims={"T": T_prompt}, features={"T": T_prompt},
                           basis=((),), batch=b, calls=1, label="prompt",
                           description=f"{T_prompt} tokens ({chi} instruction + {T - 2} prompt; {T} kept)")]
    if setting.cfg:
        calls.append(ComponentCall("text_encoder", "text_encoder", dims={"T": T}, features={"T": T}, basis=((),),
                                   batch=b, calls=1, label="negative", description=f"{T} tokens (negative prompt)"))
    L = h * w
    C = spec.pipeline["latent_channels"]
    return [
        *calls,
        ComponentCall("transformer", "denoiser", dims={"h": h, "w": w, "L": L, "T": T}, features={"L": L},
                      basis=poly(("L", 2)), batch=setting.n_outputs, calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{h}x{w}, {L} tokens, linear attention, cross-attention to {T} "
                                  f"text tokens{note}"),
        ComponentCall("vae", "decoder", dims={"h": h, "w": w}, features={"P": h * w}, basis=poly(("P", 2)),
                      batch=setting.n_outputs, calls=1, description=f"DC-AE decode {C}x{h}x{w} -> 3x{H}x{W}{note}"),
    ]


# HunyuanDiTPipeline's shapes (diffusers 0.42.1 pipeline_hunyuandit.py): STANDARD_SHAPE as
# (width, height) per standard ratio, SUPPORTED_SHAPE as the pipeline checks it, (height, width).
_HUNYUAN_RATIOS = (1.0, 4.0 / 3.0, 3.0 / 4.0, 16.0 / 9.0, 9.0 / 16.0)
_HUNYUAN_STANDARD = (
    ((1024, 1024), (1280, 1280)),
    ((1024, 768), (1152, 864), (1280, 960)),
    ((768, 1024), (864, 1152), (960, 1280)),
    ((1280, 768),),
    ((768, 1280),),
)
_HUNYUAN_SUPPORTED = ((1024, 1024), (1280, 1280), (1024, 768), (1152, 864), (1280, 960), (768, 1024), (864, 1152),
                      (960, 1280), (1280, 768), (768, 1280))


def hunyuandit_shape(height: int, width: int, binning: bool = True) -> tuple[int, int]:
    """The (height, width) HunyuanDiTPipeline generates at: each side floored to a multiple of 16,
    then, unless it is a supported shape, the standard shape of the closest ratio (width /
    height) and the closest area (``map_to_standard_shapes``; ties to the first)."""
    height, width = height // 16 * 16, width // 16 * 16
    if not binning or (height, width) in _HUNYUAN_SUPPORTED:
        return height, width
    ratio = width / height
    i = min(range(len(_HUNYUAN_RATIOS)), key=lambda k: abs(_HUNYUAN_RATIOS[k] - ratio))
    shapes = _HUNYUAN_STANDARD[i]
    j = min(range(len(shapes)), key=lambda k: abs(shapes[k][0] * shapes[k][1] - width * height))
    w, h = shapes[j]
    return h, w


def hunyuandit(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """HunyuanDiTPipeline: the bilingual CLIP (BertModel, 77 tokens) and mT5-XL (256 tokens)
    encode the prompt and, under CFG, the empty negative prompt; the HunyuanDiT2DModel (a batch of
    2 under CFG) runs on ``(H/16)*(W/16)`` image tokens with 2-D rotary embeddings and
    cross-attention to 77 + 256 text tokens, at the shape the size is snapped to; the VAE decodes
    there."""
    H, W = hunyuandit_shape(setting.height, setting.width, spec.pipeline.get("use_resolution_binning", True))
    s, p = spec.pipeline["vae_scale_factor_spatial"], spec.pipeline["patch_size"]
    h, w = H // s, W // s
    T = spec.text_tokens["text_encoder"] + spec.text_tokens["text_encoder_2"]
    L = (h // p) * (w // p)
    C = spec.pipeline["latent_channels"]
    note = "" if (H, W) == (setting.height, setting.width) else f" (snapped from {setting.height}x{setting.width})"
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"h": h, "w": w, "L": L, "T": T}, features={"L": L},
                      basis=poly(("L", 2)), batch=setting.n_outputs, calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{h}x{w}, {L} image tokens, cross-attention to {T} text tokens{note}"),
        ComponentCall("vae", "decoder", dims={"h": h, "w": w}, features={"P": h * w}, basis=poly(("P", 2)),
                      batch=setting.n_outputs, calls=1, description=f"latent {C}x{h}x{w} -> 3x{H}x{W}{note}"),
    ]
