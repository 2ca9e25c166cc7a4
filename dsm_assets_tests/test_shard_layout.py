"""Shard layout options: text only in `.txt`, `fields: json`, gzip shards that plain webdataset reads, the
shard count rule (`count: auto`, `target_size`) shared by the writer and the `shard_count` check, and the
streaming integrity scan."""

from __future__ import annotations

import dataclasses
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from dsm_assets.errors import RegistryError
from dsm_assets.layout import cache_version_dir
from dsm_assets.registry import Shards
from dsm_assets.shards import shard_count, shard_urls, write_shards
from dsm_assets.shards.checks import check_shards, decoded_shards
from dsm_assets.shards.tar import scan_shard
from dsm_assets.shards.writing import AUTO_SHARDS, MIN_SHARD_BYTES, compression

from .conftest import spec_from

COMMIT = "d" * 40
MiB = 2**20


def entry(**shards) -> dict:
    return {"name": "t", "use": "tests", "source": {"path": "raw/t/*.csv", "format": "csv"},
            "schema": {"id": "int64", "text": "string", "label": "string", "score": "float64"},
            "cleaning": {"dedupe_key": ["id"], "labels": {"column": "label", "allowed": ["neg", "pos"]}},
            "shards": shards}


def cached(spec, data_dir, rows: int = 40):
    texts = [None if i == 3 else f"review {i} “quoted”" for i in range(rows)]
    table = pa.table({"id": list(range(rows)), "text": texts,
                      "label": ["neg", "pos"] * (rows // 2), "score": [i / 4 for i in range(rows)]},
                     schema=spec.arrow_schema())
    folder = cache_version_dir(spec, data_dir, "v1.0", COMMIT)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "data" / "train-00000-of-00001.parquet")
    (folder / "cache_manifest.json").write_text(json.dumps({"version": "v1.0", "commit": COMMIT, "content_hash": "x",
                                                            "rows": rows, "files": {}}))
    return folder


def test_text_is_in_txt_only_and_the_json_holds_the_rest(tmp_path, data_dir):
    spec = spec_from(tmp_path, entry(count=2))
    result = write_shards(spec, cached(spec, data_dir), tmp_path / "out")
    samples = list(wds.WebDataset(shard_urls(result.folder, result.manifest), shardshuffle=False, empty_check=False))
    assert len(samples) == 40 and result.manifest["field_groups"] == [["json"], ["cls"], ["txt"]]
    assert samples[1]["txt"].decode() == "review 1 “quoted”" and int(samples[1]["cls"]) == 1
    assert json.loads(samples[1]["json"]) == {"id": 1, "label": "pos", "score": 0.25}
    assert samples[1]["json"] == json.dumps({"id": 1, "label": "pos", "score": 0.25}, sort_keys=True).encode()
    assert json.loads(samples[3]["json"])["text"] is None and samples[3]["txt"] == b""  # null, not empty
    outcomes = check_shards(spec, result.folder, data_dir)
    assert all(o.passed for o in outcomes), outcomes


def test_fields_json_puts_every_column_in_the_json(tmp_path, data_dir):
    spec = spec_from(tmp_path, entry(count=1, fields="json"))
    result = write_shards(spec, cached(spec, data_dir), tmp_path / "out")
    samples = list(wds.WebDataset(shard_urls(result.folder, result.manifest), shardshuffle=False, empty_check=False))
    assert result.manifest["field_groups"] == [["json"]]
    assert {k for k in samples[0] if not k.startswith("__")} == {"json"}
    assert json.loads(samples[2]["json"]) == {"id": 2, "label": "neg", "score": 0.5, "text": "review 2 “quoted”"}
    assert all(o.passed for o in check_shards(spec, result.folder, data_dir))


def test_gzip_shards_are_read_by_plain_webdataset_and_are_deterministic(tmp_path, data_dir):
    spec = spec_from(tmp_path, entry(count=3, compression="gzip"))
    folder = cached(spec, data_dir)
    result = write_shards(spec, folder, tmp_path / "out")
    urls = shard_urls(result.folder, result.manifest)
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"t-00000{i}.tar.gz" for i in range(3)]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))  # unmodified webdataset
    assert [s["__key__"] for s in samples] == [f"sample{i:09d}" for i in range(40)]
    assert samples[5]["txt"] == b"review 5 \xe2\x80\x9cquoted\xe2\x80\x9d"
    with tarfile.open(urls[0]) as tar:  # and tarfile itself
        assert tar.getnames()[:3] == ["sample000000000.json", "sample000000000.cls", "sample000000000.txt"]
    again = write_shards(spec, folder, tmp_path / "other")
    assert again.manifest == result.manifest and all(
        (result.folder / s["name"]).read_bytes() == (again.folder / s["name"]).read_bytes()
        for s in result.manifest["shards"])
    assert all(o.passed for o in check_shards(spec, result.folder, data_dir, deep=True))
    victim = result.folder / result.manifest["shards"][1]["name"]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    integrity = {o.name: o for o in check_shards(spec, result.folder, data_dir)}["integrity"]
    assert not integrity.passed and "t-000001.tar.gz does not match its hash in the manifest" in integrity.description


def test_changing_the_registry_layout_rewrites_the_shards(tmp_path, data_dir):
    spec = spec_from(tmp_path, entry(count=2, compression="none"))
    folder = cached(spec, data_dir)
    first = write_shards(spec, folder, tmp_path / "out")
    gz = dataclasses.replace(spec, shards=dataclasses.replace(spec.shards, compression="gzip", count=3))
    second = write_shards(gz, folder, tmp_path / "out")
    assert second.written and "compression 'none', the registry now asks for 'gzip'" in second.repaired
    assert sorted(p.name for p in first.folder.glob("t-*")) == [f"t-00000{i}.tar.gz" for i in range(3)]
    assert not write_shards(gz, folder, tmp_path / "out").written
    wrong = {o.name: o for o in check_shards(spec, second.folder, data_dir)}["shard_count"]
    assert (wrong.passed, wrong.description) == (False, "3 of 3 listed shards present, registry expects 2")


def test_compression_auto_gzips_text_rows_and_leaves_payloads_alone(tmp_path, data_dir):
    spec = spec_from(tmp_path, entry(count=2))  # compression: auto, the default
    assert spec.shards.compression == "auto"
    result = write_shards(spec, cached(spec, data_dir), tmp_path / "out")
    assert result.manifest["compression"] == "gzip" and all(s["name"].endswith(".tar.gz")
                                                           for s in result.manifest["shards"])
    assert not write_shards(spec, cached(spec, data_dir), tmp_path / "out").written  # "auto" resolves the same
    big = dataclasses.replace(spec, shards=dataclasses.replace(spec.shards, compression="auto"))
    assert compression(big, False, 10, 10 * 4095) == "gzip" and compression(big, False, 10, 10 * 4096) == "none"
    assert compression(big, True, 10, 10) == "none"  # media or binary payloads: already compressed


def test_the_integrity_scan_counts_samples_in_pieces_of_any_size(tmp_path, data_dir):
    spec = spec_from(tmp_path, entry(count=1, compression="none"))
    result = write_shards(spec, cached(spec, data_dir, rows=300), tmp_path / "out")
    path = result.folder / result.manifest["shards"][0]["name"]
    raw = path.read_bytes()
    for chunk in (1, 100, 512, 513, 4096, 1 << 20):
        scan = scan_shard(path, chunk=chunk)
        assert (scan.samples, scan.problem, scan.bytes) == (300, None, len(raw)), chunk
    path.write_bytes(raw[:len(raw) // 2])
    assert scan_shard(path).problem == "is not a complete tar (no end-of-archive marker: truncated?)"


def test_shard_count_rule():
    auto = Shards()
    assert auto.count == "auto"
    assert shard_count(auto, samples=10, estimated_bytes=5 * MiB) == 1  # small data: one shard
    assert shard_count(auto, samples=10**6, estimated_bytes=10 * MIN_SHARD_BYTES + 5) == 10  # none under 64 MiB
    assert shard_count(auto, samples=10**7, estimated_bytes=50 * 2**30) == AUTO_SHARDS  # large: about 100
    assert shard_count(auto, samples=10**9, estimated_bytes=300 * 2**30) == 300  # huge: none over 1 GiB
    assert shard_count(auto, samples=3, estimated_bytes=50 * 2**30) == 3  # never more shards than samples
    assert shard_count(Shards(target_size=256 * 10**6), samples=10**6, estimated_bytes=10**9) == 4
    assert shard_count(Shards(count=8), samples=5, estimated_bytes=0) == 5
    assert shard_count(Shards(count=8), samples=0, estimated_bytes=0) == 1


@pytest.mark.parametrize(("shards", "problem"), [
    ({"count": "many"}, "datasets[0].shards.count: expected an integer >= 1 or auto, got 'many'"),
    ({"target_size": "lots"}, "datasets[0].shards.target_size: expected a size in bytes >= 1 MB (an integer, or "
                              "like 256MB, 1GiB), got 'lots'"),
    ({"count": 4, "target_size": "256MB"}, "datasets[0].shards.target_size: only applies with count: auto "
                                           "(count is 4); drop one"),
    ({"compression": "zstd"}, "datasets[0].shards.compression: expected one of auto, none, gzip, got 'zstd'"),
    ({"fields": "all"}, "datasets[0].shards.fields: expected one of split, json, got 'all'"),
])
def test_shard_options_are_validated_with_their_key_path(tmp_path, shards, problem):
    with pytest.raises(RegistryError) as err:
        spec_from(tmp_path, entry(**shards))
    assert problem in str(err.value) and "\n" not in str(err.value).strip()


def test_target_size_accepts_units(tmp_path):
    assert spec_from(tmp_path, entry(target_size="256MB")).shards.target_size == 256 * 10**6
    assert spec_from(tmp_path, entry(target_size="1.5 GiB")).shards.target_size == int(1.5 * 2**30)
    assert spec_from(tmp_path, entry(target_size=2**27)).shards.target_size == 2**27


def test_scan_counts_samples_from_headers_and_finds_truncation(tmp_path, data_dir):
    spec = spec_from(tmp_path, entry(count=1, compression="none"))
    result = write_shards(spec, cached(spec, data_dir, rows=400), tmp_path / "out")
    path = result.folder / result.manifest["shards"][0]["name"]
    scan = scan_shard(path, chunk=700)  # headers split across reads
    assert (scan.samples, scan.bytes, scan.xxh3_128, scan.problem) == (400, path.stat().st_size,
                                                                       result.manifest["shards"][0]["xxh3_128"], None)
    path.write_bytes(path.read_bytes()[: 512 * 200])
    assert scan_shard(path).problem == "is not a complete tar (no end-of-archive marker: truncated?)"


def test_integrity_decodes_a_sample_of_the_shards_the_same_each_time():
    manifest = {"shards": [{"name": f"s-{i:06d}.tar"} for i in range(100)], "total_samples": 1}
    picked = decoded_shards(manifest)
    assert picked[0] == "s-000000.tar" and picked[-1] == "s-000099.tar" and len(picked) == 6
    assert decoded_shards(manifest) == picked and len(decoded_shards(manifest, deep=True)) == 100
