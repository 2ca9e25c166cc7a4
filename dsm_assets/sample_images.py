"""The `shapes` sample: a few hundred tiny PNGs (circle, square, triangle) with labels, generated at demo
time (deterministic, stdlib-only PNG encoding) as a parquet file with the image bytes in a column."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SIZE = 24
LABELS = ("circle", "square", "triangle")


def png(pixels: list[list[tuple[int, int, int]]]) -> bytes:
    """Encode rows of RGB pixels as a PNG (8-bit RGB, no interlace)."""
    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def draw(label: str, rng: random.Random) -> bytes:
    colour = (rng.randrange(60, 256), rng.randrange(60, 256), rng.randrange(60, 256))
    cx, cy, r = rng.randrange(8, 16), rng.randrange(8, 16), rng.randrange(4, 8)

    def inside(x: int, y: int) -> bool:
        if label == "circle":
            return (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        if label == "square":
            return abs(x - cx) <= r and abs(y - cy) <= r
        return y - cy <= r and y - cy >= -r and abs(x - cx) <= (y - cy + r) // 2

    return png([[colour if inside(x, y) else (0, 0, 0) for x in range(SIZE)] for y in range(SIZE)])


def write_shapes(path: Path, count: int = 300) -> None:
    """Labelled shapes with the faults cleaning handles: duplicate ids, null and unknown labels."""
    rng = random.Random(20261123)
    ids, labels, images = [], [], []
    for i in range(1, count + 1):
        label = LABELS[i % 3]
        ids.append(i)
        labels.append(label)
        images.append(draw(label, rng))
    for i in rng.sample(range(count), 6):  # duplicates of earlier ids
        ids.append(ids[i])
        labels.append(labels[i])
        images.append(images[i])
    ids += [count + 1, count + 2, count + 3]
    labels += [None, "hexagon", "circle"]
    images += [draw("circle", rng), draw("square", rng), None]
    table = pa.table({"id": pa.array(ids, pa.int64()), "label": labels, "image": pa.array(images, pa.binary())})
    pq.write_table(table, path)
