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


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``SCALING_FAIL_ON_SKIP=1`` (set by ``.ci/run``) a skipped test fails the run.

    The tests skip only where an optional extra is missing or a GPU is visible; CI installs every
    extra on a CPU machine, so there a skip means a check silently did not run.
    """
    if os.environ.get("SCALING_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:  # an xdist worker: the controller counts its reports
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"SCALING_FAIL_ON_SKIP=1: {len(skipped)} test(s) skipped; a skipped check fails CI",
                            red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
