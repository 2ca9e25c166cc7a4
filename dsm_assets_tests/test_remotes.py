"""The contract every remote keeps: `RemoteContract` holds the tests, and one small subclass per remote
supplies the `remote` fixture and the capability flags: local, hub (loopback server: Git LFS for parquet as
on the Hub), hub-regular (a server taking every file as a regular git file) and s3 (moto server)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub.utils._http
import pyarrow as pa
import pytest

from dsm_assets.contenthash import hash_table
from dsm_assets.errors import ConcurrentPublishError, RemoteCorruptError, RemoteError, RemoteNotFoundError
from dsm_assets.layout import DATA_PATH, INFO_PATH
from dsm_assets.publishing import publish_cleaned
from dsm_assets.remotes.base import Remote
from dsm_assets.remotes.hub import HubRemote
from dsm_assets.remotes.local import LocalRemote
from dsm_assets.remotes.s3 import S3Remote

from .conftest import csv_entry, spec_from
from .servers import BUCKET, HUB_TOKEN, cleaned_file, make_remote, table_of


def publish(spec, remote, tmp_path, table: pa.Table, name: str = "a"):
    ref = cleaned_file(tmp_path / "clean" / f"{name}.parquet", table)
    return publish_cleaned(spec, remote, ref, data_dir=tmp_path / "data"), ref


def closed_port() -> int:
    """A loopback port nobody listens on: a connection to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(remote: Remote, op: str, commit: str, path: str, tmp_path: Path) -> object:
    """One read operation by name, so a test runs it for each of list_files, read_file and download."""
    if op == "list_files":
        return remote.list_files(commit)
    if op == "read_file":
        return remote.read_file(commit, path)
    return remote.download(commit, path, tmp_path / "downloaded")


READS = ["list_files", "read_file", "download"]
UNKNOWN_COMMIT = "0123456789abcdef0123456789abcdef01234567"


class RemoteContract:
    """The tests every remote passes. A subclass overrides `remote` (an empty repo of its kind) and `broken`
    (one whose storage fails below it: an OS error or a transport failure), and sets the flags below."""

    counts_bytes_exactly = True  # bytes_uploaded is the size of the new files (the Hub may count some twice)

    @pytest.fixture
    def remote(self, tmp_path, request) -> Remote:
        raise NotImplementedError

    @pytest.fixture
    def broken(self, tmp_path, request) -> Remote:
        raise NotImplementedError

    @pytest.fixture
    def spec(self, tmp_path):
        return spec_from(tmp_path, csv_entry(name="contract"))

    def test_first_publish_is_v1_0_and_readable(self, remote, spec, tmp_path):
        outcome, ref = publish(spec, remote, tmp_path, table_of(50))
        assert (outcome.tag, outcome.new, outcome.rows) == ("v1.0", True, 50)
        assert remote.tags() == {"v1.0": outcome.commit} and remote.resolve("v1.0") == outcome.commit
        files = remote.list_files(outcome.commit)
        assert {DATA_PATH, "README.md", INFO_PATH} <= set(files)
        assert files[DATA_PATH] == ref.path.stat().st_size
        assert remote.read_file(outcome.commit, DATA_PATH) == ref.path.read_bytes()
        info = json.loads(remote.read_file(outcome.commit, INFO_PATH))
        assert (info["version"], info["content_hash"], info["rows"]) == ("v1.0", ref.version, 50)
        table = remote.load_table(outcome.commit)
        assert table.num_rows == 50 and hash_table(table) == ref.version

    def test_unchanged_content_publishes_nothing(self, remote, spec, tmp_path):
        first, _ = publish(spec, remote, tmp_path, table_of(20))
        again, _ = publish(spec, remote, tmp_path, table_of(20), name="b")  # same content, another file
        assert (again.new, again.tag, again.commit, again.bytes_uploaded) == (False, "v1.0", first.commit, 0)
        assert remote.tags() == {"v1.0": first.commit}

    def test_new_content_is_a_minor_bump_and_old_versions_stay_readable(self, remote, spec, tmp_path):
        v10, ref10 = publish(spec, remote, tmp_path, table_of(20))
        v11, ref11 = publish(spec, remote, tmp_path, table_of(25), name="b")
        assert (v11.tag, v11.new) == ("v1.1", True) and v11.commit != v10.commit
        assert remote.tags() == {"v1.0": v10.commit, "v1.1": v11.commit}
        assert hash_table(remote.load_table(v10.commit)) == ref10.version
        assert hash_table(remote.load_table(v11.commit)) == ref11.version
        card = remote.read_file(v11.commit, "README.md").decode()
        assert "| v1.1 |" in card and "| v1.0 |" in card and "path: data/train-*.parquet" in card

    def test_schema_change_is_a_major_bump(self, remote, spec, tmp_path):
        publish(spec, remote, tmp_path, table_of(10))
        widened = table_of(10).append_column("score", pa.array([0.5] * 10))
        v20, _ = publish(spec, remote, tmp_path, widened, name="b")
        assert v20.tag == "v2.0"

    def test_a_concurrent_writer_is_rejected_and_nothing_of_it_is_promoted(self, remote, spec, tmp_path):
        v10, _ = publish(spec, remote, tmp_path, table_of(10))
        winner = cleaned_file(tmp_path / "clean" / "w.parquet", table_of(11))
        loser = cleaned_file(tmp_path / "clean" / "l.parquet", table_of(12))
        files = lambda ref: {DATA_PATH: ref.path}  # noqa: E731
        won = remote.publish(files(winner), tag="v1.1", parent=v10.commit, message="winner")
        with pytest.raises(ConcurrentPublishError, match="another writer"):
            remote.publish(files(loser), tag="v1.1", parent=v10.commit, message="same tag")
        with pytest.raises(ConcurrentPublishError, match="another writer"):
            remote.publish(files(loser), tag="v1.2", parent=v10.commit, message="stale parent")
        assert remote.tags() == {"v1.0": v10.commit, "v1.1": won.commit}
        assert remote.read_file(won.commit, DATA_PATH) == winner.path.read_bytes()

    def test_unknown_version_names_what_exists(self, remote, spec, tmp_path):
        publish(spec, remote, tmp_path, table_of(5))
        with pytest.raises(RemoteNotFoundError, match=r"no version 'v9\.9' \(published: v1\.0\)"):
            remote.resolve("v9.9")

    def test_download_writes_the_exact_bytes(self, remote, spec, tmp_path):
        outcome, ref = publish(spec, remote, tmp_path, table_of(30))
        for path in remote.list_files(outcome.commit):
            dest = tmp_path / "down" / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            remote.download(outcome.commit, path, dest)
            assert dest.read_bytes() == remote.read_file(outcome.commit, path), path
        assert (tmp_path / "down" / DATA_PATH).read_bytes() == ref.path.read_bytes()

    def test_bytes_uploaded_counts_what_was_sent(self, remote, spec, tmp_path):
        outcome, _ = publish(spec, remote, tmp_path, table_of(40))
        total = sum(remote.list_files(outcome.commit).values())
        if self.counts_bytes_exactly:
            assert outcome.bytes_uploaded == total
        else:
            assert outcome.bytes_uploaded >= total

    @pytest.mark.parametrize("op", READS)
    def test_an_unknown_commit_is_not_found(self, remote, spec, tmp_path, op):
        publish(spec, remote, tmp_path, table_of(5))
        with pytest.raises(RemoteNotFoundError):
            call(remote, op, UNKNOWN_COMMIT, DATA_PATH, tmp_path)

    @pytest.mark.parametrize("op", ["read_file", "download"])
    def test_an_unknown_path_at_a_known_commit_is_not_found(self, remote, spec, tmp_path, op):
        outcome, _ = publish(spec, remote, tmp_path, table_of(5))
        with pytest.raises(RemoteNotFoundError):
            call(remote, op, outcome.commit, "data/missing.parquet", tmp_path)

    @pytest.mark.parametrize("op", [*READS, "publish"])
    def test_a_failing_store_is_one_remote_error_naming_the_remote(self, broken, tmp_path, op):
        data = cleaned_file(tmp_path / "clean" / "a.parquet", table_of(5)).path
        with pytest.raises(RemoteError) as raised:
            if op == "publish":
                broken.publish({DATA_PATH: data}, tag="v1.0", parent=None, message="m")
            else:
                call(broken, op, UNKNOWN_COMMIT, DATA_PATH, tmp_path)
        assert not isinstance(raised.value, RemoteNotFoundError)  # a failure, not an answer
        assert str(raised.value).startswith(broken.url) and "\n" not in str(raised.value)


class TestLocalRemote(RemoteContract):
    @pytest.fixture
    def remote(self, tmp_path, request) -> Remote:
        return make_remote("local", tmp_path, request)

    @pytest.fixture
    def broken(self, tmp_path, request) -> Remote:
        """A remote whose root is a file: every path under it fails with NotADirectoryError."""
        (tmp_path / "remote").write_text("not a folder")
        return LocalRemote(tmp_path / "remote")

    @pytest.mark.parametrize("op", ["read_file", "download", "load_table"])
    @pytest.mark.parametrize("damage", ["removed", "a folder"])
    def test_an_object_removed_or_replaced_by_a_folder_is_one_line(self, remote, spec, tmp_path, op, damage):
        outcome, _ = publish(spec, remote, tmp_path, table_of(5))
        obj = remote.object_path(outcome.commit, DATA_PATH)
        obj.unlink()
        if damage == "a folder":
            obj.mkdir()
        with pytest.raises(RemoteCorruptError, match=f"{re.escape(DATA_PATH)} at {outcome.commit[:12]} is unreadable"):
            if op == "load_table":
                remote.load_table(outcome.commit)
            else:
                call(remote, op, outcome.commit, DATA_PATH, tmp_path)

    @pytest.mark.parametrize("ref", ["commit", "tag"])
    def test_a_folder_where_a_commit_or_tag_file_belongs_is_one_line(self, remote, spec, tmp_path, ref):
        outcome, _ = publish(spec, remote, tmp_path, table_of(5))
        path = remote.root / "commits" / f"{outcome.commit}.json" if ref == "commit" else remote.root / "refs/tags/v1.0"
        path.unlink()
        path.mkdir()
        line = f"^{re.escape(remote.url)}: read .* failed: {re.escape(str(path))}: Is a directory$"
        with pytest.raises(RemoteError, match=line):
            remote.list_files(outcome.commit) if ref == "commit" else remote.tags()


class TestHubRemote(RemoteContract):
    """The loopback Hub in LFS mode, as the Hub is: parquet goes through Git LFS."""

    counts_bytes_exactly = False  # small files are sent to the staging branch and again to main

    @pytest.fixture
    def remote(self, tmp_path, request) -> Remote:
        return make_remote("hub", tmp_path, request)

    @pytest.fixture
    def broken(self, tmp_path, monkeypatch) -> Remote:
        # hf_hub_download retries a HEAD that cannot connect 5 times over ~23 s by itself: skip its sleeps
        monkeypatch.setattr(huggingface_hub.utils._http, "time", SimpleNamespace(sleep=lambda _: None))
        return HubRemote("dsm/unreachable", endpoint=f"http://127.0.0.1:{closed_port()}", token=HUB_TOKEN,
                         cache_dir=tmp_path / "hf-cache", max_tries=2, backoff_seconds=0.01, transfer="lfs")


class TestHubRegularRemote(TestHubRemote):
    """The loopback Hub taking every file as a regular git file (no LFS)."""

    @pytest.fixture
    def remote(self, tmp_path, request) -> Remote:
        return make_remote("hub-regular", tmp_path, request)


class TestS3Remote(RemoteContract):
    @pytest.fixture
    def remote(self, tmp_path, request) -> Remote:
        return make_remote("s3", tmp_path, request)

    @pytest.fixture
    def broken(self, tmp_path, aws_env) -> Remote:
        return S3Remote(BUCKET, "datasets/unreachable", endpoint_url=f"http://127.0.0.1:{closed_port()}",
                        max_attempts=2)
