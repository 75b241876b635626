"""Shapes: per component, what one call looks like and how many calls a generation makes.

A pure function of (ModelSpec, GenerationSetting). Each :class:`ComponentCall` carries

- ``dims``: the raw sizes of one call for ONE sample (latent frames/height/width, text tokens,
  ...), from which the traced profiler builds its meta tensors;
- ``features``: the variables the closed-form FLOP polynomial is written in (token count
  ``L``, latent pixels ``P``, latent frames ``f``, text tokens ``T``, ...);
- ``basis``: the monomials of that polynomial (FLOPs of these architectures are exact
  polynomials in the sequence length);
- ``batch`` (samples per call) and ``calls`` (calls per generation).

FLOP per generation of a call = FLOP(one sample) x batch x calls: every counted op is linear
in the batch. CFG is counted as two denoiser passes per step whether diffusers concatenates
them into one batch of 2 or makes two calls.

The families live in ``_image.py`` (with ``_image_movq.py``: Kandinsky, ``_image_dit.py``: SANA and
HunyuanDiT), ``_video.py`` (with ``_video_unet.py``: SVD, I2VGen-XL, ModelScope) and ``_audio.py``, one function per family,
written with the helpers of ``_common.py``; :data:`FAMILIES` below is the one table from a
registry family name to its shape function.
"""

from __future__ import annotations

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes import _audio, _image, _image_dit, _image_movq, _video, _video_unet
from scaling.shapes._common import (
    ComponentCall,
    Monomial,
    ShapeFn,
    denoiser_calls_per_generation,
    poly,
    text_encoder_calls,
)

__all__ = ["FAMILIES", "ComponentCall", "Monomial", "ShapeFn", "component_calls", "denoiser_calls_per_generation",
           "poly", "text_encoder_calls"]


class _FamilyTable(dict):
    """A dict whose missing family raises a one-line NotImplementedError naming the families it has."""

    def __missing__(self, family: str):
        raise NotImplementedError(f"no shape function for family {family!r}: the families with shapes are "
                                  f"{', '.join(self)}")


FAMILIES: dict[str, ShapeFn] = _FamilyTable({
    # image (_image.py)
    "sd": _image.stable_diffusion,
    "sdxl": _image.stable_diffusion_xl,
    "sd3": _image.stable_diffusion_3,
    "flux": _image.flux,
    "qwen": _image.qwen_image,
    "pixart": _image.pixart,
    "kandinsky2.2": _image_movq.kandinsky22,   # _image_movq.py
    "kandinsky3": _image_movq.kandinsky3,
    "sana": _image_dit.sana,                   # _image_dit.py
    "hunyuandit": _image_dit.hunyuandit,
    # video (_video.py)
    "wan": _video.wan,
    "cogvideox": _video.cogvideox,
    "ltx": _video.ltx,
    "mochi": _video.mochi,
    "hunyuan": _video.hunyuan,
    "animatediff": _video.animatediff,
    "ltx-multiscale": _video.ltx_multiscale,
    "cogvideox1.5": _video.cogvideox_1_5,
    "svd": _video_unet.svd,                    # _video_unet.py
    "i2vgen": _video_unet.i2vgen,
    "modelscope": _video_unet.modelscope,
    # audio (_audio.py)
    "audioldm": _audio.audioldm,
    "musicldm": _audio.audioldm,
    "audioldm2": _audio.audioldm2,
    "tango": _audio.tango,
    "stable-audio": _audio.stable_audio,
})
"""Registry family -> shape function. ``FAMILIES[spec.family](spec, setting)`` is
:func:`component_calls`."""


def component_calls(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """Every component call of one generation, in pipeline order."""
    return FAMILIES[spec.family](spec, setting)
