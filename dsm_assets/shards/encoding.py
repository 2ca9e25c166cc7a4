"""Rows → WebDataset samples. A sample is

    <key>.json   the row's columns except payloads: a media column keeps only its path, {"image": {"path": …}}
                 (null when the value is null), a plain binary column is left out
    <key>.cls    the label's index in the registry's allowed set, when the dataset has labels
    <key>.txt    a string `text` column (empty when the value is null; the json keeps the null)
    <key>.<ext>  one member per payload column: an `image`/`audio` column (datasets' {bytes, path} struct, the
                 member holds its `bytes`) or a plain binary column. The extension is what the bytes are,
                 sniffed by `media.sniff` (png, jpg, webp, gif, bmp, tiff, wav, flac, ogg, mp3), else `bin`, so
                 webdataset's decoders pick the right one. With several payload columns the member is
                 `<key>.<column>.<ext>` (webdataset's field `<column>.<ext>`).

Which members were written is only known once they are: the `Encoder` collects each group's extensions
(json, cls, txt, one group per payload column) for the manifest, which says every sample has exactly one
member of each group."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dsm_assets.arrow_types import is_text
from dsm_assets.media import sniff
from dsm_assets.registry import DatasetSpec

BATCH_ROWS = 4096
UNKNOWN = "bin"  # the extension of a payload that is no known media kind (or empty)

Sample = tuple[str, list[tuple[str, bytes]]]  # (key, [(extension, payload), …])


def extension(payload: bytes) -> str:
    """A payload's extension, sniffed from its content: png, jpg, webp, gif, bmp, tiff, wav, flac, ogg, mp3,
    else `bin`."""
    return sniff(payload) or UNKNOWN


def is_media_struct(dtype: pa.DataType) -> bool:
    """Whether `dtype` is datasets' Image()/Audio() storage, struct<bytes: binary, path: string>."""
    if not pa.types.is_struct(dtype) or sorted(f.name for f in dtype) != ["bytes", "path"]:
        return False
    payload = dtype.field("bytes").type
    return pa.types.is_binary(payload) or pa.types.is_large_binary(payload)


def payload_columns(schema: pa.Schema) -> list[str]:
    """The columns written as members of their own: media structs and plain binary columns, in schema order."""
    return [f.name for f in schema
            if is_media_struct(f.type) or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]


class Encoder:
    """Turns rows of one table into samples and remembers the member extensions it wrote, per group."""

    def __init__(self, spec: DatasetSpec, schema: pa.Schema) -> None:
        self.labels = spec.cleaning.labels
        self.index = {label: i for i, label in enumerate(self.labels.allowed)} if self.labels else {}
        self.text = "text" in schema.names and is_text(schema.field("text").type)
        self.payloads = payload_columns(schema)
        self.media = {f.name for f in schema if is_media_struct(f.type)}
        # group → extensions written: json, cls, txt, then one group per payload column
        self.seen: dict[str, set[str]] = {}

    def samples(self, table: pa.Table, start: int, stop: int) -> Iterator[Sample]:
        """(key, [(extension, payload), …]) for rows start..stop, converted to Python one batch at a time."""
        for offset in range(start, stop, BATCH_ROWS):
            rows = table.slice(offset, min(BATCH_ROWS, stop - offset)).to_pylist()
            for i, row in enumerate(rows, start=offset):
                yield key(i), self._files(row)

    def field_groups(self) -> list[list[str]]:
        """The extensions written, one sorted list per group (json, cls, txt, payload columns): every sample
        has exactly one member from each list."""
        order = ["json", "cls", "txt", *(f"column:{c}" for c in self.payloads)]
        return [sorted(self.seen[g]) for g in order if g in self.seen]

    def _add(self, files: list[tuple[str, bytes]], group: str, ext: str, payload: bytes) -> None:
        self.seen.setdefault(group, set()).add(ext)
        files.append((ext, payload))

    def _files(self, row: dict[str, Any]) -> list[tuple[str, bytes]]:
        files: list[tuple[str, bytes]] = []
        meta = {k: v for k, v in row.items() if k not in self.payloads}
        meta.update({col: None if row[col] is None else {"path": row[col].get("path")} for col in self.media})
        self._add(files, "json", "json", json.dumps(meta, sort_keys=True, default=str).encode())
        if self.labels:
            self._add(files, "cls", "cls", str(self.index[row[self.labels.column]]).encode())
        if self.text:
            self._add(files, "txt", "txt", (row["text"] or "").encode())
        for col in self.payloads:
            value = row[col]
            payload = (value.get("bytes") if col in self.media and value is not None else value) or b""
            ext = extension(payload)
            self._add(files, f"column:{col}", ext if len(self.payloads) == 1 else f"{col}.{ext}", payload)
        return files


def key(index: int) -> str:
    """The key of the table's `index`th row."""
    return f"sample{index:09d}"
