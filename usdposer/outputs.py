"""All of one command's outputs committed together or not at all.

Every file usdposer writes goes through :func:`atomic_file` (or :func:`atomic_dir`): it is written to a temporary
path beside its destination and moved into place only when its own block succeeds, so a crash never leaves half a
file. Inside :func:`transaction` (the CLI opens one per command) each move is also journalled: if anything later in
the command fails, the files it put in place are removed again and the ones they replaced restored, so a layer is
never left without the preview that was asked for with it, nor a dataset's shards without its manifest.

Outside a transaction (library use), each output is still atomic on its own.

    with transaction():
        with atomic_file("out.usdc") as tmp: write(tmp)       # in place now, readable by what follows
        with atomic_file("out.png") as tmp: fail()            # -> out.usdc removed again, the old one restored
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from usdposer.errors import InputError

_JOURNAL: contextvars.ContextVar[list | None] = contextvars.ContextVar("usdposer_outputs", default=None)


def check_writable(out: str | os.PathLike, *, folder: bool = False, what: str = "output") -> Path:
    """Refuse, before any work, an output that cannot be written: a missing or read-only folder, a path through a
    file, a folder where a file is wanted (or the reverse)."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    for p in [parent, *parent.parents]:
        if p.exists() and not p.is_dir():
            raise InputError(f"{out}: {p} is not a folder; choose another {what} path")
        if p.exists():
            break
    if not parent.exists():
        raise InputError(f"{out}: {what} folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{out}: cannot write to {parent} (permission denied); choose a writable {what} folder")
    if out.exists() and out.is_dir() and not folder:
        raise InputError(f"{out}: is a folder; give a file name for the {what}")
    if out.exists() and not out.is_dir() and folder:
        raise InputError(f"{out}: is a file; give a folder for the {what}")
    return out


@contextlib.contextmanager
def transaction(separate: bool = False) -> Iterator[None]:
    """Journal every output committed inside the block; on an exception, undo them all (newest first). Nested
    blocks join the outer transaction, unless ``separate``: then the block's outputs are kept or undone when it ends,
    whatever the outer one does later (each request of a long-running ``ik --serve``)."""
    if _JOURNAL.get() is not None and not separate:  # nested: the outer transaction decides
        yield
        return
    journal: list[tuple[Path, Path | None]] = []  # (destination, backup of what it replaced or None)
    token = _JOURNAL.set(journal)
    try:
        yield
    except SystemExit as exc:
        if exc.code not in (None, 0, 1):  # 0 ok, 1 checks failed: the outputs are the answer, keep them
            _undo(journal)
        else:
            _keep(journal)
        raise
    except BaseException:
        _undo(journal)
        raise
    else:
        _keep(journal)
    finally:
        _JOURNAL.reset(token)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then deliver it: files that belong together and are replaced one
    by one (a checkpoint's weights, config and training state; a distill state's tensors and JSON) are all replaced
    or none, never weights of one step beside the state of another. Where Python cannot take the signal over (not
    the main thread), the block runs as it is."""
    import signal
    import threading

    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None:
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        signal.raise_signal(signal.SIGINT)  # to the handler before: KeyboardInterrupt, or ignored where it was


def _undo(journal: list) -> None:
    for dst, backup in reversed(journal):
        _remove(dst)
        if backup is not None:
            os.replace(backup, dst)
            shutil.rmtree(backup.parent, ignore_errors=True)


def _keep(journal: list) -> None:
    for _dst, backup in journal:
        if backup is not None:
            shutil.rmtree(backup.parent, ignore_errors=True)  # the backup's private folder


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _commit(tmp: Path, out: Path) -> None:
    """Move ``tmp`` onto ``out``; inside a transaction keep what it replaces until the transaction ends."""
    journal = _JOURNAL.get()
    backup = None
    if journal is not None and (out.exists() or out.is_symlink()):
        backup = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent)) / out.name
        os.replace(out, backup)
    elif out.is_dir() and not out.is_symlink():
        shutil.rmtree(out)  # os.replace cannot replace a non-empty folder
    try:
        os.replace(tmp, out)
    except BaseException:
        if backup is not None:
            os.replace(backup, out)
            shutil.rmtree(backup.parent, ignore_errors=True)
        raise
    if journal is not None:
        journal.append((out, backup))


@contextlib.contextmanager
def atomic_file(out: str | os.PathLike, *, create: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` with the same extension (USD picks the file format from it); move it
    onto ``out`` when the block succeeds, and remove it otherwise. With ``create`` the temporary file exists
    (empty) when the block starts; without, it does not (``Sdf.Layer.CreateNew`` refuses an existing file)."""
    out = Path(out)
    check_writable(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.tmp-", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp)
    if not create:
        tmp.unlink()
    try:
        yield tmp
        _commit(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out``; it replaces ``out`` (a whole folder) when the block succeeds,
    and is removed otherwise."""
    out = Path(out)
    check_writable(out, folder=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        _commit(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
