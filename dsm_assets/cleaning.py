"""raw → cleaned: stream the raw files, apply the registry's cleaning rules, write one parquet file.

Every rule is a vectorised mask over a batch; a row is counted under the first rule that drops it. The
output is named by its content hash (see contenthash), so the same content is the same file and version.
Unchanged inputs (raw fingerprint, registry entry, CODE_VERSION) reuse the previous result without
reading the raw files again."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from dsm_assets import atomic
from dsm_assets.arrow_types import type_name
from dsm_assets.contenthash import HASH_VERSION, TableHasher
from dsm_assets.errors import SourceError
from dsm_assets.fingerprint import fingerprint_files
from dsm_assets.registry import Cleaning, DatasetSpec
from dsm_assets.sources import BLOCK_SIZE, read_source, resolve_files

CODE_VERSION = "2"  # 2: the stats sidecar keeps the schema in column order
PREVIEW_ROWS = 5


@dataclass(frozen=True)
class CleanResult:
    version: str  # content hash of the cleaned data: its DataVersion
    path: Path
    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    schema: dict[str, str]
    preview: list[dict[str, Any]]
    raw_fingerprint: str
    reused: bool = False  # True when nothing was written because the inputs were unchanged

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = self.path.name
        out["schema"] = list(self.schema.items())  # pairs: the JSON is written with sorted keys, order matters
        out.pop("reused")
        return out


def clean_dir(data_dir: Path, name: str) -> Path:
    return data_dir / "clean" / name


def statcache_path(data_dir: Path, name: str) -> Path:
    return data_dir / ".dsm" / "statcache" / f"{name}.json"


def clean_dataset(spec: DatasetSpec, data_dir: Path, *, block_size: int = BLOCK_SIZE) -> CleanResult:
    """Clean `spec`'s raw files into `data/clean/<name>/<content-hash>.parquet` (one writer at a time)."""
    with atomic.dir_lock(clean_dir(data_dir, spec.name)):
        return _clean(spec, data_dir, block_size)


def _clean(spec: DatasetSpec, data_dir: Path, block_size: int) -> CleanResult:
    files = resolve_files(spec, data_dir)
    fingerprint = fingerprint_files(files, data_dir, statcache_path(data_dir, spec.name))
    out_dir = clean_dir(data_dir, spec.name)
    input_key = xxhash.xxh3_128(
        "\n".join([fingerprint.digest, json.dumps(spec.to_dict(), sort_keys=True), CODE_VERSION, HASH_VERSION]).encode()
    ).hexdigest()
    index = out_dir / "inputs" / f"{input_key}.json"
    previous = _reuse(out_dir, index)
    if previous is not None:
        return previous
    atomic.remove_stale_temps(out_dir)
    schema = spec.arrow_schema()
    hasher = TableHasher(schema)
    rules = _Rules(spec.cleaning)
    rows_in = 0
    with atomic.temp_beside(out_dir, suffix=".parquet") as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            preview: list[dict[str, Any]] = []
            for raw in read_source(spec, files, block_size):
                rows_in += raw.batch.num_rows + raw.invalid_utf8
                rules.dropped["invalid_utf8"] += raw.invalid_utf8
                batch = rules.apply(raw.batch).select(schema.names).cast(schema)
                writer.write_batch(batch)
                hasher.update(batch)
                if len(preview) < PREVIEW_ROWS:
                    preview += batch.slice(0, PREVIEW_ROWS - len(preview)).to_pylist()
        if rows_in == 0:
            raise SourceError(f"{spec.where}.source.path: '{spec.source.path}' has no data rows; add rows to "
                              f"{', '.join(str(f.relative_to(data_dir)) for f in files)}")
        version = hasher.hexdigest()
        target = out_dir / f"{version}.parquet"
        if not target.exists():  # same content already on disk: keep that file, drop the temp
            atomic.commit(tmp, target)
    result = CleanResult(
        version=version, path=target, rows_in=rows_in, rows_out=hasher.rows,
        dropped={k: v for k, v in sorted(rules.dropped.items()) if v},
        schema={f.name: type_name(f.type) for f in schema}, preview=_jsonable(preview),
        raw_fingerprint=fingerprint.digest,
    )
    atomic.write_json(out_dir / f"{version}.json", result.to_json())
    atomic.write_json(index, {"version": version})  # written last: a crash before it just re-cleans
    return result


def _reuse(out_dir: Path, index: Path) -> CleanResult | None:
    try:
        version = json.loads(index.read_text())["version"]
        stats = json.loads((out_dir / f"{version}.json").read_text())
    except (OSError, ValueError, KeyError):
        return None
    path = out_dir / stats.pop("path")
    if not path.exists():
        return None
    stats["schema"] = dict(stats["schema"])
    return CleanResult(path=path, reused=True, **stats)


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(rows, default=str))


class _Rules:
    """The registry's cleaning rules over a stream of batches. Keeps the dedupe state across batches."""

    def __init__(self, cleaning: Cleaning) -> None:
        self.cleaning = cleaning
        self.dropped: Counter[str] = Counter()
        self._seen: pa.Array | None = None

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        keep = np.ones(batch.num_rows, dtype=bool)
        for col in self.cleaning.required:
            self._drop(keep, pc.is_null(batch.column(col)).to_numpy(zero_copy_only=False), f"null:{col}")
        labels = self.cleaning.labels
        if labels is not None:
            allowed = pc.is_in(batch.column(labels.column), value_set=pa.array(labels.allowed))
            outside = pc.and_(pc.invert(allowed), pc.is_valid(batch.column(labels.column)))
            self._drop(keep, outside.to_numpy(zero_copy_only=False), "label_not_allowed")
        if self.cleaning.dedupe_key:
            self._drop(keep, self._duplicates(batch, keep), "duplicate")
        return batch.filter(pa.array(keep))

    def _drop(self, keep: np.ndarray, mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        self.dropped[reason] += int(newly.sum())
        keep &= ~mask

    def _duplicates(self, batch: pa.RecordBatch, keep: np.ndarray) -> np.ndarray:
        """Rows (among those kept) whose key was seen earlier in this batch or in an earlier batch."""
        positions = np.flatnonzero(keep)
        keys = _key_array(batch, self.cleaning.dedupe_key).take(pa.array(positions))
        groups = pa.table({"k": keys, "i": np.arange(len(keys))}).group_by("k", use_threads=False)
        first = np.zeros(len(keys), dtype=bool)
        first[groups.aggregate([("i", "min")])["i_min"].to_numpy()] = True
        if self._seen is not None and len(self._seen):
            first &= ~pc.is_in(keys, value_set=self._seen).to_numpy(zero_copy_only=False)
        new_keys = keys.filter(pa.array(first))
        self._seen = new_keys if self._seen is None else pa.concat_arrays([self._seen, new_keys])
        dup = np.zeros(batch.num_rows, dtype=bool)
        dup[positions[~first]] = True
        return dup


def _key_array(batch: pa.RecordBatch, columns: tuple[str, ...]) -> pa.Array:
    if len(columns) == 1:
        return batch.column(columns[0])
    parts = [pc.fill_null(batch.column(c).cast(pa.string()), "\x00") for c in columns]
    return pc.binary_join_element_wise(*parts, "\x1f")
