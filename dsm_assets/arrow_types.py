"""The column types a registry schema may name, and their Arrow types."""

from __future__ import annotations

import pyarrow as pa

SCALAR_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date32": pa.date32(),
    "timestamp": pa.timestamp("us"),
}


def parse_type(name: str) -> pa.DataType:
    """`'int64'` → `pa.int64()`, `'list<string>'` → `pa.list_(pa.string())`. Raises ValueError naming the type."""
    text = str(name).strip()
    if text.startswith("list<") and text.endswith(">"):
        return pa.list_(parse_type(text[5:-1]))
    if text in SCALAR_TYPES:
        return SCALAR_TYPES[text]
    known = ", ".join([*SCALAR_TYPES, "list<T>"])
    raise ValueError(f"unknown type '{name}'; use one of: {known}")


def type_name(dtype: pa.DataType) -> str:
    """Inverse of parse_type for the types it knows (large variants print as their small twin)."""
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return f"list<{type_name(dtype.value_type)}>"
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "string"
    for name, known in SCALAR_TYPES.items():
        if dtype == known:
            return name
    return str(dtype)


def is_text(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
