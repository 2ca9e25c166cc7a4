from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from dsm_assets.cache import CACHE_MANIFEST, refresh_cache
from dsm_assets.contenthash import hash_table
from dsm_assets.errors import CacheError
from dsm_assets.layout import DATA_PATH, cache_root
from dsm_assets.preflight import preflight

from .caching import cache_latest, edit_chords, publish_and_verify


def test_refresh_builds_a_verified_version_folder_and_points_current_at_it(data_dir, shipped):
    p = publish_and_verify(shipped.get("chords"), data_dir)
    result = cache_latest(p, data_dir)
    root = cache_root(p.spec, data_dir)
    assert (root / "current").resolve() == result.path and result.path.name == f"v1.0-{p.outcome.commit[:12]}"
    manifest = json.loads((result.path / CACHE_MANIFEST).read_text())
    assert (manifest["dataset"], manifest["version"], manifest["commit"]) == ("chords", "v1.0", p.outcome.commit)
    assert set(manifest["files"]) == {DATA_PATH, "README.md", "dsm.json"}
    assert manifest["files"][DATA_PATH]["size"] == (result.path / DATA_PATH).stat().st_size
    assert hash_table(pq.read_table(result.path / DATA_PATH)) == p.outcome.content_hash
    assert result.refreshed and cache_latest(p, data_dir).refreshed is False  # second refresh: nothing to do


def test_cache_folder_loads_with_datasets_offline_with_no_network(data_dir, shipped):
    p = publish_and_verify(shipped.get("chords"), data_dir)
    folder = cache_latest(p, data_dir).path
    code = "import datasets, sys; print(datasets.load_dataset(sys.argv[1], split='train').num_rows)"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", code, str(folder)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == p.outcome.rows


def test_new_versions_swap_current_and_old_ones_are_pruned(data_dir, shipped):
    spec = shipped.get("chords")
    folders = []
    for marker in (None, 1, 2):
        if marker is not None:
            edit_chords(data_dir, marker)
        folders.append(cache_latest(publish_and_verify(spec, data_dir), data_dir).path)
    assert [f.name.split("-")[0] for f in folders] == ["v1.0", "v1.1", "v1.2"]
    versions = sorted(p.name.split("-")[0] for p in (cache_root(spec, data_dir) / "versions").iterdir())
    assert versions == ["v1.1", "v1.2"]  # keep=2
    assert (cache_root(spec, data_dir) / "current").resolve() == folders[-1]


def test_a_corrupted_cache_is_repaired_by_the_next_refresh(data_dir, shipped):
    p = publish_and_verify(shipped.get("chords"), data_dir)
    data_file = cache_latest(p, data_dir).path / DATA_PATH
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    assert preflight(p.spec, data_dir, deep=True).status == "corrupt"
    assert cache_latest(p, data_dir).refreshed
    assert preflight(p.spec, data_dir, deep=True).ready


def test_a_failed_download_leaves_the_old_cache_intact(data_dir, shipped):
    spec = shipped.get("chords")
    old = cache_latest(publish_and_verify(spec, data_dir), data_dir)
    edit_chords(data_dir, 7)
    p = publish_and_verify(spec, data_dir)
    obj = p.remote.object_path(p.outcome.commit, DATA_PATH)
    pq.write_table(pq.read_table(obj).slice(1), obj)  # the remote now serves data that fails verification
    with pytest.raises(CacheError, match=r"(downloaded as \d+ bytes, expected \d+|does not match its content hash "
                                         r".*); the previous cache is unchanged"):
        cache_latest(p, data_dir)
    assert (cache_root(spec, data_dir) / "current").resolve() == old.path
    assert [x.name for x in (cache_root(spec, data_dir) / "versions").iterdir()] == [old.path.name]
    state = preflight(spec, data_dir, deep=True)
    assert state.status == "stale" and state.version == "v1.0"  # old cache intact, and known to be behind


def test_a_cache_dir_that_is_not_writable(data_dir, shipped):
    p = publish_and_verify(shipped.get("chords"), data_dir)
    root = cache_root(p.spec, data_dir)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_text("a file where the cache dir should be")
    with pytest.raises(CacheError, match=r"cache/chords: cache dir is not writable \(.*\); fix its permissions or "
                                         r"change .*datasets\[1\]\.cache_dir"):
        cache_latest(p, data_dir)


KILL_DURING_REFRESH = """
import os, signal, sys
from pathlib import Path
from dsm_assets.cache import refresh_cache
from dsm_assets.registry import load_registry
from dsm_assets.remotes.local import LocalRemote
calls = []
real = LocalRemote.download
def download(self, commit, path, dest):
    real(self, commit, path, dest)
    calls.append(path)
    if len(calls) == 2:  # half-way through the files
        os.kill(os.getpid(), signal.SIGKILL)
LocalRemote.download = download
data = Path(sys.argv[1])
spec = load_registry().get("chords")
refresh_cache(spec, LocalRemote(data / "remote" / "dsm" / "chords"), tag=sys.argv[2], commit=sys.argv[3], data_dir=data)
"""


def test_kill_during_refresh_leaves_the_old_cache_passing_preflight(data_dir, shipped):
    spec = shipped.get("chords")
    old = cache_latest(publish_and_verify(spec, data_dir), data_dir)
    edit_chords(data_dir, 3)
    p = publish_and_verify(spec, data_dir)
    done = subprocess.run([sys.executable, "-c", KILL_DURING_REFRESH, str(data_dir), p.outcome.tag, p.outcome.commit],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert (cache_root(spec, data_dir) / "current").resolve() == old.path
    assert any(x.name.startswith(".tmp-") for x in (cache_root(spec, data_dir) / "versions").iterdir())
    pinned_to_old = preflight(spec, data_dir, deep=True)
    assert (pinned_to_old.status, pinned_to_old.version) == ("stale", "v1.0")  # intact, loadable, and behind
    assert not [r for r in pinned_to_old.reason.split() if r == "corrupt"]
    new = cache_latest(p, data_dir)
    assert new.refreshed and preflight(spec, data_dir, deep=True).ready
    assert not any(x.name.startswith(".tmp-") for x in (cache_root(spec, data_dir) / "versions").iterdir())


def test_refresh_never_prunes_the_current_version(data_dir, shipped):
    spec = shipped.get("chords")
    p = publish_and_verify(spec, data_dir)
    result = refresh_cache(spec, p.remote, tag=p.outcome.tag, commit=p.outcome.commit, data_dir=data_dir, keep=1)
    assert result.pruned == () and result.path.exists()


def test_a_remote_file_with_a_flipped_byte_is_refused(data_dir, shipped):
    spec = shipped.get("chords")
    old = cache_latest(publish_and_verify(spec, data_dir), data_dir)
    edit_chords(data_dir, 9)
    p = publish_and_verify(spec, data_dir)
    obj = p.remote.object_path(p.outcome.commit, DATA_PATH)
    raw = bytearray(obj.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, different bytes
    obj.write_bytes(bytes(raw))
    with pytest.raises(CacheError, match=r"(unreadable|does not match its content hash).*; the previous cache is "
                                         r"unchanged"):
        cache_latest(p, data_dir)
    assert (cache_root(spec, data_dir) / "current").resolve() == old.path


def test_pruning_keeps_the_version_that_was_current_until_now(data_dir, shipped):
    spec = shipped.get("chords")
    p = publish_and_verify(spec, data_dir)
    for marker in (21, 22):
        edit_chords(data_dir, marker)
        p = publish_and_verify(spec, data_dir)
    tags = p.remote.tags()
    for tag in ("v1.2", "v1.1"):  # v1.1 is current (pinned, say) and a job is reading it
        refresh_cache(spec, p.remote, tag=tag, commit=tags[tag], data_dir=data_dir, keep=2)
    reading = (cache_root(spec, data_dir) / "current").resolve()
    result = refresh_cache(spec, p.remote, tag="v1.0", commit=tags["v1.0"], data_dir=data_dir, keep=2)
    assert reading.exists() and reading.name.startswith("v1.1-")  # it used to prune v1.1 and keep v1.2
    assert [name.split("-")[0] for name in result.pruned] == ["v1.2"]
