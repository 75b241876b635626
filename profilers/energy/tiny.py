"""Tiny random pipelines for tests: their specs and their 1-layer components.

``tiny:sd``, ``tiny:wan`` and ``tiny:audioldm`` are the real diffusers pipeline classes with
1-layer components of width 16 to 32 from a fixed seed; each has a
:class:`~scaling.registry.ModelSpec` so settings, the runner and sweeps treat it like a
registered model. :func:`profilers.energy.pipelines.tiny_pipeline` assembles them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from profilers.energy.tokenizers import build_tokenizer
from scaling.errors import UnknownModelError
from scaling.registry import ComponentSpec, ModelSpec

__all__ = ["TINY_KINDS", "tiny_parts", "tiny_spec"]

TINY_KINDS = ("sd", "wan", "audioldm")


def tiny_spec(kind: str) -> ModelSpec:
    """The ModelSpec of a tiny test pipeline (``sd``, ``wan``, ``audioldm``)."""
    kind = kind.strip().lower()
    if kind not in TINY_KINDS:
        raise UnknownModelError(f"unknown tiny pipeline {kind!r}: use one of {', '.join(TINY_KINDS)}")
    return _tiny_specs()[kind]


@cache
def _tiny_specs() -> dict[str, ModelSpec]:
    def spec(kind, modality, pipeline_class, roles, defaults, rules, tokens):
        components = {n: ComponentSpec(n, r, lib, cls, {}) for n, (r, lib, cls) in roles.items()}
        return ModelSpec(
            key=f"tiny-{kind}", id=f"tiny:{kind}", aliases=(f"tiny:{kind}",), modality=modality, family="tiny",
            pipeline_class=pipeline_class, components=components, defaults=defaults, guidance_type="cfg",
            pipeline={"_class_name": pipeline_class, "max_sequence_length": tokens, "cfg_doubles_batch": True},
            rules=rules, text_tokens=tokens, text_tokens_provenance={k: "tiny test pipeline" for k in tokens},
            provenance="profilers/energy/tiny.py (test only, random 1-layer components)",
            architecture_key=f"tiny-{kind}",
        )

    none_rules = {"res_multiple": None, "max_side": None, "frame_step": None, "max_frames": None, "max_audio_s": None}
    return {
        "sd": spec("sd", "image", "StableDiffusionPipeline",
                   {"text_encoder": ("text_encoder", "transformers", "CLIPTextModel"),
                    "unet": ("denoiser", "diffusers", "UNet2DConditionModel"),
                    "vae": ("decoder", "diffusers", "AutoencoderKL")},
                   {"height": 8, "width": 8, "frames": None, "fps": None, "audio_seconds": None, "steps": 2,
                    "guidance_scale": 5.0},
                   {**none_rules, "res_multiple": 8, "max_side": 64}, {"text_encoder": 16}),
        "wan": spec("wan", "video", "WanPipeline",
                    {"text_encoder": ("text_encoder", "transformers", "UMT5EncoderModel"),
                     "transformer": ("denoiser", "diffusers", "WanTransformer3DModel"),
                     "vae": ("decoder", "diffusers", "AutoencoderKLWan")},
                    {"height": 16, "width": 16, "frames": 5, "fps": 16, "audio_seconds": None, "steps": 2,
                     "guidance_scale": 5.0},
                    {**none_rules, "res_multiple": 16, "max_side": 64, "frame_step": 4, "max_frames": 17},
                    {"text_encoder": 16}),
        "audioldm": spec("audioldm", "audio", "AudioLDMPipeline",
                         {"text_encoder": ("text_encoder", "transformers", "ClapTextModelWithProjection"),
                          "unet": ("denoiser", "diffusers", "UNet2DConditionModel"),
                          "vae": ("decoder", "diffusers", "AutoencoderKL"),
                          "vocoder": ("vocoder", "transformers", "SpeechT5HifiGan")},
                         {"height": None, "width": None, "frames": None, "fps": None, "audio_seconds": 0.016,
                          "steps": 2, "guidance_scale": 2.5},
                         {**none_rules, "max_audio_s": 0.1}, {"text_encoder": 16}),
    }


def tiny_parts(kind: str, seed: int) -> dict[str, Any]:
    """The components, scheduler and tokenizer of the tiny pipeline ``kind``, from ``seed``."""
    return {"sd": _tiny_sd, "wan": _tiny_wan, "audioldm": _tiny_audioldm}[tiny_spec(kind).key.split("-", 1)[1]](seed)


def _tiny_sd(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=4, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=8,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=8, sample_size=8,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1, vocab_size=1000,
        max_position_embeddings=16, projection_dim=16, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "scheduler": scheduler,
            "tokenizer": build_tokenizer("CLIPTokenizer", 16, 1000)}


def _tiny_wan(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=1000, d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    ))
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=32, ffn_dim=32, num_layers=1, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    return {"transformer": transformer, "vae": vae, "text_encoder": text_encoder, "scheduler": scheduler,
            "tokenizer": build_tokenizer("T5Tokenizer", 16, 1000)}


def _tiny_audioldm(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(16, 32), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(16, 32), attention_head_dim=4, norm_num_groups=8,
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=16, class_embeddings_concat=True,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(16, 32), in_channels=1, out_channels=1, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=8,
    )
    torch.manual_seed(seed)
    text_encoder = ClapTextModelWithProjection(ClapTextConfig(
        bos_token_id=3, eos_token_id=1, hidden_size=16, intermediate_size=32, layer_norm_eps=1e-5,
        num_attention_heads=2, num_hidden_layers=1, pad_token_id=0, vocab_size=1000, projection_dim=16,
        max_position_embeddings=24,
    ))
    torch.manual_seed(seed)
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=8, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        normalize_before=False,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "vocoder": vocoder, "scheduler": scheduler,
            "tokenizer": build_tokenizer("RobertaTokenizer", 16, 1000)}
