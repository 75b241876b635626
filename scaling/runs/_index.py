"""The key index of a runs table: which ``(run_id, phase, repeat)`` it already holds.

An append must refuse a key the table already has without reading the table, and a resume
wants the keys without opening every part. The index is a SQLite database (``keys.sqlite``
in the table's parts folder; the standard library's ``sqlite3``) holding every key once
(a unique constraint, so a look-up costs the same at row 10 as at row 100,000), in table
order, and the parts it has read: sequence number, file identity (inode, size, modification
time) and schema version, and the arrow types of the table's extra columns (so that an append
cannot add a column type that a read could not merge).

It is a cache, never the record: the parquet files are.

- A writer (holding the table's lock) opens it with :func:`open_index`. A different base file
  (rewritten by ``write_runs`` or a compaction), a changed or missing last part, another
  index format or a database SQLite cannot read: the index is rebuilt from the key columns
  of the files (parquet column projection: three columns, not the table). Parts after the
  last one it has read (a writer that stopped between renaming its part and updating the
  index) are read and added.
- A reader (no lock) asks :func:`indexed_keys`; it gets the keys only when the index names
  exactly the base file and the live parts now on disk, else None and reads the files.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any, Iterator, Sequence

from scaling.errors import DataError
from scaling.runs._schema import COLUMNS, KEY_COLUMNS, SCHEMA_VERSION, _checked_version, _refuse_newer

INDEX_NAME = "keys.sqlite"
_FORMAT = "1"
PART_RE = re.compile(r"^part-(\d{9})\.parquet$")
"""Names of part files; anything else in the parts folder (temporary files, the index) is not data."""

Key = tuple[str, str, int]
"""``(run_id, phase, repeat)``, an empty ``repeat`` stored as -1 (a repeat is >= 0)."""

_SCHEMA_SQL = (
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS parts (seq INTEGER PRIMARY KEY, file TEXT NOT NULL, version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS keys (run_id TEXT NOT NULL, phase TEXT NOT NULL, rep INTEGER NOT NULL, "
    "UNIQUE (run_id, phase, rep))",
)


def part_name(seq: int) -> str:
    return f"part-{seq:09d}.parquet"


def list_parts(folder: Path) -> list[tuple[int, Path]]:
    """Every part file of ``folder`` as ``(sequence number, path)``, in order."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        m = PART_RE.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry))
    return sorted(found)


def fingerprint(path: Path) -> str:
    """Identity of one file: inode, size and modification time (a rewrite changes it)."""
    st = path.stat()
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def read_file_keys(path: Path) -> tuple[list[Key], int, Any]:
    """The keys of one parquet file (its three key columns only), its schema version and the
    arrow schema of its extra (non-schema) columns."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        schema = f.schema_arrow
        version = _checked_version(path, schema.metadata)
        t = f.read(columns=list(KEY_COLUMNS))
    run_id, phase = t.column("run_id").to_pylist(), t.column("phase").to_pylist()
    repeat = t.column("repeat").fill_null(-1).to_pylist()
    return list(zip(run_id, phase, (int(r) for r in repeat))), version, extra_schema(schema)


def extra_schema(schema):
    """The fields of an arrow schema that are not runs-table columns (kept, untyped by the schema)."""
    import pyarrow as pa

    return pa.schema([f for f in schema if f.name not in COLUMNS])


def unify_extras(a, b, where: Path):
    """Extra columns of the table and of a new file together; one name with two types is a DataError."""
    import pyarrow as pa

    try:
        return pa.unify_schemas([a, b], promote_options="permissive")
    except pa.ArrowException as exc:
        raise DataError(f"{where}: an extra column has another type than in the table "
                        f"({str(exc).splitlines()[0]}) (rule: one type per column)") from exc


def _dump(schema) -> str:
    return schema.serialize().to_pybytes().hex()


def _load(text: str):
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(text)))


def keys_of(run_id: Sequence, phase: Sequence, repeat: Sequence) -> list[Key]:
    """Keys of rows given as columns (``repeat`` may hold missing values)."""
    import pandas as pd

    return [(str(a), str(b), -1 if pd.isna(r) else int(r)) for a, b, r in zip(run_id, phase, repeat)]


class KeyIndex:
    """An open, up-to-date index of a table (use :func:`open_index`, under the table's lock)."""

    def __init__(self, con: sqlite3.Connection, last_seq: int):
        self._con = con
        self.last_seq = last_seq
        self.extras = _load(dict(con.execute("SELECT k, v FROM meta").fetchall())["extras"])
        """Arrow schema of the table's extra columns (those not in the runs schema)."""

    def first_present(self, keys: Sequence[Key]) -> int | None:
        """Position in ``keys`` of the first key the table already holds, else None."""
        cur = self._con.cursor()
        for i, k in enumerate(keys):
            if cur.execute("SELECT 1 FROM keys WHERE run_id = ? AND phase = ? AND rep = ?", k).fetchone():
                return i
        return None

    def add(self, seq: int, part: Path, keys: Sequence[Key], extras) -> None:
        """Record the part ``seq`` just written, its keys and extra columns (one transaction)."""
        self.extras = unify_extras(self.extras, extras, part)
        _add(self._con, seq, part, keys, SCHEMA_VERSION, self.extras)
        self._con.commit()
        self.last_seq = seq


def _insert_keys(con: sqlite3.Connection, keys: Sequence[Key], path: Path) -> None:
    try:
        con.executemany("INSERT INTO keys VALUES (?, ?, ?)", keys)
    except sqlite3.IntegrityError as exc:  # the files themselves hold a key twice
        raise DataError(f"{path}: a (run_id, phase, repeat) key of it is already in the table ({exc}); read the "
                        "table with scaling.runs.read_runs to see which row") from exc


def _add(con: sqlite3.Connection, seq: int, part: Path, keys: Sequence[Key], version: int, extras) -> None:
    _insert_keys(con, keys, part)
    con.execute("INSERT INTO parts VALUES (?, ?, ?)", (seq, fingerprint(part), version))
    con.execute("INSERT OR REPLACE INTO meta VALUES ('extras', ?)", (_dump(extras),))


def _rebuild(con: sqlite3.Connection, base: Path, folder: Path, through: int) -> int:
    for table in ("keys", "parts", "meta"):
        con.execute(f"DELETE FROM {table}")
    keys, _, extras = read_file_keys(base)
    _insert_keys(con, keys, base)
    last = through
    for seq, part in list_parts(folder):
        if seq > through:
            keys, version, more = read_file_keys(part)
            extras = unify_extras(extras, more, part)
            _add(con, seq, part, keys, version, extras)
            last = seq
    con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("format", _FORMAT), ("base", fingerprint(base)), ("through", str(through)),
                     ("extras", _dump(extras))])
    con.commit()
    return last


def _sync(con: sqlite3.Connection, base: Path, folder: Path, through: int) -> int:
    state = dict(con.execute("SELECT k, v FROM meta").fetchall())
    last_row = con.execute("SELECT seq, file FROM parts ORDER BY seq DESC LIMIT 1").fetchone()
    last = last_row[0] if last_row else through
    stale = (state.get("format") != _FORMAT or state.get("base") != fingerprint(base)
             or state.get("through") != str(through) or "extras" not in state or last < through)
    if not stale and last_row:
        part = folder / part_name(last)
        stale = not part.is_file() or fingerprint(part) != last_row[1]
    if stale:
        return _rebuild(con, base, folder, through)
    while (folder / part_name(last + 1)).is_file():  # renamed by a writer that stopped before the index
        last += 1
        part = folder / part_name(last)
        keys, version, more = read_file_keys(part)
        extras = unify_extras(_load(state["extras"]), more, part)
        _add(con, last, part, keys, version, extras)
        con.commit()
        state["extras"] = _dump(extras)
    return last


def _connect(db: Path, base: Path, folder: Path, through: int) -> tuple[sqlite3.Connection, int]:
    """Open the index for writing and bring it up to date: ``(connection, last part read)``."""
    con = sqlite3.connect(db, timeout=60)
    try:
        for sql in _SCHEMA_SQL:
            con.execute(sql)
        con.commit()
        return con, _sync(con, base, folder, through)
    except BaseException:
        con.close()
        raise


def drop_index(folder: Path) -> None:
    for name in (INDEX_NAME, INDEX_NAME + "-journal"):
        (folder / name).unlink(missing_ok=True)


@contextlib.contextmanager
def open_index(base: Path, folder: Path, through: int) -> Iterator[KeyIndex]:
    """The index of the table whose base file is ``base``; hold the table's lock."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / INDEX_NAME
    try:
        con, last = _connect(db, base, folder, through)
    except sqlite3.DatabaseError:  # not a database, or damaged: it is a cache, so build it again
        drop_index(folder)
        con, last = _connect(db, base, folder, through)
    try:
        yield KeyIndex(con, last)
    finally:
        con.close()


def indexed_keys(base: Path, folder: Path, through: int, live: Sequence[tuple[int, Path]]) -> list[Key] | None:
    """Every key of the table in table order, from the index; None when the index cannot vouch for them.

    It vouches when it names the base file and exactly the live parts ``live`` (same files),
    read in one SQLite read transaction. No lock is taken and nothing is written.
    """
    db = folder / INDEX_NAME
    if not db.is_file():
        return None
    try:
        con = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error:
        return None
    try:
        con.execute("BEGIN")
        state = dict(con.execute("SELECT k, v FROM meta").fetchall())
        if state.get("format") != _FORMAT or state.get("base") != fingerprint(base) \
                or state.get("through") != str(through):
            return None
        recorded = con.execute("SELECT seq, file, version FROM parts ORDER BY seq").fetchall()
        if [(s, f) for s, f, _ in recorded] != [(seq, fingerprint(p)) for seq, p in live]:
            return None
        for seq, _, version in recorded:
            _refuse_newer(folder / part_name(seq), version)
        return con.execute("SELECT run_id, phase, rep FROM keys ORDER BY rowid").fetchall()
    except (sqlite3.Error, FileNotFoundError):  # busy, damaged, a part removed meanwhile: read the files
        return None
    finally:
        con.close()
