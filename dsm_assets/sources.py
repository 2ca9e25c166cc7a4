"""Find a dataset's raw files and stream them as typed Arrow batches that match the registry schema.

The fast path is pyarrow's streaming readers. When pyarrow rejects a file, a slower Python scan of that
file (error path only) finds the exact row and column to name in the message."""

from __future__ import annotations

import csv
import glob
import json
import mmap
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from dsm_assets.arrow_types import is_text, type_name
from dsm_assets.errors import SourceError
from dsm_assets.paths import inside
from dsm_assets.registry import DatasetSpec, display_path

BLOCK_SIZE = 16 << 20
# Python's csv module (headers, diagnosis) stops at 128 KiB fields; pyarrow reads any field that fits a block
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
UTF8_BOM = b"\xef\xbb\xbf"
# a line that starts with a top-level JSON null, after blank space (or the BOM, on the first line); the
# search starts with a literal newline, which keeps it at about a GB/s
NULL_FIRST_RE = re.compile(rb"(?:\xef\xbb\xbf)?[ \t\r\n]*null")
NULL_RECORD_RE = re.compile(rb"\n[ \t\r\n]*null")
NULL_RECORD = "expected a JSON object, got null; fix or remove the line"
# pyarrow's error when a record does not fit its read blocks (a block must hold a whole record, and then some)
STRADDLING = "straddling object straddles two block boundaries"


@dataclass
class RawBatch:
    batch: pa.RecordBatch  # schema columns (typed) plus any annotation-layer columns
    file: Path
    rows: np.ndarray  # 1-based data row (CSV) or line (JSONL) number of each row in `batch`
    invalid_utf8: int = 0  # rows dropped before typing because a text field was not valid UTF-8


def resolve_files(spec: DatasetSpec, data_dir: Path) -> list[Path]:
    """The files `source.path` names under `data_dir`, sorted. Raises SourceError when there are none."""
    inside(data_dir, spec.source.path, what=f"{spec.where}.source.path")
    matches = sorted(Path(p) for p in glob.glob(str(data_dir / spec.source.path), recursive=True))
    files = [inside(data_dir, p, what=f"{spec.where}.source.path") for p in matches if Path(p).is_file()]
    if not files:
        raise SourceError(
            f"{spec.where}.source.path: '{spec.source.path}' matched no files under {data_dir}; "
            "put the raw files there (make demo copies the samples) or fix the path"
        )
    return files


def read_source(spec: DatasetSpec, files: list[Path], block_size: int = BLOCK_SIZE) -> Iterator[RawBatch]:
    reader = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}[spec.source.format]
    for path in files:
        if path.stat().st_size == 0:
            raise SourceError(f"{display_path(path)}: file is empty; expected {_expected(spec)}")
        yield from reader(spec, path, block_size)


def _expected(spec: DatasetSpec) -> str:
    what = "a header row" if spec.source.format == "csv" else "records"
    return f"{what} with columns {', '.join(spec.schema)}"


def _shown(value: object, limit: int = 80) -> str:
    """`value`'s repr for a message, cut to about `limit` characters: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}...{text[-17:]} ({len(text)} characters)"


def _check_columns(spec: DatasetSpec, path: Path, names: list[str]) -> None:
    problem = _columns_problem(spec, names, require_all=True)
    if problem:
        raise SourceError(f"{display_path(path)}: {problem}")


def _columns_problem(spec: DatasetSpec, names: list[str], *, require_all: bool) -> str | None:
    """What is wrong with these column names (a JSON record may leave columns out: not `require_all`)."""
    layer_prefix = spec.cleaning.layers.prefix if spec.cleaning.layers else None
    duplicate = [c for c, n in Counter(names).items() if n > 1]
    missing = [c for c in spec.schema if c not in names]
    extra = [c for c in names if c not in spec.schema and not (layer_prefix and c.startswith(layer_prefix))]
    problems = []
    if duplicate:
        problems.append(f"duplicate column(s) {_some(duplicate)}")
    if missing and require_all:
        problems.append(f"missing column(s) {_some(missing)}")
    if extra:
        problems.append(f"extra column(s) {_some(extra)}")
    if not problems:
        return None
    return f"{'; '.join(problems)}; the registry schema ({spec.where}.schema) expects {_some(list(spec.schema))}"


def _some(names: list[str], limit: int = 10) -> str:
    """Up to `limit` names, then how many more: a 5000-column mismatch stays one readable line."""
    shown = ", ".join(map(_shown, names[:limit]))
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _to_schema(spec: DatasetSpec, path: Path, batch: pa.RecordBatch, rows: np.ndarray) -> pa.RecordBatch:
    """Trim text, turn empty text into null, and cast every schema column to its registry type."""
    schema = spec.arrow_schema()
    arrays, fields = [], []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        target = schema.field(name).type if name in spec.schema else column.type
        if is_text(column.type):
            column = pc.utf8_trim_whitespace(column)
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
        if column.type != target:
            column = _cast(spec, path, name, column, target, rows)
        arrays.append(column)
        fields.append(pa.field(name, target))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _cast(spec: DatasetSpec, path: Path, name: str, column: pa.Array, target: pa.DataType,
          rows: np.ndarray) -> pa.Array:
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for i, value in enumerate(column.to_pylist()):  # error path: find the first value that fails
        try:
            pa.array([value], type=column.type).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise SourceError(
                f"{display_path(path)}: row {rows[i]}, column '{name}': cannot read {_shown(value)} as "
                f"{type_name(target)}; fix the value or change {spec.where}.schema.{name}"
            ) from None
    raise SourceError(f"{display_path(path)}: column '{name}': cannot convert to {type_name(target)}")


def _read_csv(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    for col, typ in spec.schema.items():
        if typ.startswith("list<"):
            raise SourceError(f"{spec.where}.schema.{col}: list columns need jsonl or parquet sources, not csv")
    header = _csv_header(path)
    _check_columns(spec, path, header)
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
            yield RawBatch(_to_schema(spec, path, batch, rows), path, rows, dropped)
    except pa.ArrowInvalid as exc:
        if STRADDLING in str(exc):
            raise SourceError(_too_long(path, *_longest_csv_record(path), block_size)) from None
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
        col_bad = np.array([v is not None and not _valid_utf8(v) for v in column.to_pylist()])
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


def _valid_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        try:
            return next(csv.reader(f), [])
        except csv.Error as exc:
            raise SourceError(f"{display_path(path)}: line 1: malformed CSV header ({exc}); check its quotes") from None


def _has_data_rows(path: Path) -> bool:
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        return any(reader)


def _diagnose_csv(path: Path, ncols: int) -> str | None:
    """Error path: the first record with the wrong number of fields, or whose quotes do not parse."""
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.reader(f, strict=True)
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
        sizes = (sum(len(field.encode()) + 1 for field in row) for row in csv.reader(f))
        place, size = max(enumerate(sizes), key=lambda pair: pair[1], default=(0, 0))
    return (f"row {place}" if place else "line 1"), size


def _too_long(path: Path, place: str, size: int, block_size: int) -> str:
    return (f"{display_path(path)}: {place}: the longest record (about {size} bytes) does not fit the reader's "
            f"blocks of {block_size} bytes; split long records")


def _read_jsonl(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    first = _first_jsonl_record(spec, path)
    if first is None:
        raise SourceError(f"{display_path(path)}: file is empty (blank lines only); expected {_expected(spec)}")
    _check_columns(spec, path, list(first))
    null_line = _null_record_line(path)
    if null_line:
        raise SourceError(f"{display_path(path)}: line {null_line}: {NULL_RECORD}")
    next_row = 1
    try:
        for batch in pajson.open_json(path, read_options=pajson.ReadOptions(block_size=block_size),
                                      parse_options=_json_options(spec)):
            extra = _columns_problem(spec, batch.schema.names, require_all=False)
            if extra:  # a later line has a key the schema lacks: name that line
                raise SourceError(_diagnose_jsonl(spec, path) or f"{display_path(path)}: {extra}")
            rows = np.arange(next_row, next_row + batch.num_rows)
            next_row += batch.num_rows
            batch, rows, dropped = _drop_invalid_utf8_records(spec, path, batch, rows)
            yield RawBatch(_to_schema(spec, path, batch, rows), path, rows, dropped)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:  # the latter: a key that is not valid UTF-8
        if STRADDLING in str(exc):
            number, line = max(_json_lines(path), key=lambda pair: len(pair[1]))
            raise SourceError(_too_long(path, f"line {number}", len(line), block_size)) from None
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
            bad[[row for row, v in zip(rows, values, strict=True) if v is not None and not _valid_utf8(v)]] = True
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
    return _columns_problem(spec, names, require_all=False)


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
    extra = _columns_problem(spec, list(record), require_all=False)
    if extra:
        return f": {extra}"
    schema = spec.arrow_schema()
    for name, value in record.items():
        if name in spec.schema and _jsonl_error(spec, json.dumps({name: value}).encode()) is not None:
            return (f", column '{name}': cannot read {_shown(value)} as {type_name(schema.field(name).type)}; "
                    f"fix the value or change {spec.where}.schema.{name}")
    return f": {_jsonl_error(spec, line)}; fix or remove the line"


def _read_parquet(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{display_path(path)}: not a readable parquet file ({exc})") from None
    _check_columns(spec, path, pf.schema_arrow.names)
    next_row = 1
    for batch in pf.iter_batches(batch_size=max(1024, block_size // 256)):
        rows = np.arange(next_row, next_row + batch.num_rows)
        next_row += batch.num_rows
        yield RawBatch(_to_schema(spec, path, batch, rows), path, rows)
