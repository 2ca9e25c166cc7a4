"""cache → shards: `write_shards` cuts the cached version into shards and writes their manifest last.
Temp files a killed writer left behind are removed by the next run, and a complete manifest whose shards
all check out (and are cut as the registry now asks) is reused rather than rewritten.

The cached parquet is read a record batch at a time (never the whole table): memory stays bounded by a
batch of about BATCH_BYTES of data, whatever the dataset's size. How many shards: `shard_count`, the one
rule the `shard_count` check uses too."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dsm_assets import atomic
from dsm_assets.cache import read_manifest
from dsm_assets.errors import on_disk
from dsm_assets.layout import shards_dir
from dsm_assets.parquet_stream import open_parquet
from dsm_assets.registry import DatasetSpec, Shards
from dsm_assets.shards import encoding
from dsm_assets.shards.manifest import FORMAT, SHARDS_MANIFEST, manifest_hash, reusable, sealed, write_seals
from dsm_assets.shards.tar import Block, suffix, write_shard

AUTO_SHARDS = 100  # count: auto aims at this many shards on large data (webdataset: ~100 for parallelism) …
MIN_SHARD_BYTES = 64 * 2**20  # … but cuts none smaller than this (per-shard open/seek costs dominate below) …
MAX_SHARD_BYTES = 2**30  # … nor, past 100 GiB of data, larger than this (more shards instead)
MEMBER_OVERHEAD = 2 * 512  # a tar member's header plus its padding on average (512 + ~half a block): sizing
BATCH_BYTES = 16 * 2**20  # data per record batch read from the parquet (at most BATCH_ROWS rows)
BATCH_ROWS = 8192
GZIP_BELOW = 4096  # compression "auto": gzip when a sample averages fewer data bytes than this (text rows)


@dataclass(frozen=True)
class ShardsResult:
    folder: Path
    manifest: dict[str, Any]
    manifest_hash: str
    written: bool  # False: the existing shards were complete and reused
    repaired: str | None = None  # why existing shards were rewritten instead of reused (one line)


def shard_count(shards: Shards, samples: int, estimated_bytes: int) -> int:
    """How many shards `samples` samples of about `estimated_bytes` (uncompressed tar) are cut into: the
    registry's count, or with "auto" `target_size` bytes each when set, else one per MIN_SHARD_BYTES up to
    AUTO_SHARDS (and more past AUTO_SHARDS × MAX_SHARD_BYTES). Never more shards than samples, at least one."""
    if shards.count != "auto":
        wanted = int(shards.count)
    elif shards.target_size:
        wanted = math.ceil(estimated_bytes / shards.target_size)
    else:
        wanted = max(min(AUTO_SHARDS, estimated_bytes // MIN_SHARD_BYTES),
                     math.ceil(estimated_bytes / MAX_SHARD_BYTES))
    return max(1, min(wanted, samples))


def write_shards(spec: DatasetSpec, cache_folder: Path, outputs_dir: Path) -> ShardsResult:
    """Shard the cached version in `cache_folder` (a cache version folder with its cache_manifest.json)."""
    source = read_manifest(cache_folder)
    folder = shards_dir(outputs_dir, spec, source["version"], source["commit"])
    with on_disk(folder, f"writing the shards of {spec.name}"), atomic.dir_lock(folder):
        return _write_all(spec, cache_folder, folder, source)


def parquet_files(cache_folder: Path) -> list[Path]:
    """The cached version's parquet files, in the order `pq.read_table(<folder>/data)` reads them."""
    import pyarrow.dataset as ds

    return [Path(f) for f in ds.dataset(cache_folder / "data", format="parquet").files]


def compression(spec: DatasetSpec, payloads: bool, samples: int, data_bytes: int) -> str:
    """The registry's `shards.compression`, with "auto" resolved: gzip for rows without payload columns whose
    samples average under GZIP_BELOW bytes of data (short texts: a tar member costs >= 1 KiB, which gzip
    squeezes out), none for media or binary payloads (already compressed: gzip would only cost time)."""
    if spec.shards.compression != "auto":
        return spec.shards.compression
    return "gzip" if not payloads and data_bytes < GZIP_BELOW * max(1, samples) else "none"


def _layout(spec: DatasetSpec, samples: int, estimated_bytes: int, compressed: str) -> dict[str, Any]:
    """What the registry asks of the shards, as the manifest records it (a mismatch means: rewrite); the
    compression is the one "auto" resolved to."""
    return {"format": FORMAT, "compression": compressed, "fields_mode": spec.shards.fields,
            "shard_count": shard_count(spec.shards, samples, estimated_bytes), "estimated_bytes": estimated_bytes}


def _write_all(spec: DatasetSpec, cache_folder: Path, folder: Path, source: dict[str, Any]) -> ShardsResult:
    atomic.remove_stale_temps(folder)
    files = [open_parquet(f) for f in parquet_files(cache_folder)]
    schema = files[0].schema_arrow if files else spec.arrow_schema()
    rows = sum(f.metadata.num_rows for f in files)
    data_bytes = sum(f.metadata.row_group(g).total_byte_size for f in files for g in range(f.metadata.num_row_groups))
    encoder = encoding.Encoder(spec, schema)
    layout = _layout(spec, rows, data_bytes + rows * len(encoder.groups) * MEMBER_OVERHEAD,
                     compression(spec, bool(encoder.payloads), rows, data_bytes))
    existing, problem = reusable(folder, layout)
    if existing is not None:
        return ShardsResult(folder, existing, manifest_hash(existing), written=False)
    count = layout["shard_count"]
    bounds = [rows * i // count for i in range(count + 1)]
    batches = _batches(files, max(1, min(BATCH_ROWS, BATCH_BYTES * rows // max(1, data_bytes) or 1)))
    ext = suffix(layout["compression"])
    shards = [write_shard(folder / f"{spec.name}-{i:06d}{ext}", _blocks(encoder, batches, bounds[i], bounds[i + 1]),
                          compression=layout["compression"])
              for i in range(count)]
    groups = encoder.field_groups()  # the extensions actually written, known once the shards are
    manifest = {"dataset": spec.name, "version": source["version"], "commit": source["commit"],
                "content_hash": source["content_hash"], "total_samples": rows, **layout,
                "fields": [e for group in groups for e in group], "field_groups": groups, "shards": shards,
                "hash": "xxh3_128"}
    manifest = sealed(manifest)
    atomic.write_json(folder / SHARDS_MANIFEST, manifest)
    write_seals(folder, manifest)
    _remove_other_shards(folder, spec.name, {s["name"] for s in shards})
    return ShardsResult(folder, manifest, manifest_hash(manifest), written=True, repaired=problem)


class _Rows:
    """Record batches of the parquet files in order, handed out a row range at a time."""

    def __init__(self, files: list[pq.ParquetFile], batch_rows: int) -> None:
        self._it = (b for f in files for g in range(f.num_row_groups)  # a call per row group: parquet_stream
                    for b in f.iter_batches(batch_size=batch_rows, row_groups=[g], use_threads=False))
        self._held: pa.RecordBatch | None = None
        self.batch_rows = batch_rows

    def take(self, n: int) -> Iterator[pa.RecordBatch]:
        """The next `n` rows, as batches of at most batch_rows."""
        while n > 0:
            batch = self._held if self._held is not None else next(self._it, None)
            if batch is None:
                return
            self._held = batch[n:] if batch.num_rows > n else None
            batch = batch[:n]
            n -= batch.num_rows
            yield batch


def _batches(files: list[pq.ParquetFile], batch_rows: int) -> _Rows:
    return _Rows(files, batch_rows)


def _blocks(encoder: encoding.Encoder, rows: _Rows, start: int, stop: int) -> Iterator[Block]:
    for batch in rows.take(stop - start):
        yield batch.num_rows, encoder.columns(batch, start)
        start += batch.num_rows


def _remove_other_shards(folder: Path, name: str, keep: set[str]) -> None:
    """Shards a previous layout left (another count or compression): not in the manifest, so removed."""
    for path in folder.glob(f"{name}-*.tar*"):
        if path.name not in keep and path.name.removeprefix(f"{name}-").split(".")[0].isdigit():
            path.unlink(missing_ok=True)
