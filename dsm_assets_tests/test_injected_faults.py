"""Injected transient faults: Hub 429/503 and S3 503/SlowDown are retried to exactly one new version.

S3 faults come from a proxy in front of moto (fault_proxy); Hub faults from the loopback Hub server. Both can
also lose a reply after the write happened (`after=True`), which a retry must not mistake for a conflict."""

from __future__ import annotations

import re
import time

import pytest

from dsm_assets.errors import RemoteError
from dsm_assets.publishing import publish_cleaned
from dsm_assets.registry import load_registry
from dsm_assets.remotes.s3 import S3Remote

from .conftest import write_registry
from .fault_proxy import FaultProxy
from .servers import BUCKET, HUB_TOKEN, cleaned_file, table_of, unique
from .test_remote_hub import hub_remote


@pytest.fixture
def proxy(moto_url, aws_env):
    proxy = FaultProxy(moto_url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def spec(tmp_path):
    entry = {"name": "retried", "use": "retries", "source": {"path": "raw/r/*.csv", "format": "csv"},
             "schema": {"id": "int64"}, "remote": {"kind": "local", "repo": "dsm/retried"}, "cache_dir": "cache/r"}
    return load_registry(write_registry(tmp_path / "r.yaml", [entry])).get("retried")


def publish_twice(spec, remote, tmp_path):
    """v1.0 without faults, then the caller injects, then v1.1: returns (v1.0 outcome, v1.1 ref)."""
    v10 = publish_cleaned(spec, remote, cleaned_file(tmp_path / "a.parquet", table_of(10)), data_dir=tmp_path)
    return v10, cleaned_file(tmp_path / "b.parquet", table_of(20))


def faulted(proxy: FaultProxy) -> list[tuple[str, str, int]]:
    return [entry for entry in proxy.log if entry[2] >= 500]


def test_s3_slowdown_and_503_are_retried_to_exactly_one_new_version(proxy, spec, tmp_path):
    remote = S3Remote(BUCKET, f"datasets/{unique('retry')}", endpoint_url=proxy.url)
    v10, new = publish_twice(spec, remote, tmp_path)
    proxy.clear()
    proxy.inject(503, "SlowDown", times=2, method="PUT", path_contains="/files/")
    proxy.inject(503, "ServiceUnavailable", times=1, method="PUT", path_contains="/versions/")
    proxy.inject(503, "SlowDown", times=1, method="GET", path_contains="list-type=2")
    v11 = publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert (v11.tag, v11.new) == ("v1.1", True)
    assert len(faulted(proxy)) == 4  # every injected fault was met, and retried past
    fresh = S3Remote(BUCKET, remote.prefix, endpoint_url=proxy.url)
    assert fresh.tags() == {"v1.0": v10.commit, "v1.1": v11.commit}
    assert fresh.load_table(v11.commit).num_rows == 20


def test_s3_manifest_stored_but_its_reply_lost_is_not_a_conflict(proxy, spec, tmp_path):
    remote = S3Remote(BUCKET, f"datasets/{unique('lost')}", endpoint_url=proxy.url)
    v10, new = publish_twice(spec, remote, tmp_path)
    proxy.clear()
    proxy.inject(503, "SlowDown", method="PUT", path_contains="/versions/", after=True)
    v11 = publish_cleaned(spec, remote, new, data_dir=tmp_path)  # boto3's retry meets its own manifest: 412
    assert [status for method, path, status in proxy.log if "/versions/" in path and method == "PUT"] == [503, 412]
    assert S3Remote(BUCKET, remote.prefix, endpoint_url=proxy.url).tags() == {"v1.0": v10.commit, "v1.1": v11.commit}


def test_s3_slowdown_that_never_ends_fails_cleanly_and_publishes_nothing(proxy, spec, tmp_path):
    remote = S3Remote(BUCKET, f"datasets/{unique('down')}", endpoint_url=proxy.url, max_attempts=2)
    v10, new = publish_twice(spec, remote, tmp_path)
    proxy.clear()
    proxy.inject(503, "SlowDown", times=100, method="PUT", path_contains="/files/")
    with pytest.raises(RemoteError, match=r": upload README\.md failed: SlowDown after 2 tries$"):
        publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert len(faulted(proxy)) == 2
    assert S3Remote(BUCKET, remote.prefix, endpoint_url=proxy.url).tags() == {"v1.0": v10.commit}


def test_hub_429_and_503_everywhere_are_retried_to_exactly_one_new_version(hub_server, spec, tmp_path):
    remote = hub_remote(hub_server, tmp_path)
    v10, new = publish_twice(spec, remote, tmp_path)
    for path, status in (("/preupload/", 503), ("/commit/", 429), ("/commit/", 503), ("/tag/", 503),
                         ("/paths-info/", 503), ("/refs", 429)):
        hub_server.inject(status, path_contains=path)
    hub_server.clear_log()
    v11 = publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert (v11.tag, v11.new) == ("v1.1", True)
    assert hub_server.tags(remote.repo_id) == {"v1.0": v10.commit, "v1.1": v11.commit}
    assert hub_server.branch_head(remote.repo_id) == v11.commit
    assert not [f for f in hub_server._faults if f.times > 0]  # every injected fault was met


def test_hub_tag_created_but_its_reply_lost_is_not_a_conflict(hub_server, spec, tmp_path):
    remote = hub_remote(hub_server, tmp_path)
    v10, new = publish_twice(spec, remote, tmp_path)
    hub_server.inject(503, path_contains="/tag/", after=True)  # the tag exists; the client hears 503, retries: 409
    v11 = publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert hub_server.tags(remote.repo_id) == {"v1.0": v10.commit, "v1.1": v11.commit}


def test_hub_promotion_stored_but_its_reply_lost_fails_cleanly_and_the_next_run_completes(hub_server, spec,
                                                                                        tmp_path):
    """A lost reply to the promotion commit: the retry's parent_commit no longer matches (412), which cannot be
    told apart from another writer, so the run fails without a tag; main holds the files, tags are the truth,
    and the next run tags the version."""
    remote = hub_remote(hub_server, tmp_path)
    v10, new = publish_twice(spec, remote, tmp_path)
    hub_server.inject(503, path_contains="/commit/main", after=True)
    with pytest.raises(RemoteError, match="another writer got there first"):
        publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert hub_server.tags(remote.repo_id) == {"v1.0": v10.commit}
    v11 = publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert (v11.tag, hub_server.tags(remote.repo_id)["v1.1"]) == ("v1.1", v11.commit)
    assert HUB_TOKEN not in repr(remote)


COMMIT_LOCK = "Another commit operation is in progress, please try again later"  # the Hub's 409 under a lock


def test_hub_commit_lock_409_is_retried_not_taken_for_another_writer(hub_server, spec, tmp_path, caplog):
    # before: every 409 was ConcurrentPublishError ("another writer got there first"), never retried
    remote = hub_remote(hub_server, tmp_path)
    v10, new = publish_twice(spec, remote, tmp_path)
    hub_server.inject(409, times=2, path_contains="/commit/", message=COMMIT_LOCK)
    v11 = publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert hub_server.tags(remote.repo_id) == {"v1.0": v10.commit, "v1.1": v11.commit}
    assert caplog.text.count("HTTP 409; retrying in") == 2


def test_hub_commit_lock_that_never_clears_is_one_line_and_publishes_nothing(hub_server, spec, tmp_path):
    remote = hub_remote(hub_server, tmp_path)
    v10, new = publish_twice(spec, remote, tmp_path)
    hub_server.inject(409, times=100, path_contains="/commit/", message=COMMIT_LOCK)
    with pytest.raises(RemoteError) as raised:
        publish_cleaned(spec, remote, new, data_dir=tmp_path)
    message = str(raised.value)
    assert "another commit to " in message and "still in progress after 3 tries (HTTP 409)" in message
    assert "\n" not in message and hub_server.tags(remote.repo_id) == {"v1.0": v10.commit}


def test_hub_429_retry_after_is_honoured_with_one_line_per_wait(hub_server, spec, tmp_path, caplog):
    # before: Retry-After was ignored (three quick tries, ~0.03 s here, then failure)
    remote = hub_remote(hub_server, tmp_path)
    v10, new = publish_twice(spec, remote, tmp_path)
    hub_server.inject(429, path_contains="/commit/", headers={"Retry-After": "2"})
    started = time.monotonic()
    v11 = publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert time.monotonic() - started >= 2.0
    assert hub_server.tags(remote.repo_id) == {"v1.0": v10.commit, "v1.1": v11.commit}
    [line] = [r.getMessage() for r in caplog.records if "rate limited" in r.getMessage()]
    assert re.fullmatch(rf"{remote.url}: rate limited by the Hub \(commit to dsm-staging-v1\.1-\w+\); retrying in 2 s",
                        line), line


def test_hub_429_asking_for_longer_than_the_budget_fails_at_once_in_one_line(hub_server, spec, tmp_path):
    remote = hub_remote(hub_server, tmp_path, max_wait_seconds=60)
    v10, new = publish_twice(spec, remote, tmp_path)
    hub_server.inject(429, times=5, path_contains="/commit/", headers={"Retry-After": "271"})
    started = time.monotonic()
    with pytest.raises(RemoteError) as raised:
        publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert time.monotonic() - started < 30  # it did not sleep 271 s
    assert "still rate limited by the Hub (HTTP 429, retry after 271 s) when this remote stopped waiting (at most " \
           "60 s" in str(raised.value)
    assert hub_server.tags(remote.repo_id) == {"v1.0": v10.commit}


def test_hub_429_that_keeps_asking_for_0_s_ends_instead_of_looping(hub_server, spec, tmp_path):
    remote = hub_remote(hub_server, tmp_path)
    _, new = publish_twice(spec, remote, tmp_path)
    hub_server.inject(429, times=1000, path_contains="/commit/", headers={"Retry-After": "0"})
    with pytest.raises(RemoteError, match="HTTP 429"):
        publish_cleaned(spec, remote, new, data_dir=tmp_path)
    assert 100 <= sum("/commit/" in path for _, path in hub_server.requests) < 1000
