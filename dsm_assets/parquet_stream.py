"""Parquet read in bounded memory: batches sized by the bytes a row holds (from the footer), so a batch of
short texts and a batch of images each hold about BATCH_BYTES, never a whole column or file. The checks,
round_trip, the cache and `dsm_assets.load`'s conversion read through here.

One row group at a time: pyarrow's reader with `pre_buffer` (its default) keeps the compressed bytes of every
row group it has read cached until the file is closed, so one `iter_batches` over a whole file grows by the
file's compressed size (measured: +9 MiB a 58,000-row group, ~2.7 GB of RSS at 5 GB of CSV); a separate
`iter_batches` per row group drops them. `open_parquet` also turns pre-buffering off (one read per page
instead of per row group: a file read once, in order, gains nothing from it)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar, cast

import pyarrow as pa
import pyarrow.parquet as pq

BATCH_BYTES = 8 << 20  # uncompressed bytes a batch aims at (32 MiB: ~50-90 MiB more peak RSS, no faster)
MAX_BATCH_ROWS = 1 << 16
T = TypeVar("T")
_END = object()


def batch_rows(pf: pq.ParquetFile, columns: Sequence[str] | None = None) -> int:
    """Rows per batch so that one batch of `columns` (all when None) holds about BATCH_BYTES uncompressed."""
    md = pf.metadata
    if not md.num_rows:
        return MAX_BATCH_ROWS
    wanted = set(columns) if columns is not None else None
    leaves = [i for i in range(md.num_columns)
              if wanted is None or md.schema.column(i).path.split(".")[0] in wanted]
    total = sum(md.row_group(g).column(i).total_uncompressed_size for g in range(md.num_row_groups) for i in leaves)
    per_row = max(1.0, total / md.num_rows)
    return int(max(1, min(MAX_BATCH_ROWS, BATCH_BYTES // per_row)))


def iter_batches(pf: pq.ParquetFile, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows as record batches of `columns` (all when None), one bounded batch at a time."""
    cols = list(columns) if columns is not None else None
    rows = batch_rows(pf, cols)
    for group in range(pf.num_row_groups):  # one call a row group: see the module's doc
        yield from pf.iter_batches(batch_size=rows, row_groups=[group], columns=cols, use_threads=False)


def open_parquet(path: Path, *, verify_checksums: bool = False) -> pq.ParquetFile:
    """A ParquetFile; `verify_checksums` checks each page's CRC (cleaning writes them), catching a flipped
    byte that no decoder would notice."""
    return pq.ParquetFile(path, page_checksum_verification=verify_checksums, pre_buffer=False)


def files_batches(files: Iterable[pq.ParquetFile]) -> Iterator[pa.RecordBatch]:
    """Every batch of several files, in order."""
    for pf in files:
        yield from iter_batches(pf)


class ReadAhead(Iterator[T]):
    """`items`, produced by a worker thread (started at once) at most `depth` ahead of the consumer: parquet
    decoding releases the GIL, so it overlaps with whatever the consumer does with each batch. The worker's
    exception is raised by the consumer's next(); `close` (or leaving a `with`) stops the worker."""

    def __init__(self, items: Iterator[T], depth: int = 2) -> None:
        self._ready: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._worker = threading.Thread(target=self._work, args=(items,), name="read-ahead", daemon=True)
        self._worker.start()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item, exc = self._ready.get()
        if exc is not None or item is _END:
            self._done = True
            if exc is not None:
                raise exc
            raise StopIteration
        return cast(T, item)

    def close(self) -> None:
        self._done = True
        self._stop.set()
        self._worker.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _work(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put((_END, exc))

    def _put(self, entry: tuple[object, BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

