"""The column types a registry schema may name, and their Arrow types.

Names are validated as strings (`check_type`), so loading the registry does not import pyarrow: that keeps
`dsm preflight` fast. Arrow types are built on demand by `parse_type`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

SCALAR_NAMES = ("string", "int32", "int64", "float32", "float64", "bool", "date32", "timestamp", "binary")
MAX_LIST_DEPTH = 8  # list<list<...>>: deeper is surely a typo, and Arrow's and Parquet's nested code recurses


def check_type(name: object) -> str:
    """The canonical spelling of a registry type name. Raises ValueError naming the type and the choices."""
    text, depth = str(name).strip(), 0
    while text.startswith("list<") and text.endswith(">"):  # a loop, not recursion: any input stays cheap
        text, depth = text[5:-1].strip(), depth + 1
    if text not in SCALAR_NAMES:
        raise ValueError(f"unknown type {text!r}; use one of: {', '.join([*SCALAR_NAMES, 'list<T>'])}")
    if depth > MAX_LIST_DEPTH:
        raise ValueError(f"lists nested {depth} deep; at most {MAX_LIST_DEPTH} levels are supported")
    return "list<" * depth + text + ">" * depth


def parse_type(name: str) -> pa.DataType:
    """`'int64'` → `pa.int64()`, `'list<string>'` → `pa.list_(pa.string())`. Raises ValueError naming the type."""
    import pyarrow as pa

    text = check_type(name)
    if text.startswith("list<"):
        return pa.list_(parse_type(text[5:-1]))
    scalars = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
               "float64": pa.float64(), "bool": pa.bool_(), "date32": pa.date32(), "timestamp": pa.timestamp("us"),
               "binary": pa.binary()}
    return scalars[text]


def type_name(dtype: pa.DataType) -> str:
    """Inverse of parse_type for the types it knows (large variants print as their small twin)."""
    import pyarrow as pa

    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return f"list<{type_name(dtype.value_type)}>"
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "string"
    if pa.types.is_large_binary(dtype):
        return "binary"
    for name in SCALAR_NAMES:
        if dtype == parse_type(name):
            return name
    return str(dtype)


def is_text(dtype: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
