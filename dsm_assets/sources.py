"""Find a dataset's raw files and stream them as typed Arrow batches that match the registry schema.

The fast path is pyarrow's streaming readers. When pyarrow rejects a file, a slower Python scan of that
file (error path only) finds the exact row and column to name in the message."""

from __future__ import annotations

import csv
import glob
import json
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


def _check_columns(spec: DatasetSpec, path: Path, names: list[str]) -> None:
    layer_prefix = spec.cleaning.layers.prefix if spec.cleaning.layers else None
    missing = [c for c in spec.schema if c not in names]
    extra = [c for c in names if c not in spec.schema and not (layer_prefix and c.startswith(layer_prefix))]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if extra:
        problems.append(f"extra column(s) {', '.join(map(repr, extra))}")
    if problems:
        raise SourceError(f"{display_path(path)}: {'; '.join(problems)}; the registry schema "
                          f"({spec.where}.schema) expects {', '.join(spec.schema)}")


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
                f"{display_path(path)}: row {rows[i]}, column '{name}': cannot read {value!r} as "
                f"{type_name(target)}; fix the value or change {spec.where}.schema.{name}"
            ) from None
    raise SourceError(f"{display_path(path)}: column '{name}': cannot convert to {type_name(target)}")


def _read_csv(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    for col, typ in spec.schema.items():
        if typ.startswith("list<"):
            raise SourceError(f"{spec.where}.schema.{col}: list columns need jsonl or parquet sources, not csv")
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    _check_columns(spec, path, header)
    options = pacsv.ConvertOptions(column_types={c: pa.binary() for c in header},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block_size),
                                convert_options=options)
        next_row = 1
        for batch in reader:
            rows = np.arange(next_row, next_row + batch.num_rows)
            next_row += batch.num_rows
            batch, rows, dropped = _decode_utf8(spec, path, batch, rows)
            yield RawBatch(_to_schema(spec, path, batch, rows), path, rows, dropped)
    except pa.ArrowInvalid as exc:
        raise SourceError(_diagnose_csv(path, len(header)) or f"{display_path(path)}: {exc}") from None


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


def _diagnose_csv(path: Path, ncols: int) -> str | None:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row_number, row in enumerate(reader, start=1):
            if len(row) != ncols:
                return (f"{display_path(path)}: row {row_number}: expected {ncols} fields, got {len(row)}; "
                        "quote fields that contain commas")
    return None


def _read_jsonl(spec: DatasetSpec, path: Path, block_size: int) -> Iterator[RawBatch]:
    with open(path, "rb") as f:
        first = f.readline()
    try:
        first_record = json.loads(first)
    except ValueError:
        raise SourceError(_diagnose_jsonl(spec, path) or f"{display_path(path)}: line 1: malformed JSON") from None
    if not isinstance(first_record, dict):
        raise SourceError(f"{display_path(path)}: line 1: expected a JSON object per line")
    _check_columns(spec, path, list(first_record))
    options = pajson.ParseOptions(explicit_schema=spec.arrow_schema(), unexpected_field_behavior="infer",
                                  newlines_in_values=False)
    next_row = 1
    try:
        for batch in pajson.open_json(path, read_options=pajson.ReadOptions(block_size=block_size),
                                      parse_options=options):
            _check_columns(spec, path, batch.schema.names)
            rows = np.arange(next_row, next_row + batch.num_rows)
            next_row += batch.num_rows
            yield RawBatch(_to_schema(spec, path, batch, rows), path, rows)
    except pa.ArrowInvalid as exc:
        raise SourceError(_diagnose_jsonl(spec, path) or f"{display_path(path)}: {exc}") from None


def _diagnose_jsonl(spec: DatasetSpec, path: Path) -> str | None:
    schema = spec.arrow_schema()
    with open(path, "rb") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                reason = exc.args[0].split(":")[0]
                return f"{display_path(path)}: line {line_number}: malformed JSON ({reason}); fix or remove the line"
            if not isinstance(record, dict):
                return f"{display_path(path)}: line {line_number}: expected a JSON object"
            for name, value in record.items():
                if name not in spec.schema or value is None:
                    continue
                try:
                    pa.array([value], type=schema.field(name).type)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                    expected = type_name(schema.field(name).type)
                    return (f"{display_path(path)}: line {line_number}, column '{name}': cannot read {value!r} "
                            f"as {expected}; fix the value or change {spec.where}.schema.{name}")
    return None


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
