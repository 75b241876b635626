"""Outputs that cannot hurt (scaling/_files.py): each case of issue 15 on its own.

An output that is an input, a folder, a device, a FIFO or an empty path is refused before any
work; a symlink is written through; the umask is kept; no temporary file outlives an error, an
interrupt or SIGTERM, and one a ``kill -9`` left is removed by the next write; OS errors are one
:class:`~scaling.errors.OutputError` line.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from scaling._files import (atomic_output, check_output, hold_lock, remove_stale_temps, write_text_atomic)
from scaling.app.cli import main
from scaling.errors import OutputError, ScalingError, TableBusyError

ROOT = Path(__file__).resolve().parents[1]


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def _one_line_refusal(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture()
def runs_table(tmp_path, public_data) -> Path:
    from scaling.runs import read_runs, write_runs

    path = tmp_path / "r.parquet"
    write_runs(read_runs(public_data / "runs.parquet").head(20), path)
    return path


# -- an output that is an input ---------------------------------------------------------------------

def test_export_over_its_own_table_is_refused_and_the_table_survives(runs_table, capsys):
    before = runs_table.read_bytes()
    err = _one_line_refusal(capsys, main(["data", "export", str(runs_table), "--out", str(runs_table)]))
    assert "it is the input" in err and str(runs_table) in err
    assert runs_table.read_bytes() == before


def test_an_input_reached_through_a_symlink_or_a_hard_link_is_refused(runs_table, tmp_path):
    link = tmp_path / "link.csv"
    link.symlink_to(runs_table)
    hard = tmp_path / "hard.parquet"
    os.link(runs_table, hard)
    for out in (link, hard):
        with pytest.raises(OutputError, match="it is the input"):
            check_output(out, inputs=[runs_table])


def test_a_side_file_of_an_input_table_is_refused_but_a_sibling_name_is_not(runs_table):
    with pytest.raises(OutputError, match="side file"):
        check_output(runs_table.with_name("r.parquet.parts") / "x.csv", inputs=[runs_table])
    with pytest.raises(OutputError, match="side file"):
        check_output(runs_table.with_name("r.parquet.lock"), inputs=[runs_table])
    assert check_output(runs_table.with_name("r.parquet.csv"), inputs=[runs_table]).name == "r.parquet.csv"


def test_fit_refuses_an_output_over_its_data_before_fitting(runs_table, tmp_path, capsys):
    before = runs_table.read_bytes()
    err = _one_line_refusal(capsys, main(["fit", "--data", str(runs_table), "--out", str(runs_table)]))
    assert "it is the input" in err and runs_table.read_bytes() == before
    same = tmp_path / "same.json"
    err = _one_line_refusal(capsys, main(["fit", "--data", str(runs_table), "--out", str(same),
                                          "--report", str(same)]))
    assert "it is the input" in err and not same.exists()


# -- non-regular targets ----------------------------------------------------------------------------

def test_a_folder_an_empty_path_and_a_fifo_are_refused(tmp_path, runs_table, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for out, needle in ((tmp_path, "a folder"), ("", "empty"), (fifo, "FIFO")):
        err = _one_line_refusal(capsys, main(["data", "export", str(runs_table), "--out", str(out)]))
        assert needle in err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_device_is_refused_and_never_replaced(runs_table, capsys):
    err = _one_line_refusal(capsys, main(["data", "export", str(runs_table), "--out", "/dev/full"]))
    assert "character device" in err
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    with pytest.raises(OutputError, match="character device"):
        write_text_atomic("/dev/full", "x")  # the writer checks too, whoever calls it
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_path_through_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder|is a file"):
        check_output(tmp_path / "file" / "out.json")


def test_report_refuses_a_folder_before_building(tmp_path, capsys):
    err = _one_line_refusal(capsys, main(["report", "--out", str(tmp_path)]))
    assert "a folder" in err


# -- symlinks, umask ---------------------------------------------------------------------------------

def test_a_symlink_is_written_through_and_kept(tmp_path):
    target = tmp_path / "real" / "law.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "law.json"
    link.symlink_to(target)
    write_text_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert _temps(tmp_path) == [] and _temps(target.parent) == []


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to(tmp_path / "made.json")
    write_text_atomic(link, "x")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "x"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_takes_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.txt").st_mode) == 0o666 & ~umask


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "kept.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_text_atomic(path, "new")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640 and path.read_text() == "new"


# -- temporary files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_mid_write_leaves_the_old_file_and_no_temp(tmp_path, exc):
    path = tmp_path / "law.json"
    path.write_text("old")
    with pytest.raises(type(exc)):
        with atomic_output(path) as tmp:
            tmp.write_text("half")
            assert _temps(tmp_path) == [tmp.name]
            raise exc
    assert path.read_text() == "old" and _temps(tmp_path) == []


def test_sigterm_mid_write_leaves_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "law.json"
    path.write_text("old")
    code = textwrap.dedent(f"""
        import sys, time
        from scaling._files import atomic_output
        with atomic_output({str(path)!r}) as tmp:
            tmp.write_text("half")
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert len(_temps(tmp_path)) == 1
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.stdout.close()
    assert rc == 128 + signal.SIGTERM
    assert path.read_text() == "old" and _temps(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_temp_left_by_a_killed_process_is_removed_by_the_next_write(tmp_path):
    from scaling import _files

    path = tmp_path / "runs.csv"
    stale = tmp_path / f".runs.csv.tmp-{_files._HOST}-{_dead_pid()}-abc123"
    stale.write_text("left by kill -9")
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".runs.csv.tmp-{_files._HOST}-{live_proc.pid}-def456"
        live.write_text("being written")
        other_host = tmp_path / f".runs.csv.tmp-elsewhere{_files._HOST}-{_dead_pid()}-0a0a0a"
        other_host.write_text("another machine's")
        unrelated = tmp_path / ".other.csv.tmp-x-1-abc"
        unrelated.write_text("")
        write_text_atomic(path, "new")
        assert not stale.exists(), "a dead process's temp is removed"
        assert live.exists() and other_host.exists() and unrelated.exists()
        assert remove_stale_temps(path) == []
    finally:
        live_proc.kill()
        live_proc.wait()


# -- OS errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("code, needle", [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"),
                                          (errno.EACCES, "permission denied"), (errno.EIO, "input/output error")])
def test_os_errors_while_writing_are_one_output_error_line(tmp_path, monkeypatch, code, needle):
    path = tmp_path / "out.json"
    path.write_text("old")

    def fail(*a, **k):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError) as err:
        write_text_atomic(path, "new")
    msg = str(err.value)
    assert str(path) in msg and needle in msg and "\n" not in msg, msg
    assert isinstance(err.value, ScalingError)
    monkeypatch.undo()
    assert path.read_text() == "old" and _temps(tmp_path) == []


def test_a_full_disk_in_the_cli_is_one_line(runs_table, tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    err = _one_line_refusal(capsys, main(["data", "export", str(runs_table), "--out", str(tmp_path / "x.csv")]))
    assert "disk is full" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_the_work(tmp_path, runs_table, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        err = _one_line_refusal(capsys, main(["data", "export", str(runs_table), "--out", str(ro / "x.csv")]))
        assert "cannot be written" in err
    finally:
        os.chmod(ro, 0o755)


# -- the lock -----------------------------------------------------------------------------------------

def test_a_held_lock_refuses_a_second_holder_with_who_holds_it(tmp_path):
    lock = tmp_path / "runs.parquet.sweep.lock"
    with hold_lock(lock, what="runs table runs.parquet"):
        with pytest.raises(TableBusyError) as err:
            with hold_lock(lock, what="runs table runs.parquet"):
                pass
    msg = str(err.value)
    assert f"pid {os.getpid()}" in msg and "runs.parquet" in msg and "\n" not in msg
    with hold_lock(lock, what="runs table runs.parquet"):  # released: free again
        pass


def test_a_waiting_holder_gets_the_lock_once_it_is_released(tmp_path):
    lock = tmp_path / "t.sweep.lock"
    held, release, got = threading.Event(), threading.Event(), []

    def first():
        with hold_lock(lock, what="t"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=first)
    t.start()
    held.wait(30)
    threading.Timer(0.2, release.set).start()
    with hold_lock(lock, what="t", wait_s=30):
        got.append(True)
    t.join(30)
    assert got == [True]
