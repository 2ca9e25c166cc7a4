"""Checks on a cleaned parquet file against its registry entry. Pure functions: the Dagster layer turns
each CheckOutcome into an AssetCheckResult; the tests call them directly."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dsm_assets.arrow_types import type_name
from dsm_assets.checks import CheckOutcome
from dsm_assets.dedupe import key_column
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


def check_cleaned(spec: DatasetSpec, path: Path) -> list[CheckOutcome]:
    pf = pq.ParquetFile(path)
    runners = {
        "non_empty": _non_empty, "schema_matches_registry": _schema, "unique_dedupe_key": _unique_key,
        "required_not_null": _required, "labels_allowed": _labels, "one_annotation_layer": _one_layer,
    }
    return [runners[name](spec, pf) for name in check_names(spec)]


def _columns(pf: pq.ParquetFile, columns: list[str]) -> pa.Table:
    present = [c for c in columns if c in pf.schema_arrow.names]
    return pf.read(columns=present)


def _non_empty(spec: DatasetSpec, pf: pq.ParquetFile) -> CheckOutcome:
    rows = pf.metadata.num_rows
    text = f"{rows} rows" if rows else "no rows left after cleaning; see the cleaned asset's dropped_* metadata"
    return CheckOutcome("non_empty", rows > 0, text, {"rows": rows})


def _schema(spec: DatasetSpec, pf: pq.ParquetFile) -> CheckOutcome:
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


def _unique_key(spec: DatasetSpec, pf: pq.ParquetFile) -> CheckOutcome:
    key = list(spec.cleaning.dedupe_key)
    table = _columns(pf, key)
    # an image or audio column keys on its bytes, as cleaning's dedupe does
    table = pa.table({c: key_column(table.column(c).combine_chunks()) for c in table.column_names})
    distinct = table.group_by(key, use_threads=False).aggregate([]).num_rows if table.num_columns == len(key) else -1
    dupes = table.num_rows - distinct if distinct >= 0 else table.num_rows
    return CheckOutcome("unique_dedupe_key", dupes == 0,
                        f"{dupes} duplicate key(s) on ({', '.join(key)})", {"duplicates": dupes})


def _required(spec: DatasetSpec, pf: pq.ParquetFile) -> CheckOutcome:
    table = _columns(pf, list(spec.cleaning.required))
    nulls = {c: table.column(c).null_count if c in table.column_names else -1 for c in spec.cleaning.required}
    bad = {c: n for c, n in nulls.items() if n != 0}
    text = "no nulls in required columns" if not bad else \
        "; ".join(f"{c}: {'missing column' if n < 0 else f'{n} nulls'}" for c, n in bad.items())
    return CheckOutcome("required_not_null", not bad, text, {f"nulls_{c}": n for c, n in nulls.items()})


def _labels(spec: DatasetSpec, pf: pq.ParquetFile) -> CheckOutcome:
    labels = spec.cleaning.labels
    table = _columns(pf, [labels.column])
    if labels.column not in table.column_names:
        return CheckOutcome("labels_allowed", False, f"label column '{labels.column}' is missing")
    col = table.column(labels.column)
    outside = pc.filter(col, pc.and_(pc.invert(pc.is_in(col, value_set=pa.array(labels.allowed))), pc.is_valid(col)))
    unknown = sorted(set(outside.to_pylist()))
    counts = {str(v["values"]): int(v["counts"]) for v in pc.value_counts(col).to_pylist()}
    text = "all labels allowed" if not unknown else f"labels outside the allowed set: {unknown[:10]}"
    return CheckOutcome("labels_allowed", not unknown, text, {"label_counts": counts})


def _one_layer(spec: DatasetSpec, pf: pq.ParquetFile) -> CheckOutcome:
    layers = spec.cleaning.layers
    present = [c for c in pf.schema_arrow.names if c.startswith(layers.prefix)]
    ok = present == [layers.canonical]
    text = f"kept '{layers.canonical}'" if ok else f"expected only '{layers.canonical}', found {present}"
    return CheckOutcome("one_annotation_layer", ok, text, {"layers": ", ".join(present)})
