"""Law files (`--law LAW.json`, `law:` in a workload): the schema of fits/law_file.py, through every
command that predicts. NaN, infinities, negative spreads, impossible intervals and wrong types are
refused in one line naming the field; nothing prints NaN, negative joules or a 200% interval."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "scaling" / "_laws" / "default.json"


def _set(path, value):
    def edit(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


MUTATIONS = [
    ("energy.smearing NaN", _set(["energy", "smearing"], math.nan), "smearing"),
    ("energy.smearing -1", _set(["energy", "smearing"], -1), "smearing"),
    ("energy.smearing text", _set(["energy", "smearing"], "x"), "smearing"),
    ("energy.sigma2 inf", _set(["energy", "sigma2"], math.inf), "sigma2"),
    ("energy.sigma2 -1", _set(["energy", "sigma2"], -1), "sigma2"),
    ("energy.cov NaN", lambda d: d["energy"]["cov"][0].__setitem__(0, math.nan), "cov"),
    ("energy.flop_center NaN", _set(["energy", "flop_center"], math.nan), "flop_center"),
    ("energy.fitted_center NaN", lambda d: d["energy"]["fitted_center"].__setitem__(0, math.nan), "fitted_center"),
    ("energy.t_quantile NaN", _set(["energy", "t_quantile"], math.nan), "t_quantile"),
    ("energy.theta short", _set(["energy", "theta"], [1.0]), "theta"),
    ("energy.theta inf", lambda d: d["energy"]["theta"].__setitem__(0, math.inf), "theta"),
    ("energy missing", lambda d: d.pop("energy"), "energy"),
    ("interval 2", _set(["interval"], 2), "interval"),
    ("interval 0", _set(["interval"], 0), "interval"),
    ("interval ninety", _set(["interval"], "ninety"), "interval"),
    ("groups gpu", _set(["groups"], "gpu"), "groups"),
    ("components x", _set(["components"], "x"), "components"),
]
TEXTS = [
    ("not JSON", "{not json", "law"),
    ("empty", "", "law"),
    ("a list", "[1, 2]", "re:object|law"),
    ("null", "null", "re:object|law"),
    ("empty object", "{}", "law"),
]
COMMANDS = {
    "predict": ["predict", "-m", "sd2.1", "--law", "{law}"],
    "compare": ["compare", "-m", "sd2.1", "--gpu", "h100", "--law", "{law}"],
    "plan": ["plan", "{workload}", "--law", "{law}"],
    "report": ["report", "-m", "sd2.1", "--gpus", "h100", "--out", "{tmp}/r.html", "--law", "{law}"],
}


def _write_bad_law(tmp, mutate=None, text=None):
    path = tmp / "bad-law.json"
    if text is None:
        doc = json.loads(SHIPPED.read_text(encoding="utf-8"))
        mutate(doc)
        text = json.dumps(doc)  # NaN and Infinity as Python's json writes them
    path.write_text(text, encoding="utf-8")
    return path


CASES = [pytest.param(cmd, None, text, needle, id=f"{cmd} {name}") for cmd in COMMANDS
         for name, text, needle in TEXTS]
CASES += [pytest.param(cmd, mutate, None, needle, id=f"{cmd} {name}") for cmd in COMMANDS
          for name, mutate, needle in MUTATIONS if cmd == "predict" or name in ("energy.smearing NaN", "interval 2")]


@pytest.mark.parametrize("cmd,mutate,text,needle", CASES)
def test_a_bad_law_file_is_refused_naming_the_field(cmd, mutate, text, needle, refused, paths):
    bad = _write_bad_law(paths["tmp"], mutate, text)
    argv = [a.replace("{law}", str(bad)) for a in COMMANDS[cmd]]
    refused(argv, needle)
    assert not (paths["tmp"] / "r.html").exists()


def test_a_law_named_in_a_workload_is_checked_too(refused, paths):
    bad = _write_bad_law(paths["tmp"], _set(["energy", "smearing"], math.nan))
    work = paths["tmp"] / "w.yaml"
    work.write_text(f"jobs:\n  - model: sd2.1\nlaw: {bad}\n", encoding="utf-8")
    refused(["plan", str(work)], "smearing")


def test_the_shipped_law_copied_is_a_valid_law(answered):
    out, _ = answered(["predict", "-m", "sd2.1", "--law", "{law}", "--json"])
    data = json.loads(out)
    assert 0 < data["energy_lo_j"] < data["energy_j"] < data["energy_hi_j"] and data["interval"] == 0.9
