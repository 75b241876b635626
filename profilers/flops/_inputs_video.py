"""Input builders of the video components (one sample, one call, meta tensors)."""

from __future__ import annotations

import torch

from profilers.flops.traced import builder


@builder("WanTransformer3DModel")
def wan_transformer(spec, call, module):
    d = call.dims
    cfg = module.config
    return module, {
        "hidden_states": torch.empty(1, cfg.in_channels, d["f"], d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.text_dim),
        "return_dict": False,
    }


@builder("AutoencoderKLWan")
def wan_vae(spec, call, module):
    d = call.dims
    z = torch.empty(1, module.config.z_dim, d["f"], d["h"], d["w"])
    return module.decode, {"z": z, "return_dict": False}
