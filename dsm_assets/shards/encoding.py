"""Rows → WebDataset samples, a record batch at a time and column by column. With `shards.fields: split`
(the default) a sample is

    <key>.txt    a string `text` column (empty when the value is null); it is not repeated in the json
    <key>.json   every other column except payloads, keys sorted: a media column keeps only its path,
                 {"image": {"path": …}} (null when the value is null), a plain binary column is left out, and a
                 null `text` shows as "text": null (so it can be told from an empty one). No `.json` when no
                 column is left for it.
    <key>.cls    the label's index in the registry's allowed set, when the dataset has labels (the label itself
                 stays in the json)
    <key>.<ext>  one member per payload column: an `image`/`audio` column (datasets' {bytes, path} struct, the
                 member holds its `bytes`) or a plain binary column. The extension is what the bytes are,
                 sniffed by `media.sniff` (png, jpg, webp, gif, bmp, tiff, wav, flac, ogg, mp3), else `bin`, so
                 webdataset's decoders pick the right one. With several payload columns the member is
                 `<key>.<column>.<ext>` (webdataset's field `<column>.<ext>`).

With `shards.fields: json` the text and the label stay in the json and there is no `.txt` or `.cls`.

The json is what `json.dumps(row, sort_keys=True, default=str)` gives, built column-wise: each column's values
are encoded once into an Arrow string array (integers by a cast; strings quoted by Arrow when none needs an
escape, else by json's own C encoder) and the rows joined by `binary_join_element_wise` with the literal text
between them. A batch comes out as `Columns`: per member column its extension and its payloads (an Arrow
binary array for json, cls and txt), which `tar.tar_bytes` lays out without a Python loop per sample.
Which members were written is only known once they are: the `Encoder` collects each group's extensions
(json, cls, txt, one group per payload column) for the manifest, which says every sample has exactly one
member of each group."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dsm_assets.arrow_types import is_text
from dsm_assets.media import sniff
from dsm_assets.registry import DatasetSpec

UNKNOWN = "bin"  # the extension of a payload that is no known media kind (or empty)

Member = tuple[bytes, bytes]  # (member name, payload)
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


def members_per_sample(spec: DatasetSpec, schema: pa.Schema) -> int:
    """How many members each sample has (json, cls, txt, payloads), known from the schema alone."""
    return len(Encoder(spec, schema).groups)


class Encoder:
    """Turns record batches of one table into tar members and remembers the extensions it wrote, per group."""

    def __init__(self, spec: DatasetSpec, schema: pa.Schema) -> None:
        split = spec.shards.fields == "split"
        self.labels = spec.cleaning.labels if split else None
        self.cls = {label: str(i).encode() for i, label in enumerate(self.labels.allowed)} if self.labels else {}
        self.text = split and "text" in schema.names and is_text(schema.field("text").type)
        self.payloads = payload_columns(schema)
        self.media = {f.name for f in schema if is_media_struct(f.type)}
        self.json = sorted(c for c in schema.names
                           if (c not in self.payloads or c in self.media) and not (self.text and c == "text"))
        self.pieces = _pieces(self.json)
        self.null_pieces = _pieces(sorted([*self.json, "text"]))  # a null text says so in the json
        self.groups = ([["json"]] if self.json else []) + ([["cls"]] if self.labels else []) + \
            ([["txt"]] if self.text else []) + [[f"column:{c}"] for c in self.payloads]
        self.seen: dict[str, set[str]] = {}  # group → extensions written

    def columns(self, batch: pa.RecordBatch, start: int) -> Columns:
        """The batch's rows as member columns, the first being row `start` of the table: each column's
        extension (one for all rows, or one per row) and payloads (an Arrow binary array, or bytes per row)."""
        n = batch.num_rows
        fields: list[tuple[bytes | list[bytes], pa.Array | list[bytes]]] = []
        if not n:
            return Columns(start, 0, fields)
        if self.json:
            fields.append((b"json", self._json(batch)))
        if self.labels:
            fields.append((b"cls", self._cls(batch.column(self.labels.column))))
        if self.text:
            text = batch.column("text")
            raw = text.cast(pa.large_binary() if pa.types.is_large_string(text.type) else pa.binary())
            fields.append((b"txt", pc.fill_null(raw, b"") if raw.null_count else raw))
        for col in self.payloads:
            payloads = _payloads(batch.column(col), col in self.media)
            exts = [extension(p) for p in payloads]
            group = self.seen.setdefault(f"column:{col}", set())
            if len(self.payloads) > 1:
                exts = [f"{col}.{e}" for e in exts]
            group.update(exts)
            fields.append(([e.encode() for e in exts], payloads))
        for ext, _ in fields:
            if isinstance(ext, bytes):
                self.seen.setdefault(ext.decode(), set()).add(ext.decode())
        return Columns(start, n, fields)

    def members(self, batch: pa.RecordBatch, start: int) -> list[Member]:
        """The tar members of the batch's rows, the first being row `start` of the table, in sample order."""
        return self.columns(batch, start).members()

    def field_groups(self) -> list[list[str]]:
        """The extensions written, one sorted list per group (json, cls, txt, payload columns): every sample
        has exactly one member from each list."""
        order = ["json", "cls", "txt", *(f"column:{c}" for c in self.payloads)]
        return [sorted(self.seen[g]) for g in order if g in self.seen]

    def _cls(self, column: pa.Array) -> pa.Array:
        """Each label's index in the allowed set, as ASCII digits."""
        index = pc.index_in(column, value_set=pa.array(self.labels.allowed, column.type))
        if index.null_count:  # a null or unknown label: no index to write (cleaning keeps none)
            return pa.array([self.cls[v] for v in column.to_pylist()], pa.binary())
        return pc.cast(index, pa.string()).cast(pa.binary())

    def _json(self, batch: pa.RecordBatch) -> pa.Array:
        """Each row's json, built by Arrow from each column's encoded values and the template's pieces."""
        values = [_json_values(batch.column(c), c in self.media) for c in self.json]
        out = _joined(self.pieces, values)
        text = batch.column("text") if self.text else None
        if text is not None and text.null_count:
            at = sorted([*self.json, "text"]).index("text")
            nulls = pa.array(["null"] * len(text), pa.string())
            out = pc.if_else(text.is_valid(), out, _joined(self.null_pieces, [*values[:at], nulls, *values[at:]]))
        return out.cast(pa.binary())


@dataclass
class Columns:
    """One record batch as tar member columns: `n` samples from table row `start`, each with one member of
    every field (extension, payloads), in field order."""

    start: int
    n: int
    fields: list[tuple[bytes | list[bytes], pa.Array | list[bytes]]]

    def members(self) -> list[Member]:
        """(name, payload) of every member, in sample order (the per-member form; `tar.tar_bytes` builds the
        tar from the columns themselves)."""
        keys = [key(i).encode() + b"." for i in range(self.start, self.start + self.n)]
        cols = [(ext, payloads if isinstance(payloads, list) else [b or b"" for b in payloads.to_pylist()])
                for ext, payloads in self.fields]
        return [(k + (ext if isinstance(ext, bytes) else ext[r]), payloads[r])
                for r, k in enumerate(keys) for ext, payloads in cols]


def _pieces(columns: list[str]) -> list[str]:
    """The literal text around each value in a json row with these (sorted) keys: len(columns) + 1 pieces."""
    pieces = ["{" + _quote(columns[0]) + ": "] if columns else ["{"]
    pieces += [", " + _quote(c) + ": " for c in columns[1:]]
    return [*pieces, "}"]


def _joined(pieces: list[str], values: list[pa.Array]) -> pa.Array:
    """pieces[0] + values[0] + pieces[1] + … + pieces[-1], row by row, by Arrow."""
    parts: list[Any] = []
    for piece, value in zip(pieces, [*values, None], strict=True):
        parts.append(pa.scalar(piece, pa.string()))
        if value is not None:
            parts.append(value)
    return pc.binary_join_element_wise(*parts, "")


_ESCAPED = r'[\x00-\x1f\x7f"\\]'  # what json.dumps escapes besides non-ASCII: [^ -~] (RE2 syntax)


def _json_values(column: pa.Array, media: bool) -> pa.Array:
    """Each value of `column` as json.dumps(value, sort_keys=True, default=str) writes it, as a string array:
    integers cast and strings quoted by Arrow when no character needs escaping, else value by value."""
    dtype = column.type
    if media:  # {"path": …} of the struct, null for a null struct
        paths = column.field("path").to_pylist()
        valid = column.is_valid().to_pylist()
        return pa.array(['{"path": %s}' % ("null" if p is None else _quote(p)) if v else "null"
                         for p, v in zip(paths, valid, strict=True)], pa.string())
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        if _plain(column):
            quote = pa.scalar('"', dtype)
            return pc.fill_null(pc.binary_join_element_wise(quote, column, quote, ""), "null").cast(pa.string())
        return pa.array(["null" if v is None else _quote(v) for v in column.to_pylist()], pa.string())
    if pa.types.is_integer(dtype):
        return pc.fill_null(pc.cast(column, pa.string()), "null")
    if pa.types.is_boolean(dtype):
        return pa.array(["null" if v is None else ("true" if v else "false") for v in column.to_pylist()], pa.string())
    if pa.types.is_floating(dtype):
        return pa.array([_float(v) for v in column.to_pylist()], pa.string())
    return pa.array([json.dumps(v, sort_keys=True, default=str) for v in column.to_pylist()], pa.string())


def _plain(column: pa.Array) -> bool:
    """Whether no value of a string column has a character json.dumps escapes (non-ASCII, control, quote,
    backslash): then quoting is adding the quotes."""
    return pc.all(pc.string_is_ascii(column)).as_py() is not False and \
        not pc.any(pc.match_substring_regex(column, _ESCAPED)).as_py()


def _float(v: Any) -> str:
    if v is None:
        return "null"
    if math.isfinite(v):
        return float.__repr__(v)
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _payloads(column: pa.Array, media: bool) -> list[bytes]:
    """Each row's payload bytes (empty for a null): a media struct's `bytes`, else the binary value."""
    if media:
        values = column.field("bytes").to_pylist()
        valid = column.is_valid().to_pylist()
        return [(b if v else None) or b"" for b, v in zip(values, valid, strict=True)]
    return [b or b"" for b in column.to_pylist()]


def key(index: int) -> str:
    """The key of the table's `index`th row."""
    return f"sample{index:09d}"
