"""What every family's shape function builds with: the call record and the shared helpers.

The family modules (``_image.py``, ``_video.py``, ``_audio.py``) import this module and never
the package ``scaling.shapes``, whose ``FAMILIES`` table imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting

Monomial = tuple[tuple[str, int], ...]
"""A monomial as ((feature, power), ...); () is the constant term."""


@dataclass(frozen=True)
class ComponentCall:
    component: str              # diffusers attribute name: transformer, unet, vae, text_encoder_2, ...
    role: str                   # text_encoder | denoiser | decoder | vocoder
    dims: Mapping[str, int]     # sizes of one call for one sample
    features: Mapping[str, int] # closed-form variables
    basis: tuple[Monomial, ...] # closed-form monomials
    batch: int                  # samples per call
    calls: int                  # calls per generation
    label: str = ""             # a sub-call of a component (e.g. "prefill", "decode")
    description: str = ""       # human-readable shape, e.g. "latent 16x21x60x104"

    @property
    def key(self) -> str:
        return f"{self.component}:{self.label}" if self.label else self.component


ShapeFn = Callable[[ModelSpec, GenerationSetting], list[ComponentCall]]
"""A family's shape function: every component call of one generation, in pipeline order."""


def poly(*names_and_max: tuple[str, int]) -> tuple[Monomial, ...]:
    """All monomials with each feature's power from 0 to its max: poly(("L", 2)) -> 1, L, L^2."""
    out: list[Monomial] = [()]
    for name, max_power in names_and_max:
        out = [m + ((name, p),) if p else m for m in out for p in range(max_power + 1)]
    return tuple(sorted(set(out), key=lambda m: (sum(p for _, p in m), m)))


def text_encoder_calls(spec: ModelSpec, setting: GenerationSetting, names: list[str] | None = None,
                       negative: bool | None = None) -> list[ComponentCall]:
    """Text encoders: one call per prompt batch, a second one for the negative prompt under CFG."""
    names = names if names is not None else [n for n, c in spec.components.items() if c.role == "text_encoder"]
    negative = setting.cfg if negative is None else negative
    out = []
    for name in names:
        T = spec.text_tokens.get(name)
        if T is None:
            raise NotImplementedError(f"{spec.id}: no text token count for {name}")
        out.append(ComponentCall(
            component=name, role="text_encoder", dims={"T": T}, features={"T": T}, basis=((),),
            batch=setting.batch_size, calls=2 if negative else 1,
            description=f"{T} tokens" + (" (prompt + negative prompt)" if negative else ""),
        ))
    return out


def denoiser_calls_per_generation(setting: GenerationSetting) -> int:
    return setting.steps * (2 if setting.cfg else 1)
