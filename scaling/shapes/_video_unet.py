"""Shapes of the video UNet pipelines: Stable Video Diffusion, I2VGen-XL and ModelScope T2V.

All three run a 4-level UNet on latent frames (the frames are the batch of the 2-D layers;
temporal convolutions and temporal attention mix the frames at every latent pixel) and a 2-D
image VAE (diffusers 0.42.1). Their FLOPs are exact polynomials in the frames ``f`` and the
latent pixels of each UNet level (``P``, ``P1``, ``P2``, ``P3``: the stride-2 convolutions round
up, :func:`scaling.shapes._video.unet_levels`): linear layers and convolutions are linear in
``Pk * f``, spatial self-attention quadratic in ``Pk`` per frame (``Pk^2 * f``), temporal
attention quadratic in the frames per pixel (``Pk * f^2``); I2VGen-XL also runs a few layers on
the first frame only (``Pk``).

The two image-to-video pipelines (SVD, I2VGen-XL) encode the conditioning image twice: the CLIP
image encoder on a 224x224 crop (counted in the ``text_encoder`` phase: the conditioning
encoder) and the VAE encoder on the full-size image (``vae:encode``, in the ``decoder`` phase,
the VAE's).
"""

from __future__ import annotations

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes._common import ComponentCall, Monomial, denoiser_calls_per_generation, poly, text_encoder_calls
from scaling.shapes._video import unet_levels


def video_unet_basis(levels: dict[str, int]) -> tuple[Monomial, ...]:
    """``1, f, f^2`` and, per UNet level ``Pk``: ``Pk``, ``Pk f``, ``Pk^2 f``, ``Pk f^2``."""
    basis: tuple[Monomial, ...] = ((), (("f", 1),), (("f", 2),))
    for k in levels:
        basis += (((k, 1),), ((k, 1), ("f", 1)), ((k, 2), ("f", 1)), ((k, 1), ("f", 2)))
    return basis


def _latent(spec: ModelSpec, setting: GenerationSetting) -> tuple[int, int, int]:
    s = spec.pipeline["vae_scale_factor_spatial"]
    return setting.frames, setting.height // s, setting.width // s


def _unet_call(spec: ModelSpec, setting: GenerationSetting, f: int, h: int, w: int, what: str) -> ComponentCall:
    levels = unet_levels(h, w, len(spec.components["unet"].config["block_out_channels"]))
    C = spec.components["unet"].config["in_channels"]
    return ComponentCall("unet", "denoiser", dims={"f": f, "h": h, "w": w}, features={"f": f, **levels},
                         basis=video_unet_basis(levels), batch=setting.n_outputs,
                         calls=denoiser_calls_per_generation(setting),
                         description=f"latent {C}x{f}x{h}x{w}, {what}")


def _image_encoder_call(spec: ModelSpec, setting: GenerationSetting, batch: int | None = None) -> ComponentCall:
    S = spec.pipeline.get("image_encoder_size", 224)
    return ComponentCall("image_encoder", "text_encoder", dims={"S": S}, features={"S": S}, basis=((),),
                         batch=setting.batch_size if batch is None else batch, calls=1,
                         description=f"CLIP image encoder on the {S}x{S} conditioning image (unconditional: zeros)")


def _vae_encode_call(spec: ModelSpec, setting: GenerationSetting, h: int, w: int) -> ComponentCall:
    return ComponentCall("vae", "decoder", dims={"h": h, "w": w}, features={"P": h * w}, basis=poly(("P", 2)),
                         batch=setting.batch_size, calls=1, label="encode",
                         description=(f"VAE encoder on the {setting.height}x{setting.width} conditioning image -> "
                                      f"latent {spec.pipeline['latent_channels']}x{h}x{w}"))


def _frames_vae_call(spec: ModelSpec, setting: GenerationSetting, f: int, h: int, w: int, how: str) -> ComponentCall:
    C = spec.pipeline["latent_channels"]
    return ComponentCall("vae", "decoder", dims={"f": f, "h": h, "w": w}, features={"f": f, "P": h * w},
                         basis=poly(("f", 1), ("P", 2)), batch=setting.n_outputs, calls=1,
                         description=f"latent {C}x{f}x{h}x{w} -> {f}x{setting.height}x{setting.width} ({how})")


def svd(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """StableVideoDiffusionPipeline: the CLIP image encoder once (224x224), the VAE encoder once
    (the noise-augmented image at HxW; the unconditional latent is zeros), the
    UNetSpatioTemporalConditionModel on ``frames`` latent frames of 4 noise + 4 image-latent
    channels with the image embedding as its one cross-attention token (a batch of 2 under CFG:
    max_guidance_scale > 1), the temporal-decoder VAE on all frames at once
    (``decode_chunk_size`` defaults to ``num_frames``)."""
    f, h, w = _latent(spec, setting)
    return [
        _image_encoder_call(spec, setting),
        _vae_encode_call(spec, setting, h, w),
        _unet_call(spec, setting, f, h, w, "cross-attention to 1 image-embedding token, temporal attention over "
                   f"{f} frames"),
        _frames_vae_call(spec, setting, f, h, w, f"AutoencoderKLTemporalDecoder, {f} frames in one chunk"),
    ]


def i2vgen(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """I2VGenXLPipeline: CLIP text (77 tokens; the empty negative prompt under CFG), the CLIP
    image encoder once (224x224 centre crop), the VAE encoder once (the HxW image; its latent
    conditions every frame), the I2VGenXLUNet (cross-attention to 77 text + 64 image-latent + 4
    image-embedding tokens; a batch of 2 under CFG), the VAE decoding frame by frame
    (``decode_chunk_size`` 1)."""
    f, h, w = _latent(spec, setting)
    return [
        *text_encoder_calls(spec, setting, ["text_encoder"]),
        _image_encoder_call(spec, setting),
        _vae_encode_call(spec, setting, h, w),
        _unet_call(spec, setting, f, h, w, "cross-attention to 77 text + 68 image tokens, temporal attention over "
                   f"{f} frames"),
        _frames_vae_call(spec, setting, f, h, w, "each frame by the 2-D VAE"),
    ]


def modelscope(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """TextToVideoSDPipeline (ModelScope T2V): CLIP text (77 tokens; the empty negative prompt
    under CFG), the UNet3DConditionModel (a batch of 2 under CFG), the 2-D VAE decoding every
    frame (all frames in one batch)."""
    f, h, w = _latent(spec, setting)
    return [
        *text_encoder_calls(spec, setting),
        _unet_call(spec, setting, f, h, w, f"cross-attention to 77 tokens, temporal attention over {f} frames"),
        _frames_vae_call(spec, setting, f, h, w, "each frame by the 2-D VAE"),
    ]
