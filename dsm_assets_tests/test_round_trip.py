"""The round_trip check and the version policy, as core functions (no dagster import)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from dsm_assets.errors import RemoteError, StateError
from dsm_assets.layout import verified_record
from dsm_assets.publishing import publish_cleaned
from dsm_assets.records import PublishedVersion
from dsm_assets.remotes.local import LocalRemote
from dsm_assets.round_trip import check_round_trip
from dsm_assets.state import read_verified
from dsm_assets.versioning import Wanted, wanted_version
from dsm_assets_tests.conftest import csv_entry, spec_from
from dsm_assets_tests.servers import cleaned_file, table_of


@pytest.fixture
def published(tmp_path: Path):
    spec = spec_from(tmp_path, csv_entry(name="rt"))
    data = tmp_path / "data"
    remote = LocalRemote(tmp_path / "remote")
    cleaned = cleaned_file(tmp_path / "clean" / "rt.parquet", table_of(50))
    out = publish_cleaned(spec, remote, cleaned, data_dir=data)
    version = PublishedVersion("rt", out.tag, out.commit, out.url, out.content_hash, out.rows)
    return spec, data, remote, cleaned, version


def test_a_version_that_reads_back_passes_and_becomes_the_wanted_version(published):
    spec, data, remote, cleaned, version = published
    assert wanted_version(spec, data) is None  # nothing verified yet
    outcome = check_round_trip(lambda: remote, version, cleaned, data_dir=data)
    assert outcome.passed and outcome.name == "round_trip"
    assert outcome.description.startswith("50 rows, content hash ")
    assert outcome.metadata["remote_content_hash"] == outcome.metadata["cleaned_content_hash"] == cleaned.version
    assert read_verified(data, "rt")["commit"] == version.commit
    wanted = wanted_version(spec, data)
    assert (wanted.tag, wanted.commit, wanted.pinned) == ("v1.0", version.commit, False)


def test_a_mismatch_fails_naming_rows_and_hash_and_records_nothing(published):
    _, data, remote, cleaned, version = published
    other = cleaned_file(cleaned.path.with_name("other.parquet"), table_of(49))
    outcome = check_round_trip(lambda: remote, version, other, data_dir=data)
    assert not outcome.passed
    assert "rows: remote 50 vs cleaned 49" in outcome.description and "content hash: remote " in outcome.description
    assert not verified_record(data, "rt").exists()


def test_a_remote_that_cannot_be_opened_or_read_fails_in_one_line(published):
    _, data, remote, cleaned, version = published

    def unreachable():
        raise RemoteError("remote is down")

    outcome = check_round_trip(unreachable, version, cleaned, data_dir=data)
    assert not outcome.passed and outcome.description == f"could not read {version.commit[:12]} back: remote is down"
    gone = replace(version, commit="0" * 40)
    assert not check_round_trip(lambda: remote, gone, cleaned, data_dir=data).passed


def test_the_registry_pin_wins_and_a_corrupt_verified_record_is_never_guessed(tmp_path: Path):
    data = tmp_path / "data"
    pinned = spec_from(tmp_path, csv_entry(name="rt", pin="v1.3"))
    assert wanted_version(pinned, data) == Wanted("v1.3", None, pinned=True)
    record = verified_record(data, "rt")
    record.parent.mkdir(parents=True)
    record.write_text("garbage{")
    with pytest.raises(StateError, match="verified-version record is not valid JSON"):
        wanted_version(spec_from(tmp_path, csv_entry(name="rt")), data)


def test_the_core_checks_do_not_import_dagster():
    modules = "dsm_assets.round_trip, dsm_assets.quality, dsm_assets.versioning, dsm_assets.checks"
    code = f"import sys, {modules}; print('dagster' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
