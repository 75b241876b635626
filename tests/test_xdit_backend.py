"""The xDiT backend (profilers.energy.xdit) against a fake ``xfuser`` at its boundary.

Real xDiT needs several CUDA GPUs, NCCL and the ``xfuser`` package; none is here. The fake
below stands where ``xfuser`` would: it parses the arguments the backend hands it, builds a
parallel config from them the way xfuser 0.7 does (degrees from the flags, cfg 2 with
``--use_cfg_parallel``), and records the pipelines built and the calls made.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from profilers.energy.meters import Measurement
from profilers.energy.xdit import (XFUSER_WRAPPERS, RankInfo, build_xdit_pipeline, import_xfuser, measure_call,
                                   xdit_rows, xfuser_args)
from scaling.app.parallel_features import plan_from_notes
from scaling.errors import InvalidSettingError, MeterError, MissingDependencyError, ProfilerError
from scaling.parallel import ParallelPlan
from scaling.registry import resolve_model
from scaling.runs import validate_runs
from scaling.settings import make_setting

ROOT = Path(__file__).resolve().parents[1]


def fake_xfuser(world_size: int):
    """A module object with the names the backend uses, recording what happens to it."""
    xf = types.ModuleType("xfuser")
    xf.built, xf.calls = [], []

    class FlexibleArgumentParser(argparse.ArgumentParser):
        pass

    class EngineArgs:
        @staticmethod
        def add_cli_args(parser):
            for flag in ("--model", "--height", "--width", "--num_inference_steps", "--ulysses_degree", "--ring_degree",
                         "--warmup_steps", "--num_frames", "--guidance_scale"):
                parser.add_argument(flag)
            parser.add_argument("--use_cfg_parallel", action="store_true")
            return parser

        @staticmethod
        def from_cli_args(args):
            return EngineArgs.Made(args)

        class Made:
            def __init__(self, args):
                self.args = args

            def create_config(self):
                a = self.args
                cfg = 2 if a.use_cfg_parallel else 1
                pc = types.SimpleNamespace(ulysses_degree=int(a.ulysses_degree), ring_degree=int(a.ring_degree),
                                           cfg_degree=cfg, world_size=world_size)
                return types.SimpleNamespace(parallel_config=pc, args=a), types.SimpleNamespace(kind="input")

    class Pipe:
        def __init__(self, name, kwargs):
            self.name, self.kwargs, self.device, self.prepared = name, kwargs, None, None
            xf.built.append(self)

        def to(self, device):
            self.device = device
            return self

        def prepare_run(self, input_config):
            self.prepared = input_config

        def __call__(self, **kw):
            xf.calls.append(kw)
            return "images"

    def wrapper(name):
        return type(name, (), {"from_pretrained": staticmethod(lambda **kw: Pipe(name, kw))})

    for name in XFUSER_WRAPPERS.values():
        setattr(xf, name, wrapper(name))

    class xDiTParallel:  # noqa: N801 - xfuser's name
        def __init__(self, pipe, engine_config, input_config):
            self.inner, self.engine_config = pipe, engine_config
            pipe.prepare_run(input_config)

        def __call__(self, **kw):
            return self.inner(**kw)

    xf.xDiTParallel = xDiTParallel
    xf.xFuserArgs = EngineArgs
    xf.config = types.SimpleNamespace(FlexibleArgumentParser=FlexibleArgumentParser)
    xf.__version__ = "0.7.0-fake"
    return xf


class FakeDiffusers:
    def __getattr__(self, name):
        return type(name, (), {"from_pretrained": staticmethod(lambda weights, **kw: _DiffusersPipe(name, weights))})


class _DiffusersPipe:
    def __init__(self, name, weights):
        self.name, self.weights, self.prepared, self.calls = name, weights, None, []

    def to(self, device):
        self.device = device
        return self

    def prepare_run(self, input_config):
        self.prepared = input_config

    def __call__(self, **kw):
        self.calls.append(kw)


FAKE_TORCH = types.SimpleNamespace(bfloat16="bf16-dtype", float16="fp16-dtype", float32="fp32-dtype")


def _rank(rank=0, world=2):
    return RankInfo(rank=rank, world_size=world, local_rank=rank, local_world_size=world)


# -- building -------------------------------------------------------------------------------------

def test_the_plan_reaches_xdit_as_its_own_flags():
    spec = resolve_model("cogvideox-2b")
    args = xfuser_args(spec, make_setting(spec, batch_size=2), ParallelPlan(ulysses=1, ring=2, cfg=2), "/w/cog")
    assert args[args.index("--ulysses_degree") + 1] == "1" and args[args.index("--ring_degree") + 1] == "2"
    assert "--use_cfg_parallel" in args and args[args.index("--model") + 1] == "/w/cog"
    assert args[args.index("--num_frames") + 1] == str(make_setting(spec).frames)


def test_a_pipeline_with_an_xdit_wrapper_is_built_by_that_wrapper_on_the_ranks_gpu():
    xf = fake_xfuser(world_size=4)
    spec = resolve_model("pixart-sigma")
    built = build_xdit_pipeline(spec, make_setting(spec), ParallelPlan(ulysses=2, ring=2), "/w/pixart", _rank(3, 4),
                                xfuser=xf, torch=FAKE_TORCH)
    assert built.wrapper == "xFuserPixArtSigmaPipeline" and xf.built == [built.pipe]
    assert built.pipe.kwargs == {"pretrained_model_name_or_path": "/w/pixart", "engine_config": built.engine_config,
                                 "torch_dtype": "bf16-dtype"}
    assert built.pipe.device == "cuda:3" and built.pipe.prepared is built.input_config


def test_a_pipeline_without_a_wrapper_goes_through_xditparallel():
    xf = fake_xfuser(world_size=8)
    spec = resolve_model("wan2.1-t2v-1.3b")
    built = build_xdit_pipeline(spec, make_setting(spec), ParallelPlan(ulysses=4, ring=2), "/w/wan", _rank(0, 8),
                                xfuser=xf, torch=FAKE_TORCH, diffusers=FakeDiffusers())
    assert built.wrapper == "xDiTParallel" and built.pipe.inner.name == "WanPipeline"
    assert built.pipe.inner.weights == "/w/wan" and built.pipe.inner.prepared is built.input_config


def test_a_world_that_is_not_the_plans_size_or_a_config_that_differs_is_refused():
    spec = resolve_model("pixart-sigma")
    setting = make_setting(spec)
    with pytest.raises(ProfilerError, match="runs on 4 GPUs but torchrun started 2 ranks"):
        build_xdit_pipeline(spec, setting, ParallelPlan(ulysses=4), "/w", _rank(0, 2), xfuser=fake_xfuser(2),
                            torch=FAKE_TORCH)
    xf = fake_xfuser(2)
    made = xf.xFuserArgs.Made.create_config

    def wrong(self):
        engine, inp = made(self)
        engine.parallel_config.ring_degree = 2
        return engine, inp

    xf.xFuserArgs.Made.create_config = wrong
    with pytest.raises(ProfilerError, match="xDiT built ulysses=2,ring=2,cfg=1 for the plan ulysses=2,ring=1,cfg=1"):
        build_xdit_pipeline(spec, setting, ParallelPlan(ulysses=2), "/w", _rank(0, 2), xfuser=xf, torch=FAKE_TORCH)
    with pytest.raises(InvalidSettingError, match="the xDiT backend runs bf16"):
        build_xdit_pipeline(spec, make_setting(spec, precision="fp8"), ParallelPlan(ulysses=2), "/w", _rank(),
                            xfuser=fake_xfuser(2), torch=FAKE_TORCH)


def test_without_xfuser_one_line_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "xfuser", None)
    with pytest.raises(MissingDependencyError, match="pip install xfuser") as err:
        import_xfuser()
    assert "\n" not in str(err.value)


def test_the_module_imports_neither_xfuser_nor_torch():
    code = ("import sys, profilers.energy.xdit; "
            "print(sorted(m for m in ('xfuser', 'torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_torchrun_variables_are_read_and_several_nodes_refused():
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4"}
    assert RankInfo.from_env(env) == RankInfo(1, 4, 1, 4)
    with pytest.raises(ProfilerError, match="spans 2 nodes"):
        RankInfo.from_env({**env, "WORLD_SIZE": "8"})
    with pytest.raises(ProfilerError, match="runs under torchrun: RANK is not set"):
        RankInfo.from_env({})


# -- measuring and the rows -----------------------------------------------------------------------

class FakeMeter:
    """Two GPUs, fixed energies: what a meter over gpu_indices [0, 1] returns."""

    def __init__(self):
        self.events = []

    def begin_window(self, key):
        self.events.append(("begin", key))

    def end_window(self, key):
        self.events.append(("end", key))
        return Measurement(name=key, time_s=2.0, energy_gpu_j=1500.0, energy_gpu_counter_j=1500.0,
                           energy_gpu_sampled_j=1490.0, energy_cpu_j=None, energy_ram_j=None,
                           per_gpu_j={0: 800.0, 1: 700.0}, samples=40, estimated={"energy_gpu_j": False},
                           meter="zeus(nvml)", notes="")


def test_rank_zero_measures_all_gpus_between_two_barriers_and_the_others_only_run():
    events = []
    meter = FakeMeter()
    m = measure_call(lambda: events.append("call"), rank=_rank(0), meter=meter,
                     barrier=lambda: events.append("barrier"), synchronize=lambda: events.append("sync"))
    assert events == ["barrier", "call", "sync", "barrier"] and meter.events == [("begin", "total"), ("end", "total")]
    assert m.per_gpu_j == {0: 800.0, 1: 700.0}
    other, events[:] = FakeMeter(), []
    assert measure_call(lambda: events.append("call"), rank=_rank(1), meter=other, barrier=lambda: events.append("barrier"),
                        synchronize=lambda: None) is None
    assert other.events == [] and events == ["barrier", "call", "barrier"]


def test_one_row_per_call_sums_the_gpus_and_keeps_each_one_and_the_plan():
    spec = resolve_model("pixart-sigma")
    setting = make_setting(spec, batch_size=2)
    plan = ParallelPlan(ulysses=2)
    m = FakeMeter().end_window("total")
    rows = xdit_rows(spec, setting, plan, m, run_id="xdit:test:0", started=datetime.now(timezone.utc), repeat=0,
                     gpu="NVIDIA H100 80GB HBM3", gpu_key="h100-sxm", warmup=1, flops={"denoiser": 1e15},
                     xfuser_version="0.7.0-fake")
    assert len(rows) == 1
    row = rows[0]
    assert row["gpu_count"] == 2 and row["energy_gpu_j"] == 1500.0 and row["phase"] == "total"
    assert "cuda:0=800 J, cuda:1=700 J" in row["notes"] and plan_from_notes(row["notes"]) == plan
    table = validate_runs(pd.DataFrame(rows), "xdit rows", fill_defaults=True)
    assert int(table["gpu_count"].iloc[0]) == 2 and table["model_key"].iloc[0] == "pixart-sigma"
    with pytest.raises(MeterError, match=r"measured GPUs \[0, 1\] of a call on 4 GPUs"):
        xdit_rows(spec, setting, ParallelPlan(ulysses=4), m, run_id="x", started=datetime.now(timezone.utc), repeat=0,
                  gpu=None, gpu_key=None, warmup=0, flops={}, xfuser_version="?")
