"""Our own small JSON state files: the latest published and latest verified version of each dataset, and
the one shape-checked reader they (and lineage.json) go through: a missing file is None, a file that is not
the expected shape is one StateError line naming it and what to do. Core only and light (json), so
`dsm preflight` and `dsm lineage` stay fast."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsm_assets import atomic
from dsm_assets.errors import StateError
from dsm_assets.layout import published_record, verified_record

Fields = dict[str, type | tuple[type, ...]]


def read_state(path: Path, fields: Fields, *, what: str, remedy: str) -> dict[str, Any] | None:
    """The JSON object in `path`, checked to hold `fields` (name → type); None when the file is absent."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read the {what} ({exc.strerror or exc}); {remedy}") from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise StateError(f"{path}: the {what} is not valid JSON (corrupt); {remedy}") from None
    problem = shape_problem(value, fields)
    if problem:
        raise StateError(f"{path}: the {what} is malformed ({problem}); {remedy}")
    return value


def shape_problem(value: Any, fields: Fields) -> str | None:
    if not isinstance(value, dict):
        return f"expected an object, got {type(value).__name__}"
    for name, kind in fields.items():
        if name not in value:
            return f"no '{name}'"
        if not isinstance(value[name], kind) or (isinstance(value[name], bool) and kind is not bool):
            return f"'{name}' is {type(value[name]).__name__}"
    return None


def record_latest(data_dir: Path, name: str, outcome: dict[str, Any]) -> None:
    """Remember the latest published version locally, so `dsm registry` shows it without asking the remote."""
    atomic.write_json(published_record(data_dir, name), outcome)


def read_latest(data_dir: Path, name: str) -> dict[str, Any] | None:
    """The latest published version's record, None if never published (or unreadable: it is only shown)."""
    try:
        return json.loads(published_record(data_dir, name).read_text())
    except (OSError, ValueError):
        return None


VERIFIED_FIELDS = {"dataset": str, "tag": str, "commit": str}


def record_verified(data_dir: Path, name: str, *, tag: str, commit: str, url: str) -> None:
    """A passing round_trip check records the version here: the cache asset and `dsm preflight` read it."""
    atomic.write_json(verified_record(data_dir, name), {
        "dataset": name, "tag": tag, "commit": commit, "url": url,
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds")})


def read_verified(data_dir: Path, name: str) -> dict[str, Any] | None:
    """The latest verified version's record, None before the first passing round_trip. A corrupt record is
    a StateError: guessing would let preflight call a stale cache ready."""
    return read_state(verified_record(data_dir, name), VERIFIED_FIELDS, what="verified-version record",
                      remedy=f"delete it and run the {name}/published round_trip check again")
