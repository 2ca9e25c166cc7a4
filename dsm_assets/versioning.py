"""Version tags: v1.0 first; a content change bumps the minor number, a schema change the major one;
unchanged content publishes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import xxhash

TAG_RE = re.compile(r"^v(\d+)\.(\d+)$")


def parse_tag(tag: str) -> tuple[int, int] | None:
    m = TAG_RE.match(tag)
    return (int(m.group(1)), int(m.group(2))) if m else None


def latest_tag(tags: Iterable[str]) -> str | None:
    """The highest `vMAJOR.MINOR` tag (numerically, so v1.10 > v1.9); other tags are ignored."""
    versions = [(parsed, t) for t in tags if (parsed := parse_tag(t))]
    return max(versions)[1] if versions else None


def folder_name(tag: str, commit: str) -> str:
    """How a cached or sharded version's folder is named: `v1.1-5423ce4be26d`."""
    return f"{tag}-{commit[:12]}"


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
