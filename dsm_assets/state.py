"""One reader for our own small JSON state files (verified and published records, lineage.json): a missing
file is None, a file that is not the expected shape is one StateError line naming it and what to do.
Core only and light (json), so `dsm preflight` and `dsm lineage` stay fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsm_assets.errors import StateError

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
