"""Communication bytes and per-GPU compute of a multi-GPU generation (profilers.flops.comm)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from profilers.flops.comm import SEQUENCE_PARALLEL_FAMILIES, AttentionShapes, attention_shapes, parallel_cost
from profilers.flops.profile import profile
from scaling.errors import InvalidSettingError, ProfilerError
from scaling.parallel import ParallelPlan
from scaling.precision import ACTIVATION_BYTE
from scaling.registry import list_models, resolve_model
from scaling.settings import make_setting
from scaling.shapes import component_calls

ROOT = Path(__file__).resolve().parents[1]

# A 4x4-token latent (4 patch rows), 4 heads of 8, 2 attention layers, 3 steps, 2 bytes per value.
SMALL = AttentionShapes(batch=1, heads=4, head_dim=8, tokens=16, layers=2, byte_per_value=2.0, steps=3, cfg=False,
                        latent_values=64, noise_pred_values=64, split_len=4)


# -- one small case per strategy, by hand --------------------------------------------------------

def test_ulysses_bytes_by_hand():
    cost = parallel_cost(SMALL, ParallelPlan(ulysses=2))
    shard = 1 * (16 // 2) * 4 * 8                      # samples x tokens/2 x heads x head_dim = 256 values
    per_layer = 4 * (1 / 2) * shard * 2.0               # 4 all-to-alls, half of the shard leaves, 2 B each
    assert cost.ulysses_byte_per_step == 2 * per_layer == 2048
    assert cost.ulysses_byte == 3 * 2048
    assert cost.ring_byte == cost.cfg_byte == cost.gather_byte_per_step == 0
    assert cost.gather_byte == (2 - 1) * 1 * 64 / 2 * 2.0  # the latent gathered once, before the VAE
    assert cost.comm_byte == cost.ulysses_byte + cost.gather_byte
    assert not cost.ring_overlaps_compute


def test_ring_bytes_by_hand():
    cost = parallel_cost(SMALL, ParallelPlan(ring=4))
    shard = 1 * (16 // 4) * 4 * 8                      # 128 values of K (and as many of V)
    per_layer = 2 * (4 - 1) * shard * 2.0               # K and V, 3 passes, 2 B each = 1536 B
    assert cost.ring_byte_per_step == 2 * per_layer == 3072
    assert cost.ulysses_byte == 0 and cost.ring_overlaps_compute


def test_usp_shards_over_both_degrees():
    cost = parallel_cost(SMALL, ParallelPlan(ulysses=2, ring=2))
    shard = 1 * (16 // 4) * 4 * 8
    assert cost.ulysses_byte_per_step == 2 * 4 * (1 / 2) * shard * 2.0
    assert cost.ring_byte_per_step == 2 * 2 * (2 - 1) * shard * 2.0


def test_cfg_parallel_bytes_by_hand():
    shapes = dataclasses.replace(SMALL, cfg=True)
    cost = parallel_cost(shapes, ParallelPlan(cfg=2))
    assert cost.cfg_byte_per_step == 1 * 64 * 2.0       # each GPU sends its branch's noise prediction once
    assert cost.cfg_byte == 3 * 128
    assert cost.ulysses_byte == cost.ring_byte == cost.gather_byte == 0
    split = parallel_cost(shapes, ParallelPlan(ulysses=2, cfg=2))
    assert split.cfg_byte_per_step == 1 * 64 / 2 * 2.0  # the latent stays sharded: half of it
    # one branch per GPU: the Ulysses shard holds 1 sample, not the 2 of CFG on one GPU
    both = parallel_cost(shapes, ParallelPlan(ulysses=2))
    assert both.ulysses_byte_per_step == 2 * split.ulysses_byte_per_step


def test_a_transformer_that_gathers_its_output_every_pass():
    shapes = dataclasses.replace(SMALL, gathers_every_step=True, pads=True, split_len=16)
    cost = parallel_cost(shapes, ParallelPlan(ulysses=2))
    assert cost.gather_byte_per_step == (2 - 1) * 1 * (16 // 2) * (64 / 16) * 2.0
    assert cost.gather_byte == 3 * cost.gather_byte_per_step  # and nothing left to gather before the VAE


def test_joint_text_is_sharded_only_when_its_count_divides_the_degree():
    base = dict(joint_layers=2)
    kept = parallel_cost(dataclasses.replace(SMALL, joint_text_tokens=3, **base), ParallelPlan(ulysses=2))
    shared = parallel_cost(dataclasses.replace(SMALL, joint_text_tokens=4, **base), ParallelPlan(ulysses=2))
    assert kept.ulysses_byte_per_step == parallel_cost(SMALL, ParallelPlan(ulysses=2)).ulysses_byte_per_step
    assert shared.ulysses_byte_per_step == 2 * 4 * (1 / 2) * (1 * (8 + 2) * 4 * 8) * 2.0


def test_one_gpu_moves_nothing():
    cost = parallel_cost(dataclasses.replace(SMALL, cfg=True), ParallelPlan(), denoiser_flop=1e12)
    assert cost.comm_byte == cost.comm_byte_per_step == 0
    assert cost.denoiser_flop_per_gpu == 1e12 and cost.idle_gpus_during_decode == 0


# -- scaling laws --------------------------------------------------------------------------------

WIDE = dataclasses.replace(SMALL, heads=16, tokens=64 * 64, split_len=64, layers=3)


@pytest.mark.parametrize("u", [2, 4, 8, 16])
def test_ulysses_bytes_over_all_gpus_grow_as_u_minus_1_over_u(u):
    one = parallel_cost(WIDE, ParallelPlan(ulysses=2))
    cost = parallel_cost(WIDE, ParallelPlan(ulysses=u))
    total, total_2 = cost.ulysses_byte_per_step * u, one.ulysses_byte_per_step * 2
    assert total / total_2 == pytest.approx(((u - 1) / u) / (1 / 2))


@pytest.mark.parametrize("r", [2, 4, 8, 16])
def test_ring_bytes_over_all_gpus_grow_as_r_minus_1(r):
    one = parallel_cost(WIDE, ParallelPlan(ring=2))
    cost = parallel_cost(WIDE, ParallelPlan(ring=r))
    assert cost.ring_byte_per_step * r / (one.ring_byte_per_step * 2) == pytest.approx(r - 1)


def test_bytes_are_linear_in_batch_layers_and_steps_and_in_bytes_per_value():
    base = parallel_cost(WIDE, ParallelPlan(ulysses=2, ring=2)).comm_byte
    for field, k in (("batch", 3), ("byte_per_value", 2.0)):
        assert parallel_cost(dataclasses.replace(WIDE, **{field: getattr(WIDE, field) * k}),
                             ParallelPlan(ulysses=2, ring=2)).comm_byte == pytest.approx(base * k)
    double_steps = parallel_cost(dataclasses.replace(WIDE, steps=WIDE.steps * 2), ParallelPlan(ulysses=2, ring=2))
    assert double_steps.comm_byte - double_steps.gather_byte == pytest.approx(2 * (base - double_steps.gather_byte))


# -- compute share -------------------------------------------------------------------------------

PLANS = [ParallelPlan(u, r, c) for u in (1, 2, 4, 8) for r in (1, 2, 4) for c in (1, 2) if u * r <= 16]


@pytest.mark.parametrize("plan", PLANS, ids=str)
def test_the_shards_add_up_to_the_single_gpu_flops(plan):
    shapes = dataclasses.replace(WIDE, cfg=True)
    flop, repeated = 7.25e15, 0.5e15
    cost = parallel_cost(shapes, plan, denoiser_flop=flop, text_encoder_flop=3e12, decoder_flop=9e13)
    assert cost.denoiser_flop_per_gpu * plan.gpus == pytest.approx(flop)
    with_rep = parallel_cost(shapes, plan, denoiser_flop=flop, denoiser_replicated_flop=repeated)
    assert with_rep.denoiser_flop_per_gpu * plan.gpus == pytest.approx(flop - repeated + repeated * plan.sequence_degree)
    assert cost.text_encoder_flop_per_gpu == 3e12 and cost.decoder_flop_one_gpu == 9e13
    assert cost.idle_gpus_during_decode == plan.gpus - 1
    assert cost.all_gpus_flop == pytest.approx(flop + plan.gpus * 3e12 + 9e13)


@pytest.mark.parametrize("kwargs, match", [
    (dict(denoiser_flop=-1.0), "denoiser_flop"),
    (dict(decoder_flop=float("nan")), "decoder_flop"),
    (dict(denoiser_flop=1.0, denoiser_replicated_flop=2.0), "exceeds"),
])
def test_flop_counts_that_cannot_be_trusted_are_refused(kwargs, match):
    with pytest.raises(ProfilerError, match=match):
        parallel_cost(SMALL, ParallelPlan(ulysses=2), **kwargs)


def test_the_cost_checks_the_plan_first():
    with pytest.raises(InvalidSettingError, match="ulysses=3"):
        parallel_cost(SMALL, ParallelPlan(ulysses=3))
    with pytest.raises(InvalidSettingError, match="cfg=2 needs"):
        parallel_cost(SMALL, ParallelPlan(cfg=2))


def test_shapes_refuse_impossible_sizes():
    with pytest.raises(InvalidSettingError, match="`tokens`"):
        dataclasses.replace(SMALL, tokens=0)
    with pytest.raises(InvalidSettingError, match="joint_layers"):
        dataclasses.replace(SMALL, joint_layers=3)


# -- the adapter on the registered models ---------------------------------------------------------

V3_MODELS = ("pixart-sigma", "sd3.5-medium", "wan2.1-t2v-1.3b", "cogvideox-2b")


@pytest.mark.parametrize("key", [m.key for m in list_models() if m.family in SEQUENCE_PARALLEL_FAMILIES])
def test_attention_shapes_agree_with_the_shape_functions_and_the_config(key):
    spec = resolve_model(key)
    setting = make_setting(spec, precision="fp32")
    shapes = attention_shapes(spec, setting)
    call = next(c for c in component_calls(spec, setting) if c.role == "denoiser")
    config = spec.components[call.component].config
    assert shapes.tokens + shapes.joint_text_tokens == call.features["L"] + (call.dims["T"] if spec.family == "sd3" else 0)
    assert (shapes.heads, shapes.head_dim) == (config["num_attention_heads"], config["attention_head_dim"])
    assert shapes.layers == config["num_layers"] + len(config.get("dual_attention_layers") or ())
    assert shapes.byte_per_value == ACTIVATION_BYTE["fp32"]
    assert (shapes.batch, shapes.steps, shapes.cfg) == (setting.n_outputs, setting.steps, setting.cfg)
    if shapes.pads:
        assert shapes.split_len == shapes.tokens
    else:
        assert shapes.tokens % shapes.split_len == 0  # whole rows of patches


@pytest.mark.parametrize("key", V3_MODELS)
def test_a_registered_model_splits_its_denoiser_flops_over_the_gpus(key):
    spec = resolve_model(key)
    setting = make_setting(spec)
    roles = profile(setting).by_role()
    shapes = attention_shapes(spec, setting)
    plan = ParallelPlan(ulysses=2)
    cost = parallel_cost(shapes, plan, denoiser_flop=roles["denoiser"], text_encoder_flop=roles["text_encoder"],
                         decoder_flop=roles["decoder"])
    assert cost.denoiser_flop_per_gpu * 2 == pytest.approx(roles["denoiser"])
    assert cost.comm_byte > 0


def test_a_family_without_a_known_layout_is_refused():
    spec = next(m for m in list_models() if m.family not in SEQUENCE_PARALLEL_FAMILIES)
    with pytest.raises(InvalidSettingError, match="sequence-parallel layout"):
        attention_shapes(spec, make_setting(spec))


def test_the_module_imports_no_torch():
    code = (
        "import sys\n"
        "from profilers.flops.comm import attention_shapes, parallel_cost\n"
        "from scaling import interconnect, parallel, registry, settings\n"
        "spec = registry.resolve_model('wan2.1-t2v-1.3b')\n"
        "c = parallel_cost(attention_shapes(spec, settings.make_setting(spec)), parallel.parse_plan('ulysses=2,ring=2'))\n"
        "t = c.comm_byte / interconnect.link_byte_per_s('h100', c.plan.gpus)\n"
        "assert t > 0\n"
        "print(','.join(m for m in ('torch', 'diffusers', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
