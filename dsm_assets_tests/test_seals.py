"""A manifest's self-hash stays what it was when written: manifests already on disk must still verify."""

from __future__ import annotations

import hashlib

import xxhash

from dsm_assets import cache, seals
from dsm_assets.shards import sealed

MANIFEST = {"dataset": "shapes", "version": "v1.0", "rows": 3, "name": "é",
            "files": {"data/x.parquet": {"size": 5, "sha256": "ab"}}}


def test_self_hashes_are_pinned_for_both_manifests():
    assert seals.self_hash(MANIFEST, cache.SELF_HASH, hashlib.sha256) == (
        "37b61207fe6e97ef6d73f757cf83b8adfe4715c3d9d23be595d319732fb6b15c")
    assert sealed(MANIFEST)["manifest_xxh3_128"] == "ae59725ad6b3d762148764d16b51eb6c"


def test_self_hash_ignores_its_own_key_only():
    stamped = {**MANIFEST, "manifest_xxh3_128": "anything"}
    assert seals.self_hash(stamped, "manifest_xxh3_128", xxhash.xxh3_128) == seals.self_hash(
        MANIFEST, "manifest_xxh3_128", xxhash.xxh3_128)
    assert seals.self_hash(stamped, "other", xxhash.xxh3_128) != seals.self_hash(MANIFEST, "other", xxhash.xxh3_128)
