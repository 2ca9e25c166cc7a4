"""shards → remote: the shards of a version published next to its parquet, as tag `<version>-shards`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsm_assets.cache import read_manifest
from dsm_assets.remotes.base import Remote
from dsm_assets.shards.manifest import SHARDS_MANIFEST


@dataclass(frozen=True)
class ShardsPublished:
    tag: str
    new: bool  # False: the tag already existed
    repaired: tuple[str, ...] = ()  # files under the existing tag re-stored because their stored copy was corrupt


def publish_shards(remote: Remote, folder: Path, manifest: dict[str, Any], cache_folder: Path, *,
                   folder_limit: int = 10_000) -> ShardsPublished:
    """Publish the shards next to the parquet of their version, as tag `<version>-shards`: a commit with the
    version's files (the remote already has them, so they are not uploaded again where it deduplicates)
    plus `shards/` (in subfolders `shards/00000/`, … of `folder_limit` shards when there are more: the Hub's
    "Repository limitations and recommendations" asks for at most 10,000 entries per folder; readers glob
    `shards/**/*.tar`). When the tag exists, its files are checked instead and any corrupt copy re-stored from
    the local shards, just verified (Remote.repair). Raises ConcurrentPublishError when a newer version was
    published meanwhile (its own shards will be published with it)."""
    tag = f"{manifest['version']}-shards"
    tags = remote.tags()
    files = _files(folder, manifest, cache_folder, folder_limit)
    if tag in tags:
        return ShardsPublished(tag, new=False, repaired=tuple(remote.repair(tags[tag], files)))
    remote.publish(files, tag=tag, parent=tags.get(manifest["version"]), message=f"{manifest['version']} shards")
    return ShardsPublished(tag, new=True)


def _files(folder: Path, manifest: dict[str, Any], cache_folder: Path, folder_limit: int) -> dict[str, Path]:
    """Repo path → local file: the cached version's files, the shards and their manifest."""
    files = {path: cache_folder / path for path in read_manifest(cache_folder)["files"]}
    nested = len(manifest["shards"]) > folder_limit
    files.update({f"shards/{f'{i // folder_limit:05d}/' if nested else ''}{s['name']}": folder / s["name"]
                  for i, s in enumerate(manifest["shards"])})
    files["shards/" + SHARDS_MANIFEST] = folder / SHARDS_MANIFEST
    return files
