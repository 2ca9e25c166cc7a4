"""Bad raw input: each case fails with one line naming the file and row/column, and leaves no output."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dsm_assets.cleaning import clean_dataset
from dsm_assets.errors import PathEscapeError, RegistryError, SourceError
from dsm_assets.layout import clean_dir

from .conftest import csv_entry, spec_from, write_raw

CSV_HEADER = "id,text,label\n"


def assert_fails_cleanly(spec, data_dir: Path, pattern: str) -> str:
    with pytest.raises(SourceError) as info:
        clean_dataset(spec, data_dir)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    out = clean_dir(data_dir, spec.name)
    # the writers' lock file is not output; anything else left behind would be
    leftovers = [p.name for p in out.rglob("*") if p.is_file() and p.name != ".lock"] if out.exists() else []
    assert leftovers == [], f"partial output left behind: {leftovers}"
    return message


def test_empty_glob_names_the_key_and_path(tmp_path):
    spec = spec_from(tmp_path, csv_entry())
    pattern = r"datasets\[0\]\.source\.path: 'raw/t/\*\.csv' matched no files"
    msg = assert_fails_cleanly(spec, tmp_path / "data", pattern)
    assert "make demo" in msg


def test_empty_file(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "")
    assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data, r"raw/t/a\.csv: file is empty; expected a header row")


def test_header_only_source_has_no_data_rows(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", CSV_HEADER)
    assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data, r"has no data rows; add rows to raw/t/a\.csv")


def test_missing_and_extra_columns(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "id,text,colour\n1,x,red\n")
    msg = assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data,
                               r"raw/t/a\.csv: missing column\(s\) 'label'; extra column\(s\) 'colour'")
    assert "datasets[0].schema" in msg


def test_value_that_cannot_be_cast_names_row_and_column(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", CSV_HEADER + "1,x,a\n2,y,b\nthree,z,a\n")
    assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data,
                         r"raw/t/a\.csv: row 3, column 'id': cannot read 'three' as int64; fix the value or change "
                         r".*datasets\[0\]\.schema\.id")


def test_bad_utf8_fails_by_default_naming_the_row(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", CSV_HEADER.encode() + b"1,ok,a\n2,caf\xe9,b\n")
    assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data,
                         r"raw/t/a\.csv: row 2, column 'text': text is not valid UTF-8; .*invalid_utf8: drop")


def test_csv_row_with_too_many_fields(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", CSV_HEADER + "1,x,a\n2,y,b,extra\n")
    assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data, r"raw/t/a\.csv: row 2: expected 3 fields, got 4")


def jsonl_entry() -> dict:
    return {"name": "j", "use": "tests", "source": {"path": "raw/j/*.jsonl", "format": "jsonl"},
            "schema": {"id": "int64", "words": "list<string>"}, "cleaning": {"dedupe_key": ["id"]}}


def test_malformed_jsonl_line_names_the_line(tmp_path):
    data = tmp_path / "data"
    lines = [json.dumps({"id": i, "words": ["a"]}) for i in range(5)]
    lines[3] = '{"id": 3, "words": ["a"'
    write_raw(data, "j", "a.jsonl", "\n".join(lines) + "\n")
    assert_fails_cleanly(spec_from(tmp_path, jsonl_entry()), data, r"raw/j/a\.jsonl: line 4: malformed JSON")


def test_jsonl_value_of_the_wrong_type_names_line_and_column(tmp_path):
    data = tmp_path / "data"
    lines = [json.dumps({"id": i, "words": ["a"]}) for i in range(5)]
    lines[2] = json.dumps({"id": "two", "words": ["a"]})
    write_raw(data, "j", "a.jsonl", "\n".join(lines) + "\n")
    assert_fails_cleanly(spec_from(tmp_path, jsonl_entry()), data,
                         r"raw/j/a\.jsonl: line 3, column 'id': cannot read 'two' as int64")


def test_jsonl_missing_and_extra_keys(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "j", "a.jsonl", json.dumps({"id": 1, "colour": "red"}) + "\n")
    assert_fails_cleanly(spec_from(tmp_path, jsonl_entry()), data,
                         r"raw/j/a\.jsonl: missing column\(s\) 'words'; extra column\(s\) 'colour'")


def struct_entry() -> dict:
    return {"name": "j", "use": "tests", "source": {"path": "raw/j/*.jsonl", "format": "jsonl"},
            "schema": {"id": "int64", "box": "struct<w: int64, tags: list<string>>",
                       "parts": "list<struct<x: float64>>"},
            "cleaning": {"dedupe_key": ["id"]}}


def test_jsonl_struct_columns_are_read(tmp_path):
    data = tmp_path / "data"
    rows = [{"id": 1, "box": {"w": 2, "tags": ["a"]}, "parts": [{"x": 1.5}, {"x": 2}]},
            {"id": 2, "box": None, "parts": []}]
    write_raw(data, "j", "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    result = clean_dataset(spec_from(tmp_path, struct_entry()), data)
    assert pq.read_table(result.path).to_pylist() == [
        {"id": 1, "box": {"w": 2, "tags": ["a"]}, "parts": [{"x": 1.5}, {"x": 2.0}]},
        {"id": 2, "box": None, "parts": []}]


@pytest.mark.parametrize("bad,pattern", [
    ({"box": {"w": 2, "colour": "red"}}, r"line 3, column 'box' at box\.colour: key 'colour' is not in struct<w"),
    ({"box": {"w": "wide"}}, r"line 3, column 'box' at box\.w: cannot read 'wide' as int64"),
    ({"parts": [{"x": 1}, {"x": 2, "y": 3}]}, r"line 3, column 'parts' at parts\[1\]\.y: key 'y' is not in struct<x"),
    ({"parts": [{"x": "far"}]}, r"line 3, column 'parts' at parts\[0\]\.x: cannot read 'far' as float64"),
])
def test_jsonl_bad_nested_value_names_line_column_and_key(tmp_path, bad, pattern):
    data = tmp_path / "data"
    lines = [{"id": i, "box": {"w": i}, "parts": [{"x": 0.5}]} for i in range(4)]
    lines[2].update(bad)
    write_raw(data, "j", "a.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    msg = assert_fails_cleanly(spec_from(tmp_path, struct_entry()), data, r"raw/j/a\.jsonl: " + pattern)
    assert "datasets[0].schema." in msg


def test_struct_column_from_csv_is_rejected_by_the_registry(tmp_path):
    entry = csv_entry(schema={"id": "int64", "text": "struct<a: string>", "label": "string"})
    entry["cleaning"] = {}
    with pytest.raises(RegistryError, match=r"datasets\[0\]\.schema\.text: format csv cannot hold nested struct<a"):
        spec_from(tmp_path, entry)


def test_list_column_from_csv_is_rejected_with_the_key(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "id,text,label\n1,x,a\n")
    entry = csv_entry(schema={"id": "int64", "text": "list<string>", "label": "string"})
    entry["cleaning"] = {}
    assert_fails_cleanly(spec_from(tmp_path, entry), data, r"schema\.text: list columns need jsonl or parquet")


def test_symlink_that_escapes_the_data_dir(tmp_path):
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.csv").write_text(CSV_HEADER + "1,x,a\n")
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "t").symlink_to(outside)
    with pytest.raises(PathEscapeError, match=r"resolves outside .*data \(.*\); use a path inside the data dir"):
        clean_dataset(spec_from(tmp_path, csv_entry()), data)


# regressions found by test_fuzz.py: each input crashed the run, was rejected though well-formed, or gave a
# message without a row or line


def test_csv_with_a_bom_is_read(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "\ufeff" + CSV_HEADER + "1,x,a\n")
    result = clean_dataset(spec_from(tmp_path, csv_entry()), data)
    assert pq.read_table(result.path).to_pylist() == [{"id": 1, "text": "x", "label": "a"}]


def test_csv_header_with_a_column_twice(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", "id,id,text,label\n1,1,x,a\n")
    assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data, r"raw/t/a\.csv: duplicate column\(s\) 'id'; ")


def test_quoted_newlines_across_read_blocks(tmp_path):
    data = tmp_path / "data"
    texts = [f"a\n{i + 100},evil,x,2.0,false" for i in range(8)]  # each looks like a row after its newline
    write_raw(data, "t", "a.csv", "id,text,label,score,flag\n" + "".join(
        f'{i},"{text}",x,1.0,true\n' for i, text in enumerate(texts)))
    entry = csv_entry(schema={"id": "int64", "text": "string", "label": "string", "score": "float64", "flag": "bool"},
                      cleaning={})
    result = clean_dataset(spec_from(tmp_path, entry), data, block_size=45)  # boundaries inside quotes
    assert pq.read_table(result.path)["text"].to_pylist() == texts


@pytest.mark.parametrize("value,shown", [(2**63, "9223372036854775808"), (0.0, "0.0"), (True, "True")])
def test_jsonl_number_that_is_no_int64_names_line_and_column(tmp_path, value, shown):
    data = tmp_path / "data"
    write_raw(data, "j", "a.jsonl", '{"id": 1, "words": []}\n' + json.dumps({"id": value, "words": []}) + "\n")
    assert_fails_cleanly(spec_from(tmp_path, jsonl_entry()), data,
                         rf"raw/j/a\.jsonl: line 2, column 'id': cannot read {shown} as int64; ")


def test_jsonl_null_record_at_a_block_boundary_is_rejected_not_a_crash(tmp_path):
    data = tmp_path / "data"
    line = '{"id": 1, "words": ["a"]}\n'
    write_raw(data, "j", "a.jsonl", line + "null\n" + line)
    with pytest.raises(SourceError, match=r"raw/j/a\.jsonl: line 2: expected a JSON object, got null"):
        clean_dataset(spec_from(tmp_path, jsonl_entry()), data, block_size=len(line))  # pyarrow: SIGSEGV


def test_jsonl_invalid_utf8_in_a_list_fails_or_is_dropped(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "j", "a.jsonl", b'{"id": 1, "words": ["a"]}\n{"id": 2, "words": ["caf\xc3"]}\n')
    entry = jsonl_entry()
    assert_fails_cleanly(spec_from(tmp_path, entry), data, r"raw/j/a\.jsonl: line 2: text is not valid UTF-8; ")
    entry["cleaning"]["invalid_utf8"] = "drop"
    result = clean_dataset(spec_from(tmp_path, entry), data)
    assert pq.read_table(result.path)["id"].to_pylist() == [1] and result.dropped == {"invalid_utf8": 1}


def test_jsonl_line_longer_than_the_read_block_is_named(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "j", "a.jsonl", '{"id": 1, "words": []}\n{"id": 2, "words": ["' + "x" * 200 + '"]}\n')
    with pytest.raises(SourceError, match=r"raw/j/a\.jsonl: line 2: the longest record \(about 225 bytes\) does not "
                                          r"fit the reader's blocks of 64 bytes; split long records"):
        clean_dataset(spec_from(tmp_path, jsonl_entry()), data, block_size=64)


def test_a_composite_dedupe_key_does_not_merge_different_keys(tmp_path):
    data = tmp_path / "data"
    # joined with a separator, or with nulls as a marker, each pair of these keys used to be equal
    write_raw(data, "t", "a.csv", CSV_HEADER + '1,"a\x1fb",c\n2,a,"b\x1fc"\n3,,x\n4,"\x00",x\n5,a,"b\x1fc"\n')
    entry = csv_entry(cleaning={"dedupe_key": ["text", "label"]})
    result = clean_dataset(spec_from(tmp_path, entry), data)
    assert pq.read_table(result.path)["id"].to_pylist() == [1, 2, 3, 4] and result.dropped == {"duplicate": 1}


@pytest.mark.parametrize("content,pattern", [
    ('"id","text","label', r"raw/t/a\.csv: line 1: malformed CSV \(unexpected end of data\); check the quotes"),
    ("id,text,label", r"datasets\[0\]\.source\.path: 'raw/t/\*\.csv' has no data rows"),  # no line end
    (CSV_HEADER + '1,"' + "x" * 200_000 + '",a\n2,y\n', r"raw/t/a\.csv: row 2: expected 3 fields, got 2"),
])
def test_csv_that_pyarrow_rejects_is_diagnosed_by_line_or_row(tmp_path, content, pattern):
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", content)  # the last: a field beyond Python's csv limit (128 KiB) used to raise
    assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data, pattern)


def test_jsonl_key_that_is_not_utf8(tmp_path):
    data = tmp_path / "data"
    write_raw(data, "j", "a.jsonl", b'{"id": 1, "words": []}\n{"id": 2, "\xffwords": []}\n')
    assert_fails_cleanly(spec_from(tmp_path, jsonl_entry()), data, r"raw/j/a\.jsonl: line 2: text is not valid UTF-8")


def test_a_5000_column_mismatch_is_one_short_line(tmp_path, data_dir):
    from dsm_assets.errors import SourceError
    from dsm_assets.sources import read_source, resolve_files

    header = ",".join(f"c{i}" for i in range(5000))
    write_raw(data_dir, "t", "a.csv", header + "\n" + ",".join("1" for _ in range(5000)) + "\n")
    spec = spec_from(tmp_path, csv_entry())
    with pytest.raises(SourceError) as info:
        list(read_source(spec, resolve_files(spec, data_dir)))
    message = str(info.value)
    assert len(message) < 600 and "\n" not in message  # it was a 44 KB line
    assert "missing column(s) 'id', 'text', 'label'" in message and "extra column(s) 'c0'," in message
    assert "and 4990 more" in message


def test_csv_field_limit_is_raised_when_a_csv_is_read_not_on_import(tmp_path):
    code = "import csv; n = csv.field_size_limit(); import dsm_assets.sources; assert csv.field_size_limit() == n"
    subprocess.run([sys.executable, "-c", code], check=True)
    data = tmp_path / "data"
    write_raw(data, "t", "a.csv", CSV_HEADER + '1,"' + "x" * 200_000 + '",a\n2,y\n')
    before = csv.field_size_limit(128 << 10)  # Python's default, as if nothing had raised it yet
    try:
        assert_fails_cleanly(spec_from(tmp_path, csv_entry()), data, r"raw/t/a\.csv: row 2: expected 3 fields, got 2")
    finally:
        csv.field_size_limit(before)
