from __future__ import annotations

import json
import os
import time
from pathlib import Path

import xxhash

from dsm_assets.fingerprint import fingerprint_files


def make_tree(root: Path) -> list[Path]:
    files = []
    for name, content in [("a.csv", b"x,y\n1,2\n"), ("sub/b.csv", b"x,y\n3,4\n")]:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        old = time.time() - 60  # older than the racy window, so the stat cache may keep it
        os.utime(p, (old, old))
        files.append(p)
    return files


def test_same_content_same_fingerprint_in_another_place(tmp_path):
    a = fingerprint_files(make_tree(tmp_path / "one"), tmp_path / "one")
    b = fingerprint_files(make_tree(tmp_path / "two"), tmp_path / "two")
    assert a.digest == b.digest and a.files == 2 and a.bytes == 16


def test_content_and_name_changes_change_the_fingerprint(tmp_path):
    files = make_tree(tmp_path)
    before = fingerprint_files(files, tmp_path).digest
    files[0].write_bytes(b"x,y\n1,3\n")
    edited = fingerprint_files(files, tmp_path).digest
    renamed = files[0].rename(tmp_path / "c.csv")
    after_rename = fingerprint_files([renamed, files[1]], tmp_path).digest
    assert len({before, edited, after_rename}) == 3


def test_stat_cache_skips_unchanged_files_and_notices_edits(tmp_path):
    files = make_tree(tmp_path / "d")
    cache = tmp_path / "cache.json"
    first = fingerprint_files(files, tmp_path / "d", cache)
    second = fingerprint_files(files, tmp_path / "d", cache)
    assert (first.rehashed, second.rehashed) == (2, 0) and first.digest == second.digest
    files[1].write_bytes(b"x,y\n3,5\n")  # same size, new mtime
    third = fingerprint_files(files, tmp_path / "d", cache)
    assert third.rehashed == 1 and third.digest != first.digest


def test_recently_modified_files_are_not_trusted_from_the_cache(tmp_path):
    path = tmp_path / "fresh.csv"
    path.write_bytes(b"a\n1\n")  # mtime is now: inside the racy window
    cache = tmp_path / "cache.json"
    fingerprint_files([path], tmp_path, cache)
    assert fingerprint_files([path], tmp_path, cache).rehashed == 1


def test_damaged_cache_only_costs_a_reread(tmp_path):
    files = make_tree(tmp_path / "d")
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    assert fingerprint_files(files, tmp_path / "d", cache).rehashed == 2


def test_a_flipped_digest_in_the_stat_cache_is_not_trusted(tmp_path):
    # before: an entry whose stat still matched was trusted, so a flipped digest gave the raw files a wrong
    # fingerprint for as long as they were not touched; and an entry of the wrong shape was a TypeError
    files = make_tree(tmp_path / "d")
    cache = tmp_path / "cache.json"
    good = fingerprint_files(files, tmp_path / "d", cache)
    text = cache.read_text()
    digest = json.loads(text)["entries"]["a.csv"][2]
    cache.write_text(text.replace(digest, ("0" if digest[0] != "0" else "1") + digest[1:]))
    again = fingerprint_files(files, tmp_path / "d", cache)
    assert (again.rehashed, again.digest) == (2, good.digest)
    for entry in ([1, 2], 5, "x", [1.5, 2, "d"], None):
        entries = {"a.csv": entry}  # hashed right, so only the shape check stands between it and a traceback
        cache.write_text(json.dumps({"entries": entries, "xxh3_128": xxhash.xxh3_128_hexdigest(
            json.dumps(entries, sort_keys=True).encode())}))
        assert fingerprint_files(files, tmp_path / "d", cache).digest == good.digest
