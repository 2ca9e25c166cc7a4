"""The column types a registry schema may name, and their Arrow types.

    T := string | int32 | int64 | float32 | float64 | bool | date32 | timestamp | binary
       | image | audio | list<T> | struct<name: T, name: T, ...>

`image` and `audio` are stored the way `datasets` stores its `Image()` and `Audio()` features: a struct of
the file's `bytes` and its `path` (MEDIA_STRUCT). Names are validated as strings (`check_type`), so loading
the registry does not import pyarrow: that keeps `dsm preflight` fast. Arrow types are built on demand by
`parse_type`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

SCALAR_NAMES = ("string", "int32", "int64", "float32", "float64", "bool", "date32", "timestamp", "binary")
MEDIA_NAMES = ("image", "audio")
MAX_LIST_DEPTH = 8  # list/struct nesting: deeper is surely a typo, and Arrow's and Parquet's nested code recurses
FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# datasets' Value dtype for each scalar
HF_DTYPES = {"string": "string", "int32": "int32", "int64": "int64", "float32": "float32", "float64": "float64",
             "bool": "bool", "date32": "date32", "timestamp": "timestamp[us]", "binary": "binary"}


def check_type(name: object) -> str:
    """The canonical spelling of a registry type name (`struct<a: int64, b: list<string>>`). Raises ValueError
    naming the type and the choices."""
    text = str(name).strip()
    depth = _max_depth(text)
    if depth > MAX_LIST_DEPTH:  # checked before parsing, so the parser's recursion stays shallow
        raise ValueError(f"types nested {depth} deep; at most {MAX_LIST_DEPTH} levels are supported")
    return _canonical(text, text)


def _max_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        depth += (char == "<") - (char == ">")
        deepest = max(deepest, depth)
    return deepest


def _canonical(text: str, whole: str) -> str:
    text = text.strip()
    if text.startswith("list<") and text.endswith(">"):
        return f"list<{_canonical(text[5:-1], whole)}>"
    if text.startswith("struct<") and text.endswith(">"):
        fields = struct_fields(text, whole)
        return "struct<" + ", ".join(f"{n}: {t}" for n, t in fields) + ">"
    if text not in SCALAR_NAMES + MEDIA_NAMES:
        choices = ", ".join([*SCALAR_NAMES, *MEDIA_NAMES, "list<T>", "struct<name: T, ...>"])
        shown = repr(text) if text == whole else f"{text!r} in {whole!r}"
        raise ValueError(f"unknown type {shown}; use one of: {choices}")
    return text


def struct_fields(text: str, whole: str | None = None) -> list[tuple[str, str]]:
    """`struct<a: int64, b: list<string>>` → [("a", "int64"), ("b", "list<string>")] (canonical types)."""
    whole = whole or text
    body, fields, depth, start = text.strip()[7:-1], [], 0, 0
    parts = []
    for i, char in enumerate(body):
        depth += (char == "<") - (char == ">")
        if char == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    for part in parts:
        name, sep, typ = part.partition(":")
        name = name.strip()
        if not sep or not FIELD_RE.fullmatch(name):
            raise ValueError(f"struct field {part.strip()!r} in {whole!r} is not 'name: type'")
        if name in dict(fields):
            raise ValueError(f"struct field {name!r} appears twice in {whole!r}")
        fields.append((name, _canonical(typ, whole)))
    return fields


def is_media(name: str) -> bool:
    """Whether a registry type name is `image` or `audio` (stored as MEDIA_STRUCT)."""
    return name in MEDIA_NAMES


def media_struct() -> pa.DataType:
    """The Arrow type of an `image` or `audio` column: datasets' storage for Image() and Audio()."""
    import pyarrow as pa

    return pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def parse_type(name: str) -> pa.DataType:
    """`'int64'` → `pa.int64()`, `'list<string>'` → `pa.list_(pa.string())`, `'image'` → media_struct().
    Raises ValueError naming the type."""
    import pyarrow as pa

    text = check_type(name)
    if text.startswith("list<"):
        return pa.list_(parse_type(text[5:-1]))
    if text.startswith("struct<"):
        return pa.struct([(n, parse_type(t)) for n, t in struct_fields(text)])
    if text in MEDIA_NAMES:
        return media_struct()
    scalars = {"string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
               "float64": pa.float64(), "bool": pa.bool_(), "date32": pa.date32(), "timestamp": pa.timestamp("us"),
               "binary": pa.binary()}
    return scalars[text]


def hf_feature(name: str) -> Any:
    """The `datasets` feature (as the dict `datasets.Features.from_dict` reads) for a registry type name:
    Value, List, a dict for struct, Image() and Audio(). Built without importing datasets."""
    text = check_type(name)
    if text.startswith("list<"):
        return {"_type": "List", "feature": hf_feature(text[5:-1])}
    if text.startswith("struct<"):
        return {n: hf_feature(t) for n, t in struct_fields(text)}
    if text == "image":
        return {"_type": "Image"}
    if text == "audio":
        return {"_type": "Audio"}
    return {"_type": "Value", "dtype": HF_DTYPES[text]}


def type_name(dtype: pa.DataType) -> str:
    """Inverse of parse_type for the types it knows (large variants print as their small twin; an `image`
    or `audio` column prints as its storage, `struct<bytes: binary, path: string>`)."""
    import pyarrow as pa

    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return f"list<{type_name(dtype.value_type)}>"
    if pa.types.is_struct(dtype):
        return "struct<" + ", ".join(f"{f.name}: {type_name(f.type)}" for f in dtype) + ">"
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
