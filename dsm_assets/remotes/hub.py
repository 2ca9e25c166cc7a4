"""A Hugging Face Hub dataset repo as a remote, through huggingface_hub's HfApi.

Publishing a version:
  1. branch `dsm-staging-<tag>-<random>` from main's head, and commit the files there (`parent_commit` = head)
  2. verify the staged commit: every file present with the right size and git blob id
  3. promote: the same files on main with `parent_commit` = the head seen in step 1, so a writer that moved
     main in between makes this fail with 412 instead of overwriting its work
  Both commits also delete what main holds and the version does not (an earlier version's files under
  names this one does not use, its shards), so a version is exactly its files, as on the other remotes.
  (steps 1 and 3 commit at most 100 files at a time, each commit's parent the previous one's, as the Hub
  documentation's "Repository limitations and recommendations" page asks of large uploads; the tag below
  names only the last, which holds every file)
  4. tag the promoted commit (create-only: a 409 means someone else holds the tag), delete the staging branch
A crash before step 3 leaves main and the tags untouched; one between 3 and 4 leaves main ahead of the
latest tag, and tags are the truth, so the previous version is still the latest. On the Hub the promotion
re-sends only small files: parquet and tar go through LFS/Xet, whose content-addressed storage already
holds them after step 1.

Large files take one of the Hub's two paths (`transfer`): "xet" (the client's default when hf_xet is
installed: content-defined chunks, so a new version sends only the chunks that changed) or "lfs" (Git LFS:
whole files, one PUT each, what any git client and the loopback test server speak). `bytes_uploaded` counts
what the Hub did not hold before: regular files that changed and LFS objects the LFS batch API reports
missing (Xet may send less, since it deduplicates below the file level). An object the repo already stores,
under any path of any version (a re-sharded dataset renames its files), is not sent again: the batch API
answers it without an upload action, huggingface_hub skips it, and it counts as reused. That path is
tested against the loopback server; Xet's chunk-level dedupe is not, since it needs the Hub's Xet storage
(its CAS protocol is hf_xet's own and no test server emulates it), so what Xet saves is measured only
against the real Hub.

create_commit, create_tag and the other calls the client does not retry are retried here (tenacity) on
408/429/5xx, connection errors and the Hub's commit lock (409 "another commit operation is in progress",
which is not another writer: that is 412 on the parent or 409 on the tag), with exponential backoff and
a bounded number of tries. A `Retry-After` is honoured, one log line per wait, as long as the waits stay
within `max_wait_seconds` (15 minutes by default); a longer one ends as one RemoteError line. hf_xet retries
on its own (HF_XET_CLIENT_RETRY_MAX_ATTEMPTS, HF_XET_CLIENT_RETRY_MAX_DURATION) and then raises builtin
exceptions (ConnectionError, RuntimeError…): not retried again here, each ends as one RemoteError line.
The token is passed to HfApi and never appears in messages or metadata."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pyarrow as pa
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.lfs import post_lfs_batch_info
from tenacity import RetryCallState, Retrying, retry_if_exception

from dsm_assets.errors import ConcurrentPublishError, RemoteAuthError, RemoteError, RemoteNotFoundError
from dsm_assets.fingerprint import digest_file, sha256_file
from dsm_assets.registry import TRANSFERS
from dsm_assets.remotes.base import Published, Remote, ensure_publishable, redact_url

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
LOCKED = ("commit operation is in progress", "conflicting operation is in progress")
XET_ERRORS = (ConnectionError, TimeoutError, RuntimeError)  # what hf_xet raises once its own retries end
MAX_WAIT_SECONDS = 900.0
MAX_RATE_LIMITED_TRIES = 100
MAX_FILES_PER_COMMIT = 100  # per commit (see the module docstring)
_TRANSFER_LOCK = threading.Lock()  # huggingface_hub reads its Xet switch from a module constant
T = TypeVar("T")

# Run in a subprocess so that HF_ENDPOINT/HF_HOME, which datasets reads at import, are set before import. It
# prints the Arrow files datasets prepared (memory-mapped there; read back here a batch at a time).
_LOAD_SCRIPT = """
import json, sys, datasets
ds = datasets.load_dataset(sys.argv[1], revision=sys.argv[2], split="train")
print(json.dumps([f["filename"] for f in ds.cache_files]))
"""


class HubRemote(Remote):
    kind = "hub"

    def __init__(self, repo_id: str, *, endpoint: str, token: str | None, private: bool = True,
                 create: bool = True, cache_dir: Path | None = None, max_tries: int = 5,
                 backoff_seconds: float = 1.0, max_wait_seconds: float = MAX_WAIT_SECONDS,
                 transfer: str = "xet") -> None:
        if transfer not in TRANSFERS:
            raise ValueError(f"transfer must be one of {TRANSFERS}, not {transfer!r}")
        self.transfer = transfer
        self.repo_id = repo_id
        self.endpoint = endpoint.rstrip("/")
        self._token = token
        self.private, self.create = private, create
        self.cache_dir = cache_dir
        self.max_tries, self.backoff_seconds, self.max_wait_seconds = max_tries, backoff_seconds, max_wait_seconds
        self.api = HfApi(endpoint=self.endpoint, token=token or False)
        self._repo_ready = False

    def __repr__(self) -> str:  # never shows the token
        return f"HubRemote({self.repo_id!r}, endpoint={redact_url(self.endpoint)!r})"

    @property
    def url(self) -> str:
        return f"{redact_url(self.endpoint)}/datasets/{self.repo_id}"  # shown in messages and metadata

    def version_url(self, tag: str) -> str:
        return f"{self.url}/tree/{tag}"

    def ensure_repo(self) -> None:
        if self._repo_ready:
            return
        if self.create:
            self._call("create repo", self.api.create_repo, self.repo_id, repo_type="dataset",
                       private=self.private, exist_ok=True)
        else:
            self._call("read repo", self.api.repo_info, self.repo_id, repo_type="dataset")
        self._repo_ready = True

    def tags(self) -> dict[str, str]:
        try:
            refs = self._call("list refs", self.api.list_repo_refs, self.repo_id, repo_type="dataset")
        except RemoteNotFoundError:
            if not self.create:
                raise
            self.ensure_repo()  # first publish to a new repo: create it, nothing is tagged yet
            return {}
        self._repo_ready = True
        return {t.name: t.target_commit for t in refs.tags}

    def _head(self) -> str:
        refs = self._call("list refs", self.api.list_repo_refs, self.repo_id, repo_type="dataset")
        heads = {b.name: b.target_commit for b in refs.branches}
        if "main" not in heads:
            raise RemoteNotFoundError(f"{self.url}: has no main branch")
        return heads["main"]

    def publish(self, files: Mapping[str, Path], *, tag: str, parent: str | None, message: str) -> Published:
        ensure_publishable(self.url, self.tags(), tag, parent)
        head = self._head()
        # a version is exactly `files`: what main holds and this version does not (an earlier version's files
        # under names this one does not use, say train-00000-of-00002 once there are 3, or shards) is deleted
        gone = sorted(set(self.list_files(head)) - set(files) - {".gitattributes"})
        staging = f"dsm-staging-{tag}-{secrets.token_hex(4)}"
        self._call("create staging branch", self.api.create_branch, self.repo_id, branch=staging,
                   revision=head, repo_type="dataset")
        try:
            staged, sent = self._commit_all(files, gone, f"{message} (staging)", branch=staging, parent=head)
            self._verify(staged, files, gone)
            promoted, promotion_sent = self._commit_all(files, gone, message, branch="main", parent=head)
            sent = {p: sent[p] + promotion_sent[p] for p in files}
            self._verify(promoted, files, gone)
            self._tag(tag, promoted, message)
        finally:
            # a leftover staging branch is harmless; the next publish uses a new name
            with contextlib.suppress(HfHubHTTPError, httpx2.TransportError):
                self.api.delete_branch(self.repo_id, branch=staging, repo_type="dataset")
        reused = tuple(p for p in sorted(files) if not sent[p])  # the Hub held their content: none of it sent
        return Published(tag=tag, commit=promoted, bytes_uploaded=sum(sent.values()), files=tuple(sorted(files)),
                         reused=reused, bytes_reused=sum(files[p].stat().st_size for p in reused))

    def _tag(self, tag: str, commit: str, message: str) -> None:
        try:
            self._call("create tag", self.api.create_tag, self.repo_id, tag=tag, revision=commit,
                       repo_type="dataset", tag_message=message)
        except ConcurrentPublishError:
            if self.tags().get(tag) != commit:  # else: a retry whose first try landed and lost its reply
                raise

    def _commit_all(self, files: Mapping[str, Path], gone: list[str], message: str, *, branch: str,
                    parent: str) -> tuple[str, dict[str, int]]:
        """`files` added and `gone` deleted in commits of at most MAX_FILES_PER_COMMIT operations (see the module
        docstring), deletions last, chained by parent_commit, so a writer that moves `branch` in between still
        fails the next one with 412. Returns the last commit (it holds every file and none of `gone`: verified
        before any tag names it) and the bytes sent per file."""
        items: list[tuple[str, Path | None]] = [*sorted(files.items()), *((p, None) for p in gone)]
        chunks = [dict(items[i:i + MAX_FILES_PER_COMMIT]) for i in range(0, len(items), MAX_FILES_PER_COMMIT)]
        commit, sent = parent, {}
        for n, chunk in enumerate(chunks, 1):
            part = f" ({n}/{len(chunks)})" if len(chunks) > 1 else ""
            commit, chunk_sent = self._commit(chunk, message + part, branch=branch, parent=commit)
            sent.update(chunk_sent)
        return commit, sent

    def _commit(self, files: Mapping[str, Path | None], message: str, *, branch: str,
                parent: str) -> tuple[str, dict[str, int]]:
        """Commit `files` to `branch` (a path mapped to None is deleted); (the commit, per added file the bytes
        the Hub did not hold before and was sent)."""
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(f)) for p, f in sorted(files.items()) if f]
        deletes = [CommitOperationDelete(path_in_repo=p) for p, f in sorted(files.items()) if f is None]
        missing = self._missing_objects(ops, branch) if ops else set()
        with self._transfer_path():
            info = self._call(f"commit to {branch}", self.api.create_commit, self.repo_id, [*ops, *deletes],
                              repo_type="dataset", commit_message=message, revision=branch, parent_commit=parent)
        return info.oid, {op.path_in_repo: _sent(op, missing) for op in ops}

    def _missing_objects(self, ops: list[CommitOperationAdd], branch: str) -> set[str] | None:
        """sha256 of the objects the Hub's large-file storage lacks (the LFS batch API answers with an upload
        action only for those), or None when it cannot tell (then every large file counts as sent)."""
        try:
            actions, _, _ = self._call("ask which objects are stored", post_lfs_batch_info,
                                       upload_infos=[op.upload_info for op in ops], token=self._token,
                                       repo_type="dataset", repo_id=self.repo_id, revision=branch,
                                       endpoint=self.endpoint)
        except RemoteError:
            return None
        return {a["oid"] for a in actions if a.get("actions")}

    @contextlib.contextmanager
    def _transfer_path(self):
        """For transfer "lfs", the client's documented switch (HF_HUB_DISABLE_XET) for the duration of a call."""
        if self.transfer == "xet":
            yield
            return
        with _TRANSFER_LOCK:
            before, constants.HF_HUB_DISABLE_XET = constants.HF_HUB_DISABLE_XET, True
            try:
                yield
            finally:
                constants.HF_HUB_DISABLE_XET = before

    def _verify(self, commit: str, files: Mapping[str, Path], gone: list[str]) -> None:
        remote = {f.path: f for f in self._call("verify", self.api.get_paths_info, self.repo_id,
                                                [*files, *gone], revision=commit, repo_type="dataset")}
        if left := sorted(set(remote) & set(gone)):
            raise RemoteError(f"{self.url}: {', '.join(left)} still at {commit[:12]} after being deleted; "
                              "nothing was promoted")
        for path, local in files.items():
            entry = remote.get(path)
            lfs = getattr(entry, "lfs", None)  # LFS/Xet files: blob_id is the pointer's; compare the sha256
            same = entry is not None and entry.size == local.stat().st_size and (
                lfs.sha256 == sha256_file(local) if lfs else entry.blob_id == _git_blob_id(local))
            if not same:
                raise RemoteError(f"{self.url}: {path} differs from what was uploaded at {commit[:12]}; "
                                  "nothing was promoted")

    def list_files(self, commit: str) -> dict[str, int]:
        entries = self._call("list files", lambda: list(self.api.list_repo_tree(
            self.repo_id, revision=commit, recursive=True, repo_type="dataset")))
        return {e.path: e.size for e in entries if getattr(e, "size", None) is not None}

    def read_file(self, commit: str, path: str) -> bytes:
        return self._fetch(commit, path).read_bytes()

    def download(self, commit: str, path: str, dest: Path) -> None:
        shutil.copyfile(self._fetch(commit, path), dest)

    def _fetch(self, commit: str, path: str) -> Path:
        """The file in huggingface_hub's cache (downloaded once per commit, then served from disk)."""
        return Path(self._call(f"download {path}", self.api.hf_hub_download, self.repo_id, path,
                               repo_type="dataset", revision=commit, cache_dir=self.cache_dir))

    @contextlib.contextmanager
    def read_batches(self, commit: str, *, scratch: Path | None = None) -> Iterator[pa.RecordBatchReader]:
        """`datasets.load_dataset(repo, revision=commit)` in a fresh HF_HOME (the normal read path, cold), in
        a child process; the Arrow files it prepared are then read here a batch at a time (not mapped, so
        memory stays bounded), inside the block."""
        with tempfile.TemporaryDirectory(prefix="dsm-hub-read-", dir=scratch) as tmp:
            env = {**os.environ, "HF_ENDPOINT": self.endpoint, "HF_HOME": str(Path(tmp) / "hf"),
                   "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
            env.pop("HF_TOKEN", None)
            if self._token:
                env["HF_TOKEN"] = self._token
            done = subprocess.run([sys.executable, "-c", _LOAD_SCRIPT, self.repo_id, commit],
                                  env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise RemoteError(f"{self.url}: datasets.load_dataset at {commit[:12]} failed: {last}")
            files = json.loads(done.stdout.strip().splitlines()[-1])
            with contextlib.ExitStack() as opened:
                readers = [pa.ipc.open_stream(opened.enter_context(pa.OSFile(f))) for f in files]
                yield pa.RecordBatchReader.from_batches(readers[0].schema, (b for r in readers for b in r))

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        retrying = Retrying(retry=retry_if_exception(_retryable), stop=self._stop, wait=self._wait, reraise=True,
                            before_sleep=lambda state: self._log_wait(what, state))
        try:
            return retrying(fn, *args, **kwargs)
        except (HfHubHTTPError, httpx2.TransportError, LocalEntryNotFoundError, *XET_ERRORS) as exc:
            raise self._translate(exc, what) from None

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it sent one, else exponential backoff from `backoff_seconds`."""
        after = _retry_after(state.outcome.exception())
        if after is not None:
            return after
        return min(self.backoff_seconds * 2 ** (state.attempt_number - 1), 30 * self.backoff_seconds)

    def _stop(self, state: RetryCallState) -> bool:
        if state.idle_for + self._wait(state) > self.max_wait_seconds:
            return True  # the next wait would pass the budget: give up now rather than sleep in vain
        rate_limited = _retry_after(state.outcome.exception()) is not None
        # asked to wait: retry while the budget lasts (capped, in case the server keeps asking for 0 s)
        return state.attempt_number >= (MAX_RATE_LIMITED_TRIES if rate_limited else self.max_tries)

    def _log_wait(self, what: str, state: RetryCallState) -> None:
        exc, wait = state.outcome.exception(), state.upcoming_sleep
        if _status(exc) == 429:
            log.warning("%s: rate limited by the Hub (%s); retrying in %.0f s", self.url, what, wait)
        else:
            log.warning("%s: %s: %s; retrying in %.1f s (try %d of %d)", self.url, what, _reason(exc), wait,
                        state.attempt_number + 1, self.max_tries)

    def _translate(self, exc: Exception, what: str) -> RemoteError:
        if isinstance(exc, LocalEntryNotFoundError):  # hf_hub_download could not reach the file, after its own retries
            return RemoteError(f"{self.url}: {what} failed: the Hub did not answer ({_reason(exc.__cause__ or exc)})")
        status = _status(exc)
        if isinstance(exc, XET_ERRORS) and not isinstance(exc, HfHubHTTPError):
            reason = _reason(exc).replace(self._token, "***") if self._token else _reason(exc)
            return RemoteError(f"{self.url}: {what} failed in the Xet transfer ({reason}); nothing was "
                               "promoted, the latest version is unchanged")
        if status == 429 and (after := _retry_after(exc)) is not None:
            return RemoteError(f"{self.url}: {what}: still rate limited by the Hub (HTTP 429, retry after "
                               f"{after:.0f} s) when this remote stopped waiting (at most "
                               f"{self.max_wait_seconds:.0f} s and {MAX_RATE_LIMITED_TRIES} tries; "
                               "DSM_HUB_MAX_WAIT_SECONDS). Nothing was promoted; run again later")
        if status == 409 and _locked(exc):
            return RemoteError(f"{self.url}: {what}: another commit to {self.repo_id} was still in progress after "
                               f"{self.max_tries} tries (HTTP 409); nothing was promoted, run again")
        if isinstance(exc, RepositoryNotFoundError):
            return RemoteNotFoundError(f"{self.url}: {what}: dataset repo '{self.repo_id}' not found; create it "
                                       "or set remote.create: true in the registry (or set HF_TOKEN if it is private)")
        if isinstance(exc, RevisionNotFoundError | EntryNotFoundError):
            return RemoteNotFoundError(f"{self.url}: {what}: not found ({type(exc).__name__})")
        if status == 401:
            return RemoteAuthError(f"{self.url}: {what}: 401 unauthorized; set HF_TOKEN to a valid token")
        if status == 403:
            return RemoteAuthError(f"{self.url}: {what}: 403 forbidden; set HF_TOKEN to a token with write access "
                                   f"to {self.repo_id}")
        if status in (409, 412):
            return ConcurrentPublishError(f"{self.url}: {what}: another writer got there first (HTTP {status}); "
                                          "nothing of this run was promoted. Re-run to publish on top of it")
        if status in RETRY_STATUSES or isinstance(exc, httpx2.TransportError):
            reason = f"HTTP {status}" if status else type(exc).__name__
            return RemoteError(f"{self.url}: {what} failed after {self.max_tries} tries ({reason}); nothing was "
                               "promoted, the latest version is unchanged")
        return RemoteError(f"{self.url}: {what} failed (HTTP {status})")



def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx2.TransportError):
        return True
    return isinstance(exc, HfHubHTTPError) and (_status(exc) in RETRY_STATUSES or _locked(exc))


def _status(exc: BaseException | None) -> int | None:
    return getattr(getattr(exc, "response", None), "status_code", None)


def _locked(exc: BaseException) -> bool:
    """The Hub's commit lock: a 409 that says another operation on the repo is still running."""
    text = f"{getattr(exc, 'server_message', None) or ''} {exc}".lower()
    return _status(exc) == 409 and any(phrase in text for phrase in LOCKED)


def _retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a 429/503's `Retry-After: N` (the form the Hub sends), or None."""
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None and _status(exc) in (429, 503) else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to backoff


def _reason(exc: BaseException | None) -> str:
    status = _status(exc)
    if status:
        return f"HTTP {status}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _sent(op: CommitOperationAdd, missing: set[str] | None) -> int:
    """Bytes of `op` the commit sent: a regular file unless unchanged, a large file unless already stored."""
    size = op.upload_info.size
    if op._upload_mode == "regular":  # the client's own preupload result (no public accessor)
        return 0 if op._remote_oid == _git_blob_id(Path(op.path_or_fileobj)) else size
    if op._upload_mode == "lfs":
        return size if missing is None or op.upload_info.sha256.hex() in missing else 0
    return 0


def _git_blob_id(path: Path) -> str:
    """The id git (and the Hub) gives a regular file: sha1 of 'blob <size>\\0' + content."""
    return digest_file(path, hashlib.sha1(f"blob {path.stat().st_size}\0".encode()))
