"""Files and paths: inputs that are missing, folders or garbage; outputs that are a folder, empty, a
device, under a file, on a read-only file system, or one of the inputs. Refused before any work
where they can be (scaling/_files.py check_output), in one line, with nothing written."""

from __future__ import annotations

import os

import pytest


def needs_torch() -> None:
    """measure and sweep need the [torch] extra; looked up, not imported (an import costs seconds)."""
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("torch", "diffusers", "transformers")):
        pytest.skip("needs the [torch] extra")

BAD_INPUTS = [
    (["predict", "-m", "sd2.1", "--law", "/nonexistent/law.json"], "does not exist"),
    (["predict", "-m", "sd2.1", "--law", "{tmp}"], "folder"),
    (["predict", "-m", "sd2.1", "--law", "/dev/null"], "law"),
    (["predict", "-m", "sd2.1", "--law", ""], "--law"),
    (["predict", "-m", "sd2.1", "--law", "/etc/passwd"], "law"),
    (["compare", "-m", "sd2.1", "--law", "/nonexistent/law.json"], "does not exist"),
    (["report", "--law", "/nonexistent/law.json", "--out", "{tmp}/r.html"], "does not exist"),
    (["plan", "{workload}", "--law", "/nonexistent/law.json"], "does not exist"),
    (["plan", "/nonexistent/workload.yaml"], "no such workload file"),
    (["plan", "{tmp}"], "folder"),
    (["plan", ""], "workload"),
    (["plan", "/dev/null"], "re:workload|mapping|empty"),
    (["fit", "--data", "/nonexistent.parquet"], "no such file"),
    (["fit", "--data", "{tmp}"], "{tmp}"),
    (["fit", "--data", "/etc/passwd"], "re:not a readable|not a recognised|parquet"),
    (["fit", "--data", ""], "--data"),
    (["pareto", "--data", "/nonexistent.parquet", "--quality", "clap"], "no such file"),
    (["pareto", "--data", "{runs}", "--quality", "clap", "--quality-table", "/nonexistent.csv"], "nonexistent"),
    (["pareto", "--data", "{runs}", "--quality", "clap", "--quality-table", "/etc/passwd"], "passwd"),
    (["data", "import", "/nonexistent.csv", "--out", "{tmp}/r.parquet"], "nonexistent"),
    (["data", "import", "{tmp}", "--out", "{tmp}/r.parquet"], "re:folder|no such|not a"),
    (["data", "import", "/etc/passwd", "--out", "{tmp}/r.parquet"], "not a recognised table"),
    (["data", "inspect", "/nonexistent.csv"], "nonexistent"),
    (["data", "inspect", "{tmp}"], "re:folder|no such|not a"),
    (["data", "inspect", "/etc/passwd"], "not a recognised table"),
    (["data", "export", "/nonexistent.parquet", "--out", "{tmp}/r.csv"], "no such file"),
    (["data", "export", "/etc/passwd", "--out", "{tmp}/r.csv"], "re:not a readable|parquet"),
    (["sweep", "/nonexistent/sweep.yaml"], "no such sweep file"),
    (["sweep", "{tmp}"], "re:folder|no such"),
    (["profile", "--config", "/nonexistent/folder"], "re:model_index|no such|not a folder"),
    (["profile", "--config", "{tmp}"], "model_index.json"),
]


@pytest.mark.parametrize("argv,needle", [pytest.param(a, n, id=" ".join(a)) for a, n in BAD_INPUTS])
def test_a_bad_input_file_is_refused_in_one_line(argv, needle, refused, paths):
    refused(argv, needle.format(**{k: str(v) for k, v in paths.items()}))


WRITERS = {
    "report": (["report", "-m", "sd2.1", "--gpus", "h100", "--out", "{target}"], []),
    "fit --out": (["fit", "--data", "{runs}", "--law", "power", "--out", "{target}"], ["{runs}"]),
    "fit --report": (["fit", "--data", "{runs}", "--law", "power", "--report", "{target}"], ["{runs}"]),
    "pareto --plot": (["pareto", "--data", "{runs}", "--quality", "clap", "--quality-table", "{quality}",
                       "--plot", "{target}"], ["{runs}", "{quality}"]),
    "data import": (["data", "import", "{csv}", "--no-flops", "--out", "{target}"], ["{csv}"]),
    "data export": (["data", "export", "{runs}", "--out", "{target}"], ["{runs}"]),
    "measure": (["measure", "-m", "tiny:sd", "--device", "cpu", "--meter", "estimate", "--quiet", "--out",
                 "{target}"], []),
    "sweep": (["sweep", "{sweep}", "--no-progress", "--out", "{target}"], ["{sweep}"]),
}
SUFFIX = {"report": ".html", "fit --out": ".json", "fit --report": ".html", "pareto --plot": ".html",
          "data import": ".parquet", "data export": ".csv", "measure": ".parquet", "sweep": ".parquet"}
"""A name each writer writes (a writer refuses a suffix it does not write: tests/bad_input/test_outputs_audit.py)."""
BAD_TARGETS = [
    ("{tmp}", "folder"),
    ("", "re:empty|--out|--report|--plot"),
    ("/dev/full", "re:device|no space"),
    ("/dev/null", "device"),
    ("/etc/passwd/out{ext}", "re:not a folder|is a file"),
    ("/proc/out{ext}", "re:cannot|read-only|no such"),
]

OUTPUT_CASES = []
for name, (argv, inputs) in WRITERS.items():
    for target, needle in BAD_TARGETS:
        target = target.replace("{ext}", SUFFIX[name])
        OUTPUT_CASES.append(pytest.param(name, argv, target, needle, id=f"{name} -> {target!r}"))
    for source in inputs:
        OUTPUT_CASES.append(pytest.param(name, argv, source, "re:input|same|destroy", id=f"{name} -> {source}"))


@pytest.mark.parametrize("name,argv,target,needle", OUTPUT_CASES)
def test_a_bad_output_is_refused_before_any_work_and_nothing_is_lost(name, argv, target, needle, refused, paths):
    if name in ("measure", "sweep"):
        needs_torch()
    before = {p: os.stat(p).st_mtime_ns for p in (paths["runs"], paths["csv"], paths["sweep"], paths["quality"])}
    refused([a.replace("{target}", target) for a in argv], needle)
    after = {p: os.stat(p).st_mtime_ns for p in before}
    assert before == after, "an input was written"
    assert not [p for p in paths["tmp"].iterdir() if p.name.startswith(".")], "a temporary file was left behind"


def test_fit_refuses_the_same_file_for_the_law_and_the_report(refused, paths):
    refused(["fit", "--data", "{runs}", "--law", "power", "--out", "{tmp}/x.out", "--report", "{tmp}/x.out"],
            "re:input|same|destroy")
    assert not (paths["tmp"] / "x.out").exists()


def test_data_export_over_its_own_input_keeps_the_table(refused, paths):
    from scaling.runs import read_runs

    n = len(read_runs(paths["runs"]))
    refused(["data", "export", "{runs}", "--out", "{runs}"], "re:input|destroy")
    assert len(read_runs(paths["runs"])) == n


def test_a_symlinked_output_is_written_through(answered, paths):
    target = paths["tmp"] / "real.csv"
    link = paths["tmp"] / "link.csv"
    target.write_text("old\n")
    link.symlink_to(target)
    answered(["data", "export", "{runs}", "--out", str(link)])
    assert link.is_symlink(), "the link is kept"
    header = target.read_text().splitlines()[0]
    assert "model" in header.split(","), "the link's target holds the export"
