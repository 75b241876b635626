"""The runs table (scaling/runs/): schema, validation, atomic write and append, parts and compaction, CSV."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scaling.errors import DataError
from scaling.runs import (
    COLUMNS,
    PHASES,
    PUBLIC_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    add_flag,
    append_runs,
    compact_runs,
    count_runs,
    empty_runs,
    from_csv,
    has_flag,
    parts_dir,
    read_metadata,
    read_run_keys,
    read_runs,
    remove_runs,
    schema_markdown,
    schema_table,
    to_csv,
    totals,
    validate_runs,
    write_runs,
)

ROOT = Path(__file__).resolve().parents[1]


def _row(i: int = 0, **kw) -> dict:
    row = dict(run_id=f"run-{i}", source="runner", model="Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
               model_key="wan2.1-t2v-1.3b", modality="video", gpu="NVIDIA H100 80GB HBM3", gpu_key="h100-sxm",
               precision="bf16", height=480, width=832, frames=81, steps=50, guidance_scale=5.0, cfg=True,
               batch_size=1, energy_gpu_j=1000.0 + i, energy_cpu_j=50.5, duration_s=10.25, phase="total",
               meter="nvml", repeat=0, timestamp=f"2025-06-01T10:00:0{i % 10}Z", notes=f"prompt {i}")
    row.update(kw)
    return row


def _table(n: int = 3, **kw) -> pd.DataFrame:
    return validate_runs(pd.DataFrame([_row(i, **kw) for i in range(n)]), "test", fill_defaults=True)


# -- schema ----------------------------------------------------------------------------------

def test_schema_is_a_superset_of_the_public_columns_and_documents_each_column():
    names = [c.name for c in SCHEMA]
    assert len(names) == len(set(names))
    assert set(PUBLIC_COLUMNS) <= set(names)
    for extra in ("run_id", "timestamp", "repeat", "warmup", "idle_power_w", "flop", "package_version",
                  "model_key", "gpu_key", "cfg", "estimated", "flags", "flop_text_encoder", "flop_denoiser",
                  "flop_decoder", "flop_vocoder", "flop_error"):
        assert extra in names
    for c in SCHEMA:
        assert c.dtype in ("string", "Int64", "float64", "boolean", "datetime")
        assert c.unit and c.description
    assert COLUMNS["energy_gpu_j"].unit == "J" and COLUMNS["duration_s"].unit == "s" and COLUMNS["flop"].unit == "FLOP"
    assert {"total", "text_encoder", "denoiser", "decoder", "vocoder", "generate", "upsample", "denoise"} <= set(PHASES)
    assert list(schema_table()["column"]) == names


def test_datasets_readme_documents_every_column_and_the_version():
    text = (ROOT / "datasets" / "README.md").read_text(encoding="utf-8")
    for c in SCHEMA:
        assert f"`{c.name}`" in text, c.name
    assert f"schema version {SCHEMA_VERSION}" in text.lower()
    assert schema_markdown() in text  # the README's table is the schema's, cell for cell
    for word in ("runs.parquet.parts/", "part-000000001.parquet", "keys.sqlite", "compact_runs", "read_run_keys"):
        assert word in text, word  # the on-disk layout is documented


def test_empty_runs_round_trips(tmp_path):
    e = empty_runs()
    assert list(e.columns) == [c.name for c in SCHEMA] and len(e) == 0
    write_runs(e, tmp_path / "e.parquet")
    back = read_runs(tmp_path / "e.parquet")
    assert len(back) == 0 and list(back.columns) == list(e.columns)


# -- round trips -----------------------------------------------------------------------------

def test_parquet_round_trip_is_exact_and_stores_the_schema_version(tmp_path):
    t = _table(4)
    t.loc[1, "energy_cpu_j"] = np.nan
    t.loc[2, "flags"] = "cpu_offload;first_call"
    path = write_runs(t, tmp_path / "runs.parquet", report={"rows_read": 4})
    meta = read_metadata(path)
    assert meta["schema_version"] == SCHEMA_VERSION and meta["import_report"] == {"rows_read": 4}
    back = read_runs(path)
    pd.testing.assert_frame_equal(back, t)
    assert str(back["timestamp"].dtype) == "datetime64[ns, UTC]" and str(back["steps"].dtype) == "Int64"


def test_csv_round_trip_is_exact(tmp_path):
    t = _table(3)
    t.loc[0, "energy_gpu_j"] = 1 / 3          # full float precision survives
    t.loc[1, "cfg"] = pd.NA
    t.loc[2, "notes"] = 'quoted, "comma"\nand a newline'
    to_csv(t, tmp_path / "runs.csv")
    back = from_csv(tmp_path / "runs.csv")
    pd.testing.assert_frame_equal(back, t)
    assert read_runs(tmp_path / "runs.csv").equals(back)


def test_defaults_are_filled_when_rows_are_created_not_when_read(tmp_path):
    minimal = [dict(run_id="a", source="runner", model="wan2.1", modality="video", energy_gpu_j=5.0, meter="nvml")]
    out = append_runs(minimal, tmp_path / "runs.parquet")
    row = out.iloc[0]
    assert (row["phase"], row["n_repeats"], row["batch_size"], row["gpu_count"], row["flags"]) == ("total", 1, 1, 1, "")
    assert not row["estimated"] and row["package_version"]
    pd.DataFrame(minimal).to_csv(tmp_path / "raw.csv", index=False)
    with pytest.raises(DataError, match=r"column `gpu_count`: missing required column"):
        read_runs(tmp_path / "raw.csv")


# -- validation ------------------------------------------------------------------------------

BAD_CELLS = [
    ("energy_gpu_j", 0.0, r"row 2, column `energy_gpu_j`: 0.0 breaks the rule: an energy must be > 0 J"),
    ("energy_gpu_j", -1.5, r"row 2, column `energy_gpu_j`: -1.5 breaks the rule: an energy must be > 0 J"),
    ("energy_gpu_j", float("inf"), r"row 2, column `energy_gpu_j`: inf breaks the rule: an energy must be finite"),
    ("energy_cpu_j", -2.0, r"row 2, column `energy_cpu_j`"),
    ("duration_s", 0.0, r"row 2, column `duration_s`: 0.0 breaks the rule"),
    ("phase", "warmup", r"row 2, column `phase`: 'warmup' breaks the rule: phase must be one of total"),
    ("modality", "text", r"row 2, column `modality`"),
    ("precision", "fp64", r"row 2, column `precision`"),
    ("steps", "many", r"row 2, column `steps`: 'many' breaks the rule: a number"),
    ("steps", 2.5, r"row 2, column `steps`: 2.5 breaks the rule: a whole number"),
    ("batch_size", 0, r"row 2, column `batch_size`"),
    ("cfg", "maybe", r"row 2, column `cfg`: 'maybe' breaks the rule: true or false"),
    ("timestamp", "yesterday", r"row 2, column `timestamp`"),
    ("flags", "Bad Flag", r"row 2, column `flags`"),
    ("run_id", None, r"row 2, column `run_id`: empty cell breaks the rule: a value is required"),
    ("meter", "", r"row 2, column `meter`: empty cell"),
]


@pytest.mark.parametrize("column,value,message", BAD_CELLS, ids=[f"{c}={v!r}" for c, v, _ in BAD_CELLS])
def test_a_bad_cell_names_source_row_column_and_rule(column, value, message):
    rows = [_row(0), _row(1, **{column: value}), _row(2)]
    with pytest.raises(DataError, match=message) as info:
        validate_runs(pd.DataFrame(rows), "my.parquet", fill_defaults=True)
    assert str(info.value).startswith("my.parquet, ") and "\n" not in str(info.value)


def test_every_row_needs_an_energy():
    rows = [_row(0), _row(1, energy_gpu_j=None, energy_cpu_j=None)]
    with pytest.raises(DataError, match=r"row 2, column `energy_gpu_j`: no energy breaks the rule: each row needs"):
        validate_runs(pd.DataFrame(rows), "x", fill_defaults=True)
    # a CPU-only run (no GPU energy) is valid
    validate_runs(pd.DataFrame([_row(0, energy_gpu_j=None, estimated=True)]), "x", fill_defaults=True)


def test_missing_required_column_and_duplicate_key():
    df = pd.DataFrame([_row(0)]).drop(columns=["meter"])
    with pytest.raises(DataError, match=r"^x, column `meter`: missing required column"):
        validate_runs(df, "x", fill_defaults=True)
    with pytest.raises(DataError, match=r"row 2, column `run_id`: 'run-0' with phase 'total' and repeat 0 appears twice"):
        validate_runs(pd.DataFrame([_row(0), _row(0)]), "x", fill_defaults=True)
    # the same call may have several phases and several repeats
    ok = [_row(0), _row(0, phase="denoiser"), _row(0, repeat=1)]
    assert len(validate_runs(pd.DataFrame(ok), "x", fill_defaults=True)) == 3


def test_extra_columns_are_kept_after_the_schema_ones():
    df = pd.DataFrame([_row(0, experiment="sweep-a")])
    out = validate_runs(df, "x", fill_defaults=True)
    assert out.columns[-1] == "experiment" and out["experiment"].iloc[0] == "sweep-a"


def test_read_refuses_broken_files(tmp_path):
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"junk.parquet: not a readable parquet file"):
        read_runs(tmp_path / "junk.parquet")
    with pytest.raises(DataError, match=r"no such file"):
        read_runs(tmp_path / "missing.parquet")
    # a parquet file without the schema version was not written by us
    _table(2).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(DataError, match=r"no runs-table schema version"):
        read_runs(tmp_path / "plain.parquet")
    # a newer schema is refused, not misread
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(_table(1), preserve_index=False)
    table = table.replace_schema_metadata({**table.schema.metadata, b"scaling.runs.schema_version": b"99"})
    pq.write_table(table, tmp_path / "new.parquet")
    with pytest.raises(DataError, match=r"schema version 99"):
        read_runs(tmp_path / "new.parquet")


def test_truncated_csv_is_refused_with_its_row(tmp_path):
    to_csv(_table(3), tmp_path / "runs.csv")
    text = (tmp_path / "runs.csv").read_text()
    (tmp_path / "cut.csv").write_text(text[: text.rindex("prompt 2") - 30])
    with pytest.raises(DataError, match=r"cut.csv, row 3, column `\w+`: missing; the row has \d+ of \d+ fields"):
        read_runs(tmp_path / "cut.csv")
    (tmp_path / "quote.csv").write_text(text.replace("prompt 1", '"prompt 1'))
    with pytest.raises(DataError, match=r"quote.csv, row \d+"):
        read_runs(tmp_path / "quote.csv")


# -- atomic writes ---------------------------------------------------------------------------

def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _snapshot(path: Path) -> dict[str, bytes]:
    """Every data file of the table at ``path`` (base and parts), by name."""
    files = [path, *(parts_dir(path).glob("part-*.parquet") if parts_dir(path).is_dir() else [])]
    return {f.name: f.read_bytes() for f in files if f.exists()}


def test_write_is_atomic_when_replace_fails(tmp_path, monkeypatch):
    path = tmp_path / "runs.parquet"
    write_runs(_table(2), path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_runs(_table(5), path)
    assert path.read_bytes() == before and len(read_runs(path)) == 2 and _leftovers(tmp_path) == []


def test_write_is_atomic_when_the_writer_crashes_midway(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    path = tmp_path / "runs.parquet"
    write_runs(_table(2), path)
    before = path.read_bytes()

    def half_write(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half a file")
        raise RuntimeError("killed")

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(RuntimeError):
        write_runs(_table(5), path)
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_append_keeps_earlier_rows_and_refuses_duplicates(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_table(2), path)
    out = append_runs([_row(7), _row(8)], path)
    # append_runs returns the rows it appended (returning the whole table would read it all)
    assert list(out["run_id"]) == ["run-7", "run-8"]
    assert list(read_runs(path)["run_id"]) == ["run-0", "run-1", "run-7", "run-8"]
    before = _snapshot(path)
    with pytest.raises(DataError, match=r"run-7.*appears twice"):
        append_runs([_row(7)], path)
    with pytest.raises(DataError, match=r"appended rows\), row 1, column `phase`"):
        append_runs([_row(9, phase="bogus")], path)
    assert _snapshot(path) == before
    back = read_runs(path)
    assert len(back) == 4 and back["energy_gpu_j"].tolist() == [1000.0, 1001.0, 1007.0, 1008.0]


def test_append_keeps_the_old_file_when_the_write_crashes(tmp_path, monkeypatch):
    path = tmp_path / "runs.parquet"
    append_runs(_table(3), path)
    before = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        append_runs([_row(5)], path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert list(read_runs(path)["run_id"]) == ["run-0", "run-1", "run-2"]
    # the failed append made the parts folder and its key index: both are gone again
    assert _leftovers(tmp_path) == [] and not parts_dir(path).exists()


def test_append_csv(tmp_path):
    path = tmp_path / "runs.csv"
    append_runs(_table(1), path)
    append_runs([_row(3)], path)
    assert list(read_runs(path)["run_id"]) == ["run-0", "run-3"]


def test_a_killed_writer_leaves_the_old_file(tmp_path):
    """A real SIGKILL in the middle of a write: the previous file stays readable and whole."""
    path = tmp_path / "runs.parquet"
    write_runs(_table(2), path)
    before = path.read_bytes()
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import pyarrow.parquet as pq
        from pathlib import Path
        real = pq.write_table
        def slow(table, where, **kw):
            Path(where).write_bytes(b"PAR1 partial")
            print("writing", flush=True)
            time.sleep(60)
        pq.write_table = slow
        import pandas as pd
        from scaling.runs import write_runs, read_runs
        write_runs(read_runs({str(path)!r}).head(1), {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert path.read_bytes() == before and len(read_runs(path)) == 2


# -- the table on disk: base file, parts, key index, compaction --------------------------------

def _call(i: int, phases=("total", "text_encoder", "denoiser", "decoder"), repeat: int = 0) -> list[dict]:
    """The rows of one measured call: a total and its phases, as the runner appends them."""
    return [_row(i, run_id=f"wan/480p/{i}", phase=ph, repeat=repeat, energy_gpu_j=100.0 + i + k)
            for k, ph in enumerate(phases)]


def _parts(path: Path) -> list[str]:
    return sorted(p.name for p in parts_dir(path).glob("part-*.parquet")) if parts_dir(path).is_dir() else []


def test_appending_many_calls_keeps_every_row_in_order(tmp_path):
    path = tmp_path / "runs.parquet"
    for i in range(40):
        appended = append_runs(_call(i), path)
        assert len(appended) == 4
    back = read_runs(path)
    assert len(back) == 160 == count_runs(path)
    assert back["run_id"].tolist() == [f"wan/480p/{i}" for i in range(40) for _ in range(4)]
    assert back["energy_gpu_j"].tolist() == [100.0 + i + k for i in range(40) for k in range(4)]
    # the first append wrote the base file; each later one added one part and left the rest alone
    assert path.is_file() and len(_parts(path)) == 39 and read_metadata(path)["parts"] == 39
    pd.testing.assert_frame_equal(back, validate_runs(pd.DataFrame([r for i in range(40) for r in _call(i)]),
                                                      "x", fill_defaults=True))


def test_an_append_leaves_earlier_files_untouched(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs(_call(1), path)
    before = {name: (parts_dir(path) / name).stat().st_mtime_ns for name in _parts(path)}
    base = path.read_bytes()
    append_runs(_call(2), path)
    assert path.read_bytes() == base
    assert {name: (parts_dir(path) / name).stat().st_mtime_ns for name in before} == before


def test_uniqueness_is_enforced_against_the_base_the_parts_and_the_new_rows(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)                      # base
    append_runs(_call(1), path)                      # a part
    before = _snapshot(path)
    with pytest.raises(DataError, match=r"appended rows\), row 2, column `run_id`: 'wan/480p/0' with phase "
                                        r"'text_encoder' and repeat 0 appears twice: it is already in the table"):
        append_runs([_call(5)[0], _call(0)[1]], path)
    with pytest.raises(DataError, match=r"'wan/480p/1' with phase 'decoder' .*already in the table"):
        append_runs(_call(1)[3:], path)
    with pytest.raises(DataError, match=r"row 2, column `run_id`: 'wan/480p/7' .*appears twice \(rule"):
        append_runs([_call(7)[0], _call(7)[0]], path)
    assert _snapshot(path) == before
    # another repeat or another phase of the same call is a new key
    append_runs(_call(1, repeat=1), path)
    append_runs(_call(0, phases=("vocoder",)), path)
    assert count_runs(path) == 8 + 4 + 1


def test_a_crash_mid_append_leaves_the_table_readable_and_no_stray_files(tmp_path, monkeypatch):
    path = tmp_path / "runs.parquet"
    for i in range(3):
        append_runs(_call(i), path)
    before = _snapshot(path)

    def boom(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="power cut"):
        append_runs(_call(3), path)
    monkeypatch.undo()
    assert _snapshot(path) == before and count_runs(path) == 12
    assert _leftovers(tmp_path) == [] and _leftovers(parts_dir(path)) == []
    assert sorted(p.name for p in parts_dir(path).iterdir() if not p.name.startswith("keys.sqlite")) == _parts(path)
    append_runs(_call(3), path)  # the crashed call can be appended again
    assert read_runs(path)["run_id"].nunique() == 4


def test_a_temporary_file_left_by_a_killed_writer_is_not_data(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs(_call(1), path)
    # what a SIGKILL between writing and renaming leaves: a temporary file beside the parts
    (parts_dir(path) / ".part-000000002.parquet.x1y2.tmp").write_bytes((parts_dir(path) / _parts(path)[0]).read_bytes())
    assert count_runs(path) == 8 and len(read_runs(path)) == 8
    append_runs(_call(2), path)
    assert len(read_runs(path)) == 12


def test_a_writer_that_stops_before_updating_the_index_is_caught_up(tmp_path, monkeypatch):
    from scaling.runs._index import KeyIndex

    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs(_call(1), path)

    def die(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(KeyIndex, "add", die)
    with pytest.raises(KeyboardInterrupt):
        append_runs(_call(2), path)        # the part was renamed into place: the call is in the table
    monkeypatch.undo()
    assert count_runs(path) == 12
    with pytest.raises(DataError, match=r"wan/480p/2.*already in the table"):
        append_runs(_call(2), path)        # the index learns the part it missed
    append_runs(_call(3), path)
    assert read_runs(path)["run_id"].nunique() == 4 and len(_parts(path)) == 3


def test_the_key_index_is_a_cache_that_is_rebuilt(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs(_call(1), path)
    db = parts_dir(path) / "keys.sqlite"
    assert db.is_file()
    for damage in (lambda: db.unlink(), lambda: db.write_bytes(b"this is not a database")):
        damage()
        with pytest.raises(DataError, match=r"wan/480p/1.*already in the table"):
            append_runs(_call(1), path)
        with pytest.raises(DataError, match=r"wan/480p/0.*already in the table"):
            append_runs(_call(0), path)
    append_runs(_call(2), path)
    assert count_runs(path) == 12


def test_compact_keeps_every_row_and_reads_the_same(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "runs.parquet"
    write_runs(_table(2), path, report={"rows_read": 2})
    for i in range(25):
        append_runs(_call(i), path)
    as_parts = read_runs(path)
    keys = read_run_keys(path)
    assert compact_runs(path) == 25
    assert not parts_dir(path).exists() and read_metadata(path)["parts"] == 0
    compacted = read_runs(path)
    pd.testing.assert_frame_equal(compacted, as_parts)
    pd.testing.assert_frame_equal(read_run_keys(path), keys)
    # the compacted base alone is the whole table, and keeps the import report
    pd.testing.assert_frame_equal(validate_runs(pq.read_table(path).to_pandas(), "x"), as_parts)
    assert read_metadata(path)["import_report"] == {"rows_read": 2} and len(compacted) == 2 + 100
    assert compact_runs(path) == 0 and read_runs(path).equals(compacted)  # nothing to merge
    append_runs(_call(99), path)          # appending after a compaction starts a new part
    assert count_runs(path) == 106 and len(_parts(path)) == 1
    with pytest.raises(DataError, match=r"already in the table"):
        append_runs(_call(3), path)       # keys merged into the base are still known


def test_a_crash_during_compaction_loses_no_row_and_counts_none_twice(tmp_path, monkeypatch):
    from scaling.runs import _store

    path = tmp_path / "runs.parquet"
    for i in range(6):
        append_runs(_call(i), path)
    whole = read_runs(path)
    before = _snapshot(path)
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError):
        compact_runs(path)                # before the new base is in place: nothing changed
    monkeypatch.undo()
    assert _snapshot(path) == before and _leftovers(tmp_path) == []

    def die(p, through):
        raise KeyboardInterrupt

    monkeypatch.setattr(_store, "_drop_parts", die)
    with pytest.raises(KeyboardInterrupt):
        compact_runs(path)                # new base in place, old parts still on disk
    monkeypatch.undo()
    assert len(_parts(path)) == 5 and read_metadata(path)["parts"] == 0
    pd.testing.assert_frame_equal(read_runs(path), whole)
    assert count_runs(path) == len(whole)
    append_runs(_call(6), path)           # the next part is numbered after the merged ones
    assert count_runs(path) == len(whole) + 4
    with pytest.raises(DataError, match=r"already in the table"):
        append_runs(_call(5), path)
    assert compact_runs(path) == 1 and _parts(path) == [] and len(read_runs(path)) == len(whole) + 4


def test_an_old_single_file_table_still_reads_appends_and_compacts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # a runs.parquet as the one-file store wrote it: schema version, no parts metadata
    path = tmp_path / "runs.parquet"
    old = _table(3)
    table = pa.Table.from_pandas(old, preserve_index=False)
    table = table.replace_schema_metadata({**table.schema.metadata, b"scaling.runs.schema_version": b"1",
                                           b"scaling.runs.import_report": b'{"rows_read": 3}'})
    pq.write_table(table, path)
    original = path.read_bytes()
    pd.testing.assert_frame_equal(read_runs(path), old)
    append_runs(_call(0), path)
    append_runs(_call(1), path)
    assert path.read_bytes() == original and len(_parts(path)) == 2   # a side folder, the file untouched
    both = read_runs(path)
    assert both["run_id"].tolist()[:3] == ["run-0", "run-1", "run-2"] and len(both) == 11
    with pytest.raises(DataError, match=r"'run-1' with phase 'total' and repeat 0 appears twice"):
        append_runs([_row(1)], path)
    assert compact_runs(path) == 2 and not parts_dir(path).exists()
    pd.testing.assert_frame_equal(read_runs(path), both)
    assert read_metadata(path)["import_report"] == {"rows_read": 3}


def test_write_runs_replaces_a_table_with_parts(tmp_path):
    path = tmp_path / "runs.parquet"
    for i in range(3):
        append_runs(_call(i), path)
    write_runs(_table(2), path)
    assert list(read_runs(path)["run_id"]) == ["run-0", "run-1"] and not parts_dir(path).exists()
    append_runs(_call(0), path)  # the calls of the replaced table are gone, so this is new
    assert count_runs(path) == 6


def test_a_part_from_a_newer_schema_is_refused(tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs(_call(1), path)
    part = parts_dir(path) / _parts(path)[0]
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata,
                                                  b"scaling.runs.schema_version": b"99"}), part)
    for read in (read_runs, read_run_keys):
        with pytest.raises(DataError, match=r"part-000000001.parquet: written with runs schema version 99"):
            read(path)


def test_read_run_keys_reads_the_key_columns_in_their_dtypes(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs(_call(1, repeat=2), path)
    keys = read_run_keys(path)
    assert list(keys.columns) == ["run_id", "phase", "repeat"] and len(keys) == 8
    assert str(keys["repeat"].dtype) == "Int64" and keys["repeat"].tolist() == [0] * 4 + [2] * 4
    two = read_run_keys(path, columns=("run_id", "energy_gpu_j"))
    assert list(two.columns) == ["run_id", "energy_gpu_j"] and two["energy_gpu_j"].iloc[0] == 100.0
    with pytest.raises(DataError, match=r"`bogus` is not a runs-table column"):
        read_run_keys(path, columns=("run_id", "bogus"))
    with pytest.raises(DataError, match=r"no such file"):
        read_run_keys(tmp_path / "missing.parquet")
    to_csv(read_runs(path), tmp_path / "runs.csv")
    pd.testing.assert_frame_equal(read_run_keys(tmp_path / "runs.csv"), keys)


def test_read_run_keys_comes_from_the_index_only_when_it_matches_the_files(tmp_path, monkeypatch):
    from scaling.runs import _store

    path = tmp_path / "runs.parquet"
    for i in range(5):
        append_runs(_call(i, repeat=i % 2), path)
    from_files = read_run_keys(path, columns=("run_id", "phase", "repeat", "steps"))[["run_id", "phase", "repeat"]]
    real_read = _store._read_table

    def no_file_reads(*a, **kw):
        raise AssertionError("read the parquet files")

    monkeypatch.setattr(_store, "_read_table", no_file_reads)
    pd.testing.assert_frame_equal(read_run_keys(path), from_files)       # from keys.sqlite, in table order
    pd.testing.assert_frame_equal(read_run_keys(path, columns=("repeat", "run_id")), from_files[["repeat", "run_id"]])
    # a part the index has not seen (a writer stopped before updating it): the files are read
    import shutil

    extra = parts_dir(path) / "part-000000005.parquet"
    monkeypatch.setattr(_store, "_read_table", real_read)
    append_runs(_call(9), tmp_path / "other.parquet")
    shutil.copy(tmp_path / "other.parquet", extra)
    calls = []
    monkeypatch.setattr(_store, "_read_table", lambda *a, **kw: calls.append(1) or real_read(*a, **kw))
    assert len(read_run_keys(path)) == 24 and calls
    calls.clear()
    (parts_dir(path) / "keys.sqlite").write_bytes(b"junk")               # a damaged index: the files are read
    assert len(read_run_keys(path)) == 24 and calls


def test_extra_columns_across_parts_read_back_and_a_type_clash_is_refused_before_writing(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs([{**r, "experiment": "sweep-a", "attempt": 1} for r in _call(1)], path)
    append_runs([{**r, "attempt": 2.5} for r in _call(2)], path)   # a number with a number: promoted
    before = _snapshot(path)
    with pytest.raises(DataError, match=r"appended rows\): an extra column has another type than in the table"):
        append_runs([{**r, "attempt": "third"} for r in _call(3)], path)
    assert _snapshot(path) == before
    back = read_runs(path)
    assert list(back.columns[-2:]) == ["experiment", "attempt"]
    assert back["experiment"].isna().tolist() == [True] * 4 + [False] * 4 + [True] * 4
    assert set(back["experiment"].dropna()) == {"sweep-a"}
    assert back["attempt"].tolist()[4:] == [1.0] * 4 + [2.5] * 4
    compact_runs(path)
    pd.testing.assert_frame_equal(read_runs(path), back)


def test_parts_without_their_base_are_refused_not_dropped(tmp_path):
    path = tmp_path / "runs.parquet"
    append_runs(_call(0), path)
    append_runs(_call(1), path)
    path.unlink()
    for call in (read_runs, count_runs, lambda p: append_runs(_call(2), p)):
        with pytest.raises(DataError, match=r"no such file \(.*runs.parquet.parts holds parts appended to it"):
            call(path)
    remove_runs(path)
    assert list(tmp_path.iterdir()) == []
    append_runs(_call(2), path)
    assert count_runs(path) == 4


def test_remove_runs_deletes_base_parts_index_and_lock(tmp_path):
    path = tmp_path / "runs.parquet"
    for i in range(3):
        append_runs(_call(i), path)
    assert {p.name for p in tmp_path.iterdir()} == {"runs.parquet", "runs.parquet.parts", "runs.parquet.lock"}
    remove_runs(path)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_appends_from_several_processes_keep_every_call(tmp_path):
    path = tmp_path / "runs.parquet"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_runs import _call
        from scaling.runs import append_runs
        w = int(sys.argv[1])
        for i in range(6):
            append_runs(_call(100 * w + i), {str(path)!r})
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(w)]) for w in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    back = read_runs(path)
    assert len(back) == 3 * 6 * 4 and back["run_id"].nunique() == 18 and count_runs(path) == len(back)
    pd.testing.assert_frame_equal(read_run_keys(path), back[["run_id", "phase", "repeat"]])


# -- helpers ---------------------------------------------------------------------------------

def test_flags_and_totals_helpers():
    t = _table(3)
    t.loc[2, "phase"] = "denoiser"
    t["flags"] = add_flag(t["flags"], [True, False, True], "cpu_offload")
    t["flags"] = add_flag(t["flags"], [True, False, False], "cpu_offload")  # no duplicate
    t["flags"] = add_flag(t["flags"], [True, True, False], "first_call")
    assert t["flags"].tolist() == ["cpu_offload;first_call", "first_call", "cpu_offload"]
    assert has_flag(t, "cpu_offload").tolist() == [True, False, True]
    assert len(totals(t)) == 2
    validate_runs(t, "x")
