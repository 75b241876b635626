"""Shapes of the video pipelines."""

from __future__ import annotations

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes import ComponentCall, denoiser_calls_per_generation, family, poly, text_encoder_calls


def _latent(spec: ModelSpec, setting: GenerationSetting) -> tuple[int, int, int]:
    p = spec.pipeline
    st, ss = p.get("vae_scale_factor_temporal", 1), p["vae_scale_factor_spatial"]
    return (setting.frames - 1) // st + 1, setting.height // ss, setting.width // ss


@family("wan")
def wan(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    pt, ph, pw = spec.pipeline["patch_size"]
    L = (f // pt) * (h // ph) * (w // pw)
    n = setting.n_outputs
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": spec.text_tokens["text_encoder"]},
                      features={"L": L}, basis=poly(("L", 2)), batch=n, calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{f}x{h}x{w}, {L} tokens"),
        ComponentCall("vae", "decoder", dims={"f": f, "h": h, "w": w}, features={"f": f, "P": h * w},
                      basis=poly(("f", 1), ("P", 2)), batch=n, calls=1,
                      description=f"latent {C}x{f}x{h}x{w} -> {setting.frames}x{setting.height}x{setting.width}"),
    ]
