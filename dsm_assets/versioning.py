"""The version policy. Publishing: v1.0 first; a content change bumps the minor number, a schema change the
major one; unchanged content publishes nothing. Reading: the version a cache should hold, preflight expects
and `dsm_assets.load` returns is the registry's pin, else the latest version whose round_trip passed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import xxhash

from dsm_assets.state import read_verified

if TYPE_CHECKING:
    from dsm_assets.registry import DatasetSpec

TAG_RE = re.compile(r"^v(\d+)\.(\d+)$")


@dataclass(frozen=True)
class Wanted:
    tag: str
    commit: str | None  # None for a registry pin: the remote resolves the tag
    pinned: bool


def wanted_version(spec: DatasetSpec, data_dir: Path) -> Wanted | None:
    """The version to cache and load: the registry's pin, else the latest verified one (None before the
    first passing round_trip). A corrupt verified record raises StateError: never guess."""
    if spec.pin:
        return Wanted(spec.pin, None, pinned=True)
    verified = read_verified(data_dir, spec.name)
    return Wanted(verified["tag"], verified["commit"], pinned=False) if verified else None


def parse_tag(tag: str) -> tuple[int, int] | None:
    m = TAG_RE.match(tag)
    return (int(m.group(1)), int(m.group(2))) if m else None


def latest_tag(tags: Iterable[str]) -> str | None:
    """The highest `vMAJOR.MINOR` tag (numerically, so v1.10 > v1.9); other tags are ignored."""
    versions = [(parsed, t) for t in tags if (parsed := parse_tag(t))]
    return max(versions)[1] if versions else None


def schema_hash(schema: Mapping[str, str]) -> str:
    return xxhash.xxh3_64_hexdigest(json.dumps(list(schema.items())).encode())


def next_tag(previous_tag: str | None, previous_content: str | None, previous_schema: str | None,
             content_hash: str, new_schema: str) -> str | None:
    """The tag the new content gets, or None when the content is what `previous_tag` already holds."""
    if previous_tag is None:
        return "v1.0"
    if previous_content == content_hash:
        return None
    major, minor = parse_tag(previous_tag) or (0, 0)
    return f"v{major + 1}.0" if previous_schema != new_schema else f"v{major}.{minor + 1}"
