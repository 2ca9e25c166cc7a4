from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from dsm_assets.cleaning import clean_dataset
from dsm_assets.quality import check_cleaned, check_names


def outcomes(spec, path) -> dict[str, tuple[bool, str]]:
    return {o.name: (o.passed, o.description) for o in check_cleaned(spec, path)}


def test_cleaned_samples_pass_every_check(data_dir, shipped):
    for spec in shipped.datasets:
        result = clean_dataset(spec, data_dir)
        got = outcomes(spec, result.path)
        assert list(got) == check_names(spec)
        assert all(passed for passed, _ in got.values()), got
    assert check_names(shipped.get("chords"))[-1] == "one_annotation_layer"
    assert "one_annotation_layer" not in check_names(shipped.get("text_reviews"))


def test_each_check_fails_on_data_that_breaks_it(tmp_path, shipped):
    spec = shipped.get("chords")
    bad = pa.table({
        "id": pa.array([1, 1], pa.int64()),
        "title": ["a", "b"],
        "key": ["C", "D"],
        "mode": ["major", "lydian"],
        "tempo": pa.array([90, 100], pa.int32()),
        "chord_layer_basic": pa.array([["C"], None], pa.list_(pa.string())),
        "chord_layer_extended": pa.array([["C"], ["D"]], pa.list_(pa.string())),
    })
    pq.write_table(bad, tmp_path / "bad.parquet")
    got = outcomes(spec, tmp_path / "bad.parquet")
    assert got["non_empty"][0]
    assert got["schema_matches_registry"] == (False, "tempo: registry int64 vs data int32; "
                                                     "chord_layer_extended: registry - vs data list<string>")
    assert got["unique_dedupe_key"] == (False, "1 duplicate key(s) on (id)")
    assert got["required_not_null"] == (False, "chord_layer_basic: 1 nulls")
    assert got["labels_allowed"] == (False, "labels outside the allowed set: ['lydian']")
    assert got["one_annotation_layer"] == (False, "expected only 'chord_layer_basic', found "
                                                  "['chord_layer_basic', 'chord_layer_extended']")


def test_empty_cleaned_data_fails_non_empty(tmp_path, shipped):
    spec = shipped.get("text_reviews")
    pq.write_table(spec.arrow_schema().empty_table(), tmp_path / "empty.parquet")
    got = outcomes(spec, tmp_path / "empty.parquet")
    assert got["non_empty"][0] is False and "no rows left after cleaning" in got["non_empty"][1]


def test_checks_stream_batches_and_count_across_them(tmp_path, monkeypatch):
    """Many row groups and small batches: duplicates far apart, null keys, nulls and labels summed over batches,
    the same counts a whole-table group_by gives."""
    from dsm_assets import parquet_stream

    from .conftest import csv_entry, spec_from

    n = 5000
    texts = [None if i % 997 == 0 else f"t{i % 3000}" for i in range(n)]
    labels = [None if i % 13 == 0 else ("c" if i % 101 == 0 else "ab"[i % 2]) for i in range(n)]
    table = pa.table({"id": pa.array(range(n), pa.int64()), "text": texts, "label": labels})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=700)
    monkeypatch.setattr(parquet_stream, "BATCH_BYTES", 2000)  # ~100-row batches
    spec = spec_from(tmp_path, csv_entry())
    got = {o.name: o for o in check_cleaned(spec, tmp_path / "t.parquet")}
    distinct = table.group_by(["text"]).aggregate([]).num_rows
    assert got["unique_dedupe_key"].metadata["duplicates"] == n - distinct
    assert got["required_not_null"].metadata == {"nulls_text": texts.count(None), "nulls_label": labels.count(None)}
    assert got["labels_allowed"].description == "labels outside the allowed set: ['c']"
    counts = got["labels_allowed"].metadata["label_counts"]
    assert counts == {str(v): labels.count(v) for v in dict.fromkeys(labels)}
    composite = spec_from(tmp_path, csv_entry(cleaning={"dedupe_key": ["text", "label"]}))
    [_, _, unique] = check_cleaned(composite, tmp_path / "t.parquet")
    assert unique.metadata["duplicates"] == n - table.group_by(["text", "label"]).aggregate([]).num_rows
