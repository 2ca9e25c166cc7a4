"""raw → cleaned: stream the raw files, apply the registry's cleaning rules, write parquet files.

Every rule is a mask over a batch; a row is counted under the first rule that drops it, in this order:
required nulls, labels, media (each image or audio value must decode within `cleaning.media`, else it is
dropped under the probe's reason, e.g. `corrupt_image`), then dedupe. The parquet's schema carries the
`datasets` features (`features.schema_metadata`), so `datasets` reads media columns as Image()/Audio().
The output is a folder named by its content hash (see contenthash), so the same content is the same folder
and version, holding `train-XXXXX-of-YYYYY.parquet` files of about `cleaning.file_size` each, cut at
content-defined row boundaries (see parquet_files): an unchanged run of rows is the same file across versions.
Unchanged inputs (raw fingerprint, registry entry, CODE_VERSION) reuse the previous result without
reading the raw files again."""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from dsm_assets import atomic, media_preview, seals
from dsm_assets.arrow_types import check_type
from dsm_assets.contenthash import HASH_VERSION, TableHasher
from dsm_assets.dedupe import SeenKeys, key_array, key_hashes
from dsm_assets.errors import SourceError, on_disk
from dsm_assets.features import schema_metadata
from dsm_assets.fingerprint import fingerprint_files
from dsm_assets.layout import clean_dir, contact_sheet, statcache_path
from dsm_assets.media import Probe, probe
from dsm_assets.parquet_files import ParquetFiles, auto_file_size, list_files
from dsm_assets.registry import DatasetSpec
from dsm_assets.sources import RawBatch, read_source, resolve_files

log = logging.getLogger(__name__)

# 2: the stats sidecar keeps the schema in column order; 3: composite dedupe keys cannot collide; 4: media values
# probed and dropped, datasets features and page checksums in the parquet, registry type names in the schema,
# media stats and a contact sheet; 5: a folder of content-defined parquet files of cleaning.file_size
CODE_VERSION = "5"
PREVIEW_ROWS = 5
WARN_FIRST = 3  # dropped media files named in the log per reason (the rest are only counted)
# pyarrow's streaming CSV and JSON readers keep up to 32 blocks read ahead: 4 MiB blocks hold ~130 MiB
# (sources.BLOCK_SIZE, 16 MiB, would hold ~550 MiB). Batches of BLOCKS_PER_BATCH blocks are cleaned and
# written together, so row groups and per-batch work stay as large as with 16 MiB blocks.
READ_BLOCK_SIZE = 4 << 20
BLOCKS_PER_BATCH = 4


@dataclass(frozen=True)
class CleanResult:
    """The cleaned hop's record: what cleaning wrote, and what publishing and round_trip take from it."""

    version: str  # content hash of the cleaned data: its DataVersion
    path: Path  # the folder holding `files` (of_file: the one file itself)
    rows_in: int
    rows_out: int
    dropped: dict[str, int]
    schema: dict[str, str]  # column → registry type name (`image`, `struct<…>`: check_type's spelling)
    preview: list[dict[str, Any]]
    raw_fingerprint: str
    reused: bool = False  # True when nothing was written because the inputs were unchanged
    seal: dict[str, Any] = field(default_factory=dict)  # file name → its size, mtime and xxh3 when written
    repaired: str | None = None  # why a file on disk was not reused but rebuilt (one line), if it was not
    media: dict[str, dict[str, Any]] = field(default_factory=dict)  # media column → MediaStats.to_json()
    contact_sheet: Path | None = None  # an image dataset's thumbnails, beside the folder
    files: tuple[Path, ...] = ()  # the parquet files, in row order

    @property
    def size(self) -> int:
        """Bytes of all the parquet files."""
        return sum(f.stat().st_size for f in self.files)

    @classmethod
    def of_file(cls, path: Path, *, content_hash: str, rows: int, schema: dict[str, str]) -> CleanResult:
        """A cleaned parquet written elsewhere (a test, a bench), described by what publishing needs."""
        return cls(version=content_hash, path=path, rows_in=rows, rows_out=rows, dropped={}, schema=schema,
                   preview=[], raw_fingerprint="", files=(path,))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = self.path.name
        out["files"] = [f.name for f in self.files]
        out["contact_sheet"] = self.contact_sheet.name if self.contact_sheet else None
        out["schema"] = list(self.schema.items())  # pairs: the JSON is written with sorted keys, order matters
        out.pop("reused")
        out.pop("repaired")
        return out


def clean_dataset(spec: DatasetSpec, data_dir: Path, *, block_size: int = READ_BLOCK_SIZE) -> CleanResult:
    """Clean `spec`'s raw files into `data/clean/<name>/<content-hash>/train-*.parquet` (one writer at a time)."""
    data_dir = data_dir.resolve()  # raw paths are resolved (symlinks followed) and named relative to it
    folder = clean_dir(data_dir, spec.name)
    with on_disk(folder, f"cleaning {spec.name}"), atomic.dir_lock(folder):
        return _clean(spec, data_dir, block_size)


def _rules(spec: DatasetSpec) -> dict:
    """The registry entry minus what only the UI reads: editing a column description does not re-clean."""
    rules = spec.to_dict()
    rules.pop("column_docs")
    return rules


def _clean(spec: DatasetSpec, data_dir: Path, block_size: int) -> CleanResult:
    files = resolve_files(spec, data_dir)
    fingerprint = fingerprint_files(files, data_dir, statcache_path(data_dir, spec.name))
    out_dir = clean_dir(data_dir, spec.name)
    input_key = xxhash.xxh3_128(
        "\n".join([fingerprint.digest, json.dumps(_rules(spec), sort_keys=True), CODE_VERSION, HASH_VERSION]).encode()
    ).hexdigest()
    index = out_dir / "inputs" / f"{input_key}.json"
    previous, repaired = _reuse(out_dir, index)
    if previous is not None:
        return _with_contact_sheet(spec, data_dir, previous)
    atomic.remove_stale_temps(out_dir)
    schema = spec.arrow_schema()
    hasher = TableHasher(schema)
    rules = _Rules(spec)
    rows_in = 0
    with atomic.temp_dir_beside(out_dir) as tmp:
        writer = ParquetFiles(tmp, schema.with_metadata(schema_metadata(spec.schema)),
                              file_size=spec.cleaning.file_size or auto_file_size(fingerprint.bytes),
                              media=bool(spec.media_columns()))
        # one thread writes (compresses) and hashes a batch while this one reads and cleans the next; the
        # pool closes, waiting for the last write, before the files are closed
        with _closed_on_error(writer), ThreadPoolExecutor(1) as pool:
            preview: list[dict[str, Any]] = []
            written = None
            for batch, invalid_utf8, skipped in _batches(read_source(spec, files, block_size), schema.names,
                                                         block_size):
                rows_in += batch.num_rows + invalid_utf8 + sum(skipped.values())
                rules.dropped["invalid_utf8"] += invalid_utf8
                rules.dropped.update(skipped)
                batch = rules.apply(batch).cast(schema)
                if written is not None:
                    written.result()
                written = pool.submit(_write, writer, hasher, batch)
                if len(preview) < PREVIEW_ROWS:
                    preview += rules.preview(batch, PREVIEW_ROWS - len(preview))
            if written is not None:
                written.result()
        if rows_in == 0:
            writer.abort()
            raise SourceError(f"{spec.where}.source.path: '{spec.source.path}' has no data rows; add rows to "
                              f"{', '.join(str(f.relative_to(data_dir)) for f in files)}")
        names = [f.name for f in writer.close()]
        version = hasher.hexdigest()
        target = out_dir / version
        new_seals = {name: seals.seal(tmp / name) for name in names}  # a rename keeps size and mtime
        kept = _sealed(out_dir, version) if target.exists() else None
        if not _intact(target, kept, {name: seal["xxh3_128"] for name, seal in new_seals.items()}):
            atomic.commit_dir(tmp, target)  # else the same files are on disk intact: keep them
            kept = new_seals
    parquet = tuple(target / name for name in names)
    result = CleanResult(
        version=version, path=target, files=parquet, rows_in=rows_in, rows_out=hasher.rows,
        dropped={k: v for k, v in sorted(rules.dropped.items()) if v},
        schema={col: check_type(typ) for col, typ in spec.schema.items()}, preview=_jsonable(preview),
        raw_fingerprint=fingerprint.digest, seal=kept, repaired=repaired,
        media={col: stats.to_json() for col, stats in rules.media_stats.items()},
        contact_sheet=_write_contact_sheet(spec, data_dir, version, parquet),
    )
    atomic.write_json(out_dir / f"{version}.json", result.to_json())
    # written last: a crash before it just re-cleans. The file names say how these inputs cut the rows: the
    # version's folder may since hold the same rows cut for another `cleaning.file_size`.
    atomic.write_json(index, {"version": version, "files": list(names)})
    return result


@contextlib.contextmanager
def _closed_on_error(writer: ParquetFiles) -> Iterator[None]:
    try:
        yield
    except BaseException:
        writer.abort()
        raise


def _intact(folder: Path, sealed: Any, digests: dict[str, str]) -> bool:
    """Whether `folder` holds exactly the files named in `digests`, each intact under its seal and with that
    xxh3 (the same rows cut into the same files: `cleaning.file_size` unchanged)."""
    if not isinstance(sealed, dict) or sorted(sealed) != sorted(digests) \
            or [f.name for f in list_files(folder)] != sorted(digests):
        return False
    return all(isinstance(sealed[n], dict) and sealed[n].get("xxh3_128") == digests[n]
               and seals.broken(folder / n, sealed[n]) is None for n in digests)


def _write(writer: ParquetFiles, hasher: TableHasher, batch: pa.RecordBatch) -> None:
    writer.write(batch)
    hasher.update(batch)


def _batches(raws: Iterator[RawBatch], names: list[str],
             block_size: int) -> Iterator[tuple[pa.RecordBatch, int, Counter[str]]]:
    """(schema columns, rows dropped as invalid UTF-8, files the reader skipped by reason) of
    ~BLOCKS_PER_BATCH of the reader's blocks at a time."""
    parts: list[pa.RecordBatch] = []
    invalid_utf8, skipped = 0, Counter[str]()
    for raw in raws:
        parts.append(raw.batch.select(names))
        invalid_utf8 += raw.invalid_utf8
        skipped.update(getattr(raw, "skipped", None) or {})  # folder readers: other_file, not_in_metadata, …
        if sum(p.nbytes for p in parts) >= BLOCKS_PER_BATCH * block_size:
            yield pa.concat_batches(parts), invalid_utf8, skipped
            parts, invalid_utf8, skipped = [], 0, Counter()
    if parts:
        yield pa.concat_batches(parts), invalid_utf8, skipped


def _reuse(out_dir: Path, index: Path) -> tuple[CleanResult | None, str | None]:
    """The result recorded for these inputs, if every parquet file is still intact; else (None, why not)."""
    try:
        record = json.loads(index.read_text())
        version = record["version"]
        stats = json.loads((out_dir / f"{version}.json").read_text())
        if record.get("files") != stats.get("files"):
            return None, None  # the folder holds these rows cut for another cleaning.file_size
        path = out_dir / stats.pop("path")
        files = tuple(path / name for name in stats.pop("files"))
        stats["schema"] = dict(stats["schema"])
        sheet = stats.pop("contact_sheet", None)
        stats["contact_sheet"] = out_dir / sheet if sheet else None
        result = CleanResult(path=path, files=files, reused=True, **stats)
        if not files or not isinstance(result.seal, dict) or sorted(result.seal) != sorted(f.name for f in files):
            return None, None  # a record of an older layout: clean again
    except (OSError, ValueError, KeyError, TypeError):
        return None, None  # no usable record: clean as if for the first time
    extra = sorted({f.name for f in list_files(path)} - {f.name for f in files})
    problem = next((p for f in files if (p := seals.broken(f, result.seal[f.name]))), None) or \
        (f"{path}: holds {extra[0]}, not written with it" if extra else None)
    if problem:
        log.warning("%s; cleaning again", problem)
        return None, problem
    return result, None


def _write_contact_sheet(spec: DatasetSpec, data_dir: Path, version: str, files: tuple[Path, ...]) -> Path | None:
    """Thumbnails of the first image column, spread over the rows (None for datasets without an image column)."""
    images = [col for col, typ in spec.media_columns().items() if typ == "image"]
    if not images:
        return None
    label = spec.cleaning.labels.column if spec.cleaning.labels else None
    return media_preview.write_contact_sheet(files, images[0], contact_sheet(data_dir, spec.name, version),
                                             label=label)


def _with_contact_sheet(spec: DatasetSpec, data_dir: Path, result: CleanResult) -> CleanResult:
    """A reused result whose contact sheet was deleted gets it written again (it is derived from the parquet files)."""
    if result.contact_sheet is None or result.contact_sheet.exists():
        return result
    return replace(result, contact_sheet=_write_contact_sheet(spec, data_dir, result.version, result.files))


def _sealed(out_dir: Path, version: str) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / f"{version}.json").read_text()).get("seal")
    except (OSError, ValueError, AttributeError):
        return None


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(rows, default=str))


class _Rules:
    """The registry's cleaning rules over a stream of batches. Keeps the dedupe state across batches, and the
    kinds and ranges of the media values kept."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.name = spec.name
        self.cleaning = spec.cleaning
        self.media = spec.media_columns()
        self.dropped: Counter[str] = Counter()
        self.media_stats = {col: media_preview.MediaStats() for col in self.media}
        self._seen = SeenKeys()
        self._probes: dict[str, list[Probe | None]] = {}  # of the last batch's kept rows, for its preview

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        keep = np.ones(batch.num_rows, dtype=bool)
        for col in self.cleaning.required:
            self._drop(keep, pc.is_null(batch.column(col)).to_numpy(zero_copy_only=False), f"null:{col}")
        labels = self.cleaning.labels
        if labels is not None:
            allowed = pc.is_in(batch.column(labels.column), value_set=pa.array(labels.allowed))
            outside = pc.and_(pc.invert(allowed), pc.is_valid(batch.column(labels.column)))
            self._drop(keep, outside.to_numpy(zero_copy_only=False), "label_not_allowed")
        probes = {col: self._probe(batch.column(col), typ, keep) for col, typ in self.media.items()}
        if self.cleaning.dedupe_key:
            self._drop(keep, self._duplicates(batch, keep), "duplicate")
        kept = np.flatnonzero(keep)
        self._probes = {col: [found[i] for i in kept] for col, found in probes.items()}
        for col, found in self._probes.items():
            for one in found:
                if one is not None:
                    self.media_stats[col].add(one)
        return batch.filter(pa.array(keep))

    def preview(self, batch: pa.RecordBatch, rows: int) -> list[dict[str, Any]]:
        """The first `rows` rows of the batch `apply` just returned, media and binary values as short text."""
        out = batch.slice(0, rows).to_pylist()
        for i, row in enumerate(out):
            for col, value in row.items():
                if col in self._probes:
                    row[col] = media_preview.cell(self._probes[col][i], value)
                elif isinstance(value, bytes):
                    row[col] = media_preview.size_text(len(value))
        return out

    def _probe(self, column: pa.Array, typ: str, keep: np.ndarray) -> list[Probe | None]:
        """Decode each kept, non-null value of a media column; drop (in `keep`) and count those that fail.
        One value at a time: memory stays bounded by the batch and the limits (a bomb is refused unread)."""
        found: list[Probe | None] = [None] * len(column)
        payloads, paths = (column.flatten()[column.type.get_field_index(n)] for n in ("bytes", "path"))
        valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(keep & valid):
            result = probe(typ, payloads[i].as_py(), self.cleaning.media)
            if result.problem is None:
                found[i] = result
                continue
            keep[i] = False
            self.dropped[result.problem] += 1
            if self.dropped[result.problem] <= WARN_FIRST:
                more = " (further ones are only counted)" if self.dropped[result.problem] == WARN_FIRST else ""
                log.warning("%s: dropped %s %r as %s: %s%s", self.name, _media_word(typ), paths[i].as_py(),
                            result.problem, result.detail, more)
        return found

    def _drop(self, keep: np.ndarray, mask: np.ndarray, reason: str) -> None:
        newly = mask & keep
        self.dropped[reason] += int(newly.sum())
        keep &= ~mask

    def _duplicates(self, batch: pa.RecordBatch, keep: np.ndarray) -> np.ndarray:
        """Rows (among those kept) whose key was seen earlier in this batch or in an earlier batch."""
        positions = np.flatnonzero(keep)
        hi, lo = key_hashes(key_array(batch, self.cleaning.dedupe_key))
        dup = np.zeros(batch.num_rows, dtype=bool)
        dup[positions[~self._seen.add_new(hi[positions], lo[positions])]] = True
        return dup


def _media_word(typ: str) -> str:
    return "image" if typ == "image" else "audio file"
