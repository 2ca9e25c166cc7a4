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
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa

from dsm_assets import atomic, seals
from dsm_assets.contenthash import TableHasher
from dsm_assets.layout import cache_arrow_file, cache_arrow_seal
from dsm_assets.parquet_stream import files_batches, open_parquet, read_ahead

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
    """A parquet file to convert cannot be read (opened, decoded, or a page checksum fails): the caller names it."""


def _readable(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`batches`, a decoding or checksum failure raised as Unreadable."""
    try:
        yield from batches
    except (pa.ArrowException, OSError) as exc:
        raise Unreadable(str(exc)) from None


def write(parquets: Sequence[Path], arrow: Path, seal_path: Path, *, content_hash: str,
          verify_checksums: bool = True) -> tuple[str, int]:
    """Convert `parquets` (in order) to the Arrow stream file `arrow`, a batch at a time, hashing as it goes.
    Commits the file and its seal only when the hash is `content_hash`. Returns (content hash, rows) as read,
    so the caller names a mismatch. Raises Unreadable for the parquet side; an OSError writing the copy
    propagates as it is (the caller's disk: full, read-only), and nothing is left behind either way."""
    try:
        parts = [open_parquet(p, verify_checksums=verify_checksums) for p in parquets]
        if not parts:
            raise pa.ArrowInvalid("no parquet file to convert")
    except (pa.ArrowException, OSError) as exc:
        raise Unreadable(str(exc)) from None
    schema = parts[0].schema_arrow  # with its `huggingface` metadata: the features travel with the file
    hasher = TableHasher(schema)
    with atomic.temp_beside(arrow.parent, suffix="-" + arrow.name) as tmp:
        # three things at once on a cold load: a worker decodes the parquet, this thread hashes and writes
        # each batch, and the kernel flushes what was written (the commit's fsync then waits for the tail only)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer, \
                atomic.Writeback(tmp) as flushing, closing(read_ahead(_readable(files_batches(parts)))) as batches:
            for batch in batches:
                hasher.update(batch)
                writer.write_batch(batch)
                flushing.wrote(sink.tell())
        got = hasher.hexdigest()
        if got != content_hash:
            return got, hasher.rows
        atomic.commit(tmp, arrow)
    atomic.write_json(seal_path, {"format": FORMAT, "content_hash": got, "rows": hasher.rows,
                                  "file": seals.seal(arrow)})
    return got, hasher.rows
