"""Where a runs table lives on disk: a base parquet file and the part files appended to it.

Layout of the table ``runs.parquet``::

    runs.parquet             the base file: one complete parquet file
    runs.parquet.parts/      part-000000001.parquet, part-000000002.parquet, ...: one part per
                             append since the last compaction; keys.sqlite, the key index
    runs.parquet.lock        the writers' advisory lock

Why a base file with a side folder of parts, rather than a folder dataset at ``runs.parquet/``
or one append-only file:

- parquet cannot be appended in place (its footer closes the file), so an append-only file
  would be a format of our own; a part file is plain parquet that any tool reads;
- ``runs.parquet`` stays a file: a table written before parts existed, or a compacted one, is
  that one file, and code that asks ``path.exists()`` / ``path.is_file()``, reads its
  metadata (schema version, import report) or copies it keeps working. Turning an existing
  file into a folder of the same name cannot be done with one atomic rename; adding a side
  folder can;
- an append writes one part to a temporary name and moves it into place with ``os.replace``
  under the lock: a crash leaves the whole part or none of it, and earlier files are never
  opened for writing. Its cost does not depend on the rows already there: the key check is
  a look-up in the index (:mod:`scaling.runs._index`), not a read of the table;
- :func:`compact_runs` merges base and parts into a new base, written atomically, whose
  metadata records the last part it holds (``scaling.runs.parts_through``). From the rename
  on, readers ignore the parts it merged even if deleting them is interrupted: no row is lost
  and none is counted twice. :func:`write_runs` replaces a table the same way.

A reader takes no lock: it reads the base, then the parts after ``parts_through``, and reads
again if the base changed meanwhile (a compaction). CSV tables are one file: an append
rewrites it, as before (CSV is for interchange; sweeps write parquet).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from scaling._files import check_output
from scaling.errors import DataError
from scaling.runs._index import (
    INDEX_NAME,
    drop_index,
    extra_schema,
    fingerprint,
    indexed_keys,
    keys_of,
    list_parts,
    open_index,
    part_name,
    unify_extras,
)
from scaling.runs._io import _atomic_path, _fsync_dir, _is_csv, _lock, from_csv, to_csv
from scaling.runs._schema import _META_REPORT, _META_VERSION, COLUMNS, KEY_COLUMNS, SCHEMA_VERSION, _checked_version
from scaling.runs._validate import _coerce, _duplicate, validate_runs

_META_THROUGH = b"scaling.runs.parts_through"

RUNS_SUFFIXES = (".parquet", ".csv", ".csv.gz")
"""The names a runs table is written as: parquet, or CSV (gzip-compressed ``.csv.gz`` too)."""
_READ_TRIES = 5


def parts_dir(path: str | os.PathLike) -> Path:
    """The side folder that holds the parts appended to the table at ``path``."""
    p = Path(path)
    return p.with_name(p.name + ".parts")


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

def _schema_of(path: Path):
    """The parquet schema of ``path`` (its footer only); a broken file is a DataError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from exc


def _through(schema) -> int:
    meta = schema.metadata or {}
    return int(meta[_META_THROUGH].decode()) if _META_THROUGH in meta else 0


def _live_parts(path: Path, through: int) -> list[tuple[int, Path]]:
    return [(seq, f) for seq, f in list_parts(parts_dir(path)) if seq > through]


def _missing(path: Path) -> DataError:
    hint = ""
    if list_parts(parts_dir(path)):
        hint = (f" ({parts_dir(path)} holds parts appended to it: restore the base file, or delete that folder "
                "to delete the table)")
    return DataError(f"{path}: no such file{hint}")


def _stat_id(path: Path) -> str | None:
    try:
        return fingerprint(path)
    except FileNotFoundError:
        return None


def _read_file(path: Path, columns: Sequence[str] | None):
    """One parquet file of a table (``columns``: those it has), its schema version checked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as f:
            schema = f.schema_arrow
            _checked_version(path, schema.metadata)
            return f.read(columns=None if columns is None else [c for c in columns if c in schema.names])
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from exc


def _read_table(path: Path, columns: Sequence[str] | None = None):
    """Base and live parts as one arrow table (``columns``: only those), read consistently.

    Each file's footer is read once (version check and data); the tables are concatenated
    with permissive type promotion (a column missing from a part is empty there).
    """
    import pyarrow as pa

    for _ in range(_READ_TRIES):
        before = _stat_id(path)
        if before is None:
            raise _missing(path)
        try:
            base = _read_file(path, columns)
            tables = [base, *(_read_file(part, columns) for _, part in _live_parts(path, _through(base.schema)))]
        except FileNotFoundError:
            continue  # a compaction replaced the base or removed a part meanwhile: read again
        if _stat_id(path) != before:
            continue
        if len(tables) == 1:
            return tables[0]
        try:
            return pa.concat_tables(tables, promote_options="permissive")
        except pa.ArrowException as exc:  # an extra column with one type in a part and another in the next
            raise DataError(f"{path}: its parts do not agree on a column's type ({str(exc).splitlines()[0]}); "
                            "rule: one type per column") from exc
    raise DataError(f"{path}: the table changed under every one of {_READ_TRIES} reads (rule: compact it when "
                    "no one writes to it)")


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Schema version and stored import report of a runs parquet table, and its live part count."""
    import json

    p = Path(path)
    try:
        schema = _schema_of(p)
    except FileNotFoundError as exc:
        raise _missing(p) from exc
    meta = schema.metadata or {}
    out: dict[str, Any] = {"schema_version": None, "import_report": None,
                           "parts": len(_live_parts(p, _through(schema)))}
    if _META_VERSION in meta:
        out["schema_version"] = int(meta[_META_VERSION].decode())
    if _META_REPORT in meta:
        try:
            out["import_report"] = json.loads(meta[_META_REPORT].decode())
        except ValueError:
            out["import_report"] = None
    return out


def read_runs(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a runs table (parquet base and parts, or ``.csv`` / ``.csv.gz``)."""
    p = Path(path)
    if not p.is_file():
        raise _missing(p)
    if _is_csv(p):
        return from_csv(p)
    return validate_runs(_read_table(p).to_pandas(), str(p))


def read_run_keys(path: str | os.PathLike, columns: Sequence[str] = KEY_COLUMNS) -> pd.DataFrame:
    """Only ``columns`` of a runs table (default the key ``run_id, phase, repeat``), in their dtypes.

    A parquet table is read with column projection: the other columns are never read, so a
    resume or a merge reads a few percent of the table. The schema version is checked as in
    :func:`read_runs`; the row rules are not (they were checked when the rows were written).
    """
    p = Path(path)
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        raise DataError(f"{p}: `{unknown[0]}` is not a runs-table column (rule: one of scaling.runs.COLUMNS)")
    if not p.is_file():
        raise _missing(p)
    if _is_csv(p):
        return read_runs(p)[list(columns)]
    if set(columns) <= set(KEY_COLUMNS):
        keys = _keys_from_index(p)
        if keys is not None:
            return keys[list(columns)]
    df = _read_table(p, columns).to_pandas()
    out = {}
    for c in columns:
        s = df[c] if c in df else pd.Series([None] * len(df), dtype="object")
        out[c] = _coerce(s.reset_index(drop=True), COLUMNS[c], str(p), 1)
    return pd.DataFrame(out)


def _keys_from_index(path: Path) -> pd.DataFrame | None:
    """The key columns from the key index, when it is up to date with the files (else None)."""
    base = _schema_of(path)
    _checked_version(path, base.metadata)
    through = _through(base)
    keys = indexed_keys(path, parts_dir(path), through, _live_parts(path, through))
    if keys is None:
        return None
    run_id, phase, repeat = zip(*keys) if keys else ((), (), ())
    return pd.DataFrame({"run_id": pd.array(run_id, dtype=pd.StringDtype()),
                         "phase": pd.array(phase, dtype=pd.StringDtype()),
                         "repeat": pd.array([None if r < 0 else r for r in repeat], dtype="Int64")})


def count_runs(path: str | os.PathLike) -> int:
    """Rows of a runs table, from the parquet footers (no data is read)."""
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        raise _missing(p)
    if _is_csv(p):
        return len(read_runs(p))
    for _ in range(_READ_TRIES):
        before = _stat_id(p)
        try:
            base = _schema_of(p)
            files = [p, *(f for _, f in _live_parts(p, _through(base)))]
            n = sum(pq.read_metadata(f).num_rows for f in files)
        except FileNotFoundError:
            continue
        if _stat_id(p) == before:
            return n
    raise DataError(f"{p}: the table changed under every one of {_READ_TRIES} reads")


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

def _to_arrow(df: pd.DataFrame, report: Mapping[str, Any] | None, through: int | None):
    """Validated rows as an arrow table with the schema version (and report, ``through``) in its metadata."""
    import json

    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[_META_VERSION] = str(SCHEMA_VERSION).encode()
    if report is not None:
        meta[_META_REPORT] = json.dumps(report, default=str).encode()
    if through is not None:
        meta[_META_THROUGH] = str(through).encode()
    return table.replace_schema_metadata(meta)


def _write_table(table, path: Path) -> None:
    import pyarrow.parquet as pq

    with _atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _write_parquet(df: pd.DataFrame, path: Path, report: Mapping[str, Any] | None, *,
                   through: int | None = None) -> None:
    """Write validated rows to ``path`` atomically, with the schema version (and ``through``)."""
    _write_table(_to_arrow(df, report, through), path)


def _drop_parts(path: Path, through: int | None) -> None:
    """Delete the parts a new base holds (sequence <= ``through``; None: all) and the index."""
    folder = parts_dir(path)
    if not folder.is_dir():
        return
    drop_index(folder)
    for seq, part in list_parts(folder):
        if through is None or seq <= through:
            part.unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def write_runs(df: pd.DataFrame, path: str | os.PathLike, *, report: Mapping[str, Any] | None = None) -> Path:
    """Validate ``df`` and write it atomically as the whole table (parquet, or CSV by suffix).

    The file is written next to ``path`` under a temporary name and moved over ``path`` with
    ``os.replace``: readers see the old table or the new one, never half of one. Parts appended
    to the old table are left out from that instant and then deleted. ``report`` (a JSON-able
    mapping, e.g. an import report) is kept in the parquet metadata.
    """
    p = Path(path)
    checked = validate_runs(df, str(p), fill_defaults=True)
    if _is_csv(p):
        return to_csv(checked, p, validated=True)
    if not parts_dir(p).exists():
        _write_parquet(checked, p, report)  # a one-file table: no lock file is made, as before
        return p
    with _lock(p):
        parts = list_parts(parts_dir(p))
        through = parts[-1][0] if parts else 0
        _write_parquet(checked, p, report, through=through)
        _drop_parts(p, through)
    return p


def append_runs(rows: pd.DataFrame | Iterable[Mapping[str, Any]], path: str | os.PathLike) -> pd.DataFrame:
    """Append ``rows`` to the runs table at ``path`` (created if missing); return them, validated.

    The rows are validated (defaults filled) and written as one new part file (atomically,
    under the table's lock); earlier files are never rewritten, and the time does not grow
    with the table. A row whose ``(run_id, phase, repeat)`` is already in the table is refused
    (DataError), so a run cannot be appended twice. A crash mid-append leaves the table as it
    was. The first append to a missing ``path`` writes it as the base file. A CSV table is
    rewritten whole (read, concatenated, validated). Use :func:`read_runs` for the whole
    table, :func:`count_runs` for its length.
    """
    p = Path(path)
    new = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    source = f"{p} (appended rows)"
    new = validate_runs(new, source, fill_defaults=True)
    check_output(p, what="runs table")  # before the lock file: a missing folder, a folder, a device
    with _lock(p):
        if _is_csv(p):
            if p.exists():
                both = pd.concat([read_runs(p), new], ignore_index=True)
                to_csv(validate_runs(both, str(p), fill_defaults=True), p, validated=True)
            else:
                to_csv(new, p, validated=True)
            return new
        if not p.exists():
            if list_parts(parts_dir(p)):
                raise _missing(p)
            _write_parquet(new, p, None, through=0)
            return new
        base = _schema_of(p)
        _checked_version(p, base.metadata)
        keys = keys_of(new["run_id"], new["phase"], new["repeat"])
        folder = parts_dir(p)
        made_folder, made_index = not folder.exists(), not (folder / INDEX_NAME).exists()
        written = False
        try:
            with open_index(p, folder, _through(base)) as index:
                i = index.first_present(keys)
                if i is not None:
                    raise _duplicate(source, i + 1, new["run_id"].iloc[i], new["phase"].iloc[i],
                                     new["repeat"].iloc[i], ": it is already in the table")
                table = _to_arrow(new, None, None)
                extras = extra_schema(table.schema)
                unify_extras(index.extras, extras, Path(source))  # refused before anything is written
                seq = index.last_seq + 1
                part = folder / part_name(seq)
                _write_table(table, part)
                written = True
                _fsync_dir(folder)
                index.add(seq, part, keys, extras)
        except BaseException:
            if not written:  # refused: the index (a cache) and the folder this call made go again
                _undo_index(folder, made_folder, made_index)
            raise
    return new


def _undo_index(folder: Path, made_folder: bool, made_index: bool) -> None:
    """Remove the key index (and the parts folder) that a refused append created."""
    if made_index:
        drop_index(folder)
    if made_folder:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: a part someone else wrote meanwhile stays


def check_runs_output(path: str | os.PathLike | None, *, inputs: Iterable[str | os.PathLike | None] = (),
                      what: str = "runs table") -> Path:
    """Check, before any work, a runs table that measurements will be appended to; return its file.

    :func:`scaling._files.check_output` (not an input, a regular file or a new name in an existing,
    writable folder) with the runs-table formats (:data:`RUNS_SUFFIXES`); then an existing table
    must be one :func:`append_runs` takes: a runs parquet table whose base and parts are readable,
    of a schema version this toolkit reads, with the required columns (or a CSV runs table whose
    rows validate). A missing base whose parts folder holds parts is refused too. One
    :class:`~scaling.errors.DataError` line naming the path and the rule, so that a measurement is
    never made only to be refused when its first row is appended.
    """
    target = check_output(path, inputs=inputs, what=what, suffixes=RUNS_SUFFIXES)
    p = Path(os.fspath(path))
    try:
        _check_appendable(p)
    except DataError as exc:
        text = str(exc)
        for prefix in (f"{p}, ", f"{p}: "):  # the message names the path: say it once
            if text.startswith(prefix):
                text = text[len(prefix):]
                break
        raise DataError(f"{what} {p}: it exists and is not a runs table to append to: {text.rstrip('.')} (rule: "
                        "give a new file name, or a runs table written by this toolkit)") from None
    return target


def _check_appendable(p: Path) -> None:
    if not p.exists():
        if list_parts(parts_dir(p)):
            raise _missing(p)
        return
    if _is_csv(p):
        read_runs(p)  # what an append reads first
        return
    base = _schema_of(p)
    _checked_version(p, base.metadata)
    validate_runs(base.empty_table().to_pandas(), str(p))  # the columns and their types, on no rows
    for _, part in _live_parts(p, _through(base)):
        _checked_version(part, _schema_of(part).metadata)


def compact_runs(path: str | os.PathLike) -> int:
    """Merge the parts of the table at ``path`` into its base file; return the parts merged.

    The merged table (base rows, then each part's, in append order) is written as a new base
    atomically; only then are the parts deleted, and a crash in between leaves them ignored,
    not counted twice. The import report of the base is kept. CSV tables have no parts (0).
    """
    p = Path(path)
    if _is_csv(p):
        return 0
    with _lock(p):
        if not p.is_file():
            raise _missing(p)
        base = _schema_of(p)
        _checked_version(p, base.metadata)
        through = _through(base)
        live = _live_parts(p, through)
        if live:
            table = read_runs(p)
            report = read_metadata(p)["import_report"]
            through = live[-1][0]
            _write_parquet(table, p, report, through=through)
        _drop_parts(p, through)
    return len(live)


def remove_runs(path: str | os.PathLike) -> None:
    """Delete the table at ``path``: its base file, its parts and index, its lock file."""
    p = Path(path)
    with _lock(p):
        p.unlink(missing_ok=True)
        _drop_parts(p, None)
    p.with_name(p.name + ".lock").unlink(missing_ok=True)
