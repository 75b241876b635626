"""The failures log next to a runs table: one JSON line per setting that could not be measured.

A failure (out of memory, no GPU, a model too large, a pipeline that cannot be built) is never
an energy row: it goes to ``<table>.failures.jsonl`` with its kind and message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["failures_path", "read_failures", "record_failure"]


def failures_path(out: str | os.PathLike) -> Path:
    """The failures log next to a runs table: ``runs.parquet`` -> ``runs.failures.jsonl``."""
    p = Path(out)
    name = p.name
    for suffix in (".parquet", ".csv.gz", ".csv"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.with_name(name + ".failures.jsonl")


def read_failures(out: str | os.PathLike) -> list[dict[str, Any]]:
    """The failures recorded next to a runs table (empty when none)."""
    path = failures_path(out)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def record_failure(out: Path, record: dict[str, Any]) -> None:
    """Append one failure record (a JSON line) to the failures log of the table ``out``."""
    path = failures_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:  # one write per line: appends do not interleave
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
