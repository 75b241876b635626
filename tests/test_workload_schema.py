"""The workload YAML of `scaling plan` and the sweep YAML of `scaling sweep`: strict schemas
(scaling/app/workload.py, profilers/energy/sweep.py, read by scaling/_inputs.py).

Every YAML case of issue 15: a quoted "false" for `cfg` is refused (never read as true),
`steps: .inf`, `precision: 16`, `regions: [[FR]]`, non-UTF-8 text and a key given twice are one
line with the file's line number; `count: 1e6` reads as 1,000,000 and says so.
"""

from __future__ import annotations

import textwrap

import pytest

from scaling.app.cli import main
from scaling.app.workload import load_workload
from scaling.errors import WorkloadError

JOBS = """\
jobs:
  - model: sd2.1
    count: 10
  - model: flux-dev
    steps: 28
{job2}    count: 1000
{top}"""


def _write(tmp_path, text: str, name: str = "workload.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path, needle: str, line: int) -> str:
    with pytest.raises(WorkloadError) as err:
        load_workload(path)
    msg = str(err.value)
    assert f"{path}:{line}: " in msg, msg
    assert needle in msg and "\n" not in msg, msg
    return msg


# (job 2 text, top-level text, expected needle, expected line)
BAD = {
    "a quoted false": ('cfg: "false"\n', "", "`cfg` is 'false' (text); rule: true or false", 6),
    "a quoted true": ("cfg: 'true'\n", "", "`cfg` is 'true' (text)", 6),
    "yes is text, not a boolean": ("cfg: yes\n", "", "`cfg` is 'yes' (text)", 6),
    "a number for cfg": ("cfg: 0\n", "", "`cfg` is 0", 6),
    "steps .inf": ("", "", "`steps` is inf; rule: a finite whole number", 5),
    "precision 16": ("precision: 16\n", "", "`precision` is 16; rule: a precision name", 6),
    "an unknown precision": ("precision: fp7\n", "", "`precision` is 'fp7' (text); rule: a precision name", 6),
    "regions [[FR]]": ("", "regions: [[FR]]\n", "`regions` is [['FR']]; rule: a name (text), not a list", 7),
    "gpus [[h100]]": ("", "gpus: [[h100]]\n", "`gpus` is [['h100']]", 7),
    "a fractional count": ("", "", "`count` is 1.5; rule: a whole number", 6),
    "a zero count": ("", "", "`count` is 0; rule: a whole number >= 1", 6),
    "an infinite count": ("", "", "`count` is inf", 6),
    "a quoted count": ("", "", "`count` is '1000' (text)", 6),
    "an absurd count": ("", "", "a whole number up to", 6),
    "a key given twice": ("steps: 30\n", "", "key `steps` is given twice (lines 5 and 6)", 6),
    "an unknown job key": ("colour: red\n", "", "job 2: unknown key `colour`; allowed:", 6),
    "an unknown top key": ("", "gpu: [h100]\n", "unknown key `gpu`; allowed:", 7),
    "pue below 1": ("", "pue: 0.5\n", "`pue` is 0.5; rule: a power usage effectiveness", 7),
    "intensity .nan": ("", "intensity: .nan\n", "`intensity` is nan", 7),
    "batch and batch_size": ("batch: 2\nbatch_size: 2\n", "", "job 2: give `batch` or `batch_size`, not both", 4),
    "a list for res": ("res: [512]\n", "", "`res` is [512]; rule: a resolution", 6),
    "a number for a name": ("name: 12\n", "", "`name` is 12; rule: a name (text)", 6),
    "seconds negative": ("seconds: -3\n", "", "`seconds` is -3", 6),
}
COUNTS = {"a fractional count": "1.5", "a zero count": "0", "an infinite count": "1e400",
          "a quoted count": '"1000"', "an absurd count": "1" + "0" * 30}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_workload_value_is_one_line_with_its_line(tmp_path, case):
    job2, top, needle, line = BAD[case]
    text = JOBS.format(job2=textwrap.indent(job2, "    "), top=top)
    if case == "steps .inf":
        text = text.replace("steps: 28", "steps: .inf")
    if case in COUNTS:
        text = text.replace("count: 1000", f"count: {COUNTS[case]}")
    msg = _refused(_write(tmp_path, text), needle, line)
    if (job2 or case in COUNTS or case == "steps .inf") and case != "a key given twice":
        assert ": job 2: " in msg, msg


@pytest.mark.parametrize("case", ["a quoted false", "steps .inf", "precision 16", "regions [[FR]]",
                                  "a key given twice"])
def test_the_cli_refuses_it_with_exit_2_and_one_line(tmp_path, capsys, case):
    job2, top, needle, line = BAD[case]
    text = JOBS.format(job2=textwrap.indent(job2, "    "), top=top).replace(
        "steps: 28", "steps: .inf" if case == "steps .inf" else "steps: 28")
    path = _write(tmp_path, text)
    assert main(["plan", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err and needle in captured.err


def test_a_real_false_is_false(tmp_path):
    data, _ = load_workload(_write(tmp_path, JOBS.format(job2="    cfg: false\n", top="")))
    assert data["jobs"][1]["cfg"] is False


def test_count_1e6_reads_as_a_million_and_says_so(tmp_path):
    path = _write(tmp_path, JOBS.format(job2="", top="").replace("count: 1000", "count: 1e6"))
    data, _ = load_workload(path)
    assert data["jobs"][1]["count"] == 1_000_000 and isinstance(data["jobs"][1]["count"], int)
    assert any("1,000,000" in n for n in data["_notes"])
    plain, _ = load_workload(_write(tmp_path, JOBS.format(job2="", top=""), "plain.yaml"))
    assert plain["_notes"] == []


def test_one_region_or_gpu_name_is_a_list_of_one(tmp_path):
    data, _ = load_workload(_write(tmp_path, JOBS.format(job2="", top="regions: FR\ngpus: h100\n")))
    assert data["regions"] == ["FR"] and data["gpus"] == ["h100"]


def test_norway_stays_a_region_code(tmp_path):
    data, _ = load_workload(_write(tmp_path, JOBS.format(job2="", top="regions: [NO, FR]\n")))
    assert data["regions"] == ["NO", "FR"]  # YAML 1.1 would read NO as false


def test_non_utf8_is_one_line_naming_the_byte(tmp_path):
    path = tmp_path / "workload.yaml"
    path.write_bytes("jobs:\n  - model: caf\xe9\n".encode("latin-1"))
    _refused(path, "byte 0xe9 is not UTF-8", 2)


@pytest.mark.parametrize("text, needle, line", [
    ("", "a workload is a mapping with a `jobs` list", 1),
    ("- a\n- b\n", "a workload is a mapping", 1),
    ("jobs: []\n", "`jobs` is []; rule: a non-empty list", 1),
    ("gpus: [h100]\n", "`jobs` is missing", 1),
    ("jobs:\n  - count: 3\n", "job 1: `model` is missing", 2),
    ("jobs:\n  - sd2.1\n", "job 1: `jobs` item 1 is 'sd2.1' (text); rule: a mapping", 2),
    ("jobs:\n\t- model: x\n", "not valid YAML", 2),
    ("jobs: [\n", "not valid YAML", 2),
])
def test_a_bad_workload_shape_is_one_line(tmp_path, text, needle, line):
    _refused(_write(tmp_path, text), needle, line)


def test_an_alias_bomb_is_refused(tmp_path):
    rows = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcde", "bcdef"):
        rows.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    with pytest.raises(WorkloadError, match="aliases expand to over"):
        load_workload(_write(tmp_path, "\n".join(rows) + "\n"))


def test_a_missing_file_and_a_folder_are_one_line(tmp_path):
    with pytest.raises(WorkloadError, match="no such workload file"):
        load_workload(tmp_path / "nope.yaml")
    with pytest.raises(WorkloadError, match="a folder"):
        load_workload(tmp_path)


def test_a_relative_law_is_relative_to_the_workload_file(tmp_path):
    sub = tmp_path / "plans"
    sub.mkdir()
    data, _ = load_workload(_write(sub, JOBS.format(job2="", top="law: law.json\n")))
    assert data["law"] == str(sub / "law.json")


def test_a_plan_runs_with_the_checked_workload(tmp_path):
    import scaling

    res = scaling.plan(_write(tmp_path, JOBS.format(job2="    cfg: false\n", top="gpus: [h100]\n").replace(
        "count: 1000", "count: 1e3")))
    assert len(res.candidates) == 1 and res.candidates[0]["kwh"] > 0


# -- the sweep file -------------------------------------------------------------------------------

SWEEP = """\
out: runs.parquet
device: cpu
meter: estimate
protocol:
  repeats: 1
  warmup: 0
  idle_s: 0
grid:
  - model: tiny:sd
    steps: [1, 2]
{entry}"""


def _sweep(tmp_path, entry: str = "", **swap: str):
    text = SWEEP.format(entry=textwrap.indent(entry, "    "))
    for old, new in swap.items():
        text = text.replace(old, new)
    return _write(tmp_path, text, "sweep.yaml")


def _sweep_refused(path, needle: str, line: int | None = None) -> str:
    pytest.importorskip("torch")
    from profilers.energy.sweep import load_sweep

    with pytest.raises(WorkloadError) as err:
        load_sweep(path)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg, msg
    if line is not None:
        assert f"{path}:{line}: " in msg, msg
    return msg


@pytest.mark.parametrize("entry, needle, line", [
    ('cfg: "false"\n', "grid entry 1: `cfg` is 'false' (text); rule: true or false", 11),
    ("cfg: [true, 'false']\n", "item 2 is 'false'", 11),
    ("precision: 16\n", "grid entry 1: `precision` is 16; rule: a precision name", 11),
    ("res: [[512]]\n", "one value or a list of values; item 1 is a list", 11),
    ("steps: 3\n", "key `steps` is given twice (lines 10 and 11)", 11),
    ("colour: red\n", "grid entry 1: unknown field `colour`; allowed:", 11),
    ("seconds: .nan\n", "`seconds` is nan", 11),
])
def test_a_bad_sweep_entry_is_one_line_with_its_line(tmp_path, entry, needle, line):
    _sweep_refused(_sweep(tmp_path, entry), needle, line)


def test_sweep_steps_inf_and_a_bad_protocol(tmp_path):
    _sweep_refused(_sweep(tmp_path, **{"steps: [1, 2]": "steps: .inf"}), "`steps` is inf", 10)
    _sweep_refused(_sweep(tmp_path, **{"repeats: 1": 'repeats: "3"'}), "protocol: `repeats` is '3' (text)", 5)
    _sweep_refused(_sweep(tmp_path, **{"warmup: 0": "warmup: 0\n  warmup: 1"}), "`warmup` is given twice", 7)
    _sweep_refused(_sweep(tmp_path, **{"meter: estimate": "meter: [estimate]"}), "`meter` is ['estimate']", 3)
    _sweep_refused(_sweep(tmp_path, **{"grid:": "allow_pickle: 'no'\ngrid:"}), "`allow_pickle` is 'no' (text)", 8)


def test_sweep_non_utf8(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_bytes(SWEEP.format(entry="").replace("tiny:sd", "tiny:s\xe9").encode("latin-1"))
    _sweep_refused(path, "byte 0xe9 is not UTF-8", 9)


def test_a_real_false_in_a_sweep_is_false(tmp_path):
    pytest.importorskip("torch")
    from profilers.energy.sweep import load_sweep

    sweep = load_sweep(_sweep(tmp_path, "cfg: [false]\n"))
    assert [s.cfg for s in sweep.settings] == [False, False]
    assert [s.steps for s in sweep.settings] == [1, 2]


def test_the_sweep_cli_refuses_a_quoted_false_in_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    path = _sweep(tmp_path, 'cfg: "false"\n')
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`cfg` is 'false'" in err and "Traceback" not in err
