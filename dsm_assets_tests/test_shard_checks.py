"""The shard checks in the core, called directly: no Dagster involved."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from dsm_assets.checks import CheckOutcome
from dsm_assets.shards import SHARDS_MANIFEST
from dsm_assets.shards.checks import DESCRIPTIONS, check_shards


def by_name(outcomes: list[CheckOutcome]) -> dict[str, tuple[bool, str]]:
    return {o.name: (o.passed, o.description) for o in outcomes}


def test_good_shards_pass_all_four_checks_in_order(shapes, data_dir):
    spec, folder, _ = shapes
    outcomes = check_shards(spec, folder, data_dir)
    assert [o.name for o in outcomes] == list(DESCRIPTIONS) == ["shard_count", "integrity", "total_samples",
                                                                "estimated_size"]
    assert by_name(outcomes) == {
        "shard_count": (True, "3 of 3 listed shards present, registry expects 3"),
        "integrity": (True, "3 shards verified"),
        "total_samples": (True, "shards hold 300 samples, the cached version has 300 rows"),
        "estimated_size": (True, "registry shards.estimated_size is 300, the manifest has 300"),
    }


def test_missing_shard_fails_shard_count_and_integrity_only(shapes, data_dir):
    spec, folder, manifest = shapes
    (folder / manifest["shards"][0]["name"]).unlink()
    got = by_name(check_shards(spec, folder, data_dir))
    assert got["shard_count"] == (False, "2 of 3 listed shards present, registry expects 3")
    assert not got["integrity"][0] and "shapes-000000.tar is missing" in got["integrity"][1]
    assert got["total_samples"][0] and got["estimated_size"][0]


def test_manifest_with_a_wrong_self_hash_fails_every_check_with_one_line(shapes, data_dir):
    spec, folder, manifest = shapes
    (folder / SHARDS_MANIFEST).write_text(json.dumps({**manifest, "dataset": "other"}))
    outcomes = check_shards(spec, folder, data_dir)
    assert [o.name for o in outcomes] == list(DESCRIPTIONS) and not any(o.passed for o in outcomes)
    assert {o.description for o in outcomes} == {
        f"{folder / SHARDS_MANIFEST} does not match its own hash (corrupted, or written by an older version); "
        "materialise the shards again to rewrite it"}


def test_unreadable_manifest_fails_every_check(shapes, data_dir):
    spec, folder, _ = shapes
    (folder / SHARDS_MANIFEST).write_text("{")
    outcomes = check_shards(spec, folder, data_dir)
    assert not any(o.passed for o in outcomes)
    assert all(o.description.startswith(f"manifest.json unreadable in {folder}: ") for o in outcomes)


def test_estimated_size_names_both_numbers(shapes, data_dir):
    spec, folder, _ = shapes
    off = dataclasses.replace(spec, shards=dataclasses.replace(spec.shards, estimated_size=299))
    got = by_name(check_shards(off, folder, data_dir))
    assert got.pop("estimated_size") == (False, "registry shards.estimated_size is 299, the manifest has 300; "
                                                "update the registry (readers use the manifest)")
    assert all(passed for passed, _ in got.values())
    unset = dataclasses.replace(spec, shards=dataclasses.replace(spec.shards, estimated_size=None))
    assert by_name(check_shards(unset, folder, data_dir))["estimated_size"] == (
        True, "no estimated_size in the registry")


def test_total_samples_without_the_cache_manifest(shapes, tmp_path):
    spec, folder, _ = shapes
    got = by_name(check_shards(spec, folder, tmp_path / "elsewhere"))
    assert got["total_samples"] == (False, "shards hold 300 samples, the cached version has no cache manifest")


def test_the_shard_checks_do_not_import_dagster():
    probe = "import sys, dsm_assets.shards.checks; sys.exit('dagster' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=60).returncode == 0
