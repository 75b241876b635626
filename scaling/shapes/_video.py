"""Shapes of the video pipelines.

Every family mirrors its diffusers pipeline ``__call__`` (diffusers 0.42.1): latent shapes,
token packing, text sequence lengths, and how the VAE really decodes (some decode in
temporal chunks or tiles: their features count the chunks so that the FLOP polynomial is
exact, see each family).
"""

from __future__ import annotations

from math import ceil

from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes._common import ComponentCall, Monomial, denoiser_calls_per_generation, poly, text_encoder_calls


def _latent(spec: ModelSpec, setting: GenerationSetting) -> tuple[int, int, int]:
    p = spec.pipeline
    st, ss = p.get("vae_scale_factor_temporal", 1), p["vae_scale_factor_spatial"]
    return (setting.frames - 1) // st + 1, setting.height // ss, setting.width // ss


def _vae_call(spec: ModelSpec, setting: GenerationSetting, f: int, h: int, w: int, *,
              features=None, basis=None, note: str = "") -> ComponentCall:
    C = spec.pipeline["latent_channels"]
    return ComponentCall(
        "vae", "decoder", dims={"f": f, "h": h, "w": w},
        features=features or {"f": f, "P": h * w},
        basis=basis or poly(("f", 1), ("P", 2)),
        batch=setting.n_outputs, calls=1,
        description=f"latent {C}x{f}x{h}x{w} -> {setting.frames}x{setting.height}x{setting.width}" + note,
    )


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


# -- CogVideoX --------------------------------------------------------------------------------

def cogvideox_vae_chunks(f: int, frame_batch: int = 2) -> dict[str, int]:
    """Latent-frame chunks ``AutoencoderKLCogVideoX._decode`` runs the decoder on.

    ``num_latent_frames_batch_size`` is 2: ``max(f // 2, 1)`` chunks, the first one also takes
    the ``f % 2`` leftover frame. So f=1 -> one chunk of 1; odd f >= 3 -> one chunk of 3 and
    (f - 3) / 2 chunks of 2; even f -> f / 2 chunks of 2. Returns counts ``c1``, ``c2``, ``c3``.
    """
    n = max(f // frame_batch, 1)
    rem = f % frame_batch
    sizes = [frame_batch + rem if i == 0 else frame_batch for i in range(n)] if f >= frame_batch else [f]
    return {f"c{k}": sizes.count(k) for k in (1, 2, 3)}


def cogvideox(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """CogVideoXPipeline: T5 (226 tokens, negative prompt "" encoded under CFG), the transformer
    on ``226 + f*(h/2)*(w/2)`` tokens in joint attention (5b: rotary embeddings from the
    pipeline), the VAE decoding 2 latent frames at a time (first chunk takes the odd frame)."""
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    p = spec.pipeline["patch_size"]
    T = spec.text_tokens["text_encoder"]
    Lv = f * (h // p) * (w // p)
    L = Lv + T
    chunks = cogvideox_vae_chunks(f)
    P = h * w
    out_frames = 4 * (f - 1) + 1 if f % 2 else 4 * f
    basis: tuple[Monomial, ...] = ((), (("P", 1),))
    for c in ("c1", "c2", "c3"):
        basis += ((( c, 1),), ((c, 1), ("P", 1)), ((c, 1), ("P", 2)))
    rope = " + rotary embeddings" if spec.components["transformer"].config.get("use_rotary_positional_embeddings") else ""
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": L}, basis=poly(("L", 2)), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {f}x{C}x{h}x{w}, {Lv} video + {T} text tokens in joint attention{rope}"),
        ComponentCall("vae", "decoder", dims={"f": f, "h": h, "w": w},
                      features={**chunks, "P": P}, basis=basis, batch=setting.n_outputs, calls=1,
                      description=(f"latent {C}x{f}x{h}x{w} decoded in latent-frame chunks "
                                   f"{ {k: v for k, v in chunks.items() if v} } -> "
                                   f"{out_frames}x{setting.height}x{setting.width}"
                                   + (" (even latent frame count: the decoder returns 4f frames)" if f % 2 == 0 else ""))),
    ]


# -- LTX-Video --------------------------------------------------------------------------------

def ltx(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """LTXPipeline: T5 (128 tokens, negative prompt encoded under CFG), the transformer on
    packed latent tokens ``f*h*w`` (patch 1) with cross-attention to 128 text tokens and RoPE
    interpolation ``(8/frame_rate, 32, 32)``, the VAE decoding the whole clip at once (timestep
    conditioning only if the VAE config says so; 0.9.0: no)."""
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    p, pt = spec.pipeline.get("patch_size", 1), spec.pipeline.get("patch_size_t", 1)
    T = spec.text_tokens["text_encoder"]
    L = (f // pt) * (h // p) * (w // p)
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": L}, basis=poly(("L", 2)), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{f}x{h}x{w} packed to {L} tokens, cross-attention to {T} text tokens"),
        _vae_call(spec, setting, f, h, w),
    ]


# -- Mochi ------------------------------------------------------------------------------------

def mochi(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """MochiPipeline: T5 (256 tokens, negative prompt encoded under CFG), the transformer on
    ``f*(h/2)*(w/2)`` video tokens + the prompt's text tokens in joint attention, the VAE decoding
    the whole clip (framewise decoding is off by default).

    Mochi's attention processor keeps only the prompt's non-padding text tokens in the joint
    attention; the count assumes all 256 are valid (a prompt that fills max_sequence_length),
    an upper bound: an empty negative prompt would use 1 token.
    """
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    p = spec.pipeline["patch_size"]
    T = spec.text_tokens["text_encoder"]
    Lv = f * (h // p) * (w // p)
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": Lv + T}, basis=poly(("L", 2)), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=(f"latent {C}x{f}x{h}x{w}, {Lv} video + {T} text tokens in joint attention "
                                   "(assumed: all text tokens valid)")),
        _vae_call(spec, setting, f, h, w),
    ]


# -- HunyuanVideo -----------------------------------------------------------------------------

def hunyuan_vae_tiles(f: int, min_frames: int = 4, stride: int = 3) -> dict[str, int]:
    """Latent-frame tiles ``AutoencoderKLHunyuanVideo._decode`` runs the decoder on.

    Framewise decoding is on by default: with ``tile_sample_min_num_frames`` 16 and stride 12
    (latent: 4 and 3), a latent clip of more than 4 frames is decoded in tiles
    ``z[i : i + 5]`` for ``i = 0, 3, 6, ...`` (each tile independently, then blended);
    4 frames or fewer are decoded at once. Returns counts ``t1`` ... ``t5`` of tiles by length.
    """
    sizes = [min(min_frames + 1, f - i) for i in range(0, f, stride)] if f > min_frames else [f]
    return {f"t{k}": sizes.count(k) for k in range(1, min_frames + 2)}


def hunyuan(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """HunyuanVideoPipeline: Llama on the chat template + prompt (256 + 95 template tokens, the
    template part cropped afterwards), CLIP (77 tokens, pooled), the transformer on
    ``f*(h/2)*(w/2)`` video + 256 text tokens (guidance embedding, one pass per step; a second
    pass and a second encoding only under true CFG), the VAE decoding in temporal tiles."""
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    p, pt = spec.pipeline["patch_size"], spec.pipeline.get("patch_size_t", 1)
    T = spec.text_tokens["text_encoder"]
    drop = int(spec.pipeline.get("prompt_template_drop_tokens", 0))
    T_llama = T + drop
    neg = setting.cfg
    calls_te = 2 if neg else 1
    neg_note = " (prompt + negative prompt, true CFG)" if neg else " (prompt only: no CFG by default)"
    Lv = (f // pt) * (h // p) * (w // p)
    tiles = hunyuan_vae_tiles(f)
    P = h * w
    basis: tuple[Monomial, ...] = ()
    for t in tiles:
        basis += (((t, 1),), ((t, 1), ("P", 1)), ((t, 1), ("P", 2)))
    T2 = spec.text_tokens["text_encoder_2"]
    return [
        ComponentCall("text_encoder", "text_encoder", dims={"T": T_llama}, features={"T": T_llama}, basis=((),),
                      batch=setting.batch_size, calls=calls_te,
                      description=f"{T_llama} tokens ({T} + {drop} chat-template tokens, cropped after)" + neg_note),
        ComponentCall("text_encoder_2", "text_encoder", dims={"T": T2}, features={"T": T2}, basis=((),),
                      batch=setting.batch_size, calls=calls_te, description=f"{T2} tokens, pooled" + neg_note),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": Lv + T}, basis=poly(("L", 2)), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{f}x{h}x{w}, {Lv} video + {T} text tokens, guidance embedding"),
        ComponentCall("vae", "decoder", dims={"f": f, "h": h, "w": w}, features={**tiles, "P": P}, basis=basis,
                      batch=setting.n_outputs, calls=1,
                      description=(f"latent {C}x{f}x{h}x{w} decoded in temporal tiles "
                                   f"{ {k: v for k, v in tiles.items() if v} } -> "
                                   f"{setting.frames}x{setting.height}x{setting.width} (no spatial tiling: "
                                   "vae.enable_tiling() is not the default)")),
    ]


# -- AnimateDiff ------------------------------------------------------------------------------

def unet_levels(h: int, w: int, levels: int = 4) -> dict[str, int]:
    """Latent pixels at each UNet resolution level: ``P`` = h*w, ``P{k} = ceil(h/2^k) * ceil(w/2^k)``
    (the stride-2 convolutions round up, so ``P{k}`` is not ``P/4^k`` in general; the same
    names as the image UNets in ``_image.py``)."""
    out = {}
    for k in range(levels):
        out[f"P{k}" if k else "P"] = h * w
        h, w = ceil(h / 2), ceil(w / 2)
    return out


def animatediff(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """AnimateDiffPipeline: CLIP (77 tokens, negative prompt encoded under CFG), the
    ``UNetMotionModel`` built from the SD1.5 UNet and the motion adapter (frames are the batch
    of the 2-D layers, the motion modules attend over frames), the VAE decoding every frame
    (in chunks of 16 frames, which does not change the count)."""
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    T = spec.text_tokens["text_encoder"]
    n_levels = len(spec.components["unet"].config["block_out_channels"])
    lv = unet_levels(h, w, n_levels)
    basis: tuple[Monomial, ...] = ((), (("f", 1),))
    for k in lv:
        basis += (((k, 1), ("f", 1)), ((k, 2), ("f", 1)), ((k, 1), ("f", 2)))
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("unet", "denoiser", dims={"f": f, "h": h, "w": w, "T": T}, features={"f": f, **lv},
                      basis=basis, batch=setting.n_outputs, calls=denoiser_calls_per_generation(setting),
                      description=(f"UNetMotionModel (unet + motion_adapter), latent {C}x{f}x{h}x{w}: "
                                   f"{f} frames as the 2-D batch, temporal attention over {f} frames")),
        _vae_call(spec, setting, f, h, w, note=" (each frame decoded by the 2-D VAE)"),
    ]
