"""Outputs and the checks before a measurement (the bad-input audit of outputs): each case is a row.

The rule (scaling/_files.py check_output, scaling/runs check_runs_output): an output's folder must
exist (no writer creates one); a runs table is written as ``.parquet`` or ``.csv`` (``.csv.gz``), a
report as ``.html`` / ``.htm``; an existing output table must be a runs table to append to; a meter
that cannot measure this work (``nvml`` on the CPU, a replay trace that is no trace) and a country
CodeCarbon does not know are refused too; all of it before any pipeline is built, in one line,
exit 2, with nothing written, left or changed on disk (no lock file, no failures log, no index).
A refused append leaves the disk as it was (scaling/runs, scaling/_files.py lock_file).

``{name}`` in an argument is a file of the ``paths`` fixture below (the conftest's, plus bad tables,
a bad trace and sweep files in ``{tmp}``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import threading
from pathlib import Path

import pytest

from scaling._files import check_output, lock_file
from scaling.errors import DataError, OutputError, TableBusyError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from disk import disk_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ROOT / "datasets" / "public"

SWEEP_OK = "device: cpu\nmeter: estimate\nprotocol: {repeats: 1, warmup: 0, idle_s: 0}\ngrid:\n  - model: tiny:sd\n"


def needs_torch() -> None:
    if any(importlib.util.find_spec(m) is None for m in ("torch", "diffusers", "transformers")):
        pytest.skip("needs the [torch] extra")


@pytest.fixture
def paths(shared_files, tmp_path) -> dict[str, Path]:
    """The conftest's files, plus the audit's bad outputs and sweep files, in a fresh ``{tmp}``."""
    t = tmp_path
    (t / "trunc.parquet").write_bytes(shared_files["runs"].read_bytes()[:300])  # a parquet cut short
    (t / "empty.parquet").write_bytes(b"")
    (t / "wrongcols.csv").write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    shutil.copyfile(PUBLIC / "diffused_responsibility_quality.csv", t / "quality.csv")
    shutil.copyfile(PUBLIC / "leybzon_sd35_quantization.csv", t / "public.csv")  # a public CSV, not imported
    shutil.copyfile(shared_files["law"], t / "law.json")
    shutil.copyfile(shared_files["runs"], t / "table.parquet")  # a good runs table
    (t / "badtrace.csv").write_text("a,b,c\n0,1,2\n1,2,3\n", encoding="utf-8")
    sweeps = {"sweep_ok.yaml": SWEEP_OK,
              "sweep_nodir.yaml": "out: nodir/sw.parquet\n" + SWEEP_OK,
              "sweep_txt.yaml": "out: sw.txt\n" + SWEEP_OK,
              "sweep_trunc.yaml": "out: trunc.parquet\n" + SWEEP_OK,
              "sweep_nvml.yaml": SWEEP_OK.replace("meter: estimate", "meter: nvml"),
              "sweep_country.yaml": SWEEP_OK.replace("idle_s: 0}", "idle_s: 0, country: XX}"),
              "sweep_replay.yaml": SWEEP_OK.replace("meter: estimate", f"meter: 'replay:{t / 'badtrace.csv'}'")}
    for name, text in sweeps.items():
        (t / name).write_text(text, encoding="utf-8")
    return {**shared_files, "tmp": t, **{Path(n).stem: t / n for n in sweeps}}


@pytest.fixture
def no_build(monkeypatch):
    """A pipeline build (tiny or full) fails the test: the refusal must come before it. (Without the
    [torch] extra nothing can be built: the measure and sweep rows skip: :func:`refused_clean`.)"""
    if any(importlib.util.find_spec(m) is None for m in ("torch", "diffusers", "transformers")):
        return
    import profilers.energy.pipelines as pipelines

    def built(*a, **k):
        raise AssertionError("a pipeline was built before the refusal")

    monkeypatch.setattr(pipelines, "build_pipeline", built)
    monkeypatch.setattr(pipelines, "tiny_pipeline", built)


@pytest.fixture
def refused_clean(refused, paths):
    """``refused`` (exit 2, one line, the needle), and nothing under ``{tmp}`` created, changed or removed.
    measure and sweep need the [torch] extra (without it they refuse for that reason): skipped then."""

    def check(argv, needle):
        if argv[0] in ("measure", "sweep"):
            needs_torch()
        before = disk_state(paths["tmp"])
        text = refused(argv, needle)
        assert disk_state(paths["tmp"]) == before, "a refusal left or changed a file"
        return text

    return check


# -- 1. a missing output folder: one rule for every writer -------------------------------------------

MEASURE = ["measure", "-m", "tiny:sd", "--device", "cpu", "--meter", "estimate", "--idle-s", "0", "--repeats", "1",
           "--warmup", "0", "--quiet"]
FOLDER = "re:the folder .*nodir does not exist \\(rule: the output's folder must exist\\)"

MISSING_FOLDER = [
    ("measure --out", MEASURE + ["--out", "{tmp}/nodir/m.parquet"]),
    ("measure --resume --out", MEASURE + ["--resume", "--out", "{tmp}/nodir/m.parquet"]),
    ("sweep --out", ["sweep", "{sweep_ok}", "--no-progress", "--out", "{tmp}/nodir/sw.parquet"]),
    ("sweep file out:", ["sweep", "{sweep_nodir}", "--no-progress"]),
    ("report --out", ["report", "-m", "sdxl", "--out", "{tmp}/nodir/r.html"]),
]


@pytest.mark.parametrize("argv", [pytest.param(a, id=n) for n, a in MISSING_FOLDER])
def test_a_missing_output_folder_is_refused_and_not_created(argv, refused_clean, no_build):
    refused_clean(argv, FOLDER)


def test_the_missing_folder_rule_is_check_outputs_and_the_writers_follow_it(tmp_path):
    from scaling._files import write_text_atomic
    from scaling.runs import append_runs, read_runs, write_runs

    missing = tmp_path / "nodir"
    rule = r"the folder .*nodir does not exist \(rule: the output's folder must exist\)"
    with pytest.raises(OutputError, match=rule):
        check_output(missing / "x.json")
    with pytest.raises(OutputError, match=rule):
        write_text_atomic(missing / "x.json", "{}")
    rows = read_runs(PUBLIC / "runs.parquet").head(2)
    with pytest.raises(OutputError, match=rule):
        write_runs(rows, missing / "r.parquet")
    with pytest.raises(OutputError, match=rule):
        append_runs(rows, missing / "r.parquet")
    assert list(tmp_path.iterdir()) == []


def test_the_library_writers_refuse_a_missing_folder_before_any_work(tmp_path, no_build):
    needs_torch()
    import scaling
    from profilers.energy.runner import Runner
    from profilers.energy.sweep import load_sweep, run_sweep
    from scaling.app.report import write_report

    out = tmp_path / "nodir" / "runs.parquet"
    with pytest.raises(OutputError, match="nodir does not exist"):
        Runner(out, device="cpu", meter="estimate")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(SWEEP_OK, encoding="utf-8")
    with pytest.raises(OutputError, match="nodir does not exist"):
        run_sweep(load_sweep(sweep), out=out, progress=False)
    with pytest.raises(OutputError, match="nodir does not exist"):
        scaling.track(name="block", out=out)
    with pytest.raises(OutputError, match="nodir does not exist"):
        write_report(tmp_path / "nodir" / "r.html", models=["sdxl"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


# -- 2. an output's format is its suffix -----------------------------------------------------------

RUNS_RULE = "re:ends in \\.parquet, \\.csv or \\.csv\\.gz"
HTML_RULE = "re:ends in \\.html or \\.htm"

WRONG_FORMAT = [
    ("measure --out o.txt", MEASURE + ["--out", "{tmp}/o.txt"], RUNS_RULE),
    ("measure --out law.json", MEASURE + ["--out", "{tmp}/law.json"], RUNS_RULE),
    ("measure --out no suffix", MEASURE + ["--out", "{tmp}/runs"], "re:no suffix.*ends in \\.parquet"),
    ("sweep --out o.txt", ["sweep", "{sweep_ok}", "--no-progress", "--out", "{tmp}/o.txt"], RUNS_RULE),
    ("sweep file out: sw.txt", ["sweep", "{sweep_txt}", "--no-progress"], RUNS_RULE),
    ("report --out a runs table", ["report", "-m", "sdxl", "--out", "{tmp}/table.parquet"], HTML_RULE),
    ("report --out quality.csv", ["report", "-m", "sdxl", "--out", "{tmp}/quality.csv"], HTML_RULE),
    ("report --out r.txt", ["report", "-m", "sdxl", "--out", "{tmp}/r.txt"], HTML_RULE),
]


@pytest.mark.parametrize("argv,needle", [pytest.param(a, n, id=i) for i, a, n in WRONG_FORMAT])
def test_an_output_named_for_another_format_is_refused(argv, needle, refused_clean, no_build):
    text = refused_clean(argv, needle)
    assert "'." in text or "no suffix" in text, "the refusal names the suffix it got"


def test_a_link_to_a_file_of_another_format_is_refused(tmp_path):
    from scaling.app.report import check_report_output

    (tmp_path / "runs.parquet").write_bytes(b"PAR1")
    (tmp_path / "r.html").symlink_to(tmp_path / "runs.parquet")
    with pytest.raises(OutputError, match=r"the file its link points to.*ends in \.html or \.htm"):
        check_report_output(tmp_path / "r.html")
    assert check_report_output(tmp_path / "new.HTM").name == "new.HTM"  # the suffix in any case
    assert (tmp_path / "runs.parquet").read_bytes() == b"PAR1"


# -- 3. an existing output table is checked before the build ---------------------------------------

NOT_A_TABLE = [
    ("a truncated parquet", "{tmp}/trunc.parquet", "not a readable parquet file"),
    ("an empty file", "{tmp}/empty.parquet", "not a readable parquet file"),
    ("a CSV with other columns", "{tmp}/wrongcols.csv", "missing required column"),
    ("a quality CSV", "{tmp}/quality.csv", "missing required column"),
    ("a public CSV", "{tmp}/public.csv", "scaling data import"),
]


@pytest.mark.parametrize("target,needle", [pytest.param(t, n, id=i) for i, t, n in NOT_A_TABLE])
@pytest.mark.parametrize("command", ["measure", "sweep"])
def test_an_existing_output_that_is_no_runs_table_is_refused_before_the_build(command, target, needle,
                                                                            refused_clean, no_build):
    argv = MEASURE if command == "measure" else ["sweep", "{sweep_ok}", "--no-progress"]
    text = refused_clean(argv + ["--out", target], needle)
    assert "is not a runs table to append to" in text and "rule: give a new file name" in text


def test_a_sweep_files_out_that_is_no_runs_table_is_refused(refused_clean, no_build):
    refused_clean(["sweep", "{sweep_trunc}", "--no-progress"], "re:`out` .*trunc.parquet.*not a readable parquet")


def test_the_library_checks_an_existing_table_before_any_work(paths, no_build):
    needs_torch()
    import scaling
    from profilers.energy.runner import Runner

    for name in ("trunc.parquet", "wrongcols.csv"):
        with pytest.raises(DataError, match="is not a runs table to append to"):
            Runner(paths["tmp"] / name, device="cpu", meter="estimate")
        with pytest.raises(DataError, match="is not a runs table to append to"):
            scaling.track(name="block", out=paths["tmp"] / name)
    with Runner(paths["tmp"] / "table.parquet", device="cpu", meter="estimate"):  # a runs table: taken
        pass


# -- 4. meters and countries refused before the build ------------------------------------------------

SETTINGS = [
    ("measure --meter nvml on the CPU", ["measure", "-m", "sd2.1", "--steps", "2", "--device", "cpu", "--meter", "nvml",
                                         "--out", "{tmp}/m.parquet"], "re:'nvml' measures a GPU.*runs on 'cpu'"),
    ("measure --meter replay with a bad header", MEASURE[:5] + ["--meter", "replay:{tmp}/badtrace.csv", "--out",
                                                                "{tmp}/m.parquet"], "re:header.*expected `t_s,power_w"),
    ("measure --country XX", MEASURE + ["--country", "XX", "--out", "{tmp}/m.parquet"], "re:--country 'XX'"),
    ("sweep file device cpu + meter nvml", ["sweep", "{sweep_nvml}", "--no-progress", "--out", "{tmp}/sw.parquet"],
     "re:sweep_nvml.yaml: `meter` 'nvml' measures a GPU"),
    ("sweep --meter nvml on a cpu sweep", ["sweep", "{sweep_ok}", "--no-progress", "--meter", "nvml", "--out",
                                           "{tmp}/sw.parquet"], "re:'nvml' measures a GPU"),
    ("sweep --meter replay with a bad header", ["sweep", "{sweep_ok}", "--no-progress", "--meter",
                                                "replay:{tmp}/badtrace.csv", "--out", "{tmp}/sw.parquet"], "header"),
    ("sweep file meter replay with a bad header", ["sweep", "{sweep_replay}", "--no-progress", "--out",
                                                   "{tmp}/sw.parquet"], "re:sweep_replay.yaml: .*header"),
    ("sweep file protocol country XX", ["sweep", "{sweep_country}", "--no-progress", "--out", "{tmp}/sw.parquet"],
     "re:sweep_country.yaml: protocol: `country` 'XX'"),
]


@pytest.mark.parametrize("argv,needle", [pytest.param(a, n, id=i) for i, a, n in SETTINGS])
def test_a_meter_or_country_that_cannot_work_is_refused_before_the_build(argv, needle, refused_clean, no_build):
    refused_clean(argv, needle)


def test_nvml_on_auto_without_a_gpu_is_refused_before_the_build(refused_clean, no_build):
    needs_torch()
    import torch

    if torch.cuda.is_available():
        pytest.skip("auto is a GPU here")
    refused_clean(["measure", "-m", "sd2.1", "--steps", "2", "--meter", "nvml", "--out", "{tmp}/m.parquet"],
                  "re:'nvml' measures a GPU.*runs on 'cpu'")


def test_the_runner_checks_its_meter_and_country_before_any_work(tmp_path, no_build):
    needs_torch()
    from profilers.energy.runner import Protocol, Runner
    from scaling.errors import NoGPUError, UnknownCountryError

    with pytest.raises(NoGPUError, match="nvml"):
        Runner(tmp_path / "m.parquet", device="cpu", meter="nvml")
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="header"):
        Runner(tmp_path / "m.parquet", device="cpu", meter=f"replay:{tmp_path / 'bad.csv'}")
    if importlib.util.find_spec("codecarbon") is not None:
        with pytest.raises(UnknownCountryError, match="'XX'"):
            Runner(tmp_path / "m.parquet", device="cpu", meter="estimate", protocol=Protocol(country="XX"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


# -- 5. a refused append leaves the disk as it was ---------------------------------------------------

APPENDS = [
    ("onto a truncated parquet", "{tmp}/trunc.parquet", "not a readable parquet file"),
    ("onto an empty file", "{tmp}/empty.parquet", "not a readable parquet file"),
    ("onto a CSV with other columns", "{tmp}/wrongcols.csv", "missing required column"),
    ("rows already in the table", "{tmp}/table.parquet", "already in the table"),
]


@pytest.mark.parametrize("target,needle", [pytest.param(t, n, id=i) for i, t, n in APPENDS])
def test_a_refused_append_leaves_no_lock_and_no_index(target, needle, refused_clean):
    refused_clean(["data", "import", "{runs}", "--out", target, "--append"], needle)


def test_a_refused_append_keeps_a_lock_and_an_index_that_were_there(tmp_path):
    from scaling.runs import append_runs, parts_dir, read_runs

    table = tmp_path / "t.parquet"
    rows = read_runs(PUBLIC / "runs.parquet").head(4)
    append_runs(rows.head(2), table)
    append_runs(rows.tail(2), table)  # a part, so a parts folder and its index
    index = parts_dir(table) / "keys.sqlite"
    lock = tmp_path / "t.parquet.lock"
    assert index.is_file() and lock.is_file()
    before = disk_state(tmp_path)
    with pytest.raises(DataError, match="already in the table"):
        append_runs(rows.head(1), table)
    assert disk_state(tmp_path).keys() == before.keys()  # the lock and the index it found stay
    assert len(read_runs(table)) == 4


def test_a_lock_file_is_removed_only_when_this_call_made_it_and_the_block_raised(tmp_path):
    lock = tmp_path / "x.lock"
    with pytest.raises(RuntimeError):
        with lock_file(lock):
            assert lock.is_file()
            raise RuntimeError("refused")
    assert not lock.exists()
    with lock_file(lock):
        pass
    assert lock.is_file()  # a block that went well keeps it
    with pytest.raises(RuntimeError):
        with lock_file(lock):
            raise RuntimeError("refused")
    assert lock.is_file()  # it was there before the call: it stays


def test_removing_a_lock_file_never_lets_two_holders_in(tmp_path):
    lock = tmp_path / "x.lock"
    inside = threading.Event()
    release = threading.Event()
    got = []

    def second():
        inside.wait(5)
        with lock_file(lock) as fh:  # waits for the first holder, which removes the file it made
            got.append(os.fstat(fh.fileno()).st_ino == os.stat(lock).st_ino)
            release.wait(5)

    t = threading.Thread(target=second)
    t.start()
    with pytest.raises(RuntimeError):
        with lock_file(lock):
            inside.set()
            threading.Event().wait(0.3)  # the second one is waiting on this file now
            raise RuntimeError("refused")
    for _ in range(50):
        if got:
            break
        threading.Event().wait(0.1)
    assert got == [True], "the second holder locks the file that is at the path"
    with pytest.raises(TableBusyError):
        with lock_file(lock, wait_s=0):  # and it holds it: no third holder
            pass
    release.set()
    t.join(5)
