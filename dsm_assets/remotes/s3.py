"""An S3 remote: a bucket with versioning enabled.

    s3://<bucket>/<prefix>/<repo>/files/<path>        the dataset's files; each upload is a new object version
    s3://<bucket>/<prefix>/<repo>/versions/<tag>.json  a version manifest: commit id, parent, and for every file
                                                       its key, VersionId, size and sha256

A version is its manifest, written last and create-only (`If-None-Match: *`), so two writers cannot both
claim `v1.1`, and a crash before it leaves the previous manifest, still pinning the previous object
versions, as the latest.

Only content the bucket does not hold is uploaded: a file whose sha256 matches a file of any earlier version
(under any path: a re-sharded dataset renames its files) is a server-side copy of that object version to the
new key (CopyObject with the VersionId; UploadPartCopy ranges above CopyObject's 5 GB limit), or that version
itself when it is under the same key; `bytes_uploaded` counts only the bytes PUT. The manifest format is
unchanged, so older dsm_assets versions read the new manifests.

boto3's own retries (standard mode) handle 5xx, SlowDown and throttling; the endpoint comes from
AWS_ENDPOINT_URL and credentials from the standard chain."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from dsm_assets.errors import RemoteAuthError, RemoteError, RemoteNotFoundError
from dsm_assets.fingerprint import sha256_file
from dsm_assets.remotes.base import Published, Remote, commit_id, ensure_publishable, redact_url
from dsm_assets.versioning import latest_tag, parse_tag

log = logging.getLogger(__name__)

COPY_LIMIT = 5 * 10**9  # CopyObject copies at most 5 GB; above it, a multipart copy (UploadPartCopy)
COPY_PART_SIZE = 512 * 2**20  # a multipart copy's part (S3: 5 MiB to 5 GiB, at most 10,000 parts)
AUTH_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


class S3Remote(Remote):
    kind = "s3"

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None, max_attempts: int = 5) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        config = Config(retries={"total_max_attempts": max_attempts, "mode": "standard"})  # tries, first included
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        self.endpoint_url = endpoint_url
        self._manifest_cache: dict[str, dict] = {}  # tag → manifest; safe to keep, manifests are create-only
        self.copy_limit, self.copy_part_size = COPY_LIMIT, COPY_PART_SIZE

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def version_url(self, tag: str) -> str:
        """The version's manifest over https (path style on a custom endpoint, virtual-hosted on AWS)."""
        key = self._key("versions", f"{tag}.json")
        if self.endpoint_url:
            return f"{redact_url(self.endpoint_url.rstrip('/'))}/{self.bucket}/{key}"
        return f"https://{self.bucket}.s3.amazonaws.com/{key}"

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def tags(self) -> dict[str, str]:
        return {tag: manifest["commit"] for tag, manifest in self._manifests().items()}

    def _manifests(self) -> dict[str, dict]:
        """Every version manifest; one LIST, plus a GET for each manifest not seen before."""
        out = {}
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("list versions"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("versions") + "/"):
                for obj in page.get("Contents", []):
                    tag = obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")
                    if tag not in self._manifest_cache:
                        self._manifest_cache[tag] = json.loads(self._get(obj["Key"]))
                    out[tag] = self._manifest_cache[tag]
        return out

    def publish(self, files: Mapping[str, Path], *, tag: str, parent: str | None, message: str) -> Published:
        manifests = self._manifests()
        ensure_publishable(self.url, {t: m["commit"] for t, m in manifests.items()}, tag, parent)
        latest = latest_tag(manifests)
        previous = manifests[latest]["files"] if latest else {}
        stored = _stored_objects(manifests)
        entries, uploaded, reused = {}, 0, []
        for path, local in sorted(files.items()):
            digest, size = sha256_file(local), local.stat().st_size
            key = self._key("files", path)
            old = previous.get(path)
            if old and old["sha256"] == digest:  # unchanged: pin the object version already there
                entries[path] = old
                reused.append(path)
                continue
            # content an earlier version holds, under this path or another: pin or copy it, no bytes sent
            held = sorted((e for e in stored.get(digest, ()) if e["size"] == size), key=lambda e: e["key"] != key)
            entry = next((e for e in (self._reuse(path, key, h) for h in held) if e is not None), None)
            if entry is not None:
                entries[path] = entry
                reused.append(path)
                continue
            entries[path] = self._upload(path, key, local, digest, size)
            uploaded += size
        self._verify(entries)
        body = {"parent": parent, "message": message, "files": entries, "tag": tag,
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        body["commit"] = commit_id(body)
        self._claim(tag, body, parent)
        self._manifest_cache[tag] = body
        return Published(tag=tag, commit=body["commit"], bytes_uploaded=uploaded, files=tuple(sorted(entries)),
                         reused=tuple(reused), bytes_reused=sum(entries[p]["size"] for p in reused))

    def _upload(self, path: str, key: str, local: Path, digest: str, size: int) -> dict:
        with self._errors(f"upload {path}"), open(local, "rb") as body:
            put = self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return {"key": key, "version_id": self._version_id(put), "size": size, "sha256": digest}

    def _version_id(self, response: dict) -> str:
        """The object version a PUT or copy created; refused when the bucket does not keep versions."""
        if "VersionId" not in response:
            raise RemoteError(f"s3://{self.bucket}: versioning is not enabled; enable it so versions can pin files")
        return response["VersionId"]

    def _reuse(self, path: str, key: str, held: dict) -> dict | None:
        """The manifest entry for `path` whose content the object version `held` already has: that version itself
        when it is under `key` (pinned), else a server-side copy of it to `key` (so the latest version's files
        stay the current objects under files/, whatever earlier versions named them). None when the source
        version is gone (deleted by hand, expired by a lifecycle rule): then the caller uploads."""
        if held["key"] == key:
            return held
        source = {"Bucket": self.bucket, "Key": held["key"], "VersionId": held["version_id"]}
        try:
            if held["size"] <= self.copy_limit:
                version = self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source)
            else:
                version = self._multipart_copy(key, source, held["size"])
        except (ClientError, BotoCoreError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "NoSuchVersion", "404"):
                log.warning("%s: %s (version %s, reused for %s) is gone; uploading it again", self.url, held["key"],
                            held["version_id"], path)
                return None
            raise self._translate(exc, f"copy {held['key']} to {path}") from None
        return {**held, "key": key, "version_id": self._version_id(version)}

    def _multipart_copy(self, key: str, source: dict, size: int) -> dict:
        """A server-side copy of an object above CopyObject's 5 GB limit: a multipart upload whose parts are
        UploadPartCopy ranges of the source (aborted on failure, so no parts are left billed)."""
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, self.copy_part_size), 1):
                end = min(start + self.copy_part_size, size) - 1
                part = self.client.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number,
                                                    CopySource=source, CopySourceRange=f"bytes={start}-{end}")
                parts.append({"PartNumber": number, "ETag": part["CopyPartResult"]["ETag"]})
            return self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload,
                                                         MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
            raise

    def _claim(self, tag: str, body: dict, parent: str | None) -> None:
        """Write the version manifest, create-only. A precondition failure is either another writer's claim or
        our own: boto3 retried a PUT whose first reply was lost after S3 had stored it (same body, same commit)."""
        key = self._key("versions", f"{tag}.json")
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=json.dumps(body, sort_keys=True).encode(),
                                   IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise self._translate(exc, "write version manifest") from None
            if json.loads(self._get(key)).get("commit") != body["commit"]:
                ensure_publishable(self.url, self.tags(), tag, parent)  # raises: someone else claimed the tag
                raise self._translate(exc, "write version manifest") from None

    def _verify(self, entries: Mapping[str, dict]) -> None:
        for path, entry in entries.items():
            with self._errors(f"verify {path}"):
                head = self.client.head_object(Bucket=self.bucket, Key=entry["key"], VersionId=entry["version_id"])
            if head["ContentLength"] != entry["size"]:
                raise RemoteError(f"{self.url}: {path} has {head['ContentLength']} bytes after upload, "
                                  f"expected {entry['size']}; nothing was published")

    def _manifest_for(self, commit: str) -> dict:
        for manifest in self._manifest_cache.values():  # known versions need no LIST
            if manifest["commit"] == commit:
                return manifest
        for manifest in self._manifests().values():
            if manifest["commit"] == commit:
                return manifest
        raise RemoteNotFoundError(f"{self.url}: no version with commit {commit}")

    def list_files(self, commit: str) -> dict[str, int]:
        return {p: e["size"] for p, e in self._manifest_for(commit)["files"].items()}

    def _entry(self, commit: str, path: str) -> dict:
        files = self._manifest_for(commit)["files"]
        if path not in files:
            raise RemoteNotFoundError(f"{self.url}: no file {path} at commit {commit[:12]}")
        return files[path]

    def read_file(self, commit: str, path: str) -> bytes:
        entry = self._entry(commit, path)
        return self._get(entry["key"], entry["version_id"])

    def download(self, commit: str, path: str, dest: Path) -> None:
        entry = self._entry(commit, path)
        with self._errors(f"download {path}"), open(dest, "wb") as f:
            self.client.download_fileobj(self.bucket, entry["key"], f, ExtraArgs={"VersionId": entry["version_id"]})

    def _get(self, key: str, version_id: str | None = None) -> bytes:
        extra = {"VersionId": version_id} if version_id else {}
        with self._errors(f"read {key}"):
            return self.client.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """boto errors → our RemoteError family: the one place this remote translates them."""
        try:
            yield
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(exc, what) from None

    def _translate(self, exc: Exception, what: str) -> RemoteError:
        if isinstance(exc, NoCredentialsError):
            return RemoteAuthError(f"{self.url}: {what}: no AWS credentials; set AWS_ACCESS_KEY_ID and "
                                   "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in AUTH_CODES or status in (401, 403):
                return RemoteAuthError(f"{self.url}: {what}: {code or status}; check AWS_ACCESS_KEY_ID / "
                                       "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket policy")
            if code in ("NoSuchBucket", "NoSuchKey", "NoSuchVersion", "404"):
                return RemoteNotFoundError(f"{self.url}: {what}: {code}; create the bucket (with versioning) "
                                           "or fix remote.bucket in the registry")
            tries = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            after = f" after {tries} tries" if tries > 1 else ""
            return RemoteError(f"{self.url}: {what} failed: {code or status}{after}")
        return RemoteError(f"{self.url}: {what} failed: {type(exc).__name__}: {exc}")


def _stored_objects(manifests: Mapping[str, dict]) -> dict[str, list[dict]]:
    """sha256 → the manifest entries (key, VersionId, size) holding that content, over every version (shard
    tags too), newest version first."""
    out: dict[str, list[dict]] = {}
    newest_first = sorted(manifests, key=lambda t: (parse_tag(t) or (-1, -1), manifests[t].get("created", "")),
                          reverse=True)
    for tag in newest_first:
        for entry in manifests[tag]["files"].values():
            if entry not in out.setdefault(entry["sha256"], []):
                out[entry["sha256"]].append(entry)
    return out
