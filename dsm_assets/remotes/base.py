"""The one Remote interface. A remote stores versions of a dataset as commits (a set of files) and names
the published ones with tags; the tags are the truth of what is published.

Every implementation makes `publish` atomic: files are uploaded and verified before the tag that makes
them a version is created, and the tag is created only if no one else holds it (create-only), so two
writers cannot both publish `v1.1` and a crash leaves the previous version as the latest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dsm_assets.errors import ConcurrentPublishError, RemoteNotFoundError
from dsm_assets.layout import data_parquet
from dsm_assets.versioning import latest_tag

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Published:
    tag: str
    commit: str
    bytes_uploaded: int  # bytes sent: content the remote did not hold before
    files: tuple[str, ...]
    reused: tuple[str, ...] = ()  # files of `files` whose content the remote already held (none of it sent)
    bytes_reused: int = 0  # their size


class Remote(ABC):
    kind: ClassVar[str]

    @property
    @abstractmethod
    def url(self) -> str:
        """Where a human finds the repo."""

    def version_url(self, tag: str) -> str:
        """Where a human opens version `tag`: an https URL a browser opens, or a local path that exists."""
        return f"{self.url}@{tag}"

    @abstractmethod
    def tags(self) -> dict[str, str]:
        """Every tag → the commit it names. Empty for a repo with nothing published yet."""

    @abstractmethod
    def publish(self, files: Mapping[str, Path], *, tag: str, parent: str | None, message: str) -> Published:
        """Upload `files` (repo path → local file) as one commit, verify it, then create `tag` on it.

        `parent` is the commit of the latest tag the caller saw (None for a first publish). Raises
        ConcurrentPublishError when another writer moved the remote on or already holds `tag`."""

    @abstractmethod
    def list_files(self, commit: str) -> dict[str, int]:
        """Repo path → size in bytes of every file at `commit`."""

    @abstractmethod
    def read_file(self, commit: str, path: str) -> bytes:
        """One file's bytes at `commit`."""

    def download(self, commit: str, path: str, dest: Path) -> None:
        """Write one file at `commit` to `dest` (remotes that can stream override this)."""
        dest.write_bytes(self.read_file(commit, path))

    def repair(self, commit: str, files: Mapping[str, Path]) -> list[str]:
        """Re-store the files at `commit` whose stored copy no longer matches, from `files` (repo path → local
        file) where the local file has the recorded content. Returns the repaired paths. Remotes that check
        content on their side (the Hub, S3 with checksums) have nothing to repair."""
        return []

    @contextlib.contextmanager
    def read_batches(self, commit: str, *, scratch: Path | None = None) -> Iterator[pa.RecordBatchReader]:
        """The dataset at `commit` as a stream of bounded batches, valid inside the block: its data parquet
        files downloaded (`download`, which streams) into `scratch` (a temp folder when None), then read a
        batch at a time (`parquet_stream`), so memory stays bounded whatever the version's size. Remotes with
        a better read path (a reader of their own, more checks) override this."""
        with contextlib.ExitStack() as stack:
            folder = scratch or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dsm-read-")))
            local = []
            for i, path in enumerate(data_parquet(self.list_files(commit))):
                dest = folder / f"{i:05d}.parquet"
                stack.callback(dest.unlink, missing_ok=True)
                self.download(commit, path, dest)
                local.append(dest)
            yield parquet_reader(local)

    def load_table(self, commit: str) -> pa.Table:
        """The dataset at `commit` in memory (`read_batches`, read whole): for small versions and tests; the
        round_trip check and the cache read in batches."""
        with self.read_batches(commit) as reader:
            return reader.read_all()

    def resolve(self, tag: str) -> str:
        tags = self.tags()
        if tag not in tags:
            known = ", ".join(sorted(tags)) or "none"
            raise RemoteNotFoundError(f"{self.url}: no version '{tag}' (published: {known})")
        return tags[tag]


def ensure_publishable(url: str, tags: Mapping[str, str], tag: str, parent: str | None) -> None:
    """Refuse to publish `tag` unless the latest tag is still the `parent` the caller built on and `tag` is free."""
    latest = latest_tag(tags)
    if (tags[latest] if latest else None) != parent or tag in tags:
        raise ConcurrentPublishError(f"{url}: another writer published first (latest is {latest or 'nothing'}); "
                                     f"{tag} was not created. Re-run to publish on top of it")


def commit_id(body: Mapping[str, Any]) -> str:
    """The id of a commit (local) or version manifest (S3): sha1 of its body as JSON with sorted keys."""
    return hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()


def redact_url(url: str) -> str:
    """`url` without a user:password part (an endpoint like http://user:pass@host is printed as http://***@host)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{path}"


def parquet_reader(files: Sequence[Path]) -> pa.RecordBatchReader:
    """Several parquet files of one schema as one RecordBatchReader, a bounded batch at a time."""
    import pyarrow as pa

    from dsm_assets.parquet_stream import files_batches, open_parquet

    pfs = [open_parquet(f) for f in files]
    if not pfs:
        raise ValueError("a version without a data parquet file")
    return pa.RecordBatchReader.from_batches(pfs[0].schema_arrow, files_batches(pfs))
