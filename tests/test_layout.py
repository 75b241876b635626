"""The project's layout rules and the public API."""

import subprocess
import sys
from pathlib import Path

import scaling

ROOT = Path(__file__).resolve().parents[1]


def test_datasets_is_data_only():
    assert (ROOT / "datasets").is_dir()
    python_files = [p for p in (ROOT / "datasets").rglob("*") if p.suffix in (".py", ".pyc") or p.name == "__init__.py"]
    assert python_files == [], "datasets/ must hold data only: a `datasets` module would shadow Hugging Face datasets"


def test_public_data_is_not_copied_into_the_project():
    names = ("video_killed_energy_budget", "benchlab_t2v", "diffused_responsibility", "leybzon_sd35", "ml_energy_leaderboard")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    copies = [f for f in tracked if f.endswith(".csv") and any(n in Path(f).name for n in names)]
    assert copies == []


def test_all_matches_the_public_names():
    public = {n for n in scaling.__all__ if not n.startswith("_")}
    for name in public - {"__version__"}:
        assert getattr(scaling, name) is not None, name
    assert set(dir(scaling)) == set(scaling.__all__)


def test_the_predict_path_imports_no_torch_diffusers_or_plotly():
    code = (
        "import sys, scaling\n"
        "from profilers.flops.profile import profile\n"
        "p = profile(scaling.make_setting('wan2.1', frames=81, res='480p'))\n"
        "assert p.total_flop > 0\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers', 'plotly') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_every_registered_model_has_a_closed_form_table():
    from profilers.flops.closed_form import has_table
    from scaling.registry import list_models

    missing = [s.key for s in list_models() if not has_table(s)]
    assert missing == []
