"""The manifest, the shards' one truth: written last, sealed with its own hash (SELF_HASH), and checked
before anything reuses or reads the shards. Beside it, `.seals.json` keeps each shard's mtime as last
verified, so a shard whose stat is unchanged need not be re-hashed to be reused.

Besides each shard's name, bytes, samples and hash, the manifest says what a sample holds: `fields`, every
member extension written (`["json", "cls", "jpg", "png"]`), and `field_groups`, the same split by where it
comes from (`[["json"], ["cls"], ["jpg", "png"]]`): each sample has exactly one member of every group, so a
dataset mixing JPEG and PNG images lists both and a sample carries one of them. `format` is FORMAT; shards of
an older format are rewritten rather than reused, and so are shards cut otherwise than the registry now asks
(`compression`, `fields_mode`, `shard_count`, recorded with `estimated_bytes`, the size the count was
derived from)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import xxhash

from dsm_assets import atomic, seals
from dsm_assets.fingerprint import hash_file
from dsm_assets.layout import SHARDS_MANIFEST

SEALS = ".seals.json"  # each shard's mtime when last verified (not part of the manifest: no data version)
SELF_HASH = "manifest_xxh3_128"  # the manifest's own hash, over every other key
FORMAT = 3  # 3: text only in .txt, compression, layout keys; 2: members named by content, field_groups; 1: none
log = logging.getLogger("dsm_assets.shards")


def manifest_hash(manifest: dict[str, Any]) -> str:
    """The manifest's hash as a whole: the shards' data version."""
    return xxhash.xxh3_128_hexdigest(json.dumps(manifest, sort_keys=True).encode())


def _self_hash(manifest: dict[str, Any]) -> str:
    return seals.self_hash(manifest, SELF_HASH, xxhash.xxh3_128)


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` with its own hash (SELF_HASH) set, as it is written."""
    return {**manifest, SELF_HASH: _self_hash(manifest)}


def manifest_problem(folder: Path, manifest: Any) -> str | None:
    """Why the manifest read from `folder` cannot be trusted (not ours, or changed since written), or None."""
    if not isinstance(manifest, dict) or manifest.get(SELF_HASH) != _self_hash(manifest):
        return f"{folder / SHARDS_MANIFEST} does not match its own hash (corrupted, or written by an older version)"
    return None


def field_groups(manifest: dict[str, Any]) -> list[list[str]]:
    """Each group of member extensions a sample has exactly one of (format 1 had one extension per group)."""
    return manifest.get("field_groups") or [[ext] for ext in manifest["fields"]]


def verify_shards(folder: Path, manifest: dict[str, Any], *, deep: bool) -> list[str]:
    """Problems (empty when none): every shard present with its size, and with `deep` its hash."""
    if problem := manifest_problem(folder, manifest):
        return [problem]
    problems = []
    for shard in manifest["shards"]:
        path = folder / shard["name"]
        if not path.is_file():
            problems.append(f"{shard['name']} is missing")
        elif path.stat().st_size != shard["bytes"]:
            problems.append(f"{shard['name']} is {path.stat().st_size} bytes, the manifest says {shard['bytes']} "
                            "(truncated?)")
        elif deep and hash_file(path) != shard["xxh3_128"]:
            problems.append(f"{shard['name']} does not match its hash in the manifest (corrupted)")
    if sum(s["samples"] for s in manifest["shards"]) != manifest["total_samples"]:
        problems.append("the shards' sample counts do not add up to the manifest's total_samples")
    return problems


def reusable(folder: Path, layout: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The manifest of shards already in `folder` when it has `layout` (format, compression, …) and every
    shard still matches it (a shard whose stat changed since it was written is re-hashed); else (None, the
    first problem, if there were shards)."""
    try:
        manifest = json.loads((folder / SHARDS_MANIFEST).read_text())
        shards = manifest["shards"]
        if manifest.get("format") != FORMAT:
            problem = f"{folder / SHARDS_MANIFEST} is shard format {manifest.get('format', 1)}, not {FORMAT}"
            log.warning("%s; writing the shards again", problem)
            return None, problem
        if changed := [k for k in layout if manifest.get(k) != layout[k]]:
            problem = (f"{folder / SHARDS_MANIFEST} has {changed[0]} {manifest.get(changed[0])!r}, the registry "
                       f"now asks for {layout[changed[0]]!r}")
            log.warning("%s; writing the shards again", problem)
            return None, problem
        mtimes = _read_seals(folder)
        problems = [seals.broken(folder / s["name"], {"size": s["bytes"], "mtime_ns": mtimes.get(s["name"]),
                                                      "xxh3_128": s["xxh3_128"]}) for s in shards]
    except (OSError, ValueError, KeyError, TypeError):
        return None, None
    problems = verify_shards(folder, manifest, deep=False) + [p for p in problems if p]
    if problems:
        log.warning("%s; writing the shards again", problems[0])
        return None, problems[0]
    if _mtimes(folder, manifest) != mtimes:  # shards re-hashed and found intact: trust their stat next time
        write_seals(folder, manifest)
    return manifest, None


def write_seals(folder: Path, manifest: dict[str, Any]) -> None:
    """Each shard's mtime as verified now: a shard whose stat is unchanged need not be re-hashed to reuse."""
    atomic.write_json(folder / SEALS, _mtimes(folder, manifest))


def _read_seals(folder: Path) -> dict[str, int]:
    try:
        found = json.loads((folder / SEALS).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _mtimes(folder: Path, manifest: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: (folder / s["name"]).stat().st_mtime_ns for s in manifest["shards"]}
