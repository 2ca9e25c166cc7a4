"""`arrow_cache.write` converts parquet to the Arrow copy through a ReadAhead worker, flushing as it writes:
many small batches arrive in order and hash as the table does, the seal hashes the bytes written, and a file
that fails mid-stream (to decode, or the content hash) leaves nothing behind and no thread running."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsm_assets import arrow_cache, atomic, parquet_stream
from dsm_assets.contenthash import hash_table
from dsm_assets.fingerprint import hash_file


def table(start: int, n: int) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "text": [None if i % 97 == 0 else f"row {i} " * (i % 7) for i in range(start, start + n)]})


@pytest.fixture
def parts(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_stream, "BATCH_BYTES", 4000)  # hundreds of batches
    files = []
    for i in range(3):
        files.append(tmp_path / f"train-{i}.parquet")
        pq.write_table(table(i * 4000, 4000), files[-1], row_group_size=900, write_page_checksum=True)
    return files


def test_many_batches_arrive_in_order_and_hash_as_the_table(parts, tmp_path, monkeypatch):
    flushes = []
    monkeypatch.setattr(atomic, "WRITEBACK_STEP", 1 << 14)
    monkeypatch.setattr(atomic.os, "fdatasync", lambda fd: flushes.append(fd))
    whole = pa.concat_tables(pq.read_table(p) for p in parts)
    arrow, seal = tmp_path / "out" / "train.arrow", tmp_path / "out" / "seal.json"
    got, rows = arrow_cache.write(parts, arrow, seal, content_hash=hash_table(whole))
    assert (got, rows) == (hash_table(whole), whole.num_rows)
    assert pa.ipc.open_stream(arrow.read_bytes()).read_all().equals(whole)
    assert arrow_cache.problem(arrow, seal, content_hash=got, rows=rows) is None
    assert json.loads(seal.read_text())["file"]["xxh3_128"] == hash_file(arrow)  # hashed as written
    assert flushes  # flushed while writing, not only by the commit's fsync


def test_a_file_broken_mid_stream_is_unreadable_and_leaves_nothing(parts, tmp_path):
    raw = bytearray(parts[1].read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)  # a page of the second file: the first converts first
    parts[1].write_bytes(bytes(raw))
    out = tmp_path / "out"
    with pytest.raises(arrow_cache.Unreadable):
        arrow_cache.write(parts, out / "train.arrow", out / "seal.json", content_hash="0" * 32)
    assert list(out.iterdir()) == []
    assert [t.name for t in threading.enumerate() if t.name in ("read-ahead", "writeback")] == []


def test_a_flipped_byte_no_decoder_notices_fails_the_content_hash(tmp_path):
    """Page checksums are not verified in the conversion: the content hash catches what they would."""
    whole = table(0, 4000)
    path = tmp_path / "train.parquet"
    pq.write_table(whole, path, compression="none", write_page_checksum=True)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"row 3001 ", b"row 3001!", 1))  # still valid UTF-8, same length
    out = tmp_path / "out"
    got, rows = arrow_cache.write([path], out / "train.arrow", out / "seal.json", content_hash=hash_table(whole))
    assert got != hash_table(whole) and rows == whole.num_rows
    assert list(out.iterdir()) == []


def test_read_ahead_keeps_order_raises_the_workers_error_and_stops_when_closed():
    assert list(parquet_stream.ReadAhead(iter(range(100)), depth=3)) == list(range(100))

    def failing():
        yield 1
        raise ValueError("bad page")

    ahead = parquet_stream.ReadAhead(failing())
    assert next(ahead) == 1
    with pytest.raises(ValueError, match="bad page"):
        next(ahead)
    assert list(ahead) == []
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    with parquet_stream.ReadAhead(endless(), depth=2) as ahead:
        assert next(ahead) == 0
    assert len(produced) <= 5  # the worker stopped, a few items ahead at most
    assert not any(t.name == "read-ahead" for t in threading.enumerate())

