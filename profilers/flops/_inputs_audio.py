"""Input builders of the audio components (one sample, one call, meta tensors).

What each builder feeds is what the pipeline feeds (see ``scaling/shapes/_audio.py``):

- CLAP text towers (``ClapTextModelWithProjection`` for AudioLDM, ``ClapModel.get_text_features``
  for MusicLDM and AudioLDM 2) on ``T`` token ids;
- the ``UNet2DConditionModel`` of AudioLDM / MusicLDM with the CLAP embedding as
  ``class_labels`` and ``encoder_hidden_states=None``, and Tango's with T5 cross-attention: the
  class is shared with the image pipelines (``_inputs_image.py`` owns its builder), so the audio
  families run it through a thin wrapper (:class:`AudioUNet`, their entry in ``COMPOSERS``)
  that has its own builder;
- AudioLDM 2: the projection model, GPT-2 (prefill, then one-token steps over a KV cache built
  by an uncounted prefill of the cache length) and the two-stream UNet;
- the HiFi-GAN vocoder on ``(mel frames, mel bins)``; Stable Audio's DiT, projection model and
  Oobleck VAE.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def _no_padding_mask_checks(module: torch.nn.Module):
    """CLAP's text tower always builds a (bidirectional) padding mask and checks the ids for pad
    tokens; both call ``.item()``, which meta tensors refuse. Without a mask the attention runs
    unmasked: the same matmuls, the same FLOPs (masking is element-wise)."""
    import transformers.models.clap.modeling_clap as clap

    orig_mask = clap.create_bidirectional_mask
    text_model = module.text_model
    had_warn = "warn_if_padding_and_no_attention_mask" in vars(text_model)
    clap.create_bidirectional_mask = lambda *a, **k: None
    text_model.warn_if_padding_and_no_attention_mask = lambda *a, **k: None
    try:
        yield
    finally:
        clap.create_bidirectional_mask = orig_mask
        if not had_warn:
            del text_model.warn_if_padding_and_no_attention_mask


# Only the audio pipelines use CLAP, so its text tower's builder lives here (not among
# traced.py's shared text-encoder builders).
def clap_text_with_projection(spec, call, module):
    """AudioLDM: ``text_encoder(ids).text_embeds`` (text tower + 512-d projection)."""
    def run(input_ids):
        with _no_padding_mask_checks(module):
            return module(input_ids=input_ids)
    return run, {"input_ids": torch.zeros(1, call.dims["T"], dtype=torch.long)}


def clap_text_features(spec, call, module):
    """MusicLDM / AudioLDM 2: ``text_encoder.get_text_features(ids)`` (the audio tower does not run)."""
    def run(input_ids):
        with _no_padding_mask_checks(module):
            return module.get_text_features(input_ids=input_ids)
    return run, {"input_ids": torch.zeros(1, call.dims["T"], dtype=torch.long)}


class AudioUNet(torch.nn.Module):
    """A ``UNet2DConditionModel`` as the audio pipelines call it (own input builder)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, **kwargs):
        return self.unet(**kwargs)


def _wrap_unet(component):
    return AudioUNet(component("unet"))


def audio_unet(spec, call, module):
    unet = module.unet
    cfg = unet.config
    d = call.dims
    kwargs = {"sample": torch.empty(1, cfg.in_channels, d["T"], d["F"]), "timestep": torch.empty(1),
              "return_dict": False}
    if cfg.class_embed_type == "simple_projection":
        # AudioLDM / MusicLDM: unet(latents, t, encoder_hidden_states=None, class_labels=clap_embeds)
        kwargs["encoder_hidden_states"] = None
        kwargs["class_labels"] = torch.empty(1, cfg.projection_class_embeddings_input_dim)
    else:
        # Tango: unet(latents, t, encoder_hidden_states=t5_states, encoder_attention_mask=mask)
        kwargs["encoder_hidden_states"] = torch.empty(1, d["L"], cfg.cross_attention_dim)
        kwargs["encoder_attention_mask"] = torch.ones(1, d["L"], dtype=torch.bool)
    return unet, kwargs


def audioldm2_unet(spec, call, module):
    d = call.dims
    cfg = module.config
    gpt_dim = spec.components["language_model"].config["n_embd"]
    t5_dim = spec.components["text_encoder_2"].config["d_model"]
    return module, {
        "sample": torch.empty(1, cfg.in_channels, d["T"], d["F"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, d["L_gpt"], gpt_dim),
        "encoder_hidden_states_1": torch.empty(1, d["L_t5"], t5_dim),
        "encoder_attention_mask_1": torch.ones(1, d["L_t5"], dtype=torch.long),
        "return_dict": False,
    }


def audioldm2_projection(spec, call, module):
    cfg = module.config
    L = call.dims["L"]
    return module, {
        "hidden_states": torch.empty(1, 1, cfg.text_encoder_dim),
        "hidden_states_1": torch.empty(1, L, cfg.text_encoder_1_dim),
        "attention_mask": torch.ones(1, 1, dtype=torch.long),
        "attention_mask_1": torch.ones(1, L, dtype=torch.long),
    }


def gpt2(spec, call, module):
    """``language_model(inputs_embeds=..., past_key_values=..., output_hidden_states=True)`` as in
    ``AudioLDM2Pipeline.generate_language_model``: the prefill on all ``L`` projected tokens, then
    one new token per step over the cache (``use_cache`` left to the config: True)."""
    dim = module.config.n_embd
    if call.label == "prefill":
        return module, {"inputs_embeds": torch.empty(1, call.dims["L"], dim),
                        "output_hidden_states": True, "return_dict": True}
    K = call.dims["K"]
    with torch.no_grad():  # build the KV cache of length K (not counted)
        cache = module(inputs_embeds=torch.empty(1, K, dim), use_cache=True).past_key_values
    return module, {"inputs_embeds": torch.empty(1, 1, dim), "past_key_values": cache,
                    "output_hidden_states": True, "return_dict": True}


def hifigan(spec, call, module):
    return module, {"spectrogram": torch.empty(1, call.dims["M"], call.dims["bins"])}


def stable_audio_dit(spec, call, module):
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    cfg = module.config
    d = call.dims
    # StableAudioPipeline: rotary over latent frames + 1 global token, dim = attention_head_dim // 2
    rotary = get_1d_rotary_pos_embed(cfg.attention_head_dim // 2, d["f"] + 1, use_real=True,
                                     repeat_interleave_real=False)
    return module, {
        "hidden_states": torch.empty(1, cfg.in_channels, d["f"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.cross_attention_dim),
        "global_hidden_states": torch.empty(1, 1, cfg.global_states_input_dim),
        "rotary_embedding": rotary,
        "return_dict": False,
    }


def stable_audio_projection(spec, call, module):
    """Two calls in the pipeline: ``encode_prompt`` (text: an identity when the dims match) and
    ``encode_duration`` (start / end seconds -> number embeddings)."""
    def run(text_hidden_states, start_seconds, end_seconds):
        module(text_hidden_states=text_hidden_states)
        return module(start_seconds=start_seconds, end_seconds=end_seconds)
    cfg = module.config
    return run, {"text_hidden_states": torch.empty(1, call.dims["T"], cfg.text_encoder_dim),
                 "start_seconds": torch.empty(1), "end_seconds": torch.empty(1)}


def oobleck(spec, call, module):
    z = torch.empty(1, module.config.decoder_input_channels, call.dims["f"])
    return module.decode, {"z": z, "return_dict": False}


BUILDERS = {
    "ClapTextModelWithProjection": clap_text_with_projection,
    "ClapModel": clap_text_features,
    "AudioUNet": audio_unet,
    "AudioLDM2UNet2DConditionModel": audioldm2_unet,
    "AudioLDM2ProjectionModel": audioldm2_projection,
    "GPT2Model": gpt2,
    "SpeechT5HifiGan": hifigan,
    "StableAudioDiTModel": stable_audio_dit,
    "StableAudioProjectionModel": stable_audio_projection,
    "AutoencoderOobleck": oobleck,
}
"""Component class name -> input builder (combined with the others in ``traced.BUILDERS``)."""

COMPOSERS = {
    ("audioldm", "unet"): _wrap_unet,
    ("musicldm", "unet"): _wrap_unet,
    ("tango", "unet"): _wrap_unet,
}
"""(family, component) -> the module the family really runs for that component."""
