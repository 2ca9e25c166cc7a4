"""Cleaned data as content-defined parquet files (`parquet_files`): Hugging Face names, row groups from each
file's own rows, unchanged runs of rows giving byte-identical files, and the files through every remote."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dsm_assets import parquet_files
from dsm_assets.cleaning import clean_dataset
from dsm_assets.contenthash import hash_table
from dsm_assets.errors import RegistryError
from dsm_assets.parquet_files import ParquetFiles, auto_file_size, row_stats
from dsm_assets.publishing import publish_cleaned
from dsm_assets.records import PublishedVersion
from dsm_assets.round_trip import check_round_trip

from .conftest import csv_entry, spec_from, write_raw
from .servers import HUB_TOKEN, make_remote

FILE_SIZE = 64 << 10
WORDS = np.array(["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards",
                  "quietly", "hex", "jolly"])


def rows_csv(n: int, *, edit: range = range(0), start: int = 0) -> str:
    """`n` rows with distinct texts of 3–40 words (seeded per row, so a row is the same in every call); the
    rows in `edit` get an edited text."""
    lines = []
    for i in range(start, start + n):
        words = np.random.default_rng(i).choice(WORDS, 3 + i % 38)
        text = f"row {i} " + " ".join(words) + (" EDITED" if i in edit else "")
        lines.append(f"{i},{text},{'ab'[i % 2]}\n")
    return "".join(lines)


def entry(file_size: int | str = FILE_SIZE) -> dict:
    base = csv_entry()
    base["cleaning"] = {**base["cleaning"], "file_size": file_size}
    return base


def clean(tmp_path: Path, data: Path, body: str, file_size: int | str = FILE_SIZE, **kwargs):
    raw = write_raw(data, "t", "a.csv", "id,text,label\n" + body)
    result = clean_dataset(spec_from(tmp_path, entry(file_size)), data, **kwargs)
    return raw, result


def digests(files) -> list[str]:
    return [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]


def read(files) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in files])


def test_a_small_file_size_gives_several_hf_named_files_that_read_back_equal(tmp_path):
    data = tmp_path / "data"
    _, result = clean(tmp_path, data, rows_csv(4000))
    n = len(result.files)
    assert n >= 4 and [f.name for f in result.files] == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert result.path.is_dir() and result.path.name == result.version
    assert {p.name for p in result.path.iterdir()} == {f.name for f in result.files}  # nothing else in it
    table = read(result.files)
    assert table.num_rows == result.rows_out == 4000 and hash_table(table) == result.version
    assert table["id"].to_pylist() == list(range(4000))
    for i, f in enumerate(result.files):  # T/2 <= a file's bytes, and under 2T before its last row
        sizes = row_stats(pq.read_table(f))[0]
        assert sizes[:-1].sum() < 2 * FILE_SIZE and (sizes.sum() >= FILE_SIZE // 2 or i == n - 1)
    for f in result.files:
        md = pq.ParquetFile(f).metadata
        assert md.num_row_groups == 1  # a file far under ROW_GROUP_BYTES is one row group
        assert md.row_group(0).column(0).compression == "ZSTD"
        assert b"huggingface" in md.metadata


def test_the_files_do_not_depend_on_how_the_reader_batched_the_rows(tmp_path):
    body = rows_csv(3000)
    _, small = clean(tmp_path / "a", tmp_path / "a" / "data", body, block_size=1024)  # many small batches
    _, large = clean(tmp_path / "b", tmp_path / "b" / "data", body)
    assert small.version == large.version and len(small.files) > 2
    assert digests(small.files) == digests(large.files)


def test_row_groups_end_by_bytes_from_the_file_start_and_at_100_rows_with_media(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet_files, "ROW_GROUP_BYTES", 8 << 10)
    texts = [("x" * (i % 300)) + str(i) for i in range(6000)]
    table = pa.table({"id": pa.array(range(6000), pa.int64()), "text": texts})
    (tmp_path / "a").mkdir()
    writer = ParquetFiles(tmp_path / "a", table.schema, file_size=FILE_SIZE)
    for batch in table.to_batches(max_chunksize=777):
        writer.write(batch)
    files = writer.close()
    assert len(files) > 2 and read(files).equals(table)
    for f in files:
        pf = pq.ParquetFile(f)
        groups = [pf.read_row_group(g) for g in range(pf.num_row_groups)]
        for group in groups[:-1]:  # each ends at the first row where its bytes reach ROW_GROUP_BYTES
            sizes = row_stats(group)[0]
            assert sizes.sum() >= 8 << 10 > sizes[:-1].sum()
        assert row_stats(groups[-1])[0][:-1].sum() < 8 << 10
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    media = pa.table({"image": pa.array([{"bytes": bytes([i % 256]) * 50, "path": f"{i}.png"} for i in range(250)],
                                        image)})
    (tmp_path / "m").mkdir()
    writer = ParquetFiles(tmp_path / "m", media.schema, file_size=FILE_SIZE, media=True)
    for batch in media.to_batches(max_chunksize=64):
        writer.write(batch)
    (only,) = writer.close()
    md = pq.ParquetFile(only).metadata
    assert [md.row_group(g).num_rows for g in range(md.num_row_groups)] == [100, 100, 50]


def test_appending_rows_changes_only_the_last_files(tmp_path):
    data = tmp_path / "data"
    raw, first = clean(tmp_path, data, rows_csv(10000))
    raw.write_text("id,text,label\n" + rows_csv(10000) + rows_csv(100, start=10000))  # 1 % more rows
    second = clean_dataset(spec_from(tmp_path, entry()), data)
    assert second.version != first.version and second.rows_out == 10100
    old, new = digests(first.files), digests(second.files)
    assert len(old) >= 10
    assert new[:len(old) - 1] == old[:-1]  # every file but the last is the same bytes, under the same index
    assert len(set(new) - set(old)) <= 2
    assert hash_table(read(second.files)) == second.version


def test_editing_one_contiguous_region_changes_only_the_files_around_it(tmp_path):
    data = tmp_path / "data"
    raw, first = clean(tmp_path, data, rows_csv(10000))
    raw.write_text("id,text,label\n" + rows_csv(10000, edit=range(5000, 5100)))  # 1 % of rows, in the middle
    second = clean_dataset(spec_from(tmp_path, entry()), data)
    old, new = digests(first.files), digests(second.files)
    changed = [i for i, d in enumerate(new) if d not in set(old)]
    assert second.version != first.version and len(old) >= 10 and 1 <= len(changed) <= 3
    assert new[:changed[0]] == old[:changed[0]]  # before the edit: the same files
    tail = len(new) - changed[-1] - 1
    assert tail >= len(new) // 3 and new[-tail:] == old[-tail:]  # after it: resynchronised, the same files


def test_another_file_size_recuts_the_same_version_and_going_back_recuts_again(tmp_path):
    data = tmp_path / "data"
    _, small = clean(tmp_path, data, rows_csv(3000))
    big = clean_dataset(spec_from(tmp_path, entry("1GiB")), data)
    assert big.version == small.version and not big.reused and len(big.files) == 1 < len(small.files)
    assert list(big.path.iterdir()) == list(big.files)
    again = clean_dataset(spec_from(tmp_path, entry()), data)
    assert not again.reused and digests(again.files) == digests(small.files)
    assert clean_dataset(spec_from(tmp_path, entry()), data).reused


@pytest.mark.parametrize("kind", ["local", "s3", "hub"])
def test_the_files_round_trip_through_every_remote_and_hash_as_one_file(kind, tmp_path, request):
    """The acceptance test: several content-defined files published, read back by round_trip (and by
    `datasets.load_dataset` from the Hub), with the content hash of one file of the same rows."""
    body = rows_csv(3000)
    data = tmp_path / "data"
    _, cleaned = clean(tmp_path, data, body)
    _, single = clean(tmp_path / "one", tmp_path / "one" / "data", body, file_size="1GiB")
    assert len(cleaned.files) > 2 and len(single.files) == 1 and single.version == cleaned.version
    remote = make_remote(kind, tmp_path, request)
    spec = spec_from(tmp_path, entry())
    outcome = publish_cleaned(spec, remote, cleaned, data_dir=data)
    names = [f"data/{f.name}" for f in cleaned.files]
    assert set(names) <= set(outcome.files) and set(names) <= set(remote.list_files(outcome.commit))
    for name, f in zip(names, cleaned.files, strict=True):
        assert remote.read_file(outcome.commit, name) == f.read_bytes()
    published = PublishedVersion(spec.name, outcome.tag, outcome.commit, outcome.url, outcome.content_hash,
                                 outcome.rows)
    check = check_round_trip(lambda: remote, published, cleaned, data_dir=data)
    assert check.passed, check.text
    check = check_round_trip(lambda: remote, published, single, data_dir=data)  # one file's hash: the same
    assert check.passed, check.text
    assert hash_table(remote.load_table(outcome.commit)) == single.version
    again = publish_cleaned(spec, remote, single, data_dir=data)
    assert not again.new and again.bytes_uploaded == 0  # the same content is the same version
    if kind == "hub":
        server = request.getfixturevalue("hub_server")
        assert load_from_hub(server.url, remote.repo_id, outcome.commit, tmp_path) == list(range(3000))


LOAD = """
import json, sys
import datasets
ds = datasets.load_dataset(sys.argv[1], revision=sys.argv[2], split="train")
print(json.dumps(list(ds["id"])))
"""


def load_from_hub(url: str, repo: str, commit: str, tmp_path: Path) -> list[int]:
    env = {**os.environ, "HF_ENDPOINT": url, "HF_TOKEN": HUB_TOKEN, "HF_HOME": str(tmp_path / "hf-load"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_DATASETS_CACHE", "HF_HUB_CACHE"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, "-c", LOAD, repo, commit], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("value", ["12", "1 potato", -5, True, "10KiB", 1000, [64], "64 KiB x"])
def test_a_bad_file_size_is_one_line_naming_the_key(value, tmp_path):
    with pytest.raises(RegistryError) as info:
        spec_from(tmp_path, entry(value))
    lines = [line for line in str(info.value).splitlines() if "file_size" in line]
    assert len(lines) == 1
    assert re.search(r"datasets\[0\]\.cleaning\.file_size: expected auto or a size in bytes >= 64 KiB .*got", lines[0])


@pytest.mark.parametrize(("value", "size"), [("64KiB", 64 << 10), ("256MiB", 256 << 20), ("1GB", 10**9),
                                             (1 << 20, 1 << 20)])
def test_file_size_takes_the_shards_size_syntax(value, size, tmp_path):
    assert spec_from(tmp_path, entry(value)).cleaning.file_size == size
    assert spec_from(tmp_path, csv_entry()).cleaning.file_size is None  # auto
    assert spec_from(tmp_path, entry("auto")).cleaning.file_size is None


def test_auto_file_size_is_a_power_of_two_near_a_64th_of_the_raw_bytes_within_16_and_256_mib():
    assert auto_file_size(0) == auto_file_size(10**6) == 16 << 20
    assert auto_file_size(5 * 10**9) == 64 << 20  # 78 MB wanted
    assert auto_file_size(5 * 10**9) == auto_file_size(int(5.05 * 10**9))  # a 1 % append keeps every cut
    assert auto_file_size(10**12) == 256 << 20
