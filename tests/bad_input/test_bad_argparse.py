"""The command line itself: unknown flags, missing arguments, invalid choices, flags that exclude each
other, no command. argparse's own errors are one line too (scaling/app/cli.py Parser), never the
usage block."""

from __future__ import annotations

import pytest

from scaling.app.cli import COMMANDS

MINIMAL = {
    "models": ["models"], "gpus": ["gpus"], "profile": ["profile", "-m", "sd2.1"],
    "predict": ["predict", "-m", "sd2.1"], "compare": ["compare", "-m", "sd2.1"], "plan": ["plan", "{workload}"],
    "report": ["report", "--out", "{tmp}/r.html"], "data": ["data", "policies"],
    "fit": ["fit", "--data", "{runs}"], "measure": ["measure", "-m", "tiny:sd"], "sweep": ["sweep", "{sweep}"],
    "pareto": ["pareto", "--data", "{runs}", "--quality", "clap"],
}
CASES = []
for cmd in COMMANDS:
    for extra in (["--bogus"], ["--bogus=1"], ["extra-positional"]):
        CASES.append(pytest.param(MINIMAL[cmd] + extra, "unrecognized arguments", id=f"{cmd} {extra[0]}"))
for action, base in {"import": ["data", "import", "{csv}", "--out", "{tmp}/r.parquet"],
                     "inspect": ["data", "inspect", "{csv}"], "export": ["data", "export", "{runs}", "--out", "{tmp}/r.csv"],
                     "policies": ["data", "policies"]}.items():
    CASES.append(pytest.param(base + ["--bogus"], f"scaling data {action}: error: unrecognized", id=f"data {action} --bogus"))
CASES += [pytest.param(argv, needle, id=" ".join(argv) or "(nothing)") for argv, needle in [
    ([], "no command given"),
    (["nope"], "invalid choice: 'nope'"),
    (["Predict"], "invalid choice"),
    (["data"], "no action given"),
    (["data", "nope"], "invalid choice"),
    (["fit"], "the following arguments are required: --data"),
    (["pareto"], "required"),
    (["pareto", "--data", "{runs}"], "--quality"),
    (["data", "import"], "required"),
    (["data", "import", "{csv}"], "--out"),
    (["data", "export", "{runs}"], "--out"),
    (["data", "inspect"], "required"),
    (["plan"], "required"),
    (["sweep"], "required"),
    (["fit", "--data", "{runs}", "--by", "colour"], "invalid choice: 'colour'"),
    (["fit", "--data", "{runs}", "--target", "power"], "invalid choice"),
    (["fit", "--data", "{runs}", "--strict", "--drop-unresolved"], "not allowed with"),
    (["sweep", "{sweep}", "--executor", "cloud"], "invalid choice"),
    (["measure", "-m", "tiny:sd", "--weights", "{tmp}", "--random-weights"], "not allowed with"),
    (["profile", "-m", "sd2.1", "--cfg", "--no-cfg"], "not allowed with"),
    (["predict", "-m", "sd2.1", "--no-cfg", "--cfg"], "not allowed with"),
    (["compare", "-m", "sd2.1", "--cfg", "--no-cfg"], "not allowed with"),
    (["measure", "-m", "tiny:sd", "--cfg", "--no-cfg"], "not allowed with"),
    (["predict", "--model"], "expected one argument"),
    (["predict", "-m", "sd2.1", "--gpu"], "expected one argument"),
    (["predict", "-m", "sd2.1", "--count"], "expected one argument"),
    (["predict", "-m", "sd2.1", "--count", "--json"], "expected one argument"),
    (["compare", "-m", "sd2.1", "--steps-list"], "expected one argument"),
    (["report", "--out"], "expected one argument"),
    (["predict", "-m", "sd2.1", "--c", "5"], "ambiguous option"),
]]


@pytest.mark.parametrize("argv,needle", CASES)
def test_the_command_line_is_refused_in_one_line(argv, needle, refused):
    refused(argv, needle)


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["data", "import", "--help"], ["--version"]])
def test_help_and_version_exit_0(argv, answered):
    out, _ = answered(argv)
    assert out.strip()


def test_an_unambiguous_abbreviation_works(answered):
    out, _ = answered(["predict", "-m", "sd2.1", "--cou", "10"])
    assert "10 outputs" in out
