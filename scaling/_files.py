"""Output files that cannot hurt: checked before any work, written atomically, nothing left behind.

Every file the toolkit writes (law file, fit report, pareto plot, runs table export, ...) goes
through :func:`check_output` before the work starts and :func:`atomic_output` /
:func:`write_text_atomic` when it is written. The rules (README, "Inputs and outputs"):

- an output that is one of the command's inputs (the same file, through any symlink or hard
  link; or a side file of an input runs table: ``<table>.parts/``, ``<table>.lock``) is refused;
- an empty path, a folder, a device (``/dev/full``, ``/dev/null``), a FIFO or a socket is refused:
  the toolkit writes regular files only, and never replaces anything else;
- the output's folder must exist: no writer creates folders (a typo in a folder name is refused,
  not made into a new tree);
- where a writer knows its formats (``suffixes``: a runs table is ``.parquet`` or ``.csv``, a
  report ``.html``), a name that ends in none of them is refused;
- a symlink is written THROUGH: the link's target is replaced (atomically, in the target's
  folder) and the link is kept, as ``echo x > link`` would; a dangling link creates its target;
- a new file gets ``0o666 & ~umask`` (the umask is kept); a replaced file keeps its mode;
- the data goes to a temporary file in the same folder, named ``.<name>.tmp-<host>-<pid>-<random>``,
  then ``os.replace`` moves it into place: a crash, an exception, Ctrl-C or SIGTERM leaves the old
  file intact and removes the temporary file. A temporary file left by a process killed with
  ``kill -9`` (its pid is dead on this host) is removed by the next write of the same file;
- an ``OSError`` (read-only folder, permission denied, full disk, a path through a file) becomes
  one :class:`~scaling.errors.OutputError` line naming the path and the reason.

:func:`hold_lock` is the exclusive, non-blocking lock a sweep holds on its runs table for the
length of the sweep (``<table>.sweep.lock``): a second sweep on the same table refuses with
:class:`~scaling.errors.TableBusyError` (or waits ``wait_s`` seconds for it). :func:`lock_file`
is the lock itself (the runs store's ``<table>.lock`` too): a lock file that the call created is
removed again when the block raises, so a refused write leaves the disk as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import signal
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from scaling.errors import OutputError, TableBusyError

__all__ = ["HTML_SUFFIXES", "atomic_output", "check_output", "hold_lock", "lock_file", "output_error", "remove_stale_temps",
           "write_text_atomic"]

HTML_SUFFIXES = (".html", ".htm")
"""The names of a self-contained HTML page: ``scaling report``, ``fit --report``, ``pareto --plot``."""

_SIDE_FILES = (".parts", ".shards", ".lock", ".sweep.lock")
"""Side files of a runs table ``T``: ``T.parts/`` (appended parts and the key index), ``T.shards/``
(a SLURM sweep's shard tables), ``T.lock`` and ``T.sweep.lock`` (the locks)."""

_KIND = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
         (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    for test, name in _KIND:
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def output_error(path: str | os.PathLike, exc: OSError, doing: str = "cannot write") -> OutputError:
    """The one-line :class:`OutputError` of an ``OSError`` met while writing ``path``."""
    reason = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".").lower()
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device (the disk is full)"
    elif exc.errno == errno.EROFS:
        reason = "the folder is on a read-only file system"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied (the folder or file is not writable)"
    elif exc.errno == errno.ENOTDIR:
        reason = "a part of the path is a file, not a folder"
    elif exc.errno == errno.EISDIR:
        reason = "it is a folder (rule: the output is a file)"
    return OutputError(f"{os.fspath(path)!s}: {doing} ({reason})")


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def _input_clash(target: Path, inputs: Iterable[str | os.PathLike | None]) -> str | None:
    """The input ``target`` would overwrite (itself or one of its side files), or None."""
    for given in inputs:
        if given is None or str(given) == "":
            continue
        src = Path(os.path.realpath(given))
        if _same(target, src):
            return f"it is the input {os.fspath(given)!s}"
        for side in _SIDE_FILES:
            folder = src.with_name(src.name + side)
            if target == folder or folder in target.parents:
                return f"it is inside {folder}, a side file of the input {os.fspath(given)!s}"
    return None


def _suffix_of(name: str, suffixes: Sequence[str]) -> str | None:
    """The one of ``suffixes`` that ``name`` ends in (case-insensitive), else None."""
    low = name.lower()
    return next((s for s in suffixes if low.endswith(s.lower()) and len(low) > len(s)), None)


def _check_suffix(what: str, raw: str, target: Path, suffixes: Sequence[str]) -> None:
    allowed = ", ".join(suffixes[:-1]) + (" or " if len(suffixes) > 1 else "") + suffixes[-1]
    for name, whose in ((Path(raw).name, ""), (target.name, f" (the file its link points to, {target})")):
        if _suffix_of(name, suffixes) is None:
            shown = Path(name).suffix
            got = f"{shown!r} is not a format it is written in" if shown else "the name has no suffix to say its format"
            raise OutputError(f"{what} {raw}: {got}{whose} (rule: the file name ends in {allowed})")


def check_output(path: str | os.PathLike | None, *, inputs: Iterable[str | os.PathLike | None] = (),
                 what: str = "output", suffixes: Sequence[str] | None = None) -> Path:
    """Check an output path before any work; return the file to write (symlinks resolved).

    Refuses (:class:`OutputError`, one line naming the path and the rule) an empty path, a
    path that is one of ``inputs`` (or a side file of an input runs table), a folder, a device,
    a FIFO or a socket, a path whose folder does not exist or is a file, a folder that cannot be
    written, and, with ``suffixes`` (``(".html", ".htm")``: the formats the output is written
    as), a name that ends in none of them (the link's name and its target's, for a symlink).
    A symlink is followed: the returned path is its target, which the writers replace.
    """
    if path is None or not str(os.fspath(path)).strip():
        shown = "" if path is None else os.fspath(path)
        raise OutputError(f"{what} path {shown!r} is empty (rule: name a file to write)")
    raw = os.fspath(path)
    target = Path(os.path.realpath(raw))
    clash = _input_clash(target, inputs)
    if clash:
        raise OutputError(f"{what} {raw}: {clash}; writing it would destroy what is being read "
                          "(rule: the output must be a different file)")
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise output_error(raw, exc, "cannot be written") from None
    if st is not None:
        kind = _kind(st.st_mode)
        if kind is not None:
            raise OutputError(f"{what} {raw}: it is {kind} (rule: the output is a regular file, "
                              "or a new path in a folder)")
        if not os.access(target, os.W_OK):
            raise OutputError(f"{what} {raw}: cannot be written (permission denied, or a read-only file system)")
    folder = target.parent
    if not folder.exists():  # the writers create no folders: a typo in a folder name is not a new tree
        shown = folder if os.path.islink(raw) else Path(raw).parent
        raise OutputError(f"{what} {raw}: the folder {shown} does not exist (rule: the output's folder must exist)")
    if not folder.is_dir():
        raise OutputError(f"{what} {raw}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {raw}: the folder {folder} cannot be written "
                          "(permission denied, or a read-only file system)")
    if suffixes:
        _check_suffix(what, raw, target, tuple(suffixes))
    return target


# -- temporary files -------------------------------------------------------------------------------

_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"


def _temp_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(3)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``target`` left by dead processes of this host (``kill -9``).

    A temporary file of another host (a shared folder) or of a live process is left alone.
    Returns the files removed.
    """
    target = Path(target)
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.tmp-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]+$")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            m = pattern.match(entry.name)
            if m and m["host"] == _HOST and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def _umask() -> int:
    """The process umask, read without changing it where the OS says it (Linux)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _terminate_raises() -> Iterator[None]:
    """Turn SIGTERM into ``SystemExit(143)`` while a file is written (main thread, default
    handler only), so that the ``finally`` that removes the temporary file runs."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def _raise(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                  what: str = "output") -> Iterator[Path]:
    """Yield a temporary path next to ``path``'s file; on success it replaces the file at once.

    ``path`` is checked (:func:`check_output`: ``inputs`` are refused as targets); a symlink is
    written through. On any exception (KeyboardInterrupt and SIGTERM too) the old file stays
    and the temporary file is removed. ``OSError`` becomes :class:`OutputError`. Write the data
    to the yielded path (``df.to_parquet(tmp)``, ``open(tmp, "w")``, ...).
    """
    target = check_output(path, inputs=inputs, what=what)  # its folder exists: nothing creates folders
    remove_stale_temps(target)
    try:
        old_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        old_mode = None
    except OSError as exc:
        raise output_error(path, exc) from None
    tmp = _temp_path(target)
    try:
        with _terminate_raises():
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                yield tmp
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.chmod(tmp, old_mode if old_mode is not None else 0o666 & ~_umask())
                os.replace(tmp, target)
            except OSError as exc:
                raise output_error(path, exc) from None
            _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike, text: str, *,
                      inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output`; returns ``path``.

    The rules of :func:`check_output` apply; ``inputs`` are refused as targets.
    """
    with atomic_output(path, inputs=inputs) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return Path(path)


# -- locks -----------------------------------------------------------------------------------------

def _open_lock(lock_path: Path):
    """Open ``lock_path`` for locking: ``(file, created)``, ``created`` when this call made the file."""
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            created = True
        except FileExistsError:
            try:
                fd = os.open(lock_path, os.O_RDWR)
            except FileNotFoundError:  # removed by its holder in between: make it
                continue
            created = False
        return os.fdopen(fd, "r+", encoding="utf-8"), created


def _still_there(fh, lock_path: Path) -> bool:
    """The locked file is still the one at ``lock_path`` (not removed, nor replaced, by its last holder)."""
    try:
        st = os.stat(lock_path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fh.fileno())
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def lock_file(lock_path: str | os.PathLike, *, wait_s: float | None = None,
              busy: Callable[[Any], BaseException] | None = None) -> Iterator[Any]:
    """Hold an exclusive ``fcntl.flock`` on ``lock_path`` for the ``with`` block; yield its open file.

    ``wait_s`` None: wait as long as another holder (a process, or another thread of this one)
    holds it; else wait up to ``wait_s`` seconds, then raise ``busy(file)`` (the exception to
    raise; it may read the file). The OS releases the lock when its holder dies.

    The lock file is created when missing and kept afterwards, except when this call created it
    and the block raised (a refused write): then it is removed, so the refusal leaves the disk as
    it was. A holder that finds the file it locked removed or replaced locks the new one instead,
    so a removal never lets two holders in. The lock's folder must exist (it is the output's).
    Not POSIX: no lock (the writes stay atomic), nothing is created.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: nothing to lock with, the writes stay atomic
        yield None
        return
    lock_path = Path(lock_path)
    deadline = None if wait_s is None else time.monotonic() + max(0.0, float(wait_s))
    while True:
        try:
            fh, created = _open_lock(lock_path)
        except OSError as exc:
            raise output_error(lock_path, exc, "cannot create the lock file") from None
        try:
            if deadline is None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            else:
                while True:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise (busy(fh) if busy is not None else
                                   TableBusyError(f"{lock_path} is held by another process")) from None
                        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            if _still_there(fh, lock_path):
                break
        except BaseException:
            fh.close()  # busy, or interrupted while waiting: the file is another holder's now, it stays
            raise
        fh.close()  # its last holder removed it: lock the one there is now
    try:
        yield fh
    except BaseException:
        if created:  # a refused write: leave no lock file it made (the lock is still held: no one else is in)
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
        raise
    finally:
        with contextlib.suppress(OSError, ValueError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


@contextlib.contextmanager
def hold_lock(lock_path: str | os.PathLike, *, what: str, wait_s: float = 0.0,
              rule: str = "wait for it to finish, or write to another table") -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` for the ``with`` block (:func:`lock_file`).

    Another holder (another process, or another thread of this one): wait up to ``wait_s``
    seconds, then raise :class:`TableBusyError` naming ``what``, the holder (pid, host, since
    when) and ``rule``. The lock is ``fcntl.flock``: the OS releases it when its holder dies, so
    a killed sweep never leaves a table locked. The file is kept afterwards, except one this call
    created when the block raised. Not POSIX: no lock.
    """
    lock_path = Path(lock_path)

    def busy(fh) -> TableBusyError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        return TableBusyError(f"{what} is in use by {holder} (its lock {lock_path} is held); "
                              f"rule: one writer at a time: {rule}")

    with lock_file(lock_path, wait_s=wait_s, busy=busy) as fh:
        if fh is None:  # pragma: no cover - not POSIX
            yield
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())}\n")
        fh.flush()
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                fh.seek(0)
                fh.truncate()
                fh.flush()
