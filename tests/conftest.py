import os
import sys
from pathlib import Path

# scikit-learn's estimator checks (tests/test_laws.py) include one that runs the laws with array-API
# dispatch on NumPy inputs; it needs SciPy's array-API mode, read when SciPy is first imported, and
# is skipped without it. Set here, before any test module imports SciPy, so that the check runs.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PUBLIC_DATA = ROOT / "datasets" / "public"


@pytest.fixture(scope="session")
def public_data() -> Path:
    """The published measurements curated in datasets/public (part of the repository)."""
    if not (PUBLIC_DATA / "PROVENANCE.md").is_file():
        pytest.fail(f"the public data is missing from the repository: expected it at {PUBLIC_DATA}")
    return PUBLIC_DATA


MACHINE_SKIPS = (
    "root writes into read-only folders",   # tests/test_files.py: a permission refusal root never meets
    "a GPU is visible here",                # the CPU-only paths, on the device machine
    "this machine has a GPU",
    "this machine has SLURM",               # the no-SLURM refusal, where SLURM is installed
    "no /dev/full here",                    # the full-device write, on a system without /dev/full
)
"""Skip reasons that are facts of the machine, not missing parts: they do not fail CI."""


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``SCALING_FAIL_ON_SKIP=1`` (set by ``.ci/run``) a skipped test fails the run.

    CI installs every extra, so a skip there means a check silently did not run, except the skips
    in :data:`MACHINE_SKIPS`: a check that this kind of machine cannot make at all (root passes
    every permission check; a GPU or SLURM present changes what is tested). Those are listed by
    ``-ra`` and do not fail the run. GPU tests are not in the default lanes (``-m gpu`` runs them).
    """
    if os.environ.get("SCALING_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:  # an xdist worker: the controller counts its reports
        return
    skipped = [r for r in reporter.stats.get("skipped", [])
               if not any(reason in str(r.longrepr) for reason in MACHINE_SKIPS)]
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"SCALING_FAIL_ON_SKIP=1: {len(skipped)} test(s) skipped; a skipped check fails CI",
                            red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
