"""Every number the command line reads, checked in one place: argparse ``type=`` functions.

Each function takes the text of one option and returns the value, or raises
``argparse.ArgumentTypeError`` with a one-line message that names the value and the rule;
argparse turns it into ``scaling CMD: error: argument --flag: MESSAGE`` and exit status 2
(see :class:`scaling.app.cli.Parser`). The rules:

- finite: ``nan``, ``inf`` and overflowing literals (``1e400``) are refused everywhere;
- whole numbers where a count is meant: ``1000``, ``1_000`` and ``1e6`` (an integral float, as
  the workload YAML accepts it) are read as integers; ``2.5``, ``10**400`` and ``abc`` are not;
- in range: each option has its lowest and highest plausible value, named in the message.

Lists (``--steps-list 20,50``, ``--steps-scale 1,0.5``) apply the same rule to every item.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = [
    "MAX_BATCH", "MAX_COUNT", "MAX_STEPS", "whole", "number", "csv_of", "names", "count", "steps", "frames",
    "batch", "outputs_per_prompt", "seconds", "guidance", "pue", "intensity", "repeats", "warmup", "idle_s",
    "seed", "power_w", "n_splits", "steps_scale", "settings_per_job", "minutes", "prompt_tokens", "nonempty",
]

MAX_COUNT = 10**15
"""Outputs of a fleet: a quadrillion images is beyond any deployment; more is a typo."""
MAX_STEPS = 10_000
"""Denoising steps (the rule of scaling.settings.make_setting)."""
MAX_BATCH = 4096
"""Prompts per call (and outputs per prompt): beyond this a call is not one GPU's batch; the memory
model refuses the settings below it that do not fit."""


def _fail(name: str, text: str, rule: str):
    raise argparse.ArgumentTypeError(f"`{name}` {text}: {rule}")


def _to_float(name: str, text: str, rule: str) -> float:
    try:
        value = float(str(text).strip().replace("_", ""))
    except ValueError:
        _fail(name, text, f"not a number; {rule}")
    if not math.isfinite(value):
        _fail(name, text, f"not a finite number; {rule}")
    return value


def whole(name: str, lo: int = 1, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in ``[lo, hi]``; ``1e6`` counts as 1000000 (integral), ``2.5`` does not."""
    rule = (f"it must be a whole number >= {lo}" if hi is None else f"it must be a whole number from {lo} to {hi:,}")

    def parse(text: str) -> int:
        s = str(text).strip().replace("_", "")
        try:
            value = int(s)
        except ValueError:
            value = _to_float(name, text, rule)
            if not value.is_integer():
                _fail(name, text, rule)
            value = int(value)
        if value < lo or (hi is not None and value > hi):
            _fail(name, text, rule)
        return value

    parse.__name__ = name
    return parse


def number(name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           unit: str = "") -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    u = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        rule = f"it must be a finite number{u} {'>' if lo_open else '>='} {lo:g} and <= {hi:g}"
    elif lo is not None:
        rule = f"it must be a finite number{u} {'>' if lo_open else '>='} {lo:g}"
    else:
        rule = f"it must be a finite number{u}"

    def parse(text: str) -> float:
        value = _to_float(name, text, rule)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            _fail(name, text, rule)
        if hi is not None and value > hi:
            _fail(name, text, rule)
        return value

    parse.__name__ = name
    return parse


def csv_of(item: Callable[[str], object], name: str) -> Callable[[str], list]:
    """A comma-separated list, each item read by ``item``; empty items are refused."""

    def parse(text: str) -> list:
        parts = [p.strip() for p in str(text).split(",")]
        if not parts or any(not p for p in parts):
            _fail(name, repr(text), "write a comma-separated list without empty items (e.g. 20,30,50)")
        return [item(p) for p in parts]

    parse.__name__ = name
    return parse


def names(name: str) -> Callable[[str], list[str]]:
    """A comma-separated list of names (GPUs, precisions, regions); empty items are refused."""

    def parse(text: str) -> list[str]:
        parts = [p.strip() for p in str(text).split(",")]
        if not parts or any(not p for p in parts):
            _fail(name, repr(text), "write a comma-separated list of names without empty items (e.g. a100,h100)")
        return parts

    parse.__name__ = name
    return parse


def nonempty(name: str) -> Callable[[str], str]:
    """A text that is not empty or blank (a path, a name)."""

    def parse(text: str) -> str:
        if not str(text).strip():
            _fail(name, repr(text), "it must not be empty")
        return text

    parse.__name__ = name
    return parse


# -- the options of the commands ---------------------------------------------------------------
count = whole("count", 1, MAX_COUNT)
steps = whole("steps", 1, MAX_STEPS)
frames = whole("frames", 1, 100_000)
batch = whole("batch", 1, MAX_BATCH)
outputs_per_prompt = whole("outputs_per_prompt", 1, MAX_BATCH)
prompt_tokens = whole("prompt_tokens", 1, 1_000_000)
seconds = number("seconds", 0.0, 86_400.0, lo_open=True, unit="of seconds")
guidance = number("guidance", 0.0, 1_000.0)
pue = number("pue", 1.0, 5.0)                     # the rule of scaling.carbon.check_pue
intensity = number("intensity", 0.0, 2_000.0, unit="of gCO2e/kWh")  # the dirtiest grids are about 1,100
repeats = whole("repeats", 1, 10_000)
warmup = whole("warmup", 0, 10_000)
idle_s = number("idle_s", 0.0, 3_600.0, unit="of seconds")
seed = whole("seed", 0, 2**32 - 1)
power_w = number("cpu_power_w", 0.0, 10_000.0, lo_open=True, unit="of watts")
n_splits = whole("n_splits", 2, 1_000)
steps_scale = number("steps_scale", 0.0, 100.0, lo_open=True)
settings_per_job = whole("settings_per_job", 1, 100_000)
minutes = whole("time_min", 1, 60 * 24 * 30)
array_parallelism = whole("array_parallelism", 1, 100_000)
