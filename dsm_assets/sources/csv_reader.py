"""CSV sources: pyarrow's streaming reader, every column read as bytes, then checked as UTF-8 and cast to the
registry schema. Python's csv module reads the header and, on the error path only, finds the bad record."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from dsm_assets.errors import SourceError
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.sources.common import (
    STRADDLING,
    RawBatch,
    check_columns,
    to_schema,
    too_long,
    valid_utf8,
)

# Python's csv module stops at 128 KiB fields by default; pyarrow reads any field that fits a block
FIELD_SIZE_LIMIT = 1 << 30


def read_csv(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    """`path`'s rows in batches of about `block_size` bytes, typed as the registry schema."""
    for col, typ in spec.schema.items():
        if typ.startswith(("list<", "struct<")):
            kind = typ.split("<")[0]
            raise SourceError(f"{spec.where}.schema.{col}: {kind} columns need jsonl or parquet sources, not csv")
    header = _csv_header(path)
    check_columns(spec, path, header)
    options = pacsv.ConvertOptions(column_types={c: pa.binary() for c in header},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block_size),
                                parse_options=pacsv.ParseOptions(newlines_in_values=True), convert_options=options)
        next_row = 1
        for batch in reader:
            rows = np.arange(next_row, next_row + batch.num_rows)
            next_row += batch.num_rows
            batch, rows, dropped = _decode_utf8(spec, path, batch, rows)
            yield RawBatch(to_schema(spec, path, batch, rows), path, rows, dropped)
    except pa.ArrowInvalid as exc:
        if STRADDLING in str(exc):
            raise SourceError(too_long(path, *_longest_csv_record(path), block_size)) from None
        problem = _diagnose_csv(path, len(header))
        if problem is None and not _has_data_rows(path):
            return  # a header without a line end, which pyarrow cannot read: there are no rows either way
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(problem or f"{display_path(path)}: {message}") from None


def _decode_utf8(spec: DatasetSpec, path: Path, batch: pa.RecordBatch, rows: np.ndarray):
    """Binary CSV columns → string. Invalid UTF-8 rows fail the run or are dropped, per the registry."""
    bad = np.zeros(batch.num_rows, dtype=bool)
    strings = []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            strings.append(column.cast(pa.string()))  # the cast validates: keep it when it succeeds
            continue
        except pa.ArrowInvalid:
            strings.append(None)
        col_bad = np.array([v is not None and not valid_utf8(v) for v in column.to_pylist()])
        if spec.cleaning.invalid_utf8 == "fail":
            row = rows[np.argmax(col_bad)]
            raise SourceError(
                f"{display_path(path)}: row {row}, column '{name}': text is not valid UTF-8; re-encode the "
                f"file as UTF-8 or set {spec.where}.cleaning.invalid_utf8: drop"
            )
        bad |= col_bad
    if bad.any():  # rare: drop the invalid rows, then every column casts cleanly
        keep = pa.array(~bad)
        batch, rows = batch.filter(keep), rows[~bad]
        strings = [c.cast(pa.string()) for c in batch.columns]
    return pa.RecordBatch.from_arrays(strings, names=batch.schema.names), rows, int(bad.sum())


def _records(f: IO[str], *, strict: bool = False):  # a csv reader: rows, and its line_num
    """Python's csv reader over `f`, its field limit first raised to FIELD_SIZE_LIMIT. The limit is the csv
    module's one process-wide setting: raised here, where a CSV is read, not when this module is imported."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_SIZE_LIMIT))
    return csv.reader(f, strict=strict)


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        try:
            return next(_records(f), [])
        except csv.Error as exc:
            raise SourceError(f"{display_path(path)}: line 1: malformed CSV header ({exc}); check its quotes") from None


def _has_data_rows(path: Path) -> bool:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = _records(f)
        next(reader, None)
        return any(reader)


def _diagnose_csv(path: Path, ncols: int) -> str | None:
    """Error path: the first record with the wrong number of fields, or whose quotes do not parse."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = _records(f, strict=True)
        row_number, start = 0, 1
        try:
            next(reader, None)
            start = reader.line_num + 1
            for row in reader:
                if row:  # pyarrow skips blank lines: so do its row numbers
                    row_number += 1
                if row and len(row) != ncols:
                    return (f"{display_path(path)}: row {row_number}: expected {ncols} fields, got {len(row)}; "
                            "quote fields that contain commas")
                start = reader.line_num + 1
        except csv.Error as exc:
            return f"{display_path(path)}: line {start}: malformed CSV ({exc}); check the quotes of this record"
    return None


def _longest_csv_record(path: Path) -> tuple[str, int]:
    """Error path: ("row N" or "line 1" for the header, its size in bytes) of the longest record."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        sizes = (sum(len(field.encode()) + 1 for field in row) for row in _records(f))
        place, size = max(enumerate(sizes), key=lambda pair: pair[1], default=(0, 0))
    return (f"row {place}" if place else "line 1"), size
