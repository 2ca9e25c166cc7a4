"""What a person sees of image and audio columns in place of their bytes: a short cell for preview tables
(`PNG 24×24, 812 B, circle/0001.png`), the ranges a cleaned column spans (`MediaStats`), and a contact
sheet of thumbnails written beside an image dataset's cleaned parquet."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from dsm_assets import atomic
from dsm_assets.media import Probe

SHEET_IMAGES = 64  # images spread evenly over the cleaned rows
SHEET_THUMB = 48  # pixels, the longer side of each thumbnail
SHEET_COLUMNS = 8
SHEET_LABEL = 12  # pixels under each thumbnail for its label


def size_text(n: int) -> str:
    """`812 B`, `3.4 KiB`, `1.2 MiB`."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def cell(probe: Probe | None, value: dict[str, Any] | None) -> str | None:
    """A media value as a preview shows it: what it is, its size and its path; never its bytes."""
    if value is None:
        return None
    payload, path = value.get("bytes") or b"", value.get("path")
    what = probe.describe() if probe is not None else "?"
    return ", ".join(part for part in (what, size_text(len(payload)), path) if part)


class MediaStats:
    """One media column's kinds and ranges over the rows cleaning kept."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self._ranges: dict[str, list[float]] = {}

    def add(self, probe: Probe) -> None:
        self.kinds[probe.kind or "unknown"] += 1
        for name in ("width", "height", "sample_rate", "duration"):
            value = getattr(probe, name)
            if value is not None:
                low, high = self._ranges.setdefault(name, [value, value])
                self._ranges[name] = [min(low, value), max(high, value)]

    def to_json(self) -> dict[str, Any]:
        """`{"kinds": {"png": 3}, "width": [24, 64], "height": [24, 64]}` (audio: sample_rate, duration)."""
        out: dict[str, Any] = {"kinds": dict(sorted(self.kinds.items()))}
        for name, (low, high) in self._ranges.items():
            out[name] = [round(low, 3), round(high, 3)] if name == "duration" else [int(low), int(high)]
        return out


def write_contact_sheet(parquet: Path | Sequence[Path], column: str, target: Path, *,
                        label: str | None = None) -> Path | None:
    """A PNG grid of SHEET_IMAGES images of `column` in `parquet` (a file, or the files of one table in order)
    as SHEET_THUMB-pixel thumbnails, each captioned with its `label` column's value if given; written
    atomically to `target`. None (nothing written) when the column holds no image. The images passed
    cleaning's probe, so each decodes within the registry's pixel limit; JPEGs are decoded at reduced size."""
    from PIL import Image, ImageDraw

    thumbs = _thumbnails(parquet, column, label)
    if not thumbs:
        return None
    rows = -(-len(thumbs) // SHEET_COLUMNS)
    cell_h = SHEET_THUMB + (SHEET_LABEL if label else 0)
    sheet = Image.new("RGB", (SHEET_COLUMNS * SHEET_THUMB, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (thumb, caption) in enumerate(thumbs):
        x, y = (i % SHEET_COLUMNS) * SHEET_THUMB, (i // SHEET_COLUMNS) * cell_h
        sheet.paste(thumb, (x + (SHEET_THUMB - thumb.width) // 2, y + (SHEET_THUMB - thumb.height) // 2))
        if label and caption is not None:
            draw.text((x + 2, y + SHEET_THUMB), str(caption)[:8], fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic.write_bytes(target, buffer.getvalue())
    return target


def _thumbnails(parquet: Path | Sequence[Path], column: str, label: str | None) -> list[tuple[Any, Any]]:
    """SHEET_IMAGES rows spread evenly over the files (a folder sorted by class shows every class), read a row
    group at a time: memory stays bounded by one row group."""
    columns = [column] + ([label] if label and label != column else [])
    readers = [pq.ParquetFile(f) for f in ([parquet] if isinstance(parquet, Path) else parquet)]
    total = sum(r.metadata.num_rows for r in readers)
    wanted = sorted({i * total // SHEET_IMAGES for i in range(min(total, SHEET_IMAGES))})
    out: list[tuple[Any, Any]] = []
    start = 0
    for reader, group in ((r, g) for r in readers for g in range(r.num_row_groups)):
        size = reader.metadata.row_group(group).num_rows
        picks = [i - start for i in wanted if start <= i < start + size]
        start += size
        if not picks:
            continue
        rows = reader.read_row_group(group, columns=columns).take(picks)
        captions = rows.column(label).to_pylist() if label else [None] * len(picks)
        for value, caption in zip(rows.column(column).to_pylist(), captions, strict=True):
            thumb = _thumbnail(value.get("bytes") if isinstance(value, dict) else value)
            if thumb is not None:
                out.append((thumb, caption))
    return out


def _thumbnail(payload: bytes | None) -> Any:
    """A SHEET_THUMB-pixel RGB thumbnail, or None for a payload that does not decode (a preview is never fatal)."""
    from PIL import Image

    if not payload:
        return None
    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.draft("RGB", (SHEET_THUMB, SHEET_THUMB))  # JPEG: decode at 1/2 … 1/8 scale
            thumb = image.convert("RGBA")
    except Exception:
        return None
    thumb.thumbnail((SHEET_THUMB, SHEET_THUMB))
    flat = Image.new("RGB", thumb.size, "white")
    flat.paste(thumb, mask=thumb.getchannel("A"))
    return flat
