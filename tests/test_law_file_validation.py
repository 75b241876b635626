"""A law file is checked on load (fits/law_file.py, fits/law.py): every law-file case of issue 15.

NaN in `smearing`, `cov`, `flop_center`, `fitted_center` or `t_quantile`, `sigma2: inf`,
`smearing: -1`, `interval: 2` and the wrong types (`interval: "ninety"`, `groups: "gpu"`,
`components: "x"`) are each one LawError line naming the file and the key, and in the CLI exit 2
with one line, no traceback, and nothing printed as NaN or negative joules.
"""

from __future__ import annotations

import copy
import json

import pytest

from fits.law_file import default_law_path, law_from_dict, load_law
from scaling.app.cli import main
from scaling.errors import LawError


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads(default_law_path().read_text(encoding="utf-8"))


def _set(doc: dict, path: tuple, value) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return doc


NAN, INF = float("nan"), float("inf")
CASES = {
    "smearing NaN": (("energy", "smearing"), NAN, "energy.smearing: NaN"),
    "cov NaN": (("energy", "cov", 0, 0), NAN, "energy.cov[0][0]: NaN"),
    "flop_center NaN": (("energy", "flop_center"), NAN, "energy.flop_center: NaN"),
    "fitted_center NaN": (("energy", "fitted_center", 0), NAN, "energy.fitted_center[0]: NaN"),
    "t_quantile NaN": (("energy", "t_quantile"), NAN, "energy.t_quantile: NaN"),
    "time smearing NaN": (("time", "smearing"), NAN, "time.smearing: NaN"),
    "sigma2 inf": (("energy", "sigma2"), INF, "energy.sigma2: Infinity"),
    "sigma2 -inf": (("energy", "sigma2"), -INF, "energy.sigma2: -Infinity"),
    "smearing -1": (("energy", "smearing"), -1, "smearing is -1; rule: a number > 0"),
    "smearing 0": (("energy", "smearing"), 0, "smearing is 0; rule: a number > 0"),
    "sigma2 -1": (("energy", "sigma2"), -1, "sigma2 is -1; rule: a number >= 0"),
    "t_quantile 0": (("energy", "t_quantile"), 0, "t_quantile is 0"),
    "interval 2": (("interval",), 2, "interval is 2; rule: a level strictly between 0 and 1"),
    "interval 0": (("interval",), 0, "interval is 0"),
    "interval NaN": (("interval",), NAN, "interval: NaN"),
    'interval "ninety"': (("interval",), "ninety", "interval is 'ninety'"),
    "interval true": (("interval",), True, "interval is True"),
    'groups "gpu"': (("groups",), "gpu", "groups is 'gpu'; rule: an object"),
    "groups a list": (("groups",), ["gpu"], "groups is ['gpu']"),
    "groups by": (("groups",), {"by": "colour", "laws": {"a": {}}}, "groups by 'colour'"),
    'components "x"': (("components",), "x", "components is 'x'; rule: an object with a `method`"),
    "components method": (("components", "method"), "by_share", "components method 'by_share'"),
    "energy a string": (("energy",), "x", "energy: not a JSON object"),
    "theta a string": (("energy", "theta"), "x", "theta is 'x'"),
    "dof a fraction": (("energy", "dof"), 1.5, "dof is 1.5"),
    "n_features text": (("energy", "n_features"), "7", "n_features is '7'"),
    "training a string": (("training",), "x", "training is not a JSON object"),
    "training.gpus a string": (("training", "gpus"), "a100", "training.gpus is 'a100'"),
    "flop_range reversed": (("training", "flop_range"), [1e18, 1e12], "training.flop_range"),
    "schema": (("schema",), "scaling.law/0", "schema 'scaling.law/0'"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_law_file_is_one_law_error_line(tmp_path, shipped, case):
    path, value, needle = CASES[case]
    bad = tmp_path / "law.json"
    bad.write_text(json.dumps(_set(shipped, path, value)))  # NaN / Infinity: the JSON extensions Python reads
    with pytest.raises(LawError) as err:
        load_law(bad)
    msg = str(err.value)
    assert needle in msg and str(bad) in msg and "\n" not in msg, msg


@pytest.mark.parametrize("case", ["smearing NaN", "sigma2 inf", "smearing -1", "interval 2", 'interval "ninety"',
                                  'groups "gpu"', 'components "x"', "cov NaN", "t_quantile NaN"])
@pytest.mark.parametrize("command", [["predict", "--model", "sdxl", "--gpu", "h100"],
                                     ["predict", "--model", "sdxl", "--gpu", "h100", "--json"]])
def test_the_cli_refuses_a_bad_law_with_exit_2_and_prints_no_number(tmp_path, shipped, capsys, case, command):
    path, value, needle = CASES[case]
    bad = tmp_path / "law.json"
    bad.write_text(json.dumps(_set(shipped, path, value)))
    assert main([*command, "--law", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "", "nothing is printed: no NaN, no negative joules"
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err and needle in captured.err


def test_plan_refuses_a_bad_law_too(tmp_path, shipped, capsys):
    bad = tmp_path / "law.json"
    bad.write_text(json.dumps(_set(shipped, ("energy", "smearing"), -1)))
    work = tmp_path / "w.yaml"
    work.write_text("jobs:\n  - model: sd2.1\n    count: 10\nlaw: law.json\n")
    assert main(["plan", str(work)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "smearing is -1" in captured.err


def test_a_law_given_as_a_dict_is_checked_the_same(shipped):
    with pytest.raises(LawError, match="smearing is nan"):
        law_from_dict(_set(shipped, ("energy", "smearing"), NAN))


@pytest.mark.parametrize("content, needle", [
    (b"", "not a law JSON"),
    (b"{", "not a law JSON"),
    (b"[1, 2]", "not a JSON object"),
    ("{\"schema\": \"caf\xe9\"}".encode("latin-1"), "is not UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "law JSON"),
])
def test_a_file_that_is_not_a_law_json_is_one_line(tmp_path, content, needle):
    bad = tmp_path / "law.json"
    bad.write_bytes(content)
    with pytest.raises(LawError) as err:
        load_law(bad)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_folder_and_a_missing_file_are_one_line(tmp_path):
    with pytest.raises(LawError, match="is a folder"):
        load_law(tmp_path)
    with pytest.raises(LawError, match="does not exist"):
        load_law(tmp_path / "nope.json")


def test_the_shipped_law_loads_and_predicts_as_its_document_says(shipped):
    """The checks refuse nothing in the shipped law: the file and its document predict the same."""
    import scaling

    law = load_law()
    again = law_from_dict(copy.deepcopy(shipped), "copy")
    assert law.interval == shipped["interval"] and law.component_method == shipped["components"]["method"]
    a = scaling.predict("sdxl", gpu="h100", law=law)
    b = scaling.predict("sdxl", gpu="h100", law=again)
    assert a.energy_j == b.energy_j and a.energy_lo_j == b.energy_lo_j and a.energy_hi_j == b.energy_hi_j
    assert 0 < a.energy_lo_j <= a.energy_j <= a.energy_hi_j
