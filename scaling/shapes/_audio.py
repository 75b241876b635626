"""Shapes of the audio pipelines.

Mel-spectrogram latent diffusion (AudioLDM, AudioLDM 2, MusicLDM, Tango): the pipeline turns
the requested seconds into mel frames exactly as diffusers does,

    height = int(seconds / (prod(vocoder.upsample_rates) / vocoder.sampling_rate))   # 100 frames/s
    height = ceil(height / vae_scale) * vae_scale                                    # multiple of 4

and denoises a latent of ``latent_channels x T x F`` with ``T = height / 4`` latent frames and
``F = mel_bins / 4 = 16``. ``T`` can be any whole number; the UNet downsamples it three times
with stride-2 convolutions (``ceil(T/2)``, ``ceil(T/4)``, ``ceil(T/8)``) and upsamples back to
the skip sizes, so the UNet's FLOPs are an exact polynomial in those four level lengths
(``T, T2, T4, T8``: convolutions and projections linear, self-attention quadratic), not in
``T`` alone. The VAE decoder doubles exactly (polynomial in ``T`` with the mid-block attention
``T^2``); the HiFi-GAN vocoder is 1-D convolutions over ``4T`` mel frames (linear in ``T``).

Stable Audio Open always denoises its full latent window (``transformer.sample_size`` = 1024
frames) and trims the waveform afterwards; Tango always generates its fixed (8, 256, 16)
latent. Their costs do not depend on the requested length.
"""

from __future__ import annotations

import math

from scaling.errors import InvalidSettingError
from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes._common import (
    ComponentCall,
    Monomial,
    denoiser_calls_per_generation,
    encoder_tokens,
    poly,
    text_encoder_calls,
)

UNET_LEVELS = ("T", "T2", "T4", "T8")
"""Latent frames at each UNet level: T, ceil(T/2), ceil(T/4), ceil(T/8)."""


def _linear_and_squares(names: tuple[str, ...]) -> tuple[Monomial, ...]:
    """1, each feature, each feature squared (no cross terms: no op mixes two UNet levels)."""
    return ((),) + tuple(((n, 1),) for n in names) + tuple(((n, 2),) for n in names)


def _with_text(levels: tuple[str, ...], text: str) -> tuple[Monomial, ...]:
    """The level basis plus the text tokens: linear (the cross-attention K/V projections) and
    times each level (cross-attention scores and outputs)."""
    return _linear_and_squares(levels) + (((text, 1),),) + tuple(((n, 1), (text, 1)) for n in levels)


def mel_latent(spec: ModelSpec, seconds: float) -> tuple[int, int, int]:
    """(mel frames, latent frames T, latent mel bins F) the diffusers pipeline uses for ``seconds``.

    Mirrors ``AudioLDMPipeline`` / ``AudioLDM2Pipeline`` / ``MusicLDMPipeline.__call__`` step 0,
    float arithmetic included (``int(5.12 / 0.01)`` is 512, ``int(0.29 / 0.01)`` is 28).
    """
    voc = spec.components["vocoder"].config
    vae = spec.components["vae"].config
    upsample_factor = math.prod(voc["upsample_rates"]) / voc["sampling_rate"]  # seconds per mel frame
    vae_scale = 2 ** (len(vae["block_out_channels"]) - 1)
    min_s = upsample_factor * vae_scale
    if seconds < min_s:
        raise InvalidSettingError(f"`seconds` {seconds:g} is shorter than {spec.id} can produce (at least {min_s:g} s)")
    height = int(seconds / upsample_factor)
    if height % vae_scale:
        height = int(math.ceil(height / vae_scale)) * vae_scale
    return height, height // vae_scale, voc["model_in_dim"] // vae_scale


def unet_levels(T: int, n_down: int = 3) -> dict[str, int]:
    """Latent frames at each UNet level (stride-2, padding-1, kernel-3 convs: ceil(T/2))."""
    out = {"T": T}
    t = T
    for k in range(1, n_down + 1):
        t = -(-t // 2)
        out[f"T{2 ** k}"] = t
    return out


def _n_downsamplers(spec: ModelSpec, name: str = "unet") -> int:
    return len(spec.components[name].config["block_out_channels"]) - 1


def _decoder_and_vocoder(spec: ModelSpec, setting: GenerationSetting, mel: int, T: int, F: int,
                         C: int, fixed: bool = False, trimmed_to: str = "") -> list[ComponentCall]:
    n = setting.n_outputs
    bins = spec.components["vocoder"].config["model_in_dim"]
    voc = spec.components["vocoder"].config
    hop = math.prod(voc["upsample_rates"])
    return [
        ComponentCall("vae", "decoder", dims={"T": T, "F": F}, features={"T": T},
                      basis=((),) if fixed else poly(("T", 2)), batch=n, calls=1,
                      description=f"latent {C}x{T}x{F} -> mel 1x{mel}x{bins}"),
        ComponentCall("vocoder", "vocoder", dims={"M": mel, "bins": bins}, features={"T": T},
                      basis=((),) if fixed else poly(("T", 1)), batch=n, calls=1,
                      description=f"mel {mel}x{bins} -> {mel * hop} samples at {voc['sampling_rate']} Hz{trimmed_to}"),
    ]


def audioldm(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """AudioLDM / MusicLDM: CLAP text embedding (512-d) enters the UNet as ``class_labels``
    (``class_embed_type="simple_projection"``, concatenated to the time embedding); the UNet is
    called with ``encoder_hidden_states=None``, so its ``attn2`` layers attend to the latent
    itself (a second self-attention), there is no text cross-attention.

    Not counted: with ``outputs_per_prompt > 1`` (and librosa installed) MusicLDM and AudioLDM 2
    rank the waveforms with the full CLAP model, audio tower included (``score_waveforms``: a
    10 s window per waveform, far below one denoiser step)."""
    mel, T, F = mel_latent(spec, setting.audio_seconds)
    C = spec.pipeline["latent_channels"]
    n = setting.n_outputs
    levels = unet_levels(T, _n_downsamplers(spec))
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("unet", "denoiser", dims={"T": T, "F": F}, features=levels,
                      basis=_linear_and_squares(tuple(levels)), batch=n,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{T}x{F} ({setting.audio_seconds:g} s -> {mel} mel frames), "
                                  "CLAP embedding as class label"),
        *_decoder_and_vocoder(spec, setting, mel, T, F, C),
    ]


def audioldm2(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """AudioLDM 2: CLAP text features (1 token) and Flan-T5 (``L`` tokens) are projected and
    framed by learnt SOS/EOS embeddings (``L + 5`` tokens), from which GPT-2 generates
    ``max_new_tokens`` (8) hidden states autoregressively with its KV cache (a prefill on the
    ``L + 5`` tokens, then one-token steps over a cache of ``L + 5 .. L + 11``). The UNet
    cross-attends to the 8 generated states (768-d) and to the T5 states (1024-d). Under CFG the
    negative prompt "" goes through the same chain (CLAP padded to 512, T5 padded to ``L``).

    Counted: GPT2Model (what cvssp/audioldm2 ships) with its cache, as the pipeline runs it with
    transformers < 4.50. With newer transformers, diffusers expects GPT2LMHeadModel there
    (GPT2Model has lost the generation helpers); that class would add its LM head
    (768 x 50257 per position), not counted here.
    """
    mel, T, F = mel_latent(spec, setting.audio_seconds)
    C = spec.pipeline["latent_channels"]
    n = setting.n_outputs
    cfg = setting.cfg
    neg = 2 if cfg else 1
    L = encoder_tokens(spec, setting, "text_encoder_2")[0]  # the prompt's Flan-T5 tokens
    L0 = L + 5  # [sos, clap, eos, sos, t5 x L, eos]
    new = spec.pipeline.get("language_model_max_new_tokens") or spec.components["language_model"].config.get(
        "max_new_tokens", 8)
    tag = " (prompt + negative prompt)" if cfg else ""
    calls = [
        *text_encoder_calls(spec, setting, ["text_encoder", "text_encoder_2"]),
        ComponentCall("projection_model", "text_encoder", dims={"L": L}, features={"L": L}, basis=poly(("L", 1)),
                      batch=setting.batch_size, calls=neg,
                      description=f"CLAP 1x512 + T5 {L}x1024 -> {L0}x768" + tag),
        ComponentCall("language_model", "text_encoder", dims={"L": L0}, features={"L": L0}, basis=poly(("L", 2)),
                      batch=setting.batch_size, calls=neg, label="prefill",
                      description=f"GPT-2 prefill over {L0} tokens" + tag),
    ]
    for k in range(1, new):
        K = L0 + k - 1
        calls.append(ComponentCall(
            "language_model", "text_encoder", dims={"K": K}, features={"K": K}, basis=poly(("K", 1)),
            batch=setting.batch_size, calls=neg, label="decode",
            description=f"GPT-2 step {k + 1}/{new}: 1 token over a KV cache of {K}" + tag))
    levels = unet_levels(T, _n_downsamplers(spec))
    calls += [
        ComponentCall("unet", "denoiser", dims={"T": T, "F": F, "L_gpt": new, "L_t5": L}, features={**levels, "L": L},
                      basis=_with_text(tuple(levels), "L"), batch=n,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{T}x{F} ({setting.audio_seconds:g} s -> {mel} mel frames), "
                                  f"cross-attention to {new}x768 (GPT-2) and {L}x1024 (T5)"),
        *_decoder_and_vocoder(spec, setting, mel, T, F, C),
    ]
    return calls


def tango(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """Tango / Tango 2 (declare-lab code, ``AudioDiffusion.inference``): Flan-T5-large padded to
    the longest prompt, negative prompt "" padded to the same length under CFG; the UNet
    cross-attends to the T5 states; the latent is always (8, 256, 16) (10.24 s) whatever length
    is asked; AudioLDM-S's VAE (``decode_first_stage``) and HiFi-GAN (``decode_to_waveform``)."""
    C, T, F = spec.pipeline["latent_shape"]
    vae_scale = 2 ** (len(spec.components["vae"].config["block_out_channels"]) - 1)
    mel = T * vae_scale
    voc = spec.components["vocoder"].config
    seconds = mel * math.prod(voc["upsample_rates"]) / voc["sampling_rate"]
    L = encoder_tokens(spec, setting, "text_encoder")[0]  # the prompt's Flan-T5 tokens
    n = setting.n_outputs
    asked = setting.audio_seconds
    trim = f" (always {seconds:g} s; {asked:g} s asked)" if asked is not None and abs(asked - seconds) > 1e-9 else ""
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("unet", "denoiser", dims={"T": T, "F": F, "L": L}, features={"T": T, "L": L},
                      basis=poly(("L", 1)), batch=n,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"fixed latent {C}x{T}x{F}, cross-attention to {L}x1024 (T5)"),
        *_decoder_and_vocoder(spec, setting, mel, T, F, C, fixed=True, trimmed_to=trim),
    ]


def stable_audio(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """Stable Audio Open: T5-base over ``model_max_length`` tokens (padding="max_length");
    without a negative prompt the pipeline does NOT encode one: the unconditional branch gets
    zeros, so T5 runs once even under CFG. The projection model maps the start/end seconds to
    two 768-d tokens (the text projection is an identity). The DiT denoises the full latent
    window (``sample_size`` frames + 1 global token) with cross-attention to T5 + 2 timing
    tokens; the Oobleck VAE decodes the full window and the pipeline trims the waveform."""
    tcfg = spec.components["transformer"].config
    frames = int(tcfg["sample_size"])
    L = frames + 1
    Tt = spec.text_tokens["text_encoder"]
    hop = 2048
    vcfg = spec.components["vae"].config
    if vcfg.get("downsampling_ratios"):
        hop = math.prod(vcfg["downsampling_ratios"])
    sr = vcfg.get("sampling_rate", 44100)
    window = frames * hop / sr
    n = setting.n_outputs
    return [
        *text_encoder_calls(spec, setting, ["text_encoder"], negative=False),
        ComponentCall("projection_model", "text_encoder", dims={"T": Tt}, features={}, basis=((),),
                      batch=setting.batch_size, calls=1,
                      description="start/end seconds -> 2x768 (text projection is an identity)"),
        ComponentCall("transformer", "denoiser", dims={"f": frames, "T": Tt + 2}, features={"L": L}, basis=((),),
                      batch=n, calls=denoiser_calls_per_generation(setting),
                      description=f"full window {tcfg['in_channels']}x{frames} + 1 global token "
                                  f"({window:.2f} s, trimmed to {setting.audio_seconds:g} s), "
                                  f"cross-attention to {Tt}+2 tokens"),
        ComponentCall("vae", "decoder", dims={"f": frames}, features={"f": frames}, basis=((),), batch=n, calls=1,
                      description=f"latent {vcfg.get('decoder_input_channels', 64)}x{frames} -> "
                                  f"{vcfg.get('audio_channels', 2)}x{frames * hop} samples at {sr} Hz"),
    ]
