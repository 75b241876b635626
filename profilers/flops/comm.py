"""Communication and per-GPU compute of a multi-GPU generation, from the attention shapes.

:func:`parallel_cost` is a pure function of the shapes of the sequence-parallel attention layers
(:class:`AttentionShapes`), a :class:`scaling.parallel.ParallelPlan` and the single-GPU FLOPs;
:func:`attention_shapes` reads those shapes off a registered model and a setting. No torch.

What each GPU **sends**, per denoising step (``s = ulysses * ring``, a *shard* is the part of a
tensor of shape (samples, tokens, heads, head_dim) one GPU holds: ``ceil(tokens / s)`` of the
tokens, all heads before the Ulysses exchange, ``heads / ulysses`` of them over ``tokens / ring``
after it; the same number of values either way):

- **Ulysses** (``ulysses`` > 1): per attention layer 4 all-to-alls, of Q, K and V before the
  attention and of its output after; in each a GPU keeps 1/ulysses of its shard and sends the
  rest: ``4 * (ulysses - 1) / ulysses * shard`` values.
- **ring** (``ring`` > 1): per attention layer K and V pass ``ring - 1`` times around the ring,
  one shard of each per pass: ``2 * (ring - 1) * shard`` values. The passes run while the GPU
  computes on the block it holds (``ring_overlaps_compute``): they cost time only where they
  take longer than that block's attention.
- **CFG parallel** (``cfg`` = 2): the two branches' noise predictions are all-gathered once per
  step; each GPU sends its own: one sample's ``noise_pred_values`` times the batch, divided by
  ``s`` where the pipeline keeps the latent sharded between steps.
- **gathers**: xDiT's PixArt, SD3 and CogVideoX pipelines keep the latent sharded for the whole
  loop and all-gather it once, before the VAE (``gather_byte``, ``(s - 1)`` shards per GPU);
  its Wan transformer gathers its output at the end of every pass instead
  (``gathers_every_step``, ``transformer_wan.py``: ``_gather_and_unpad``).

Which tokens are sharded: the latent tokens always. Text tokens in joint attention (SD3,
CogVideoX) are sharded with them only when their count divides ``s`` (xfuser 0.7.0,
``split_text_embed_in_sp``: CogVideoX ``_init_sync_pipeline``, SD3 ``_chunk_text_for_sp``);
otherwise every GPU keeps them whole and attends to them locally (the "rear" joint strategy):
they move no byte. Cross-attention to the text (PixArt, Wan) runs locally on every GPU and is
not a sequence-parallel layer (xDiT wraps only ``attn1`` there).

What each GPU **computes** (the assumption, xDiT's default without ``--use_parallel_vae``):

- the denoiser: its sequence-parallel part divided by ``ulysses * ring * cfg`` (every linear
  layer and every attention query works on the GPU's tokens only); the part every GPU repeats
  (``denoiser_replicated_flop``: text tokens kept whole, timestep embeddings) divided by ``cfg``;
- the text encoders: every GPU runs all of them (the xDiT pipelines call ``encode_prompt`` on
  every rank, then each CFG rank keeps its branch), at the same time;
- the VAE decode: one GPU (``is_dp_last_group``: the last sequence and CFG rank); the other
  ``gpus - 1`` wait.

Bytes are per GPU; one GPU's sends are what its link carries per direction, so time on the wire
is ``byte / scaling.interconnect.link_byte_per_s(gpu, plan.gpus)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scaling.errors import InvalidSettingError, ProfilerError
from scaling.parallel import ParallelPlan, check_plan
from scaling.precision import ACTIVATION_BYTE
from scaling.registry import ModelSpec
from scaling.settings import GenerationSetting
from scaling.shapes import component_calls

__all__ = ["SEQUENCE_PARALLEL_FAMILIES", "AttentionShapes", "ParallelCost", "attention_shapes", "parallel_cost"]

SEQUENCE_PARALLEL_FAMILIES = ("pixart", "sd3", "cogvideox", "wan")
"""Registry families whose xDiT sequence-parallel layout :func:`attention_shapes` knows."""


@dataclass(frozen=True)
class AttentionShapes:
    """The sequence-parallel attention of one denoiser pass, and what the engine gathers.

    ``batch`` is samples per CFG branch (the setting's outputs); ``layers`` counts the attention
    layers that run sequence-parallel per pass, ``joint_layers`` how many of them also attend to
    ``joint_text_tokens``; ``latent_values`` / ``noise_pred_values`` are one sample's latent
    (latent channels x latent sizes) and denoiser output (output channels x latent sizes);
    ``split_len`` and ``pads`` are what :func:`scaling.parallel.check_plan` checks the plan on.
    """

    batch: int
    heads: int
    head_dim: int
    tokens: int
    layers: int
    byte_per_value: float
    steps: int
    cfg: bool
    latent_values: int
    noise_pred_values: int
    split_len: int
    pads: bool = False
    joint_text_tokens: int = 0
    joint_layers: int = 0
    gathers_every_step: bool = False

    def __post_init__(self):
        for name in ("batch", "heads", "head_dim", "tokens", "layers", "steps", "latent_values",
                     "noise_pred_values", "split_len"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidSettingError(f"attention shape `{name}` is {v!r}: it must be a positive whole number")
        if not 0 <= self.joint_layers <= self.layers or self.joint_text_tokens < 0:
            raise InvalidSettingError(f"attention shapes: joint_layers {self.joint_layers} must lie in 0..layers "
                                      f"({self.layers}) and joint_text_tokens {self.joint_text_tokens} be >= 0")
        if not self.byte_per_value > 0:
            raise InvalidSettingError(f"attention shape `byte_per_value` is {self.byte_per_value!r}: it must be > 0")


@dataclass(frozen=True)
class ParallelCost:
    """Bytes one GPU sends and FLOPs it computes for one call (``*_per_step``: one denoising step).

    ``*_byte`` fields are per GPU and per call (steps x per step, plus the final latent gather);
    ``denoiser_flop_per_gpu`` and ``text_encoder_flop_per_gpu`` are what each GPU computes,
    ``decoder_flop_one_gpu`` what the one decoding GPU computes while ``idle_gpus_during_decode``
    wait.
    """

    plan: ParallelPlan
    ulysses_byte_per_step: float
    ring_byte_per_step: float
    cfg_byte_per_step: float
    gather_byte_per_step: float
    ulysses_byte: float
    ring_byte: float
    cfg_byte: float
    gather_byte: float
    ring_overlaps_compute: bool
    denoiser_flop_per_gpu: float
    text_encoder_flop_per_gpu: float
    decoder_flop_one_gpu: float
    idle_gpus_during_decode: int

    @property
    def comm_byte_per_step(self) -> float:
        return self.ulysses_byte_per_step + self.ring_byte_per_step + self.cfg_byte_per_step + self.gather_byte_per_step

    @property
    def comm_byte(self) -> float:
        """Everything one GPU sends in one call."""
        return self.ulysses_byte + self.ring_byte + self.cfg_byte + self.gather_byte

    @property
    def all_gpus_flop(self) -> float:
        """FLOPs summed over the GPUs (repeated work counted on every GPU that does it)."""
        return self.plan.gpus * (self.denoiser_flop_per_gpu + self.text_encoder_flop_per_gpu) + self.decoder_flop_one_gpu


def parallel_cost(shapes: AttentionShapes, plan: ParallelPlan, *, denoiser_flop: float = 0.0,
                  text_encoder_flop: float = 0.0, decoder_flop: float = 0.0,
                  denoiser_replicated_flop: float = 0.0) -> ParallelCost:
    """Bytes and per-GPU FLOPs of one call under ``plan`` (the rules of the module doc).

    The FLOPs are the single-GPU FLOPs of one call (all steps, both CFG branches), by role;
    ``denoiser_replicated_flop`` is the part of ``denoiser_flop`` every GPU of a branch repeats.

    Raises
    ------
    InvalidSettingError
        If the plan breaks a rule of :func:`scaling.parallel.check_plan` for these shapes.
    ProfilerError
        If a FLOP count is negative or the replicated part exceeds the denoiser's.
    """
    check_plan(plan, heads=shapes.heads, seq_len=shapes.split_len, cfg=shapes.cfg, pads=shapes.pads)
    for name, v in (("denoiser_flop", denoiser_flop), ("text_encoder_flop", text_encoder_flop),
                    ("decoder_flop", decoder_flop), ("denoiser_replicated_flop", denoiser_replicated_flop)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ProfilerError(f"`{name}` is {v!r}: a FLOP count must be a finite number >= 0")
    if denoiser_replicated_flop > denoiser_flop:
        raise ProfilerError(f"`denoiser_replicated_flop` {denoiser_replicated_flop:g} exceeds `denoiser_flop` "
                            f"{denoiser_flop:g}: the repeated part is a part of the denoiser")

    s, u, r = plan.sequence_degree, plan.ulysses, plan.ring
    bpv = shapes.byte_per_value
    # samples one GPU runs per step: both branches unless CFG parallel gives it one
    samples = shapes.batch * (2 if shapes.cfg else 1) // plan.cfg
    text_sharded = shapes.joint_text_tokens if shapes.joint_text_tokens % s == 0 else 0
    head_values = shapes.heads * shapes.head_dim
    shard_plain = samples * math.ceil(shapes.tokens / s) * head_values
    shard_joint = samples * (math.ceil(shapes.tokens / s) + text_sharded // s) * head_values
    shard_values = (shapes.layers - shapes.joint_layers) * shard_plain + shapes.joint_layers * shard_joint

    ulysses_step = 4 * (u - 1) / u * shard_values * bpv
    ring_step = 2 * (r - 1) * shard_values * bpv
    noise_shard = shapes.noise_pred_values if shapes.gathers_every_step else shapes.noise_pred_values / s
    cfg_step = (plan.cfg - 1) * shapes.batch * noise_shard * bpv
    per_token = shapes.noise_pred_values / shapes.tokens
    gather_step = ((s - 1) * samples * math.ceil(shapes.tokens / s) * per_token * bpv
                   if shapes.gathers_every_step else 0.0)
    final_gather = 0.0 if shapes.gathers_every_step else (s - 1) * shapes.batch * shapes.latent_values / s * bpv

    steps = shapes.steps
    parallel_part = denoiser_flop - denoiser_replicated_flop
    return ParallelCost(
        plan=plan,
        ulysses_byte_per_step=ulysses_step,
        ring_byte_per_step=ring_step,
        cfg_byte_per_step=cfg_step,
        gather_byte_per_step=gather_step,
        ulysses_byte=ulysses_step * steps,
        ring_byte=ring_step * steps,
        cfg_byte=cfg_step * steps,
        gather_byte=gather_step * steps + final_gather,
        ring_overlaps_compute=r > 1,
        denoiser_flop_per_gpu=parallel_part / (s * plan.cfg) + denoiser_replicated_flop / plan.cfg,
        text_encoder_flop_per_gpu=float(text_encoder_flop),
        decoder_flop_one_gpu=float(decoder_flop),
        idle_gpus_during_decode=plan.gpus - 1,
    )


def attention_shapes(spec: ModelSpec, setting: GenerationSetting) -> AttentionShapes:
    """The sequence-parallel attention shapes of ``spec`` at ``setting``, as xDiT lays them out.

    Layers per family (from the transformer config): PixArt ``num_layers`` self-attentions;
    SD3 ``num_layers`` joint attentions plus one image self-attention per ``dual_attention_layers``
    entry (SD3.5's ``attn2``); CogVideoX ``num_layers`` joint attentions; Wan ``num_layers``
    self-attentions. The length the engine splits: the latent's patch rows (PixArt, SD3,
    CogVideoX), the whole padded token sequence (Wan). Tokens and latent sizes come from the
    family's shape function (:mod:`scaling.shapes`, PixArt at its aspect-ratio bin); bytes per
    value from :data:`scaling.precision.ACTIVATION_BYTE`.

    Raises
    ------
    InvalidSettingError
        If the model's family is not one of :data:`SEQUENCE_PARALLEL_FAMILIES`.
    """
    if spec.family not in SEQUENCE_PARALLEL_FAMILIES:
        raise InvalidSettingError(f"{spec.id}: the sequence-parallel layout is known for the families "
                                  f"{', '.join(SEQUENCE_PARALLEL_FAMILIES)}, not {spec.family!r}")
    call = next(c for c in component_calls(spec, setting) if c.role == "denoiser")
    config = spec.components[call.component].config
    d = call.dims
    channels = spec.pipeline["latent_channels"]
    out_channels = config.get("out_channels") or channels
    patch = spec.pipeline["patch_size"]
    latent = d["h"] * d["w"] * d.get("f", 1)
    layers, joint_layers, joint_text = config["num_layers"], 0, 0
    pads = gathers = False
    if spec.family == "wan":
        pt, ph, pw = patch
        tokens = (d["f"] // pt) * (d["h"] // ph) * (d["w"] // pw)
        split_len, pads, gathers = tokens, True, True
    else:
        tokens = d.get("f", 1) * (d["h"] // patch) * (d["w"] // patch)
        split_len = d["h"] // patch
        if spec.family in ("sd3", "cogvideox"):
            joint_layers, joint_text = layers, d["T"]
        if spec.family == "sd3":
            layers += len(config.get("dual_attention_layers") or ())
    return AttentionShapes(
        batch=setting.n_outputs, heads=config["num_attention_heads"], head_dim=config["attention_head_dim"],
        tokens=tokens, layers=layers, byte_per_value=ACTIVATION_BYTE[setting.precision], steps=setting.steps,
        cfg=setting.cfg, latent_values=channels * latent, noise_pred_values=out_channels * latent,
        split_len=split_len, pads=pads, joint_text_tokens=joint_text, joint_layers=joint_layers,
        gathers_every_step=gathers,
    )
