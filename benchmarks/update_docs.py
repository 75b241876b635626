"""Regenerate the generated parts of README.md and docs/, and stamp them with a hash of their inputs.

    python benchmarks/update_docs.py               # regenerate and restamp (the one command to run)
    python benchmarks/update_docs.py --check       # cheap: did an input change since? (the fast test)
    python benchmarks/update_docs.py --check-full  # regenerate in memory and compare (the slow test)

README.md holds generated sections between markers:

- ``validation-targets``: the issue's validation targets, one line each, from
  ``benchmarks/validation_table.py`` (whose full output goes to ``docs/validation_laws.md``);
- ``validate-public``: predicted against published at each public model's setting and GPU,
  from ``benchmarks/validate_public.py`` (also ``docs/validation_public.md``);
- ``litefocus``: the LiteFocus reproduction, from ``benchmarks/litefocus_speedup.py``;
- ``whatifs``: every what-if (precision, steps, few-step overhead, batch, attention) against the
  published measurements, from ``benchmarks/whatif_report.py`` (details in ``docs/whatifs.md``).
- ``physics-targets``: the issue-16 targets of the shipped law's form (met / MISSED), from
  ``benchmarks/physics_targets.py --markdown``;
- ``interval-coverage``: the coverage of the 90% energy (and time) interval before and after
  widening, per split, from ``benchmarks/interval_coverage.py --markdown``;
- ``multi-gpu-targets``: the multi-GPU law's targets, per-model and end-to-end MAPEs, its evidence
  table and the data facts behind its misses, from ``benchmarks/multi_gpu_targets.py --markdown``.

No figure in those sections is typed by hand.

Stamps. Each generator (one script above) runs in a fresh interpreter that records its inputs:
the source file of every module it imports from this repository, every file of the repository
it opens (Python's audit hook sees ``open``), and :data:`DECLARED_INPUTS` (read by pyarrow's C++
code, which the hook does not see). ``docs/generated_inputs.json`` keeps, per generator, those
files with their SHA-256 and the hash of each output. Next to each README section (an HTML
comment after its begin marker) go the hash of all its generator's inputs and the hash of the
section's text; for the docs files, which the scripts also write themselves, the manifest holds
them. ``--check`` only rehashes the recorded inputs: a changed or removed input, a section edited
by hand or a missing section makes it fail. Versions of third-party packages are not inputs (a
fresh install may differ); the slow lane's full comparison covers them, and a new import counts
because the file that gained it changed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "python benchmarks/update_docs.py"
README = "README.md"
MANIFEST = "docs/generated_inputs.json"

# generator (a script in benchmarks/) -> what it produces: "readme:SECTION" or a path under the root
GENERATORS: dict[str, tuple[str, ...]] = {
    "validation_table": ("readme:validation-targets", "docs/validation_laws.md"),
    "validate_public": ("readme:validate-public", "docs/validation_public.md"),
    "litefocus_speedup": ("readme:litefocus",),
    "whatif_report": ("readme:whatifs", "docs/whatifs.md"),
    "physics_targets": ("readme:physics-targets",),
    "interval_coverage": ("readme:interval-coverage",),
    "multi_gpu_targets": ("readme:multi-gpu-targets",),
}
# read by C++ code (pyarrow), out of the audit hook's sight: an input of every generator
DECLARED_INPUTS = ("datasets/public/runs.parquet",)
OUTPUT_FILES = frozenset({README, MANIFEST} | {k for outs in GENERATORS.values() for k in outs if ":" not in k})
TEXT_SUFFIXES = frozenset({".py", ".json", ".md", ".csv", ".yaml", ".yml", ".txt", ".toml"})
NOT_SOURCES = frozenset({"__pycache__", "build", "dist", "site-packages"})
STAMP_RE = re.compile(r"<!-- inputs sha256:(?P<inputs>[0-9a-f]{16}) body sha256:(?P<body>[0-9a-f]{16}) [^\n]*-->\n")


class GenerationError(RuntimeError):
    """A generator script failed in its subprocess."""


# -- the generators (run inside the child interpreter) --------------------------------------------

def _stdout_of(module_name: str, argv: list[str]) -> str:
    import importlib

    module = importlib.import_module(module_name)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        module.main(argv)
    return buf.getvalue().rstrip() + "\n"


def _outputs(generator: str) -> dict[str, str]:
    """The texts one generator produces, keyed as in :data:`GENERATORS`."""
    if generator == "validation_table":
        laws = _stdout_of("validation_table", [])
        targets = [line for line in laws.splitlines() if re.match(r"^\w+: \w+ \(\w+\) of .* \(target .*\)", line)]
        return {"readme:validation-targets": "```\n" + "\n".join(targets) + "\n```\n",
                "docs/validation_laws.md": "# Law validation tables\n\nGenerated by `python benchmarks/update_docs.py` "
                                           "(from `benchmarks/validation_table.py`).\n\n```\n" + laws + "```\n"}
    if generator == "validate_public":
        public = _stdout_of("validate_public", [])
        return {"readme:validate-public": public,
                "docs/validation_public.md": "# Predicted against published\n\nGenerated by `python benchmarks/"
                                             "update_docs.py` (from `benchmarks/validate_public.py`).\n\n" + public}
    if generator == "litefocus_speedup":
        return {"readme:litefocus": "```\n" + _stdout_of("litefocus_speedup", []) + "```\n"}
    if generator == "whatif_report":
        import whatif_report

        whatifs = whatif_report.build()
        return {"readme:whatifs": whatif_report.readme_table(whatifs), "docs/whatifs.md": whatif_report.render(whatifs)}
    if generator == "physics_targets":
        return {"readme:physics-targets": _stdout_of("physics_targets", ["--markdown"])}
    if generator == "interval_coverage":
        return {"readme:interval-coverage": _stdout_of("interval_coverage", ["--markdown"])}
    if generator == "multi_gpu_targets":
        return {"readme:multi-gpu-targets": _stdout_of("multi_gpu_targets", ["--markdown"])}
    raise GenerationError(f"unknown generator {generator!r}: known are {', '.join(GENERATORS)}")


def _is_read(args: tuple) -> bool:
    """Whether the arguments of an ``open`` audit event open a named file for reading only."""
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False  # a file descriptor
    if isinstance(mode, str):
        return not any(c in mode for c in "wax+")
    if isinstance(flags, int):
        return flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) == 0
    return True


def repo_file(path: str | os.PathLike, root: Path = ROOT) -> str | None:
    """``path`` relative to ``root`` (posix) if it is a source or data file of the repository, else None."""
    p = Path(os.path.realpath(path))
    try:
        rel = p.relative_to(root)
    except ValueError:
        return None
    if any(part.startswith(".") or part in NOT_SOURCES or part.endswith(".egg-info") for part in rel.parts):
        return None  # .git, virtual environments, caches, build outputs
    if rel.as_posix() in OUTPUT_FILES or not p.is_file():
        return None
    return rel.as_posix()


def _child(generator: str, out_file: str) -> None:
    """Run one generator here, recording what it reads; write its outputs and inputs to ``out_file``."""
    opened: set[str] = set()
    recording = [True]

    def audit(event: str, args: tuple) -> None:
        if recording[0] and event == "open" and _is_read(args):
            opened.add(os.fsdecode(args[0]))

    sys.addaudithook(audit)
    for p in (ROOT, ROOT / "benchmarks"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))
    outputs = _outputs(generator)
    recording[0] = False
    files = {getattr(m, "__file__", None) for m in list(sys.modules.values())} | opened
    inputs = {rel for f in files if f for rel in [repo_file(f)] if rel is not None} | set(DECLARED_INPUTS)
    Path(out_file).write_text(json.dumps({"outputs": outputs, "inputs": sorted(inputs)}), encoding="utf-8")


# -- generating (the parent) ----------------------------------------------------------------------

def _spawn(generator: str, tmp: str) -> dict:
    out = Path(tmp) / f"{generator}.json"
    code = "import sys; sys.path.insert(0, sys.argv[1]); import update_docs; update_docs._child(sys.argv[2], sys.argv[3])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks"), generator, str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise GenerationError(f"benchmarks/{generator}.py failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text(encoding="utf-8"))


def generate() -> dict[str, dict]:
    """Run every generator, each in its own interpreter: generator -> {"outputs": ..., "inputs": [...]}."""
    with tempfile.TemporaryDirectory() as tmp, \
            ThreadPoolExecutor(max_workers=min(len(GENERATORS), os.cpu_count() or 1)) as pool:
        return dict(zip(GENERATORS, pool.map(lambda g: _spawn(g, tmp), GENERATORS)))


# -- hashes and stamps ----------------------------------------------------------------------------

def file_sha(rel: str, root: Path = ROOT) -> str:
    """Short SHA-256 of a file's bytes (text files with LF line ends), or ``missing``."""
    p = root / rel
    if not p.is_file():
        return "missing"
    data = p.read_bytes()
    if p.suffix in TEXT_SUFFIXES:
        data = data.replace(b"\r\n", b"\n")
    return hashlib.sha256(data).hexdigest()[:16]


def inputs_sha(file_shas: dict[str, str]) -> str:
    """One short hash of a set of files and their hashes."""
    h = hashlib.sha256()
    for rel in sorted(file_shas):
        h.update(f"{rel} {file_shas[rel]}\n".encode())
    return h.hexdigest()[:16]


def body_sha(text: str) -> str:
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()[:16]


def _stamp(inputs: str, body: str) -> str:
    return f"<!-- inputs sha256:{inputs} body sha256:{body} (generated: {COMMAND} rewrites this section) -->\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"


def _section(text: str, name: str) -> str | None:
    """What stands between a README section's markers (its stamp and body), or None without the markers."""
    begin, end = _markers(name)
    m = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    return m.group(1) if m else None


def _replace_section(text: str, name: str, content: str) -> str:
    begin, end = _markers(name)
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise GenerationError(f"README.md has no section {begin} ... {end}")
    return pattern.sub(lambda _: f"{begin}\n{content}{end}", text)


def render(results: dict[str, dict] | None = None) -> dict[Path, str]:
    """Every file this script writes (README.md, the docs, the manifest) with its new text."""
    results = generate() if results is None else results
    readme = (ROOT / README).read_text(encoding="utf-8")
    files: dict[Path, str] = {}
    manifest: dict = {"about": f"written by `{COMMAND}`: per generator, the files it read (SHA-256, first 16 hex) "
                               "and the hash of each output; `--check` compares the files with these",
                      "generators": {}}
    for generator, res in results.items():
        shas = {rel: file_sha(rel) for rel in res["inputs"]}
        digest = inputs_sha(shas)
        outs = {}
        for key in GENERATORS[generator]:
            body = res["outputs"][key]
            outs[key] = body_sha(body)
            if key.startswith("readme:"):
                readme = _replace_section(readme, key.split(":", 1)[1], _stamp(digest, outs[key]) + body)
            else:
                files[ROOT / key] = body
        manifest["generators"][generator] = {"inputs_sha256": digest, "outputs": outs, "inputs": shas}
    files[ROOT / README] = readme
    files[ROOT / MANIFEST] = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    return files


def check_stamps(root: Path = ROOT) -> list[str]:
    """What is stale, one line each, from the stamps alone (nothing is regenerated); [] when fresh."""
    redo = f"run {COMMAND}"
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))["generators"]
    except FileNotFoundError:
        return [f"{MANIFEST} is missing: {redo}"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        return [f"{MANIFEST} is unreadable ({e!r}): {redo}"]
    problems = []
    if sorted(manifest) != sorted(GENERATORS):
        problems.append(f"{MANIFEST} records generators {sorted(manifest)}, update_docs.py has {sorted(GENERATORS)}: "
                        f"{redo}")
    readme_path = root / README
    readme = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
    for generator, outputs in GENERATORS.items():
        entry = manifest.get(generator)
        if entry is None:
            continue
        recorded = entry["inputs"]
        now = {rel: file_sha(rel, root) for rel in recorded}
        changed = sorted(rel for rel in recorded if now[rel] != recorded[rel])
        digest = inputs_sha(now)
        if changed:
            more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
            problems.append(f"{generator}: inputs changed since the docs were generated: {', '.join(changed[:8])}{more}"
                            f": {redo}")
        if set(entry["outputs"]) != set(outputs):
            problems.append(f"{generator}: {MANIFEST} records outputs {sorted(entry['outputs'])}, expected "
                            f"{sorted(outputs)}: {redo}")
            continue
        for key in outputs:
            if key.startswith("readme:"):
                name = key.split(":", 1)[1]
                content = _section(readme, name)
                stamp = STAMP_RE.match(content) if content is not None else None
                if content is None:
                    problems.append(f"README.md has no section {' ... '.join(_markers(name))}: restore the markers, "
                                    f"then {redo}")
                elif stamp is None:
                    problems.append(f"README.md section {name} has no stamp: {redo}")
                elif body_sha(content[stamp.end():]) != stamp["body"] or stamp["body"] != entry["outputs"][key]:
                    problems.append(f"README.md section {name} differs from what {generator} printed "
                                    f"(edited by hand?): {redo}")
                elif stamp["inputs"] != digest and not changed:
                    problems.append(f"README.md section {name} is stamped for other inputs than {MANIFEST}'s: {redo}")
            else:
                p = root / key
                if not p.is_file():
                    problems.append(f"{key} is missing: {redo}")
                elif body_sha(p.read_text(encoding="utf-8")) != entry["outputs"][key]:
                    problems.append(f"{key} differs from what {generator} printed (edited by hand?): {redo}")
        if entry["inputs_sha256"] != inputs_sha(recorded):
            problems.append(f"{generator}: {MANIFEST} is inconsistent (edited by hand?): {redo}")
    return problems


def stale_files(files: dict[Path, str]) -> list[Path]:
    return [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if an input changed since the docs were generated (hashes only, fast)")
    mode.add_argument("--check-full", action="store_true",
                      help="exit 1 if regenerating would change any file (runs every generator); write nothing")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    if a.check:
        problems = check_stamps()
        for line in problems:
            print(f"stale: {line}")
        if not problems:
            print("fresh: every generated section is stamped with its current inputs")
        return 1 if problems else 0
    try:
        files = render()
    except GenerationError as e:
        print(f"update_docs: {e}", file=sys.stderr)
        return 1
    if a.check_full:
        stale = stale_files(files)
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} ({COMMAND} rewrites it)")
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"wrote {', '.join(str(path.relative_to(ROOT)) for path in files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
