"""One small error hierarchy. Each class also subclasses the matching built-in, so callers that only
know Python's exceptions still catch them. Messages name the file, row or key and say what to do."""

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path


class DsmError(Exception):
    """Base class for every error dsm_assets raises on purpose."""


class RegistryError(DsmError, ValueError):
    """The registry file is missing, malformed or invalid. One line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self) -> tuple:
        # pickle (Dagster sends errors between processes) rebuilds from the list, not from the joined message
        return type(self), (self.problems,), self.__dict__


class SourceError(DsmError, ValueError):
    """A raw source file is missing, empty or does not match the registry (columns, types, encoding)."""


class PathEscapeError(DsmError, ValueError):
    """A configured path would resolve outside the data directory."""


class RemoteError(DsmError, RuntimeError):
    """A remote (local directory, Hub, S3) refused or failed an operation. The message names the remote."""


class RemoteAuthError(RemoteError, PermissionError):
    """Credentials missing or rejected; the message says which variable to set."""


class RemoteNotFoundError(RemoteError, LookupError):
    """The repo, bucket, version or file does not exist on the remote."""


class RemoteCorruptError(RemoteError):
    """A stored file no longer matches its recorded hash. Repairable from a local copy of its content."""


class ConcurrentPublishError(RemoteError):
    """Another writer published first (moved the branch or claimed the tag). Nothing of ours was promoted."""


class CacheError(DsmError, RuntimeError):
    """The offline cache is missing, stale, corrupt or cannot be written. Says what to run."""


class ShardError(DsmError, RuntimeError):
    """Shards are missing, incomplete or disagree with their manifest."""


class StateError(DsmError, ValueError):
    """One of our own state files (a verified record, a lineage.json, …) is unreadable or malformed."""


class TrainingError(DsmError, RuntimeError):
    """The training code failed, ran too long, or did not report what the registry asks of it."""


class LineageError(DsmError, LookupError):
    """No such model or model version."""


class DiskError(DsmError, OSError):
    """A file on the user's disk could not be written or read: full, read-only, no permission, vanished."""

    def __str__(self) -> str:
        return self.strerror  # the one line, without OSError's "[Errno 28]" prefix


_DATA_DIRS = "or set DSM_DATA_DIR / DSM_OUTPUTS_DIR to another disk"
REMEDIES = {
    errno.ENOSPC: f"the disk is full: free space there {_DATA_DIRS}, then run again",
    errno.EDQUOT: f"the disk quota is used up: free space there {_DATA_DIRS}, then run again",
    errno.EFBIG: f"the file is larger than this file system or ulimit allows: raise the limit {_DATA_DIRS}",
    errno.EROFS: f"the file system is mounted read-only: remount it read-write {_DATA_DIRS}",
    errno.EACCES: f"permission denied: give this user write access (chown/chmod) {_DATA_DIRS}",
    errno.EPERM: f"operation not permitted: give this user write access (chown/chmod) {_DATA_DIRS}",
    errno.ENOENT: "a file or folder vanished while in use (deleted by hand or by another tool): run again",
}


def disk_error(exc: OSError, where: str | os.PathLike[str], doing: str) -> DiskError | None:
    """`exc` as one line naming the path and the remedy, or None when it is not a disk problem we know.
    Libraries such as pyarrow raise errno 28 with no file name: `where` names the folder being written."""
    if isinstance(exc, DsmError) or exc.errno not in REMEDIES:
        return None
    path = exc.filename or where
    return DiskError(exc.errno, f"{doing}: {path}: {os.strerror(exc.errno)}; {REMEDIES[exc.errno]}")


@contextlib.contextmanager
def on_disk(where: Path, doing: str) -> Iterator[None]:
    """Turn a disk OSError raised in the block into a DiskError naming the path (see `disk_error`)."""
    try:
        yield
    except OSError as exc:
        translated = disk_error(exc, where, doing)
        if translated is None:
            raise
        raise translated from None
