from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsm_assets.cli import main
from dsm_assets.layout import DATA_PATH, cache_root
from dsm_assets.preflight import offline_probe, preflight
from dsm_assets.registry import DEFAULT_REGISTRY

from .caching import cache_latest, edit_chords, publish_and_verify
from .conftest import shipped_entries, spec_from


@pytest.fixture
def cached(data_dir, shipped):
    """Both sample datasets published, verified and cached."""
    return {s.name: cache_latest(publish_and_verify(s, data_dir), data_dir) for s in shipped.datasets}


def dsm(*args: str, env: dict | None = None, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "dsm"
    return subprocess.run([*prefix, str(exe), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_ready_after_caching_and_missing_before(data_dir, shipped, capsys):
    assert preflight(shipped.get("chords"), data_dir).status == "missing"
    assert main(["preflight"]) == 1
    assert "chords: missing: no cache in" in capsys.readouterr().err
    for spec in shipped.datasets:
        cache_latest(publish_and_verify(spec, data_dir), data_dir)
    assert main(["preflight", "--deep"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Dataset", "Version", "Cache", "Status"]
    assert [ln.split()[0::3] for ln in lines[2:]] == [["text_reviews", "ready"], ["chords", "ready"],
                                                      ["shapes", "ready"], ["chord_tones", "ready"]]


def test_truncated_file_fails_naming_the_file(cached, data_dir, capsys):
    path = cached["chords"].path / DATA_PATH
    with open(path, "r+b") as f:
        f.truncate(100)
    assert main(["preflight", "chords"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("chords: corrupt: ") and f"{DATA_PATH} is 100 bytes, the manifest says" in err


def test_flipped_byte_is_caught_by_deep_only(cached, data_dir, capsys):
    path = cached["chords"].path / DATA_PATH
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))
    assert main(["preflight", "chords"]) == 0
    assert main(["preflight", "chords", "--deep"]) == 1
    assert "does not match its sha256 in the manifest (corrupted)" in capsys.readouterr().err


def test_deleted_cache_and_deleted_manifest(cached, data_dir, shipped, capsys):
    (cached["text_reviews"].path / "cache_manifest.json").unlink()
    import shutil

    shutil.rmtree(cache_root(shipped.get("chords"), data_dir))
    assert main(["preflight", "--json"]) == 1
    got = {r["dataset"]: (r["status"], r["reason"]) for r in json.loads(capsys.readouterr().out)}
    assert got["text_reviews"][0] == "corrupt" and "cache_manifest.json is missing" in got["text_reviews"][1]
    assert got["chords"][0] == "missing"


def test_stale_after_a_new_version_is_published_and_verified(cached, data_dir, shipped, capsys):
    edit_chords(data_dir, 5)
    p = publish_and_verify(shipped.get("chords"), data_dir)
    assert p.outcome.tag == "v1.1"
    state = preflight(shipped.get("chords"), data_dir)
    assert (state.status, state.version) == ("stale", "v1.0")
    assert "cache holds v1.0" in state.reason and "but v1.1 is the latest verified version" in state.reason
    assert main(["preflight", "chords"]) == 1


def test_a_pin_in_the_registry_is_what_preflight_expects(cached, tmp_path, data_dir):
    entries = shipped_entries()
    entries[1]["pin"] = "v1.0"
    assert preflight(spec_from(tmp_path, entries[1]), data_dir).ready
    entries[1]["pin"] = "v2.0"
    state = preflight(spec_from(tmp_path, entries[1]), data_dir)
    assert state.status == "stale" and "v2.0 is pinned in the registry" in state.reason


def test_unknown_dataset_and_bad_registry_exit_2(cached, tmp_path):
    done = dsm("preflight", "nope")
    assert done.returncode == 2
    assert "no dataset named 'nope' (registered: text_reviews, chords, shapes, chord_tones)" in done.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [")
    done = dsm("preflight", env={"DSM_REGISTRY": str(bad)})
    assert done.returncode == 2 and "malformed YAML" in done.stderr and "Traceback" not in done.stderr
    assert dsm("preflight", "--bogus").returncode == 2


def test_preflight_deep_without_a_network_namespace(cached):
    done = dsm("preflight", "--deep", prefix=("unshare", "--net"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" ready") == 3


def test_preflight_imports_neither_dagster_nor_hub_clients_nor_pyarrow(cached):
    code = ("import sys; from dsm_assets.cli import main; rc = main(['preflight', '--deep']); "
            "heavy = [m for m in ('dagster', 'datasets', 'huggingface_hub', 'boto3', 'pyarrow', 'numpy') "
            "if m in sys.modules]; "
            "print(rc, heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr


def test_offline_probe_loads_with_no_network(cached, data_dir, shipped):
    ok, how = offline_probe(shipped.get("chords"), data_dir, DEFAULT_REGISTRY)
    assert ok and how.startswith(f"loaded {cached['chords'].rows} rows offline")


@pytest.mark.parametrize("garbage", [b"garbage{", b"[]", b"{}", b'"x"', b"\xff\xfe", b'{"dataset": "chords"}'])
def test_a_corrupt_verified_record_is_never_ready_and_never_a_traceback(cached, data_dir, shipped, capsys, garbage):
    from dsm_assets import load
    from dsm_assets.errors import CacheError
    from dsm_assets.layout import verified_record

    record = verified_record(data_dir, "chords")
    record.write_bytes(garbage)
    state = preflight(shipped.get("chords"), data_dir)
    assert state.status == "corrupt" and str(record) in state.reason and "round_trip" in state.reason
    assert main(["preflight", "chords"]) == 1
    err = capsys.readouterr().err
    assert "chords: corrupt:" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CacheError, match="dsm preflight chords"):
        load("chords", data_dir=data_dir, registry=shipped)
