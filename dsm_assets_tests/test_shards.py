from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds

from dsm_assets.fingerprint import hash_file
from dsm_assets.shards import (
    SELF_HASH,
    SHARDS_MANIFEST,
    ShardError,
    sealed,
    shard_urls,
    verify_shards,
    webdataset_pipeline,
    write_shards,
)
from dsm_assets.shards.checks import evaluate

from .caching import cache_latest, publish_and_verify


def checks(spec, folder, data_dir) -> dict[str, tuple[bool, str]]:
    return evaluate(spec, folder, data_dir)


def test_shards_hold_every_row_and_webdataset_reads_exactly_the_manifest_count(shapes, data_dir):
    spec, folder, manifest = shapes
    assert [s["name"] for s in manifest["shards"]] == [f"shapes-00000{i}.tar" for i in range(3)]
    assert manifest["total_samples"] == 300 and sum(s["samples"] for s in manifest["shards"]) == 300
    samples = list(wds.WebDataset(shard_urls(folder, manifest), shardshuffle=False, empty_check=False))
    assert len(samples) == manifest["total_samples"]
    first = samples[0]
    assert first["png"].startswith(b"\x89PNG") and json.loads(first["json"])["label"] in ("circle", "square",
                                                                                          "triangle")
    assert int(first["cls"]) == spec.cleaning.labels.allowed.index(json.loads(first["json"])["label"])
    assert json.loads(first["json"])["image"]["path"].endswith(".png")  # an image column: its path, not its bytes
    assert manifest["field_groups"][:2] == [["json"], ["cls"]] and "png" in manifest["field_groups"][2]
    assert manifest["fields"] == [ext for group in manifest["field_groups"] for ext in group]
    assert all(passed for passed, _ in checks(spec, folder, data_dir).values())


def test_same_data_gives_identical_shards_and_manifest(shapes, tmp_path):
    spec, folder, manifest = shapes
    again = write_shards(spec, _cache_folder(spec, manifest, tmp_path), tmp_path / "other")
    assert again.manifest == manifest
    assert [(folder / s["name"]).read_bytes() == (again.folder / s["name"]).read_bytes()
            for s in manifest["shards"]] == [True] * 3


def _cache_folder(spec, manifest, tmp_path):
    from dsm_assets.layout import cache_version_dir

    return cache_version_dir(spec, tmp_path / "data", manifest["version"], manifest["commit"])


def test_unchanged_shards_are_reused(shapes, tmp_path):
    spec, folder, manifest = shapes
    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = write_shards(spec, _cache_folder(spec, manifest, tmp_path), tmp_path / "outputs")
    assert not again.written and {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes


def test_truncated_shard_fails_integrity_naming_the_shard(shapes, data_dir):
    spec, folder, manifest = shapes
    victim = folder / manifest["shards"][1]["name"]
    with open(victim, "r+b") as f:
        f.truncate(victim.stat().st_size // 2)
    passed, text = checks(spec, folder, data_dir)["integrity"]
    assert not passed and text.startswith("shapes-000001.tar is ") and "(truncated?)" in text
    assert "shapes-000001.tar is not a readable tar (ReadError" in text


def test_flipped_byte_fails_integrity(shapes, data_dir):
    spec, folder, manifest = shapes
    victim = folder / manifest["shards"][2]["name"]
    raw = bytearray(victim.read_bytes())
    raw[3000] ^= 0x01
    victim.write_bytes(bytes(raw))
    passed, text = checks(spec, folder, data_dir)["integrity"]
    assert not passed and "shapes-000002.tar does not match its hash in the manifest (corrupted)" in text


def test_missing_shard_fails_count_and_integrity(shapes, data_dir):
    spec, folder, manifest = shapes
    (folder / manifest["shards"][0]["name"]).unlink()
    got = checks(spec, folder, data_dir)
    assert got["shard_count"] == (False, "2 of 3 listed shards present, registry expects 3")
    assert not got["integrity"][0] and "shapes-000000.tar is missing" in got["integrity"][1]


def test_manifest_that_disagrees_with_the_shards(shapes, data_dir):
    spec, folder, manifest = shapes
    manifest["shards"][0]["samples"] += 1
    manifest["total_samples"] += 1
    (folder / SHARDS_MANIFEST).write_text(json.dumps(manifest))  # edited by hand: fails its own hash
    assert {text for _, text in checks(spec, folder, data_dir).values()} == {
        f"{folder / SHARDS_MANIFEST} does not match its own hash (corrupted, or written by an older version); "
        "materialise the shards again to rewrite it"}
    (folder / SHARDS_MANIFEST).write_text(json.dumps(sealed(manifest)))  # wrong but consistent, as a buggy writer's
    got = checks(spec, folder, data_dir)
    assert not got["integrity"][0]
    assert "shapes-000000.tar holds 100 samples, the manifest says 101" in got["integrity"][1]
    assert got["total_samples"] == (False, "shards hold 301 samples, the cached version has 300 rows")
    assert got["estimated_size"] == (False, "registry shards.estimated_size is 300, the manifest has 301; update "
                                            "the registry (readers use the manifest)")


def test_stray_temp_from_a_killed_writer_is_ignored_and_cleaned(shapes, tmp_path, data_dir):
    spec, folder, manifest = shapes
    stray = folder / ".tmp-deadbeef.tar"
    stray.write_bytes(b"half a shard")
    assert all(passed for passed, _ in checks(spec, folder, data_dir).values())  # ignored by the checks
    write_shards(spec, _cache_folder(spec, manifest, tmp_path), tmp_path / "outputs")
    assert not stray.exists()


KILL_MID_SHARD = """
import os, signal, sys
from pathlib import Path
import dsm_assets.shards as shards
from dsm_assets.registry import load_registry
from dsm_assets.shards import tar
real = tar.tar_bytes
count = []
def tar_bytes(block):
    count.append(block.n)
    if len(count) == 2:  # the second shard's first block: the first shard is complete, the second begun
        os.kill(os.getpid(), signal.SIGKILL)
    return real(block)
tar.tar_bytes = tar_bytes
shards.write_shards(load_registry().get("shapes"), Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_a_killed_writer_leaves_no_manifest_and_the_next_run_completes(data_dir, shipped, tmp_path):
    spec = shipped.get("shapes")
    cached = cache_latest(publish_and_verify(spec, data_dir), data_dir)
    outputs = tmp_path / "killed"
    done = subprocess.run([sys.executable, "-c", KILL_MID_SHARD, str(cached.path), str(outputs)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    folder = next((outputs / "shards" / "shapes").iterdir())
    assert not (folder / SHARDS_MANIFEST).exists() and any(p.name.startswith(".tmp-") for p in folder.iterdir())
    result = write_shards(spec, cached.path, outputs)
    assert result.written and not any(p.name.startswith(".tmp-") for p in folder.iterdir())
    assert all(passed for passed, _ in evaluate(spec, result.folder, data_dir).values())


def test_zero_samples(tmp_path, shipped):
    """Upstream refuses empty data (no data rows; the blocking non_empty check), but the writer copes anyway:
    one empty, valid shard and a manifest that says 0."""
    spec = shipped.get("shapes")
    cached = tmp_path / "cache" / "v1.0-000000000000"
    (cached / "data").mkdir(parents=True)
    pq.write_table(spec.arrow_schema().empty_table(), cached / "data" / "train-00000-of-00001.parquet")
    (cached / "cache_manifest.json").write_text(json.dumps({"version": "v1.0", "commit": "0" * 40,
                                                            "content_hash": "empty", "rows": 0, "files": {}}))
    result = write_shards(spec, cached, tmp_path / "outputs")
    assert result.manifest["total_samples"] == 0 and [s["samples"] for s in result.manifest["shards"]] == [0]
    assert list(wds.WebDataset(shard_urls(result.folder, result.manifest), shardshuffle=False,
                               empty_check=False)) == []


def test_reader_pipeline_takes_its_length_from_the_manifest(shapes):
    _, folder, manifest = shapes
    pipeline = webdataset_pipeline(folder, shuffle=50, seed=3)
    keys = [s["__key__"] for s in pipeline]
    assert len(pipeline) == manifest["total_samples"] == len(keys) == len(set(keys))
    assert keys != sorted(keys)  # shuffled
    (folder / manifest["shards"][0]["name"]).unlink()
    with pytest.raises(ShardError, match=r"shapes-000000\.tar is missing; re-materialise the shards asset"):
        webdataset_pipeline(folder)
    assert Path(folder).exists()


def test_a_sample_missing_its_png_fails_integrity(shapes, data_dir):
    spec, folder, manifest = shapes
    path = folder / manifest["shards"][0]["name"]
    with tarfile.open(path) as tar:
        found = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.name != "sample000000007.png"]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in found:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    manifest["shards"][0].update(bytes=path.stat().st_size, xxh3_128=hash_file(path))  # as a buggy writer's
    (folder / SHARDS_MANIFEST).write_text(json.dumps(sealed({k: v for k, v in manifest.items() if k != SELF_HASH})))
    passed, text = checks(spec, folder, data_dir)["integrity"]
    image_exts = "/".join(manifest["field_groups"][2])
    assert not passed and text == f"shapes-000000.tar: sample sample000000007 has no {image_exts} member"


def test_fast_headers_are_byte_identical_to_tarfiles():
    import random

    from dsm_assets.shards.tar import header, tar_header

    rng = random.Random(11)
    for _ in range(5000):
        name = "".join(rng.choice("abcdefghij0123456789._-") for _ in range(rng.randint(1, 100)))
        size = rng.choice([0, 1, 511, 512, 513, 8**11 - 1, rng.randrange(8**11)])
        assert header(name, size) == tar_header(name, size), (name, size)
    for fn in (header, tar_header):  # too long for USTAR: both refuse the same way
        with pytest.raises(ValueError, match="name is too long"):
            fn("x" * 101, 1)
        with pytest.raises(ValueError, match="overflow in number field"):
            fn("x", 8**11)


@pytest.mark.parametrize("kind", ["local", "s3", "hub"])
def test_shards_published_next_to_the_parquet(kind, shipped, data_dir, tmp_path, request):
    from dsm_assets.cache import refresh_cache
    from dsm_assets.cleaning import clean_dataset
    from dsm_assets.layout import DATA_PATH
    from dsm_assets.publishing import publish_cleaned
    from dsm_assets.shard_publishing import ShardsPublished, publish_shards
    from dsm_assets.versioning import latest_tag

    from .servers import make_remote

    spec = shipped.get("shapes")
    remote = make_remote(kind, tmp_path, request)
    cleaned = clean_dataset(spec, data_dir)
    out = publish_cleaned(spec, remote, cleaned,
                          data_dir=data_dir)
    cached = refresh_cache(spec, remote, tag=out.tag, commit=out.commit, data_dir=data_dir)
    sharded = write_shards(spec, cached.path, tmp_path / "outputs")
    assert publish_shards(remote, sharded.folder, sharded.manifest, cached.path) == ShardsPublished("v1.0-shards", True)
    tags = remote.tags()
    assert latest_tag(tags) == "v1.0" and tags["v1.0"] == out.commit  # versioning does not see the shards tag
    files = remote.list_files(tags["v1.0-shards"])
    assert {DATA_PATH, "shards/manifest.json", "shards/shapes-000000.tar"} <= set(files)
    first = sharded.manifest["shards"][0]["name"]
    assert remote.read_file(tags["v1.0-shards"], f"shards/{first}") == (sharded.folder / first).read_bytes()
    again = publish_shards(remote, sharded.folder, sharded.manifest, cached.path)
    assert again == ShardsPublished("v1.0-shards", new=False)  # already there, and intact
    if kind == "local":  # a flipped byte in a published shard is re-stored from the local (verified) shard
        obj = remote.object_path(tags["v1.0-shards"], f"shards/{first}")
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 0x01
        obj.write_bytes(bytes(data))
        repaired = publish_shards(remote, sharded.folder, sharded.manifest, cached.path)
        assert repaired.repaired == (f"shards/{first}",)
        assert obj.read_bytes() == (sharded.folder / first).read_bytes()
        assert remote.tags() == tags


def test_a_corrupted_shard_is_rewritten_not_reused(tmp_path, shipped, data_dir):
    spec = shipped.get("text_reviews")
    cached = cache_latest(publish_and_verify(spec, data_dir), data_dir)
    outputs = tmp_path / "outputs"
    first = write_shards(spec, cached.path, outputs)
    shard = first.folder / first.manifest["shards"][1]["name"]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: the old reuse test compared sizes only
    shard.write_bytes(bytes(data))
    again = write_shards(spec, cached.path, outputs)
    assert again.written and again.repaired and shard.name in again.repaired
    assert verify_shards(again.folder, again.manifest, deep=True) == []
    assert again.manifest_hash == first.manifest_hash  # the same data gives the same shards
    third = write_shards(spec, cached.path, outputs)
    assert not third.written and third.repaired is None
