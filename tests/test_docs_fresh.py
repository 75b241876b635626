"""The README's generated sections and docs/ match what the committed scripts print now.

If this fails after a change to the FLOP tables, the law or the importers: run
`python benchmarks/update_docs.py` and commit the result.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_docs_are_fresh(public_data):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import update_docs

    files = update_docs.render()
    stale = [str(p.relative_to(ROOT)) for p, text in files.items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    assert stale == [], f"stale generated files: {stale}; run python benchmarks/update_docs.py"
