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
from scaling.shapes._common import (
    ComponentCall,
    Monomial,
    denoiser_calls_per_generation,
    encoder_tokens,
    poly,
    prompt_tokens,
    quadratic,
    text_encoder_calls,
    with_perimeter,
)


def _latent(spec: ModelSpec, setting: GenerationSetting) -> tuple[int, int, int]:
    p = spec.pipeline
    st, ss = p.get("vae_scale_factor_temporal", 1), p["vae_scale_factor_spatial"]
    return (setting.frames - 1) // st + 1, setting.height // ss, setting.width // ss


def _vae_call(spec: ModelSpec, setting: GenerationSetting, f: int, h: int, w: int, *,
              features=None, basis=None, note: str = "", padded: bool = False,
              accumulates: bool = False, chunks: bool = False) -> ComponentCall:
    """``padded``: the decoder pads its causal convolutions explicitly (``F.pad``), so its bytes
    have perimeter terms (feature ``S = h + w``, :func:`with_perimeter`). ``accumulates``: it
    decodes one latent frame at a time and concatenates each output to the frames so far
    (``torch.cat([out, out_], 2)``, Wan's VAE): that copy is quadratic in the frames (``f^2 P``)."""
    C = spec.pipeline["latent_channels"]
    basis = basis or poly(("f", 1), ("P", 2))
    byte_basis = with_perimeter(basis) if padded else tuple(basis)
    byte_basis += (((("f", 2), ("P", 1)),) if accumulates else ()) + (((("chunks", 1),),) if chunks else ())
    return ComponentCall(
        "vae", "decoder", dims={"f": f, "h": h, "w": w},
        features={**(features or {"f": f, "P": h * w}), **({"S": h + w} if padded else {})},
        basis=basis, batch=setting.n_outputs, calls=1,
        description=f"latent {C}x{f}x{h}x{w} -> {setting.frames}x{setting.height}x{setting.width}" + note,
        byte_basis=byte_basis if padded or accumulates or chunks else None,
    )


def wan(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    pt, ph, pw = spec.pipeline["patch_size"]
    L = (f // pt) * (h // ph) * (w // pw)
    n = setting.n_outputs
    T = encoder_tokens(spec, setting, "text_encoder")[0]
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": L, "T": T}, basis=quadratic("L", "T"), batch=n,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{f}x{h}x{w}, {L} tokens, cross-attention to {T} text tokens"),
        _vae_call(spec, setting, f, h, w, padded=True, accumulates=True),
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


def _at_sample_size(spec: ModelSpec, f: int, h: int, w: int) -> int:
    """1 when the latent is the transformer's sample size (its positional table is used as built)."""
    cfg = spec.components["transformer"].config
    frames = (cfg.get("sample_frames", 49) - 1) // spec.pipeline.get("vae_scale_factor_temporal", 4) + 1
    return int((f, h, w) == (frames, cfg.get("sample_height"), cfg.get("sample_width")))


def cogvideox(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """CogVideoXPipeline: T5 (226 tokens, negative prompt "" encoded under CFG), the transformer
    on ``226 + f*(h/2)*(w/2)`` tokens in joint attention (5b: rotary embeddings from the
    pipeline), the VAE decoding 2 latent frames at a time (first chunk takes the odd frame)."""
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    p = spec.pipeline["patch_size"]
    T = encoder_tokens(spec, setting, "text_encoder")[0]
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
        # bytes also have per-frame and per-frame-grid terms (features f and Pp, the patches of one
        # frame: the output's per-frame reshapes); without rotary embeddings (2b) the patch embedding
        # recomputes its 3-D sin-cos table except at the model's sample size (D = 1 there)
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": L, "T": T, "f": f, "Pp": (h // p) * (w // p), "D": _at_sample_size(spec, f, h, w)},
                      basis=quadratic("L", "T"), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {f}x{C}x{h}x{w}, {Lv} video + {T} text tokens in joint attention{rope}",
                      byte_basis=quadratic("L", "T") + ((("f", 1),), (("Pp", 1),))
                      + (() if rope else ((("D", 1),),))),
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
    T = encoder_tokens(spec, setting, "text_encoder")[0]
    L = (f // pt) * (h // p) * (w // p)
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": L, "T": T}, basis=quadratic("L", "T"), batch=setting.n_outputs,
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
    attention (``prompt_tokens``); the default assumes all 256 are valid (a prompt that fills
    max_sequence_length), an upper bound: an empty negative prompt would use 1 token. The text
    encoder runs on the 256 padded tokens whatever the prompt.
    """
    f, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    p = spec.pipeline["patch_size"]
    T = prompt_tokens(spec, setting)
    Lv = f * (h // p) * (w // p)
    assumed = " (assumed: all text tokens valid)" if T == spec.text_tokens["text_encoder"] else ""
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": Lv + T, "T": T}, basis=quadratic("L", "T"), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{f}x{h}x{w}, {Lv} video + {T} text tokens in joint attention{assumed}"),
        _vae_call(spec, setting, f, h, w, padded=True),
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
    T = prompt_tokens(spec, setting)
    drop = int(spec.pipeline.get("prompt_template_drop_tokens", 0))
    T_llama = encoder_tokens(spec, setting, "text_encoder")[0]  # T + drop
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
        ComponentCall("text_encoder", "text_encoder", dims={"T": T_llama}, features={"T": T_llama},
                      basis=poly(("T", 2)),
                      batch=setting.batch_size, calls=calls_te,
                      description=f"{T_llama} tokens ({T} + {drop} chat-template tokens, cropped after)" + neg_note),
        ComponentCall("text_encoder_2", "text_encoder", dims={"T": T2}, features={"T": T2}, basis=((),),
                      batch=setting.batch_size, calls=calls_te, description=f"{T2} tokens, pooled" + neg_note),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h, "w": w, "T": T},
                      features={"L": Lv + T, "T": T}, basis=quadratic("L", "T"), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=f"latent {C}x{f}x{h}x{w}, {Lv} video + {T} text tokens, guidance embedding"),
        # bytes: the tiles are blended (one blend fewer than tiles: the constant terms 1, P, S)
        ComponentCall("vae", "decoder", dims={"f": f, "h": h, "w": w}, features={**tiles, "P": P, "S": h + w},
                      basis=basis, batch=setting.n_outputs, calls=1,
                      byte_basis=with_perimeter(basis) + ((), (("P", 1),), (("S", 1),)),
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
        # decoded 16 frames at a time (decode_chunk_size): the weights are read once per chunk
        _vae_call(spec, setting, f, h, w, note=" (each frame decoded by the 2-D VAE)",
                  features={"f": f, "P": h * w, "chunks": -(-f // 16)}, chunks=True),
    ]


# -- LTX-Video 0.9.7 (13B): the two-pass multiscale recipe --------------------------------------

def ltx_multiscale_sizes(spec: ModelSpec, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(pass-1 size, pass-2 size) in pixels of the LTX 0.9.7 multiscale recipe for a final ``height x width``.

    Pass 1 runs at ``int(side * downscale_factor)`` floored to a multiple of the VAE's spatial
    factor (``round_to_nearest_resolution_acceptable_by_vae`` of the recipe); the latent
    upsampler doubles it for pass 2.
    """
    from scaling.errors import InvalidSettingError

    ms = spec.pipeline["multiscale"]
    r = spec.pipeline["vae_scale_factor_spatial"]
    low = []
    for name, side in (("height", height), ("width", width)):
        s = int(side * ms["downscale_factor"])
        s -= s % r
        if s <= 0:
            raise InvalidSettingError(f"`{name}` {side} is too small for the {spec.id} two-pass recipe: "
                                      f"{ms['downscale_factor']:.3g} of it floored to {r} px is 0")
        low.append(s)
    up = ms["upsample_factor"]
    return (low[0], low[1]), (low[0] * up, low[1] * up)


def ltx_vae_tiles(h: int, w: int, tile: int = 16, stride: int = 14) -> dict[str, int]:
    """Spatial tiles ``AutoencoderKLLTXVideo.tiled_decode`` decodes a latent ``h x w`` in.

    With ``vae.enable_tiling()`` (512 px tiles, stride 448: latent 16 and 14 at 32x) a latent
    larger than one tile on either side is decoded tile by tile (``z[..., i:i+16, j:j+16]`` for
    ``i, j = 0, 14, 28, ...``); otherwise in one piece. Returns ``n`` (tiles) and ``Pt`` (the sum
    of the tiles' latent pixels).
    """
    if h <= tile and w <= tile:
        return {"n": 1, "Pt": h * w}
    rows = [min(tile, h - i) for i in range(0, h, stride)]
    cols = [min(tile, w - j) for j in range(0, w, stride)]
    return {"n": len(rows) * len(cols), "Pt": sum(rows) * sum(cols)}


def ltx_multiscale(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """LTXConditionPipeline run as the LTX 0.9.7 multiscale recipe (diffusers docs, model card,
    and the published runs): pass 1 at 2/3 of the size (``steps`` steps, output_type latent: no
    decode), ``LTXLatentUpsamplePipeline`` 2x on the latents, pass 2 at twice the pass-1 size
    with ``denoise_strength`` (``int(10 * 0.4)`` = 4 steps), then the VAE decode with tiling on.

    Each pass encodes the prompt (and the negative prompt under CFG) with T5 (256 tokens) and
    runs the transformer on packed latent tokens ``f*h*w`` with cross-attention to them. The
    decoder is timestep-conditioned (``decode_timestep``); its tiles are the features ``n`` and
    ``Pt`` (:func:`ltx_vae_tiles`).
    """
    ms = spec.pipeline["multiscale"]
    r, st = spec.pipeline["vae_scale_factor_spatial"], spec.pipeline["vae_scale_factor_temporal"]
    C = spec.pipeline["latent_channels"]
    T = spec.text_tokens["text_encoder"]
    f = (setting.frames - 1) // st + 1
    (H1, W1), (H2, W2) = ltx_multiscale_sizes(spec, setting.height, setting.width)
    h1, w1, h2, w2 = H1 // r, W1 // r, H2 // r, W2 // r
    per_pass = 2 if setting.cfg else 1
    denoise_steps = min(int(ms["denoise_num_inference_steps"] * ms["denoise_strength"]),
                        ms["denoise_num_inference_steps"])
    n = setting.n_outputs
    text = [ComponentCall(c.component, c.role, c.dims, c.features, c.basis, c.batch, c.calls * 2,
                          description=f"{T} tokens, in each of the 2 passes"
                          + (" (prompt + negative prompt)" if setting.cfg else ""))
            for c in text_encoder_calls(spec, setting)]
    tiles = ltx_vae_tiles(h2, w2) if ms.get("vae_tiling") else {"n": 1, "Pt": h2 * w2}
    return [
        *text,
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h1, "w": w1, "T": T},
                      features={"L": f * h1 * w1}, basis=poly(("L", 2)), batch=n,
                      calls=setting.steps * per_pass, label="generate",
                      description=(f"pass 1 at {H1}x{W1}: latent {C}x{f}x{h1}x{w1} packed to {f * h1 * w1} tokens, "
                                   f"{setting.steps} steps, cross-attention to {T} text tokens")),
        ComponentCall("latent_upsampler", "upsampler", dims={"f": f, "h": h1, "w": w1},
                      features={"f": f, "P": h1 * w1}, basis=poly(("f", 1), ("P", 1)), batch=n, calls=1,
                      description=f"latent {C}x{f}x{h1}x{w1} -> {C}x{f}x{h2}x{w2}"),
        ComponentCall("transformer", "denoiser", dims={"f": f, "h": h2, "w": w2, "T": T},
                      features={"L": f * h2 * w2}, basis=poly(("L", 2)), batch=n,
                      calls=denoise_steps * per_pass, label="denoise",
                      description=(f"pass 2 at {H2}x{W2}: {f * h2 * w2} tokens, {ms['denoise_num_inference_steps']} "
                                   f"steps x strength {ms['denoise_strength']:g} = {denoise_steps} steps run")),
        ComponentCall("vae", "decoder", dims={"f": f, "h": h2, "w": w2}, features={"f": f, **tiles},
                      basis=((("n", 1),), (("n", 1), ("f", 1)), (("Pt", 1),), (("f", 1), ("Pt", 1))),
                      batch=n, calls=1,
                      description=(f"latent {C}x{f}x{h2}x{w2} decoded in {tiles['n']} spatial tile(s) "
                                   f"(vae.enable_tiling()) -> {setting.frames}x{H2}x{W2}, resized to "
                                   f"{setting.height}x{setting.width}")),
    ]


# -- CogVideoX 1.5 ------------------------------------------------------------------------------

def cogvideox_1_5(spec: ModelSpec, setting: GenerationSetting) -> list[ComponentCall]:
    """CogVideoXPipeline with CogVideoX 1.5's 2-frame temporal patches (``patch_size_t`` 2).

    The latent frames ``F = (frames-1)/4+1`` are padded to a multiple of ``patch_size_t`` (one
    extra latent frame when F is odd); the transformer runs on ``(F padded / 2)*(h/2)*(w/2)``
    video tokens + 226 text tokens in joint attention with 3-D rotary embeddings; the padding is
    dropped before the VAE decodes the F latent frames 2 at a time (as for CogVideoX 1.0,
    :func:`cogvideox_vae_chunks`). T5 encodes the prompt (and the empty negative prompt under CFG).
    """
    F, h, w = _latent(spec, setting)
    C = spec.pipeline["latent_channels"]
    p, pt = spec.pipeline["patch_size"], spec.pipeline["patch_size_t"]
    T = spec.text_tokens["text_encoder"]
    Fp = F + (-F) % pt
    Lv = (Fp // pt) * (h // p) * (w // p)
    chunks = cogvideox_vae_chunks(F)
    basis: tuple[Monomial, ...] = ((), (("P", 1),))
    for c in ("c1", "c2", "c3"):
        basis += (((c, 1),), ((c, 1), ("P", 1)), ((c, 1), ("P", 2)))
    out_frames = 4 * (F - 1) + 1 if F % 2 else 4 * F
    pad = f" ({F} padded to {Fp})" if Fp != F else ""
    return [
        *text_encoder_calls(spec, setting),
        ComponentCall("transformer", "denoiser", dims={"f": Fp, "h": h, "w": w, "T": T},
                      features={"L": Lv + T}, basis=poly(("L", 2)), batch=setting.n_outputs,
                      calls=denoiser_calls_per_generation(setting),
                      description=(f"latent {Fp}x{C}x{h}x{w}{pad}, {Lv} video tokens (2x2x2 patches) + {T} text "
                                   "tokens in joint attention + rotary embeddings")),
        ComponentCall("vae", "decoder", dims={"f": F, "h": h, "w": w},
                      features={**chunks, "P": h * w}, basis=basis, batch=setting.n_outputs, calls=1,
                      description=(f"latent {C}x{F}x{h}x{w} decoded in latent-frame chunks "
                                   f"{ {k: v for k, v in chunks.items() if v} } -> "
                                   f"{out_frames}x{setting.height}x{setting.width}")),
    ]
