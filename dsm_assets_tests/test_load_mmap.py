"""`dsm_assets.load` memory-maps the version's Arrow copy (arrow_cache): written by the cache hop, reused,
rebuilt when broken or stale, converted offline, and in $TMPDIR when the cache cannot be written."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys

import pytest

import dsm_assets
from dsm_assets import arrow_cache
from dsm_assets.cache import read_manifest
from dsm_assets.contenthash import hash_table
from dsm_assets.layout import cache_arrow_file, cache_arrow_seal
from dsm_assets.preflight import preflight

from .caching import cache_latest, publish_and_verify


@pytest.fixture
def cached(data_dir, shipped):
    p = publish_and_verify(shipped.get("chords"), data_dir)
    return p, cache_latest(p, data_dir).path


def mapped(ds):
    from datasets.table import MemoryMappedTable

    return isinstance(ds._data, MemoryMappedTable) and ds._data.path


def test_the_cache_hop_writes_the_arrow_copy_outside_the_manifest(cached, data_dir):
    p, folder = cached
    arrow = cache_arrow_file(folder)
    assert arrow.is_file() and arrow.parent.name.startswith(".")
    manifest = read_manifest(folder)
    assert not any(path.startswith(".arrow") for path in manifest["files"])
    assert arrow_cache.folder_problem(folder, manifest) is None
    assert preflight(p.spec, data_dir, deep=True).ready
    shutil.rmtree(arrow.parent)  # a version cached before the copy existed: the next refresh writes it
    assert not cache_latest(p, data_dir).refreshed and arrow_cache.folder_problem(folder, manifest) is None


def test_load_memory_maps_the_copy_and_reuses_it(cached):
    p, folder = cached
    arrow = cache_arrow_file(folder)
    before = arrow.stat()
    ds = dsm_assets.load("chords")
    assert mapped(ds) == str(arrow) and ds.num_rows == p.outcome.rows
    assert all(op != "cast" for op, *_ in ds._data.replays)  # features match the file's schema: no cast
    assert hash_table(ds.data.table) == p.outcome.content_hash
    again = dsm_assets.load("chords")
    assert mapped(again) == str(arrow)
    assert (arrow.stat().st_ino, arrow.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert ds._fingerprint == p.outcome.content_hash


def test_a_missing_corrupt_or_stale_copy_is_rebuilt(cached):
    p, folder = cached
    arrow, seal = cache_arrow_file(folder), cache_arrow_seal(folder)
    shutil.rmtree(arrow.parent)
    assert mapped(dsm_assets.load("chords")) == str(arrow)  # converted on first load
    written = arrow.stat().st_mtime_ns
    assert dsm_assets.load("chords").num_rows == p.outcome.rows and arrow.stat().st_mtime_ns == written
    raw = bytearray(arrow.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 32] = bytes(32)  # same size: the changed mtime makes the seal re-hash
    arrow.write_bytes(bytes(raw))
    assert "content changed" in arrow_cache.folder_problem(folder, read_manifest(folder))
    ds = dsm_assets.load("chords")
    assert hash_table(ds.data.table) == p.outcome.content_hash and arrow_cache.folder_problem(
        folder, read_manifest(folder)) is None
    stale = json.loads(seal.read_text())
    seal.write_text(json.dumps({**stale, "content_hash": "0" * 32}))
    assert "holds other data" in arrow_cache.folder_problem(folder, read_manifest(folder))
    assert hash_table(dsm_assets.load("chords").data.table) == p.outcome.content_hash
    assert json.loads(seal.read_text())["content_hash"] == p.outcome.content_hash


def test_a_read_only_cache_converts_in_tmpdir_then_in_memory(cached, tmp_path, monkeypatch, caplog):
    import tempfile

    p, folder = cached
    shutil.rmtree(cache_arrow_file(folder).parent)
    real = arrow_cache.write

    def read_only(parquets, arrow, seal_path, **kw):  # root ignores permissions: refuse writes in the cache
        if folder in arrow.parents:
            raise OSError(errno.EROFS, "Read-only file system", str(arrow))
        return real(parquets, arrow, seal_path, **kw)

    monkeypatch.setattr(arrow_cache, "write", read_only)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node-tmp"))
    (tmp_path / "node-tmp").mkdir()
    with caplog.at_level(logging.WARNING, logger="dsm_assets.loading"):
        ds = dsm_assets.load("chords")
    where = tmp_path / "node-tmp" / f"dsm-load-{os.getuid()}-{p.outcome.content_hash[:16]}"
    assert mapped(ds) == str(where / "train.arrow") and ds.num_rows == p.outcome.rows
    assert "is not writable (Read-only file system); converting chords v1.0 to" in caplog.text
    assert not cache_arrow_file(folder).exists()
    caplog.clear()
    assert mapped(dsm_assets.load("chords")) == str(where / "train.arrow") and not caplog.text  # reused
    shutil.rmtree(where)
    monkeypatch.setattr(arrow_cache, "write", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with caplog.at_level(logging.WARNING, logger="dsm_assets.loading"):
        ds = dsm_assets.load("chords")
    assert not mapped(ds) and hash_table(ds.data.table) == p.outcome.content_hash
    assert "reading chords v1.0 into memory" in caplog.text


def test_conversion_at_load_needs_no_network(cached):
    p, folder = cached
    shutil.rmtree(cache_arrow_file(folder).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    code = "import dsm_assets; ds = dsm_assets.load('chords'); print(ds.num_rows, ds._data.path)"
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == [str(p.outcome.rows), str(cache_arrow_file(folder))]
