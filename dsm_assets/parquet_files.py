"""Cleaned rows as several parquet files named the Hugging Face way (`train-00000-of-00003.parquet`), cut at
content-defined row boundaries, so that an unchanged run of rows gives byte-identical files across versions:
appending rows changes only the last file or two, editing one contiguous region only the files around it, and
a content-addressed remote (local objects, S3 by hash, Hub LFS/Xet) sends only those.

The rule, for a target file size T (`cleaning.file_size`, or `auto_file_size` of the raw bytes):

- each row has a size (`row_stats`: its value bytes, string and binary lengths, fixed widths, nested values
  summed, a media value its bytes and path, plus 1) and a 64-bit hash of its values (fixed-width values
  whole; a string or binary value by its length and its first, middle and last 8 bytes; all vectorised);
- a file ends after a row when the rows since the file began hold >= T/2 bytes and the row's hash is under
  2^64 * size * 2/T (a cut chance of 2/T per byte: files average about T), or when they reach 2T bytes;
- inside a file, a row group ends when the rows since the group began hold >= ROW_GROUP_BYTES, or at
  MEDIA_GROUP_ROWS rows when the schema has image or audio columns (as `datasets` writes media).

Every decision depends only on the rows since the previous cut, never on how the rows arrived in batches,
and each file is written with parquet's content-defined chunking (pages cut by content), zstd and page
checksums: the same rows give the same bytes."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from dsm_assets.atomic import fsync_file
from dsm_assets.registry import CLEAN_FILE_SIZE_AUTO

ROW_GROUP_BYTES = 32 << 20  # value bytes per row group (see row_stats)
MEDIA_GROUP_ROWS = 100  # rows per row group at most when the schema has image or audio columns
FILE_PATTERN = "train-*-of-*.parquet"
_U64 = np.uint64
_NULL = _U64(0x9E3779B97F4A7C15)


def auto_file_size(raw_bytes: int) -> int:
    """`cleaning.file_size: auto`: the power of two nearest 1/64 of the raw bytes, within CLEAN_FILE_SIZE_AUTO
    (16 MiB … 256 MiB): about 64 files from 1 GB of raw data to 16 GB, so a 1 % change re-sends a few percent.
    Being a power of two, it moves only when the raw size crosses one of the points 1.41× apart between them;
    that version is cut anew and sent whole, once."""
    low, high = CLEAN_FILE_SIZE_AUTO
    wanted = max(raw_bytes, 1) / 64
    return int(min(max(1 << max(round(np.log2(wanted)), 0), low), high))


def file_name(index: int, count: int) -> str:
    return f"train-{index:05d}-of-{count:05d}.parquet"


def list_files(folder: Path) -> tuple[Path, ...]:
    """The parquet files of a cleaned folder, in row order."""
    return tuple(sorted(folder.glob(FILE_PATTERN)))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps)."""
    x = x ^ (x >> _U64(30))
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def row_stats(batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(size in bytes as int64, hash as uint64) of each row, from its values only (see the module doc)."""
    n = batch.num_rows
    size = np.ones(n, dtype=np.int64)
    digest = np.zeros(n, dtype=np.uint64)
    for i, column in enumerate(batch.columns):
        arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        col_size, col_hash = _column(arr)
        size += col_size
        digest += _mix(col_hash ^ _U64(xxhash.xxh3_64_intdigest(str(i).encode())))
    return size, _mix(digest)


def _column(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    typ = arr.type
    n = len(arr)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ) \
            or pa.types.is_large_binary(typ):
        size, digest = _binary(arr)
    elif pa.types.is_list(typ) or pa.types.is_large_list(typ):
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        child_size, child_hash = _column(arr.flatten())
        ends = np.cumsum(lengths)
        size = _segment_sums(child_size, ends)
        digest = _segment_sums(_mix(child_hash), ends) + lengths.astype(np.uint64) * _U64(0xA24BAED4963EE407)
    elif pa.types.is_struct(typ):
        size = np.zeros(n, dtype=np.int64)
        digest = np.zeros(n, dtype=np.uint64)
        for i, child in enumerate(arr.flatten()):
            child_size, child_hash = _column(child)
            size += child_size
            digest += _mix(child_hash + _U64(i + 1))
    elif pa.types.is_boolean(typ) or (pa.types.is_primitive(typ) and typ.bit_width in (8, 16, 32, 64)):
        bits = arr.cast(pa.uint8()) if pa.types.is_boolean(typ) else arr.view(pa.type_for_alias(f"uint{typ.bit_width}"))
        digest = pc.fill_null(bits, 0).to_numpy(zero_copy_only=False).astype(np.uint64)
        size = np.full(n, max(1, typ.bit_width // 8), dtype=np.int64)
    else:  # a type the registry does not produce: its Python values, one at a time
        values = [repr(v).encode() for v in arr.to_pylist()]
        size = np.array([len(v) for v in values], dtype=np.int64)
        digest = np.array([xxhash.xxh3_64_intdigest(v) for v in values], dtype=np.uint64)
    if arr.null_count:
        null = pc.is_null(arr).to_numpy(zero_copy_only=False)
        size[null] = 0
        digest[null] = _NULL
    return size, digest


def _segment_sums(values: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sums of `values` over consecutive segments ending (exclusive) at `ends` (uint64 sums wrap)."""
    sums = np.concatenate([np.zeros(1, dtype=values.dtype), np.cumsum(values, dtype=values.dtype)])
    return sums[ends] - sums[np.concatenate([[0], ends[:-1]]).astype(np.int64)]


def _binary(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Lengths, and a hash of each value's length and three 8-byte windows (its start, middle and end): a few
    gathers per row, whatever the values' lengths (hashing every byte cost ~25 ns a byte)."""
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    _, offsets_buf, data_buf = arr.buffers()
    n = len(arr)
    offsets = np.frombuffer(offsets_buf, dtype=np.int64 if large else np.int32)[arr.offset: arr.offset + n + 1]
    starts = offsets[:-1].astype(np.int64)
    size = np.diff(offsets).astype(np.int64)
    digest = size.astype(np.uint64) * _U64(0xD6E8FEB86659FD93)
    if data_buf is None or not n or not size.any():
        return size, digest
    data = np.frombuffer(data_buf, dtype=np.uint8)
    ends = starts + size
    for salt, at in ((1, starts), (2, starts + size // 2), (3, np.maximum(starts, ends - 8))):
        digest += _mix(_window(data, at, ends) ^ _U64(salt))
    return size, digest


def _window(data: np.ndarray, at: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The up to 8 bytes at `at` before `ends`, as one little-endian uint64 per row (missing bytes 0): one
    gather through an unaligned uint64 view of the data buffer (a stride of one byte)."""
    if len(data) < 8:
        data = np.concatenate([data, np.zeros(8 - len(data), dtype=np.uint8)])
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, strides=(1,))
    clamped = np.minimum(at, len(data) - 8)
    word = words[clamped]
    count = ends - at
    if (count < 8).any():  # else every window is whole (and `at` + 8 <= the buffer's end: unclamped)
        count = np.clip(count, 0, 8).astype(np.uint64)
        keep = np.where(count >= 8, _U64(0xFFFFFFFFFFFFFFFF), (_U64(1) << (count * _U64(8))) - _U64(1))
        word = (word >> ((at - clamped).astype(np.uint64) * _U64(8))) & keep
    return word


class ParquetFiles:
    """Writes a stream of batches into `folder` (a fresh temp folder) as content-defined files; `close()`
    names them `train-XXXXX-of-YYYYY.parquet` and returns them in order. Memory holds one row group.
    Each finished file is fsynced in a thread while the next is written, so the caller's fsync before its
    commit finds little left to flush (the disk writes overlap the cleaning instead of following it)."""

    def __init__(self, folder: Path, schema: pa.Schema, *, file_size: int = CLEAN_FILE_SIZE_AUTO[1],
                 media: bool = False) -> None:
        self.folder = folder
        self.schema = schema
        self.file_size = file_size
        self.group_rows = MEDIA_GROUP_ROWS if media else None
        self._threshold_per_byte = (1 << 65) // file_size  # 2^64 * 2/T
        self._parts: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._file_bytes = 0  # bytes since the current file began
        self._group: list[pa.RecordBatch] = []
        self._group_bytes = 0
        self._group_rows = 0
        self._syncer = ThreadPoolExecutor(1)
        self._synced: list[Future[None]] = []

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        size, digest = row_stats(batch)
        half = self.file_size // 2
        threshold = np.where(size >= half, np.iinfo(np.uint64).max,
                             np.minimum(size, half).astype(np.uint64) * _U64(self._threshold_per_byte))
        candidates = np.flatnonzero(digest < threshold)
        sums = np.cumsum(size)  # sums[j]: bytes of rows 0..j of this batch
        pos, n = 0, batch.num_rows
        while pos < n:
            before = int(sums[pos - 1]) if pos else 0  # bytes of this batch before `pos`
            base = before - self._file_bytes  # sums[j] - base: the file's bytes up to row j
            least = max(pos, int(np.searchsorted(sums, base + half)))
            forced = int(np.searchsorted(sums, base + 2 * self.file_size))
            k = np.searchsorted(candidates, least)
            end = min(int(candidates[k]) if k < len(candidates) else n, forced)  # the file's last row, if < n
            stop = min(end + 1, n)
            self._rows(batch, sums, pos, stop)
            if end < n:
                self._end_file()
            pos = stop

    def _rows(self, batch: pa.RecordBatch, sums: np.ndarray, pos: int, stop: int) -> None:
        """Rows [pos, stop) of `batch` into the current file, ending row groups where the rule says."""
        while pos < stop:
            before = int(sums[pos - 1]) if pos else 0
            end = int(np.searchsorted(sums, before - self._group_bytes + ROW_GROUP_BYTES))  # the group's last row
            if self.group_rows is not None:
                end = min(end, pos + self.group_rows - self._group_rows - 1)
            take = min(end + 1, stop) - pos
            self._group.append(batch.slice(pos, take))
            self._group_rows += take
            self._group_bytes += int(sums[pos + take - 1]) - before
            self._file_bytes += int(sums[pos + take - 1]) - before
            pos += take
            if end < stop:
                self._flush_group()

    def _flush_group(self) -> None:
        if not self._group_rows:
            return
        # one contiguous chunk per column: pages then depend on the rows only, not on how batches split them
        table = pa.Table.from_batches(self._group, schema=self.schema).combine_chunks()
        self._group, self._group_bytes, self._group_rows = [], 0, 0
        self._open().write_table(table, row_group_size=table.num_rows)

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            path = self.folder / f"part-{len(self._parts):05d}.parquet"
            self._parts.append(path)
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd", write_page_checksum=True,
                                            use_content_defined_chunking=True)
        return self._writer

    def _end_file(self) -> None:
        self._flush_group()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._synced.append(self._syncer.submit(fsync_file, self._parts[-1]))
        self._file_bytes = 0

    def close(self) -> list[Path]:
        """Finish the last file (an empty one when no row came) and name the files; returns them in order."""
        self._end_file()
        if not self._parts:
            self._open()
            self._end_file()
        self._syncer.shutdown()
        for synced in self._synced:
            synced.result()
        named = []
        for i, part in enumerate(self._parts):
            target = self.folder / file_name(i, len(self._parts))
            os.replace(part, target)
            named.append(target)
        return named

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._syncer.shutdown()

