"""Input builders of the video components (one sample, one call, meta tensors).

Each builder mirrors the arguments the diffusers pipeline passes (diffusers 0.42.1); the
shapes come from ``ComponentCall.dims`` (``scaling/shapes/_video.py``). Where a family runs a
module made of its components (Mochi's decode, AnimateDiff's motion UNet and frame decoder), a
composer builds it from ``component(name)``, the component built on the meta device.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch


def wan_transformer(spec, call, module):
    d = call.dims
    cfg = module.config
    return module, {
        "hidden_states": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.text_dim),
        "return_dict": False,
    }


def wan_vae(spec, call, module):
    d = call.dims
    z = torch.empty(1, module.config.z_dim, d["f"], d["h"], d["w"])
    return module.decode, {"z": z, "return_dict": False}


# -- CogVideoX --------------------------------------------------------------------------------

def cogvideox_transformer(spec, call, module):
    """``hidden_states`` is (B, frames, C, h, w); CogVideoX-5b gets its 3-D rotary embeddings
    from the pipeline (``_prepare_rotary_positional_embeddings``): cos and sin of shape
    (video tokens, attention_head_dim)."""
    d = call.dims
    cfg = module.config
    kwargs = {
        "hidden_states": torch.empty(1, d["f"], cfg.in_channels, d["h"], d["w"]),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.text_embed_dim),
        "timestep": torch.empty(1, dtype=torch.long),
        "return_dict": False,
    }
    if cfg.use_rotary_positional_embeddings:
        p, pt = cfg.patch_size, cfg.patch_size_t or 1
        n = (d["f"] // pt) * (d["h"] // p) * (d["w"] // p)
        kwargs["image_rotary_emb"] = (torch.empty(n, cfg.attention_head_dim), torch.empty(n, cfg.attention_head_dim))
    return module, kwargs


def cogvideox_vae(spec, call, module):
    """``vae.decode`` runs the real ``_decode`` loop over latent-frame chunks."""
    d = call.dims
    z = torch.empty(1, module.config.latent_channels, d["f"], d["h"], d["w"])
    return module.decode, {"z": z, "return_dict": False}


# -- LTX-Video --------------------------------------------------------------------------------

def ltx_transformer(spec, call, module):
    """Packed tokens (B, f*h*w, C) with the latent grid and RoPE interpolation scale
    ``(vae_temporal / frame_rate, vae_spatial, vae_spatial)`` as LTXPipeline passes them."""
    d = call.dims
    cfg = module.config
    p, pt = cfg.patch_size, cfg.patch_size_t
    f, h, w = d["f"] // pt, d["h"] // p, d["w"] // p
    pipe = spec.pipeline
    frame_rate = pipe.get("frame_rate") or pipe.get("fps") or 25
    st, ss = pipe["vae_scale_factor_temporal"], pipe["vae_scale_factor_spatial"]
    return module, {
        "hidden_states": torch.empty(1, f * h * w, cfg.in_channels * p * p * pt),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.caption_channels),
        "timestep": torch.empty(1),
        "encoder_attention_mask": torch.ones(1, d["T"]),
        "num_frames": f, "height": h, "width": w,
        "rope_interpolation_scale": (st / frame_rate, ss, ss),
        "return_dict": False,
    }


def ltx_vae(spec, call, module):
    """Whole-clip decode; ``temb`` (the decode timestep) only when the VAE is timestep-conditioned."""
    d = call.dims
    z = torch.empty(1, module.config.latent_channels, d["f"], d["h"], d["w"])
    temb = torch.empty(1) if module.config.timestep_conditioning else None
    return module.decode, {"z": z, "temb": temb, "return_dict": False}


# -- Mochi ------------------------------------------------------------------------------------

@contextmanager
def _mochi_meta_ops():
    """Two data-dependent spots of the Mochi transformer that have no meta implementation.

    - ``MochiAttnProcessor2_0`` keeps the valid prompt tokens with ``torch.nonzero`` on the
      attention mask; the builder passes an all-ones mask, so on meta it returns every index
      (the same ops and shapes as on a GPU with that mask).
    - ``MochiRoPE._create_rope`` opens ``torch.autocast(freqs.device.type)``, refused for
      ``meta``; autocast changes dtypes, not FLOPs, so on meta it is a no-op context.
    Both patches are undone when the call ends.
    """
    real_nonzero, real_autocast = torch.nonzero, torch.autocast

    def nonzero(t, *args, as_tuple=False, **kwargs):
        if t.device.type != "meta":
            return real_nonzero(t, *args, as_tuple=as_tuple, **kwargs)
        idx = torch.arange(t.numel(), device="meta")
        if t.dim() != 1:
            raise NotImplementedError("meta nonzero: only flat all-ones masks are supported")
        return (idx,) if as_tuple else idx.unsqueeze(-1)

    def autocast(device_type, *args, **kwargs):
        return nullcontext() if device_type == "meta" else real_autocast(device_type, *args, **kwargs)

    torch.nonzero, torch.autocast = nonzero, autocast
    try:
        yield
    finally:
        torch.nonzero, torch.autocast = real_nonzero, real_autocast


def mochi_transformer(spec, call, module):
    """All ``T`` prompt tokens valid (mask of ones): see ``scaling/shapes/_video.py``."""
    d = call.dims
    cfg = module.config

    def run(**kwargs):
        with _mochi_meta_ops():
            return module(**kwargs)

    return run, {
        "hidden_states": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.text_embed_dim),
        "timestep": torch.empty(1),
        "encoder_attention_mask": torch.ones(1, d["T"], dtype=torch.bool),
        "return_dict": False,
    }


class MochiVAEDecode(torch.nn.Module):
    """``AutoencoderKLMochi.decode`` as the pipeline runs it, holding only the decoder as a
    submodule: the encoder's attention blocks never run when decoding, so they must not count
    for the attention guard (the decoder has no attention)."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.decoder = vae.decoder
        self._vae = [vae]  # not a submodule

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self._vae[0].decode(z, return_dict=False)[0]


def mochi_vae_module(component):
    return MochiVAEDecode(component("vae"))


def mochi_vae(spec, call, module):
    d = call.dims
    z = torch.empty(1, module._vae[0].config.latent_channels, d["f"], d["h"], d["w"])
    return module, {"z": z}


# -- HunyuanVideo -----------------------------------------------------------------------------

def hunyuan_transformer(spec, call, module):
    """Llama embeddings (256 tokens after the template crop) with their mask, the CLIP pooled
    embedding, and the guidance embedding (``guidance_scale * 1000``)."""
    d = call.dims
    cfg = module.config
    kwargs = {
        "hidden_states": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.text_embed_dim),
        "encoder_attention_mask": torch.ones(1, d["T"]),
        "pooled_projections": torch.empty(1, cfg.pooled_projection_dim),
        "return_dict": False,
    }
    if cfg.guidance_embeds:
        kwargs["guidance"] = torch.empty(1)
    return module, kwargs


def hunyuan_vae(spec, call, module):
    """``vae.decode`` with the default settings: framewise (temporal-tile) decoding on,
    spatial tiling off."""
    d = call.dims
    z = torch.empty(1, module.config.latent_channels, d["f"], d["h"], d["w"])
    return module.decode, {"z": z, "return_dict": False}


# -- AnimateDiff ------------------------------------------------------------------------------

def animatediff_unet(component):
    """What AnimateDiffPipeline.__init__ runs: ``UNetMotionModel.from_unet2d(unet, motion_adapter)``
    (built without copying weights: the architecture is the same, the weights are on meta)."""
    from diffusers import UNetMotionModel

    return UNetMotionModel.from_unet2d(component("unet"), component("motion_adapter"), load_weights=False)


def animatediff_unet_inputs(spec, call, module):
    """``sample`` (B, C, frames, h, w); the prompt embeddings repeated once per frame
    (``prompt_embeds.repeat_interleave(num_frames)`` in the pipeline)."""
    d = call.dims
    cfg = module.config
    return module, {
        "sample": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(d["f"], d["T"], cfg.cross_attention_dim),
        "return_dict": False,
    }


class AnimateDiffFrameDecoder(torch.nn.Module):
    """``AnimateDiffPipeline.decode_latents``: the frames of a video become the batch of the
    2-D ``AutoencoderKL`` and are decoded ``decode_chunk_size`` (16) frames at a time."""

    def __init__(self, vae: torch.nn.Module, decode_chunk_size: int = 16):
        super().__init__()
        self.vae = vae
        self.decode_chunk_size = decode_chunk_size

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = latents.shape
        latents = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        out = [self.vae.decode(latents[i:i + self.decode_chunk_size]).sample
               for i in range(0, latents.shape[0], self.decode_chunk_size)]
        return torch.cat(out)


def animatediff_vae(component):
    return AnimateDiffFrameDecoder(component("vae"))


def animatediff_vae_inputs(spec, call, module):
    d = call.dims
    return module, {"latents": torch.empty(1, module.vae.config.latent_channels, d["f"], d["h"], d["w"])}


# -- LTX-Video 0.9.7 multiscale (the two-pass recipe) -------------------------------------------

def ltx_latent_upsampler(spec, call, module):
    """``LTXLatentUpsamplePipeline``: the latent upsampler on the pass-1 latents (B, C, f, h, w)."""
    d = call.dims
    return module, {"hidden_states": torch.empty(1, module.config.in_channels, d["f"], d["h"], d["w"])}


class LTXTiledVAEDecode(torch.nn.Module):
    """``AutoencoderKLLTXVideo.decode`` after ``vae.enable_tiling()`` (the recipe's call: 512 px
    tiles, stride 448, the class defaults ``enable_tiling()`` keeps), timestep-conditioned: the
    same branch ``_decode`` takes, without switching the shared module's tiling flag."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor, temb: torch.Tensor | None) -> torch.Tensor:
        vae = self.vae
        tile_h = vae.tile_sample_min_height // vae.spatial_compression_ratio
        tile_w = vae.tile_sample_min_width // vae.spatial_compression_ratio
        if z.shape[-2] > tile_h or z.shape[-1] > tile_w:
            return vae.tiled_decode(z, temb, return_dict=False)[0]
        return vae.decoder(z, temb)


def ltx_tiled_vae_module(component):
    return LTXTiledVAEDecode(component("vae"))


def ltx_tiled_vae(spec, call, module):
    d = call.dims
    vae = module.vae
    z = torch.empty(1, vae.config.latent_channels, d["f"], d["h"], d["w"])
    return module, {"z": z, "temb": torch.empty(1) if vae.config.timestep_conditioning else None}


# -- video UNets: SVD, I2VGen-XL, ModelScope ----------------------------------------------------

def clip_image_encoder(spec, call, module):
    """The CLIP image encoder on one preprocessed ``S x S`` image (``pixel_values``)."""
    S = call.dims["S"]
    return module, {"pixel_values": torch.empty(1, module.config.num_channels, S, S)}


def _all_on_meta(module):
    """SVD's ``AlphaBlender`` creates its ``mix_factor`` with the legacy ``torch.Tensor([alpha])``,
    which ignores the default device: on a meta build that one parameter sits on the CPU. Move it
    (in place, once) so that the trace sees one device."""
    if any(p.device.type != "meta" for p in module.parameters()):
        module.to("meta")
    return module


def svd_unet(spec, call, module):
    """``sample`` (B, frames, 4 noise + 4 image-latent channels, h, w), the image embedding as one
    token, ``added_time_ids`` (fps, motion bucket, noise augmentation)."""
    _all_on_meta(module)
    d = call.dims
    cfg = module.config
    return module, {
        "sample": torch.empty(1, d["f"], cfg.in_channels, d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, 1, cfg.cross_attention_dim),
        "added_time_ids": torch.empty(1, 3),
        "return_dict": False,
    }


def svd_vae(spec, call, module):
    """``vae:encode``: the conditioning image (1, 3, H, W); the decode: the frames as the batch
    (``decode_latents`` flattens them) with ``num_frames``, one chunk of all frames."""
    _all_on_meta(module)
    d = call.dims
    s = spec.pipeline["vae_scale_factor_spatial"]
    if call.label == "encode":
        return module.encode, {"x": torch.empty(1, module.config.in_channels, d["h"] * s, d["w"] * s),
                               "return_dict": False}
    z = torch.empty(d["f"], module.config.latent_channels, d["h"], d["w"])
    return module.decode, {"z": z, "num_frames": d["f"], "return_dict": False}


def i2vgen_unet(spec, call, module):
    """The I2VGenXLPipeline call: text embeddings, fps, the image latents of every frame and the
    CLIP image embedding."""
    d = call.dims
    cfg = module.config
    T = spec.text_tokens["text_encoder"]
    return module, {
        "sample": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, T, cfg.cross_attention_dim),
        "fps": torch.empty(1),
        "image_latents": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "image_embeddings": torch.empty(1, 1, cfg.cross_attention_dim),
        "return_dict": False,
    }


def unet_3d(spec, call, module):
    """TextToVideoSDPipeline: ``sample`` (B, C, frames, h, w) and the CLIP text embeddings."""
    d = call.dims
    cfg = module.config
    return module, {
        "sample": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, spec.text_tokens["text_encoder"], cfg.cross_attention_dim),
        "return_dict": False,
    }


class FramesVAE(torch.nn.Module):
    """A 2-D ``AutoencoderKL`` as the video UNet pipelines run it: ``decode_latents`` makes the
    frames the batch (in chunks: their size does not change the count), ``encode`` the
    conditioning image (I2VGen-XL's ``prepare_image_latents``)."""

    def __init__(self, vae: torch.nn.Module):
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = latents.shape
        return self.vae.decode(latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)).sample


def frames_vae_module(component):
    return FramesVAE(component("vae"))


def frames_vae(spec, call, module):
    d = call.dims
    vae = module.vae
    if call.label == "encode":
        s = spec.pipeline["vae_scale_factor_spatial"]
        return vae.encode, {"x": torch.empty(1, vae.config.in_channels, d["h"] * s, d["w"] * s), "return_dict": False}
    return module, {"latents": torch.empty(1, vae.config.latent_channels, d["f"], d["h"], d["w"])}


BUILDERS = {
    "WanTransformer3DModel": wan_transformer,
    "AutoencoderKLWan": wan_vae,
    "CogVideoXTransformer3DModel": cogvideox_transformer,
    "AutoencoderKLCogVideoX": cogvideox_vae,
    "LTXVideoTransformer3DModel": ltx_transformer,
    "AutoencoderKLLTXVideo": ltx_vae,
    "MochiTransformer3DModel": mochi_transformer,
    "MochiVAEDecode": mochi_vae,
    "HunyuanVideoTransformer3DModel": hunyuan_transformer,
    "AutoencoderKLHunyuanVideo": hunyuan_vae,
    "UNetMotionModel": animatediff_unet_inputs,
    "AnimateDiffFrameDecoder": animatediff_vae_inputs,
    "LTXLatentUpsamplerModel": ltx_latent_upsampler,
    "LTXTiledVAEDecode": ltx_tiled_vae,
    "CLIPVisionModelWithProjection": clip_image_encoder,
    "UNetSpatioTemporalConditionModel": svd_unet,
    "AutoencoderKLTemporalDecoder": svd_vae,
    "I2VGenXLUNet": i2vgen_unet,
    "UNet3DConditionModel": unet_3d,
    "FramesVAE": frames_vae,
}
"""Component class name -> input builder (combined with the others in ``traced.BUILDERS``)."""

COMPOSERS = {
    ("mochi", "vae"): mochi_vae_module,
    ("animatediff", "unet"): animatediff_unet,
    ("animatediff", "vae"): animatediff_vae,
    ("ltx-multiscale", "vae"): ltx_tiled_vae_module,
    ("i2vgen", "vae"): frames_vae_module,
    ("modelscope", "vae"): frames_vae_module,
}
"""(family, component) -> the module the family really runs for that component."""
