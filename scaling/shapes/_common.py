"""What every family's shape function builds with: the call record and the shared helpers.

The family modules (``_image.py``, ``_video.py``, ``_audio.py``) import this module and never
the package ``scaling.shapes``, whose ``FAMILIES`` table imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from scaling.registry import ModelSpec, prompt_token_rule
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
    byte_basis: tuple[Monomial, ...] | None = None  # the traffic polynomial's monomials (None: ``basis``)

    @property
    def traffic_basis(self) -> tuple[Monomial, ...]:
        """The monomials of the bytes-moved polynomial: the FLOP basis, plus what only moves bytes
        (the perimeter of explicitly padded tensors, a recomputed positional embedding)."""
        return self.basis if self.byte_basis is None else self.byte_basis

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


def quadratic(*names: str) -> tuple[Monomial, ...]:
    """All monomials of total degree <= 2: quadratic("L", "T") -> 1, L, T, L^2, L T, T^2."""
    out: list[Monomial] = [()] + [((n, 1),) for n in names] + [((n, 2),) for n in names]
    out += [((a, 1), (b, 1)) for i, a in enumerate(names) for b in names[i + 1:]]
    return tuple(sorted(set(out), key=lambda m: (sum(p for _, p in m), m)))


def with_perimeter(basis: tuple[Monomial, ...]) -> tuple[Monomial, ...]:
    """``basis`` plus, for every monomial linear in the latent pixels ``P``, the same monomial in
    the perimeter ``S = h + w``: a tensor padded by one pixel on each side has
    ``(h + 2)(w + 2) = P + 2 S + 4`` pixels (the explicitly padded causal convolutions of the
    video VAEs); FLOPs do not see it, bytes do."""
    extra = [tuple(("S", 1) if m == ("P", 1) else m for m in mono) for mono in basis if ("P", 1) in mono]
    return tuple(basis) + tuple(m for m in extra if m not in basis)


def prompt_tokens(spec: ModelSpec, setting: GenerationSetting) -> int | None:
    """The setting's prompt tokens (the model's default when the setting leaves them unset);
    None for models whose text lengths are all fixed."""
    rule = prompt_token_rule(spec)
    if rule is None:
        return None
    return rule.default if setting.prompt_tokens is None else int(setting.prompt_tokens)


def encoder_tokens(spec: ModelSpec, setting: GenerationSetting, name: str) -> tuple[int, bool]:
    """(tokens text encoder ``name`` runs on, whether the prompt sets them)."""
    rule = prompt_token_rule(spec)
    if rule is not None and name == rule.component and rule.how != "valid":
        return rule.template[0] + prompt_tokens(spec, setting) + rule.template[1], True
    T = spec.text_tokens.get(name)
    if T is None:
        raise NotImplementedError(f"{spec.id}: no text token count for {name}")
    return T, False


def text_encoder_calls(spec: ModelSpec, setting: GenerationSetting, names: list[str] | None = None,
                       negative: bool | None = None) -> list[ComponentCall]:
    """Text encoders: one call per prompt batch, a second one for the negative prompt under CFG.

    An encoder whose length the prompt sets (:func:`encoder_tokens`) is a polynomial in its
    tokens ``T`` (``1, T, T^2``: self-attention is quadratic); the others run on a fixed length."""
    names = names if names is not None else [n for n, c in spec.components.items() if c.role == "text_encoder"]
    negative = setting.cfg if negative is None else negative
    out = []
    for name in names:
        T, variable = encoder_tokens(spec, setting, name)
        out.append(ComponentCall(
            component=name, role="text_encoder", dims={"T": T}, features={"T": T},
            basis=poly(("T", 2)) if variable else ((),),
            batch=setting.batch_size, calls=2 if negative else 1,
            description=f"{T} tokens" + (" (prompt + negative prompt)" if negative else ""),
        ))
    return out


def denoiser_calls_per_generation(setting: GenerationSetting) -> int:
    return setting.steps * (2 if setting.cfg else 1)
