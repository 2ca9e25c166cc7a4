"""Verify before reuse: what we write is sealed with its size, mtime and xxh3-128, and checked against that
seal before it is reused. An unchanged stat is trusted (cheap); a changed one is re-hashed, so a flipped
byte is caught even when the size is the same, and the caller rebuilds instead of reusing.

A manifest seals itself: `self_hash` is its hash over every key but the one holding that hash."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dsm_assets.fingerprint import hash_file


def seal(path: Path, *, xxh3_128: str | None = None) -> dict[str, Any]:
    """The seal of a file just written; `xxh3_128`: its hash, when the writer hashed the bytes it wrote."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "xxh3_128": xxh3_128 or hash_file(path)}


def broken(path: Path, sealed: Any) -> str | None:
    """Why `path` no longer matches its seal (one line naming it), or None when it does."""
    if not isinstance(sealed, dict) or not {"size", "mtime_ns", "xxh3_128"} <= sealed.keys():
        return f"{path}: no seal recorded when it was written, cannot be verified"
    try:
        st = path.stat()
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if st.st_size != sealed["size"]:
        return f"{path}: {st.st_size} bytes, {sealed['size']} when written (truncated or overwritten)"
    if st.st_mtime_ns == sealed["mtime_ns"]:
        return None
    actual = hash_file(path)
    if actual != sealed["xxh3_128"]:
        return f"{path}: content changed since it was written (xxh3 {actual}, expected {sealed['xxh3_128']})"
    return None


class _Digest(Protocol):
    def hexdigest(self) -> str: ...


def self_hash(manifest: dict[str, Any], key: str, hasher: Callable[[bytes], _Digest]) -> str:
    """`hasher` (e.g. hashlib.sha256, xxhash.xxh3_128) over the manifest's JSON with sorted keys, without
    `key`, where the manifest keeps this hash: a flipped byte anywhere in it is caught."""
    body = {k: v for k, v in manifest.items() if k != key}
    return hasher(json.dumps(body, sort_keys=True).encode()).hexdigest()
