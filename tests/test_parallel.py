"""Parallel plans (scaling.parallel): parsing, the engine's rules, the default plan, the ML.ENERGY v3 runs."""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import pytest

from profilers.flops.comm import attention_shapes
from scaling.errors import InvalidSettingError
from scaling.parallel import ParallelPlan, check_plan, default_plan, parse_plan
from scaling.registry import resolve_model
from scaling.settings import make_setting

V3 = Path(__file__).resolve().parents[1] / "datasets" / "public" / "ml_energy_leaderboard_v3_h100.csv"
_DEGREES = re.compile(r"ulysses_degree=(\d+) ring_degree=(\d+)")


# -- parsing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, plan", [
    ("ulysses=2,ring=4", ParallelPlan(2, 4, 1)),
    ("ring=8", ParallelPlan(1, 8, 1)),
    (" Ulysses = 4 , CFG=2 ", ParallelPlan(4, 1, 2)),
    ("cfg=2,ring=2,ulysses=2", ParallelPlan(2, 2, 2)),
    ("ulysses=1", ParallelPlan()),
])
def test_parse_plan_reads_the_degrees(text, plan):
    assert parse_plan(text) == plan


@pytest.mark.parametrize("plan", [ParallelPlan(), ParallelPlan(2, 4), ParallelPlan(8, 1, 2), ParallelPlan(3, 5, 2)])
def test_a_plan_prints_as_text_that_parses_back_and_counts_its_gpus(plan):
    assert parse_plan(str(plan)) == plan
    assert plan.gpus == plan.ulysses * plan.ring * plan.cfg
    assert plan.sequence_degree == plan.ulysses * plan.ring


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("   ", "empty"),
    ("ulysses", "name=value"),
    ("ulysses=2;ring=2", "positive whole number"),
    ("ulysses=2,ulysses=4", "twice"),
    ("tp=2", "unknown degree 'tp'"),
    ("ulysses=0", "positive whole number"),
    ("ulysses=-1", "positive whole number"),
    ("ring=1.5", "positive whole number"),
    ("ring=abc", "positive whole number"),
    ("cfg=3", "1 or 2"),
    ("cfg=4,ulysses=2", "1 or 2"),
])
def test_parse_plan_refuses_naming_the_value_and_the_rule(text, match):
    with pytest.raises(InvalidSettingError, match=match) as info:
        parse_plan(text)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs", [{"ulysses": 0}, {"ring": -2}, {"cfg": 3}, {"ulysses": True}, {"ring": 2.0},
                                    {"cfg": 0}, {"ulysses": "2"}])
def test_a_plan_refuses_a_degree_that_is_not_a_positive_whole_number_or_a_cfg_not_1_or_2(kwargs):
    with pytest.raises(InvalidSettingError, match="parallel degree"):
        ParallelPlan(**kwargs)


# -- the rules -----------------------------------------------------------------------------------

def test_check_plan_returns_a_plan_that_follows_every_rule():
    plan = ParallelPlan(ulysses=4, ring=2, cfg=2)
    assert check_plan(plan, heads=24, seq_len=64, cfg=True, n_gpus=16) is plan


@pytest.mark.parametrize("plan, kwargs, match", [
    (ParallelPlan(ulysses=3), dict(heads=16, seq_len=48, cfg=False), r"ulysses=3 does not divide the 16 attention heads"),
    (ParallelPlan(ulysses=32), dict(heads=16, seq_len=64, cfg=False), r"ulysses=32 does not divide the 16"),
    (ParallelPlan(ring=4), dict(heads=16, seq_len=30, cfg=False), r"ulysses x ring = 4 does not divide the length 30"),
    (ParallelPlan(ulysses=2, ring=4), dict(heads=16, seq_len=36, cfg=False), r"= 8 does not divide the length 36"),
    (ParallelPlan(cfg=2), dict(heads=16, seq_len=64, cfg=False), r"cfg=2 needs classifier-free guidance"),
    (ParallelPlan(ulysses=2, ring=2), dict(heads=16, seq_len=64, cfg=False, n_gpus=8), r"runs on 4 GPUs, not 8"),
    (ParallelPlan(ulysses=2), dict(heads=16, seq_len=64, cfg=False, n_gpus=0), r"`n_gpus` is 0"),
    ("ulysses=2", dict(heads=16, seq_len=64, cfg=False), r"not a ParallelPlan"),
])
def test_check_plan_refuses_each_broken_rule_on_one_line(plan, kwargs, match):
    with pytest.raises(InvalidSettingError, match=match) as info:
        check_plan(plan, **kwargs)
    assert "\n" not in str(info.value)


def test_a_padding_engine_takes_any_sequence_length():
    plan = ParallelPlan(ulysses=2, ring=4)
    with pytest.raises(InvalidSettingError):
        check_plan(plan, heads=12, seq_len=32761, cfg=True)
    assert check_plan(plan, heads=12, seq_len=32761, cfg=True, pads=True) is plan


# -- the default plan ----------------------------------------------------------------------------

def _valid(n, cfg, heads, seq_len, pads=False):
    out = []
    for u, r, c in itertools.product(range(1, n + 1), range(1, n + 1), (1, 2)):
        if u * r * c != n:
            continue
        try:
            out.append(check_plan(ParallelPlan(u, r, c), heads=heads, seq_len=seq_len, cfg=cfg, n_gpus=n, pads=pads))
        except InvalidSettingError:
            pass
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 8])
@pytest.mark.parametrize("cfg", [True, False])
@pytest.mark.parametrize("heads, seq_len", [(16, 64), (24, 64), (12, 32760), (30, 30), (40, 90), (5, 7)])
def test_the_default_plan_prefers_cfg_parallel_then_the_largest_ulysses(n, cfg, heads, seq_len):
    valid = _valid(n, cfg, heads, seq_len)
    if not valid:
        with pytest.raises(InvalidSettingError, match=f"no parallel plan runs on {n} GPUs"):
            default_plan(n, cfg=cfg, heads=heads, seq_len=seq_len)
        return
    plan = default_plan(n, cfg=cfg, heads=heads, seq_len=seq_len)
    assert plan in valid
    best_cfg = max(p.cfg for p in valid)
    assert plan.cfg == best_cfg and (best_cfg == 1 or cfg)
    assert plan.ulysses == max(p.ulysses for p in valid if p.cfg == plan.cfg)


def test_the_default_plan_without_cfg_never_splits_the_branches():
    assert default_plan(8, cfg=False, heads=16, seq_len=64) == ParallelPlan(ulysses=8)
    assert default_plan(8, cfg=True, heads=16, seq_len=64).cfg == 2


# -- the ML.ENERGY v3 runs -----------------------------------------------------------------------

def _v3_rows():
    with V3.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _setting(row):
    spec = resolve_model(row["model"])
    frames = int(row["frames"]) if row["frames"] else None
    return spec, make_setting(spec, height=int(row["height"]), width=int(row["width"]), frames=frames,
                              steps=int(row["steps"]), batch_size=int(row["batch_size"]))


def test_every_v3_row_names_its_degrees_and_they_multiply_to_its_gpu_count():
    rows = _v3_rows()
    assert rows
    for row in rows:
        u, r = map(int, _DEGREES.search(row["notes"]).groups())
        assert u * r == int(row["gpu_count"]), row["notes"][:80]


def test_every_v3_plan_passes_the_rules_for_its_model():
    for row in _v3_rows():
        spec, setting = _setting(row)
        shapes = attention_shapes(spec, setting)
        u, r = map(int, _DEGREES.search(row["notes"]).groups())
        plan = ParallelPlan(ulysses=u, ring=r)
        assert check_plan(plan, heads=shapes.heads, seq_len=shapes.split_len, cfg=setting.cfg,
                          n_gpus=int(row["gpu_count"]), pads=shapes.pads) is plan


def test_the_rules_allow_exactly_the_sequence_parallel_splits_v3_ran():
    """The splits on 2, 4, 8 GPUs that pass the rules are the splits ML.ENERGY ran, per model:
    Wan2.1-1.3B (12 heads) has no ulysses=8, CogVideoX-2b (30 patch rows) no 4- or 8-GPU split."""
    ran: dict[str, set] = {}
    settings = {}
    for row in _v3_rows():
        ran.setdefault(row["model"], set()).add(tuple(map(int, _DEGREES.search(row["notes"]).groups())))
        settings.setdefault(row["model"], _setting(row))
    assert len(ran) == 4
    for model, splits in ran.items():
        spec, setting = settings[model]
        shapes = attention_shapes(spec, setting)
        allowed = {(p.ulysses, p.ring) for n in (1, 2, 4, 8)
                   for p in _valid(n, setting.cfg, shapes.heads, shapes.split_len, shapes.pads) if p.cfg == 1}
        assert allowed == splits, model
