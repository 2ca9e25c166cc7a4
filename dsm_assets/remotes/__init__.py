"""One Remote interface (base.Remote), three implementations: local (default), hub, s3."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dsm_assets.errors import RemoteError
from dsm_assets.layout import hub_download_cache, local_remote_root, s3_prefix
from dsm_assets.registry import DatasetSpec
from dsm_assets.remotes.base import Published, Remote

__all__ = ["Published", "Remote", "RemoteSettings", "open_remote"]

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class RemoteSettings:
    """Endpoints, credentials and retry policy, read from the environment when built (never at import)."""

    hf_endpoint: str | None = None
    hf_token: str | None = field(default=None, repr=False)
    aws_endpoint_url: str | None = None
    max_tries: int = 5
    backoff_seconds: float = 1.0
    max_wait_seconds: float = 900.0  # total time a Hub call may spend waiting on rate limits and retries

    @classmethod
    def from_env(cls) -> RemoteSettings:
        return cls(hf_endpoint=os.environ.get("HF_ENDPOINT"), hf_token=os.environ.get("HF_TOKEN"),
                   aws_endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                   max_wait_seconds=_seconds("DSM_HUB_MAX_WAIT_SECONDS", cls.max_wait_seconds))


def _seconds(variable: str, default: float) -> float:
    value = os.environ.get(variable)
    try:
        seconds = float(value) if value else default
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise RemoteError(f"{variable}={value!r}: expected a number of seconds (default {default:.0f})")
    return seconds


def open_remote(spec: DatasetSpec, *, data_dir: Path, settings: RemoteSettings | None = None) -> Remote:
    settings = settings or RemoteSettings.from_env()
    remote = spec.remote
    if remote.kind == "hub":
        from dsm_assets.remotes.hub import HubRemote  # imported on use: huggingface_hub is slow to import

        return HubRemote(remote.repo, endpoint=settings.hf_endpoint or DEFAULT_HUB_ENDPOINT,
                         token=settings.hf_token, private=remote.private, create=remote.create,
                         cache_dir=hub_download_cache(data_dir), max_tries=settings.max_tries,
                         backoff_seconds=settings.backoff_seconds, max_wait_seconds=settings.max_wait_seconds,
                         transfer=remote.transfer)
    if remote.kind == "s3":
        from dsm_assets.remotes.s3 import S3Remote

        return S3Remote(remote.bucket, s3_prefix(spec), endpoint_url=settings.aws_endpoint_url,
                        max_attempts=settings.max_tries)
    from dsm_assets.remotes.local import LocalRemote

    return LocalRemote(local_remote_root(data_dir, remote.repo))
