"""Checks on cleaned parquet files against their registry entry. Pure functions: the Dagster layer turns
each CheckOutcome into an AssetCheckResult; the tests call them directly.

Memory is bounded whatever the data's size: the schema and row count come from the footers, and one pass
reads only the columns the checks need, file after file, a batch at a time (`parquet_stream`). The dedupe
key check keeps a 128-bit hash per distinct key (`dedupe.SeenKeys`, as cleaning does), ~16 bytes a row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dsm_assets.arrow_types import type_name
from dsm_assets.checks import CheckOutcome
from dsm_assets.dedupe import SeenKeys, key_array, key_hashes
from dsm_assets.parquet_files import list_files
from dsm_assets.parquet_stream import iter_batches, open_parquet
from dsm_assets.registry import DatasetSpec

DESCRIPTIONS = {
    "non_empty": "The cleaned data has at least one row.",
    "schema_matches_registry": "Column names, order and types equal the registry schema.",
    "unique_dedupe_key": "No two rows share the dedupe key.",
    "required_not_null": "Required columns have no nulls.",
    "labels_allowed": "Every label is in the registry's allowed set.",
    "one_annotation_layer": "Exactly one annotation layer (the canonical one) is kept.",
}


def check_names(spec: DatasetSpec) -> list[str]:
    """The checks that apply to this dataset, in a stable order."""
    names = ["non_empty", "schema_matches_registry"]
    if spec.cleaning.dedupe_key:
        names.append("unique_dedupe_key")
    if spec.cleaning.required:
        names.append("required_not_null")
    if spec.cleaning.labels:
        names.append("labels_allowed")
    if spec.cleaning.layers:
        names.append("one_annotation_layer")
    return names


@dataclass(frozen=True)
class _Files:
    """The cleaned files as one table: the first file's schema (cleaning writes one schema), all their rows."""

    files: tuple[pq.ParquetFile, ...]
    schema_arrow: pa.Schema
    num_rows: int


def check_cleaned(spec: DatasetSpec, parquet: Path | Sequence[Path]) -> list[CheckOutcome]:
    """Every check in `check_names(spec)` on the cleaned data: `parquet` is its files in order, its folder
    (`CleanResult.path`) or one file. The schema and row count from the footers, the rest from one pass
    over the columns they need, a bounded batch at a time (never a whole column in memory)."""
    if isinstance(parquet, Path):
        parquet = list_files(parquet) if parquet.is_dir() else (parquet,)
    if not parquet:
        raise ValueError("no cleaned parquet file to check")
    opened = tuple(open_parquet(f) for f in parquet)
    pf = _Files(opened, opened[0].schema_arrow, sum(f.metadata.num_rows for f in opened))
    names = check_names(spec)
    scan = _scan(spec, pf, names)
    runners = {
        "non_empty": _non_empty, "schema_matches_registry": _schema, "unique_dedupe_key": _unique_key,
        "required_not_null": _required, "labels_allowed": _labels, "one_annotation_layer": _one_layer,
    }
    return [runners[name](spec, pf, scan) for name in names]


@dataclass
class _Scan:
    """What the one pass over the data found."""

    duplicates: int = 0
    nulls: dict[str, int] = field(default_factory=dict)  # required column → nulls, -1 when it is missing
    label_counts: dict[str, int] = field(default_factory=dict)
    unknown_labels: set[Any] = field(default_factory=set)


def _scan(spec: DatasetSpec, pf: _Files, names: list[str]) -> _Scan:
    present = set(pf.schema_arrow.names)
    scan = _Scan()
    key = tuple(spec.cleaning.dedupe_key) if "unique_dedupe_key" in names else ()
    keyed = bool(key) and all(c in present for c in key)
    if key and not keyed:
        scan.duplicates = pf.num_rows  # a key column is missing: every row fails
    required = list(spec.cleaning.required) if "required_not_null" in names else []
    scan.nulls = {c: 0 if c in present else -1 for c in required}
    labels = spec.cleaning.labels if "labels_allowed" in names else None
    label = labels.column if labels and labels.column in present else None
    columns = list(dict.fromkeys([*(key if keyed else ()), *(c for c in required if c in present),
                                  *([label] if label else [])]))
    if not columns:
        return scan
    seen = SeenKeys()  # 16 bytes a distinct key, as cleaning's dedupe
    allowed = pa.array(labels.allowed) if label else None
    for batch in (b for f in pf.files for b in iter_batches(f, columns)):
        if keyed:
            hi, lo = key_hashes(key_array(batch, key))  # an image or audio column keys on its bytes
            scan.duplicates += len(hi) - int(seen.add_new(hi, lo).sum())
        for c in required:
            if c in present:
                scan.nulls[c] += batch.column(c).null_count
        if label:
            col = batch.column(label)
            for v in pc.value_counts(col).to_pylist():
                scan.label_counts[str(v["values"])] = scan.label_counts.get(str(v["values"]), 0) + int(v["counts"])
            outside = pc.filter(col, pc.and_(pc.invert(pc.is_in(col, value_set=allowed)), pc.is_valid(col)))
            scan.unknown_labels.update(pc.unique(outside).to_pylist())
    return scan


def _non_empty(spec: DatasetSpec, pf: _Files, scan: _Scan) -> CheckOutcome:
    rows = pf.num_rows
    text = f"{rows} rows" if rows else "no rows left after cleaning; see the cleaned asset's dropped_* metadata"
    return CheckOutcome("non_empty", rows > 0, text, {"rows": rows})


def _schema(spec: DatasetSpec, pf: _Files, scan: _Scan) -> CheckOutcome:
    """Arrow types compared by equality (an `image` and an `audio` column share one Arrow type, so names
    would not tell them apart); the registry's names in the message."""
    actual = {f.name: f.type for f in pf.schema_arrow}
    expected = {f.name: f.type for f in spec.arrow_schema()}
    if list(actual) == list(expected) and all(actual[c].equals(expected[c]) for c in expected):
        return CheckOutcome("schema_matches_registry", True, "schema matches the registry")
    names = dict(spec.schema)
    diffs = [f"{c}: registry {names.get(c, '-')} vs data {type_name(actual[c]) if c in actual else '-'}"
             for c in dict.fromkeys([*expected, *actual])
             if c not in actual or c not in expected or not actual[c].equals(expected[c])]
    return CheckOutcome("schema_matches_registry", False, "; ".join(diffs) or "column order differs",
                        {"expected": str(names), "actual": str({c: type_name(t) for c, t in actual.items()})})


def _unique_key(spec: DatasetSpec, pf: _Files, scan: _Scan) -> CheckOutcome:
    key = list(spec.cleaning.dedupe_key)
    dupes = scan.duplicates
    return CheckOutcome("unique_dedupe_key", dupes == 0,
                        f"{dupes} duplicate key(s) on ({', '.join(key)})", {"duplicates": dupes})


def _required(spec: DatasetSpec, pf: _Files, scan: _Scan) -> CheckOutcome:
    nulls = scan.nulls
    bad = {c: n for c, n in nulls.items() if n != 0}
    text = "no nulls in required columns" if not bad else \
        "; ".join(f"{c}: {'missing column' if n < 0 else f'{n} nulls'}" for c, n in bad.items())
    return CheckOutcome("required_not_null", not bad, text, {f"nulls_{c}": n for c, n in nulls.items()})


def _labels(spec: DatasetSpec, pf: _Files, scan: _Scan) -> CheckOutcome:
    labels = spec.cleaning.labels
    if labels.column not in pf.schema_arrow.names:
        return CheckOutcome("labels_allowed", False, f"label column '{labels.column}' is missing")
    unknown = sorted(scan.unknown_labels)
    text = "all labels allowed" if not unknown else f"labels outside the allowed set: {unknown[:10]}"
    return CheckOutcome("labels_allowed", not unknown, text, {"label_counts": dict(scan.label_counts)})


def _one_layer(spec: DatasetSpec, pf: _Files, scan: _Scan) -> CheckOutcome:
    layers = spec.cleaning.layers
    present = [c for c in pf.schema_arrow.names if c.startswith(layers.prefix)]
    ok = present == [layers.canonical]
    text = f"kept '{layers.canonical}'" if ok else f"expected only '{layers.canonical}', found {present}"
    return CheckOutcome("one_annotation_layer", ok, text, {"layers": ", ".join(present)})
