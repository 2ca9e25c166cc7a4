"""An S3 remote: a bucket with versioning enabled.

    s3://<bucket>/<prefix>/<repo>/files/<path>        the dataset's files; each upload is a new object version
    s3://<bucket>/<prefix>/<repo>/versions/<tag>.json  a version manifest: commit id, parent, and for every file
                                                       its key, VersionId, size and sha256

A version is its manifest, written last and create-only (`If-None-Match: *`), so two writers cannot both
claim `v1.1`, and a crash before it leaves the previous manifest, still pinning the previous object
versions, as the latest. boto3's own retries (standard mode) handle 5xx, SlowDown and throttling; the
endpoint comes from AWS_ENDPOINT_URL and credentials from the standard chain."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from dsm_assets.errors import RemoteAuthError, RemoteError, RemoteNotFoundError
from dsm_assets.fingerprint import sha256_file
from dsm_assets.remotes.base import Published, Remote, commit_id, ensure_publishable, redact_url
from dsm_assets.versioning import latest_tag

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
        entries, uploaded = {}, 0
        for path, local in sorted(files.items()):
            digest, size = sha256_file(local), local.stat().st_size
            old = previous.get(path)
            if old and old["sha256"] == digest:  # unchanged: pin the object version already there
                entries[path] = old
                continue
            with self._errors(f"upload {path}"), open(local, "rb") as body:
                put = self.client.put_object(Bucket=self.bucket, Key=self._key("files", path), Body=body)
            if "VersionId" not in put:
                raise RemoteError(f"s3://{self.bucket}: versioning is not enabled; enable it so versions can pin files")
            entries[path] = {"key": self._key("files", path), "version_id": put["VersionId"], "size": size,
                             "sha256": digest}
            uploaded += size
        self._verify(entries)
        body = {"parent": parent, "message": message, "files": entries, "tag": tag,
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        body["commit"] = commit_id(body)
        self._claim(tag, body, parent)
        self._manifest_cache[tag] = body
        return Published(tag=tag, commit=body["commit"], bytes_uploaded=uploaded, files=tuple(sorted(entries)))

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
