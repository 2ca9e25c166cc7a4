"""The embedded default remote: a directory, no account, no network.

    <root>/objects/<sha256>          file contents, content-addressed: content already stored, under any
                                     path of any version, is stored once and costs 0 bytes to publish
    <root>/commits/<commit>.json     a commit: parent, message, files {path: {sha256, size}}
    <root>/refs/tags/<tag>           the commit a version names (created once, never moved)
    <root>/refs/heads/main           the latest promoted commit

Objects and the commit are written first; the tag and then `main` are written last, under a lock, each by
an atomic rename, so a crash at any point leaves the previous version as the latest."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from dsm_assets import atomic
from dsm_assets.errors import REMEDIES, DsmError, RemoteCorruptError, RemoteError, RemoteNotFoundError
from dsm_assets.fingerprint import sha256_file
from dsm_assets.layout import data_parquet
from dsm_assets.remotes.base import Published, Remote, commit_id, ensure_publishable, parquet_reader

log = logging.getLogger(__name__)
FIX = "the next publish re-stores it from the cleaned data or the offline cache"


class LocalRemote(Remote):
    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return str(self.root)  # a path a file manager opens (a file:// URL is refused by browsers)

    def version_url(self, tag: str) -> str:
        # Objects are content-addressed, so no folder per version exists: the repo folder is what opens.
        return self.url

    def tags(self) -> dict[str, str]:
        tag_dir = self.root / "refs" / "tags"
        if not tag_dir.is_dir():
            return {}
        with self._errors("read tags"):
            return {p.name: p.read_text().strip() for p in tag_dir.iterdir() if not p.name.startswith(".")}

    def head(self) -> str | None:
        ref = self.root / "refs" / "heads" / "main"
        with self._errors("read main"):
            return ref.read_text().strip() if ref.exists() else None

    def publish(self, files: Mapping[str, Path], *, tag: str, parent: str | None, message: str) -> Published:
        with self._errors(f"publish {tag}"):
            return self._publish(files, tag=tag, parent=parent, message=message)

    def _publish(self, files: Mapping[str, Path], *, tag: str, parent: str | None, message: str) -> Published:
        uploaded, entries, reused = 0, {}, []
        for path, local in sorted(files.items()):
            digest = sha256_file(local)
            entries[path] = {"sha256": digest, "size": local.stat().st_size}
            if self._store_object(local, digest):
                uploaded += entries[path]["size"]
            else:  # the content is stored already, under this path or any other
                reused.append(path)
        body = {"parent": parent, "message": message, "files": entries,
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        commit = commit_id(body)
        atomic.write_bytes(self.root / "commits" / f"{commit}.json", json.dumps(body, sort_keys=True).encode())
        self._verify(commit)
        with atomic.dir_lock(self.root / "refs"):
            self._promote(commit, tag=tag, parent=parent)
        return Published(tag=tag, commit=commit, bytes_uploaded=uploaded, files=tuple(sorted(entries)),
                         reused=tuple(reused), bytes_reused=sum(entries[p]["size"] for p in reused))

    def _store_object(self, local: Path, digest: str) -> bool:
        """Store `local` as objects/<sha256>; False when it is stored already. An existing object is reused
        only when it still hashes to its name (a corrupt one is replaced), and a fresh copy is hashed before
        it takes the name."""
        target = self.root / "objects" / digest
        if target.exists():
            actual = sha256_file(target)
            if actual == digest:
                return False
            log.warning("%s: object %s hashes to %s (corrupt); uploading it again", self.url, digest, actual)
        with atomic.atomic_path(target) as tmp:
            shutil.copyfile(local, tmp)
            if (copied := sha256_file(tmp)) != digest:
                raise RemoteError(f"{self.url}: the copy of {local} hashes to {copied}, expected {digest} (it "
                                  "changed while being published, or the disk corrupted it); nothing was tagged")
        return True

    def _verify(self, commit: str) -> None:
        for path, entry in self._commit(commit)["files"].items():
            obj = self.root / "objects" / entry["sha256"]
            if not obj.exists() or obj.stat().st_size != entry["size"]:
                raise RemoteError(f"{self.url}: object for {path} is missing or has the wrong size after upload")

    def _promote(self, commit: str, *, tag: str, parent: str | None) -> None:
        ensure_publishable(self.url, self.tags(), tag, parent)
        tag_path = self.root / "refs" / "tags" / tag
        with atomic.temp_beside(tag_path.parent) as tmp:
            tmp.write_text(commit + "\n")
            atomic.fsync_file(tmp)
            os.link(tmp, tag_path)  # create-only: fails if the tag exists
        atomic.write_bytes(self.root / "refs" / "heads" / "main", (commit + "\n").encode())

    def _commit(self, commit: str) -> dict:
        path = self.root / "commits" / f"{commit}.json"
        with self._errors(f"read commit {commit[:12]}"):
            try:
                return json.loads(path.read_text())
            except FileNotFoundError:
                raise RemoteNotFoundError(f"{self.url}: no commit {commit}") from None

    def list_files(self, commit: str) -> dict[str, int]:
        return {p: e["size"] for p, e in self._commit(commit)["files"].items()}

    def object_path(self, commit: str, path: str) -> Path:
        files = self._commit(commit)["files"]
        if path not in files:
            raise RemoteNotFoundError(f"{self.url}: no file {path} at commit {commit[:12]}")
        return self.root / "objects" / files[path]["sha256"]

    def read_file(self, commit: str, path: str) -> bytes:
        """One file's bytes, after checking they still hash to their address (these files are small)."""
        self.object_path(commit, path)  # a path the commit does not hold is RemoteNotFoundError
        return self._intact(commit, path, self._commit(commit)["files"][path]["sha256"]).read_bytes()

    def download(self, commit: str, path: str, dest: Path) -> None:
        """Copy the stored object to `dest`; an error writing `dest` is the caller's disk and stays an OSError."""
        obj = self.object_path(commit, path)
        try:
            source = obj.open("rb")
        except OSError as exc:
            raise _unreadable(obj, path, commit, exc) from None
        with source, open(dest, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)

    def repair(self, commit: str, files: Mapping[str, Path]) -> list[str]:
        with self._errors(f"repair {commit[:12]}"):
            return self._repair(commit, files)

    def _repair(self, commit: str, files: Mapping[str, Path]) -> list[str]:
        entries, repaired = self._commit(commit)["files"], []
        for path, local in sorted(files.items()):
            digest = entries.get(path, {}).get("sha256")
            obj = self.root / "objects" / str(digest)
            if digest is None or (obj.exists() and sha256_file(obj) == digest) or sha256_file(local) != digest:
                continue  # intact, or we do not hold its content
            with atomic.atomic_path(obj) as tmp:
                shutil.copyfile(local, tmp)
            log.warning("%s: repaired %s at %s from %s", self.url, path, commit[:12], local)
            repaired.append(path)
        return repaired

    @contextlib.contextmanager
    def read_batches(self, commit: str, *, scratch: Path | None = None) -> Iterator[pa.RecordBatchReader]:
        """The version's parquet read in place, a batch at a time, after checking that every file of the
        version (card and dsm.json too) still hashes to its address: round_trip names any that does not."""
        files = self._commit(commit)["files"]
        checked = {p: self._intact(commit, p, e["sha256"]) for p, e in sorted(files.items())}
        yield parquet_reader([checked[p] for p in data_parquet(files)])

    def _intact(self, commit: str, path: str, digest: str) -> Path:
        """The object behind `path` at `commit`, after checking it still hashes to its address."""
        obj = self.root / "objects" / digest
        try:
            actual = sha256_file(obj)
        except OSError as exc:
            raise _unreadable(obj, path, commit, exc) from None
        if actual != digest:
            raise RemoteCorruptError(f"{obj}: {path} at {commit[:12]} is corrupt: sha256 {actual}, expected "
                                     f"{digest}; {FIX}")
        return obj

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """OSError → RemoteError naming this remote (an object that cannot be read is `_unreadable` instead)."""
        try:
            yield
        except OSError as exc:
            if isinstance(exc, DsmError):  # already one line of ours
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            remedy = f"; {REMEDIES[exc.errno]}" if exc.errno in REMEDIES else ""
            raise RemoteError(f"{self.url}: {what} failed: {where}{exc.strerror or exc}{remedy}") from None


def _unreadable(obj: Path, path: str, commit: str, exc: OSError) -> RemoteCorruptError:
    return RemoteCorruptError(f"{obj}: {path} at {commit[:12]} is unreadable ({exc.strerror or exc}); {FIX}")
