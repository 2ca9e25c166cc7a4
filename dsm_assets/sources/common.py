"""What every source reader shares: the RawBatch it yields, the column check against the registry schema,
the cast of a batch to the registry types, and the pieces of its error messages."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dsm_assets.arrow_types import is_text, media_struct, type_name
from dsm_assets.errors import SourceError
from dsm_assets.registry import DatasetSpec, display_path

BLOCK_SIZE = 16 << 20
# pyarrow's error when a record does not fit its read blocks (a block must hold a whole record, and then some)
STRADDLING = "straddling object straddles two block boundaries"


@dataclass
class RawBatch:
    batch: pa.RecordBatch  # schema columns (typed) plus any annotation-layer columns
    file: Path
    rows: np.ndarray  # 1-based data row (CSV) or line (JSONL) number of each row in `batch`
    invalid_utf8: int = 0  # rows dropped before typing because a text field was not valid UTF-8
    # what a folder reader skipped, reason → count (other_file, not_in_metadata, non_utf8_file_name): cleaning
    # adds these to its dropped counts
    skipped: dict[str, int] = field(default_factory=dict)


def expected(spec: DatasetSpec) -> str:
    """What a file of `spec`'s format should start with, for an 'empty file' message."""
    what = "a header row" if spec.source.format == "csv" else "records"
    return f"{what} with columns {', '.join(spec.schema)}"


def shown(value: object, limit: int = 80) -> str:
    """`value`'s repr for a message, cut to about `limit` characters: a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}...{text[-17:]} ({len(text)} characters)"


def check_columns(spec: DatasetSpec, path: Path, names: list[str]) -> None:
    """Raise SourceError unless `names` are exactly the schema's columns (plus annotation layers)."""
    problem = columns_problem(spec, names, require_all=True)
    if problem:
        raise SourceError(f"{display_path(path)}: {problem}")


def columns_problem(spec: DatasetSpec, names: list[str], *, require_all: bool) -> str | None:
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
    text = ", ".join(map(shown, names[:limit]))
    return text if len(names) <= limit else f"{text} and {len(names) - limit} more"


def to_schema(spec: DatasetSpec, path: Path, batch: pa.RecordBatch, rows: np.ndarray) -> pa.RecordBatch:
    """Trim text, turn empty text into null, and cast every schema column to its registry type."""
    schema = spec.arrow_schema()
    arrays, fields = [], []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        target = schema.field(name).type if name in spec.schema else column.type
        if is_text(column.type):
            column = _empty_as_null(pc.utf8_trim_whitespace(column))
        if name in spec.media_columns() and _is_binary(column.type):
            column = media_from_bytes(column)  # a plain binary column: the bytes, no path
        if column.type != target:
            column = _cast(spec, path, name, column, target, rows)
        arrays.append(column)
        fields.append(pa.field(name, target))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _empty_as_null(column: pa.Array) -> pa.Array:
    """Text `column` with its empty values null. Found by length (comparing with "" is ~100x slower on long
    texts), and only a validity bitmap is made: the values' buffers are shared, not copied as by if_else."""
    valid = pc.fill_null(pc.not_equal(pc.binary_length(column), 0), False)
    if valid.false_count == column.null_count:
        return column  # nothing empty
    if column.offset or valid.offset:  # the bitmap would not line up (kernel outputs start at 0)
        return pc.if_else(valid, column, pa.scalar(None, column.type))
    return pa.Array.from_buffers(column.type, len(column), [valid.buffers()[1], *column.buffers()[1:]])


def _is_binary(dtype: pa.DataType) -> bool:
    return pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype)


def media_from_bytes(column: pa.Array, paths: pa.Array | None = None) -> pa.StructArray:
    """A binary column as an `image`/`audio` column ({bytes, path}; a null value stays a null struct)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    column = column.cast(pa.binary())
    paths = pa.nulls(len(column), pa.string()) if paths is None else paths
    mask = column.is_null() if column.null_count else None
    return pa.StructArray.from_arrays([column, paths], fields=list(media_struct()), mask=mask)


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
                f"{display_path(path)}: row {rows[i]}, column '{name}': cannot read {shown(value)} as "
                f"{type_name(target)}; fix the value or change {spec.where}.schema.{name}"
            ) from None
    raise SourceError(f"{display_path(path)}: column '{name}': cannot convert to {type_name(target)}")


def valid_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def too_long(path: Path, place: str, size: int, block_size: int) -> str:
    """The message for a record larger than the reader's blocks."""
    return (f"{display_path(path)}: {place}: the longest record (about {size} bytes) does not fit the reader's "
            f"blocks of {block_size} bytes; split long records")
