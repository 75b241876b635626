"""Shapes of the image pipelines."""

from __future__ import annotations

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes import ComponentCall, denoiser_calls_per_generation, family, poly, text_encoder_calls


def _latent(spec: ModelSpec, setting: GenerationSetting) -> tuple[int, int]:
    s = spec.pipeline["vae_scale_factor_spatial"]
    return setting.height // s, setting.width // s


@family("sd")
def stable_diffusion(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    n = setting.n_outputs
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("unet", "denoiser", dims={"h": h, "w": w, "T": spec.text_tokens["text_encoder"]},
                      features={"P": h * w}, basis=poly(("P", 2)), batch=n,
                      calls=denoiser_calls_per_generation(setting), description=f"latent {C}x{h}x{w}"),
        ComponentCall("vae", "decoder", dims={"h": h, "w": w}, features={"P": h * w}, basis=poly(("P", 2)),
                      batch=n, calls=1, description=f"latent {C}x{h}x{w} -> 3x{setting.height}x{setting.width}"),
    ]
