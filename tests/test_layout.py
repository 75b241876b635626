"""The project's layout rules and the public API."""

import re
import subprocess
import sys
from pathlib import Path

import scaling

ROOT = Path(__file__).resolve().parents[1]


def test_datasets_is_data_only():
    assert (ROOT / "datasets").is_dir()
    python_files = [p for p in (ROOT / "datasets").rglob("*") if p.suffix in (".py", ".pyc") or p.name == "__init__.py"]
    assert python_files == [], "datasets/ must hold data only: a `datasets` module would shadow Hugging Face datasets"


def test_the_public_data_ships_with_its_provenance_and_licences():
    public = ROOT / "datasets" / "public"
    provenance = (public / "PROVENANCE.md").read_text(encoding="utf-8")
    licences = (public / "LICENSES.md").read_text(encoding="utf-8")
    csvs = sorted(p.name for p in public.glob("*.csv"))
    assert len(csvs) == 7
    for name in csvs:  # every published file is described and licensed
        assert f"`{name}`" in provenance, name
        assert f"`{name}`" in licences, name
    assert (public / "runs.parquet").is_file()


def test_nothing_reads_the_developers_shared_folder():
    tracked = subprocess.run(["git", "ls-files", "*.py", "*.toml", "*.ipynb", "*.yaml", ".ci/run"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    folder = "sha" + "red"  # spelled in two parts so that this file does not match its own pattern
    pattern = re.compile(r"\.\./" + folder + r"|parents\[2\]\s*/\s*[\"']" + folder
                         + r"|parent\s*/\s*[\"']" + folder + r"[\"']")
    readers = [f for f in tracked if pattern.search((ROOT / f).read_text(encoding="utf-8"))]
    assert readers == [], "a user's clone has no developers' folder beside it"


def test_all_matches_the_public_names():
    public = {n for n in scaling.__all__ if not n.startswith("_")}
    for name in public - {"__version__"}:
        assert getattr(scaling, name) is not None, name
    assert set(dir(scaling)) == set(scaling.__all__)


def test_the_predict_path_imports_no_torch_diffusers_or_plotly():
    code = (
        "import sys, scaling\n"
        "import contextlib, io\n"
        "from scaling.app.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['predict', '--model', 'wan2.1', '--frames', '81', '--res', '480p']) == 0\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers', 'plotly', 'pandas', 'sklearn', 'statsmodels') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_registered_model_has_a_closed_form_table():
    from profilers.flops.profile import has_table
    from scaling.registry import list_models

    missing = [s.key for s in list_models() if not has_table(s)]
    assert missing == []
