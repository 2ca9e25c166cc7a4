"""Crash-safe writes: write a temp file in the target's directory, fsync, rename over the target."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"
WRITEBACK_STEP = 64 << 20  # bytes written between background flushes


@contextlib.contextmanager
def temp_beside(directory: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a fresh temp path in `directory`; it is removed if the block raises (or was never committed)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}{suffix}"
    # O_EXCL like mkstemp, but mode 0o666 minus the umask (mkstemp's 0o600 would stick after the rename)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def commit(tmp: Path, target: Path) -> None:
    """fsync `tmp`, rename it over `target` (same directory), fsync the directory."""
    fsync_file(tmp)
    os.replace(tmp, target)
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path beside `target`; on clean exit it replaces `target`. On error `target` is untouched."""
    with temp_beside(target.parent, suffix="-" + target.name) as tmp:
        yield tmp
        commit(tmp, target)


def write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json(target: Path, obj: Any) -> None:
    write_bytes(target, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


@contextlib.contextmanager
def temp_dir_beside(directory: Path) -> Iterator[Path]:
    """Yield a fresh temp folder in `directory`; it is removed if the block raises (or was never committed).
    A killed writer's folder is removed by `remove_stale_temps`."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    tmp.mkdir(mode=0o777)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commit_dir(tmp: Path, target: Path) -> None:
    """fsync every file in the folder `tmp` and the folder, rename it to `target` (same directory), fsync the
    directory. An existing `target` is first renamed aside and removed after: a crash between the renames
    leaves no `target` (the caller records it only after this returns, so the next run rebuilds it)."""
    for path in tmp.iterdir():
        fsync_file(path)
    fsync_dir(tmp)
    old = None
    if target.exists():
        old = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-old")
        os.replace(target, old)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class Writeback:
    """Flushes a file being written to disk in a background thread, a `step` of bytes at a time, so that the
    disk works while the writer computes and `commit`'s fsync waits for the tail only. An error of a flush is
    raised by `close` (the kernel reports a writeback error once: to the flush that met it)."""

    def __init__(self, path: Path, step: int | None = None) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._step, self._flushed = step or WRITEBACK_STEP, 0
        self._thread: threading.Thread | None = None
        self._error: OSError | None = None

    def wrote(self, size: int) -> None:
        """The file now holds `size` bytes: start a flush if a step has been written since the last one."""
        if size - self._flushed < self._step or (self._thread is not None and self._thread.is_alive()):
            return
        self._flushed = size
        self._thread = threading.Thread(target=self._flush, name="writeback", daemon=True)
        self._thread.start()

    def _flush(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._error = exc

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        os.close(self._fd)
        if self._error is not None:
            raise self._error

    def __enter__(self) -> Writeback:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Fsyncs:
    """fsyncs files in a background thread, in the order added, while the caller goes on (the next download,
    hashing, converting): `wait` returns once every file added is on disk, raising the first error. Leaving
    the block without `wait` drops the files not synced yet (the caller is failing)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsync")
        self._pending: list[Future[None]] = []

    def add(self, path: Path) -> None:
        self._pending.append(self._pool.submit(fsync_file, path))

    def wait(self) -> None:
        for done in self._pending:
            done.result()
        self._pending.clear()

    def __enter__(self) -> Fsyncs:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def dir_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on `directory` (flock on `<directory>/.lock`) for the duration of the block.

    Writers of the same dataset take it, so two runs serialise instead of racing, and temp files found
    while holding it really are stale: the kernel releases the lock when a killed writer dies."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def scratch_dir(parent: Path) -> Iterator[Path]:
    """A private folder under `parent` (on the data dir's disk, not $TMPDIR), removed on exit. Its name
    carries this host and pid, so the next caller removes it if this process was killed (`remove_orphans`)."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(parent)
    path = parent / f"{TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_orphans(parent: Path) -> int:
    """Remove the scratch folders in `parent` left by dead processes of this host; returns how many."""
    host, removed = socket.gethostname(), 0
    for path in parent.iterdir():
        owner, _, rest = path.name.removeprefix(TEMP_PREFIX).rpartition("-")[0].rpartition("-")
        if not path.name.startswith(TEMP_PREFIX) or owner != host or not rest.isdigit() or _alive(int(rest)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: Path) -> int:
    """Delete temp files and folders a killed writer left behind in `directory`; returns how many.
    Call it while holding `dir_lock` on that directory, or a live writer's temp could go."""
    if not directory.is_dir():
        return 0
    stale = [p for p in directory.iterdir() if p.name.startswith(TEMP_PREFIX)]
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(stale)
