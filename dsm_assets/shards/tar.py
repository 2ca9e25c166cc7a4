"""One shard as a USTAR tar. Headers come from `tarfile.TarInfo` (through a template, see `header`);
payloads are written straight to the file with one write each and hashed (xxh3-128) on the way, which is
what makes this faster than webdataset's ShardWriter. Members carry fixed metadata (mtime 0, uid 0, mode
0444), so the same samples give a byte-identical shard."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import xxhash

from dsm_assets import atomic
from dsm_assets.shards.encoding import Sample


def write_shard(target: Path, samples: Iterator[Sample]) -> dict[str, Any]:
    """Write `samples` to `target` (through a temp name, renamed when complete); its manifest entry."""
    out = _GatherWriter()
    count = 0
    with atomic.temp_beside(target.parent, suffix=".tar") as tmp:
        with open(tmp, "wb", buffering=0) as f:
            for key, files in samples:
                for ext, payload in files:
                    out.add(f, header(f"{key}.{ext}", len(payload)), payload,
                            _ZEROS[: -len(payload) % tarfile.BLOCKSIZE])
                count += 1
            out.add(f, _ZEROS[: 2 * tarfile.BLOCKSIZE])  # end-of-archive marker: two zero blocks
            out.flush(f)
        atomic.commit(tmp, target)
    return {"name": target.name, "bytes": out.size, "samples": count, "xxh3_128": out.digest.hexdigest()}


_ZEROS = bytes(2 * tarfile.BLOCKSIZE)


class _GatherWriter:
    """Collects chunks and writes them with one os.writev per ~1 MB, hashing them on the way."""

    LIMIT_BYTES, LIMIT_CHUNKS = 1 << 20, 512

    def __init__(self) -> None:
        self.digest = xxhash.xxh3_128()
        self.size = 0
        self._chunks: list[bytes] = []
        self._pending = 0

    def add(self, f: BinaryIO, *chunks: bytes) -> None:
        for chunk in chunks:
            if chunk:
                self._chunks.append(chunk)
                self._pending += len(chunk)
        if self._pending >= self.LIMIT_BYTES or len(self._chunks) >= self.LIMIT_CHUNKS:
            self.flush(f)

    def flush(self, f: BinaryIO) -> None:
        view = [memoryview(c) for c in self._chunks]
        i = 0
        while i < len(view):
            written = os.writev(f.fileno(), view[i:])
            while written:  # hash what was written; a short write leaves the rest of a chunk queued
                take = min(written, len(view[i]))
                self.digest.update(view[i][:take])
                self.size += take
                written -= take
                if take < len(view[i]):
                    view[i] = view[i][take:]
                else:
                    i += 1
        self._chunks, self._pending = [], 0


def tar_header(name: str, size: int) -> bytes:
    """A member's USTAR header as tarfile encodes it."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o444, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


# tarfile encodes one header as a template; per member only name, size and checksum change (13 µs → ~3 µs).
_TEMPLATE = tar_header("", 0)


def header(name: str, size: int) -> bytes:
    """`tar_header(name, size)`, byte for byte, about four times faster."""
    raw = name.encode()
    if len(raw) > 100 or size >= 8**11:  # outside the template's USTAR fields: let tarfile handle it
        return tar_header(name, size)
    buf = bytearray(_TEMPLATE)
    buf[0 : len(raw)] = raw
    buf[124:136] = b"%011o\0" % size
    buf[148:156] = b" " * 8  # the checksum is computed with its own field as spaces
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)
