"""cache → shards: `write_shards` cuts the cached version into shards and writes their manifest last.
Temp files a killed writer left behind are removed by the next run, and a complete manifest whose shards
all check out is reused rather than rewritten."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from dsm_assets import atomic
from dsm_assets.cache import read_manifest
from dsm_assets.errors import on_disk
from dsm_assets.layout import shards_dir
from dsm_assets.registry import DatasetSpec
from dsm_assets.shards import encoding
from dsm_assets.shards.manifest import FORMAT, SHARDS_MANIFEST, manifest_hash, reusable, sealed, write_seals
from dsm_assets.shards.tar import write_shard


@dataclass(frozen=True)
class ShardsResult:
    folder: Path
    manifest: dict[str, Any]
    manifest_hash: str
    written: bool  # False: the existing shards were complete and reused
    repaired: str | None = None  # why existing shards were rewritten instead of reused (one line)


def write_shards(spec: DatasetSpec, cache_folder: Path, outputs_dir: Path) -> ShardsResult:
    """Shard the cached version in `cache_folder` (a cache version folder with its cache_manifest.json)."""
    source = read_manifest(cache_folder)
    folder = shards_dir(outputs_dir, spec, source["version"], source["commit"])
    with on_disk(folder, f"writing the shards of {spec.name}"), atomic.dir_lock(folder):
        return _write_all(spec, cache_folder, folder, source)


def _write_all(spec: DatasetSpec, cache_folder: Path, folder: Path, source: dict[str, Any]) -> ShardsResult:
    atomic.remove_stale_temps(folder)
    existing, problem = reusable(folder)
    if existing is not None:
        return ShardsResult(folder, existing, manifest_hash(existing), written=False)
    table = pq.read_table(cache_folder / "data")
    count = max(1, min(spec.shards.count, table.num_rows))
    bounds = [table.num_rows * i // count for i in range(count + 1)]
    encoder = encoding.Encoder(spec, table.schema)
    shards = [write_shard(folder / f"{spec.name}-{i:06d}.tar", encoder.samples(table, bounds[i], bounds[i + 1]))
              for i in range(count)]
    groups = encoder.field_groups()  # the extensions actually written, known once the shards are
    manifest = {"dataset": spec.name, "version": source["version"], "commit": source["commit"],
                "content_hash": source["content_hash"], "total_samples": table.num_rows, "format": FORMAT,
                "fields": [ext for group in groups for ext in group], "field_groups": groups, "shards": shards,
                "hash": "xxh3_128"}
    manifest = sealed(manifest)
    atomic.write_json(folder / SHARDS_MANIFEST, manifest)
    write_seals(folder, manifest)
    return ShardsResult(folder, manifest, manifest_hash(manifest), written=True, repaired=problem)
