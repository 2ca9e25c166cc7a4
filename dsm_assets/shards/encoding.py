"""Rows → WebDataset samples. A sample is `<key>.json` (the row's non-binary columns), `<key>.cls` (the
label's index in the registry's allowed set, when the dataset has labels), `<key>.txt` (a `text` column,
when present) and one file per binary column, named by its content (`.png`, else `.bin`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dsm_assets.registry import DatasetSpec, Labels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BATCH_ROWS = 4096

Sample = tuple[str, list[tuple[str, bytes]]]  # (key, [(extension, payload), …])


def fields(spec: DatasetSpec, schema: pa.Schema) -> list[str]:
    """The files each sample carries: json, cls and txt where they apply, then one per binary column."""
    names = ["json"]
    if spec.cleaning.labels:
        names.append("cls")
    if "text" in schema.names and pa.types.is_string(schema.field("text").type):
        names.append("txt")
    return names + _binary_columns(schema)


def samples(spec: DatasetSpec, table: pa.Table, start: int, stop: int) -> Iterator[Sample]:
    """(key, [(extension, payload), …]) for rows start..stop, converted to Python one batch at a time."""
    binary = _binary_columns(table.schema)
    labels = spec.cleaning.labels
    index = {label: i for i, label in enumerate(labels.allowed)} if labels else {}
    for offset in range(start, stop, BATCH_ROWS):
        rows = table.slice(offset, min(BATCH_ROWS, stop - offset)).to_pylist()
        for i, row in enumerate(rows, start=offset):
            yield f"sample{i:09d}", _files(row, binary, labels, index)


def extension(payload: bytes) -> str:
    """A binary payload's extension, sniffed from its content."""
    return "png" if payload.startswith(PNG_SIGNATURE) else "bin"


def _binary_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]


def _files(row: dict[str, Any], binary: list[str], labels: Labels | None,
           index: dict[str, int]) -> list[tuple[str, bytes]]:
    files = [("json", json.dumps({k: v for k, v in row.items() if k not in binary}, sort_keys=True,
                                 default=str).encode())]
    if labels:
        files.append(("cls", str(index[row[labels.column]]).encode()))
    if isinstance(row.get("text"), str):
        files.append(("txt", row["text"].encode()))
    for col in binary:
        payload = row[col] or b""
        ext = extension(payload)
        files.append((ext if len(binary) == 1 else f"{col}.{ext}", payload))
    return files
