"""A content hash of tabular data that depends on the values only, not on how they are stored.

Row chunking, string offsets, slicing, the bytes under null slots, parquet encoding and schema metadata
all leave the hash unchanged, so the cleaned parquet and the same data loaded back through `datasets`
hash alike. Each column feeds separate streams (validity, lengths, values), so feeding batch by batch
gives the same digest as feeding the whole table at once. A struct's children (an image's bytes and
path, say) are hashed as columns of their own, at any depth."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from dsm_assets.arrow_types import type_name

# Bump whenever the digest of the same data would change: stored versions and reuse keys depend on it.
HASH_VERSION = "1"
# a fixed-width value is hashed by its bits, read as the integer of its width
_INTS = {8: (pa.int8(), np.int8), 16: (pa.int16(), np.int16), 32: (pa.int32(), np.int32),
         64: (pa.int64(), np.int64)}


class TableHasher:
    def __init__(self, schema: pa.Schema) -> None:
        self.schema_text = ";".join(f"{f.name}:{type_name(f.type)}" for f in schema)
        self.rows = 0
        self._streams: dict[str, xxhash.xxh3_128] = {}

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            for chunk in chunks:
                self._feed(name, chunk)
        self.rows += batch.num_rows

    def hexdigest(self) -> str:
        h = xxhash.xxh3_128(f"{self.schema_text}\n{self.rows}\n".encode())
        for key in sorted(self._streams):
            h.update(f"{key}={self._streams[key].hexdigest()}\n".encode())
        return h.hexdigest()

    def _stream(self, key: str) -> xxhash.xxh3_128:
        if key not in self._streams:
            self._streams[key] = xxhash.xxh3_128()
        return self._streams[key]

    def _feed(self, key: str, arr: pa.Array) -> None:
        dtype = arr.type
        # fed for every chunk, nulls or not, so the digest cannot depend on where chunks split
        self._stream(key + "#valid").update(_valid(arr))
        if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
            self._stream(key + "#len").update(_filled(pc.list_value_length(arr).cast(pa.int64()), np.int64))
            self._feed(key + "[]", arr.flatten())
        elif pa.types.is_struct(dtype):
            # each child as a column of its own; flatten() applies the slice offset and the parent's nulls
            for child, values in zip(dtype, arr.flatten(), strict=True):
                self._feed(f"{key}{{{child.name}}}", values)
        elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_binary(dtype) \
                or pa.types.is_large_binary(dtype):
            self._feed_binary(key, arr)
        elif pa.types.is_boolean(dtype):
            self._stream(key).update(_filled(pc.cast(arr, pa.uint8()), np.uint8))
        elif pa.types.is_primitive(dtype) and dtype.bit_width in _INTS:
            arrow_int, numpy_int = _INTS[dtype.bit_width]
            self._stream(key).update(_filled(arr.view(arrow_int), numpy_int))
        elif pa.types.is_primitive(dtype):
            values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
            self._stream(key).update(np.ascontiguousarray(values).tobytes())
        else:  # rare types: fall back to their Python values
            self._stream(key).update(repr(arr.to_pylist()).encode())

    def _feed_binary(self, key: str, arr: pa.Array) -> None:
        width = np.int64 if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type) else np.int32
        if arr.null_count and np.diff(_offsets(arr, width))[~_valid(arr).view(bool)].any():  # bytes under a null
            arr = pc.fill_null(arr, "" if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type) else b"")
        offsets, data_buf = _offsets(arr, width), arr.buffers()[2]
        self._stream(key + "#len").update(np.diff(offsets).astype(np.int64))
        if data_buf is not None and len(offsets):
            self._stream(key).update(memoryview(data_buf)[int(offsets[0]): int(offsets[-1])])


# Arrays are read from their buffers, not through Array.to_numpy or pc.fill_null with a Python value: both
# import pandas, ~0.5 s in a process that had not (the cache hop, the checks).
def _raw(arr: pa.Array, dtype: type[np.generic]) -> np.ndarray:
    """The values of a fixed-width array (whatever lies under its nulls)."""
    if not len(arr):
        return np.empty(0, dtype)
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset: arr.offset + len(arr)]


def _valid(arr: pa.Array) -> np.ndarray:
    """One byte a value, 1 where `arr` is not null (as a numpy bool array holds it)."""
    return _raw(pc.cast(pc.is_valid(arr), pa.uint8()), np.uint8)


def _filled(arr: pa.Array, dtype: type[np.generic]) -> np.ndarray:
    """The values of a fixed-width array, 0 in its null slots."""
    values = _raw(arr, dtype)
    return np.where(_valid(arr).view(bool), values, dtype(0)) if arr.null_count else values


def _offsets(arr: pa.Array, dtype: type[np.generic]) -> np.ndarray:
    """The len + 1 offsets of a string or binary array."""
    return np.frombuffer(arr.buffers()[1], dtype=dtype)[arr.offset: arr.offset + len(arr) + 1]


def hash_batches(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> tuple[str, int]:
    """(content hash, row count) of a stream of batches."""
    hasher = TableHasher(schema)
    for batch in batches:
        hasher.update(batch)
    return hasher.hexdigest(), hasher.rows


def hash_table(table: pa.Table) -> str:
    return hash_batches(table.schema, table.to_batches())[0]
