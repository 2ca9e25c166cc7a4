from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dsm_assets.cleaning import clean_dataset
from dsm_assets.contenthash import hash_table
from dsm_assets.dedupe import SeenKeys, key_hashes
from dsm_assets.layout import clean_dir

from .conftest import csv_entry, spec_from, write_raw

RAW = """id,text,label
1, hello ,a
2,hello,a
3,world,
4,other,c
5,fine,b
6,,a
7,fine,b
"""


def test_each_rule_drops_and_counts(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", RAW)
    result = clean_dataset(spec_from(tmp_path, csv_entry()), data)
    rows = pq.read_table(result.path).to_pylist()
    assert rows == [{"id": 1, "text": "hello", "label": "a"}, {"id": 5, "text": "fine", "label": "b"}]
    assert result.dropped == {"duplicate": 2, "label_not_allowed": 1, "null:label": 1, "null:text": 1}
    assert (result.rows_in, result.rows_out) == (7, 2)
    assert result.version == hash_table(pq.read_table(result.path))


def test_dedupe_spans_batches_and_files(tmp_path):
    data = tmp_path / "data"
    body = "".join(f"{i},text{i % 50},a\n" for i in range(400))
    write_raw(data, "t", "a.csv", "id,text,label\n" + body)
    write_raw(data, "t", "b.csv", "id,text,label\n" + body)
    result = clean_dataset(spec_from(tmp_path, csv_entry()), data, block_size=1024)  # many small batches
    table = pq.read_table(result.path)
    assert table.num_rows == 50 and sorted(table["text"].to_pylist()) == sorted(f"text{i}" for i in range(50))
    assert table["id"].to_pylist() == list(range(50))  # the first occurrence wins
    assert result.dropped == {"duplicate": 750}


def test_invalid_utf8_rows_dropped_when_the_registry_says_so(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", b"id,text,label\n1,ok,a\n2,caf\xe9,b\n3,fine,b\n")
    entry = csv_entry()
    entry["cleaning"]["invalid_utf8"] = "drop"
    result = clean_dataset(spec_from(tmp_path, entry), data)
    assert pq.read_table(result.path)["id"].to_pylist() == [1, 3]
    assert result.dropped == {"invalid_utf8": 1}


def test_canonical_layer_is_the_only_one_kept(data_dir, shipped):
    result = clean_dataset(shipped.get("chords"), data_dir)
    table = pq.read_table(result.path)
    assert [c for c in table.column_names if c.startswith("chord_layer_")] == ["chord_layer_basic"]
    assert table["chord_layer_basic"].null_count == 0
    assert result.dropped == {"duplicate": 11, "label_not_allowed": 4, "null:chord_layer_basic": 5}


def test_sample_text_dataset_faults_are_all_handled(data_dir, shipped):
    result = clean_dataset(shipped.get("text_reviews"), data_dir)
    assert set(result.dropped) == {"duplicate", "invalid_utf8", "label_not_allowed", "null:label"}
    table = pq.read_table(result.path)
    texts = table["text"].to_pylist()
    assert all(t == t.strip() for t in texts) and len(set(texts)) == len(texts)
    assert set(table["label"].to_pylist()) == {"positive", "negative", "neutral"}


def test_unchanged_inputs_reuse_the_file_and_write_nothing(data_dir, shipped):
    spec = shipped.get("text_reviews")
    first = clean_dataset(spec, data_dir)
    out = clean_dir(data_dir, spec.name)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second = clean_dataset(spec, data_dir)
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert (second.version, second.reused, first.reused) == (first.version, True, False)
    assert before == after
    assert list(second.schema.items()) == list(first.schema.items()) == list(spec.schema.items())  # order kept


def test_registry_change_recleans_but_same_content_keeps_its_version(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", RAW)
    first = clean_dataset(spec_from(tmp_path, csv_entry()), data)
    second = clean_dataset(spec_from(tmp_path, csv_entry(use="a new description")), data)
    assert not second.reused and second.version == first.version and second.path == first.path


def test_raw_edit_gives_a_new_version_beside_the_old(tmp_path):
    data = tmp_path / "data"
    raw = write_raw(data, "t", "a.csv", RAW)
    spec = spec_from(tmp_path, csv_entry())
    first = clean_dataset(spec, data)
    raw.write_text(RAW.replace("5,fine,b", "5,finer,b"))
    second = clean_dataset(spec, data)
    assert second.version != first.version and first.path.exists() and second.path.exists()


def test_stats_sidecar_matches_the_result(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", RAW)
    result = clean_dataset(spec_from(tmp_path, csv_entry()), data)
    stats = json.loads(result.path.with_suffix(".json").read_text())
    assert stats["schema"] == [["id", "int64"], ["text", "string"], ["label", "string"]]
    assert stats["rows_out"] == 2 and stats["preview"][0] == {"id": 1, "text": "hello", "label": "a"}
    assert stats["files"] == [f.name for f in result.files] == ["train-00000-of-00001.parquet"]
    assert oct(result.files[0].stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert oct(result.path.stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def test_stale_temp_from_a_killed_writer_is_removed(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", RAW)
    stale = clean_dir(data, "t") / ".tmp-deadbeef.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PAR1 half written")
    clean_dataset(spec_from(tmp_path, csv_entry()), data)
    assert not stale.exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_seen_keys_agree_with_a_set_even_when_upper_halves_collide():
    """The dedupe state (sorted runs of 128-bit hashes) against a plain Python set. Tiny value ranges make
    equal upper halves with different lower halves common, so the rare path runs too."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        seen, model = SeenKeys(), set()
        for _ in range(int(rng.integers(1, 12))):  # batches
            n = int(rng.integers(0, 40))
            hi, lo = (rng.integers(0, 4, n).astype(np.uint64) for _ in range(2))
            want = []
            for pair in zip(hi.tolist(), lo.tolist(), strict=True):
                want.append(pair not in model)  # new: not seen before, nor earlier in this batch
                model.add(pair)
            assert seen.add_new(hi, lo).tolist() == want


def test_key_hashes_keep_float_bits_and_nulls_apart():
    hi, lo = key_hashes(pa.array([0.0, -0.0, None, 0.0]))
    pairs = list(zip(hi.tolist(), lo.tolist(), strict=True))
    assert pairs[0] == pairs[3] != pairs[1] and pairs[2] == (0, 0) and len({pairs[0], pairs[1], pairs[2]}) == 3


def flip_byte(path, offset: int = -100) -> None:
    """Flip one bit in place (same size; mtime changes as it would on a real disk error being written)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_corrupted_cleaned_parquet_is_rebuilt_not_reused(data_dir, shipped):
    spec = shipped.get("text_reviews")
    first = clean_dataset(spec, data_dir)
    flip_byte(first.files[0], len(first.files[0].read_bytes()) // 2)
    again = clean_dataset(spec, data_dir)
    assert not again.reused and again.repaired and str(first.files[0]) in again.repaired
    assert again.version == first.version and pq.read_table(again.path).num_rows == first.rows_out
    third = clean_dataset(spec, data_dir)
    assert third.reused and third.repaired is None


def test_a_same_size_corruption_of_a_touched_file_is_caught_by_its_hash(data_dir, shipped):
    spec = shipped.get("chords")
    first = clean_dataset(spec, data_dir)
    st = first.files[0].stat()
    flip_byte(first.files[0])
    os.utime(first.files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # a touched file is re-hashed
    assert not clean_dataset(spec, data_dir).reused
