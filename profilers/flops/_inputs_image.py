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


# -- Kandinsky 2.2 and 3 --------------------------------------------------------------------------

def prior_transformer(spec, call, module):
    """KandinskyV22PriorPipeline: the noisy image embedding, the pooled text embedding
    (``proj_embedding``), the 77 text hidden states and their mask."""
    cfg = module.config
    T = spec.text_tokens["prior_text_encoder"]
    return module, {
        "hidden_states": torch.empty(1, cfg.embedding_dim),
        "timestep": torch.empty(1),
        "proj_embedding": torch.empty(1, cfg.embedding_dim),
        "encoder_hidden_states": torch.empty(1, T, cfg.embedding_dim),
        "attention_mask": torch.ones(1, T, dtype=torch.bool),
        "return_dict": False,
    }


class KandinskyV22UNet(torch.nn.Module):
    """The decoder UNet as KandinskyV22Pipeline calls it: no text, the image embedding as
    ``added_cond_kwargs`` (``encoder_hid_dim_type`` image_proj: it also becomes the
    cross-attention tokens)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, image_embeds: torch.Tensor):
        return self.unet(sample=sample, timestep=timestep, encoder_hidden_states=None,
                         added_cond_kwargs={"image_embeds": image_embeds}, return_dict=False)[0]


def kandinsky22_unet_module(component):
    return KandinskyV22UNet(component("unet"))


def kandinsky22_unet(spec, call, module):
    d = call.dims
    cfg = module.unet.config
    return module, {"sample": torch.empty(1, cfg.in_channels, d["h"], d["w"]), "timestep": torch.empty(1),
                    "image_embeds": torch.empty(1, cfg.encoder_hid_dim)}


def kandinsky3_unet(spec, call, module):
    d = call.dims
    T = spec.text_tokens["text_encoder"]
    return module, {
        "sample": torch.empty(1, module.config.in_channels, d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, T, module.config.encoder_hid_dim),
        "encoder_attention_mask": torch.ones(1, T),
        "return_dict": False,
    }


def movq_decode(spec, call, module):
    """``movq.decode(latents, force_not_quantize=True)``: the pipelines decode the continuous
    latents (no codebook lookup)."""
    d = call.dims
    z = torch.empty(1, module.config.vq_embed_dim or module.config.latent_channels, d["h"], d["w"])
    return module.decode, {"h": z, "force_not_quantize": True, "return_dict": False}


# -- SANA, HunyuanDiT -----------------------------------------------------------------------------

def sana_transformer(spec, call, module):
    d = call.dims
    cfg = module.config
    return module, {
        "hidden_states": torch.empty(1, cfg.in_channels, d["h"], d["w"]),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.caption_channels),
        "encoder_attention_mask": torch.ones(1, d["T"]),
        "timestep": torch.empty(1),
        "return_dict": False,
    }


def dc_ae_decode(spec, call, module):
    d = call.dims
    return module.decode, {"z": torch.empty(1, module.config.latent_channels, d["h"], d["w"]), "return_dict": False}


def hunyuandit_transformer(spec, call, module):
    """HunyuanDiTPipeline: CLIP (77) and mT5 (256) embeddings with their masks, the 2-D rotary
    embeddings (cos, sin) of the image tokens; v1.2 has no style / image-size conditioning."""
    d = call.dims
    cfg = module.config
    head = cfg.hidden_size // cfg.num_attention_heads
    T1, T2 = spec.text_tokens["text_encoder"], spec.text_tokens["text_encoder_2"]
    kwargs = {
        "hidden_states": torch.empty(1, cfg.in_channels, d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, T1, cfg.cross_attention_dim),
        "text_embedding_mask": torch.ones(1, T1),
        "encoder_hidden_states_t5": torch.empty(1, T2, cfg.cross_attention_dim_t5),
        "text_embedding_mask_t5": torch.ones(1, T2),
        "image_rotary_emb": (torch.empty(d["L"], head), torch.empty(d["L"], head)),
        "return_dict": False,
    }
    if cfg.use_style_cond_and_image_meta_size:
        kwargs.update({"image_meta_size": torch.empty(1, 6), "style": torch.zeros(1, dtype=torch.long)})
    return module, kwargs


def token_text_encoder(spec, call, module):
    """A text encoder on ``T`` token ids (BERT, Gemma-2 as decoder stack)."""
    return module, {"input_ids": torch.zeros(1, call.dims["T"], dtype=torch.long)}


BUILDERS = {
    "UNet2DConditionModel": unet_2d,
    "SD3Transformer2DModel": sd3_transformer,
    "FluxTransformer2DModel": flux_transformer,
    "QwenImageTransformer2DModel": qwen_transformer,
    "PixArtTransformer2DModel": pixart_transformer,
    "Qwen2_5_VLForConditionalGeneration": qwen_vl_text,
    "AutoencoderKLQwenImage": qwen_vae,
    "PriorTransformer": prior_transformer,
    "KandinskyV22UNet": kandinsky22_unet,
    "Kandinsky3UNet": kandinsky3_unet,
    "VQModel": movq_decode,
    "SanaTransformer2DModel": sana_transformer,
    "AutoencoderDC": dc_ae_decode,
    "HunyuanDiT2DModel": hunyuandit_transformer,
    "BertModel": token_text_encoder,
    "Gemma2Model": token_text_encoder,
}

COMPOSERS = {
    ("kandinsky2.2", "unet"): kandinsky22_unet_module,
}
"""(family, component) -> the module the family really runs for that component."""
"""Component class name -> input builder (combined with the others in ``traced.BUILDERS``)."""
