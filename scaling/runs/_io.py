"""File plumbing of the runs table: CSV in and out, atomic replacement, the writers' lock."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import pandas as pd

from scaling._files import atomic_output, lock_file
from scaling.errors import DataError
from scaling.runs._validate import validate_runs


def _is_csv(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(".csv") or name.endswith(".csv.gz")


def _open_text(path: Path) -> str:
    """The whole file as text; a binary or undecodable file is a DataError."""
    try:
        if path.name.lower().endswith(".gz"):
            import gzip

            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if b"\x00" in data[:65536]:
        raise DataError(f"{path}: not a text CSV file (it holds binary data)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file (byte {exc.start} is not UTF-8)") from exc


def _read_csv_text(path: Path) -> pd.DataFrame:
    """Read a CSV as text cells (empty cell -> missing), checking its structure.

    Every record must have one field per header column: a short last record is what a
    truncated file looks like, and it is refused instead of being padded with empty cells.
    """
    import csv
    import io

    text = _open_text(path)
    if not text.strip():
        raise DataError(f"{path}: empty file (rule: a CSV header, then one row per line)")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    try:
        header = [h.strip() for h in next(reader)]
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise DataError(f"{path}, column `{dup[0]}`: appears twice in the header (rule: unique column names)")
        if any(not h for h in header):
            raise DataError(f"{path}: an empty column name in the header (rule: every column is named)")
        width = len(header)
        for rec in reader:
            if not rec:
                continue  # blank line
            if len(rec) != width:
                n = len(rows) + 1
                if len(rec) < width:
                    raise DataError(f"{path}, row {n}, column `{header[len(rec)]}`: missing; the row has {len(rec)} of "
                                    f"{width} fields (rule: one value per column; is the file truncated?)")
                raise DataError(f"{path}, row {n}: {len(rec)} fields where the header has {width} (rule: one value "
                                "per column; an unquoted comma?)")
            rows.append(rec)
    except csv.Error as exc:
        raise DataError(f"{path}, row {len(rows) + 1}: not a well-formed CSV ({exc}); is the file truncated?") from exc
    except StopIteration as exc:
        raise DataError(f"{path}: empty file (rule: a CSV header, then one row per line)") from exc
    df = pd.DataFrame(rows, columns=header, dtype=object)
    if len(df):
        df = df.where(df != "", None)
    return df


def from_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a runs table exported as CSV (:func:`to_csv`) and validate it."""
    p = Path(path)
    df = _read_csv_text(p)
    return validate_runs(df, str(p))


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` at once.

    :func:`scaling._files.atomic_output`: a crash, an error, Ctrl-C or SIGTERM before the replace
    leaves ``path`` as it was and removes the temporary file (one a ``kill -9`` left is removed
    by the next write); a new file gets the umask's permissions, a replaced one keeps its mode;
    a symlink is written through; a folder, a device or a FIFO is refused, and an ``OSError``
    is one :class:`~scaling.errors.OutputError` line naming the path.
    """
    with atomic_output(path, what="runs table") as tmp:
        yield tmp


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; elsewhere a no-op)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def to_csv(df: pd.DataFrame, path: str | os.PathLike, *, validated: bool = False) -> Path:
    """Write a runs table as CSV (atomically). Empty cells are missing values."""
    p = Path(path)
    checked = df if validated else validate_runs(df, str(p), fill_defaults=True)
    out = checked.copy()
    ts = out["timestamp"]
    out["timestamp"] = ts.map(lambda t: t.isoformat() if not pd.isna(t) else None).astype("object")
    with _atomic_path(p) as tmp:
        out.to_csv(tmp, index=False, float_format="%.17g",
                   compression="gzip" if p.name.lower().endswith(".gz") else None)
    return p


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Advisory lock so that concurrent appends (sweep jobs) do not race each other:
    ``<table>.lock`` (:func:`scaling._files.lock_file`; waits for the holder). A lock file this
    call created is removed again when the block raises (a refused append leaves no file)."""
    with lock_file(path.with_name(path.name + ".lock")):
        yield

