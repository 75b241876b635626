"""Workload (scaling plan) and sweep (scaling sweep) YAML files: strict types, no duplicate keys,
UTF-8, line numbers in the message. The schemas are scaling/app/workload.py and
profilers/energy/sweep.py; these cases go through the commands."""

from __future__ import annotations

import json

import pytest


def needs_torch() -> None:
    """measure and sweep need the [torch] extra; looked up, not imported (an import costs seconds)."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("torch", "diffusers", "transformers")):
        pytest.skip("needs the [torch] extra")

JOB = "jobs:\n  - model: sd2.1\n"
WORKLOADS = [
    ("", "re:mapping|empty"),
    ("- a\n- b\n", "mapping"),
    ("jobs: []\n", "jobs"),
    ("jobs: {model: sd2.1}\n", "jobs"),
    ("jobs:\n  - sd2.1\n", "re:mapping|job 1"),
    ("jobs:\n  - count: 10\n", "model"),
    ("jobs:\n  - model: sd2.1\n    colour: red\n", "colour"),
    ("jobs:\n  - model: sd2.1\n    count: -1\n", "count"),
    ("jobs:\n  - model: sd2.1\n    count: 0\n", "count"),
    ("jobs:\n  - model: sd2.1\n    count: abc\n", "count"),
    ("jobs:\n  - model: sd2.1\n    count: 2.5\n", "count"),
    ("jobs:\n  - model: sd2.1\n    count: .inf\n", "count"),
    ("jobs:\n  - model: sd2.1\n    count: 1e400\n", "count"),
    ("jobs:\n  - model: sd2.1\n    count: 10**400\n", "count"),
    ("jobs:\n  - model: sd2.1\n    count: true\n", "count"),
    ("jobs:\n  - model: sd2.1\n    steps: .inf\n", "steps"),
    ("jobs:\n  - model: sd2.1\n    steps: .nan\n", "steps"),
    ("jobs:\n  - model: sd2.1\n    steps: 0\n", "steps"),
    ("jobs:\n  - model: sd2.1\n    steps: \"20\"\n", "steps"),
    ("jobs:\n  - model: sd2.1\n    precision: 16\n", "precision"),
    ("jobs:\n  - model: sd2.1\n    precision: fp7\n", "fp7"),
    ("jobs:\n  - model: sd2.1\n    guidance: -1\n", "guidance"),
    ("jobs:\n  - model: sd2.1\n    batch: 0\n", "batch"),
    ("jobs:\n  - model: sd2.1\n    res: 0p\n", "res"),
    ("jobs:\n  - model: sd2.1\n    cfg: \"false\"\n", "cfg"),
    ("jobs:\n  - model: sd2.1\n    cfg: \"yes\"\n", "cfg"),
    ("jobs:\n  - model: [sd2.1]\n", "model"),
    ("jobs:\n  - model: nope\n", "unknown model 'nope'"),
    ("jobs:\n  - model: wan2.1\n    frames: 80\n", "4k+1"),
    ("jobs:\n  - model: sd2.1\n    model: flux-dev\n", "re:twice|duplicate"),
    ("jobs:\n  - model: sd2.1\njobs:\n  - model: flux-dev\n", "re:twice|duplicate"),
    (JOB + "regions: [[FR]]\n", "regions"),
    (JOB + "regions: [XX]\n", "XX"),
    (JOB + "gpus: [nope]\n", "unknown GPU"),
    (JOB + "pue: 0.5\n", "pue"),
    (JOB + "pue: .nan\n", "pue"),
    (JOB + "intensity: -1\n", "intensity"),
    (JOB + "intensity: .inf\n", "intensity"),
    (JOB + "law: /nonexistent/law.json\n", "law"),
    (JOB + "extra: 1\n", "extra"),
    ("jobs:\n  - model: sd2.1\n  bad indent\n", "not valid YAML"),
    ("jobs:\n\t- model: sd2.1\n", "YAML"),
]


@pytest.mark.parametrize("text,needle", [pytest.param(t, n, id=repr(t)) for t, n in WORKLOADS])
def test_a_bad_workload_is_refused_with_its_line(text, needle, refused, paths):
    path = paths["tmp"] / "workload.yaml"
    path.write_text(text, encoding="utf-8")
    err = refused(["plan", str(path)], needle)
    assert "workload.yaml" in err, "the message names the file"


def test_a_workload_that_is_not_utf8_is_refused(refused, paths):
    path = paths["tmp"] / "workload.yaml"
    path.write_bytes(b"jobs:\n  - model: sd2.1\n    name: caf\xe9\n")
    refused(["plan", str(path)], "UTF-8")


def test_count_1e6_in_a_workload_is_a_million_outputs_as_on_the_command_line(answered, paths):
    a, b = paths["tmp"] / "a.yaml", paths["tmp"] / "b.yaml"
    a.write_text("jobs:\n  - model: sd2.1\n    count: 1e6\ngpus: [h100]\n")
    b.write_text("jobs:\n  - model: sd2.1\n    count: 1000000\ngpus: [h100]\n")
    da = json.loads(answered(["plan", str(a), "--json"])[0])
    db = json.loads(answered(["plan", str(b), "--json"])[0])
    assert da["candidates"][0]["kwh"] == pytest.approx(db["candidates"][0]["kwh"])


def test_cfg_false_is_false(answered, paths):
    path = paths["tmp"] / "w.yaml"
    path.write_text("jobs:\n  - model: sd2.1\n    cfg: false\ngpus: [h100]\n")
    jobs = json.loads(answered(["plan", str(path), "--json"])[0])["jobs"]
    assert jobs and all(j["cfg"] is False for j in jobs)


SWEEP_HEAD = "out: runs.parquet\ndevice: cpu\nmeter: estimate\nprotocol: {repeats: 1, warmup: 0, idle_s: 0}\n"
SWEEPS = [
    ("", "re:mapping|empty"),
    ("- a\n", "mapping"),
    (SWEEP_HEAD, "grid"),
    (SWEEP_HEAD + "grid: []\n", "grid"),
    (SWEEP_HEAD + "grid:\n  - model: tiny:sd\n    resolution: 8\n", "resolution"),
    (SWEEP_HEAD + "grid:\n  - model: no-such-model\n", "unknown model"),
    (SWEEP_HEAD + "grid:\n  - model: tiny:sd\n    steps: .inf\n", "steps"),
    (SWEEP_HEAD + "grid:\n  - model: tiny:sd\n    steps: [1, abc]\n", "steps"),
    (SWEEP_HEAD + "grid:\n  - model: tiny:sd\n    precision: 16\n", "precision"),
    (SWEEP_HEAD + "grid:\n  - model: tiny:sd\n    cfg: \"false\"\n", "cfg"),
    (SWEEP_HEAD + "grid:\n  - model: tiny:sd\n    model: tiny:wan\n", "re:twice|duplicate"),
    (SWEEP_HEAD + "grid:\n  - model: tiny:wan\n    frames: 6\n", "frames"),
    ("out: runs.parquet\nmeter: nvlm\ngrid:\n  - model: tiny:sd\n", "`meter` 'nvlm' is unknown"),
    ("out: runs.parquet\nprotocol: {repeats: 0}\ngrid:\n  - model: tiny:sd\n", "repeats"),
    ("out: runs.parquet\nprotocol: {idle_s: -1}\ngrid:\n  - model: tiny:sd\n", "idle"),
    ("out: runs.parquet\nprotocol: {warmup: .nan}\ngrid:\n  - model: tiny:sd\n", "warmup"),
    ("out: runs.parquet\nprotocol: {colour: red}\ngrid:\n  - model: tiny:sd\n", "colour"),
    ("out: runs.parquet\ncolour: red\ngrid:\n  - model: tiny:sd\n", "colour"),
    ("out: 7\ngrid:\n  - model: tiny:sd\n", "out"),
    ("out: runs.parquet\ndevice: [cpu]\ngrid:\n  - model: tiny:sd\n", "device"),
    ("out: runs.parquet\ngrid:\n  - model: tiny:sd\n  bad indent\n", "YAML"),
]


@pytest.mark.parametrize("text,needle", [pytest.param(t, n, id=repr(t[-60:])) for t, n in SWEEPS])
def test_a_bad_sweep_file_is_refused_before_any_setting_runs(text, needle, refused, paths):
    needs_torch()
    path = paths["tmp"] / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    err = refused(["sweep", str(path), "--dry-run"], needle)
    assert "sweep.yaml" in err
    assert not (paths["tmp"] / "runs.parquet").exists()


def test_a_sweep_file_that_is_not_utf8_is_refused(refused, paths):
    path = paths["tmp"] / "sweep.yaml"
    path.write_bytes(b"out: runs.parquet\ngrid:\n  - model: tiny:sd\n# caf\xe9\n")
    refused(["sweep", str(path), "--dry-run"], "UTF-8")
