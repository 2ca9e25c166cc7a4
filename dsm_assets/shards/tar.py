"""One shard as a USTAR tar, optionally gzipped (`.tar.gz`, which webdataset and tarfile read as they are).

Writing: a block (a record batch's member columns) becomes one buffer with numpy: every member starts on a
512-byte boundary, so the headers (the template of `header`, names, octal sizes and checksums filled in for
all at once) are rows of a zeroed block array and each column's payloads are scattered into it in one
indexing operation. A second thread gzips (when asked), hashes (xxh3-128, of the bytes on disk) and writes
each buffer while the next is built. Members
carry fixed metadata (mtime 0, uid 0, mode 0444) and the gzip stream has no name and mtime 0, so the same
samples give a byte-identical shard.

Checking: `scan_shard` streams a shard once, hashing it and counting its samples from the tar headers
themselves (payloads are skipped, never parsed; the headers are found and read with numpy), in bounded
memory."""

from __future__ import annotations

import tarfile
import zlib
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import xxhash

from dsm_assets import atomic
from dsm_assets.shards.encoding import Columns, Member

BLOCK = tarfile.BLOCKSIZE
GZIP_LEVEL = 1  # measured (bench_shards): level 1 is ~3x faster than 6 and only a little larger on tar of text
INFLATED = 8 << 20  # the scan inflates a gzipped shard at most this many bytes at a time
IN_FLIGHT = 2  # tar blocks built ahead of the one being gzipped and written (each about a record batch)
_ZEROS = bytes(2 * BLOCK)
_END = _ZEROS  # end-of-archive marker: two zero blocks

Block = tuple[int, Columns]  # (samples in it, their member columns)


def suffix(compression: str) -> str:
    """A shard's file suffix: `.tar`, or `.tar.gz` with gzip."""
    return ".tar.gz" if compression == "gzip" else ".tar"


def write_shard(target: Path, blocks: Iterable[Block], *, compression: str = "none") -> dict[str, Any]:
    """Write `blocks` to `target` (through a temp name, renamed when complete); its manifest entry. One thread
    gzips, hashes and writes a block while this one builds the next (zlib, xxhash and the write release the
    GIL), at most IN_FLIGHT blocks ahead."""
    digest = xxhash.xxh3_128()
    size = samples = 0
    gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if compression == "gzip" else None  # 31: gzip wrapper

    def out(f, data: bytes, last: bool = False) -> None:
        nonlocal size
        if gz is not None:
            data = gz.compress(data) + (gz.flush() if last else b"")
        if data:
            digest.update(data)
            size += len(data)
            view = memoryview(data)
            while view:
                view = view[f.write(view):]

    with atomic.temp_beside(target.parent, suffix=".tar") as tmp:
        with open(tmp, "wb", buffering=0) as f, ThreadPoolExecutor(1) as pool:
            pending: deque[Future] = deque()
            for count, members in blocks:
                pending.append(pool.submit(out, f, tar_bytes(members)))
                samples += count
                while len(pending) > IN_FLIGHT:
                    pending.popleft().result()
            pending.append(pool.submit(out, f, _END, True))
            for future in pending:
                future.result()
        atomic.commit(tmp, target)
    return {"name": target.name, "bytes": size, "samples": samples, "xxh3_128": digest.hexdigest()}


_PADS = [bytes(k) for k in range(BLOCK)]  # zero padding of every length, shared


def tar_bytes(block: Columns) -> bytes | memoryview:
    """The block's members as tar bytes (each header, payload and padding to the next 512-byte block), built
    column-wise with numpy: every member starts on a block boundary, so the output is a zeroed array of
    blocks into which the headers are put as rows and each column's payloads scattered in one operation."""
    n, nf = block.n, len(block.fields)
    if not n or not nf:
        return b""
    sizes = np.empty((n, nf), dtype=np.int64)
    sources: list[tuple[np.ndarray, np.ndarray] | list[bytes]] = []
    for j, (_, payloads) in enumerate(block.fields):
        if isinstance(payloads, list):
            sizes[:, j] = [len(p) for p in payloads]
            sources.append(payloads)
        else:
            offsets, data = _buffers(payloads)
            sizes[:, j] = np.diff(offsets)
            sources.append((offsets, data))
    names = _names(block)
    if names is None or int(sizes.max()) >= 8**11:  # outside the template: member by member, as tarfile does
        return _members_tar(block.members())
    blocks = 1 + (sizes + BLOCK - 1) // BLOCK  # header + payload blocks of each member
    starts = (np.cumsum(blocks.reshape(-1)) - blocks.reshape(-1)).reshape(n, nf)
    out = np.zeros((int(blocks.sum()), BLOCK), dtype=np.uint8)
    out[starts.reshape(-1)] = _headers(names, sizes).reshape(n * nf, BLOCK)
    flat = out.reshape(-1)
    for j, source in enumerate(sources):
        at = (starts[:, j] + 1) * BLOCK
        if isinstance(source, list):
            for d, payload in zip(at.tolist(), source, strict=True):
                flat[d:d + len(payload)] = np.frombuffer(payload, dtype=np.uint8)
            continue
        offsets, data = source
        total = int(offsets[-1] - offsets[0])
        if total > SCATTER_BYTES:  # large payloads (media): a copy each
            for d, a, b in zip(at.tolist(), offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
                flat[d:d + b - a] = data[a:b]
        elif total:
            flat[np.repeat(at - offsets[:-1], sizes[:, j]) + np.arange(offsets[0], offsets[-1])] = \
                data[offsets[0]:offsets[-1]]
    return memoryview(flat)


SCATTER_BYTES = 64 << 20  # a column's payload bytes scattered by one index array (8 bytes of index a byte)


def _buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A binary array's value offsets (n + 1, int64) and data buffer, as numpy views."""
    offset_type = np.int64 if pa.types.is_large_binary(array.type) else np.int32
    _, offsets, data = array.buffers()
    offsets = np.frombuffer(offsets, dtype=offset_type)[array.offset:array.offset + len(array) + 1].astype(np.int64)
    return offsets, (np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8))


def _names(block: Columns) -> np.ndarray | None:
    """Every member's name as a (n, fields, 100) array, `sample<index>.<ext>`; None when one would not fit in
    the 100 bytes of a USTAR name."""
    n, nf = block.n, len(block.fields)
    if block.start + n > 10**9:
        return None
    out = np.zeros((n, nf, 100), dtype=np.uint8)
    index = np.arange(block.start, block.start + n, dtype=np.int64)[:, None]
    digits = (48 + (index // _POWERS10) % 10).astype(np.uint8)  # nine digits each
    for j, (ext, _) in enumerate(block.fields):
        if isinstance(ext, bytes):
            if 16 + len(ext) > 100:
                return None
            out[:, j, :16 + len(ext)] = np.frombuffer(b"sample000000000." + ext, dtype=np.uint8)
        else:
            if 16 + max(map(len, ext)) > 100:
                return None
            out[:, j, 15:] = np.array([b"." + e for e in ext], dtype="S85").view(np.uint8).reshape(n, 85)
            out[:, j, :6] = np.frombuffer(b"sample", dtype=np.uint8)
        out[:, j, 6:15] = digits
    return out


_POWERS10 = 10 ** np.arange(8, -1, -1, dtype=np.int64)


def _headers(names: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The USTAR headers (as `header(name, size)` writes them) of members with these names and sizes."""
    out = np.empty((*sizes.shape, BLOCK), dtype=np.uint8)
    out[...] = np.frombuffer(_TEMPLATE, dtype=np.uint8)
    out[..., :100] = names
    digits = 48 + ((sizes[..., None] >> _OCTAL11) & 7)
    out[..., 124:135] = digits
    checksum = (_BASE_SUM + names.sum(axis=-1, dtype=np.int64) + digits.sum(axis=-1))[..., None]
    out[..., 148:154] = 48 + ((checksum >> _OCTAL6) & 7)
    out[..., 154] = 0
    return out


def _members_tar(members: list[Member]) -> bytes:
    """Members as tar bytes, member by member (names over 100 bytes, payloads of 8 GiB and more)."""
    if not members:
        return b""
    pads = _PADS
    return b"".join(chain.from_iterable((header(name, len(payload)), payload, pads[-len(payload) % BLOCK])
                                        for name, payload in members))


_OCTAL11 = 3 * np.arange(10, -1, -1, dtype=np.int64)
_OCTAL6 = 3 * np.arange(5, -1, -1, dtype=np.int64)


def tar_header(name: str, size: int) -> bytes:
    """A member's USTAR header as tarfile encodes it."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o444, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


# tarfile encodes one header as a template; per member only name, size and checksum change. The checksum is
# the sum of the header's bytes with its own field as spaces: the template's, less its (empty) name and size.
_TEMPLATE = tar_header("", 0)
_MODE_UID_GID, _MTIME, _REST = _TEMPLATE[100:124], _TEMPLATE[136:148], _TEMPLATE[156:]
_BASE_SUM = sum(_TEMPLATE[:148]) + 8 * 32 + sum(_REST) - sum(_TEMPLATE[124:136])  # name, size: 0


def header(name: str | bytes, size: int) -> bytes:
    """`tar_header(name, size)`, byte for byte, about ten times faster."""
    raw = name.encode() if isinstance(name, str) else name
    if len(raw) > 100 or size >= 8**11:  # outside the template's USTAR fields: let tarfile handle it
        return tar_header(raw.decode(), size)
    field = b"%011o\0" % size
    return b"".join((raw, _ZEROS[: 100 - len(raw)], _MODE_UID_GID, field, _MTIME,
                     b"%06o\0 " % (_BASE_SUM + sum(raw) + sum(field)), _REST))


@dataclass
class Scan:
    """What one streaming pass over a shard found."""

    bytes: int = 0
    xxh3_128: str = ""
    samples: int = 0
    problem: str | None = None  # the shard is no complete tar (truncated, garbage, a broken gzip stream)


def scan_shard(path: Path, *, chunk: int = 4 << 20) -> Scan:
    """Hash `path` (the bytes on disk) and count its samples (runs of members sharing a key, as webdataset
    groups them) from the tar headers, in one streaming pass; a `.tar.gz` is decompressed on the way."""
    digest, counter = xxhash.xxh3_128(), _Counter()
    gz = zlib.decompressobj(31) if path.name.endswith(".gz") else None
    scan = Scan()
    with open(path, "rb") as f:
        while data := f.read(chunk):
            digest.update(data)
            scan.bytes += len(data)
            try:
                if gz is None:
                    counter.feed(data)
                    continue
                counter.feed(gz.decompress(data, INFLATED))
                while gz.unconsumed_tail:  # tar of short texts inflates ~25×: a bounded piece at a time
                    counter.feed(gz.decompress(gz.unconsumed_tail, INFLATED))
            except zlib.error as exc:
                scan.problem = scan.problem or f"is not a readable gzip stream ({exc})"
                gz = None  # keep hashing; the content is lost
                counter.broken = True
    scan.xxh3_128, scan.samples = digest.hexdigest(), counter.samples
    if scan.problem is None:
        if gz is not None and not gz.eof:
            scan.problem = "is not a complete gzip stream (truncated?)"
        else:
            scan.problem = counter.problem()
    return scan


_ZERO_BLOCK = bytes(BLOCK)


class _Counter:
    """Walks tar headers fed in pieces, skipping payloads: counts samples and notes the end marker.

    A piece is walked with numpy: every whole block's size field is parsed at once, then the chain of headers
    followed with one list lookup a member, and the keys of the headers found compared row against row. A
    header outside that fast path (no plain octal size, a name with a folder, the end marker) is walked by
    `_slow`, which reads one header at a time."""

    def __init__(self) -> None:
        self.samples, self.skip, self.partial, self.ended, self.broken = 0, 0, b"", False, False
        self.last_key: bytes | None = None  # the last member's key, zero-padded to 100 bytes
        self.bad: str | None = None

    def feed(self, data: bytes) -> None:
        if self.ended or self.broken:
            return
        view = memoryview(data)
        if self.skip:
            take = min(self.skip, len(view))
            view, self.skip = view[take:], self.skip - take
            if self.skip:
                return
        buf = self.partial + view if self.partial else view
        m = len(buf) // BLOCK
        if not m:
            self.partial = bytes(buf)
            return
        blocks = np.frombuffer(buf, dtype=np.uint8, count=m * BLOCK).reshape(m, BLOCK)
        field = blocks[:, 124:136]
        octal = ((field[:, :11] >= 48) & (field[:, :11] <= 55)).all(axis=1) & ((field[:, 11] == 0) |
                                                                             (field[:, 11] == 32))
        sizes = ((field[:, :11].astype(np.int64) - 48) << _OCTAL11).sum(axis=1)
        steps = np.where(octal, 1 + (sizes + BLOCK - 1) // BLOCK, 0).tolist()
        heads, i = [], 0
        while i < m and (step := steps[i]):
            heads.append(i)
            i += step
        names = blocks[heads, :100]
        names = names[np.isin(blocks[heads, 156], (48, 0))]  # regular files only
        if (names == 47).any():  # a folder in a name: webdataset keys on the part after it
            self.partial, self.skip = b"", 0
            self._slow(bytes(buf))
            return
        self._count(names)
        if i < m:  # the end marker, or a header the fast path does not read
            self.partial, self.skip = b"", 0
            self._slow(bytes(buf[i * BLOCK:]))
        elif i == m:
            self.partial = bytes(buf[m * BLOCK:])
        else:
            self.partial, self.skip = b"", i * BLOCK - len(buf)

    def _count(self, names: np.ndarray) -> None:
        """Count the samples among headers with these names (rows of 100 bytes): a new key starts one."""
        if not len(names):
            return
        first_nul = np.where((names == 0).any(axis=1), (names == 0).argmax(axis=1), 100)
        first_dot = np.where((names == 46).any(axis=1), (names == 46).argmax(axis=1), 100)
        keys = names * (np.arange(100) < np.minimum(first_nul, first_dot)[:, None])
        new = int((keys[1:] != keys[:-1]).any(axis=1).sum()) + (keys[0].tobytes() != self.last_key)
        self.samples, self.last_key = self.samples + new, keys[-1].tobytes()

    def _slow(self, data: bytes) -> None:
        """Walk `data` one header at a time (from a header's start; the state carries on to the next piece)."""
        n = len(data)
        pos = min(self.skip, n)
        self.skip -= pos
        while pos < n:
            if self.partial or n - pos < BLOCK:  # a header split between two pieces
                need = BLOCK - len(self.partial)
                self.partial += data[pos:pos + need]
                pos += need
                if len(self.partial) < BLOCK:
                    return
                block, at, self.partial = self.partial, 0, b""
            else:
                block, at = data, pos
                pos += BLOCK
            if not self._header(block, at):
                return
            take = min(self.skip, n - pos)
            self.skip -= take
            pos += take

    def _header(self, data: bytes, at: int) -> bool:
        """The header at data[at:at + 512]: sets how much payload to skip; False at the end or when broken."""
        try:
            size = int(data[at + 124:at + 136].rstrip(b"\0 ") or b"0", 8)
        except ValueError:
            size = -1
        if size <= 0 and data[at:at + BLOCK] == _ZERO_BLOCK:
            self.ended = True
            return False
        if size < 0:
            self.bad, self.broken = "has a corrupt tar header", True
            return False
        self.skip = size + (-size % BLOCK)
        if data[at + 156] in (48, 0):  # a regular file ("0" or NUL); webdataset's key: the name to the first dot
            end = data.find(b"\0", at, at + 100)
            end = at + 100 if end < 0 else end
            dot = data.find(b".", data.rfind(b"/", at, end) + 1 if b"/" in data[at:end] else at, end)
            key = data[at:end if dot < 0 else dot].ljust(100, b"\0")
            if key != self.last_key:
                self.samples, self.last_key = self.samples + 1, key
        return True

    def problem(self) -> str | None:
        if self.bad:
            return self.bad
        if not self.ended:
            return "is not a complete tar (no end-of-archive marker: truncated?)"
        return None
