"""Input builders of the image components (one sample, one call, meta tensors).

Each builder passes what the diffusers pipeline passes (diffusers 0.42.1); masks that are all
ones for a single prompt are left out (they change no FLOP count, and on the meta device
transformers cannot inspect them).
"""

from __future__ import annotations

import torch


def unet_2d(spec, call, module):
    d = call.dims
    cfg = module.config
    kwargs = {
        "sample": torch.empty(1, cfg.in_channels, d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.cross_attention_dim),
        "return_dict": False,
    }
    if cfg.addition_embed_type == "text_time":  # SDXL: pooled CLIP-G embeds + 6 time ids
        n_time = 6
        text_dim = cfg.projection_class_embeddings_input_dim - n_time * cfg.addition_time_embed_dim
        kwargs["added_cond_kwargs"] = {"text_embeds": torch.empty(1, text_dim), "time_ids": torch.empty(1, n_time)}
    return module, kwargs


def sd3_transformer(spec, call, module):
    d = call.dims
    cfg = module.config
    return module, {
        "hidden_states": torch.empty(1, cfg.in_channels, d["h"], d["w"]),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.joint_attention_dim),
        "pooled_projections": torch.empty(1, cfg.pooled_projection_dim),
        "timestep": torch.empty(1),
        "return_dict": False,
    }


def flux_transformer(spec, call, module):
    d = call.dims
    cfg = module.config
    L, T = d["L"], d["T"]
    kwargs = {
        "hidden_states": torch.empty(1, L, cfg.in_channels),
        "encoder_hidden_states": torch.empty(1, T, cfg.joint_attention_dim),
        "pooled_projections": torch.empty(1, cfg.pooled_projection_dim),
        "timestep": torch.empty(1),
        "img_ids": torch.zeros(L, 3),
        "txt_ids": torch.zeros(T, 3),
        "return_dict": False,
    }
    if cfg.guidance_embeds:
        kwargs["guidance"] = torch.empty(1)
    return module, kwargs


def qwen_transformer(spec, call, module):
    d = call.dims
    cfg = module.config
    p = cfg.patch_size
    return module, {
        "hidden_states": torch.empty(1, d["L"], cfg.in_channels),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.joint_attention_dim),
        "encoder_hidden_states_mask": None,  # the pipeline drops an all-ones mask
        "timestep": torch.empty(1),
        "img_shapes": [[(1, d["h"] // p, d["w"] // p)]],
        "return_dict": False,
    }


def pixart_transformer(spec, call, module):
    d = call.dims
    cfg = module.config
    return module, {
        "hidden_states": torch.empty(1, cfg.in_channels, d["h"], d["w"]),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.caption_channels),
        "timestep": torch.empty(1),
        "added_cond_kwargs": {"resolution": None, "aspect_ratio": None},
        "return_dict": False,
    }


def qwen_vl_text(spec, call, module):
    # QwenImagePipeline: text_encoder(input_ids, attention_mask, output_hidden_states=True);
    # text only, so the vision tower does not run; the lm_head runs on every position.
    return module, {"input_ids": torch.zeros(1, call.dims["T"], dtype=torch.long), "output_hidden_states": True}


def qwen_vae(spec, call, module):
    d = call.dims
    z = torch.empty(1, module.config.z_dim, d.get("f", 1), d["h"], d["w"])
    return module.decode, {"z": z, "return_dict": False}


BUILDERS = {
    "UNet2DConditionModel": unet_2d,
    "SD3Transformer2DModel": sd3_transformer,
    "FluxTransformer2DModel": flux_transformer,
    "QwenImageTransformer2DModel": qwen_transformer,
    "PixArtTransformer2DModel": pixart_transformer,
    "Qwen2_5_VLForConditionalGeneration": qwen_vl_text,
    "AutoencoderKLQwenImage": qwen_vae,
}
"""Component class name -> input builder (combined with the others in ``traced.BUILDERS``)."""
