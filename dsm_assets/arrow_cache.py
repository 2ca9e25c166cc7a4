"""The memory-mapped copy of a cached version that `dsm_assets.load` opens: one Arrow IPC stream file (the
format `datasets` memory-maps) beside the cached parquet, in a hidden folder of the version folder that the
cache manifest does not list (so preflight's completeness check, `cached_files` and `datasets.load_dataset`
of the folder never see it), and pruned with the version:

    <cache_dir>/versions/<tag>-<commit12>/.arrow/train.arrow    the table, as Arrow record batches
    <cache_dir>/versions/<tag>-<commit12>/.arrow/seal.json      format, content hash, rows, the file's seal

It is written by the cache hop in the same pass that verifies the download's content hash, so training nodes
never convert; `load` converts only a version cached before this file existed, or one whose file is missing,
stale or broken. Writing streams the parquet a bounded batch at a time, hashes every batch, and commits the
file (temp + fsync + rename) only when the hash equals the version's content hash; the seal is written last.
A file is reused only when its seal matches (`seals.broken`: an unchanged stat is trusted, a changed one is
re-hashed) and names the folder's content hash and rows: anything else is rebuilt."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import xxhash

from dsm_assets import atomic, seals
from dsm_assets.contenthash import TableHasher
from dsm_assets.layout import cache_arrow_file, cache_arrow_seal
from dsm_assets.parquet_stream import ReadAhead, files_batches, open_parquet

FORMAT = 1  # bump when the file's layout changes: older files are rebuilt


def problem(arrow: Path, seal_path: Path, *, content_hash: str, rows: int) -> str | None:
    """Why the Arrow file `arrow` cannot be reused for data of `content_hash` and `rows` (one line), or None."""
    try:
        sealed = json.loads(seal_path.read_text())
    except FileNotFoundError:
        return f"{arrow}: not written yet"
    except (OSError, ValueError) as exc:
        return f"{seal_path}: unreadable ({exc})"
    if not isinstance(sealed, dict) or sealed.get("format") != FORMAT:
        return f"{seal_path}: another format than {FORMAT}"
    if sealed.get("content_hash") != content_hash or sealed.get("rows") != rows:
        return f"{arrow}: holds other data than {content_hash[:12]} ({rows} rows)"
    return seals.broken(arrow, sealed.get("file"))


def folder_problem(folder: Path, manifest: dict[str, Any]) -> str | None:
    """`problem` for the Arrow file of the cached version `folder` (its manifest given)."""
    return problem(cache_arrow_file(folder), cache_arrow_seal(folder), content_hash=manifest["content_hash"],
                   rows=manifest["rows"])


class Unreadable(Exception):
    """A parquet file to convert cannot be read (opened or decoded): the caller names it."""


def write(parquets: Sequence[Path], arrow: Path, seal_path: Path, *, content_hash: str) -> tuple[str, int]:
    """Convert `parquets` (in order) to the Arrow stream file `arrow`, a batch at a time, hashing as it goes.
    Commits the file and its seal only when the hash is `content_hash`. Returns (content hash, rows) as read,
    so the caller names a mismatch. Raises Unreadable for the parquet side; an OSError writing the copy
    propagates as it is (the caller's disk: full, read-only), and nothing is left behind either way.

    Page checksums are not verified here: the content hash covers every value, so a flipped byte fails the
    decoder or the hash either way (and checking both cost a tenth of the decoding)."""
    schema = _schema(parquets)
    hasher = TableHasher(schema)
    with atomic.temp_beside(arrow.parent, suffix="-" + arrow.name) as tmp:
        file_hash = _stream(parquets, schema, tmp, hasher)
        got = hasher.hexdigest()
        if got != content_hash:
            return got, hasher.rows
        atomic.commit(tmp, arrow)
    atomic.write_json(seal_path, {"format": FORMAT, "content_hash": got, "rows": hasher.rows,
                                  "file": seals.seal(arrow, xxh3_128=file_hash)})
    return got, hasher.rows


def _schema(parquets: Sequence[Path]) -> pa.Schema:
    """The first file's schema, with its `huggingface` metadata: the features travel with the Arrow file."""
    try:
        if not parquets:
            raise pa.ArrowInvalid("no parquet file to convert")
        return open_parquet(parquets[0]).schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise Unreadable(str(exc)) from None


def _stream(parquets: Sequence[Path], schema: pa.Schema, tmp: Path, hasher: TableHasher) -> str:
    """Write every batch of `parquets` to `tmp` as an Arrow stream, each hashed into `hasher`; returns the
    xxh3-128 of the bytes written. Three things at once: a ReadAhead worker decodes, this thread hashes and
    writes, and the kernel flushes what was written (the commit's fsync then waits for the tail only)."""
    with (atomic.Writeback(tmp) as flushing, _HashingSink(tmp, flushing) as sink,
          pa.PythonFile(sink, mode="w") as out, pa.ipc.new_stream(out, schema) as writer,
          ReadAhead(files_batches(map(open_parquet, parquets))) as batches):
        for batch in _readable(batches):
            hasher.update(batch)
            writer.write_batch(batch)
    return sink.hexdigest()


def _readable(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`batches`, a decoding failure raised as Unreadable."""
    try:
        yield from batches
    except (pa.ArrowException, OSError) as exc:
        raise Unreadable(str(exc)) from None


class _HashingSink:
    """The file pyarrow writes the Arrow stream to (through pa.PythonFile): every byte also feeds the seal's
    xxh3, so sealing the file does not read it back, and the background flush counts it."""

    def __init__(self, path: Path, flushing: atomic.Writeback) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close(), which pa.PythonFile calls)
        self._flushing = flushing
        self._xxh3 = xxhash.xxh3_128()
        self._size = 0

    def write(self, data: bytes | pa.Buffer) -> int:
        self._xxh3.update(data)
        self._file.write(data)  # a buffered write writes it all or raises
        self._size += len(data)
        self._flushing.wrote(self._size)
        return len(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def hexdigest(self) -> str:
        return self._xxh3.hexdigest()

    def __enter__(self) -> _HashingSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
