"""A missing optional package is a one-line error naming the extra, exit 2 (never a traceback)."""

import builtins

import pytest

from scaling.app.cli import main
from scaling.errors import MissingDependencyError
from scaling.extras import missing_message, require


def test_require_names_the_extra():
    with pytest.raises(MissingDependencyError, match=r"scaling measure needs nopkg_xyz"):
        require("nopkg_xyz", what="scaling measure")
    assert "[report]" in missing_message("plotly.graph_objects")
    assert "[torch]" in missing_message("diffusers")


@pytest.fixture
def no_plotly(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] == "plotly":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_cli_turns_a_missing_optional_import_into_one_line(no_plotly, tmp_path, capsys):
    assert main(["report", "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "plotly" in err and "[report]" in err and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_missing_torch_for_measure(monkeypatch, capsys):
    import scaling.extras as extras

    real = extras.importlib.util.find_spec
    monkeypatch.setattr(extras.importlib.util, "find_spec", lambda m: None if m == "torch" else real(m))
    assert main(["measure", "--model", "sd2.1", "--random-weights"]) == 2
    err = capsys.readouterr().err
    assert "scaling measure needs torch" in err and "[torch]" in err
