import sys
from pathlib import Path

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
