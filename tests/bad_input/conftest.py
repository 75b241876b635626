"""The bad-input suite: every subcommand, every kind of input, run through ``main(argv)`` in process.

Each case is a row of a table, ``(argv, needle)``: the command must exit 2 with ONE line on stderr,
``scaling CMD: error: ...``, containing ``needle`` (case-insensitive; ``re:...`` for a regular
expression), and no traceback. Cases where the input is valid are in ``VALID`` tables: exit 0
and the right answer. ``{name}`` in an argument is replaced by a file of the ``paths`` fixture:
``{runs}`` a small FLOP-annotated runs table, ``{csv}`` a public energy CSV, ``{law}`` a copy of
the shipped law, ``{tmp}`` a fresh folder, ``{workload}`` a valid workload, ``{sweep}`` a
valid sweep file, ``{quality}`` the public quality table. A new flag gets its rows in the file of
its input kind: test_bad_numbers.py, test_bad_settings.py, test_bad_names.py, test_bad_paths.py,
test_bad_yaml.py, test_bad_laws.py, test_bad_data.py, test_bad_argparse.py; test_bad_console.py
runs a few through the console script.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from scaling.app.cli import main

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ROOT / "datasets" / "public"


@pytest.fixture(scope="session")
def shared_files(tmp_path_factory) -> dict[str, Path]:
    """Read-only inputs shared by the cases (never written by them)."""
    import pandas as pd

    base = tmp_path_factory.mktemp("bad-input-inputs")
    runs = pd.read_parquet(PUBLIC / "runs.parquet")
    small = runs[(runs["phase"] == "total") & runs["flop"].notna()]
    small = small.groupby("model", group_keys=False).head(12).reset_index(drop=True)
    from scaling.runs import write_runs

    write_runs(small, base / "runs.parquet")
    law = base / "law.json"
    shutil.copyfile(ROOT / "scaling" / "_laws" / "default.json", law)
    workload = base / "workload.yaml"
    workload.write_text("jobs:\n  - model: sd2.1\n    count: 1000\ngpus: [h100]\n", encoding="utf-8")
    sweep = base / "sweep.yaml"
    sweep.write_text("out: runs.parquet\ndevice: cpu\nmeter: estimate\nprotocol: {repeats: 1, warmup: 0, idle_s: 0}\n"
                     "grid:\n  - model: tiny:sd\n", encoding="utf-8")
    return {"runs": base / "runs.parquet", "law": law, "workload": workload, "sweep": sweep,
            "csv": PUBLIC / "leybzon_sd35_quantization.csv", "quality": PUBLIC / "diffused_responsibility_quality.csv"}


@pytest.fixture
def paths(shared_files, tmp_path) -> dict[str, Path]:
    return {**shared_files, "tmp": tmp_path}


def expand(argv, paths) -> list[str]:
    return [str(a).format(**{k: str(v) for k, v in paths.items()}) for a in argv]


@pytest.fixture
def refused(capsys, paths):
    """``refused(argv, needle)``: exit 2, one line on stderr naming the problem, no traceback."""

    def check(argv, needle: str | None = None) -> str:
        rc = main(expand(argv, paths))
        _, err = capsys.readouterr()
        text = err.strip()
        assert rc == 2, f"exit {rc}, expected 2 (a refusal); stderr: {text[-800:]!r}"
        assert text, "refused without a message on stderr"
        assert "Traceback" not in text, text
        assert "\n" not in text, f"the refusal is several lines:\n{text}"
        assert text.startswith("scaling") and ": error: " in text, text
        if needle:
            if needle.startswith("re:"):
                assert re.search(needle[3:], text, re.I), f"{needle[3:]!r} does not match {text!r}"
            else:
                assert needle.lower() in text.lower(), f"{needle!r} not in {text!r}"
        return text

    return check


@pytest.fixture
def answered(capsys, paths):
    """``answered(argv)``: exit 0; returns (stdout, stderr)."""

    def check(argv) -> tuple[str, str]:
        rc = main(expand(argv, paths))
        out, err = capsys.readouterr()
        assert rc == 0, f"exit {rc} on a valid input; stderr: {err[-800:]!r}"
        assert "Traceback" not in err
        return out, err

    return check
