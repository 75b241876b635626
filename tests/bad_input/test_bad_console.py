"""A handful of refusals through the installed console script and `python -m scaling`, end to end:
exit 2, one line on stderr, nothing on stdout, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def _scaling() -> list[str]:
    exe = shutil.which("scaling")
    return [exe] if exe else [sys.executable, "-m", "scaling"]


@pytest.mark.parametrize("how", ["console", "module"])
@pytest.mark.parametrize("argv,needle", [
    (["predict", "-m", "sd2.1", "--count", "10**400"], "--count"),
    (["predict", "-m", "wan2.1", "--frames", "nan"], "--frames"),
    (["nope"], "invalid choice"),
    (["predict", "-m", "sd2.1", "--bogus"], "unrecognized arguments"),
    (["report", "--out", "/dev/full", "-m", "sd2.1"], "device"),
])
def test_the_console_script_refuses_in_one_line(how, argv, needle, paths):
    cmd = _scaling() if how == "console" else [sys.executable, "-m", "scaling"]
    proc = subprocess.run(cmd + argv, capture_output=True, text=True, timeout=120, cwd=paths["tmp"])
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err)
    assert "\n" not in err and "Traceback" not in err and needle in err, err
    assert proc.stdout == ""


def test_a_closed_pipe_ends_quietly(paths):
    proc = subprocess.run(" ".join(_scaling() + ["models", "--variants"]) + " | head -1", shell=True,
                          capture_output=True, text=True, timeout=120, cwd=paths["tmp"])
    assert proc.returncode == 0 and proc.stdout.strip() and "Traceback" not in proc.stderr, proc.stderr
