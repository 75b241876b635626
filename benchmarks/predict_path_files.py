"""Which project files run functions during one `scaling predict` (parser building aside).

    python benchmarks/predict_path_files.py [predict arguments...]

Imports are warmed first, so module bodies do not count; then ``sys.setprofile`` records every
call whose code lives in this repository while ``scaling.app.cli.main`` runs. Prints one line per
file with its call count and function names, the file count without the files whose only
functions are the parsers' ``add_*`` builders, and how many times the GPU and the model are
resolved (``resolve_gpu``, ``resolve_model``). docs/architecture.md quotes the figures.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scaling.app import cli  # noqa: E402  (warm the imports)


def main(argv: list[str]) -> int:
    argv = argv or ["--model", "wan2.1", "--frames", "81", "--res", "480p"]
    with contextlib.redirect_stdout(io.StringIO()):
        cli.main(["predict", *argv])  # warm every lazy import and file read once
    calls: collections.Counter = collections.Counter()
    names: dict[str, set] = collections.defaultdict(set)
    resolved: collections.Counter = collections.Counter()

    def record(frame, event, arg):
        if event != "call":
            return
        if frame.f_code.co_name in ("resolve_gpu", "resolve_model"):
            resolved[frame.f_code.co_name] += 1
        f = frame.f_code.co_filename
        if f.startswith(str(ROOT)) and "/.venv" not in f and frame.f_code.co_name != "<module>":
            rel = os.path.relpath(f, ROOT)
            calls[rel] += 1
            names[rel].add(frame.f_code.co_name)

    sys.setprofile(record)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli.main(["predict", *argv])
    finally:
        sys.setprofile(None)
    parsers_only = {f for f, ns in names.items() if all(n.startswith("add_") or n == "build_parser" for n in ns)}
    for f in sorted(calls):
        mark = " (parser building only)" if f in parsers_only else ""
        print(f"{calls[f]:6d} {f}{mark}: {', '.join(sorted(names[f]))[:160]}")
    print(f"exit {rc}; {len(calls) - len(parsers_only)} project files run functions (parser building aside); "
          f"resolve_gpu ran {resolved['resolve_gpu']} time(s), resolve_model {resolved['resolve_model']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
