"""The README's generated sections and docs/ match the committed scripts and data.

Fast lane: the stamps. ``benchmarks/update_docs.py`` records, per generator, every file it read
(its sources, the law file, the public runs table, the registry tables it opened) with their
hashes; the test rehashes those files and compares (milliseconds, nothing is regenerated).
Slow lane: every generator runs again and the files must come out identical.

If this fails after a change to the code, the FLOP tables, the law or the data: run
`python benchmarks/update_docs.py` and commit the result.
"""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import update_docs  # noqa: E402


def test_generated_docs_are_stamped_with_their_current_inputs():
    problems = update_docs.check_stamps()
    assert problems == [], "stale generated docs:\n" + "\n".join(problems)


def test_manifest_records_the_inputs_that_matter():
    import json

    gens = json.loads((ROOT / update_docs.MANIFEST).read_text(encoding="utf-8"))["generators"]
    for name, entry in gens.items():
        inputs = set(entry["inputs"])
        assert f"benchmarks/{name}.py" in inputs and "benchmarks/update_docs.py" in inputs, name
        assert "datasets/public/runs.parquet" in inputs, name
        assert not any(p.startswith(".") or "__pycache__" in p or p in update_docs.OUTPUT_FILES for p in inputs), name
    for name in ("validation_table", "validate_public", "whatif_report"):  # they predict with the shipped law
        assert "scaling/_laws/default.json" in gens[name]["inputs"], name


def _consistent_copy(tmp_path: Path) -> Path:
    """The generated files and every recorded input, copied under tmp_path and stamped there as they
    stand (so that this test does not depend on the real docs being fresh)."""
    import json

    manifest = json.loads((ROOT / update_docs.MANIFEST).read_text(encoding="utf-8"))
    gens = manifest["generators"]
    for rel in set(update_docs.OUTPUT_FILES) | {rel for e in gens.values() for rel in e["inputs"]}:
        if (ROOT / rel).is_file():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, tmp_path / rel)
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    for name, entry in gens.items():
        entry["inputs"] = {rel: update_docs.file_sha(rel, tmp_path) for rel in entry["inputs"]}
        entry["inputs_sha256"] = digest = update_docs.inputs_sha(entry["inputs"])
        for key in entry["outputs"]:
            if key.startswith("readme:"):
                section = key.split(":", 1)[1]
                content = update_docs._section(readme, section)
                stamp = update_docs.STAMP_RE.match(content)
                body = content[stamp.end():] if stamp else content
                entry["outputs"][key] = update_docs.body_sha(body)
                readme = update_docs._replace_section(readme, section,
                                                      update_docs._stamp(digest, entry["outputs"][key]) + body)
            else:
                entry["outputs"][key] = update_docs.body_sha((tmp_path / key).read_text(encoding="utf-8"))
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    (tmp_path / update_docs.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return tmp_path


def test_a_changed_input_a_hand_edit_and_a_lost_section_are_caught(tmp_path):
    root = _consistent_copy(tmp_path)
    assert update_docs.check_stamps(root) == []

    law = root / "scaling" / "_laws" / "default.json"
    law.write_text(law.read_text(encoding="utf-8").replace("{", "{ ", 1), encoding="utf-8")
    problems = update_docs.check_stamps(root)
    assert problems and all("inputs changed" in p and "scaling/_laws/default.json" in p for p in problems), problems
    law.write_text(law.read_text(encoding="utf-8").replace("{ ", "{", 1), encoding="utf-8")
    assert update_docs.check_stamps(root) == []

    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    begin = text.index("<!-- generated:litefocus -->")
    readme.write_text(text[:begin] + text[begin:].replace("LiteFocus", "LiteFocu5", 1), encoding="utf-8")
    assert any("section litefocus differs" in p for p in update_docs.check_stamps(root))

    readme.write_text(text.replace("<!-- /generated:whatifs -->", ""), encoding="utf-8")
    assert any("no section <!-- generated:whatifs -->" in p for p in update_docs.check_stamps(root))

    readme.write_text(text, encoding="utf-8")
    (root / "docs" / "whatifs.md").unlink()
    assert update_docs.check_stamps(root) == ["docs/whatifs.md is missing: run python benchmarks/update_docs.py"]


@pytest.mark.slow
def test_generated_docs_regenerate_identically(public_data):
    files = update_docs.render()
    stale = [str(p.relative_to(ROOT)) for p in update_docs.stale_files(files)]
    assert stale == [], f"stale generated files: {stale}; run python benchmarks/update_docs.py"
