"""JSON Lines sources: pyarrow's streaming reader with the registry schema, after a check of the first record
and a scan for top-level nulls. On the error path, a search by blocks of lines names the first bad line."""

from __future__ import annotations

import json
import mmap
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from dsm_assets.arrow_types import type_name
from dsm_assets.errors import SourceError
from dsm_assets.registry import DatasetSpec, display_path
from dsm_assets.sources.common import (
    BLOCK_SIZE,
    STRADDLING,
    RawBatch,
    check_columns,
    columns_problem,
    expected,
    shown,
    to_schema,
    too_long,
    valid_utf8,
)

UTF8_BOM = b"\xef\xbb\xbf"
# a line that starts with a top-level JSON null, after blank space (or the BOM, on the first line); the
# search starts with a literal newline, which keeps it at about a GB/s
NULL_FIRST_RE = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*null")
NULL_RECORD_RE = re.compile(rb"\n[ \t\r\n]*null")
NULL_RECORD = "expected a JSON object, got null; fix or remove the line"


def read_jsonl(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    """`path`'s records in batches of about `block_size` bytes, typed as the registry schema."""
    first = _first_jsonl_record(spec, path)
    if first is None:
        raise SourceError(f"{display_path(path)}: file is empty (blank lines only); expected {expected(spec)}")
    check_columns(spec, path, list(first))
    null_line = _null_record_line(path)
    if null_line:
        raise SourceError(f"{display_path(path)}: line {null_line}: {NULL_RECORD}")
    next_row = 1
    try:
        for batch in pajson.open_json(path, read_options=pajson.ReadOptions(block_size=block_size),
                                      parse_options=_json_options(spec)):
            extra = columns_problem(spec, batch.schema.names, require_all=False) or _nested_extra(spec, batch.schema)
            if extra:  # a later line has a key the schema (or a struct column's type) lacks: name that line
                raise SourceError(_diagnose_jsonl(spec, path) or f"{display_path(path)}: {extra}")
            rows = np.arange(next_row, next_row + batch.num_rows)
            next_row += batch.num_rows
            batch, rows, dropped = _drop_invalid_utf8_records(spec, path, batch, rows)
            yield RawBatch(to_schema(spec, path, batch, rows), path, rows, dropped)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:  # the latter: a key that is not valid UTF-8
        if STRADDLING in str(exc):
            number, line = max(_json_lines(path), key=lambda pair: len(pair[1]))
            raise SourceError(too_long(path, f"line {number}", len(line), block_size)) from None
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(_diagnose_jsonl(spec, path) or f"{display_path(path)}: {message}") from None


def _null_record_line(path: Path) -> int | None:
    """The first line holding a top-level `null`, or None. pyarrow's JSON reader crashes the process (SIGSEGV,
    apache/arrow#47409) when a block starts with one, so such a file must never reach it."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        match = _null_record(data)
        return None if match is None else data[:match.end()].count(b"\n") + 1


def _null_record(data: bytes | mmap.mmap) -> re.Match | None:
    return NULL_FIRST_RE.match(data) or NULL_RECORD_RE.search(data)


def _json_options(spec: DatasetSpec) -> pajson.ParseOptions:
    return pajson.ParseOptions(explicit_schema=spec.arrow_schema(), unexpected_field_behavior="infer",
                               newlines_in_values=False)


def _json_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each non-blank line, the first without its UTF-8 BOM (pyarrow skips it too)."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            line = line.removeprefix(UTF8_BOM) if number == 1 else line
            if line.strip():
                yield number, line


def _first_jsonl_record(spec: DatasetSpec, path: Path) -> dict | None:
    """The first record, to check the columns before reading; None when the file holds only blank lines."""
    number, line = next(_json_lines(path), (0, b""))
    if not number:
        return None
    try:
        record = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise SourceError(_diagnose_jsonl(spec, path)
                          or f"{display_path(path)}: line {number}: expected a JSON object per line")
    return record


def _drop_invalid_utf8_records(spec: DatasetSpec, path: Path, batch: pa.RecordBatch, rows: np.ndarray):
    """pyarrow's JSON reader does not check UTF-8: records with invalid text fail the run or are dropped."""
    if _valid_batch(batch):
        return batch, rows, 0
    bad = _invalid_utf8_rows(batch) if spec.cleaning.invalid_utf8 == "drop" else None
    if bad is None or not _valid_batch(batch := batch.filter(pa.array(~bad))):
        raise SourceError(_diagnose_jsonl(spec, path) or f"{display_path(path)}: text is not valid UTF-8")
    return batch, rows[~bad], int(bad.sum())


def _valid_batch(batch: pa.RecordBatch) -> bool:
    try:
        batch.validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def _invalid_utf8_rows(batch: pa.RecordBatch) -> np.ndarray:
    """Error path: which rows hold a text value, at any list depth, that is not valid UTF-8."""
    bad = np.zeros(batch.num_rows, dtype=bool)
    for column in batch.columns:
        rows = np.arange(batch.num_rows)
        while pa.types.is_list(column.type):
            rows, column = rows[pc.list_parent_indices(column).to_numpy()], pc.list_flatten(column)
        if pa.types.is_string(column.type):
            values = column.view(pa.binary()).to_pylist()
            bad[[row for row, v in zip(rows, values, strict=True) if v is not None and not valid_utf8(v)]] = True
    return bad


def _diagnose_jsonl(spec: DatasetSpec, path: Path) -> str | None:
    """Error path: the first line pyarrow rejects, found by reading blocks of lines, then a bad block's lines."""
    for block in _line_blocks(_json_lines(path)):
        if _jsonl_error(spec, b"".join(line for _, line in block)) is None:
            continue
        for number, line in block:
            if _jsonl_error(spec, line) is not None:
                return f"{display_path(path)}: line {number}{_explain_jsonl_line(spec, line)}"
    return None


def _line_blocks(lines: Iterator[tuple[int, bytes]], size: int = BLOCK_SIZE) -> Iterator[list[tuple[int, bytes]]]:
    """Consecutive lines in blocks of at most 1024 lines or about `size` bytes."""
    block: list[tuple[int, bytes]] = []
    total = 0
    for number, line in lines:
        block.append((number, line))
        total += len(line)
        if len(block) == 1024 or total >= size:
            yield block
            block, total = [], 0
    if block:
        yield block


def _jsonl_error(spec: DatasetSpec, data: bytes) -> str | None:
    """Why pyarrow cannot read `data` (lines of JSON) as the schema: its error, an extra column or bad UTF-8."""
    if _null_record(data):
        return NULL_RECORD
    data = b"\n" + data  # pyarrow skips BOM bytes that start its input: these lines are not the file's start
    try:
        table = pajson.read_json(pa.py_buffer(data), read_options=pajson.ReadOptions(block_size=len(data) + 1),
                                 parse_options=_json_options(spec))
        names = table.column_names
        if spec.cleaning.invalid_utf8 == "fail":
            table.validate(full=True)
    except UnicodeDecodeError:  # a key that is not valid UTF-8: pyarrow reads it, its name cannot be shown
        return "a key is not valid UTF-8"
    except pa.ArrowInvalid as exc:
        return re.sub(r"^JSON parse error: |\.? in row \d+$", "", str(exc).splitlines()[0] if str(exc) else "")
    return columns_problem(spec, names, require_all=False) or _nested_extra(spec, table.schema)


def _nested_extra(spec: DatasetSpec, schema: pa.Schema) -> str | None:
    """pyarrow infers a key that a struct column's type lacks into the struct: such a column's type differs."""
    wanted = spec.arrow_schema()
    for name in schema.names:
        if name in spec.schema and schema.field(name).type != wanted.field(name).type:
            return f"column '{name}' has a key its type {type_name(wanted.field(name).type)} lacks"
    return None


def _nested_problem(value: object, dtype: pa.DataType, where: str) -> tuple[str, str] | None:
    """Error path: (where in a nested value, what is wrong) for the first part of `value` that `dtype` cannot
    hold: a key a struct lacks, or a leaf of the wrong type; None when every part fits."""
    if value is None:
        return None
    if pa.types.is_struct(dtype):
        if not isinstance(value, dict):
            return where, f"cannot read {shown(value)} as {type_name(dtype)}"
        for key, item in value.items():
            index = dtype.get_field_index(key)
            if index < 0:
                return f"{where}.{key}", f"key {key!r} is not in {type_name(dtype)}"
            problem = _nested_problem(item, dtype.field(index).type, f"{where}.{key}")
            if problem:
                return problem
        return None
    if pa.types.is_list(dtype):
        if not isinstance(value, list):
            return where, f"cannot read {shown(value)} as {type_name(dtype)}"
        for i, item in enumerate(value):
            problem = _nested_problem(item, dtype.value_type, f"{where}[{i}]")
            if problem:
                return problem
        return None
    try:
        pajson.read_json(pa.py_buffer(json.dumps({"v": value}).encode()),
                         parse_options=pajson.ParseOptions(explicit_schema=pa.schema([("v", dtype)])))
        return None
    except pa.ArrowInvalid:
        return where, f"cannot read {shown(value)} as {type_name(dtype)}"


def _explain_jsonl_line(spec: DatasetSpec, line: bytes) -> str:
    """What is wrong with one line pyarrow rejects, as `: <problem>` or `, column 'x': <problem>`."""
    errors = "replace" if spec.cleaning.invalid_utf8 == "drop" else "strict"
    try:
        record = json.loads(line.decode("utf-8", errors=errors))
    except UnicodeDecodeError:
        return (f": text is not valid UTF-8; re-encode the file as UTF-8 or set "
                f"{spec.where}.cleaning.invalid_utf8: drop")
    except ValueError as exc:
        return f": malformed JSON ({exc.args[0].split(':')[0]}); fix or remove the line"
    if not isinstance(record, dict):
        return ": expected a JSON object"
    extra = columns_problem(spec, list(record), require_all=False)
    if extra:
        return f": {extra}"
    schema = spec.arrow_schema()
    for name, value in record.items():
        if name in spec.schema and _jsonl_error(spec, json.dumps({name: value}).encode()) is not None:
            nested = _nested_problem(value, schema.field(name).type, name) if "struct<" in spec.schema[name] else None
            if nested and nested[0] != name:  # inside a struct: name the key
                return (f", column '{name}' at {nested[0]}: {nested[1]}; fix the value or change "
                        f"{spec.where}.schema.{name}")
            return (f", column '{name}': cannot read {shown(value)} as {type_name(schema.field(name).type)}; "
                    f"fix the value or change {spec.where}.schema.{name}")
    return f": {_jsonl_error(spec, line)}; fix or remove the line"
