"""published → cache: a verified version on local disk, for training nodes with no network.

    <cache_dir>/versions/<tag>-<commit12>/   README.md, data/train-*.parquet, dsm.json, cache_manifest.json
    <cache_dir>/current -> versions/<tag>-<commit12>

Each version folder is a layout `datasets.load_dataset(<folder>)` reads offline (the card's `configs`
point at the parquet). A refresh downloads into `versions/.tmp-*`, verifies sizes, hashes and the content
hash of the data, renames the folder into place and then swaps `current` by renaming a new symlink over
it: a crash or a failed download at any point leaves the previous cache in place and loadable.

The pass that verifies the content hash also writes `.arrow/train.arrow`, the memory-mapped copy
`dsm_assets.load` opens (`arrow_cache`): training nodes never convert, and a read-only cache works. A version
already cached without it gets it on the next refresh. It doubles the cache's disk use (Arrow is not
compressed), which is what `datasets.load_dataset(<folder>)` would write into its own cache on every node."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dsm_assets import atomic, seals
from dsm_assets.errors import CacheError, on_disk
from dsm_assets.fingerprint import sha256_file
from dsm_assets.layout import (
    CACHE_MANIFEST,
    CACHE_VERSIONS,
    CURRENT,
    INFO_PATH,
    cache_arrow_file,
    cache_arrow_seal,
    cache_root,
    cache_version_dir,
    data_parquet,
    folder_name,
)
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.remotes.base import Remote
from dsm_assets.versioning import parse_tag, wanted_version

log = logging.getLogger(__name__)
SELF_HASH = "manifest_sha256"  # the manifest's own hash, over every other key


@dataclass(frozen=True)
class CacheResult:
    dataset: str
    tag: str
    commit: str
    path: Path  # the version folder `current` points at
    files: dict[str, dict[str, Any]]
    bytes: int
    rows: int
    refreshed: bool  # False: this version was already cached and verified
    pruned: tuple[str, ...]


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / CACHE_MANIFEST).read_text())


def _self_hash(manifest: dict[str, Any]) -> str:
    return seals.self_hash(manifest, SELF_HASH, hashlib.sha256)


def cached_files(spec: DatasetSpec, data_dir: Path, tag: str, commit: str) -> dict[str, Path]:
    """Repo path → local file of version `tag` in the offline cache, when it is cached ({} otherwise).
    Unverified: whoever uses one as a source checks its hash first."""
    folder = cache_version_dir(spec, data_dir, tag, commit)
    try:
        files = read_manifest(folder)["files"]
        return {path: folder / path for path in files if isinstance(path, str)}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def verify_folder(folder: Path, *, deep: bool) -> str | None:
    """None if every file in the manifest is present with its size (and, if `deep`, its sha256); else why not."""
    try:
        manifest = read_manifest(folder)
    except FileNotFoundError:
        return f"{CACHE_MANIFEST} is missing in {display_path(folder)}"
    except (OSError, ValueError) as exc:
        return f"{CACHE_MANIFEST} in {display_path(folder)} is unreadable ({exc})"
    if not isinstance(manifest, dict) or manifest.get(SELF_HASH) != _self_hash(manifest):
        return (f"{display_path(folder / CACHE_MANIFEST)} does not match its own hash (corrupted, or from an older "
                "version)")
    for path, entry in sorted(manifest["files"].items()):
        local = folder / path
        shown = display_path(local)
        if not local.is_file():
            return f"{shown} is missing"
        size = local.stat().st_size
        if size != entry["size"]:
            return f"{shown} is {size} bytes, the manifest says {entry['size']} (truncated or replaced)"
        if deep and sha256_file(local) != entry["sha256"]:
            return f"{shown} does not match its sha256 in the manifest (corrupted)"
    return None


def refresh_wanted(spec: DatasetSpec, remote: Remote, *, data_dir: Path, keep: int = 2) -> CacheResult:
    """Refresh the cache to the version the policy wants (`versioning.wanted_version`): the registry's pin,
    resolved on the remote, else the latest verified version."""
    wanted = wanted_version(spec, data_dir)
    if wanted is None:
        raise CacheError(f"{spec.name} has no verified version yet: materialise {spec.name}/published and let its "
                         "round_trip check pass first")
    commit = wanted.commit or remote.resolve(wanted.tag)
    return refresh_cache(spec, remote, tag=wanted.tag, commit=commit, data_dir=data_dir, keep=keep)


def refresh_cache(spec: DatasetSpec, remote: Remote, *, tag: str, commit: str, data_dir: Path,
                  keep: int = 2) -> CacheResult:
    """Make `current` the verified cache of `tag` at `commit`, downloading only if it is not cached yet."""
    root = cache_root(spec, data_dir)
    try:
        (root / CACHE_VERSIONS).mkdir(parents=True, exist_ok=True)
        (root / ".lock").touch()
    except OSError as exc:
        raise CacheError(f"{root}: cache dir is not writable ({exc.strerror or exc}); fix its permissions or "
                         f"change {spec.where}.cache_dir") from None
    with on_disk(root, f"caching {spec.name}"), atomic.dir_lock(root):
        return _refresh(spec, remote, root, tag=tag, commit=commit, keep=keep)


def _refresh(spec: DatasetSpec, remote: Remote, root: Path, *, tag: str, commit: str, keep: int) -> CacheResult:
    versions = root / CACHE_VERSIONS
    atomic.remove_stale_temps(versions)
    atomic.remove_stale_temps(root)
    target = versions / folder_name(tag, commit)
    refreshed = verify_folder(target, deep=True) is not None
    if refreshed:
        _download(spec, remote, tag=tag, commit=commit, target=target)
    else:
        _ensure_arrow(target)
    previous = (root / CURRENT).resolve() if (root / CURRENT).exists() else None
    _point_current(root, target)
    pruned = _prune(versions, keep=keep, protected={target, previous})
    manifest = read_manifest(target)
    return CacheResult(dataset=spec.name, tag=tag, commit=commit, path=target, files=manifest["files"],
                       bytes=sum(e["size"] for e in manifest["files"].values()), rows=manifest["rows"],
                       refreshed=refreshed, pruned=pruned)


def _download(spec: DatasetSpec, remote: Remote, *, tag: str, commit: str, target: Path) -> None:
    # imported here, not at the top: `dsm preflight` imports this module and must start fast
    from dsm_assets import arrow_cache

    tmp = target.parent / f"{atomic.TEMP_PREFIX}{secrets.token_hex(6)}"
    tmp.mkdir()
    try:
        with atomic.Fsyncs() as synced:  # each download reaches the disk while the next one runs
            files = _fetch(remote, commit, tmp, synced)
            info = json.loads((tmp / INFO_PATH).read_text())
            try:  # one pass, a batch at a time: verifies the content hash and writes load's Arrow copy
                content_hash, rows = arrow_cache.write([tmp / p for p in data_parquet(files)], cache_arrow_file(tmp),
                                                       cache_arrow_seal(tmp), content_hash=info["content_hash"])
            except arrow_cache.Unreadable as exc:
                raise CacheError(f"{remote.url}: the data at {commit[:12]} is unreadable ({exc}); the previous "
                                 "cache is unchanged") from None
            if content_hash != info["content_hash"]:
                raise CacheError(f"{remote.url}: the data at {commit[:12]} does not match its content hash "
                                 f"{info['content_hash'][:12]}; the previous cache is unchanged")
            synced.wait()  # every file on disk before the manifest that vouches for them
        manifest = {"dataset": spec.name, "version": tag, "commit": commit, "remote": remote.url,
                    "url": remote.version_url(tag),
                    "content_hash": info["content_hash"], "rows": rows, "files": files,
                    "cached_at": datetime.now(UTC).isoformat(timespec="seconds")}
        manifest[SELF_HASH] = _self_hash(manifest)
        atomic.write_json(tmp / CACHE_MANIFEST, manifest)
        if target.exists():  # an incomplete or corrupted folder of the same version: replace it
            shutil.rmtree(target)
        os.rename(tmp, target)
        atomic.fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fetch(remote: Remote, commit: str, tmp: Path, synced: atomic.Fsyncs) -> dict[str, dict[str, Any]]:
    """Download every file of `commit` into `tmp`, each size checked and handed to `synced`; the manifest's
    entries (size, sha256)."""
    files = {}
    for path, size in sorted(remote.list_files(commit).items()):
        dest = tmp / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        remote.download(commit, path, dest)
        if dest.stat().st_size != size:
            raise CacheError(f"{remote.url}: {path} at {commit[:12]} downloaded as {dest.stat().st_size} bytes, "
                             f"expected {size}; the previous cache is unchanged")
        synced.add(dest)
        files[path] = {"size": size, "sha256": sha256_file(dest)}
    return files


def _ensure_arrow(folder: Path) -> None:
    """Write load's Arrow copy of a verified version cached without one (or with a stale or broken one)."""
    from dsm_assets import arrow_cache

    manifest = read_manifest(folder)
    if arrow_cache.folder_problem(folder, manifest) is None:
        return
    arrow = cache_arrow_file(folder)
    with atomic.dir_lock(arrow.parent):  # the lock a loader converting this folder takes
        why = arrow_cache.folder_problem(folder, manifest)
        if why is None:
            return
        atomic.remove_stale_temps(arrow.parent)
        log.info("%s; converting %s for dsm_assets.load", why, display_path(folder))
        parts = [folder / p for p in data_parquet(manifest["files"])]
        try:
            got, _ = arrow_cache.write(parts, arrow, cache_arrow_seal(folder), content_hash=manifest["content_hash"])
        except arrow_cache.Unreadable as exc:
            raise CacheError(f"{display_path(folder)}: its data is unreadable ({exc}); re-run the refresh") from None
    if got != manifest["content_hash"]:  # the folder verified deep just now: only a change since then
        raise CacheError(f"{display_path(folder)}: its data changed while it was converted; re-run the refresh")


def _point_current(root: Path, target: Path) -> None:
    link = root / f"{atomic.TEMP_PREFIX}current-{secrets.token_hex(4)}"
    link.symlink_to(target.relative_to(root))
    os.replace(link, root / CURRENT)
    atomic.fsync_dir(root)


def _prune(versions: Path, *, keep: int, protected: set[Path | None]) -> tuple[str, ...]:
    """Keep `keep` versions: the current one and the one it replaced (a reader that opened it before the
    switch may still be reading it) always, then the highest tags."""
    def order(folder: Path) -> tuple[bool, tuple[int, int]]:
        return (folder.resolve() in protected, parse_tag(folder.name.split("-")[0]) or (0, 0))

    folders = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")), key=order,
                     reverse=True)
    kept = max(keep, sum(f.resolve() in protected for f in folders))
    pruned = folders[kept:]
    for folder in pruned:
        shutil.rmtree(folder, ignore_errors=True)
    return tuple(p.name for p in pruned)
