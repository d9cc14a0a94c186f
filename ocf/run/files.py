"""Writing a job's outputs: a folder or file checked before a long job starts, atomic
writes that leave no temporary file behind, and operating-system errors (a read-only
folder, a full disk, a file where a folder should be) turned into :class:`OutputError`
naming the path and the reason."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ocf.errors import OutputError, UserError


def reason(exc: OSError) -> str:
    """``"No space left on device"`` for an :class:`OSError` (its ``strerror``, else its text)."""
    return exc.strerror or str(exc) or type(exc).__name__


@contextlib.contextmanager
def writing(path: str | os.PathLike, what: str = "write") -> Iterator[None]:
    """Turn an :class:`OSError` raised inside the block into an :class:`OutputError`
    ``"<path>: cannot <what> (<reason>)"``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"{path}: cannot {what} ({reason(exc)})") from None


def temporary_name(path: Path) -> Path:
    """The hidden name beside ``path`` an atomic write goes through first."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], what: str = "write") -> Path:
    """Call ``write(tmp)`` for a temporary file beside ``path``, then move it over ``path``;
    on any failure the temporary file is removed and an :class:`OSError` becomes an
    :class:`OutputError` naming ``path``."""
    path = Path(path)
    tmp = temporary_name(path)
    with writing(path, what):
        try:
            write(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def probe(folder: Path) -> None:
    """Create, write and remove a small file in ``folder``: raises the :class:`OSError`
    a real write would meet (read-only, no permission, no space)."""
    fd, name = tempfile.mkstemp(prefix=".ocf-write-test-", dir=folder)
    try:
        os.write(fd, b"ocf")
    finally:
        os.close(fd)
        os.unlink(name)


def ensure_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``path`` (with its parents) and check that files can be written in it;
    refuse a path that names an existing file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a folder; the {what} must be a folder (choose another path)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe(path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the {what} there ({reason(exc)})") from None
    return path


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Before a long job: ``path`` is not a folder, and its folder can be created and
    written in (nothing is left behind but that folder)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; the {what} must be a file path")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{path}: {parent} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe(parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the {what} in {parent} ({reason(exc)})") from None
    return path


#: the file in a folder that :func:`folder_lock` locks
LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run folder") -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (an existing folder) while the block runs:
    ``fcntl.flock`` on ``folder/.lock``, which holds the owner's PID.  The operating system
    releases it when the process ends, however it ends (``kill -9`` leaves no stale lock).
    Another process holding it: :class:`UserError` naming the folder and that PID.  Where
    ``fcntl`` does not exist (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    path = Path(folder) / LOCK_NAME
    with writing(path, "lock the " + what):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(
                f"{folder}: another ocf process (PID {owner}) is writing into this {what}; "
                "wait for it to end, or choose another --out"
            ) from None
        with writing(path, "lock the " + what):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


@contextlib.contextmanager
def writing_into(folder: str | os.PathLike, what: str = "write") -> Iterator[None]:
    """Like :func:`writing` for a block that writes several files into ``folder``: the
    :class:`OutputError` names the file the operating system names, else the folder."""
    try:
        yield
    except OSError as exc:
        where = os.fsdecode(exc.filename) if exc.filename else folder
        raise OutputError(f"{where}: cannot {what} ({reason(exc)})") from None
