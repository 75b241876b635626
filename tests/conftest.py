import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PUBLIC_DATA = ROOT.parent / "shared" / "data" / "public"


@pytest.fixture(scope="session")
def public_data() -> Path:
    """The published measurements, read from ../shared (never copied into the project)."""
    if not (PUBLIC_DATA / "PROVENANCE.md").is_file():
        pytest.fail(f"the public data is missing: expected it at {PUBLIC_DATA}")
    return PUBLIC_DATA
