"""Shapes of the Kandinsky pipelines (UNet + MoVQ decoder): Kandinsky 2.2 and Kandinsky 3.

Both pipelines round the requested size UP to a multiple of 64 before building the latents
(``downscale_height_and_width(height, width, 8)``: ``ceil(side / 64) * 8`` latent pixels), so
every UNet level is an exact quarter of the one above and the FLOPs are polynomials in the
latent pixels ``P`` alone (linear layers and convolutions linear, self-attention quadratic).
The image comes out at the rounded size (diffusers 0.42.1; nothing resizes it back).
"""

from __future__ import annotations

from math import ceil

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes._common import ComponentCall, denoiser_calls_per_generation, poly, text_encoder_calls


def kandinsky_latent(height: int, width: int, scale: int = 8) -> tuple[int, int]:
    """Latent size of ``downscale_height_and_width(height, width, scale)``: ``ceil(side / scale**2) * scale``."""
    return ceil(height / scale ** 2) * scale, ceil(width / scale ** 2) * scale


def _unet_call(spec: ModelSpec, setting: GenerationSetting, h: int, w: int, what: str) -> ComponentCall:
    C = spec.pipeline["latent_channels"]
    return ComponentCall("unet", "denoiser", dims={"h": h, "w": w}, features={"P": h * w}, basis=poly(("P", 2)),
                         batch=setting.n_outputs, calls=denoiser_calls_per_generation(setting),
                         description=f"latent {C}x{h}x{w}, {what}")


def _movq_call(spec: ModelSpec, setting: GenerationSetting, h: int, w: int) -> ComponentCall:
    s = spec.pipeline.get("movq_scale_factor", 8)
    return ComponentCall("movq", "decoder", dims={"h": h, "w": w}, features={"P": h * w}, basis=poly(("P", 2)),
                         batch=setting.n_outputs, calls=1,
                         description=f"MoVQ decode, latent {spec.pipeline['latent_channels']}x{h}x{w} -> "
                                     f"3x{h * s}x{w * s}")


def kandinsky22(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """KandinskyV22CombinedPipeline: the prior pipeline, then the decoder pipeline.

    Prior: CLIP-bigG text (77 tokens, the prompt and the empty negative prompt: its CFG follows
    ``prior_guidance_scale`` 4.0, not the setting's guidance), the PriorTransformer for
    ``prior_num_inference_steps`` (25) steps over 77 text + 4 tokens (a batch of 2 under CFG), and
    the CLIP-bigG image encoder once on a zero 224x224 image (batch 1: the negative image
    embedding). Decoder: the UNet (image embeddings as its 10 added tokens; a batch of 2 under
    CFG) for ``steps`` steps, then the MoVQ decoder.
    """
    p = spec.pipeline
    h, w = kandinsky_latent(setting.height, setting.width, p.get("movq_scale_factor", 8))
    prior_cfg = float(p.get("prior_guidance_scale", 4.0)) > 1.0
    prior_steps = int(p.get("prior_num_inference_steps", 25))
    prior = spec.components["prior_prior"].config
    T = spec.text_tokens["prior_text_encoder"]
    Tp = prior.get("num_embeddings", 77) + prior.get("additional_embeddings", 4)
    S = p.get("image_encoder_size", 224)
    size = "" if (h * 8, w * 8) == (setting.height, setting.width) else \
        f" (the requested {setting.height}x{setting.width} rounded up to {h * 8}x{w * 8})"
    return [
        *text_encoder_calls(spec, setting, ["prior_text_encoder"], negative=prior_cfg),
        ComponentCall("prior_image_encoder", "text_encoder", dims={"S": S}, features={"S": S}, basis=((),),
                      batch=1, calls=1, description=f"CLIP-bigG image encoder on one zero {S}x{S} image "
                                                    "(the negative image embedding)"),
        ComponentCall("prior_prior", "denoiser", dims={"T": T}, features={"T": Tp}, basis=((),),
                      batch=setting.n_outputs, calls=prior_steps * (2 if prior_cfg else 1),
                      description=f"PriorTransformer over {Tp} tokens, {prior_steps} prior steps"
                                  + (" (CFG, prior_guidance_scale)" if prior_cfg else "")),
        _unet_call(spec, setting, h, w, f"image-embedding conditioning{size}"),
        _movq_call(spec, setting, h, w),
    ]


def kandinsky3(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """Kandinsky3Pipeline: FLAN-UL2's encoder (128 tokens; the empty negative prompt under CFG),
    the Kandinsky3UNet (a batch of 2 under CFG) with cross-attention to the text tokens (the
    pipeline cuts them to the longest valid prompt + 1: counted at 128, an upper bound), the
    MoVQ decoder."""
    h, w = kandinsky_latent(setting.height, setting.width, spec.pipeline.get("movq_scale_factor", 8))
    T = spec.text_tokens["text_encoder"]
    return [
        *text_encoder_calls(spec, setting),
        _unet_call(spec, setting, h, w, f"cross-attention to {T} text tokens (upper bound)"),
        _movq_call(spec, setting, h, w),
    ]
