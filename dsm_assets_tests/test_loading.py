from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import dsm_assets
from dsm_assets.contenthash import hash_table
from dsm_assets.errors import CacheError
from dsm_assets.layout import cache_arrow_file

from .caching import cache_latest, edit_chords, publish_and_verify


def test_load_returns_a_datasets_dataset_from_the_cache(data_dir, shipped):
    p = publish_and_verify(shipped.get("chords"), data_dir)
    cache_latest(p, data_dir)
    ds = dsm_assets.load("chords")
    assert type(ds).__name__ == "Dataset" and ds.num_rows == p.outcome.rows
    assert ds.column_names == list(shipped.get("chords").schema)
    assert isinstance(ds[0]["chord_layer_basic"], list)


def test_load_an_older_cached_version(data_dir, shipped):
    spec = shipped.get("chords")
    v10 = publish_and_verify(spec, data_dir)
    cache_latest(v10, data_dir)
    edit_chords(data_dir, 4)
    cache_latest(publish_and_verify(spec, data_dir), data_dir)
    old, new = dsm_assets.load("chords", "v1.0"), dsm_assets.load("chords")
    assert old["tempo"][0] != new["tempo"][0]
    with pytest.raises(CacheError, match=r"chords: version 'v0\.9' is not in the cache \(cached: v1\.0, v1\.1\); "
                                         r"run `dsm preflight chords`"):
        dsm_assets.load("chords", "v0.9")


def test_missing_and_stale_caches_raise_naming_dataset_and_command(data_dir, shipped):
    with pytest.raises(CacheError, match=r"^chords: cache is missing: .*Run `dsm preflight chords`$"):
        dsm_assets.load("chords")
    spec = shipped.get("chords")
    cache_latest(publish_and_verify(spec, data_dir), data_dir)
    edit_chords(data_dir, 6)
    publish_and_verify(spec, data_dir)
    with pytest.raises(CacheError, match=r"^chords: cache is stale: cache holds v1\.0 .*Run `dsm preflight chords`$"):
        dsm_assets.load("chords")


def test_load_works_with_no_network_even_without_offline_env(data_dir, shipped):
    cache_latest(publish_and_verify(shipped.get("text_reviews"), data_dir), data_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    code = "import dsm_assets; print(dsm_assets.load('text_reviews').num_rows)"
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 0


def test_load_takes_only_a_version_the_cache_lists(data_dir, shipped, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cache_latest(publish_and_verify(shipped.get("chords"), data_dir), data_dir)
    planted = tmp_path / "outside" / "x-1" / "data"  # a parquet planted outside the cache
    planted.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1]}), planted / "train.parquet")
    (planted.parent / "cache_manifest.json").write_text('{"version": "x", "files": {}}')
    for bad in ("../../../../outside/x", "*", "v1", "v1.0-*", "v1.0/../v1.0"):
        with pytest.raises(CacheError, match=r"is not in the cache \(cached: v1\.0\)"):
            dsm_assets.load("chords", bad)
    assert dsm_assets.load("chords", "v1.0").num_rows > 0


def test_a_corrupt_cached_file_is_a_cache_error_naming_preflight(data_dir, shipped):
    p = publish_and_verify(shipped.get("chords"), data_dir)
    folder = cache_latest(p, data_dir).path
    [data] = sorted((folder / "data").glob("*.parquet"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)  # same size, so only a deep check would see it
    data.write_bytes(bytes(raw))
    # the Arrow copy the cache hop wrote (from the data it verified) still serves the right data ...
    assert hash_table(dsm_assets.load("chords").data.table) == p.outcome.content_hash
    # ... and when it has to be rebuilt, the corrupt parquet is named
    shutil.rmtree(cache_arrow_file(folder).parent)
    with pytest.raises(CacheError, match=r"chords: .*dsm preflight --deep chords") as info:
        dsm_assets.load("chords")
    assert "\n" not in str(info.value)
    assert not cache_arrow_file(folder).exists()
