"""Input builders of the image components (one sample, one call, meta tensors)."""

from __future__ import annotations

import torch

from profilers.flops.traced import builder


@builder("UNet2DConditionModel")
def unet_2d(spec, call, module):
    d = call.dims
    cfg = module.config
    kwargs = {
        "sample": torch.empty(1, cfg.in_channels, d["h"], d["w"]),
        "timestep": torch.empty(1),
        "encoder_hidden_states": torch.empty(1, d["T"], cfg.cross_attention_dim),
        "return_dict": False,
    }
    return module, kwargs
